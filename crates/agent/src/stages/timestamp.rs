//! `timestamp`: sets the entry time from an extracted value using Go layouts
//! (`2006-01-02 15:04:05.000`), Go's named layouts (RFC3339, ANSIC, …) or Unix/UnixMs/
//! UnixUs/UnixNs. A missing year means the current year. Time zones: UTC or a fixed
//! offset (`location: "+02:00"`); IANA zone names are not supported.

use super::MapStage;
use crate::Record;
use serde::Deserialize;

/// `timestamp` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// Extracted key holding the time.
    pub source: String,
    /// Layout or name.
    pub format: String,
    /// Tried in order when `format` fails.
    #[serde(default)]
    pub fallback_formats: Vec<String>,
    /// Zone for layouts without one: `UTC` or `±hh:mm`.
    #[serde(default)]
    pub location: Option<String>,
    /// `fudge` (default: previous timestamp + 1ns) or `skip` (keep the read time).
    #[serde(default)]
    pub action_on_failure: OnFailure,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    Fudge,
    Skip,
}

pub struct Timestamp {
    c: TimestampConfig,
    formats: Vec<String>,
    offset_s: i64,
    last: Option<i64>,
}

fn named(f: &str) -> &str {
    match f {
        "ANSIC" => "Mon Jan _2 15:04:05 2006",
        "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
        "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
        "RFC822" => "02 Jan 06 15:04 MST",
        "RFC822Z" => "02 Jan 06 15:04 -0700",
        "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
        "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
        "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
        "Kitchen" => "3:04PM",
        "Stamp" => "Jan _2 15:04:05",
        "StampMilli" => "Jan _2 15:04:05.000",
        "StampMicro" => "Jan _2 15:04:05.000000",
        "StampNano" => "Jan _2 15:04:05.000000000",
        "DateTime" => "2006-01-02 15:04:05",
        other => other,
    }
}

