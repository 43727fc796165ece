//! Per-file line decoding: raw, CRI (`<ts> <stream> <P|F>[:tags] <msg>`) and docker json-file,
//! with partial-line reassembly per output stream and the max line size applied to the
//! merged line.

use crate::config::{Format, LineAction};
use silt_proto::time::parse_rfc3339;

/// A logical line ready for the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub line: String,
    /// Timestamp from the record (CRI/docker); `None` = use read time.
    pub ts: Option<i64>,
    /// `stdout` / `stderr` for CRI and docker.
    pub stream: Option<&'static str>,
}

/// Outcome of one physical line.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// A complete logical line.
    Line(Decoded),
    /// A partial chunk was buffered.
    Buffered,
    /// Dropped (over max_line_size with action drop); reason for the metric.
    Dropped(&'static str),
}

#[derive(Default)]
struct Partial {
    buf: String,
    /// File offset where the first chunk starts (resume point while buffered).
    start: u64,
    ts: Option<i64>,
    over: bool,
}

/// Stateful decoder for one file.
pub struct Decoder {
    format: Format,
    max: usize,
    action: LineAction,
    /// Partial buffers for stdout and stderr.
    partial: [Option<Partial>; 2],
}

struct Parsed<'a> {
    ts: Option<i64>,
    stream: usize,
    msg: &'a str,
    partial: bool,
}

const STREAMS: [&str; 2] = ["stdout", "stderr"];

fn parse_cri(line: &str) -> Option<Parsed<'_>> {
    let mut it = line.splitn(4, ' ');
    let ts = parse_rfc3339(it.next()?)?;
    let stream_name = it.next()?;
    let stream = STREAMS.iter().position(|s| *s == stream_name)?;
    let tags = it.next()?;
    let partial = match tags.split(':').next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some(Parsed {
        ts: Some(ts),
        stream,
        msg: it.next().unwrap_or(""),
        partial,
    })
}

#[derive(serde::Deserialize)]
struct DockerLine {
    log: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    time: String,
}

impl Decoder {
    pub fn new(format: Format, max_line_size: u64, action: LineAction) -> Decoder {
        Decoder {
            format,
            max: usize::try_from(max_line_size).unwrap_or(usize::MAX),
            action,
            partial: [None, None],
        }
    }

    /// Earliest file offset still needed by a buffered partial line.
    pub fn pending_start(&self) -> Option<u64> {
        self.partial.iter().flatten().map(|p| p.start).min()
    }

    /// Decodes one physical line (without its `\n`) that started at file offset `start`.
    pub fn push(&mut self, raw: &str, start: u64) -> Step {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let docker;
        let parsed = match self.format {
            Format::Raw => None,
            Format::Cri => parse_cri(raw),
            Format::Docker => {
                docker = serde_json::from_str::<DockerLine>(raw).ok();
                docker.as_ref().map(docker_parsed)
            }
            Format::Auto => {
                if raw.starts_with('{') {
                    docker = serde_json::from_str::<DockerLine>(raw).ok();
                    docker.as_ref().map(docker_parsed)
                } else {
                    parse_cri(raw)
                }
            }
        };
        let Some(p) = parsed else {
            return self.finish(raw.to_string(), None, None, false);
        };
        let slot = &mut self.partial[p.stream];
        if p.partial || slot.is_some() {
            let part = slot.get_or_insert_with(|| Partial {
                start,
                ts: p.ts,
                ..Partial::default()
            });
            // Bounded: chunks past the limit are discarded, not buffered.
            if part.buf.len() + p.msg.len() > self.max {
                let room = self.max.saturating_sub(part.buf.len());
                part.buf.push_str(cut(p.msg, room));
                part.over = true;
            } else {
                part.buf.push_str(p.msg);
            }
            if p.partial {
                return Step::Buffered;
            }
            let part = slot.take().unwrap_or_default();
            return self.finish(part.buf, part.ts, Some(STREAMS[p.stream]), part.over);
        }
        self.finish(p.msg.to_string(), p.ts, Some(STREAMS[p.stream]), false)
    }

    /// Emits buffered partial lines (the file ended: rotated away or deleted).
    pub fn flush(&mut self) -> Vec<Decoded> {
        let mut out = Vec::new();
        for (i, slot) in self.partial.iter_mut().enumerate() {
            if let Some(p) = slot.take() {
                out.push(Decoded {
                    line: p.buf,
                    ts: p.ts,
                    stream: Some(STREAMS[i]),
                });
            }
        }
        out
    }

