//! Stages that cut, redact or split: truncate, luhn, structured_metadata_drop, split_json.

use super::{MapStage, Stage};
use crate::Record;
use serde::Deserialize;
use std::collections::BTreeSet;

/// Where a `truncate` rule applies.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    #[default]
    Line,
    Label,
    StructuredMetadata,
    Extracted,
}

impl SourceType {
    fn field(self) -> &'static str {
        match self {
            SourceType::Line => "line",
            SourceType::Label => "label",
            SourceType::StructuredMetadata => "structured_metadata",
            SourceType::Extracted => "extracted",
        }
    }
}

/// One `truncate` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruncateRule {
    /// Maximum bytes, suffix included.
    #[serde(deserialize_with = "crate::units::de_size")]
    pub limit: u64,
    /// Appended to cut values.
    #[serde(default)]
    pub suffix: String,
    #[serde(default)]
    pub source_type: SourceType,
    /// Names to cut (labels, metadata or extracted keys); none = all of that type.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// `truncate` options (Alloy's repeated `rule` block).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruncateConfig {
    #[serde(alias = "rule")]
    pub rules: Vec<TruncateRule>,
}

/// `truncate`: cuts values longer than a rule's limit (on a UTF-8 boundary) and appends
/// its suffix; records the kinds cut in extracted `truncated` (`label,line`).
pub struct Truncate(Vec<(TruncateRule, usize)>);

impl Truncate {
    pub fn new(c: &TruncateConfig) -> Result<Truncate, String> {
        if c.rules.is_empty() {
            return Err("at least one truncate rule must be defined".into());
        }
        c.rules
            .iter()
            .map(|r| {
                if r.limit == 0 {
                    return Err("limit must be greater than zero".to_string());
                }
                if r.source_type == SourceType::Line && !r.sources.is_empty() {
                    return Err("sources cannot be set when source_type is 'line'".into());
                }
                if r.suffix.len() as u64 >= r.limit {
                    return Err("suffix length cannot be greater than or equal to limit".into());
                }
                let keep = usize::try_from(r.limit).unwrap_or(usize::MAX) - r.suffix.len();
                Ok((r.clone(), keep))
            })
            .collect::<Result<_, _>>()
            .map(Truncate)
    }
}

/// The cut value, or None when `v` fits. As in Alloy, anything longer than `keep` (the
/// limit minus the suffix) is cut, even if the suffix then makes it longer.
fn cut(v: &str, keep: usize, suffix: &str) -> Option<String> {
    (v.len() > keep).then(|| format!("{}{suffix}", crate::file::format::cut(v, keep)))
}

impl MapStage for Truncate {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let mut hit: BTreeSet<&'static str> = BTreeSet::new();
        for (r, keep) in &self.0 {
            let want = |name: &str| r.sources.is_empty() || r.sources.iter().any(|s| s == name);
            let mut edits: Vec<(String, String)> = Vec::new();
            match r.source_type {
                SourceType::Line => {
                    if let Some(v) = cut(&rec.entry.line, *keep, &r.suffix) {
                        rec.entry.line = v;
                        hit.insert("line");
                        count(SourceType::Line);
                    }
                }
                SourceType::Label | SourceType::StructuredMetadata => {
                    let set = if r.source_type == SourceType::Label {
                        &rec.labels
                    } else {
                        &rec.entry.metadata
                    };
                    for (k, v) in set.iter().filter(|(k, _)| want(k)) {
                        if let Some(v) = cut(v, *keep, &r.suffix) {
                            edits.push((k.to_string(), v));
                        }
                    }
                    let set = if r.source_type == SourceType::Label {
                        &mut rec.labels
                    } else {
                        &mut rec.entry.metadata
                    };
                    for (k, v) in &edits {
                        set.set(k, v);
                    }
                }
                SourceType::Extracted => {
                    for (k, v) in rec.extracted.iter_mut().filter(|(k, _)| want(k)) {
                        if let Some(c) = cut(v, *keep, &r.suffix) {
                            *v = c;
                            edits.push((k.clone(), String::new()));
                        }
                    }
                }
            }
            for _ in &edits {
                hit.insert(r.source_type.field());
                count(r.source_type);
            }
            if !hit.is_empty() {
                // Merge with what an earlier truncate stage recorded.
                let mut all: BTreeSet<String> = rec
                    .extracted
                    .get("truncated")
                    .map(|s| s.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                all.extend(hit.iter().map(|s| s.to_string()));
                let joined = all.into_iter().collect::<Vec<_>>().join(",");
                rec.extracted.insert("truncated".into(), joined);
            }
        }
        true
    }
}

