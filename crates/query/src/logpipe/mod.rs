//! Log pipelines: the per-entry stages of LogQL, and sample extraction for metric queries.

mod filters;
mod hints;
mod json_stage;
mod jsoneachkey;
mod jsonparser;
mod labels;
mod parsers;
mod template;

pub use hints::Hints;
pub use labels::EntryLabels;

/// Field extraction the detected-fields API reuses.
pub mod extract {
    pub use super::filters::{parse_bytes, parse_go_duration};
    pub use super::json_stage::json_fields_with_paths;
    pub use super::parsers::logfmt;
}

use crate::{Error, Result};
use filters::{parse_bytes, parse_go_duration, CompiledLineFilter, LabelFilter};
use regex::Regex;
use silt_logql::ast::{
    Grouping, LabelFormat, LabelSelection, RangeAggregation, RangeOp, Stage, UnwrapConv,
};
use silt_logql::pattern::Pattern;
use silt_model::{Entry, Labels, Timestamp};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use template::{Ctx, Template};

#[derive(Debug)]
enum Compiled {
    Line(CompiledLineFilter),
    /// `(label, path in jsonparser form)`; no params means `| json` on every field.
    Json(Vec<(String, Vec<String>)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    Regexp(Regex),
    Pattern(Pattern),
    Unpack,
    Label(LabelFilter),
    LineFormat(Template),
    LabelFormat(Vec<(String, LabelFmt)>),
    Drop(Vec<LabelSelection>),
    Keep(Vec<LabelSelection>),
    Decolorize,
}

#[derive(Debug)]
enum LabelFmt {
    Rename(String),
    Template(Template),
}

/// The pipeline's leading line filters as one predicate (they depend on the line
/// alone, so a source may apply them before building entries); `None` if there are none.
pub fn line_prefilter(stages: &[Stage]) -> Result<Option<crate::LinePredicate>> {
    let leading: Vec<&silt_logql::ast::LineFilter> = stages
        .iter()
        .map_while(|s| match s {
            Stage::LineFilter(f) => Some(f),
            _ => None,
        })
        .collect();
    if leading.is_empty() {
        return Ok(None);
    }
    let filters = leading
        .iter()
        .map(|f| CompiledLineFilter::new(f))
        .collect::<Result<Vec<_>>>()?;
    let required = crate::needles::required(&leading);
    Ok(Some(
        crate::LinePredicate::new(move |line: &str| filters.iter().all(|f| f.keep(line)))
            .with_required(required),
    ))
}

/// A compiled log pipeline.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<Compiled>,
    /// The labels `json`/`logfmt` must set; `None`: all.
    hints: Option<Hints>,
}

fn invalid(e: impl std::fmt::Display) -> Error {
    Error::InvalidQuery(e.to_string())
}

impl Pipeline {
    /// Compiles `stages`; bad regexes, patterns and templates are query errors.
    pub fn new(stages: &[Stage]) -> Result<Pipeline> {
        let mut out = Vec::with_capacity(stages.len());
        for s in stages {
            out.push(match s {
                Stage::LineFilter(f) => Compiled::Line(CompiledLineFilter::new(f)?),
                Stage::Json { params } => Compiled::Json(
                    params
                        .iter()
                        .map(|(n, p)| {
                            parsers::parse_path(p)
                                .map(|p| (n.clone(), parsers::path_strings(&p)))
                                .map_err(invalid)
                        })
                        .collect::<Result<_>>()?,
                ),
                Stage::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => Compiled::Logfmt {
                    strict: *strict,
                    keep_empty: *keep_empty,
                    params: params.clone(),
                },
                Stage::Regexp(r) => Compiled::Regexp(Regex::new(r).map_err(invalid)?),
                Stage::Pattern(p) => Compiled::Pattern(Pattern::new(p).map_err(invalid)?),
                Stage::Unpack => Compiled::Unpack,
                Stage::LabelFilter(f) => Compiled::Label(LabelFilter::new(f)?),
                Stage::LineFormat(t) => Compiled::LineFormat(Template::parse(t).map_err(invalid)?),
                Stage::LabelFormat(fs) => Compiled::LabelFormat(
                    fs.iter()
                        .map(|f| match f {
                            LabelFormat::Rename { dst, src } => {
                                Ok((dst.clone(), LabelFmt::Rename(src.clone())))
                            }
                            LabelFormat::Template { dst, template } => Ok((
                                dst.clone(),
                                LabelFmt::Template(Template::parse(template).map_err(invalid)?),
                            )),
                        })
                        .collect::<Result<_>>()?,
                ),
                Stage::Drop(l) => Compiled::Drop(l.clone()),
                Stage::Keep(l) => Compiled::Keep(l.clone()),
                Stage::Decolorize => Compiled::Decolorize,
            });
        }
        Ok(Pipeline {
            stages: out,
            hints: None,
        })
    }

