//! Go `time` layouts ("2006-01-02T15:04:05Z07:00"): formatting and `ParseInLocation`.
//!
//! Used by LogQL templates (`date`, `toDate`, `toDateInZone`) and the agent's `timestamp`
//! stage. Locations: UTC (Go's `Local` on a server without TZ), fixed `±hh:mm` offsets and
//! IANA zones with their DST rules from a bundled tzdb, so no zoneinfo is needed on disk.

use std::fmt::Write;

/// A point in time with the zone it is shown in (Go's `time.Time`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoTime {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second, `0..1e9`.
    pub nanos: u32,
    /// Zone offset east of UTC, seconds.
    pub offset: i32,
    /// Zone abbreviation ("UTC"); empty for a bare offset.
    pub zone: String,
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
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

impl GoTime {
    /// From Unix nanoseconds, in UTC.
    pub fn from_unix_nanos(ns: i64) -> GoTime {
        GoTime {
            secs: ns.div_euclid(1_000_000_000),
            nanos: ns.rem_euclid(1_000_000_000) as u32,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    /// Go's zero `time.Time` (what `toDate` returns for input it cannot parse).
    pub fn zero() -> GoTime {
        GoTime {
            secs: -62_135_596_800,
            nanos: 0,
            offset: 0,
            zone: "UTC".into(),
        }
    }

    /// The same instant shown in UTC.
    pub fn in_utc(&self) -> GoTime {
        GoTime {
            offset: 0,
            zone: "UTC".into(),
            ..self.clone()
        }
    }

    /// Unix nanoseconds, saturating outside Go's int64 range.
    pub fn unix_nanos(&self) -> i64 {
        (self.secs as i128 * 1_000_000_000 + self.nanos as i128)
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    fn civil(&self) -> Civil {
        let local = self.secs + self.offset as i64;
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let yday = days - days_from_civil(year, 1, 1) + 1;
        Civil {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: (sod / 60 % 60) as u32,
            second: (sod % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as usize,
            yday: yday as u32,
        }
    }

    /// Year in the time's zone.
    pub fn year(&self) -> i64 {
        self.civil().year
    }

    /// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    pub fn go_string(&self) -> String {
        format(self, "2006-01-02 15:04:05.999999999 -0700 MST")
    }
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
    yday: u32,
}

// Howard Hinnant's days/civil conversions (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * if m > 2 { m - 3 } else { m + 9 } + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    /// `-0700`-style; (colons, with seconds, hours only, Z for UTC)
    Offset {
        colon: bool,
        secs: bool,
        hours_only: bool,
        z: bool,
    },
    /// `.000` (fixed) or `.999` (trimmed); digits, separator.
    Frac {
        digits: usize,
        fixed: bool,
        sep: u8,
    },
}

/// Splits `layout` at its first layout element: (literal prefix, element, rest).
fn next_std(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout[i..].starts_with(s);
    for i in 0..b.len() {
        let hit = |n: usize, std: Std| Some((i, std, i + n));
        let found = match b[i] {
            b'J' if at(i, "January") => hit(7, Std::LongMonth),
            b'J' if at(i, "Jan") => hit(3, Std::Month),
            b'M' if at(i, "Monday") => hit(6, Std::LongWeekDay),
            b'M' if at(i, "Mon") => hit(3, Std::WeekDay),
            b'M' if at(i, "MST") => hit(3, Std::TZ),
            b'0' if at(i, "002") => hit(3, Std::ZeroYearDay),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => hit(
                2,
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][(b[i + 1] - b'1') as usize],
            ),
            b'1' if at(i, "15") => hit(2, Std::Hour),
            b'1' => hit(1, Std::NumMonth),
            b'2' if at(i, "2006") => hit(4, Std::LongYear),
            b'2' => hit(1, Std::Day),
            b'_' if at(i, "_2006") => {
                // a literal '_' followed by the year
                return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
            }
            b'_' if at(i, "__2") => hit(3, Std::UnderYearDay),
            b'_' if at(i, "_2") => hit(2, Std::UnderDay),
            b'3' => hit(1, Std::Hour12),
            b'4' => hit(1, Std::Minute),
            b'5' => hit(1, Std::Second),
            b'P' if at(i, "PM") => hit(2, Std::PM),
            b'p' if at(i, "pm") => hit(2, Std::Pm),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let rest = &layout[i + 1..];
                let off = |colon, secs, hours_only| Std::Offset {
                    colon,
                    secs,
                    hours_only,
                    z,
                };
                if rest.starts_with("070000") {
                    hit(7, off(false, true, false))
                } else if rest.starts_with("07:00:00") {
                    hit(9, off(true, true, false))
                } else if rest.starts_with("0700") {
                    hit(5, off(false, false, false))
                } else if rest.starts_with("07:00") {
                    hit(6, off(true, false, false))
                } else if rest.starts_with("07") {
                    hit(3, off(false, false, true))
                } else {
                    None
                }
            }
            b'.' | b',' if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    let std = Std::Frac {
                        digits: j - i - 1,
                        fixed: ch == b'0',
                        sep: b[i],
                    };
                    Some((i, std, j))
                }
            }
            _ => None,
        };
        if let Some((start, std, end)) = found {
            return (&layout[..start], Some(std), &layout[end..]);
        }
    }
    (layout, None, "")
}

