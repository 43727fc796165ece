//! Distributor-side validation and enrichment of decoded push requests.

use crate::enrich::{
    add_service_name, detect_level_with, is_internal_stream, normalize_log_level,
    sanitize_metadata, stream_level, LevelDetection, DEFAULT_DISCOVER_SERVICE_NAME, DETECTED_LEVEL,
    SERVICE_NAME_LABEL,
};
use crate::enrich::{needs_sanitizing, Fields};
use crate::error::PushError;
use crate::push::{PushRequest, PushStream};
use crate::time::format_rfc3339;
use crate::view::{EntryView, MetaPair, PushView};
use silt_model::Labels;
use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

/// Per-tenant validation limits, with Loki's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Maximum line length in bytes (`max_line_size`, 256 KiB; 0 = unlimited).
    pub max_line_size: usize,
    /// Truncate long lines instead of rejecting them (`max_line_size_truncate`, false).
    pub max_line_size_truncate: bool,
    /// Maximum label names per stream, `service_name` not counted (15).
    pub max_label_names_per_series: usize,
    /// Maximum label name length in bytes (1024).
    pub max_label_name_length: usize,
    /// Maximum label value length in bytes (2048).
    pub max_label_value_length: usize,
    /// Reject entries older than `now - reject_old_samples_max_age` (true).
    pub reject_old_samples: bool,
    /// Age limit for `reject_old_samples` (7 days).
    pub reject_old_samples_max_age: Duration,
    /// Entries newer than `now + creation_grace_period` are rejected (10 minutes).
    pub creation_grace_period: Duration,
    /// Whether structured metadata may be sent (true).
    pub allow_structured_metadata: bool,
    /// Maximum structured metadata bytes (names + values) per entry (64 KiB; 0 = unlimited).
    pub max_structured_metadata_size: usize,
    /// Maximum structured metadata pairs per entry (128; 0 = unlimited).
    pub max_structured_metadata_entries_count: usize,
    /// Labels consulted for `service_name`, in order; empty disables the discovery.
    pub discover_service_name: Vec<String>,
    /// Add `detected_level` structured metadata (true; needs `allow_structured_metadata`).
    pub discover_log_levels: bool,
    /// Level field names and JSON depth used by the detection.
    pub level_detection: LevelDetection,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_line_size: 256 * 1024,
            max_line_size_truncate: false,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples: true,
            reject_old_samples_max_age: Duration::from_secs(7 * 24 * 3600),
            creation_grace_period: Duration::from_secs(10 * 60),
            allow_structured_metadata: true,
            max_structured_metadata_size: 64 * 1024,
            max_structured_metadata_entries_count: 128,
            discover_service_name: DEFAULT_DISCOVER_SERVICE_NAME
                .iter()
                .map(|s| s.to_string())
                .collect(),
            discover_log_levels: true,
            level_detection: LevelDetection::default(),
        }
    }
}

/// Message of the 422 answer to a request without streams.
pub const MISSING_STREAMS_MSG: &str = "error at least one valid stream is required for ingestion";
/// Message for a stream whose label set is empty.
pub const MISSING_LABELS_MSG: &str = "error at least one label pair is required per stream";

/// Outcome of [`validate_and_enrich`]: what to store and what to answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidatedPush {
    /// Accepted streams with enriched labels (`service_name`) and entries (`detected_level`,
    /// normalised structured metadata). Streams left without entries are omitted.
    pub streams: Vec<PushStream>,
    /// Number of accepted entries.
    pub accepted_entries: usize,
    /// Bytes of accepted lines plus structured metadata (what Loki's rate limits count).
    pub accepted_bytes: usize,
    /// Number of rejected entries.
    pub rejected_entries: usize,
    /// Each rejection message, in order (one per rejected stream or entry).
    pub errors: Vec<String>,
    /// The error to answer with: 422 without streams, 400 (aggregated messages) when anything
    /// was rejected, `None` for 204. Accepted streams must still be written on 400.
    pub error: Option<PushError>,
}

impl ValidatedPush {
    /// HTTP status to answer with: 204, 400 or 422.
    pub fn status(&self) -> u16 {
        self.error.as_ref().map(PushError::status).unwrap_or(204)
    }
}

