//! The time of a log line, read from the line.
//!
//! Recognised at the start of the line (after an optional `[`):
//!
//! * ISO 8601 / RFC 3339: `2024-05-01T10:00:00.123+0000` (Airflow ≥ 2), `2024-05-01
//!   10:00:00,123` (Python's `asctime`, Airflow 1.10), `2024-05-01, 10:00:00 UTC`; the
//!   fraction after `.` or `,`, the offset `Z`, `±hh:mm`, `±hhmm`, `±hh`, ` UTC`/` GMT`;
//!   without an offset the time is UTC;
//! * syslog: `<pri>1 <RFC 3339>` (RFC 5424) and `[<pri>]Mmm dd hh:mm:ss` (RFC 3164,
//!   read as UTC, the year taken from the hint and moved back one when that would put
//!   the line more than two days after it);
//! * common log format after `host ident user `: `[10/Oct/2000:13:55:36 -0700]`;
//! * a JSON object's `"timestamp"`, `"@timestamp"`, `"time"` or `"ts"` string (Airflow 3
//!   writes JSON task logs).
//!
//! A date without a time of day is not a timestamp.

use silt_proto::time::{civil_from_days, days_from_civil};

const NS: i64 = 1_000_000_000;
const DAY_NS: i64 = 86_400 * NS;

fn num(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    part.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn month(b: &[u8]) -> Option<i64> {
    const NAMES: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let m = b.get(..3)?;
    NAMES.iter().position(|n| &n[..] == m).map(|i| i as i64 + 1)
}

/// Seconds since the epoch of a civil date and time, ranges checked.
fn civil(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// `hh:mm:ss` at `at`.
fn clock(b: &[u8], at: usize) -> Option<(i64, i64, i64)> {
    if b.get(at + 2) != Some(&b':') || b.get(at + 5) != Some(&b':') {
        return None;
    }
    Some((num(b, at, 2)?, num(b, at + 3, 2)?, num(b, at + 6, 2)?))
}

/// A fraction of a second after `.` or `,` at `at`: (nanoseconds, end).
fn fraction(b: &[u8], at: usize) -> (i64, usize) {
    if !matches!(b.get(at), Some(b'.' | b',')) || !b.get(at + 1).is_some_and(u8::is_ascii_digit) {
        return (0, at);
    }
    let mut i = at + 1;
    let mut frac = 0i64;
    while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
        if i - at <= 9 {
            frac = frac * 10 + i64::from(c - b'0');
        }
        i += 1;
    }
    for _ in (i - at - 1)..9 {
        frac *= 10;
    }
    (frac, i)
}

/// `±hh[:mm|mm]` at `at`: (offset seconds, end).
fn numeric_offset(b: &[u8], at: usize) -> Option<(i64, usize)> {
    let sign = match b.get(at)? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h = num(b, at + 1, 2)?;
    let (m, end) = if b.get(at + 3) == Some(&b':') {
        (num(b, at + 4, 2)?, at + 6)
    } else if let Some(m) = num(b, at + 3, 2) {
        (m, at + 5)
    } else {
        (0, at + 3)
    };
    (h <= 23 && m <= 59).then_some((sign * (h * 3600 + m * 60), end))
}

/// ISO 8601 / RFC 3339 date and time at the start of `b`: (ns since the epoch, length).
pub(crate) fn parse_iso(b: &[u8]) -> Option<(i64, usize)> {
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, mo, d) = (num(b, 0, 4)?, num(b, 5, 2)?, num(b, 8, 2)?);
    let t = match (b.get(10)?, b.get(11)) {
        (b'T' | b't' | b' ', _) => 11,
        (b',', Some(b' ')) => 12,
        _ => return None,
    };
    let (h, mi, s) = clock(b, t)?;
    let secs = civil(y, mo, d, h, mi, s)?;
    let (frac, mut i) = fraction(b, t + 8);
    let mut offset = 0;
    match b.get(i) {
        Some(b'Z' | b'z') => i += 1,
        Some(b'+' | b'-') => {
            if let Some((o, end)) = numeric_offset(b, i) {
                offset = o;
                i = end;
            }
        }
        _ => {
            let rest = b.get(i..).unwrap_or_default();
            for zone in [&b" UTC"[..], b" GMT", b"UTC"] {
                if rest.starts_with(zone) {
                    i += zone.len();
                    break;
                }
            }
        }
    }
    Some(((secs - offset).checked_mul(NS)?.checked_add(frac)?, i))
}