    fn finish(
        &self,
        mut line: String,
        ts: Option<i64>,
        stream: Option<&'static str>,
        over: bool,
    ) -> Step {
        if over || line.len() > self.max {
            if self.action == LineAction::Drop {
                return Step::Dropped("line_too_long");
            }
            let n = cut(&line, self.max).len();
            line.truncate(n);
            crate::metrics::metrics().truncated_lines.inc();
        }
        Step::Line(Decoded { line, ts, stream })
    }
}

fn docker_parsed(d: &DockerLine) -> Parsed<'_> {
    let (msg, partial) = match d.log.strip_suffix('\n') {
        Some(m) => (m, false),
        None => (d.log.as_str(), true),
    };
    Parsed {
        ts: parse_rfc3339(&d.time),
        stream: usize::from(d.stream == "stderr"),
        msg: msg.strip_suffix('\r').unwrap_or(msg),
        partial,
    }
}

/// Longest prefix of `s` of at most `n` bytes on a char boundary.
pub fn cut(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: Step) -> Decoded {
        match s {
            Step::Line(d) => d,
            other => panic!("expected a line, got {other:?}"),
        }
    }

    #[test]
    fn cri_full_and_partial() {
        let mut d = Decoder::new(Format::Cri, 1000, LineAction::Truncate);
        let l = line(d.push("2024-01-01T00:00:00.5Z stdout F hello world", 0));
        assert_eq!(l.line, "hello world");
        assert_eq!(l.stream, Some("stdout"));
        assert_eq!(l.ts, Some(1_704_067_200_500_000_000));
        assert_eq!(
            d.push("2024-01-01T00:00:01Z stdout P abc", 10),
            Step::Buffered
        );
        // An interleaved stderr line completes on its own.
        assert_eq!(
            line(d.push("2024-01-01T00:00:01Z stderr F err", 20)).line,
            "err"
        );
        assert_eq!(d.pending_start(), Some(10));
        assert_eq!(
            d.push("2024-01-01T00:00:01Z stdout P def", 30),
            Step::Buffered
        );
        let l = line(d.push("2024-01-01T00:00:02Z stdout F ghi", 40));
        assert_eq!(
            (l.line.as_str(), l.ts),
            ("abcdefghi", Some(1_704_067_201_000_000_000))
        );
        assert_eq!(d.pending_start(), None);
        // Empty message and extra tags.
        assert_eq!(line(d.push("2024-01-01T00:00:00Z stdout F", 0)).line, "");
        assert_eq!(
            line(d.push("2024-01-01T00:00:00Z stdout F:x y", 0)).line,
            "y"
        );
    }

    #[test]
    fn partial_merge_is_bounded() {
        let mut d = Decoder::new(Format::Cri, 8, LineAction::Truncate);
        for _ in 0..100 {
            d.push("2024-01-01T00:00:00Z stdout P 12345", 0);
        }
        assert_eq!(
            line(d.push("2024-01-01T00:00:00Z stdout F 6", 0)).line,
            "12345123"
        );
        let mut d = Decoder::new(Format::Cri, 8, LineAction::Drop);
        d.push("2024-01-01T00:00:00Z stdout P 12345", 0);
        assert_eq!(
            d.push("2024-01-01T00:00:00Z stdout F 6789", 0),
            Step::Dropped("line_too_long")
        );
    }

    #[test]
    fn docker_partial() {
        let mut d = Decoder::new(Format::Auto, 1000, LineAction::Truncate);
        let rec = |log: &str| {
            format!(
                r#"{{"log":{},"stream":"stderr","time":"2024-01-01T00:00:00Z"}}"#,
                serde_json::to_string(log).unwrap()
            )
        };
        assert_eq!(d.push(&rec("part1 "), 0), Step::Buffered);
        let l = line(d.push(&rec("part2\n"), 5));
        assert_eq!((l.line.as_str(), l.stream), ("part1 part2", Some("stderr")));
    }

    #[test]
    fn raw_and_fallbacks() {
        let mut d = Decoder::new(Format::Auto, 5, LineAction::Truncate);
        let l = line(d.push("not cri at all\r", 0));
        assert_eq!((l.line.as_str(), l.ts), ("not c", None));
        let mut d = Decoder::new(Format::Raw, 100, LineAction::Truncate);
        assert_eq!(
            line(d.push("2024-01-01T00:00:00Z stdout F x", 0)).line,
            "2024-01-01T00:00:00Z stdout F x"
        );
        assert_eq!(cut("é", 1), "");
    }

    #[test]
    fn flush_emits_orphaned_partials() {
        let mut d = Decoder::new(Format::Cri, 100, LineAction::Truncate);
        d.push("2024-01-01T00:00:00Z stdout P tail", 0);
        let f = d.flush();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].line, "tail");
    }
}
