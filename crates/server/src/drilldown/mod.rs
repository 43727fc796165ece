//! Endpoints of Grafana's Logs Drilldown app: index volume, detected labels and fields,
//! patterns, and the limits the app reads at start.

mod volume;

pub use volume::{volume, volume_range};

use crate::app::{json, ApiError, AppState};
use crate::encode::write_str;
use crate::params::{get, Params};
use crate::query::{engine_limits, matchers, parse_step, query_error, read_request, ReadRequest};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use silt_logql::ast::Expr;
use silt_model::Direction;
use silt_query::engine::{Engine, QueryParams};
use silt_query::fields::{field_values, FieldDetector};
use silt_query::patterns::Miner;
use silt_query::{QueryResult, StreamResult};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

/// Most lines one `/patterns` request mines (the newest ones in range): bounds memory
/// and time however long the range is.
pub const PATTERN_LINE_CAP: usize = 50_000;

/// Labels Loki always reports in `detected_labels`, whatever their values look like.
const STATIC_LABELS: &[&str] = &["cluster", "namespace", "instance", "pod"];

/// Go `strconv.ParseFloat` acceptance, close enough for telling IDs apart.
fn is_go_float(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    let l = l.strip_prefix(['+', '-']).unwrap_or(&l);
    matches!(l, "inf" | "infinity" | "nan")
        || (!l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-' | b'_'))
            && l.replace('_', "").parse::<f64>().is_ok())
}

/// google/uuid `Parse`: 32 hex digits, the dashed 36-char form, `{…}` or `urn:uuid:`.
fn is_uuid(v: &str) -> bool {
    let v = v
        .strip_prefix("urn:uuid:")
        .or_else(|| v.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .unwrap_or(v);
    let b = v.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        }),
        _ => false,
    }
}

/// Loki's `shouldRejectLabel`: no values, or only numbers/UUIDs (a 0/1 pair is a flag).
fn reject_label(values: &BTreeSet<&str>) -> bool {
    if values.is_empty() {
        return true;
    }
    if values.len() <= 2 && values.iter().all(|v| matches!(*v, "0" | "1")) {
        return false;
    }
    values.iter().all(|v| is_go_float(v) || is_uuid(v))
}

pub async fn detected_labels(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = read_request(&state, &headers, q, &body)?;
    let m = matchers(get(&r.params, "query"), true)?;
    let streams = crate::unflushed::streams(&state, &r.tenant, &m, (r.start, r.end)).await?;
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &streams {
        for (k, v) in s.iter() {
            values.entry(k).or_default().insert(v);
        }
    }
    let kept: Vec<_> = values
        .iter()
        .filter(|(k, v)| (STATIC_LABELS.contains(k) && !v.is_empty()) || !reject_label(v))
        .collect();
    if kept.is_empty() {
        return Ok(json("{}".into()));
    }
    let mut out = String::from("{\"detectedLabels\":[");
    for (i, (k, v)) in kept.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        write_str(&mut out, k);
        let _ = write!(out, ",\"cardinality\":{}}}", v.len());
    }
    out.push_str("]}");
    Ok(json(out))
}

/// A positive integer parameter with a default.
fn positive(p: &Params, names: &[&str], default: usize) -> Result<usize, ApiError> {
    let Some((name, s)) = names
        .iter()
        .find_map(|n| get(p, n).filter(|s| !s.is_empty()).map(|s| (n, s)))
    else {
        return Ok(default);
    };
    match s.parse::<u32>() {
        Ok(0) => Ok(default),
        Ok(n) => Ok(n as usize),
        Err(_) => Err(ApiError::bad_request(format!(
            "cannot parse \"{s}\" to a valid {name}"
        ))),
    }
}