/// Formats `t` with a Go layout.
pub fn format(t: &GoTime, layout: &str) -> String {
    let c = t.civil();
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    while !rest.is_empty() {
        let (prefix, std, tail) = next_std(rest);
        out.push_str(prefix);
        rest = tail;
        let Some(std) = std else { break };
        let hour12 = match c.hour % 12 {
            0 => 12,
            h => h,
        };
        let _ = match std {
            Std::LongMonth => write!(out, "{}", MONTHS[c.month as usize - 1]),
            Std::Month => write!(out, "{}", &MONTHS[c.month as usize - 1][..3]),
            Std::NumMonth => write!(out, "{}", c.month),
            Std::ZeroMonth => write!(out, "{:02}", c.month),
            Std::LongWeekDay => write!(out, "{}", DAYS[c.weekday]),
            Std::WeekDay => write!(out, "{}", &DAYS[c.weekday][..3]),
            Std::Day => write!(out, "{}", c.day),
            Std::UnderDay => write!(out, "{:>2}", c.day),
            Std::ZeroDay => write!(out, "{:02}", c.day),
            Std::UnderYearDay => write!(out, "{:>3}", c.yday),
            Std::ZeroYearDay => write!(out, "{:03}", c.yday),
            Std::Hour => write!(out, "{:02}", c.hour),
            Std::Hour12 => write!(out, "{hour12}"),
            Std::ZeroHour12 => write!(out, "{hour12:02}"),
            Std::Minute => write!(out, "{}", c.minute),
            Std::ZeroMinute => write!(out, "{:02}", c.minute),
            Std::Second => write!(out, "{}", c.second),
            Std::ZeroSecond => write!(out, "{:02}", c.second),
            Std::LongYear => write!(out, "{:04}", c.year),
            Std::Year => write!(out, "{:02}", c.year.rem_euclid(100)),
            Std::PM => write!(out, "{}", if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => write!(out, "{}", if c.hour >= 12 { "pm" } else { "am" }),
            Std::TZ => {
                if t.zone.is_empty() {
                    write_offset(&mut out, t.offset, false, false, false);
                } else {
                    out.push_str(&t.zone);
                }
                Ok(())
            }
            Std::Offset {
                colon,
                secs,
                hours_only,
                z,
            } => {
                if z && t.offset == 0 {
                    out.push('Z');
                } else {
                    write_offset(&mut out, t.offset, colon, secs, hours_only);
                }
                Ok(())
            }
            Std::Frac { digits, fixed, sep } => {
                let all = format!("{:09}", t.nanos);
                let mut frac = &all[..digits.min(9)];
                if !fixed {
                    frac = frac.trim_end_matches('0');
                }
                if !frac.is_empty() {
                    out.push(sep as char);
                    out.push_str(frac);
                }
                Ok(())
            }
        };
    }
    out
}

fn write_offset(out: &mut String, offset: i32, colon: bool, secs: bool, hours_only: bool) {
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.unsigned_abs();
    let _ = write!(out, "{sign}{:02}", a / 3600);
    if hours_only {
        return;
    }
    let sep = if colon { ":" } else { "" };
    let _ = write!(out, "{sep}{:02}", a / 60 % 60);
    if secs {
        let _ = write!(out, "{sep}{:02}", a % 60);
    }
}

/// Where a wall-clock time is: Go's `*time.Location`.
#[derive(Clone, Debug)]
pub enum Location {
    /// A fixed offset east of UTC (seconds) and its name ("UTC"; empty for a bare offset).
    Fixed(i32, String),
    /// An IANA zone.
    Zone(jiff::tz::TimeZone),
}

impl Location {
    /// UTC.
    pub fn utc() -> Location {
        Location::Fixed(0, "UTC".into())
    }

    /// Go's `time.LoadLocation`, plus fixed `±hh:mm` offsets; `None` if unknown.
    pub fn load(name: &str) -> Option<Location> {
        match name {
            "" | "UTC" | "Local" | "Etc/UTC" | "GMT" | "Z" => Some(Location::utc()),
            other if other.starts_with(['+', '-']) => ["-07:00", "-0700"]
                .iter()
                .find_map(|l| parse(l, other, &Location::utc(), 0).ok())
                .map(|t| Location::Fixed(t.offset, String::new())),
            other => jiff::tz::TimeZone::get(other).ok().map(Location::Zone),
        }
    }

    /// Offset and abbreviation in effect at Unix second `secs`.
    pub fn at(&self, secs: i64) -> (i32, String) {
        match self {
            Location::Fixed(o, n) => (*o, n.clone()),
            Location::Zone(tz) => match jiff::Timestamp::from_second(secs) {
                Ok(ts) => {
                    let info = tz.to_offset_info(ts);
                    (info.offset().seconds(), info.abbreviation().to_string())
                }
                Err(_) => (0, "UTC".into()),
            },
        }
    }

    /// Offset for a wall-clock time given as seconds since 1970-01-01 local: Go's
    /// `time.Date` (guess with the offset at `local` read as UTC, then correct once), so
    /// a time in a DST gap moves forward and one in a fold takes the earlier offset.
    fn local_offset(&self, local: i64) -> i32 {
        let guess = self.at(local).0;
        self.at(local - guess as i64).0
    }

    /// Go's `lookupName`: the offset of abbreviation `abbr` near wall-clock `local`.
    fn lookup_abbrev(&self, abbr: &str, local: i64) -> Option<i32> {
        // At the time itself, then half a year either side (CEST named in winter).
        [0, -182 * 86_400, 182 * 86_400].iter().find_map(|d| {
            let t = local + d;
            let (o, n) = self.at(t - self.local_offset(t) as i64);
            (n == abbr).then_some(o)
        })
    }
}

/// Go's named layouts (`time.RFC3339` …) by name.
pub fn named_layout(name: &str) -> Option<&'static str> {
    Some(match name {
        "Layout" => "01/02 03:04:05PM '06 -0700",
        "ANSIC" => "Mon Jan _2 15:04:05 2006",
        "UnixDate" => "Mon Jan _2 15:04:05 MST 2006",
        "RubyDate" => "Mon Jan 02 15:04:05 -0700 2006",
        "RFC822" => "02 Jan 06 15:04 MST",
        "RFC822Z" => "02 Jan 06 15:04 -0700",
        "RFC850" => "Monday, 02-Jan-06 15:04:05 MST",
        "RFC1123" => "Mon, 02 Jan 2006 15:04:05 MST",
        "RFC1123Z" => "Mon, 02 Jan 2006 15:04:05 -0700",
        "RFC3339" => "2006-01-02T15:04:05Z07:00",
        "RFC3339Nano" => "2006-01-02T15:04:05.999999999Z07:00",
        "Kitchen" => "3:04PM",
        "Stamp" => "Jan _2 15:04:05",
        "StampMilli" => "Jan _2 15:04:05.000",
        "StampMicro" => "Jan _2 15:04:05.000000",
        "StampNano" => "Jan _2 15:04:05.000000000",
        "DateTime" => "2006-01-02 15:04:05",
        "DateOnly" => "2006-01-02",
        "TimeOnly" => "15:04:05",
        _ => return None,
    })
}

