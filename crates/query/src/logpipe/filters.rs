//! Line filters and label filters.

use super::EntryLabels;
use crate::{Error, Result};
use regex::Regex;
use silt_logql::ast::{CmpOp, LabelFilterExpr, LineFilter, LineFilterOp, LineFilterValue};
use silt_model::{LabelMatcher, MatchOp};
use std::net::IpAddr;

/// One compiled operand of a line filter.
#[derive(Debug)]
enum Test {
    Contains(Box<memchr::memmem::Finder<'static>>),
    Regex(Regex),
    Pattern(Vec<Option<String>>),
    Ip(IpRange),
    All,
}

impl Test {
    fn matches(&self, line: &str) -> bool {
        match self {
            Test::Contains(f) => f.find(line.as_bytes()).is_some(),
            Test::Regex(r) => r.is_match(line),
            Test::Pattern(p) => pattern_filter(p, line),
            Test::Ip(r) => ips_in(line).any(|ip| r.contains(ip)),
            Test::All => true,
        }
    }
}

/// A compiled `|= a or b` style filter.
#[derive(Debug)]
pub struct CompiledLineFilter {
    negate: bool,
    tests: Vec<Test>,
}

impl CompiledLineFilter {
    /// Compiles; invalid regexes are query errors.
    pub fn new(f: &LineFilter) -> Result<Self> {
        let negate = matches!(
            f.op,
            LineFilterOp::NotContains | LineFilterOp::NotMatch | LineFilterOp::NotPattern
        );
        let mut tests = Vec::new();
        for v in &f.values {
            tests.push(match (f.op, v) {
                (_, LineFilterValue::Ip(p)) => Test::Ip(IpRange::parse(p)?),
                (_, LineFilterValue::Str(s)) if s.is_empty() => Test::All,
                (LineFilterOp::Contains | LineFilterOp::NotContains, LineFilterValue::Str(s)) => {
                    Test::Contains(Box::new(
                        memchr::memmem::Finder::new(s.as_bytes()).into_owned(),
                    ))
                }
                (LineFilterOp::Match | LineFilterOp::NotMatch, LineFilterValue::Str(s)) => {
                    Test::Regex(Regex::new(s).map_err(|e| {
                        Error::InvalidQuery(format!("invalid line filter regex {s:?}: {e}"))
                    })?)
                }
                (LineFilterOp::Pattern | LineFilterOp::NotPattern, LineFilterValue::Str(s)) => {
                    Test::Pattern(parse_filter_pattern(s))
                }
            });
        }
        Ok(CompiledLineFilter { negate, tests })
    }

    /// Whether the line passes.
    pub fn keep(&self, line: &str) -> bool {
        if self.negate {
            // "None of them"; an empty operand is a no-op filter in Loki, also when negated.
            !self
                .tests
                .iter()
                .any(|t| !matches!(t, Test::All) && t.matches(line))
        } else {
            self.tests.iter().any(|t| t.matches(line))
        }
    }
}

/// `<_>` wildcards (None) and literals.
fn parse_filter_pattern(p: &str) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for (i, lit) in p.split("<_>").enumerate() {
        if i > 0 {
            out.push(None);
        }
        if !lit.is_empty() {
            out.push(Some(lit.to_string()));
        }
    }
    out
}

/// Pattern line filter: literals in order, each `<_>` covers ≥1 char, the first literal may
/// start anywhere, a trailing literal must end the line.
fn pattern_filter(parts: &[Option<String>], line: &str) -> bool {
    fn go(parts: &[Option<String>], line: &str, pos: usize, anywhere: bool) -> bool {
        match parts.first() {
            None => pos == line.len(),
            Some(Some(lit)) => {
                if anywhere {
                    let mut from = pos;
                    while let Some(j) = line.get(from..).and_then(|s| s.find(lit.as_str())) {
                        if go(&parts[1..], line, from + j + lit.len(), false) {
                            return true;
                        }
                        from += j + 1;
                        while !line.is_char_boundary(from) {
                            from += 1;
                        }
                    }
                    false
                } else {
                    line[pos..].starts_with(lit.as_str())
                        && go(&parts[1..], line, pos + lit.len(), false)
                }
            }
            Some(None) => {
                let rest = &parts[1..];
                if rest.is_empty() {
                    return pos < line.len();
                }
                // At least one char, then the next literal anywhere after it.
                let mut next = pos + 1;
                while next <= line.len() && !line.is_char_boundary(next) {
                    next += 1;
                }
                next <= line.len() && go(rest, line, next, true)
            }
        }
    }
    go(parts, line, 0, true)
}

/// An address, CIDR or `a-b` range.
#[derive(Debug, Clone)]
pub struct IpRange {
    lo: IpAddr,
    hi: IpAddr,
}

