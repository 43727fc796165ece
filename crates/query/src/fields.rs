//! Detected fields: what Grafana's field suggestions and Logs Drilldown list for a
//! query, found in a sample of its lines as Loki's query frontend does.
//!
//! Per entry: structured metadata (no parser), labels the query's own pipeline parsed,
//! and the line parsed with `json` or else `logfmt`. A field's type is inferred from its
//! value in the last entry that had it (Loki re-detects per entry). Cardinality is an
//! exact distinct count over the sample (Loki estimates it with HyperLogLog, which is
//! exact at these sizes).

use crate::logpipe::extract::{json_fields_with_paths, logfmt, parse_bytes, parse_go_duration};
use crate::logpipe::EntryLabels;
use crate::LogRow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Loki's detected field types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    String,
    Int,
    Float,
    Boolean,
    Duration,
    Bytes,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Duration => "duration",
            FieldType::Bytes => "bytes",
        }
    }
}

/// Loki's `determineType`: Go's int, float, bool, duration, then humanize bytes parsers.
pub fn determine_type(v: &str) -> FieldType {
    if go_int(v) {
        FieldType::Int
    } else if go_float(v) {
        FieldType::Float
    } else if matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    ) {
        FieldType::Boolean
    } else if !v.is_empty() && v.trim() == v && parse_go_duration(v).is_some() {
        FieldType::Duration
    } else if !v.is_empty() && parse_bytes(v).is_some() {
        FieldType::Bytes
    } else {
        FieldType::String
    }
}

fn go_int(v: &str) -> bool {
    let d = v.strip_prefix(['+', '-']).unwrap_or(v);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && v.parse::<i64>().is_ok()
}

fn go_float(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    let l = l.strip_prefix(['+', '-']).unwrap_or(&l);
    matches!(l, "inf" | "infinity" | "nan")
        || (l
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
            && v.parse::<f64>().is_ok())
}

/// One detected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectedField {
    pub label: String,
    pub ty: FieldType,
    pub cardinality: u64,
    /// Parsers that produced it; empty for structured metadata (`null` in JSON).
    pub parsers: Vec<String>,
    /// Keys leading to it in JSON lines; empty when not from `json`.
    pub json_path: Vec<String>,
}

#[derive(Debug)]
struct Acc {
    values: HashSet<String>,
    ty: FieldType,
    parsers: Vec<String>,
    json_path: Vec<String>,
}

/// Fields of one entry: name → (values, json path).
type EntryFields = BTreeMap<String, (BTreeSet<String>, Vec<String>)>;

/// The fields an entry's line and parsed labels hold, and the parser that read the line.
fn parse_entry(row: &LogRow) -> (EntryFields, Option<&'static str>) {
    let mut out: EntryFields = BTreeMap::new();
    for (k, v) in row.labels.parsed.iter() {
        if k == "__error__" || k == "__error_details__" || k == "__preserve_error__" {
            continue;
        }
        out.entry(k.to_string())
            .or_default()
            .0
            .insert(v.to_string());
    }
    let stream = &row.labels.stream;
    if let Some(fields) = json_fields_with_paths(&row.line) {
        let mut seen = HashSet::new();
        for (k, v, path) in fields {
            let name = if stream.contains(&k) {
                format!("{k}_extracted")
            } else {
                k
            };
            if k_is_empty(&name) || !seen.insert(name.clone()) {
                continue;
            }
            let e = out.entry(name).or_default();
            e.0.insert(v);
            e.1 = path;
        }
        return (out, Some("json"));
    }
    let mut labels = EntryLabels::new(stream.clone(), Default::default());
    logfmt(&row.line, false, false, &[], &mut labels, None);
    for (k, v) in labels.parsed.iter() {
        if k == "__error__" || k == "__error_details__" {
            continue;
        }
        out.entry(k.to_string())
            .or_default()
            .0
            .insert(v.to_string());
    }
    (out, Some("logfmt"))
}

fn k_is_empty(k: &str) -> bool {
    k.is_empty() || k == "_extracted"
}

/// Collects detected fields over sampled rows.
#[derive(Debug)]
pub struct FieldDetector {
    limit: usize,
    fields: BTreeMap<String, Acc>,
}

impl FieldDetector {
    /// At most `limit` distinct fields are tracked (later new ones are ignored).
    pub fn new(limit: usize) -> Self {
        FieldDetector {
            limit,
            fields: BTreeMap::new(),
        }
    }

    fn acc(&mut self, name: &str, parsers: &[&str]) -> Option<&mut Acc> {
        if !self.fields.contains_key(name) {
            if self.fields.len() >= self.limit {
                return None;
            }
            self.fields.insert(
                name.to_string(),
                Acc {
                    values: HashSet::new(),
                    ty: FieldType::String,
                    parsers: parsers.iter().map(|p| p.to_string()).collect(),
                    json_path: Vec::new(),
                },
            );
        }
        self.fields.get_mut(name)
    }

    /// Adds one sampled row.
    pub fn add(&mut self, row: &LogRow) {
        for (k, v) in row.labels.metadata_out().iter() {
            if let Some(a) = self.acc(k, &[]) {
                a.ty = determine_type(v);
                a.values.insert(v.to_string());
            }
        }
        let (parsed, parser) = parse_entry(row);
        let parsers: Vec<&str> = parser.into_iter().collect();
        for (k, (vals, path)) in parsed {
            let Some(a) = self.acc(&k, &parsers) else {
                continue;
            };
            for p in &parsers {
                if !a.parsers.iter().any(|x| x == p) {
                    a.parsers.push(p.to_string());
                }
            }
            if a.json_path.is_empty() && !path.is_empty() {
                a.json_path = path;
            }
            if let Some(first) = vals.iter().next() {
                a.ty = determine_type(first);
            }
            a.values.extend(vals);
        }
    }