/// Joins messages like Loki's `GroupedErrors`: a single message alone as is; otherwise each
/// distinct message (first-seen order) prefixed `N errors like: `, joined with `; `.
pub fn group_errors(errors: &[String]) -> String {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for e in errors {
        match groups.iter_mut().find(|(m, _)| *m == e.as_str()) {
            Some(g) => g.1 += 1,
            None => groups.push((e, 1)),
        }
    }
    let prefix = groups.len() > 1;
    groups
        .iter()
        .map(|(m, n)| {
            if prefix || *n > 1 {
                format!("{n} errors like: {m}")
            } else {
                m.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn validate_labels(ls: &Labels, limits: &ValidationLimits) -> Result<(), String> {
    if ls.is_empty() {
        return Err(MISSING_LABELS_MSG.to_string());
    }
    if is_internal_stream(ls) {
        return Ok(());
    }
    let n = ls.len() - usize::from(ls.contains(SERVICE_NAME_LABEL));
    if n > limits.max_label_names_per_series {
        return Err(format!(
            "entry for stream '{ls}' has {n} label names; limit {}",
            limits.max_label_names_per_series
        ));
    }
    for (k, v) in ls.iter() {
        if k.len() > limits.max_label_name_length {
            return Err(format!("stream '{ls}' has label name too long: '{k}'"));
        }
        if v.len() > limits.max_label_value_length {
            return Err(format!("stream '{ls}' has label value too long: '{v}'"));
        }
    }
    Ok(())
}

struct EntryBounds {
    oldest: Option<i64>,
    newest: i64,
}

fn validate_entry(
    ls: &Labels,
    e: &EntryView<'_>,
    meta: &[MetaPair<'_>],
    limits: &ValidationLimits,
    b: &EntryBounds,
) -> Result<(), String> {
    if let Some(oldest) = b.oldest {
        if e.ts < oldest {
            return Err(format!(
                "entry for stream '{ls}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                format_rfc3339(e.ts),
                format_rfc3339(oldest)
            ));
        }
    }
    if e.ts > b.newest {
        return Err(format!(
            "entry for stream '{ls}' has timestamp too new: {}",
            format_rfc3339(e.ts)
        ));
    }
    if limits.max_line_size != 0 && e.line.len() > limits.max_line_size {
        return Err(format!(
            "Max entry size '{}' bytes exceeded for stream '{ls}' while adding an entry with length '{}' bytes",
            limits.max_line_size,
            e.line.len()
        ));
    }
    let count = meta.len();
    if count > 0 {
        if !limits.allow_structured_metadata {
            return Err(format!("stream '{ls}' includes structured metadata, but this feature is disallowed. Please see `limits_config.allow_structured_metadata` or contact your Loki administrator to enable it."));
        }
        let size = meta_size(meta);
        if limits.max_structured_metadata_size != 0 && size > limits.max_structured_metadata_size {
            return Err(format!("stream '{ls}' has structured metadata too large: '{size}' bytes, limit: '{}' bytes. Please see `limits_config.max_structured_metadata_size` or contact your Loki administrator to increase it.", limits.max_structured_metadata_size));
        }
        if limits.max_structured_metadata_entries_count != 0
            && count > limits.max_structured_metadata_entries_count
        {
            return Err(format!("stream '{ls}' has too many structured metadata labels: '{count}', limit: '{}'. Please see `limits_config.max_structured_metadata_entries_count` or contact your Loki administrator to increase it.", limits.max_structured_metadata_entries_count));
        }
    }
    Ok(())
}

/// Names plus values, as Loki's limits count structured metadata.
fn meta_size(meta: &[MetaPair<'_>]) -> usize {
    meta.iter().map(|(k, v)| k.len() + v.len()).sum()
}

fn truncate_at_char_boundary(s: &mut Cow<'_, str>, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        match s {
            Cow::Borrowed(b) => *b = &b[..cut],
            Cow::Owned(o) => o.truncate(cut),
        }
    }
}

fn dur_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Outcome of [`validate_view`]: like [`ValidatedPush`], with the accepted entries still
/// borrowing from the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckedPush<'a> {
    /// Accepted streams and entries, enriched; each entry's metadata run is final.
    pub view: PushView<'a>,
    /// Number of accepted entries.
    pub accepted_entries: usize,
    /// Bytes of accepted lines plus structured metadata.
    pub accepted_bytes: usize,
    /// Number of rejected entries.
    pub rejected_entries: usize,
    /// Each rejection message, in order.
    pub errors: Vec<String>,
    /// The error to answer with, as in [`ValidatedPush::error`].
    pub error: Option<PushError>,
}

impl CheckedPush<'_> {
    /// Copies the accepted entries into owned streams.
    pub fn into_owned(self) -> ValidatedPush {
        let streams = self.view.to_request().streams;
        ValidatedPush {
            streams,
            accepted_entries: self.accepted_entries,
            accepted_bytes: self.accepted_bytes,
            rejected_entries: self.rejected_entries,
            errors: self.errors,
            error: self.error,
        }
    }
}

/// Validates and enriches a decoded push request as Loki's distributor does.
///
/// * No streams at all → 422 [`MISSING_STREAMS_MSG`]. Streams without entries are skipped.
/// * `service_name` is added per [`add_service_name`] (before label validation, not counted
///   against `max_label_names_per_series`).
/// * Stream checks (empty label set, label count, name/value lengths) reject the whole stream
///   with one message; entry checks (too old, too new, line size, structured metadata allowed /
///   size / count) reject single entries.
/// * Accepted entries get normalised structured-metadata names and, when enabled, a
///   `detected_level` (an existing one is normalised instead).
/// * Rejections are aggregated into a 400 whose body follows Loki's grouping (see
///   [`group_errors`]); accepted streams are returned either way (partial success).
///
/// `now_ns` is the current time in nanoseconds since the epoch.
pub fn validate_and_enrich(
    req: PushRequest,
    limits: &ValidationLimits,
    now_ns: i64,
) -> ValidatedPush {
    validate_view(PushView::of(&req), limits, now_ns).into_owned()
}

/// [`validate_and_enrich`] on a view: accepted lines are not copied.
pub fn validate_view<'a>(
    req: PushView<'a>,
    limits: &ValidationLimits,
    now_ns: i64,
) -> CheckedPush<'a> {
    let mut out = CheckedPush::default();
    if req.streams.is_empty() {
        out.error = Some(PushError::unprocessable(MISSING_STREAMS_MSG));
        return out;
    }
    let bounds = EntryBounds {
        oldest: limits
            .reject_old_samples
            .then(|| now_ns.saturating_sub(dur_ns(limits.reject_old_samples_max_age))),
        newest: now_ns.saturating_add(dur_ns(limits.creation_grace_period)),
    };
    let detect = limits.allow_structured_metadata && limits.discover_log_levels;
    let mut fatal: Option<PushError> = None;
    let mut meta = req.meta;

    for mut stream in req.streams {
        if stream.entries.is_empty() {
            continue;
        }
        if limits.max_line_size_truncate && limits.max_line_size != 0 {
            for e in &mut stream.entries {
                truncate_at_char_boundary(&mut e.line, limits.max_line_size);
            }
        }
        add_service_name(&mut stream.labels, &limits.discover_service_name);
        if let Err(msg) = validate_labels(&stream.labels, limits) {
            out.rejected_entries += stream.entries.len();
            out.errors.push(msg);
            continue;
        }
        let entries = std::mem::take(&mut stream.entries);
        let stream_level = stream_level(&stream.labels, &limits.level_detection);
        let mut kept = Vec::with_capacity(entries.len());
        for mut e in entries {
            if let Err(msg) =
                validate_entry(&stream.labels, &e, &meta[e.meta.clone()], limits, &bounds)
            {
                out.rejected_entries += 1;
                out.errors.push(msg);
                continue;
            }
            if let Err(msg) = sanitize_run(&mut meta, &mut e.meta) {
                fatal.get_or_insert_with(|| PushError::bad_request(msg));
                out.rejected_entries += 1;
                continue;
            }
            if detect {
                let run = &meta[e.meta.clone()];
                let level: Option<Cow<'a, str>> =
                    match detect_level_with(stream_level, run, &e.line, &limits.level_detection) {
                        Some(level) => Some(level.into()),
                        None => run
                            .field(DETECTED_LEVEL)
                            .map(normalize_log_level)
                            .filter(|n| Some(n.as_str()) != run.field(DETECTED_LEVEL))
                            .map(Cow::Owned),
                    };
                if let Some(level) = level {
                    set_in_run(&mut meta, &mut e.meta, DETECTED_LEVEL, level);
                }
            }
            out.accepted_entries += 1;
            out.accepted_bytes += e.line.len() + meta_size(&meta[e.meta.clone()]);
            kept.push(e);
        }
        if !kept.is_empty() {
            stream.entries = kept;
            out.view.streams.push(stream);
        }
    }
    out.view.meta = meta;
    if let Some(f) = fatal {
        // Loki fails the whole request when metadata names cannot be normalised.
        out.rejected_entries += out.accepted_entries;
        out.accepted_entries = 0;
        out.accepted_bytes = 0;
        out.view = PushView::default();
        out.errors.push(f.message().to_string());
        out.error = Some(f);
        return out;
    }
    if !out.errors.is_empty() {
        out.error = Some(PushError::bad_request(group_errors(&out.errors)));
    }
    out
}

