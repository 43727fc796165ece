//! Routing and filtering stages: match, drop, limit, sampling.

use super::{Pipeline, Stage, StageConfig};
use crate::metrics::count_process_drop;
use crate::Record;
use regex::Regex;
use serde::Deserialize;
use silt_logql::ast::{Expr, LineFilterOp, LineFilterValue, Stage as QStage};
use silt_model::LabelMatcher;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// `match` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// LogQL stream selector, optionally with line filters: `{app="web"} |= "error"`.
    pub selector: String,
    /// `keep` (default: run `stages` on matching entries) or `drop` (drop them).
    #[serde(default)]
    pub action: MatchAction,
    /// Nested stages for `keep`.
    #[serde(default, deserialize_with = "super::de_stages")]
    pub stages: Vec<StageConfig>,
    /// Reason label on the dropped-lines counter.
    #[serde(default)]
    pub drop_counter_reason: Option<String>,
    /// Accepted for Promtail compatibility; unused.
    #[serde(default)]
    pub pipeline_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MatchAction {
    #[default]
    Keep,
    Drop,
}

enum LineTest {
    Contains(String, bool),
    Regex(Regex, bool),
}

pub struct Match {
    matchers: Vec<LabelMatcher>,
    filters: Vec<Vec<LineTest>>,
    action: MatchAction,
    stages: Pipeline,
    reason: String,
}

impl Match {
    pub fn new(c: &MatchConfig) -> Result<Match, String> {
        let expr = silt_logql::parse(&c.selector).map_err(|e| format!("selector: {e}"))?;
        let Expr::Log(log) = expr else {
            return Err("selector must be a log selector".into());
        };
        let mut filters = Vec::new();
        for st in &log.pipeline {
            let QStage::LineFilter(f) = st else {
                return Err("selector supports only line filters after the matchers".into());
            };
            let mut alts = Vec::new();
            for v in &f.values {
                let LineFilterValue::Str(s) = v else {
                    return Err("ip() filters are not supported in match".into());
                };
                alts.push(match f.op {
                    LineFilterOp::Contains => LineTest::Contains(s.clone(), true),
                    LineFilterOp::NotContains => LineTest::Contains(s.clone(), false),
                    LineFilterOp::Match | LineFilterOp::NotMatch => LineTest::Regex(
                        Regex::new(s).map_err(|e| format!("line filter regex: {e}"))?,
                        f.op == LineFilterOp::Match,
                    ),
                    _ => return Err("pattern filters are not supported in match".into()),
                });
            }
            filters.push(alts);
        }
        if c.action == MatchAction::Drop && !c.stages.is_empty() {
            return Err("match with action drop takes no stages".into());
        }
        Ok(Match {
            matchers: log.selector,
            filters,
            action: c.action,
            stages: Pipeline::new(&c.stages)?,
            reason: c
                .drop_counter_reason
                .clone()
                .unwrap_or_else(|| "match_stage".into()),
        })
    }

    fn matches(&self, rec: &Record) -> bool {
        self.matchers.iter().all(|m| m.matches_labels(&rec.labels))
            && self.filters.iter().all(|alts| {
                let line = &rec.entry.line;
                // Positive ops: any alternative matches; negative ops: none may.
                let positive = alts.iter().all(|t| match t {
                    LineTest::Contains(_, p) | LineTest::Regex(_, p) => *p,
                });
                let hit = |t: &LineTest| match t {
                    LineTest::Contains(s, _) => line.contains(s.as_str()),
                    LineTest::Regex(r, _) => r.is_match(line),
                };
                if positive {
                    alts.iter().any(hit)
                } else {
                    !alts.iter().any(hit)
                }
            })
    }
}

impl Stage for Match {
    fn process(&mut self, rec: Record, out: &mut Vec<Record>) {
        if !self.matches(&rec) {
            out.push(rec);
        } else if self.action == MatchAction::Drop {
            count_process_drop(&self.reason);
        } else {
            self.stages.process(rec, out);
        }
    }
    fn tick(&mut self, now: i64, out: &mut Vec<Record>) {
        self.stages.tick(now, out)
    }
    fn flush(&mut self, out: &mut Vec<Record>) {
        self.stages.flush(out)
    }
    fn position(&mut self, at: crate::Ack) {
        self.stages.position(at)
    }
    fn floor(&self, source: usize, unit: u64) -> Option<u64> {
        self.stages.floor(source, unit)
    }
    fn forget(&mut self, source: usize, unit: u64) {
        self.stages.forget(source, unit)
    }
}