    /// Parsers set only the labels in `hints` (see [`Hints`]).
    pub fn with_hints(mut self, hints: Option<Hints>) -> Self {
        self.hints = hints;
        self
    }

    /// Whether the pipeline leaves every entry unchanged.
    pub fn is_noop(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs the stages over one entry; `None` when a filter dropped it.
    pub fn process(
        &self,
        ts: Timestamp,
        line: &str,
        labels: EntryLabels,
    ) -> Option<(String, EntryLabels)> {
        self.process_cow(ts, line, labels)
            .map(|(l, labels)| (l.into_owned(), labels))
    }

    /// [`Pipeline::process`], borrowing the line when no stage rewrote it.
    pub fn process_cow<'l>(
        &self,
        ts: Timestamp,
        line: &'l str,
        mut labels: EntryLabels,
    ) -> Option<(Cow<'l, str>, EntryLabels)> {
        let hints = self.hints.as_ref();
        let mut owned: Option<String> = None;
        for st in &self.stages {
            let cur: &str = owned.as_deref().unwrap_or(line);
            match st {
                Compiled::Line(f) => {
                    if !f.keep(cur) {
                        return None;
                    }
                }
                Compiled::Json(params) if params.is_empty() => {
                    json_stage::json_all(cur, &mut labels, hints)
                }
                Compiled::Json(params) => json_stage::json_expr(cur, params, &mut labels),
                Compiled::Logfmt {
                    strict,
                    keep_empty,
                    params,
                } => parsers::logfmt(cur, *strict, *keep_empty, params, &mut labels, hints),
                Compiled::Regexp(re) => parsers::regexp(cur, re, &mut labels),
                Compiled::Pattern(p) => parsers::pattern(cur, p, &mut labels),
                Compiled::Unpack => {
                    if let Some(entry) = json_stage::unpack(cur, &mut labels) {
                        owned = Some(entry);
                    }
                }
                Compiled::Label(f) => {
                    if !f.keep(&mut labels) {
                        return None;
                    }
                }
                Compiled::LineFormat(t) => {
                    let map = label_map(&labels);
                    match t.render(&Ctx {
                        labels: &map,
                        line: cur,
                        ts,
                    }) {
                        Ok(l) => owned = Some(l),
                        Err(e) => labels.set_error("TemplateFormatErr", &e),
                    }
                }
                Compiled::LabelFormat(fs) => {
                    let map = label_map(&labels);
                    for (dst, f) in fs {
                        match f {
                            LabelFmt::Rename(src) => {
                                if let Some(v) = labels.get(src).map(str::to_string) {
                                    labels.remove(src);
                                    labels.set(dst, &v);
                                }
                            }
                            LabelFmt::Template(t) => match t.render(&Ctx {
                                labels: &map,
                                line: cur,
                                ts,
                            }) {
                                Ok(v) => labels.set(dst, &v),
                                Err(e) => labels.set_error("TemplateFormatErr", &e),
                            },
                        }
                    }
                }
                Compiled::Drop(sel) => {
                    for s in sel {
                        let hit = match &s.matcher {
                            None => true,
                            Some(m) => labels.get(&s.name).is_some_and(|v| m.matches(v)),
                        };
                        if hit {
                            labels.remove(&s.name);
                        }
                    }
                }
                Compiled::Keep(sel) => {
                    for name in labels.names() {
                        if name == "__error__" || name == "__error_details__" {
                            continue;
                        }
                        let kept = sel.iter().any(|s| {
                            s.name == name
                                && s.matcher
                                    .as_ref()
                                    .is_none_or(|m| labels.get(&name).is_some_and(|v| m.matches(v)))
                        });
                        if !kept {
                            labels.remove(&name);
                        }
                    }
                }
                Compiled::Decolorize => owned = Some(decolorize(cur)),
            }
        }
        Some((owned.map_or(Cow::Borrowed(line), Cow::Owned), labels))
    }

    /// Runs the stages over entries of one stream (live tail: entries that never went
    /// through a source); the rows that pass, in input order.
    pub fn run_stream<'e>(
        &self,
        stream: &Arc<Labels>,
        entries: impl IntoIterator<Item = &'e Entry>,
    ) -> Vec<crate::LogRow> {
        entries
            .into_iter()
            .filter_map(|e| {
                let labels = EntryLabels::new(stream.clone(), e.metadata.clone());
                let (line, labels) = self.process(e.ts, &e.line, labels)?;
                Some(crate::LogRow {
                    ts: e.ts,
                    line,
                    labels,
                })
            })
            .collect()
    }
}

