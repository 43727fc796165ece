//! Label and line shaping stages: labels, static_labels, label_drop, label_keep,
//! structured_metadata, output, tenant, decolorize, pack.

use super::MapStage;
use crate::{Record, TENANT_LABEL};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

fn check_names<'a>(names: impl Iterator<Item = &'a String>) -> Result<(), String> {
    for n in names {
        if !silt_proto::is_valid_label_name(n) {
            return Err(format!("invalid label name {n:?}"));
        }
    }
    Ok(())
}

fn resolve(m: &BTreeMap<String, Option<String>>) -> Vec<(String, String)> {
    m.iter()
        .map(|(k, v)| {
            let src = v.as_deref().filter(|v| !v.is_empty()).unwrap_or(k);
            (k.clone(), src.to_string())
        })
        .collect()
}

/// `labels`: label ← extracted value (missing or empty values leave the label alone).
pub struct LabelsStage(Vec<(String, String)>);

impl LabelsStage {
    pub fn new(m: &BTreeMap<String, Option<String>>) -> Result<LabelsStage, String> {
        check_names(m.keys())?;
        Ok(LabelsStage(resolve(m)))
    }
}

impl MapStage for LabelsStage {
    fn apply(&mut self, rec: &mut Record) -> bool {
        for (label, src) in &self.0 {
            if let Some(v) = rec.extracted.get(src).filter(|v| !v.is_empty()) {
                rec.labels.set(label, v);
            }
        }
        true
    }
}

/// `static_labels`.
pub struct StaticLabels(Vec<(String, String)>);

impl StaticLabels {
    pub fn new(m: &BTreeMap<String, String>) -> Result<StaticLabels, String> {
        check_names(m.keys())?;
        Ok(StaticLabels(m.clone().into_iter().collect()))
    }
}

impl MapStage for StaticLabels {
    fn apply(&mut self, rec: &mut Record) -> bool {
        for (k, v) in &self.0 {
            rec.labels.set(k, v);
        }
        true
    }
}

/// `label_drop`.
pub struct LabelDrop(pub Vec<String>);

impl MapStage for LabelDrop {
    fn apply(&mut self, rec: &mut Record) -> bool {
        for n in &self.0 {
            rec.labels.remove(n);
        }
        true
    }
}

/// `label_keep`: internal `__` labels survive (they are stripped at send anyway and carry
/// the tenant).
pub struct LabelKeep(pub Vec<String>);

impl MapStage for LabelKeep {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let drop: Vec<String> = rec
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("__") && !self.0.iter().any(|n| n == k))
            .map(|(k, _)| k.to_string())
            .collect();
        for n in drop {
            rec.labels.remove(&n);
        }
        true
    }
}

/// `structured_metadata`: metadata ← extracted value, removing a same-named label.
pub struct StructuredMetadata(Vec<(String, String)>);

impl StructuredMetadata {
    pub fn new(m: &BTreeMap<String, Option<String>>) -> StructuredMetadata {
        StructuredMetadata(resolve(m))
    }
}

impl MapStage for StructuredMetadata {
    fn apply(&mut self, rec: &mut Record) -> bool {
        for (name, src) in &self.0 {
            let v = rec
                .extracted
                .get(src)
                .cloned()
                .or_else(|| rec.labels.get(src).map(str::to_string));
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                rec.entry.metadata.set(name, &v);
                rec.labels.remove(name);
            }
        }
        true
    }
}

/// `output`.
pub struct Output(pub String);

impl MapStage for Output {
    fn apply(&mut self, rec: &mut Record) -> bool {
        if let Some(v) = rec.extracted.get(&self.0) {
            rec.entry.line = v.clone();
        }
        true
    }
}

/// `tenant` options: exactly one of `value`, `source` (extracted) or `label`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

pub struct Tenant(TenantConfig);

impl Tenant {
    pub fn new(c: &TenantConfig) -> Result<Tenant, String> {
        let set = [&c.value, &c.source, &c.label]
            .iter()
            .filter(|x| x.is_some())
            .count();
        if set != 1 {
            return Err("tenant needs exactly one of value, source, label".into());
        }
        Ok(Tenant(c.clone()))
    }
}