impl IpRange {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `::1`, `1.2.3.4-1.2.3.9`.
    pub fn parse(s: &str) -> Result<IpRange> {
        let bad = || Error::InvalidQuery(format!("invalid ip pattern {s:?}"));
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let (lo, hi) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            return Ok(IpRange { lo, hi });
        }
        if let Some((a, bits)) = s.split_once('/') {
            let addr: IpAddr = a.parse().map_err(|_| bad())?;
            let bits: u32 = bits.parse().map_err(|_| bad())?;
            return match addr {
                IpAddr::V4(v) if bits <= 32 => {
                    let n = u32::from(v);
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    Ok(IpRange {
                        lo: IpAddr::V4((n & mask).into()),
                        hi: IpAddr::V4((n | !mask).into()),
                    })
                }
                IpAddr::V6(v) if bits <= 128 => {
                    let n = u128::from(v);
                    let mask = if bits == 0 {
                        0
                    } else {
                        u128::MAX << (128 - bits)
                    };
                    Ok(IpRange {
                        lo: IpAddr::V6((n & mask).into()),
                        hi: IpAddr::V6((n | !mask).into()),
                    })
                }
                _ => Err(bad()),
            };
        }
        let a: IpAddr = s.parse().map_err(|_| bad())?;
        Ok(IpRange { lo: a, hi: a })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.lo, self.hi, ip) {
            (IpAddr::V4(lo), IpAddr::V4(hi), IpAddr::V4(x)) => lo <= x && x <= hi,
            (IpAddr::V6(lo), IpAddr::V6(hi), IpAddr::V6(x)) => lo <= x && x <= hi,
            _ => false,
        }
    }
}

/// Candidate IP addresses in a line (maximal runs of hex digits, `.` and `:`).
fn ips_in(line: &str) -> impl Iterator<Item = IpAddr> + '_ {
    line.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':'))
        .filter(|t| t.len() >= 2)
        .flat_map(|t| {
            let t = t.trim_matches(|c| c == '.' || c == ':');
            match t.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                // `10.0.0.1:8080`: an IPv4 address with a port.
                Err(_) if t.contains('.') => t.split(':').filter_map(|p| p.parse().ok()).collect(),
                Err(_) => Vec::new(),
            }
        })
}

/// A compiled label filter expression.
#[derive(Debug)]
pub enum LabelFilter {
    /// `a and b`
    And(Box<LabelFilter>, Box<LabelFilter>),
    /// `a or b`
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// String matcher (the only kind that can test `__error__`).
    Matcher(LabelMatcher),
    /// Regex string matcher: unanchored, as Loki 3.x runs label-filter regexes through its
    /// line-filter machinery (`span_id=~"4.*"` matches any value containing a 4).
    Regex(String, bool, Regex),
    /// Numeric comparison.
    Number(String, CmpOp, f64),
    /// Duration comparison (seconds).
    Duration(String, CmpOp, f64),
    /// Bytes comparison.
    Bytes(String, CmpOp, f64),
    /// `= ip(…)` / `!= ip(…)`.
    Ip(String, bool, IpRange),
}