/// Runs the log query `expr` (newest `limit` lines, labels by category) for a sample.
async fn sample(
    state: &Arc<AppState>,
    r: &ReadRequest,
    expr: Expr,
    limit: usize,
) -> Result<Vec<StreamResult>, ApiError> {
    let mut limits = engine_limits(state, Instant::now());
    limits.max_entries = limits.max_entries.max(limit);
    let source = crate::query::source(state);
    let (tenant, start, end) = (r.tenant.clone(), r.start, r.end);
    let result = tokio::task::spawn_blocking(move || {
        Engine::new(&*source, limits).eval(&QueryParams {
            tenant: &tenant,
            expr: &expr,
            start,
            end,
            step: 0,
            interval: 0,
            limit,
            direction: Direction::Backward,
            instant: false,
            categorize: true,
        })
    })
    .await
    .map_err(|e| ApiError::new(500, format!("query failed: {e}")))?
    .map_err(query_error)?;
    match result {
        QueryResult::Streams(s) => Ok(s),
        _ => Err(ApiError::bad_request("only log queries are supported")),
    }
}

fn log_query(p: &Params) -> Result<Expr, ApiError> {
    let q = get(p, "query")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter is required"))?;
    match silt_logql::parse(q).map_err(|e| ApiError::bad_request(e.to_string()))? {
        e @ Expr::Log(_) => Ok(e),
        Expr::Metric(_) => Err(ApiError::bad_request(
            "only log queries are supported: metric queries have no fields",
        )),
    }
}

/// Shared by `detected_fields` and `detected_field/{name}/values`.
struct FieldsRequest {
    streams: Vec<StreamResult>,
    limit: usize,
}

async fn fields_request(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
) -> Result<FieldsRequest, ApiError> {
    let r = read_request(state, headers, q, body)?;
    let expr = log_query(&r.params)?;
    let line_limit = positive(&r.params, &["line_limit"], 100)?;
    let max = state.cfg.limits.max_entries_limit_per_query;
    if line_limit > max {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({line_limit} > {max})"
        )));
    }
    let limit = positive(&r.params, &["limit", "field_limit"], 1000)?;
    // Accepted for compatibility (logcli sends it); the sample has no time buckets.
    if let Some(s) = get(&r.params, "step").filter(|s| !s.is_empty()) {
        crate::params::parse_duration_ns(s)?;
    }
    let streams = sample(state, &r, expr, line_limit).await?;
    Ok(FieldsRequest { streams, limit })
}

pub async fn detected_fields(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let f = fields_request(&state, &headers, q, &body).await?;
    let mut d = FieldDetector::new(f.limit);
    for row in f.streams.iter().flat_map(|s| &s.rows) {
        d.add(row);
    }
    let fields = d.finish();
    if fields.is_empty() {
        return Ok(json("{}".into()));
    }
    let mut out = String::from("{\"fields\":[");
    for (i, fd) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        write_str(&mut out, &fd.label);
        let _ = write!(
            out,
            ",\"type\":\"{}\",\"cardinality\":{},\"parsers\":",
            fd.ty.as_str(),
            fd.cardinality
        );
        write_list(&mut out, &fd.parsers, "null");
        if !fd.json_path.is_empty() {
            out.push_str(",\"jsonPath\":");
            write_list(&mut out, &fd.json_path, "[]");
        }
        out.push('}');
    }
    let _ = write!(out, "],\"limit\":{}}}", f.limit);
    Ok(json(out))
}

fn write_list(out: &mut String, items: &[String], empty: &str) {
    if items.is_empty() {
        out.push_str(empty);
        return;
    }
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, s);
    }
    out.push(']');
}

pub async fn detected_field_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let f = fields_request(&state, &headers, q, &body).await?;
    let values = field_values(f.streams.iter().flat_map(|s| &s.rows), &name, f.limit);
    if values.is_empty() {
        return Ok(json("{}".into()));
    }
    let mut out = format!("{{\"limit\":{},\"values\":", f.limit);
    write_list(&mut out, &values, "[]");
    out.push('}');
    Ok(json(out))
}

