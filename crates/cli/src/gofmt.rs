//! Output byte-identical to logcli's (a Go program): Go's JSON encoding (HTML-safe string
//! escapes, sorted object keys, `MarshalIndent`), Prometheus label sets and Go time layouts.

use serde_json::Value;
use silt_gotime::{GoTime, Location};
use silt_logql::units::go_quote;
use silt_server::encode::write_str;

/// `json.Marshal` (`indent: None`) or `json.MarshalIndent(v, "", indent)`.
pub fn json(v: &Value, indent: Option<&str>) -> String {
    let mut out = String::new();
    write_value(&mut out, v, indent, 0);
    out
}

fn newline(out: &mut String, indent: Option<&str>, depth: usize) {
    if let Some(ind) = indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, v: &Value, indent: Option<&str>, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_value(out, x, indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push(']');
        }
        Value::Object(o) if o.is_empty() => out.push_str("{}"),
        Value::Object(o) => {
            out.push('{');
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, depth + 1);
                write_str(out, k);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, &o[k], indent, depth + 1);
            }
            newline(out, indent, depth);
            out.push('}');
        }
    }
}

/// A label set as Prometheus prints it: `{a="1", b="2"}`, keys sorted.
pub fn label_set<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = labels.into_iter().collect();
    pairs.sort();
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&go_quote(v));
    }
    out.push('}');
    out
}

/// `ns` in `loc` with a Go layout.
pub fn time(ns: i64, loc: &Location, layout: &str) -> String {
    let mut t = GoTime::from_unix_nanos(ns);
    let (offset, zone) = loc.at(t.secs);
    t.offset = offset;
    t.zone = zone;
    silt_gotime::format(&t, layout)
}

/// Go's `time.RFC3339Nano`.
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";
/// Go's `time.RFC3339`.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_and_label_sets() {
        let v: Value = serde_json::from_str(
            r#"{"line":"a<b>&\"c\"\u0001\u2028é","labels":{"z":"1","a":"2"},"n":[1.5,2,[],{}]}"#,
        )
        .unwrap();
        assert_eq!(
            json(&v, None),
            r#"{"labels":{"a":"2","z":"1"},"line":"a\u003cb\u003e\u0026\"c\"\u0001\u2028é","n":[1.5,2,[],{}]}"#
        );
        assert_eq!(
            json(&serde_json::json!([{"metric": {"a": "b"}, "value": [1.5, "2"]}]), Some("  ")),
            "[\n  {\n    \"metric\": {\n      \"a\": \"b\"\n    },\n    \"value\": [\n      1.5,\n      \"2\"\n    ]\n  }\n]"
        );
        assert_eq!(
            label_set([("b", "x\"y"), ("a", "é\n")]),
            r#"{a="é\n", b="x\"y"}"#
        );
        assert_eq!(label_set([]), "{}");
        let utc = Location::utc();
        assert_eq!(
            time(1_500_000_000, &utc, RFC3339_NANO),
            "1970-01-01T00:00:01.5Z"
        );
        assert_eq!(
            time(1_000_000_000, &utc, RFC3339_NANO),
            "1970-01-01T00:00:01Z"
        );
        assert_eq!(time(1_999_999_999, &utc, RFC3339), "1970-01-01T00:00:01Z");
    }
}