/// Go's `time.ParseInLocation`. A layout without a year gives `default_year` (Go: 0; the
/// agent passes the current year, as Promtail does).
pub fn parse(
    layout: &str,
    value: &str,
    loc: &Location,
    default_year: i64,
) -> Result<GoTime, String> {
    let bad = || format!("parsing time {value:?} as {layout:?}: cannot parse");
    let mut v = value;
    let mut rest = layout;
    let (mut year, mut month, mut day) = (default_year, 1u32, 1u32);
    let (mut hour, mut minute, mut second, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut yday: Option<u32> = None;
    let mut zone_found: Option<(i32, String)> = None;
    while !rest.is_empty() {
        let (prefix, std, tail) = next_std(rest);
        v = v.strip_prefix(prefix).ok_or_else(bad)?;
        rest = tail;
        let Some(std) = std else { break };
        match std {
            Std::LongYear => {
                if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    return Err(bad());
                }
                year = v[..4].parse().map_err(|_| bad())?;
                v = &v[4..];
            }
            Std::Year => {
                let (n, r) = fixed_digits(v, 2).ok_or_else(bad)?;
                year = if n >= 69 { 1900 + n } else { 2000 + n } as i64;
                v = r;
            }
            Std::LongMonth | Std::Month => {
                let (m, r) = lookup_name(v, &MONTHS, std == Std::LongMonth).ok_or_else(bad)?;
                month = m as u32 + 1;
                v = r;
            }
            Std::LongWeekDay | Std::WeekDay => {
                let (_, r) = lookup_name(v, &DAYS, std == Std::LongWeekDay).ok_or_else(bad)?;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, r) = digits(v, std == Std::ZeroMonth).ok_or_else(bad)?;
                month = n;
                v = r;
            }
            Std::Day | Std::ZeroDay | Std::UnderDay => {
                let s = if std == Std::UnderDay {
                    v.strip_prefix(' ').unwrap_or(v)
                } else {
                    v
                };
                let (n, r) = digits(s, std == Std::ZeroDay).ok_or_else(bad)?;
                day = n;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let s = v.trim_start_matches(' ');
                let (n, r) = fixed_digits(s, 3)
                    .or_else(|| digits(s, false))
                    .ok_or_else(bad)?;
                yday = Some(n);
                v = r;
            }
            Std::Hour | Std::Hour12 | Std::ZeroHour12 => {
                let (n, r) = digits(v, std != Std::Hour12).ok_or_else(bad)?;
                hour = n;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let (n, r) = digits(v, std == Std::ZeroMinute).ok_or_else(bad)?;
                minute = n;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let (n, r) = digits(v, std == Std::ZeroSecond).ok_or_else(bad)?;
                second = n;
                v = r;
                // Go accepts fractional seconds after seconds even if the layout has none.
                if !matches!(next_std(rest).1, Some(Std::Frac { .. })) {
                    if let Some((f, r)) = frac(v) {
                        nanos = f;
                        v = r;
                    }
                }
            }
            Std::Frac { fixed, .. } => match frac(v) {
                Some((f, r)) => {
                    nanos = f;
                    v = r;
                }
                None if !fixed => {}
                None => return Err(bad()),
            },
            Std::PM | Std::Pm => {
                let p = v.get(..2).ok_or_else(bad)?.to_ascii_uppercase();
                pm = Some(match p.as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(bad()),
                });
                v = &v[2..];
            }
            Std::TZ => {
                if let Some(r) = v.strip_prefix("UTC") {
                    zone_found = Some((0, "UTC".into()));
                    v = r;
                } else {
                    let n = v.bytes().take_while(u8::is_ascii_uppercase).count();
                    if !(3..=5).contains(&n) {
                        return Err(bad());
                    }
                    // Unknown abbreviation: Go keeps the name with offset 0.
                    zone_found = Some((0, v[..n].to_string()));
                    v = &v[n..];
                }
            }
            Std::Offset {
                colon,
                secs,
                hours_only,
                z,
            } => {
                if z && v.starts_with('Z') {
                    zone_found = Some((0, "UTC".into()));
                    v = &v[1..];
                    continue;
                }
                let sign = match v.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(bad()),
                };
                v = &v[1..];
                let (h, r) = fixed_digits(v, 2).ok_or_else(bad)?;
                v = r;
                let mut off = h as i32 * 3600;
                if !hours_only {
                    if colon {
                        v = v.strip_prefix(':').ok_or_else(bad)?;
                    }
                    let (m, r) = fixed_digits(v, 2).ok_or_else(bad)?;
                    v = r;
                    off += m as i32 * 60;
                    if secs {
                        if colon {
                            v = v.strip_prefix(':').ok_or_else(bad)?;
                        }
                        let (s, r) = fixed_digits(v, 2).ok_or_else(bad)?;
                        v = r;
                        off += s as i32;
                    }
                }
                zone_found = Some((sign * off, String::new()));
            }
        }
    }
    if !v.is_empty() {
        return Err(format!("parsing time {value:?}: extra text: {v:?}"));
    }
    if let Some(p) = pm {
        if hour > 12 {
            return Err(bad());
        }
        hour = match (p, hour) {
            (true, h) if h < 12 => h + 12,
            (false, 12) => 0,
            (_, h) => h,
        };
    }
    if let Some(yd) = yday {
        let days = days_from_civil(year, 1, 1) + yd as i64 - 1;
        let (_, m, d) = civil_from_days(days);
        month = m;
        day = d;
    }
    let month_days = [
        31,
        28 + u32::from(is_leap(year)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(format!("parsing time {value:?}: value out of range"));
    }
    let local = days_from_civil(year, month, day) * 86_400
        + hour as i64 * 3600
        + minute as i64 * 60
        + second as i64;
    // Without a zone in the value the location converts; the time is then shown with the
    // offset in effect at that instant (a time in a DST gap moves on).
    let utc_offset = zone_found.is_none().then(|| loc.local_offset(local));
    let (offset, zone) = match zone_found {
        None => loc.at(local - utc_offset.unwrap_or(0) as i64),
        // A numeric offset takes the location's name when the location has that offset then.
        Some((off, name)) if name.is_empty() => match loc.at(local - off as i64) {
            (o, n) if o == off => (o, n),
            _ => (off, name),
        },
        Some((_, name)) if name == "UTC" => (0, name),
        // An abbreviation the location knows gets its offset; others are recorded with 0.
        Some((_, name)) => (loc.lookup_abbrev(&name, local).unwrap_or(0), name),
    };
    Ok(GoTime {
        secs: local - utc_offset.unwrap_or(offset) as i64,
        nanos,
        offset,
        zone,
    })
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Exactly `n` digits.
fn fixed_digits(v: &str, n: usize) -> Option<(u32, &str)> {
    let d = v.get(..n)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((d.parse().ok()?, &v[n..]))
}

/// One or two digits (exactly two when `zero`).
fn digits(v: &str, zero: bool) -> Option<(u32, &str)> {
    if zero {
        return fixed_digits(v, 2);
    }
    let n = v.bytes().take(2).take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((v[..n].parse().ok()?, &v[n..]))
}

/// `.123…` → nanoseconds.
fn frac(v: &str) -> Option<(u32, &str)> {
    let rest = v.strip_prefix(['.', ','])?;
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let mut ns: u64 = 0;
    for (i, b) in rest.bytes().take(n).enumerate() {
        if i < 9 {
            ns = ns * 10 + (b - b'0') as u64;
        }
    }
    for _ in n..9 {
        ns *= 10;
    }
    Some((ns as u32, &rest[n..]))
}

fn lookup_name<'a>(v: &'a str, names: &[&str], long: bool) -> Option<(usize, &'a str)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let name = if long { name } else { &name[..3] };
        let head = v.get(..name.len())?;
        head.eq_ignore_ascii_case(name)
            .then(|| (i, &v[name.len()..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_go_layouts() {
        // 2024-02-29T13:04:05.120Z, a Thursday, day 60 of a leap year
        let t = GoTime::from_unix_nanos(1_709_211_845_120_000_000);
        for (layout, want) in [
            ("2006-01-02T15:04:05Z07:00", "2024-02-29T13:04:05Z"),
            ("2006-01-02T15:04:05.000Z", "2024-02-29T13:04:05.120Z"),
            (
                "Mon Jan _2 3:4:5 PM 06 002 MST",
                "Thu Feb 29 1:4:5 PM 24 060 UTC",
            ),
            ("Monday, January 2 .999", "Thursday, February 29 .12"),
        ] {
            assert_eq!(format(&t, layout), want, "{layout}");
        }
        assert_eq!(t.go_string(), "2024-02-29 13:04:05.12 +0000 UTC");
        let east = GoTime {
            offset: 5 * 3600 + 1800,
            zone: String::new(),
            ..t.clone()
        };
        assert_eq!(
            format(&east, "15:04 -07:00 Z0700 MST"),
            "18:34 +05:30 +0530 +0530"
        );
        assert_eq!(GoTime::zero().go_string(), "0001-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn parses_what_it_formats() {
        let t = parse(
            "2006-01-02T15:04:05.999999999Z07:00",
            "2024-02-29T13:04:05.12+02:00",
            &Location::utc(),
            0,
        )
        .unwrap();
        assert_eq!(t.unix_nanos(), 1_709_204_645_120_000_000);
        assert_eq!(t.offset, 7200);
        let t = parse(
            "02/Jan/2006:15:04:05 -0700",
            "01/Jan/2024:00:00:00 +0000",
            &Location::utc(),
            0,
        )
        .unwrap();
        assert_eq!(t.secs, 1_704_067_200);
        // fractional seconds are accepted after seconds even without .000 in the layout
        let t = parse("2006-01-02 15:04:05", "2024-01-01 00:00:01.5", &utc(), 0).unwrap();
        assert_eq!(t.unix_nanos(), 1_704_067_201_500_000_000);
        let t = parse("Jan 2 3:04PM", "Dec 31 11:59PM", &utc(), 0).unwrap();
        assert_eq!(format(&t, "2006-01-02 15:04"), "0000-12-31 23:59");
        assert!(parse("2006-01-02", "2024-02-30", &utc(), 0).is_err());
        assert!(parse("2006-01-02", "2024-01-01x", &utc(), 0).is_err());
        assert!(parse("2006-01-02", "junk", &utc(), 0).is_err());
        assert!(matches!(
            Location::load("+05:30"),
            Some(Location::Fixed(19_800, _))
        ));
        assert!(matches!(
            Location::load("-0230"),
            Some(Location::Fixed(-9000, _))
        ));
        assert!(Location::load("Mars/Olympus").is_none());
        assert!(Location::load("+25").is_none());
    }

    fn utc() -> Location {
        Location::utc()
    }

    #[test]
    fn missing_year_takes_the_default() {
        let t = parse("Jan 2 15:04", "Mar 1 00:00", &utc(), 2024).unwrap();
        assert_eq!(format(&t, "2006-01-02"), "2024-03-01");
        let t = parse("06 Jan 2", "99 Mar 1", &utc(), 2024).unwrap();
        assert_eq!(format(&t, "2006"), "1999");
    }

    #[test]
    fn iana_zones_follow_dst() {
        let berlin = Location::load("Europe/Berlin").unwrap();
        let at = |layout: &str, v: &str| parse(layout, v, &berlin, 0).unwrap();
        let l = "2006-01-02 15:04:05 MST -07:00";
        // winter: CET +01:00, summer: CEST +02:00
        let t = at("2006-01-02 15:04", "2024-01-15 12:00");
        assert_eq!(t.unix_nanos(), 1_705_316_400_000_000_000);
        assert_eq!(format(&t, l), "2024-01-15 12:00:00 CET +01:00");
        let t = at("2006-01-02 15:04", "2024-07-15 12:00");
        assert_eq!(format(&t, l), "2024-07-15 12:00:00 CEST +02:00");
        assert_eq!(t.secs, 1_721_037_600);
        // 02:30 on 2024-03-31 does not exist in Berlin: Go moves it forward to 03:30 CEST.
        let t = at("2006-01-02 15:04", "2024-03-31 02:30");
        assert_eq!(format(&t, l), "2024-03-31 03:30:00 CEST +02:00");
        // 02:30 on 2024-10-27 happens twice: Go's guess-then-correct lands on CET.
        let t = at("2006-01-02 15:04", "2024-10-27 02:30");
        assert_eq!(format(&t, l), "2024-10-27 02:30:00 CET +01:00");
        // An explicit offset the zone has then keeps the zone's name; others stay bare.
        let with_offset = "2006-01-02 15:04 -07:00";
        assert_eq!(
            format(&at(with_offset, "2024-01-15 12:00 +01:00"), "MST"),
            "CET"
        );
        assert_eq!(
            format(&at(with_offset, "2024-01-15 12:00 +03:00"), "MST"),
            "+0300"
        );
        // Abbreviations the zone knows carry their offset, even out of season.
        let with_abbr = "2006-01-02 15:04 MST";
        assert_eq!(at(with_abbr, "2024-01-15 12:00 CEST").offset, 7200);
        assert_eq!(at(with_abbr, "2024-01-15 12:00 XYZ").offset, 0);
        let ny = Location::load("America/New_York").unwrap();
        assert_eq!(ny.at(1_705_316_400), (-5 * 3600, "EST".to_string()));
    }
}