    /// The fields, sorted by name.
    pub fn finish(self) -> Vec<DetectedField> {
        self.fields
            .into_iter()
            .map(|(label, a)| DetectedField {
                label,
                ty: a.ty,
                cardinality: a.values.len() as u64,
                parsers: a.parsers,
                json_path: a.json_path,
            })
            .collect()
    }
}

/// Distinct values of field `name` in the rows (sorted), at most about `limit` (Loki
/// stops between entries once it has `limit`). Parsed byte sizes are normalised the
/// way Loki does (`1.5 MB` → `1.5MB`) so they can be pasted into a query.
pub fn field_values<'a>(
    rows: impl IntoIterator<Item = &'a LogRow>,
    name: &str,
    limit: usize,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for row in rows {
        if out.len() >= limit {
            break;
        }
        if let Some(v) = row.labels.metadata_out().get(name) {
            out.insert(v.to_string());
        }
        let (parsed, _) = parse_entry(row);
        if let Some((vals, _)) = parsed.get(name) {
            for v in vals {
                out.insert(normalize_bytes(v).unwrap_or_else(|| v.clone()));
            }
        }
    }
    out.into_iter().collect()
}

const BYTE_UNITS: &[&str] = &[
    "b", "kib", "kb", "mib", "mb", "gib", "gb", "tib", "tb", "pib", "pb", "eib", "eb", "ki", "k",
    "mi", "m", "gi", "g", "ti", "t", "pi", "p", "ei", "e",
];

/// go-humanize `Bytes` of a value that parses as bytes and ends with a unit.
fn normalize_bytes(v: &str) -> Option<String> {
    let lower = v.to_ascii_lowercase();
    if !BYTE_UNITS.iter().any(|u| lower.ends_with(u)) {
        return None;
    }
    let b = parse_bytes(v)?;
    if b < 10 {
        return Some(format!("{b}B"));
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((b as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(units.len() - 1);
    let val = ((b as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    Some(if val < 10.0 {
        format!("{val:.1}{}", units[e])
    } else {
        format!("{val:.0}{}", units[e])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_model::Labels;
    use std::sync::Arc;

    fn row(stream: &[(&str, &str)], sm: &[(&str, &str)], line: &str) -> LogRow {
        LogRow {
            ts: 0,
            line: line.to_string(),
            labels: EntryLabels::new(
                Arc::new(Labels::from_pairs(stream.iter().copied())),
                Labels::from_pairs(sm.iter().copied()),
            ),
        }
    }

    #[test]
    fn types_as_loki_infers_them() {
        for (v, t) in [
            ("12", FieldType::Int),
            ("-3", FieldType::Int),
            ("1.5", FieldType::Float),
            ("1e3", FieldType::Float),
            ("true", FieldType::Boolean),
            ("254ms", FieldType::Duration),
            ("1h2m", FieldType::Duration),
            ("10KB", FieldType::Bytes),
            ("5 MiB", FieldType::Bytes),
            ("2024-01-01T00:00:00Z", FieldType::String),
            ("user42", FieldType::String),
            ("", FieldType::String),
        ] {
            assert_eq!(determine_type(v), t, "{v}");
        }
    }

    #[test]
    fn json_logfmt_and_metadata_fields() {
        let mut d = FieldDetector::new(1000);
        d.add(&row(
            &[("app", "a"), ("level", "x")],
            &[("trace_id", "abc")],
            r#"{"level":"info","req":{"ms":12,"path":"/a"},"tags":[1]}"#,
        ));
        d.add(&row(&[("app", "a")], &[], "level=warn took=2s msg=\"a b\""));
        let got = d.finish();
        let names: Vec<_> = got.iter().map(|f| f.label.as_str()).collect();
        assert_eq!(
            names,
            [
                "level",
                "level_extracted",
                "msg",
                "req_ms",
                "req_path",
                "took",
                "trace_id"
            ]
        );
        let f = |n: &str| got.iter().find(|f| f.label == n).unwrap();
        assert_eq!(f("req_ms").ty, FieldType::Int);
        assert_eq!(f("req_ms").json_path, ["req", "ms"]);
        assert_eq!(f("req_ms").parsers, ["json"]);
        assert_eq!(f("level_extracted").json_path, ["level"]);
        assert_eq!(f("took").ty, FieldType::Duration);
        assert_eq!(f("took").parsers, ["logfmt"]);
        assert!(f("trace_id").parsers.is_empty());
        assert_eq!(f("level").cardinality, 1);
    }

    #[test]
    fn field_limit_and_values() {
        let mut d = FieldDetector::new(2);
        let r = row(&[], &[], "a=1 b=2 c=3 size=1.5MB");
        d.add(&r);
        assert_eq!(d.finish().len(), 2);
        assert_eq!(field_values([&r], "size", 10), ["1.5MB"]);
        let r2 = row(&[], &[], "size=2048");
        assert_eq!(field_values([&r, &r2], "size", 10), ["1.5MB", "2048"]);
    }
}