impl MapStage for Tenant {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let t = if let Some(v) = &self.0.value {
            Some(v.clone())
        } else if let Some(s) = &self.0.source {
            rec.extracted.get(s).cloned()
        } else {
            self.0
                .label
                .as_ref()
                .and_then(|l| rec.labels.get(l).map(str::to_string))
        };
        if let Some(t) = t.filter(|t| !t.is_empty()) {
            rec.labels.set(TENANT_LABEL, &t);
        }
        true
    }
}

/// `decolorize`: strips ANSI escape sequences.
pub struct Decolorize;

impl MapStage for Decolorize {
    fn apply(&mut self, rec: &mut Record) -> bool {
        static RE: OnceLock<Regex> = OnceLock::new();
        let re = RE.get_or_init(|| {
            Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]").expect("static regex")
        });
        if rec.entry.line.contains('\x1b') {
            rec.entry.line = re.replace_all(&rec.entry.line, "").into_owned();
        }
        true
    }
}

/// `pack` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    /// Labels (or extracted values) moved into the JSON line.
    pub labels: Vec<String>,
    /// Replace the timestamp with the current time (avoids out-of-order after merging).
    #[serde(default = "yes")]
    pub ingest_timestamp: bool,
}

fn yes() -> bool {
    true
}

/// `pack`: `{"<label>": "...", "_entry": "<line>"}`, readable with LogQL `| unpack`.
pub struct Pack(pub PackConfig);

impl MapStage for Pack {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let mut m = serde_json::Map::new();
        for n in &self.0.labels {
            if let Some(v) = rec.labels.remove(n) {
                m.insert(n.clone(), v.into());
            } else if let Some(v) = rec.extracted.get(n) {
                m.insert(n.clone(), v.clone().into());
            }
        }
        m.insert("_entry".into(), rec.entry.line.clone().into());
        rec.entry.line = serde_json::Value::Object(m).to_string();
        if self.0.ingest_timestamp {
            rec.entry.ts = crate::now_ns();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;

    #[test]
    fn label_stages() {
        let r = one(
            "- regex: {expression: '(?P<lvl>\\w+):'}\n- labels: {level: lvl}\n- static_labels: {env: prod, job: ''}\n- label_drop: [job]\n",
            "WARN: x",
        );
        assert_eq!(r.labels.get("level"), Some("WARN"));
        assert_eq!(r.labels.get("env"), Some("prod"));
        assert!(!r.labels.contains("job"));
        let r = one(
            "- static_labels: {a: '1', b: '2'}\n- label_keep: [a]\n",
            "x",
        );
        assert_eq!(r.labels.len(), 1);
        assert!(super::super::Pipeline::new(
            &super::super::parse_stages("[{static_labels: {'a-b': x}}]").unwrap()
        )
        .is_err());
    }

    #[test]
    fn metadata_output_tenant() {
        let r = one(
            "- logfmt: {}\n- structured_metadata: {trace_id: ''}\n- output: {source: msg}\n- tenant: {source: org}\n",
            "trace_id=abc msg=hello org=team-a",
        );
        assert_eq!(r.entry.metadata.get("trace_id"), Some("abc"));
        assert_eq!(r.entry.line, "hello");
        assert_eq!(r.labels.get("__tenant_id__"), Some("team-a"));
        assert!(super::super::Pipeline::new(
            &super::super::parse_stages("[{tenant: {value: a, label: b}}]").unwrap()
        )
        .is_err());
        // A label moved to metadata leaves the stream.
        let r = one("- structured_metadata: {job: ''}\n", "x");
        assert_eq!(
            (r.entry.metadata.get("job"), r.labels.get("job")),
            (Some("test"), None)
        );
    }

    #[test]
    fn decolorize_and_pack() {
        let r = one("[{decolorize: {}}]", "\x1b[31mred\x1b[0m plain");
        assert_eq!(r.entry.line, "red plain");
        let r = one("[{pack: {labels: [job], ingest_timestamp: false}}]", "line");
        let v: serde_json::Value = serde_json::from_str(&r.entry.line).unwrap();
        assert_eq!(v, serde_json::json!({"job": "test", "_entry": "line"}));
        assert!(!r.labels.contains("job"));
        assert_eq!(r.entry.ts, 1_000);
    }
}
