//! `timestamp`: sets the entry time from an extracted value using Go layouts
//! (`2006-01-02 15:04:05.000`), Go's named layouts (RFC3339, ANSIC, …) or Unix/UnixMs/
//! UnixUs/UnixNs. A missing year means the current year. `location` is UTC, a fixed
//! offset (`+02:00`) or an IANA zone (`Europe/Berlin`, with DST).

use super::MapStage;
use crate::Record;
use serde::Deserialize;
use silt_gotime::Location;

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
    /// Zone for layouts without one: `UTC`, `±hh:mm` or an IANA name.
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
    loc: Location,
    last: Option<i64>,
}

impl Timestamp {
    pub fn new(c: &TimestampConfig) -> Result<Timestamp, String> {
        let loc = match &c.location {
            None => Location::utc(),
            Some(l) => Location::load(l).ok_or_else(|| {
                format!("location {l:?}: not UTC, a ±hh:mm offset or a known IANA zone")
            })?,
        };
        let formats: Vec<String> = std::iter::once(&c.format)
            .chain(&c.fallback_formats)
            .map(|f| match f.as_str() {
                // RFC3339 keeps the fast path in parse_time.
                "RFC3339" | "RFC3339Nano" => f.clone(),
                _ => silt_gotime::named_layout(f).unwrap_or(f).to_string(),
            })
            .collect();
        Ok(Timestamp {
            c: c.clone(),
            formats,
            loc,
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
            .find_map(|f| parse_time(f, v, &self.loc));
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

/// Parses `v` with a Go layout or Unix name into ns since the epoch.
pub fn parse_time(layout: &str, v: &str, loc: &Location) -> Option<i64> {
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
    let year = silt_gotime::GoTime::from_unix_nanos(crate::now_ns()).year();
    silt_gotime::parse(layout, v, loc, year)
        .ok()
        .map(|t| t.unix_nanos())
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    const T0: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z

    fn utc() -> Location {
        Location::utc()
    }

    #[test]
    fn layouts() {
        assert_eq!(
            parse_time("RFC3339", "2024-01-01T00:00:00Z", &utc()),
            Some(T0)
        );
        assert_eq!(
            parse_time("2006-01-02 15:04:05.000", "2024-01-01 00:00:01.250", &utc()),
            Some(T0 + 1_250_000_000)
        );
        assert_eq!(
            parse_time(
                "2006-01-02T15:04:05-07:00",
                "2024-01-01T02:00:00+02:00",
                &utc()
            ),
            Some(T0)
        );
        assert_eq!(
            parse_time(
                silt_gotime::named_layout("RFC1123Z").unwrap(),
                "Mon, 01 Jan 2024 00:00:00 +0000",
                &utc()
            ),
            Some(T0)
        );
        assert_eq!(
            parse_time(
                silt_gotime::named_layout("ANSIC").unwrap(),
                "Mon Jan  1 00:00:00 2024",
                &utc()
            ),
            Some(T0)
        );
        assert_eq!(
            parse_time(
                "02/Jan/2006:15:04:05 -0700",
                "01/Jan/2024:01:00:00 +0100",
                &utc()
            ),
            Some(T0)
        );
        assert_eq!(parse_time("Unix", "1704067200", &utc()), Some(T0));
        assert_eq!(
            parse_time("UnixMs", "1704067200500", &utc()),
            Some(T0 + 500_000_000)
        );
        assert_eq!(
            parse_time("Unix", "1704067200.5", &utc()),
            Some(T0 + 500_000_000)
        );
        assert_eq!(
            parse_time("3:04PM 2006-01-02", "1:00PM 2024-01-01", &utc()),
            Some(T0 + 13 * 3_600_000_000_000)
        );
        assert_eq!(
            parse_time(
                "2006-01-02",
                "2024-01-01",
                &Location::Fixed(3600, String::new())
            ),
            Some(T0 - 3_600_000_000_000)
        );
        assert_eq!(parse_time("2006-01-02", "2024-13-01", &utc()), None);
        assert_eq!(
            parse_time("2006-01-02", "2024-01-01 trailing", &utc()),
            None
        );
        assert_eq!(parse_time("Jan _2 15:04:05", "garbage", &utc()), None);
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
            &serde_yaml::from_str("{source: t, format: Unix, location: Mars/Olympus}").unwrap()
        )
        .is_err());
    }

    #[test]
    fn iana_location_and_missing_year() {
        let y = "- regex: {expression: '^(?P<t>.{19})'}\n- timestamp: {source: t, format: '2006-01-02 15:04:05', location: Europe/Berlin}\n";
        let mut p = pipeline(y);
        let mut out = vec![];
        p.process(rec("2024-01-01 01:00:00 winter"), &mut out);
        p.process(rec("2024-07-01 02:00:00 summer"), &mut out);
        let ts: Vec<i64> = out.iter().map(|r| r.entry.ts).collect();
        assert_eq!(ts, vec![T0, 1_719_792_000_000_000_000]);
        // Stamp has no year: the current one is used.
        let now_year = silt_gotime::GoTime::from_unix_nanos(crate::now_ns()).year();
        let ns = parse_time(
            silt_gotime::named_layout("Stamp").unwrap(),
            "Mar  1 00:00:00",
            &utc(),
        )
        .unwrap();
        assert_eq!(silt_gotime::GoTime::from_unix_nanos(ns).year(), now_year);
    }
}