/// `drop` options: drops when every condition that is set holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    /// Extracted key(s) tested instead of the line; several are joined with `separator`.
    #[serde(default)]
    pub source: Option<OneOrMany>,
    #[serde(default = "d_sep")]
    pub separator: String,
    /// Regex that must match (anywhere).
    #[serde(default)]
    pub expression: Option<String>,
    /// Exact value the source must equal (needs `source`).
    #[serde(default)]
    pub value: Option<String>,
    /// Entries older than this (by timestamp) are dropped.
    #[serde(default, deserialize_with = "crate::units::de_opt_duration")]
    pub older_than: Option<Duration>,
    /// Lines longer than this many bytes are dropped.
    #[serde(default)]
    pub longer_than: Option<crate::units::Size>,
    #[serde(default)]
    pub drop_counter_reason: Option<String>,
}

fn d_sep() -> String {
    ";".into()
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

pub struct Drop {
    c: DropConfig,
    re: Option<Regex>,
    sources: Vec<String>,
}

impl Drop {
    pub fn new(c: &DropConfig) -> Result<Drop, String> {
        let re = c
            .expression
            .as_deref()
            .map(|e| Regex::new(e).map_err(|e| format!("invalid expression: {e}")))
            .transpose()?;
        let sources = match &c.source {
            None => vec![],
            Some(OneOrMany::One(s)) => vec![s.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        if c.value.is_some() && sources.is_empty() {
            return Err("drop: value needs source".into());
        }
        if c.value.is_some() && re.is_some() {
            return Err("drop: value and expression are exclusive".into());
        }
        if re.is_none()
            && c.value.is_none()
            && c.older_than.is_none()
            && c.longer_than.is_none()
            && sources.is_empty()
        {
            return Err("drop needs at least one condition".into());
        }
        Ok(Drop {
            c: c.clone(),
            re,
            sources,
        })
    }

    fn should_drop(&self, rec: &Record) -> bool {
        let subject = if self.sources.is_empty() {
            Some(rec.entry.line.clone())
        } else {
            let vals: Option<Vec<&str>> = self
                .sources
                .iter()
                .map(|s| rec.extracted.get(s).map(String::as_str))
                .collect();
            vals.map(|v| v.join(&self.c.separator))
        };
        let Some(subject) = subject else { return false };
        if let Some(re) = &self.re {
            if !re.is_match(&subject) {
                return false;
            }
        }
        if let Some(v) = &self.c.value {
            if *v != subject {
                return false;
            }
        }
        if let Some(age) = self.c.older_than {
            if crate::now_ns() - rec.entry.ts <= age.as_nanos() as i64 {
                return false;
            }
        }
        if let Some(n) = &self.c.longer_than {
            if rec.entry.line.len() as u64 <= n.0 {
                return false;
            }
        }
        true
    }
}

impl super::MapStage for Drop {
    fn apply(&mut self, rec: &mut Record) -> bool {
        if self.should_drop(rec) {
            count_process_drop(
                self.c
                    .drop_counter_reason
                    .as_deref()
                    .unwrap_or("drop_stage"),
            );
            return false;
        }
        true
    }
}

/// `limit` options (token bucket).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Entries per second.
    pub rate: f64,
    /// Bucket size.
    pub burst: u32,
    /// Drop over-limit entries (default: wait, which slows reading down).
    #[serde(default)]
    pub drop: bool,
    /// One bucket per value of this label (requires `drop`).
    #[serde(default)]
    pub by_label_name: Option<String>,
    /// Cap on distinct buckets; beyond it entries share an overflow bucket.
    #[serde(default = "d_distinct")]
    pub max_distinct_labels: usize,
}

fn d_distinct() -> usize {
    10_000
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limit {
    c: LimitConfig,
    buckets: HashMap<String, Bucket>,
}

impl Limit {
    pub fn new(c: &LimitConfig) -> Result<Limit, String> {
        if c.rate <= 0.0 || c.burst == 0 {
            return Err("limit needs rate > 0 and burst > 0".into());
        }
        if c.by_label_name.is_some() && !c.drop {
            return Err("limit: by_label_name requires drop: true".into());
        }
        Ok(Limit {
            c: c.clone(),
            buckets: HashMap::new(),
        })
    }

    /// Takes a token; returns the wait needed when none is available.
    fn take(&mut self, key: String) -> Option<Duration> {
        let n = self.buckets.len();
        let key = if n >= self.c.max_distinct_labels && !self.buckets.contains_key(&key) {
            String::from("\u{0}overflow")
        } else {
            key
        };
        let (rate, burst) = (self.c.rate, f64::from(self.c.burst));
        let b = self.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            at: Instant::now(),
        });
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

impl super::MapStage for Limit {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let key = match &self.c.by_label_name {
            Some(l) => match rec.labels.get(l) {
                Some(v) => v.to_string(),
                None => return true,
            },
            None => String::new(),
        };
        loop {
            match self.take(key.clone()) {
                None => return true,
                Some(_) if self.c.drop => {
                    count_process_drop("ratelimit");
                    return false;
                }
                // Blocking the reader thread is the back-pressure.
                Some(wait) => std::thread::sleep(wait),
            }
        }
    }
}

/// `sampling` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Fraction kept, 0..=1.
    pub rate: f64,
    #[serde(default)]
    pub drop_counter_reason: Option<String>,
}

pub struct Sampling(SamplingConfig);

impl Sampling {
    pub fn new(c: &SamplingConfig) -> Result<Sampling, String> {
        if !(0.0..=1.0).contains(&c.rate) {
            return Err("sampling rate must be within 0..1".into());
        }
        Ok(Sampling(c.clone()))
    }
}

impl super::MapStage for Sampling {
    fn apply(&mut self, _rec: &mut Record) -> bool {
        if fastrand::f64() < self.0.rate {
            return true;
        }
        count_process_drop(self.0.drop_counter_reason.as_deref().unwrap_or("sampling"));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn match_keep_and_drop() {
        let y = r#"
- match:
    selector: '{job="test"} |= "err" != "ignore"'
    stages: [{static_labels: {hit: "yes"}}]
"#;
        assert_eq!(one(y, "an err here").labels.get("hit"), Some("yes"));
        assert_eq!(one(y, "an err ignore").labels.get("hit"), None);
        assert_eq!(one(y, "fine").labels.get("hit"), None);
        let d = r#"[{match: {selector: '{job=~"te.*"} |~ "^debug"', action: drop}}]"#;
        assert!(run(d, "debug x").is_empty());
        assert_eq!(run(d, "info debug").len(), 1);
        assert!(super::Match::new(
            &serde_yaml::from_str("{selector: 'rate({a=\"b\"}[1m])'}").unwrap()
        )
        .is_err());
        assert!(super::Match::new(
            &serde_yaml::from_str("{selector: '{a=\"b\"} | json'}").unwrap()
        )
        .is_err());
    }

    #[test]
    fn drop_conditions() {
        assert!(run("[{drop: {expression: 'health'}}]", "GET /health").is_empty());
        assert_eq!(run("[{drop: {expression: 'health'}}]", "GET /x").len(), 1);
        assert!(run("[{drop: {longer_than: 3}}]", "abcd").is_empty());
        assert_eq!(run("[{drop: {longer_than: 3}}]", "abc").len(), 1);
        // Old timestamp (the test record is at 1µs after the epoch).
        assert!(run("[{drop: {older_than: 1h}}]", "x").is_empty());
        let y = "- logfmt: {}\n- drop: {source: [a, b], value: '1;2'}\n";
        assert!(run(y, "a=1 b=2").is_empty());
        assert_eq!(run(y, "a=1 b=3").len(), 1);
        assert_eq!(run(y, "a=1").len(), 1, "missing source never drops");
        assert!(super::Drop::new(&serde_yaml::from_str("{value: x}").unwrap()).is_err());
    }

    #[test]
    fn limit_drops_over_burst() {
        let mut p = pipeline("[{limit: {rate: 0.001, burst: 2, drop: true}}]");
        let mut out = vec![];
        for _ in 0..5 {
            p.process(rec("x"), &mut out);
        }
        assert_eq!(out.len(), 2);
        let mut p = pipeline("[{limit: {rate: 0.001, burst: 1, drop: true, by_label_name: job}}]");
        let mut out = vec![];
        p.process(rec("x"), &mut out);
        let mut other = rec("y");
        other.labels.set("job", "other");
        p.process(other, &mut out);
        p.process(rec("z"), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn sampling_extremes() {
        assert!(run("[{sampling: {rate: 0}}]", "x").is_empty());
        assert_eq!(run("[{sampling: {rate: 1}}]", "x").len(), 1);
    }
}