/// Common log format time `10/Oct/2000:13:55:36 -0700` at the start of `b`.
fn parse_clf(b: &[u8]) -> Option<i64> {
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') || b.get(11) != Some(&b':') {
        return None;
    }
    let (d, mo, y) = (num(b, 0, 2)?, month(b.get(3..)?)?, num(b, 7, 4)?);
    let (h, mi, s) = clock(b, 12)?;
    let secs = civil(y, mo, d, h, mi, s)?;
    let (frac, i) = fraction(b, 20);
    let offset = match b.get(i) {
        Some(b' ') => numeric_offset(b, i + 1).map_or(0, |o| o.0),
        _ => 0,
    };
    (secs - offset).checked_mul(NS)?.checked_add(frac)
}

/// RFC 3164 `Mmm dd hh:mm:ss` (day space-padded or not) at the start of `b`, in the year
/// of `hint` (or the one before, for December lines read in January).
fn parse_bsd(b: &[u8], hint: i64) -> Option<i64> {
    let mo = month(b)?;
    if b.get(3) != Some(&b' ') {
        return None;
    }
    let (d, t) = match b.get(4)? {
        b' ' => (num(b, 5, 1)?, 7),
        _ => (num(b, 4, 2)?, 7),
    };
    if b.get(t - 1) != Some(&b' ') {
        return None;
    }
    let (h, mi, s) = clock(b, t)?;
    let (frac, _) = fraction(b, t + 8);
    let year = civil_from_days(hint.div_euclid(DAY_NS)).0;
    let at = |y| Some(civil(y, mo, d, h, mi, s)? * NS + frac);
    let ts = at(year)?;
    if ts > hint.saturating_add(2 * DAY_NS) {
        at(year - 1)
    } else {
        Some(ts)
    }
}

/// Common log format: `host ident user [time] …`.
fn parse_access_log(b: &[u8]) -> Option<i64> {
    let mut spaces = 0;
    for (i, &c) in b.iter().enumerate().take(512) {
        if c == b' ' {
            spaces += 1;
            if spaces == 3 {
                return (b.get(i + 1) == Some(&b'[')).then(|| parse_clf(&b[i + 2..]))?;
            }
        }
    }
    None
}

/// A JSON object's time field.
fn parse_json(line: &str) -> Option<i64> {
    for key in ["\"timestamp\"", "\"@timestamp\"", "\"time\"", "\"ts\""] {
        let Some(at) = line.find(key) else { continue };
        let rest = line[at + key.len()..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        if let Some(v) = rest.trim_start().strip_prefix('"') {
            if let Some((ts, _)) = parse_iso(v.as_bytes()) {
                return Some(ts);
            }
        }
    }
    None
}

/// The time a line starts with, in nanoseconds since the epoch (see the module docs for
/// the formats); `hint` (e.g. the file's mtime) supplies the year syslog lines omit.
pub fn parse_line_time(line: &str, hint: i64) -> Option<i64> {
    let b = line.as_bytes();
    match *b.first()? {
        b'[' => {
            let inner = &b[1..];
            parse_iso(inner)
                .map(|t| t.0)
                .or_else(|| parse_clf(inner))
                .or_else(|| parse_bsd(inner, hint))
        }
        b'0'..=b'9' => parse_iso(b).map(|t| t.0).or_else(|| parse_access_log(b)),
        b'<' => {
            let end = b.iter().take(6).position(|&c| c == b'>')?;
            let rest = &b[end + 1..];
            match rest {
                [b'1', b' ', ts @ ..] => parse_iso(ts).map(|t| t.0),
                _ => parse_bsd(rest, hint),
            }
        }
        b'{' => parse_json(line),
        b'A'..=b'Z' => parse_bsd(b, hint).or_else(|| parse_access_log(b)),
        b'a'..=b'z' => parse_access_log(b),
        _ => None,
    }
}

/// What a [`LineClock`] carries from one line to the next; saved with a file's position
/// so that a resumed read stamps lines exactly as a read from the start would.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockState {
    /// Time of the record being continued (the last time read from a line).
    pub record: Option<i64>,
    /// Base time and the time given to the previous line.
    pub prev: Option<(i64, i64)>,
}