pub async fn patterns(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = read_request(&state, &headers, q, &body)?;
    let query = get(&r.params, "query")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter is required"))?;
    // Loki takes a stream selector only.
    let expr = silt_logql::parse(query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !matches!(&expr, Expr::Log(l) if l.pipeline.is_empty()) {
        return Err(ApiError::bad_request("only label matchers are supported"));
    }
    let step = parse_step(&r.params, r.start, r.end)?;
    let streams = sample(&state, &r, expr, PATTERN_LINE_CAP).await?;
    let step_ms = step / 1_000_000;
    let series = tokio::task::spawn_blocking(move || {
        let mut miner = Miner::new(step_ms);
        for (i, s) in streams.iter().enumerate() {
            // The sample is newest first; each stream is mined in time order.
            for row in s.rows.iter().rev() {
                let level = row
                    .labels
                    .metadata
                    .get("detected_level")
                    .unwrap_or("unknown");
                miner.add(i, level, row.ts, &row.line);
            }
        }
        miner.finish()
    })
    .await
    .map_err(|e| ApiError::new(500, format!("pattern mining failed: {e}")))?;
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, p) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"pattern\":");
        write_str(&mut out, &p.pattern);
        out.push_str(",\"level\":");
        write_str(&mut out, &p.level);
        out.push_str(",\"samples\":[");
        for (j, (ms, n)) in p.samples.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{},{n}]", ms.div_euclid(1000));
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    Ok(json(out))
}

fn string_array(items: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, s.as_ref());
    }
    out.push(']');
    out
}

/// `/drilldown-limits`: Loki's allowlisted tenant limits under their YAML names. Patterns
/// are always available here (mined at query time), so the app shows its Patterns tab.
pub async fn drilldown_limits(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::app::tenant(&state, &headers)?;
    let l = &state.cfg.limits;
    let dur = |d: std::time::Duration| silt_logql::units::prom_duration_string(d.as_nanos() as i64);
    let otlp = format!(
        "{{\"resource_attributes\":{{\"attributes_config\":[{{\"action\":\"index_label\",\"attributes\":{}}}]}}}}",
        string_array(silt_proto::otlp::DEFAULT_INDEX_LABEL_ATTRIBUTES)
    );
    let body = format!(
        concat!(
            "{{\"limits\":{{\"discover_log_levels\":{},\"discover_service_name\":{},",
            "\"log_level_fields\":{},\"max_entries_limit_per_query\":{},",
            "\"max_line_size_truncate\":{},\"max_query_bytes_read\":\"0B\",",
            "\"max_query_length\":\"{}\",\"max_query_lookback\":\"0s\",\"max_query_range\":\"0s\",",
            "\"max_query_series\":{},\"metric_aggregation_enabled\":false,\"otlp_config\":{},",
            "\"pattern_persistence_enabled\":false,\"query_timeout\":\"{}\",",
            "\"retention_period\":\"{}\",\"volume_enabled\":true,\"volume_max_series\":1000}},",
            "\"pattern_ingester_enabled\":true,\"version\":\"{}\"}}"
        ),
        l.discover_log_levels,
        string_array(&l.discover_service_name),
        string_array(silt_proto::enrich::DEFAULT_LOG_LEVEL_FIELDS),
        l.max_entries_limit_per_query,
        l.max_line_size_truncate,
        dur(l.max_query_length),
        l.max_query_series,
        otlp,
        dur(l.query_timeout),
        if state.cfg.compactor.retention_enabled {
            dur(l.retention_period)
        } else {
            "0s".into()
        },
        env!("CARGO_PKG_VERSION"),
    );
    Ok(json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_like_labels_are_rejected() {
        let set = |v: &[&'static str]| v.iter().copied().collect::<BTreeSet<&str>>();
        assert!(reject_label(&set(&["1", "22", "3.5"])));
        assert!(reject_label(&set(&[
            "53f3ab688197f93f0bfb7361caa9ed8b",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
        ])));
        assert!(!reject_label(&set(&["0", "1"])));
        assert!(!reject_label(&set(&["1", "prod"])));
        assert!(reject_label(&set(&[])));
    }
}