fn count(t: SourceType) {
    crate::metrics::metrics()
        .truncated_fields
        .get_or_create(&crate::metrics::FieldLabels {
            field: t.field().to_string(),
        })
        .inc();
}

/// `luhn` options.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LuhnConfig {
    /// Default `**REDACTED**`.
    #[serde(default)]
    pub replacement: String,
    /// Extracted value to scan instead of the line (the result still replaces the line,
    /// as in Alloy).
    #[serde(default)]
    pub source: Option<String>,
    /// Shortest digit run checked; default 13.
    #[serde(default)]
    pub min_length: usize,
    /// Characters allowed between digits of one number (`" -"`).
    #[serde(default)]
    pub delimiters: String,
}

/// `luhn`: replaces Luhn-valid digit runs (credit card numbers) with `replacement`.
pub struct Luhn(LuhnConfig);

impl Luhn {
    pub fn new(c: &LuhnConfig) -> Result<Luhn, String> {
        let mut c = c.clone();
        if c.replacement.is_empty() {
            c.replacement = "**REDACTED**".into();
        }
        if c.min_length < 1 {
            c.min_length = 13;
        }
        if c.source.as_deref() == Some("") {
            return Err("empty source".into());
        }
        Ok(Luhn(c))
    }
}

/// Luhn checksum over ASCII digits. Like Alloy, a run that overflows an int64 is not a
/// number and so never valid.
fn luhn_valid(digits: &str) -> bool {
    if digits.parse::<i64>().is_err() {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                d2 / 10 + d2 % 10
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Alloy's scan: runs of digits (joined across `delimiters`) of at least `min` digits
/// that pass Luhn become `replacement`; a delimiter right after a redacted run is kept.
pub fn redact_luhn(input: &str, replacement: &str, min: usize, delimiters: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut digits = String::new();
    let mut raw = String::new();
    let mut trailing: Option<char> = None;
    let flush = |out: &mut String, digits: &mut String, raw: &mut String, t: &mut Option<char>| {
        if digits.len() >= min && luhn_valid(digits) {
            out.push_str(replacement);
            if let Some(c) = t {
                out.push(*c);
            }
        } else {
            out.push_str(raw);
        }
        digits.clear();
        raw.clear();
        *t = None;
    };
    for c in input.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            raw.push(c);
            trailing = None;
        } else if !digits.is_empty() && delimiters.contains(c) {
            raw.push(c);
            trailing = Some(c);
        } else {
            flush(&mut out, &mut digits, &mut raw, &mut trailing);
            out.push(c);
        }
    }
    flush(&mut out, &mut digits, &mut raw, &mut trailing);
    out
}

impl MapStage for Luhn {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let Some(text) = super::source_value(rec, self.0.source.as_deref()) else {
            return true;
        };
        let c = &self.0;
        rec.entry.line = redact_luhn(&text, &c.replacement, c.min_length, &c.delimiters);
        true
    }
}

/// `structured_metadata_drop` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataDropConfig {
    pub values: Vec<String>,
}

/// `structured_metadata_drop`: removes metadata keys.
pub struct MetadataDrop(Vec<String>);

impl MetadataDrop {
    pub fn new(c: &MetadataDropConfig) -> Result<MetadataDrop, String> {
        if c.values.is_empty() {
            return Err("structured_metadata_drop stage config cannot be empty".into());
        }
        Ok(MetadataDrop(c.values.clone()))
    }
}