fn parse_offset(s: &str) -> Option<i64> {
    if s.eq_ignore_ascii_case("utc") || s == "Etc/UTC" || s == "Z" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 4 || rest.len() > 5 {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some(sign * (h * 3600 + m * 60))
}

impl Timestamp {
    pub fn new(c: &TimestampConfig) -> Result<Timestamp, String> {
        let offset_s = match &c.location {
            None => 0,
            Some(l) => parse_offset(l).ok_or_else(|| {
                format!("location {l:?}: only UTC or ±hh:mm offsets are supported")
            })?,
        };
        let formats: Vec<String> = std::iter::once(&c.format)
            .chain(&c.fallback_formats)
            .map(|f| named(f).to_string())
            .collect();
        Ok(Timestamp {
            c: c.clone(),
            formats,
            offset_s,
            last: None,
        })
    }
}

impl MapStage for Timestamp {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(v) = rec.extracted.get(&self.c.source) else {
            return true;
        };
        let parsed = self
            .formats
            .iter()
            .find_map(|f| parse_time(f, v, self.offset_s));
        match parsed {
            Some(ts) => {
                rec.entry.ts = ts;
                self.last = Some(ts);
            }
            None => {
                if self.c.action_on_failure == OnFailure::Fudge {
                    if let Some(l) = self.last {
                        rec.entry.ts = l + 1;
                        self.last = Some(l + 1);
                    }
                }
            }
        }
        true
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Parses `v` with a Go layout or Unix name into ns since the epoch.
pub fn parse_time(layout: &str, v: &str, default_offset_s: i64) -> Option<i64> {
    let v = v.trim();
    let unix = |scale: i64| -> Option<i64> {
        if let Ok(n) = v.parse::<i64>() {
            return n.checked_mul(scale);
        }
        let f: f64 = v.parse().ok()?;
        Some((f * scale as f64) as i64)
    };
    match layout {
        "RFC3339" | "RFC3339Nano" => return silt_proto::time::parse_rfc3339(v),
        "Unix" => return unix(1_000_000_000),
        "UnixMs" => return unix(1_000_000),
        "UnixUs" => return unix(1_000),
        "UnixNs" => return unix(1),
        _ => {}
    }
    let (mut year, mut month, mut day, mut hour, mut min, mut sec, mut nanos) =
        (None, 1i64, 1i64, 0i64, 0i64, 0i64, 0i64);
    let mut pm: Option<bool> = None;
    let mut offset: Option<i64> = None;
    let (mut l, mut s) = (layout, v);
    let num = |s: &mut &str, min_d: usize, max_d: usize| -> Option<i64> {
        let n = s.bytes().take(max_d).take_while(u8::is_ascii_digit).count();
        if n < min_d {
            return None;
        }
        let r = s[..n].parse().ok();
        *s = &s[n..];
        r
    };
    while !l.is_empty() {
        let tok = |p: &str| l.starts_with(p);
        if tok("2006") {
            year = Some(num(&mut s, 4, 4)?);
            l = &l[4..];
        } else if tok("January") || tok("Jan") {
            let full = tok("January");
            let i = MONTHS.iter().position(|m| {
                let m = if full { *m } else { &m[..3] };
                s.get(..m.len()).is_some_and(|p| p.eq_ignore_ascii_case(m))
            })?;
            let n = if full { MONTHS[i].len() } else { 3 };
            month = i as i64 + 1;
            s = &s[n..];
            l = &l[if full { 7 } else { 3 }..];
        } else if tok("Monday") || tok("Mon") {
            let full = tok("Monday");
            let n = DAYS
                .iter()
                .map(|d| if full { *d } else { &d[..3] })
                .find(|d| s.get(..d.len()).is_some_and(|p| p.eq_ignore_ascii_case(d)))?
                .len();
            s = &s[n..];
            l = &l[if full { 6 } else { 3 }..];
        } else if tok("01") {
            month = num(&mut s, 2, 2)?;
            l = &l[2..];
        } else if tok("02") {
            day = num(&mut s, 2, 2)?;
            l = &l[2..];
        } else if tok("_2") {
            s = s.strip_prefix(' ').unwrap_or(s);
            day = num(&mut s, 1, 2)?;
            l = &l[2..];
        } else if tok("06") {
            year = Some(2000 + num(&mut s, 2, 2)?);
            l = &l[2..];
        } else if tok("15") {
            hour = num(&mut s, 1, 2)?;
            l = &l[2..];
        } else if tok("03") {
            hour = num(&mut s, 2, 2)?;
            l = &l[2..];
        } else if tok("04") {
            min = num(&mut s, 2, 2)?;
            l = &l[2..];
        } else if tok("05") {
            sec = num(&mut s, 2, 2)?;
            l = &l[2..];
        } else if tok(".000") || tok(".999") || tok(",000") || tok(",999") {
            let n = 1 + l[1..]
                .bytes()
                .take_while(|&b| b == b'0' || b == b'9')
                .count();
            l = &l[n..];
            if let Some(rest) = s.strip_prefix(['.', ',']) {
                let d = rest.bytes().take_while(u8::is_ascii_digit).count();
                let digits = &rest[..d];
                let mut f: i64 = 0;
                for (i, c) in digits.bytes().enumerate().take(9) {
                    f += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
                }
                nanos = f;
                s = &rest[d..];
            }
        } else if tok("PM") || tok("pm") {
            let p = s.get(..2)?.to_ascii_uppercase();
            pm = Some(p == "PM");
            s = &s[2..];
            l = &l[2..];
        } else if tok("Z07:00") || tok("-07:00") || tok("Z0700") || tok("-0700") {
            let n = if tok("Z07:00") || tok("-07:00") { 6 } else { 5 };
            l = &l[n..];
            if let Some(r) = s.strip_prefix('Z') {
                offset = Some(0);
                s = r;
            } else {
                let len = if s.as_bytes().get(3) == Some(&b':') {
                    6
                } else {
                    5
                };
                offset = Some(parse_offset(s.get(..len)?)?);
                s = &s[len..];
            }
        } else if tok("MST") {
            let n = s.bytes().take_while(u8::is_ascii_alphabetic).count();
            let zone = &s[..n];
            // Only UTC-like abbreviations are unambiguous.
            if matches!(zone, "UTC" | "GMT" | "Z") {
                offset = Some(0);
            }
            s = &s[n..];
            l = &l[3..];
        } else if tok("1") && !l[1..].starts_with(|c: char| c.is_ascii_digit()) {
            month = num(&mut s, 1, 2)?;
            l = &l[1..];
        } else if tok("2") {
            day = num(&mut s, 1, 2)?;
            l = &l[1..];
        } else if tok("3") {
            hour = num(&mut s, 1, 2)?;
            l = &l[1..];
        } else if tok("4") {
            min = num(&mut s, 1, 2)?;
            l = &l[1..];
        } else if tok("5") {
            sec = num(&mut s, 1, 2)?;
            l = &l[1..];
        } else {
            let c = l.chars().next()?;
            s = s.strip_prefix(c)?;
            l = &l[c.len_utf8()..];
        }
    }
    if !s.is_empty() {
        return None;
    }
    if let Some(pm) = pm {
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let year = match year {
        Some(y) => y,
        None => 1970 + (crate::now_ns() / 1_000_000_000 / 86_400 * 400 / 146_097),
    };
    let days = silt_proto::time::days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset.unwrap_or(default_offset_s);
    Some(secs * 1_000_000_000 + nanos)
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const T0: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

    #[test]
    fn layouts() {
        assert_eq!(parse_time("RFC3339", "2024-01-01T00:00:00Z", 0), Some(T0));
        assert_eq!(
            parse_time("2006-01-02 15:04:05.000", "2024-01-01 00:00:01.250", 0),
            Some(T0 + 1_250_000_000)
        );
        assert_eq!(
            parse_time("2006-01-02T15:04:05-07:00", "2024-01-01T02:00:00+02:00", 0),
            Some(T0)
        );
        assert_eq!(
            parse_time(named("RFC1123Z"), "Mon, 01 Jan 2024 00:00:00 +0000", 0),
            Some(T0)
        );
        assert_eq!(
            parse_time(named("ANSIC"), "Mon Jan  1 00:00:00 2024", 0),
            Some(T0)
        );
        assert_eq!(
            parse_time(
                "02/Jan/2006:15:04:05 -0700",
                "01/Jan/2024:01:00:00 +0100",
                0
            ),
            Some(T0)
        );
        assert_eq!(parse_time("Unix", "1704067200", 0), Some(T0));
        assert_eq!(
            parse_time("UnixMs", "1704067200500", 0),
            Some(T0 + 500_000_000)
        );
        assert_eq!(
            parse_time("Unix", "1704067200.5", 0),
            Some(T0 + 500_000_000)
        );
        assert_eq!(
            parse_time("3:04PM 2006-01-02", "1:00PM 2024-01-01", 0),
            Some(T0 + 13 * 3_600_000_000_000)
        );
        assert_eq!(
            parse_time("2006-01-02", "2024-01-01", 3600),
            Some(T0 - 3_600_000_000_000)
        );
        assert_eq!(parse_time("2006-01-02", "2024-13-01", 0), None);
        assert_eq!(parse_time("2006-01-02", "2024-01-01 trailing", 0), None);
        assert_eq!(parse_time("Jan _2 15:04:05", "garbage", 0), None);
    }

    #[test]
    fn stage_fallback_and_fudge() {
        let y = "- regex: {expression: '^(?P<t>\\S+)'}\n- timestamp: {source: t, format: UnixMs, fallback_formats: [RFC3339]}\n";
        let mut p = pipeline(y);
        let mut out = vec![];
        p.process(rec("2024-01-01T00:00:00Z a"), &mut out);
        p.process(rec("bad b"), &mut out);
        p.process(rec("1704067200001 c"), &mut out);
        let ts: Vec<i64> = out.iter().map(|r| r.entry.ts).collect();
        assert_eq!(ts, vec![T0, T0 + 1, T0 + 1_000_000]);
        assert!(Timestamp::new(
            &serde_yaml::from_str("{source: t, format: Unix, location: Europe/Paris}").unwrap()
        )
        .is_err());
    }
}