/// Normalises an entry's metadata names and values in place (a new run when anything changes).
fn sanitize_run(meta: &mut Vec<MetaPair<'_>>, run: &mut Range<usize>) -> Result<(), String> {
    if !meta[run.clone()]
        .iter()
        .any(|(k, v)| needs_sanitizing(k, v))
    {
        return Ok(());
    }
    let owned = Labels::from_sorted_unchecked(
        meta[run.clone()]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let clean = sanitize_metadata(&owned)?;
    let start = meta.len();
    meta.extend(
        clean
            .into_vec()
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))),
    );
    *run = start..meta.len();
    Ok(())
}

/// Sets `name` in an entry's sorted metadata run: a copy of the run with the pair in place is
/// appended, since runs of other entries follow this one.
fn set_in_run<'a>(
    meta: &mut Vec<MetaPair<'a>>,
    run: &mut Range<usize>,
    name: &'static str,
    value: Cow<'a, str>,
) {
    let start = meta.len();
    let at = meta[run.clone()].partition_point(|(k, _)| k.as_ref() < name);
    let replaces = meta
        .get(run.start + at)
        .is_some_and(|(k, _)| run.start + at < run.end && k == name);
    meta.extend_from_within(run.start..run.start + at);
    if !value.is_empty() {
        meta.push((Cow::Borrowed(name), value));
    }
    meta.extend_from_within(run.start + at + usize::from(replaces)..run.end);
    *run = start..meta.len();
}
