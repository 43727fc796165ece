//! `multiline`: merges a block that starts at a `firstline` match with the lines that
//! follow, per stream, flushing on the next first line, `max_lines` or `max_wait_time`.

use super::Stage;
use crate::{Ack, Record};
use regex::Regex;
use serde::Deserialize;
use silt_model::Labels;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `multiline` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Regex marking the first line of a block.
    pub firstline: String,
    /// Flush a block this long after its first line (3s like Alloy).
    #[serde(default = "d_wait", deserialize_with = "crate::units::de_duration")]
    pub max_wait_time: Duration,
    /// Flush a block at this many lines (128 like Alloy).
    #[serde(default = "d_lines")]
    pub max_lines: usize,
    /// Trim trailing newlines of each line before joining.
    #[serde(default)]
    pub trim_newlines: bool,
}

fn d_wait() -> Duration {
    Duration::from_secs(3)
}
fn d_lines() -> usize {
    128
}

struct Block {
    rec: Record,
    lines: usize,
    /// Wall-clock ns when the block started (for max_wait_time).
    started: i64,
    /// (source, unit, offset where the block's first line of that unit starts): while the
    /// block is held, no position of those units may be acknowledged past it. Usually one
    /// unit; pushed requests can continue a block across buffer files.
    starts: Vec<(usize, u64, u64)>,
}

/// Unit of a record: where its position is tracked.
type Unit = (usize, u64);

pub struct Multiline {
    re: Regex,
    c: MultilineConfig,
    blocks: HashMap<Labels, Block>,
    /// Start of the line being processed, per unit (told by the source).
    line_start: HashMap<Unit, u64>,
    /// Start offsets of held blocks per unit (with counts), so the floor is a lookup.
    held: HashMap<Unit, BTreeMap<u64, usize>>,
}

impl Multiline {
    pub fn new(c: &MultilineConfig) -> Result<Multiline, String> {
        if c.max_lines == 0 {
            return Err("multiline: max_lines must be > 0".into());
        }
        Ok(Multiline {
            re: Regex::new(&c.firstline).map_err(|e| format!("invalid firstline: {e}"))?,
            c: c.clone(),
            blocks: HashMap::new(),
            line_start: HashMap::new(),
            held: HashMap::new(),
        })
    }

    /// Where `rec`'s line starts, if its source told us.
    fn start_of(&self, rec: &Record) -> Option<(usize, u64, u64)> {
        let a = rec.ack?;
        let at = *self.line_start.get(&(a.source, a.unit))?;
        Some((a.source, a.unit, at))
    }

    fn add_start(held: &mut HashMap<Unit, BTreeMap<u64, usize>>, (s, u, at): (usize, u64, u64)) {
        *held.entry((s, u)).or_default().entry(at).or_default() += 1;
    }

    fn hold(&mut self, key: Labels, rec: Record) {
        let starts: Vec<_> = self.start_of(&rec).into_iter().collect();
        for st in &starts {
            Self::add_start(&mut self.held, *st);
        }
        let started = crate::now_ns();
        self.blocks.insert(
            key,
            Block {
                rec,
                lines: 1,
                started,
                starts,
            },
        );
    }

    fn release(&mut self, b: Block, out: &mut Vec<Record>) {
        for (s, u, at) in b.starts {
            if let Some(m) = self.held.get_mut(&(s, u)) {
                if let Some(n) = m.get_mut(&at) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&at);
                    }
                }
                if m.is_empty() {
                    self.held.remove(&(s, u));
                }
            }
        }
        out.push(b.rec);
    }
}

impl Stage for Multiline {
    fn process(&mut self, mut rec: Record, out: &mut Vec<Record>) {
        if self.c.trim_newlines {
            let t = rec.entry.line.trim_end_matches(['\n', '\r']).len();
            rec.entry.line.truncate(t);
        }
        let key = rec.labels.clone();
        let first = self.re.is_match(&rec.entry.line);
        let start = self.start_of(&rec);
        match self.blocks.get_mut(&key) {
            Some(b) if !first => {
                if let Some(st) =
                    start.filter(|st| !b.starts.iter().any(|(s, u, _)| (*s, *u) == (st.0, st.1)))
                {
                    b.starts.push(st);
                    Self::add_start(&mut self.held, st);
                }
                b.rec.entry.line.push('\n');
                b.rec.entry.line.push_str(&rec.entry.line);
                // The block's resume point moves with its last line.
                b.rec.ack = rec.ack.or(b.rec.ack);
                b.lines += 1;
                if b.lines >= self.c.max_lines {
                    if let Some(b) = self.blocks.remove(&key) {
                        self.release(b, out);
                    }
                }
            }
            _ => {
                if let Some(old) = self.blocks.remove(&key) {
                    self.release(old, out);
                }
                self.hold(key, rec);
            }
        }
    }

    fn position(&mut self, at: Ack) {
        self.line_start.insert((at.source, at.unit), at.offset);
    }

    fn floor(&self, source: usize, unit: u64) -> Option<u64> {
        self.held
            .get(&(source, unit))
            .and_then(|m| m.keys().next().copied())
    }

    fn forget(&mut self, source: usize, unit: u64) {
        self.line_start.remove(&(source, unit));
    }

    fn tick(&mut self, now: i64, out: &mut Vec<Record>) {
        let wait = self.c.max_wait_time.as_nanos() as i64;
        let due: Vec<Labels> = self
            .blocks
            .iter()
            .filter(|(_, b)| now - b.started >= wait)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(b) = self.blocks.remove(&k) {
                self.release(b, out);
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Record>) {
        self.held.clear();
        out.extend(self.blocks.drain().map(|(_, b)| b.rec));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn merges_blocks() {
        let mut p = pipeline("[{multiline: {firstline: '^\\[', max_lines: 3}}]");
        let mut out = vec![];
        for l in [
            "[1] start",
            "  at a",
            "  at b",
            "[2] next",
            "x",
            "y",
            "z",
            "[3]",
        ] {
            p.process(rec(l), &mut out);
        }
        let lines: Vec<&str> = out.iter().map(|r| r.entry.line.as_str()).collect();
        // Block 2 hits max_lines at 3; "z" then opens a block of its own.
        assert_eq!(
            lines,
            vec!["[1] start\n  at a\n  at b", "[2] next\nx\ny", "z"]
        );
        let mut rest = vec![];
        p.tick(crate::now_ns() + 10_000_000_000, &mut rest);
        let lines: Vec<&str> = rest.iter().map(|r| r.entry.line.as_str()).collect();
        assert_eq!(lines, vec!["[3]"]);
        let mut none = vec![];
        p.flush(&mut none);
        assert!(none.is_empty());
    }
}
