//! Durations, byte sizes and number formatting with Go/Prometheus semantics.

const NS_PER_MS: u128 = 1_000_000;
const NS_PER_S: u128 = 1_000_000_000;

/// Prometheus `model.ParseDuration` (`1h30m`, `5d`, `1y`, integers only, units in order).
pub fn parse_prom_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let units: [(&str, u128); 7] = [
        ("y", 365 * 86_400 * NS_PER_S),
        ("w", 7 * 86_400 * NS_PER_S),
        ("d", 86_400 * NS_PER_S),
        ("h", 3_600 * NS_PER_S),
        ("m", 60 * NS_PER_S),
        ("s", NS_PER_S),
        ("ms", NS_PER_MS),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut last_pos = 0usize;
    let mut total: u128 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let v: u128 = s.get(start..i)?.parse().ok()?;
        let ustart = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        let unit = s.get(ustart..i)?;
        let pos = units.iter().position(|(u, _)| *u == unit)? + 1;
        if pos <= last_pos {
            return None;
        }
        last_pos = pos;
        total = total.checked_add(v.checked_mul(units[pos - 1].1)?)?;
        if total > i64::MAX as u128 {
            return None;
        }
    }
    i64::try_from(total).ok()
}

/// Go `time.ParseDuration` (`1.5s`, `-2h45m`, `300ms`, `1µs`).
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = rest.get(..num_len)?;
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        rest = rest.get(num_len..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        let v: f64 = num.parse().ok()?;
        total += v * mult;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return None;
    }
    let ns = total.round() as i64;
    Some(if neg { -ns } else { ns })
}

/// What Loki's lexer accepts after a number: Prometheus syntax first, then Go.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    parse_prom_duration(s).or_else(|| parse_go_duration(s))
}

/// `humanize.ParseBytes` restricted to the units Loki's lexer lets through.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(s.len());
    let num: String = s.get(..num_len)?.chars().filter(|c| *c != ',').collect();
    let f: f64 = num.parse().ok()?;
    let unit = s.get(num_len..)?.trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        _ => return None,
    };
    let v = f * mult;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return None;
    }
    Some(v as u64)
}

/// Prometheus `model.Duration.String()` (`5m`, `1h30m`, `90d`); millisecond precision.
pub fn prom_duration_string(ns: i64) -> String {
    let mut ms = ns / 1_000_000;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let units: [(&str, i64, bool); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365, true),
        ("w", 1000 * 60 * 60 * 24 * 7, true),
        ("d", 1000 * 60 * 60 * 24, false),
        ("h", 1000 * 60 * 60, false),
        ("m", 1000 * 60, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// Exact duration for printing a range: Prometheus form unless sub-millisecond.
pub(crate) fn range_string(ns: i64) -> String {
    if ns > 0 && ns % 1_000_000 == 0 {
        prom_duration_string(ns)
    } else {
        go_duration_string(ns)
    }
}

/// Go `time.Duration.String()` (`1h0m0s`, `1.5s`, `250ms`, `0s`).
pub(crate) fn go_duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs() as u128;
    if u < NS_PER_S {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", frac(u, div));
    }
    let h = u / (3_600 * NS_PER_S);
    let rem = u % (3_600 * NS_PER_S);
    let m = rem / (60 * NS_PER_S);
    let s = frac(rem % (60 * NS_PER_S), NS_PER_S);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

/// `v / div` with the fractional part's trailing zeros removed.
fn frac(v: u128, div: u128) -> String {
    let int = v / div;
    let rem = v % div;
    if rem == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// Go `fmt.Sprint(float64)`: shortest digits, `%e` form when exponent < -4 or >= 6.
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// Go `strconv.FormatFloat(v, 'f', -1, 64)`.
pub(crate) fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// The value a bytes label filter has once Loki's query frontend has printed the query
/// (`BytesLabelFilter.String()`, pkg/logql/log/label_filter.go: `humanize.Bytes`, spaces
/// removed) and its querier parsed the text again: `5KiB` (5120) becomes `5.1kB`, 5100.
pub fn loki_bytes_roundtrip(v: u64) -> u64 {
    parse_bytes(&humanize_bytes(v)).unwrap_or(v)
}

/// `humanize.Bytes` without the space (`5.1kB`, `20MB`), as Loki prints bytes filters.
pub fn humanize_bytes(v: u64) -> String {
    if v < 10 {
        return format!("{v}B");
    }
    let sizes = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let f = v as f64;
    let e = (f.ln() / 1000f64.ln()).floor().clamp(0.0, 6.0);
    let suffix = sizes.get(e as usize).copied().unwrap_or("EB");
    let val = (f / 1000f64.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1}{suffix}")
    } else {
        format!("{val:.0}{suffix}")
    }
}

/// Go `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_prom_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_prom_duration("30m1h"), None);
        assert_eq!(parse_prom_duration("1.5s"), None);
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("500ms"), Some(500_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000_000_000));
        assert_eq!(parse_go_duration("-5m"), Some(-300_000_000_000));
        assert_eq!(parse_go_duration("1µs"), Some(1_000));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("5KiB"), Some(5120));
        assert_eq!(parse_bytes("20MB"), Some(20_000_000));
        assert_eq!(parse_bytes("2.5KiB"), Some(2560));
        assert_eq!(parse_bytes("1kB"), Some(1000));
        assert_eq!(parse_bytes("1Q"), None);
        assert_eq!(humanize_bytes(5120), "5.1kB");
        assert_eq!(humanize_bytes(20_000_000), "20MB");
        // As logcli's `stats` prints them (the CLI's `silt stats` relies on these).
        let cases = [
            (0, "0B"),
            (9, "9B"),
            (80, "80B"),
            (1_700_000, "1.7MB"),
            (42_000_000, "42MB"),
        ];
        for (n, want) in cases {
            assert_eq!(humanize_bytes(n), want);
        }
        assert_eq!(humanize_bytes(999_950), "1000kB");
        // What the frontend's print-and-reparse leaves of each literal.
        for (lit, want) in [
            ("5KiB", 5100),
            ("1KiB", 1000),
            ("1MB", 1_000_000),
            ("1MiB", 1_000_000),
            ("1.5KB", 1500),
            ("1536B", 1500),
            ("1025B", 1000),
            ("10KiB", 10_000),
            ("100B", 100),
            ("3kB", 3000),
            ("9B", 9),
            ("2GiB", 2_100_000_000),
        ] {
            assert_eq!(
                loki_bytes_roundtrip(parse_bytes(lit).unwrap()),
                want,
                "{lit}"
            );
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(prom_duration_string(300_000_000_000), "5m");
        assert_eq!(prom_duration_string(5_400_000_000_000), "1h30m");
        assert_eq!(go_duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration_string(1_500_000_000), "1.5s");
        assert_eq!(go_duration_string(250_000_000), "250ms");
        assert_eq!(go_duration_string(-60_000_000_000), "-1m0s");
        assert_eq!(go_float(2.0), "2");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(123456789.0), "1.23456789e+08");
        assert_eq!(go_float(100000.0), "100000");
        assert_eq!(go_float(1e-5), "1e-05");
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\x01é\"");
    }
}