/// Stamps the lines of one file in order.
///
/// A line's base time is the time it starts with, else its record's (the last line that
/// had one: traceback lines stay with the record they continue), else the caller's
/// fallback (the file's mtime, or the read time). Each physical line stays one entry; a
/// line whose base is the previous line's (or falls between that base and the time given
/// to the previous line) gets the previous time + 1 ns, so a record reads back in file
/// order and repeated lines (blank lines, repeated frames) are not merged by the server's
/// removal of exact duplicates. A line whose time goes back keeps it.
#[derive(Clone, Debug)]
pub struct LineClock {
    state: ClockState,
    hint: i64,
}

impl LineClock {
    /// A clock for a file read from its start; `hint` gives syslog lines their year.
    pub fn new(hint: i64) -> LineClock {
        LineClock::resume(hint, ClockState::default())
    }

    /// A clock continuing from a saved state.
    pub fn resume(hint: i64, state: ClockState) -> LineClock {
        LineClock { state, hint }
    }

    /// The state to save with the position after the last stamped line.
    pub fn state(&self) -> ClockState {
        self.state
    }

    /// The time of `line`; `fallback` is asked only while no line had a time.
    pub fn stamp(&mut self, line: &str, fallback: impl FnOnce() -> i64) -> i64 {
        let base = match parse_line_time(line, self.hint) {
            Some(t) => {
                self.state.record = Some(t);
                t
            }
            None => self.state.record.unwrap_or_else(fallback),
        };
        let ts = match self.state.prev {
            Some((prev_base, last)) if base >= prev_base && base <= last => last.saturating_add(1),
            _ => base,
        };
        self.state.prev = Some((base, ts));
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-05-01T10:00:00Z.
    const T: i64 = 1_714_557_600 * NS;
    const MS: i64 = 1_000_000;

    fn at(line: &str) -> Option<i64> {
        parse_line_time(line, T)
    }

    #[test]
    fn airflow_formats() {
        let ms123 = T + 123 * MS;
        assert_eq!(
            at("[2024-05-01T10:00:00.123+0000] {taskinstance.py:123} INFO - start"),
            Some(ms123)
        );
        assert_eq!(
            at("[2024-05-01T12:00:00.123+0200] {x.py:1} INFO - a"),
            Some(ms123)
        );
        assert_eq!(
            at("[2024-05-01 10:00:00,123] {models.py:1} INFO - 1.10"),
            Some(ms123)
        );
        assert_eq!(at("[2024-05-01, 10:00:00 UTC] {x.py:1} INFO - ui"), Some(T));
        assert_eq!(
            at(r#"{"timestamp":"2024-05-01T10:00:00.123000Z","level":"info","event":"x"}"#),
            Some(ms123)
        );
        assert_eq!(
            at(r#"{"event": "x", "timestamp": "2024-05-01T10:00:00.123Z"}"#),
            Some(ms123)
        );
    }

    #[test]
    fn iso_and_rfc3339() {
        assert_eq!(at("2024-05-01T10:00:00Z msg"), Some(T));
        assert_eq!(at("2024-05-01T10:00:00.000000001Z"), Some(T + 1));
        assert_eq!(at("2024-05-01T10:00:00.1234567891Z"), Some(T + 123_456_789));
        assert_eq!(at("2024-05-01T11:30:00+01:30 x"), Some(T));
        assert_eq!(at("2024-05-01T08:00:00-02 x"), Some(T));
        assert_eq!(at("2024-05-01 10:00:00 level=info"), Some(T));
        assert_eq!(at("2024-05-01 10:00:00 GMT x"), Some(T));
        assert_eq!(at("2024-05-01 10:00:00-not-an-offset"), Some(T));
        assert_eq!(at("2024-05-01"), None);
        assert_eq!(at("[2024-05-01] {x.py:1} INFO - date only"), None);
        assert_eq!(at("2024-13-01T10:00:00Z"), None);
        assert_eq!(at("2024-05-01T25:00:00Z"), None);
        assert_eq!(at("12345 not a time"), None);
    }

    #[test]
    fn common_log_and_syslog() {
        let clf = 971_211_336 * NS; // 10/Oct/2000:13:55:36 -0700
        assert_eq!(
            at(r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326"#),
            Some(clf)
        );
        assert_eq!(at("[10/Oct/2000:13:55:36 -0700] x"), Some(clf));
        assert_eq!(at("host - - [10/Oct/2000:20:55:36 +0000] x"), Some(clf));
        assert_eq!(at("Traceback (most recent call last):"), None);
        assert_eq!(at("ValueError: [10/Oct/2000:13:55:36 -0700]"), None);
        // RFC 3164 takes the hint's year.
        assert_eq!(at("May  1 10:00:00 host cron[1]: x"), Some(T));
        assert_eq!(at("May 01 10:00:00 host cron[1]: x"), Some(T));
        assert_eq!(at("<13>May  1 10:00:00 host x"), Some(T));
        // A December line read with a January hint is from the year before.
        let jan = (days_from_civil(2025, 1, 2) * 86_400) * NS;
        assert_eq!(
            parse_line_time("Dec 31 23:00:00 h x", jan),
            Some((days_from_civil(2024, 12, 31) * 86_400 + 23 * 3600) * NS)
        );
        assert_eq!(
            at("<165>1 2024-05-01T10:00:00.123Z host app - - msg"),
            Some(T + 123 * MS)
        );
        assert_eq!(at("Mayday 1 10:00:00"), None);
    }

    #[test]
    fn continuation_lines_keep_their_record_in_order() {
        let mut c = LineClock::new(T);
        let mtime = T - 3600 * NS;
        let lines = [
            "no timestamp yet",
            "still none",
            "[2024-05-01T10:00:00.000+0000] {x.py:1} ERROR - failed",
            "Traceback (most recent call last):",
            "",
            "",
            "ValueError: boom",
            "[2024-05-01T10:00:00.000+0000] {x.py:2} INFO - same millisecond",
            "[2024-05-01T10:00:01.000+0000] {x.py:3} INFO - next",
            "[2024-05-01T09:00:00.000+0000] {x.py:4} INFO - clock went back",
            "after it",
        ];
        let got: Vec<i64> = lines.iter().map(|l| c.stamp(l, || mtime)).collect();
        assert_eq!(
            got,
            vec![
                mtime,
                mtime + 1,
                T,
                T + 1,
                T + 2,
                T + 3,
                T + 4,
                T + 5,
                T + 1000 * MS,
                T - 3600 * NS,
                T - 3600 * NS + 1
            ]
        );
        // Resuming from a saved state stamps the rest exactly as reading on would.
        let mut a = LineClock::new(T);
        let mut saved = None;
        let mut first = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            first.push(a.stamp(l, || mtime));
            if i == 4 {
                saved = Some(a.state());
            }
        }
        let mut b = LineClock::resume(T, saved.unwrap());
        let rest: Vec<i64> = lines[5..].iter().map(|l| b.stamp(l, || 0)).collect();
        assert_eq!(rest, first[5..]);
    }

    #[test]
    fn fallback_is_asked_only_without_a_record() {
        let mut c = LineClock::new(T);
        let mut asked = 0;
        c.stamp("plain", || {
            asked += 1;
            T
        });
        c.stamp("2024-05-01T11:00:00Z x", || unreachable!());
        c.stamp("plain again", || unreachable!());
        assert_eq!(asked, 1);
    }
}
