//! Processing stages with Alloy `loki.process` / Promtail `pipeline_stages` semantics.
//! Config uses Promtail's shape: a list of single-key maps, `- json: {expressions: {...}}`.
//! Stages are synchronous and see one [`Record`] at a time; each may emit zero or more.

mod custom_metrics;
mod edit;
mod filter;
mod labels;
mod multiline;
mod parse;
mod template;
mod timestamp;

use crate::{Ack, Item, Record};
use serde::Deserialize;
use std::collections::BTreeMap;

pub use custom_metrics::{MetricDef, MetricOpts, MetricType, MetricsConfig};
pub use edit::{LuhnConfig, MetadataDropConfig, SplitJsonConfig, TruncateConfig, TruncateRule};
pub use filter::{DropConfig, LimitConfig, MatchConfig, SamplingConfig};
pub use labels::{PackConfig, TenantConfig};
pub use multiline::MultilineConfig;
pub use parse::{JsonConfig, LogfmtConfig, PatternConfig, RegexConfig, ReplaceConfig};
pub use template::TemplateConfig;
pub use timestamp::TimestampConfig;

/// One stage as written in YAML.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StageConfig {
    Cri(Empty),
    Docker(Empty),
    Json(JsonConfig),
    Logfmt(LogfmtConfig),
    Regex(RegexConfig),
    Pattern(PatternConfig),
    Replace(ReplaceConfig),
    Template(TemplateConfig),
    /// label name → extracted key (empty = same name).
    Labels(BTreeMap<String, Option<String>>),
    StaticLabels(BTreeMap<String, String>),
    #[serde(alias = "labeldrop")]
    LabelDrop(Vec<String>),
    #[serde(alias = "labelallow")]
    LabelKeep(Vec<String>),
    /// metadata name → extracted key (empty = same name).
    StructuredMetadata(BTreeMap<String, Option<String>>),
    StructuredMetadataDrop(MetadataDropConfig),
    Timestamp(TimestampConfig),
    Output(OutputConfig),
    Match(MatchConfig),
    Drop(DropConfig),
    Multiline(MultilineConfig),
    Limit(LimitConfig),
    Sampling(SamplingConfig),
    Tenant(TenantConfig),
    Decolorize(Empty),
    Pack(PackConfig),
    Truncate(TruncateConfig),
    Luhn(LuhnConfig),
    SplitJson(SplitJsonConfig),
    Metrics(MetricsConfig),
}

/// Stages are written Promtail-style as one-key maps (`- json: {...}`); serde_yaml encodes
/// enums as YAML tags, so each map is turned into a tagged value first.
pub fn de_stages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<StageConfig>, D::Error> {
    use serde::de::Error;
    use serde_yaml::value::{Tag, TaggedValue};
    use serde_yaml::Value;
    let raw = Vec::<Value>::deserialize(d)?;
    raw.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let tagged = match v {
                Value::Mapping(m) if m.len() == 1 => {
                    let (k, v) = m
                        .into_iter()
                        .next()
                        .ok_or_else(|| D::Error::custom("empty stage"))?;
                    let Value::String(name) = k else {
                        return Err(D::Error::custom(format!(
                            "stage {i}: name must be a string"
                        )));
                    };
                    // `- cri:` with no value means no options.
                    let v = if v.is_null() {
                        Value::Mapping(Default::default())
                    } else {
                        v
                    };
                    Value::Tagged(Box::new(TaggedValue {
                        tag: Tag::new(name),
                        value: v,
                    }))
                }
                Value::String(name) => Value::Tagged(Box::new(TaggedValue {
                    tag: Tag::new(name),
                    value: Value::Mapping(Default::default()),
                })),
                _ => {
                    return Err(D::Error::custom(format!(
                        "stage {i}: expected a one-key map like `- json: {{...}}`"
                    )))
                }
            };
            serde_yaml::from_value(tagged).map_err(|e| D::Error::custom(format!("stage {i}: {e}")))
        })
        .collect()
}

/// Parses a YAML list of stages.
pub fn parse_stages(yaml: &str) -> Result<Vec<StageConfig>, serde_yaml::Error> {
    de_stages(serde_yaml::Deserializer::from_str(yaml))
}

/// Stages without options accept `{}` or nothing.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `output`: replace the line with an extracted value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub source: String,
}

/// A running stage.
pub(crate) trait Stage: Send {
    /// Handles one record, pushing what continues down the pipeline to `out`.
    fn process(&mut self, rec: Record, out: &mut Vec<Record>);
    /// Time passes (multiline timeouts).
    fn tick(&mut self, _now: i64, _out: &mut Vec<Record>) {}
    /// Shutdown: emit anything held.
    fn flush(&mut self, _out: &mut Vec<Record>) {}
    /// The source's next line starts at `at.offset` of its unit.
    fn position(&mut self, _at: Ack) {}
    /// Lowest offset of (source, unit) whose line this stage still holds: positions of that
    /// unit must not be acknowledged past it, or a SIGKILL would lose the held lines.
    fn floor(&self, _source: usize, _unit: u64) -> Option<u64> {
        None
    }
    /// The unit is closed; drop per-unit state.
    fn forget(&mut self, _source: usize, _unit: u64) {}
}