impl MapStage for MetadataDrop {
    fn apply(&mut self, rec: &mut Record) -> bool {
        for n in &self.0 {
            rec.entry.metadata.remove(n);
        }
        true
    }
}

/// `split_json` options.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SplitJsonConfig {
    /// Extracted value holding the array instead of the line.
    #[serde(default)]
    pub source: Option<String>,
}

/// `split_json`: a top-level JSON array becomes one entry per element (line = the
/// element's JSON text, as written); anything else passes unchanged. Only the last
/// entry keeps the record's ack, so the read position advances once all are delivered.
pub struct SplitJson(SplitJsonConfig);

impl SplitJson {
    pub fn new(c: &SplitJsonConfig) -> SplitJson {
        SplitJson(c.clone())
    }
}

/// Byte ranges of the elements of a JSON array, or None if `s` is not one.
fn array_elements(s: &str) -> Option<Vec<&str>> {
    let t = s.trim_start_matches([' ', '\t', '\r', '\n']);
    if !t.starts_with('[') {
        return None;
    }
    // Validate first; the scan below then only has to find top-level commas.
    serde_json::from_str::<Vec<serde::de::IgnoredAny>>(s).ok()?;
    let body = t.trim_end_matches([' ', '\t', '\r', '\n']);
    let inner = &body[1..body.len() - 1];
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut esc, mut start) = (0i32, false, false, 0);
    for (i, b) in inner.bytes().enumerate() {
        if in_str {
            match b {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                out.push(inner[start..i].trim_matches([' ', '\t', '\r', '\n']));
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim_matches([' ', '\t', '\r', '\n']);
    if !last.is_empty() {
        out.push(last);
    }
    Some(out)
}

impl Stage for SplitJson {
    fn process(&mut self, rec: Record, out: &mut Vec<Record>) {
        let text = match &self.0.source {
            None => Some(&rec.entry.line),
            Some(s) => rec.extracted.get(s),
        };
        let elems: Option<Vec<String>> = text
            .and_then(|t| array_elements(t))
            .map(|v| v.into_iter().map(str::to_string).collect());
        let Some(elems) = elems else {
            out.push(rec);
            return;
        };
        let n = elems.len();
        for (i, e) in elems.into_iter().enumerate() {
            let mut child = rec.clone();
            child.entry.line = e;
            if i + 1 < n {
                child.ack = None;
            }
            out.push(child);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;
    use crate::Ack;

    fn x<'a>(r: &'a Record, k: &str) -> Option<&'a str> {
        r.extracted.get(k).map(String::as_str)
    }

    #[test]
    fn truncate_rules() {
        let r = one(
            "- truncate: {rules: [{limit: 8, suffix: '...'}]}\n",
            "héllo world",
        );
        // 5 bytes kept, "é" is 2 bytes: "héll" is 5 bytes
        assert_eq!(r.entry.line, "héll...");
        assert_eq!(x(&r, "truncated"), Some("line"));
        let r = one("- truncate: {rules: [{limit: 5}]}\n", "12345");
        assert_eq!(r.entry.line, "12345");
        assert_eq!(x(&r, "truncated"), None);
        // a 3-byte char straddling the limit is dropped whole
        let r = one("- truncate: {rules: [{limit: 2}]}\n", "a€b");
        assert_eq!(r.entry.line, "a");
        let y = "- regex: {expression: '(?P<a>\\w+) (?P<b>\\w+)'}\n- static_labels: {long: abcdefgh, short: ab}\n- structured_metadata: {a: ''}\n- truncate:\n    rule:\n      - {limit: 4, source_type: label}\n      - {limit: 2, source_type: extracted, sources: [b]}\n      - {limit: 3, source_type: structured_metadata, suffix: '~'}\n";
        let r = one(y, "aaaaaa bbbbbb");
        assert_eq!(r.labels.get("long"), Some("abcd"));
        assert_eq!(r.labels.get("short"), Some("ab"));
        assert_eq!(x(&r, "a"), Some("aaaaaa"));
        assert_eq!(x(&r, "b"), Some("bb"));
        assert_eq!(r.entry.metadata.get("a"), Some("aa~"));
        assert_eq!(
            x(&r, "truncated"),
            Some("extracted,label,structured_metadata")
        );
        for bad in [
            "{rules: []}",
            "{rules: [{limit: 0}]}",
            "{rules: [{limit: 3, suffix: '...'}]}",
            "{rules: [{limit: 3, sources: [x]}]}",
            "{rules: [{limit: 3, source_type: nope}]}",
        ] {
            let c = serde_yaml::from_str::<TruncateConfig>(bad);
            assert!(c.is_err() || Truncate::new(&c.unwrap()).is_err(), "{bad}");
        }
        let m = crate::metrics::render();
        assert!(
            m.contains("loki_process_truncated_fields_total{field=\"line\"}"),
            "{m}"
        );
    }

    #[test]
    fn luhn_redacts() {
        assert_eq!(
            redact_luhn("card 4111111111111111 ok 4111111111111112", "X", 13, ""),
            "card X ok 4111111111111112"
        );
        // short runs are left alone, a run too long for int64 too
        assert_eq!(redact_luhn("id 0 19", "X", 1, ""), "id X 19");
        assert_eq!(
            redact_luhn("41111111111111111111111", "X", 13, ""),
            "41111111111111111111111"
        );
        assert_eq!(
            redact_luhn("n=4111-1111-1111-1111, end", "X", 13, "-"),
            "n=X, end"
        );
        assert_eq!(
            redact_luhn("4111 1111 1111 1111 done", "X", 13, " "),
            "X done"
        );
        let r = one("- luhn: {}\n", "pay 4111111111111111");
        assert_eq!(r.entry.line, "pay **REDACTED**");
        let r = one(
            "- regex: {expression: 'cc=(?P<cc>\\d+)'}\n- luhn: {source: cc, replacement: '*'}\n",
            "x cc=5500000000000004",
        );
        assert_eq!(r.entry.line, "*");
    }

    #[test]
    fn metadata_drop() {
        let y = "- regex: {expression: '(?P<a>\\w) (?P<b>\\w)'}\n- structured_metadata: {a: '', b: ''}\n- structured_metadata_drop: {values: [a, zz]}\n";
        let r = one(y, "1 2");
        assert_eq!(r.entry.metadata.get("a"), None);
        assert_eq!(r.entry.metadata.get("b"), Some("2"));
        assert!(MetadataDrop::new(&MetadataDropConfig { values: vec![] }).is_err());
    }

    #[test]
    fn split_json_acks_last() {
        let mut p = pipeline("- split_json: {}\n- json: {expressions: {a: ''}}\n");
        let mut input = rec(r#" [{"a": "x,]"}, 2 , "s\"]", [1,[2]], null] "#);
        let ack = Ack {
            source: 0,
            unit: 1,
            offset: 99,
        };
        input.ack = Some(ack);
        let mut out = vec![];
        p.process(input, &mut out);
        let lines: Vec<&str> = out.iter().map(|r| r.entry.line.as_str()).collect();
        assert_eq!(
            lines,
            [r#"{"a": "x,]"}"#, "2", r#""s\"]""#, "[1,[2]]", "null"]
        );
        assert_eq!(x(&out[0], "a"), Some("x,]"));
        let acks: Vec<Option<Ack>> = out.iter().map(|r| r.ack).collect();
        assert_eq!(acks, [None, None, None, None, Some(ack)]);
        // not an array, or broken: unchanged
        for l in [r#"{"a":1}"#, "[1,", "plain"] {
            assert_eq!(run("- split_json: {}\n", l)[0].entry.line, l);
        }
        assert!(run("- split_json: {}\n", "[]").is_empty());
        let out = run(
            "- regex: {expression: 'x=(?P<arr>.*)'}\n- split_json: {source: arr}\n",
            "x=[1,2]",
        );
        let lines: Vec<&str> = out.iter().map(|r| r.entry.line.as_str()).collect();
        assert_eq!(lines, ["1", "2"]);
    }
}