fn label_map(l: &EntryLabels) -> HashMap<String, String> {
    l.flatten()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Strips ANSI escape sequences (CSI `ESC [ … final`, and two-byte `ESC x`).
fn decolorize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if it.next() == Some('[') {
            for n in it.by_ref() {
                if ('@'..='~').contains(&n) {
                    break;
                }
            }
        }
    }
    out
}

/// Turns entries into `(series labels, value)` samples for a range aggregation.
#[derive(Debug)]
pub struct SampleExtractor {
    pipeline: Pipeline,
    op: RangeOp,
    unwrap: Option<(String, UnwrapConv, Vec<LabelFilter>)>,
    drop_unwrapped: bool,
}

impl SampleExtractor {
    /// Compiles the pipeline, unwrap and post-filters of `agg`; parsers set every label.
    pub fn new(agg: &RangeAggregation) -> Result<SampleExtractor> {
        Self::grouped(agg, None)
    }

    /// [`SampleExtractor::new`] for samples whose series keep only the labels of `series`
    /// (plus the error labels, see `EntryLabels::project`): parsers then set only the
    /// labels the pipeline, unwrap and that grouping read (see [`Hints`]).
    pub fn grouped(agg: &RangeAggregation, series: Option<&Grouping>) -> Result<SampleExtractor> {
        let unwrap = match &agg.unwrap {
            Some(u) => Some((
                u.label.clone(),
                u.conv,
                u.post_filters
                    .iter()
                    .map(LabelFilter::new)
                    .collect::<Result<Vec<_>>>()?,
            )),
            None => None,
        };
        let pipeline = Pipeline::new(&agg.log.pipeline)?;
        let hints = hints::for_grouping(
            &pipeline.stages,
            series,
            unwrap.as_ref().map(|u| u.0.as_str()),
            unwrap.as_ref().map_or(&[], |u| u.2.as_slice()),
        );
        Ok(SampleExtractor {
            pipeline: pipeline.with_hints(hints),
            op: agg.op,
            drop_unwrapped: agg.grouping.is_none(),
            unwrap,
        })
    }

    /// The structured metadata names the samples can depend on (`None`: any): those the
    /// hints name, the names hinted labels take before an `_extracted` suffix (a parsed key
    /// colliding with metadata is renamed), and the error labels.
    pub fn metadata_read(&self) -> Option<Vec<String>> {
        let hints = self.pipeline.hints.as_ref()?;
        let mut names: Vec<String> = hints::ALWAYS.iter().map(|n| n.to_string()).collect();
        for n in hints.names() {
            names.push(n.clone());
            if let Some(base) = n.strip_suffix("_extracted") {
                names.push(base.to_string());
            }
        }
        Some(names)
    }

    /// The sample for one entry and its labels; `None` when filtered out or skipped.
    /// The labels keep `__error__` so the evaluator can apply Loki's pipeline-error rule;
    /// the evaluator decides which of them form the series (see `EntryLabels::project`).
    pub fn extract(
        &self,
        ts: Timestamp,
        line: &str,
        labels: EntryLabels,
    ) -> Option<(EntryLabels, f64)> {
        let (line, mut labels) = self.pipeline.process_cow(ts, line, labels)?;
        let value = match &self.unwrap {
            None => match self.op {
                RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
                _ => 1.0,
            },
            Some((name, conv, post)) => {
                let raw = labels.get(name).unwrap_or("").to_string();
                let v = if raw.is_empty() && !labels.has_error() {
                    return None;
                } else {
                    let parsed = match conv {
                        UnwrapConv::None => raw.trim().parse::<f64>().ok(),
                        UnwrapConv::Duration => parse_go_duration(&raw),
                        UnwrapConv::Bytes => parse_bytes(&raw).map(|b| b as f64),
                    };
                    match parsed {
                        Some(v) => v,
                        None => {
                            labels.set_error(
                                "SampleExtractionErr",
                                &format!("{name}: cannot convert {raw:?}"),
                            );
                            0.0
                        }
                    }
                };
                for f in post {
                    if !f.keep(&mut labels) {
                        return None;
                    }
                }
                if self.drop_unwrapped {
                    labels.remove(name);
                }
                v
            }
        };
        Some((labels, value))
    }
}

#[cfg(test)]
mod json_tests;
#[cfg(test)]
mod tests;