/// A stage that edits in place and keeps (true) or drops (false) the record.
pub(crate) trait MapStage: Send {
    fn apply(&mut self, rec: &mut Record) -> bool;
}

impl<T: MapStage> Stage for T {
    fn process(&mut self, mut rec: Record, out: &mut Vec<Record>) {
        if self.apply(&mut rec) {
            out.push(rec);
        }
    }
}

/// Compiled stages in order.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipeline({} stages)", self.stages.len())
    }
}

impl Pipeline {
    /// Compiles stages; errors name the stage index.
    pub fn new(cfgs: &[StageConfig]) -> Result<Pipeline, String> {
        let stages = cfgs
            .iter()
            .enumerate()
            .map(|(i, c)| build(c).map_err(|e| format!("stage {i}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pipeline { stages })
    }

    /// Whether there are no stages.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs `rec` through every stage.
    pub fn process(&mut self, rec: Record, out: &mut Vec<Record>) {
        self.run_from(0, vec![rec], out);
    }

    fn run_from(&mut self, start: usize, mut cur: Vec<Record>, out: &mut Vec<Record>) {
        for s in self.stages.iter_mut().skip(start) {
            if cur.is_empty() {
                return;
            }
            let mut next = Vec::with_capacity(cur.len());
            for r in cur {
                s.process(r, &mut next);
            }
            cur = next;
        }
        out.extend(cur);
    }

    /// Lets time-based stages emit; their output continues through later stages.
    pub fn tick(&mut self, now: i64, out: &mut Vec<Record>) {
        for i in 0..self.stages.len() {
            let mut emitted = Vec::new();
            self.stages[i].tick(now, &mut emitted);
            self.run_from(i + 1, emitted, out);
        }
    }

    /// Emits everything held (shutdown).
    pub fn flush(&mut self, out: &mut Vec<Record>) {
        for i in 0..self.stages.len() {
            let mut emitted = Vec::new();
            self.stages[i].flush(&mut emitted);
            self.run_from(i + 1, emitted, out);
        }
    }

    /// Tells holding stages where the next line of a unit starts.
    pub fn position(&mut self, at: Ack) {
        for s in &mut self.stages {
            s.position(at);
        }
    }

    /// Lowest held offset of a unit over all stages (see [`Stage::floor`]).
    pub fn floor(&self, source: usize, unit: u64) -> Option<u64> {
        self.stages
            .iter()
            .filter_map(|s| s.floor(source, unit))
            .min()
    }

    /// Runs one source line through the stages into `out`. `start` is where re-reading its
    /// unit would produce the line again; positions leaving the pipeline are lowered below
    /// lines that stages still hold. False when no output carries the line's position
    /// (dropped, or split and the last part dropped): the caller then acknowledges the
    /// position itself, after the outputs.
    pub fn run_line(&mut self, rec: Record, start: u64, out: &mut Vec<Item>) -> bool {
        if let Some(a) = rec.ack {
            self.position(Ack { offset: start, ..a });
        }
        let mut outs = Vec::new();
        self.process(rec, &mut outs);
        let carried = outs.iter().any(|r| r.ack.is_some());
        self.emit(outs, out);
        carried
    }

    /// Queues stage output (also from `tick`/`flush`), positions lowered below held lines.
    pub fn emit(&self, recs: Vec<Record>, out: &mut Vec<Item>) {
        for mut r in recs {
            r.ack = r.ack.map(|a| self.clamp(a));
            out.push(Item::Record(r));
        }
    }

    /// Lowers `ack` to what is safe while stages hold earlier lines of its unit.
    pub fn clamp(&self, mut ack: Ack) -> Ack {
        if let Some(f) = self.floor(ack.source, ack.unit) {
            ack.offset = ack.offset.min(f);
        }
        ack
    }

    /// Drops per-unit state of a closed unit.
    pub fn forget(&mut self, source: usize, unit: u64) {
        for s in &mut self.stages {
            s.forget(source, unit);
        }
    }
}

impl Stage for Pipeline {
    fn process(&mut self, rec: Record, out: &mut Vec<Record>) {
        Pipeline::process(self, rec, out)
    }
    fn tick(&mut self, now: i64, out: &mut Vec<Record>) {
        Pipeline::tick(self, now, out)
    }
    fn flush(&mut self, out: &mut Vec<Record>) {
        Pipeline::flush(self, out)
    }
    fn position(&mut self, at: Ack) {
        Pipeline::position(self, at)
    }
    fn floor(&self, source: usize, unit: u64) -> Option<u64> {
        Pipeline::floor(self, source, unit)
    }
    fn forget(&mut self, source: usize, unit: u64) {
        Pipeline::forget(self, source, unit)
    }
}

fn build(c: &StageConfig) -> Result<Box<dyn Stage>, String> {
    Ok(match c {
        StageConfig::Cri(_) => Box::new(parse::Cri),
        StageConfig::Docker(_) => Box::new(parse::Docker),
        StageConfig::Json(c) => Box::new(parse::Json::new(c)?),
        StageConfig::Logfmt(c) => Box::new(parse::Logfmt::new(c)),
        StageConfig::Regex(c) => Box::new(parse::RegexStage::new(c)?),
        StageConfig::Pattern(c) => Box::new(parse::PatternStage::new(c)?),
        StageConfig::Replace(c) => Box::new(parse::Replace::new(c)?),
        StageConfig::Template(c) => Box::new(template::TemplateStage::new(c)?),
        StageConfig::Labels(m) => Box::new(labels::LabelsStage::new(m)?),
        StageConfig::StaticLabels(m) => Box::new(labels::StaticLabels::new(m)?),
        StageConfig::LabelDrop(n) => Box::new(labels::LabelDrop(n.clone())),
        StageConfig::LabelKeep(n) => Box::new(labels::LabelKeep(n.clone())),
        StageConfig::StructuredMetadata(m) => Box::new(labels::StructuredMetadata::new(m)),
        StageConfig::Timestamp(c) => Box::new(timestamp::Timestamp::new(c)?),
        StageConfig::Output(c) => Box::new(labels::Output(c.source.clone())),
        StageConfig::Match(c) => Box::new(filter::Match::new(c)?),
        StageConfig::Drop(c) => Box::new(filter::Drop::new(c)?),
        StageConfig::Multiline(c) => Box::new(multiline::Multiline::new(c)?),
        StageConfig::Limit(c) => Box::new(filter::Limit::new(c)?),
        StageConfig::Sampling(c) => Box::new(filter::Sampling::new(c)?),
        StageConfig::Tenant(c) => Box::new(labels::Tenant::new(c)?),
        StageConfig::Decolorize(_) => Box::new(labels::Decolorize),
        StageConfig::Pack(c) => Box::new(labels::Pack(c.clone())),
        StageConfig::StructuredMetadataDrop(c) => Box::new(edit::MetadataDrop::new(c)?),
        StageConfig::Truncate(c) => Box::new(edit::Truncate::new(c)?),
        StageConfig::Luhn(c) => Box::new(edit::Luhn::new(c)?),
        StageConfig::SplitJson(c) => Box::new(edit::SplitJson::new(c)),
        StageConfig::Metrics(c) => Box::new(custom_metrics::Metrics::new(c)?),
    })
}

/// Value of `source` in the extracted map, or the line when `source` is unset.
pub(crate) fn source_value(rec: &Record, source: Option<&str>) -> Option<String> {
    match source {
        None => Some(rec.entry.line.clone()),
        Some(s) => rec.extracted.get(s).cloned(),
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use silt_model::{Entry, Labels};

    pub fn rec(line: &str) -> Record {
        Record {
            labels: Labels::from_pairs([("job", "test")]),
            entry: Entry {
                ts: 1_000,
                line: line.to_string(),
                metadata: Labels::new(),
            },
            extracted: BTreeMap::new(),
            ack: None,
        }
    }

    pub fn pipeline(yaml: &str) -> Pipeline {
        Pipeline::new(&parse_stages(yaml).unwrap()).unwrap()
    }

    pub fn run(yaml: &str, line: &str) -> Vec<Record> {
        let mut p = pipeline(yaml);
        let mut out = vec![];
        p.process(rec(line), &mut out);
        out
    }

    pub fn one(yaml: &str, line: &str) -> Record {
        let mut v = run(yaml, line);
        assert_eq!(v.len(), 1, "expected one record");
        v.remove(0)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;

    #[test]
    fn unknown_stage_and_field_fail() {
        assert!(super::parse_stages("[{jsn: {}}]").is_err());
        assert!(super::parse_stages("[{json: {expresions: {}}}]").is_err());
        assert!(super::parse_stages("[{json: {}, cri: {}}]").is_err());
    }

    #[test]
    fn stages_chain_in_order() {
        let r = one(
            "- json: {expressions: {lvl: level, msg: ''}}\n- labels: {lvl: ''}\n- output: {source: msg}\n",
            r#"{"level":"warn","msg":"disk full"}"#,
        );
        assert_eq!(r.labels.get("lvl"), Some("warn"));
        assert_eq!(r.entry.line, "disk full");
    }
}
