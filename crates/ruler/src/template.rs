//! The part of Prometheus's alert templates rules use: `{{ $labels.name }}`,
//! `{{ $value }}` and `{{ humanize $value }}`. Anything else is left as written.

use std::collections::BTreeMap;

/// Expands the templates in `text` for a result series with `labels` and `value`.
pub fn expand(text: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let action = rest[open + 2..open + close].trim().trim_matches('-').trim();
        match eval(action, labels, value) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

fn eval(action: &str, labels: &BTreeMap<String, String>, value: f64) -> Option<String> {
    if let Some(name) = action.strip_prefix("$labels.") {
        return Some(labels.get(name).cloned().unwrap_or_default());
    }
    match action.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["$value"] => Some(format_value(value)),
        ["humanize", "$value"] | ["$value", "|", "humanize"] => Some(humanize(value)),
        _ => None,
    }
}

/// Go's `%v` of a float64 for the common cases.
fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e21 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
fn humanize(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v:.4}");
    }
    let (mut x, mut i) = (v, 0usize);
    let big = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"];
    let small = ["", "m", "u", "n", "p", "f", "a", "z", "y"];
    if v.abs() >= 1.0 {
        while x.abs() >= 1000.0 && i < big.len() - 1 {
            x /= 1000.0;
            i += 1;
        }
        return trim_g(x) + big[i];
    }
    while x.abs() < 1.0 && i < small.len() - 1 {
        x *= 1000.0;
        i += 1;
    }
    trim_g(x) + small[i]
}

/// `%.4g`.
fn trim_g(x: f64) -> String {
    let digits = if x.abs() >= 100.0 {
        1
    } else if x.abs() >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{x:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_value_and_humanize() {
        let l = BTreeMap::from([("app".to_string(), "api".to_string())]);
        assert_eq!(expand("{{ $labels.app }} x{{$value}}", &l, 3.0), "api x3");
        assert_eq!(expand("{{ $labels.none }}|", &l, 0.5), "|");
        assert_eq!(expand("{{ $value }}", &l, 0.25), "0.25");
        assert_eq!(expand("{{ humanize $value }}", &l, 1234567.0), "1.235M");
        assert_eq!(expand("{{ humanize $value }}", &l, 0.0123), "12.3m");
        assert_eq!(expand("{{ .Other }} {{", &l, 1.0), "{{ .Other }} {{");
    }
}