impl LabelFilter {
    /// Compiles an AST label filter.
    pub fn new(e: &LabelFilterExpr) -> Result<Self> {
        Ok(match e {
            LabelFilterExpr::And(a, b) => {
                LabelFilter::And(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Or(a, b) => {
                LabelFilter::Or(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Matcher(m) => match m.op {
                MatchOp::Re | MatchOp::Nre => LabelFilter::Regex(
                    m.name.clone(),
                    m.op == MatchOp::Re,
                    Regex::new(&m.value).map_err(|e| {
                        Error::InvalidQuery(format!(
                            "invalid label filter regex {:?}: {e}",
                            m.value
                        ))
                    })?,
                ),
                _ => LabelFilter::Matcher(m.clone()),
            },
            LabelFilterExpr::Number { name, op, value } => {
                LabelFilter::Number(name.clone(), *op, *value)
            }
            LabelFilterExpr::Duration { name, op, value } => {
                LabelFilter::Duration(name.clone(), *op, *value)
            }
            LabelFilterExpr::Bytes { name, op, value } => {
                // Loki compares with the literal its frontend re-parsed (`5KiB` → 5100).
                let v = silt_logql::units::loki_bytes_roundtrip(*value);
                LabelFilter::Bytes(name.clone(), *op, v as f64)
            }
            LabelFilterExpr::Ip {
                name,
                negated,
                pattern,
            } => LabelFilter::Ip(name.clone(), *negated, IpRange::parse(pattern)?),
        })
    }

    /// Adds every label name the filter reads.
    pub fn names(&self, out: &mut Vec<String>) {
        match self {
            LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
                a.names(out);
                b.names(out);
            }
            LabelFilter::Matcher(m) => out.push(m.name.clone()),
            LabelFilter::Regex(name, ..)
            | LabelFilter::Number(name, ..)
            | LabelFilter::Duration(name, ..)
            | LabelFilter::Bytes(name, ..)
            | LabelFilter::Ip(name, ..) => out.push(name.clone()),
        }
    }

    /// Loki's semantics: `and` evaluates both sides, `or` stops at the first success;
    /// conversion failures keep the line and set `LabelFilterErr`; once an error is set,
    /// only string matchers can filter.
    pub fn keep(&self, labels: &mut EntryLabels) -> bool {
        match self {
            LabelFilter::And(a, b) => {
                let l = a.keep(labels);
                let r = b.keep(labels);
                l && r
            }
            LabelFilter::Or(a, b) => a.keep(labels) || b.keep(labels),
            LabelFilter::Matcher(m) => m.matches(labels.get(&m.name).unwrap_or("")),
            LabelFilter::Regex(name, positive, re) => {
                re.is_match(labels.get(name).unwrap_or("")) == *positive
            }
            LabelFilter::Number(name, op, v) => {
                self.compare(labels, name, *op, *v, |s| s.trim().parse::<f64>().ok())
            }
            LabelFilter::Duration(name, op, v) => {
                self.compare(labels, name, *op, *v, parse_go_duration)
            }
            LabelFilter::Bytes(name, op, v) => {
                self.compare(labels, name, *op, *v, |s| parse_bytes(s).map(|b| b as f64))
            }
            LabelFilter::Ip(name, neg, r) => {
                if labels.has_error() {
                    return true;
                }
                let Some(val) = labels.get(name) else {
                    return false;
                };
                let hit = val
                    .trim()
                    .parse::<IpAddr>()
                    .map(|ip| r.contains(ip))
                    .unwrap_or(false);
                hit != *neg
            }
        }
    }

    fn compare(
        &self,
        labels: &mut EntryLabels,
        name: &str,
        op: CmpOp,
        v: f64,
        conv: impl Fn(&str) -> Option<f64>,
    ) -> bool {
        if labels.has_error() {
            return true;
        }
        let Some(raw) = labels.get(name) else {
            return false;
        };
        match conv(raw) {
            Some(x) => cmp(op, x, v),
            None => {
                let details = format!("{name}: cannot convert {raw:?}");
                labels.set_error("LabelFilterErr", &details);
                true
            }
        }
    }
}

fn cmp(op: CmpOp, a: f64, b: f64) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Neq => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Gte => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Lte => a <= b,
    }
}

/// Go `time.ParseDuration` → seconds (`1h2m3.5s`, `250ms`, `-1.5h`, `0`).
pub fn parse_go_duration(s: &str) -> Option<f64> {
    silt_logql::units::parse_go_duration(s.trim()).map(|ns| ns as f64 / 1e9)
}

/// go-humanize `ParseBytes`: `5KiB`, `5 KB`, `1.5MB`, `100`.
pub fn parse_bytes(s: &str) -> Option<u64> {
    silt_logql::units::parse_bytes(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lf(op: LineFilterOp, vals: &[&str]) -> CompiledLineFilter {
        CompiledLineFilter::new(&LineFilter {
            op,
            values: vals
                .iter()
                .map(|v| LineFilterValue::Str(v.to_string()))
                .collect(),
        })
        .unwrap()
    }

    #[test]
    fn line_filters() {
        assert!(lf(LineFilterOp::Contains, &["err", "fatal"]).keep("a fatal b"));
        assert!(!lf(LineFilterOp::NotContains, &["err", "fatal"]).keep("a fatal b"));
        assert!(lf(LineFilterOp::NotContains, &["err", "fatal"]).keep("fine"));
        assert!(lf(LineFilterOp::Contains, &[""]).keep("anything"));
        assert!(lf(LineFilterOp::Match, &["(?i)TIME"]).keep("timeout"));
        assert!(lf(LineFilterOp::Pattern, &["<_> - <_> [<_>] \"GET <_>"])
            .keep("1.2.3.4 - - [x] \"GET /a HTTP\""));
        assert!(!lf(LineFilterOp::Pattern, &["<_>Volume<_>"]).keep("Volume at start"));
        assert!(lf(LineFilterOp::Pattern, &["<_>Volume<_>"]).keep("a Volume b"));
        assert!(lf(LineFilterOp::NotPattern, &["<_>Volume<_>"]).keep("Pod started"));
        assert!(CompiledLineFilter::new(&LineFilter {
            op: LineFilterOp::Match,
            values: vec![LineFilterValue::Str("(".into())]
        })
        .is_err());
    }

    #[test]
    fn ip_filters() {
        let r = IpRange::parse("192.168.0.0/16").unwrap();
        assert!(ips_in("from 192.168.4.2:80 ok").any(|ip| r.contains(ip)));
        assert!(!ips_in("from 10.0.0.1 ok").any(|ip| r.contains(ip)));
        assert!(IpRange::parse("1.2.3.4-1.2.3.9")
            .unwrap()
            .contains("1.2.3.5".parse().unwrap()));
    }

    #[test]
    fn conversions() {
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("250ms"), Some(0.25));
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(parse_bytes("5KiB"), Some(5120));
        assert_eq!(parse_bytes("3 MB"), Some(3_000_000));
        assert_eq!(parse_bytes("12"), Some(12));
    }
}
