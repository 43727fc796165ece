//! Read endpoints: query, query_range, labels, label values, series, index stats, format_query.

use crate::app::{json, tenant, ApiError, AppState};
use crate::encode::{self, QueryStats};
use crate::metrics::EndpointLabel;
use crate::params::{self, get, parse_duration_ns, parse_time, time_range, Params};
use crate::unflushed::ClusterSource;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use silt_logql::ast::Expr;
use silt_model::{Direction, LabelMatcher};
use silt_query::engine::{Engine, Limits, QueryParams};
use silt_query::LogSource;
use silt_query::QueryResult;
use silt_storage::StoreSource;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NS_PER_S: i64 = 1_000_000_000;

/// URL query merged with an urlencoded form body (Loki accepts both on every read endpoint).
pub(crate) fn collect_params(query: Option<String>, body: &Bytes) -> Params {
    let mut p = Params::new();
    let mut add = |raw: &[u8]| {
        for (k, v) in form_urlencoded::parse(raw) {
            p.entry(k.into_owned()).or_default().push(v.into_owned());
        }
    };
    if let Some(q) = query {
        add(q.as_bytes());
    }
    if !body.is_empty() {
        add(body);
    }
    p
}

pub(crate) fn parse_query(p: &Params) -> Result<Expr, ApiError> {
    let q = get(p, "query").ok_or_else(|| ApiError::bad_request("query parameter is required"))?;
    if silt_logql::is_multi_variant(q) {
        return Err(ApiError::bad_request(
            "multi variant queries are disabled for this instance",
        ));
    }
    silt_logql::parse(q).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn parse_direction(p: &Params) -> Result<Direction, ApiError> {
    match get(p, "direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("backward") => Ok(Direction::Backward),
        Some("forward") => Ok(Direction::Forward),
        Some(d) => Err(ApiError::bad_request(format!("invalid direction '{d}'"))),
    }
}

pub(crate) fn parse_limit(p: &Params) -> Result<usize, ApiError> {
    match get(p, "limit") {
        None | Some("") => Ok(100),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n as usize),
            Ok(_) => Err(ApiError::bad_request("limit must be a positive value")),
            Err(_) => Err(ApiError::bad_request(format!(
                "cannot parse \"{s}\" to a valid limit"
            ))),
        },
    }
}

pub(crate) fn is_categorized(headers: &HeaderMap) -> bool {
    headers
        .get_all("x-loki-response-encoding-flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "categorize-labels")
}

pub(crate) fn query_error(e: silt_query::Error) -> ApiError {
    match e {
        silt_query::Error::Timeout => ApiError::new(504, e.to_string()),
        e if e.is_client_error() => ApiError::bad_request(e.to_string()),
        e => ApiError::new(500, e.to_string()),
    }
}

/// One query for the engine.
pub(crate) struct Run {
    pub tenant: String,
    pub expr: Expr,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub interval: i64,
    pub limit: usize,
    pub direction: Direction,
    pub instant: bool,
    pub categorize: bool,
}

async fn execute(
    state: &Arc<AppState>,
    endpoint: &'static str,
    run: Run,
) -> Result<Response, ApiError> {
    let categorize = run.categorize;
    let done = evaluate(state, endpoint, run).await?;
    let returned = match &done.result {
        QueryResult::Streams(s) => s.iter().map(|s| s.rows.len() as u64).sum(),
        QueryResult::Matrix(m) => m.iter().map(|s| s.points.len() as u64).sum(),
        QueryResult::Vector(v) => v.len() as u64,
        QueryResult::Scalar(..) => 1,
    };
    let stats = QueryStats {
        exec_time: done.ran.as_secs_f64(),
        queue_time: done.queued.as_secs_f64(),
        entries_returned: returned,
        read: done.read,
    };
    Ok(json(encode::query_response(
        &done.result,
        categorize,
        &stats,
    )))
}

/// An answer, and what it took.
pub(crate) struct Evaluated {
    pub result: QueryResult,
    /// From the call until the engine started (waiting for a blocking thread).
    pub queued: Duration,
    /// Engine time.
    pub ran: Duration,
    /// What the engine and storage read.
    pub read: Arc<silt_query::Stats>,
}

/// Runs the engine off the async runtime under the configured limits, recording
/// latency and errors under `endpoint`.
pub(crate) async fn evaluate(
    state: &Arc<AppState>,
    endpoint: &'static str,
    run: Run,
) -> Result<Evaluated, ApiError> {
    let started = Instant::now();
    let limits = engine_limits(state, started);
    let source = source(state);
    let (result, queued, ran, read) = tokio::task::spawn_blocking(move || {
        let queued = started.elapsed();
        let engine = Engine::new(&*source, limits);
        let qp = QueryParams {
            tenant: &run.tenant,
            expr: &run.expr,
            start: run.start,
            end: run.end,
            step: run.step,
            interval: run.interval,
            limit: run.limit,
            direction: run.direction,
            instant: run.instant,
            categorize: run.categorize,
        };
        let result = engine.eval(&qp);
        (
            result,
            queued,
            started.elapsed() - queued,
            engine.stats().clone(),
        )
    })
    .await
    .map_err(|e| ApiError::new(500, format!("query failed: {e}")))?;
    state
        .metrics
        .query_duration
        .get_or_create(&EndpointLabel { endpoint })
        .observe(started.elapsed().as_secs_f64());
    let result = result.map_err(|e| {
        state
            .metrics
            .query_errors
            .get_or_create(&EndpointLabel { endpoint })
            .inc();
        query_error(e)
    })?;
    Ok(Evaluated {
        result,
        queued,
        ran,
        read,
    })
}

/// What queries read: the store, and on a reader the writers' unflushed lines too. Its
/// calls block: use it on a blocking thread.
pub(crate) fn source(state: &AppState) -> Box<dyn LogSource> {
    match &state.writers {
        Some(w) => Box::new(ClusterSource::new(state.store.clone(), w.clone())),
        None => Box::new(StoreSource(state.store.clone())),
    }
}

/// The engine limits of a query started at `started`, from the configuration.
pub(crate) fn engine_limits(state: &AppState, started: Instant) -> Limits {
    let cfg = &state.cfg.limits;
    Limits {
        max_entries: cfg.max_entries_limit_per_query,
        max_series: cfg.max_query_series,
        max_points: 11_000,
        deadline: Some(started + cfg.query_timeout),
        parallelism: match cfg.max_query_parallelism {
            0 => Limits::default().parallelism,
            n => n,
        },
    }
}

/// `step` as query_range reads it: a duration, default `max(1s, range/250)`; checked.
pub(crate) fn parse_step(p: &Params, start: i64, end: i64) -> Result<i64, ApiError> {
    let step = match get(p, "step") {
        Some(s) if !s.is_empty() => parse_duration_ns(s)?,
        _ => ((end - start) / NS_PER_S / 250).max(1) * NS_PER_S,
    };
    if step <= 0 {
        return Err(ApiError::bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > 11_000 {
        return Err(ApiError::bad_request(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    Ok(step)
}

pub(crate) fn check_length(state: &AppState, start: i64, end: i64) -> Result<(), ApiError> {
    let max = state.cfg.limits.max_query_length;
    if !max.is_zero() && (end - start) as u128 > max.as_nanos() {
        return Err(ApiError::bad_request(format!(
            "the query time range exceeds the limit (query length: {:?}, limit: {:?})",
            Duration::from_nanos((end - start) as u64),
            max
        )));
    }
    Ok(())
}

pub(crate) fn check_limit(state: &AppState, expr: &Expr, limit: usize) -> Result<(), ApiError> {
    let max = state.cfg.limits.max_entries_limit_per_query;
    if matches!(expr, Expr::Log(_)) && limit > max {
        return Err(ApiError::bad_request(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
        )));
    }
    Ok(())
}

pub async fn query_range(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let p = collect_params(q, &body);
    let now = params::now_ns();
    let (start, end) = time_range(&p, now)?;
    let limit = parse_limit(&p)?;
    let direction = parse_direction(&p)?;
    let step = parse_step(&p, start, end)?;
    let interval = match get(&p, "interval") {
        Some(s) if !s.is_empty() => parse_duration_ns(s)?,
        _ => 0,
    };
    if interval < 0 {
        return Err(ApiError::bad_request("interval must be a positive value"));
    }
    check_length(&state, start, end)?;
    let expr = parse_query(&p)?;
    check_limit(&state, &expr, limit)?;
    let categorize = is_categorized(&headers);
    let run = Run {
        tenant,
        expr,
        start,
        end,
        step,
        interval,
        limit,
        direction,
        instant: false,
        categorize,
    };
    execute(&state, "query_range", run).await
}

pub async fn query_instant(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let p = collect_params(q, &body);
    let time = match get(&p, "time") {
        Some(s) if !s.is_empty() => parse_time(s)?,
        _ => params::now_ns(),
    };
    let limit = parse_limit(&p)?;
    let direction = parse_direction(&p)?;
    let expr = parse_query(&p)?;
    if matches!(expr, Expr::Log(_)) {
        return Err(ApiError::bad_request(
            "log queries are not supported as an instant query type, please change your query to a range query type",
        ));
    }
    let categorize = is_categorized(&headers);
    let run = Run {
        tenant,
        expr,
        start: time,
        end: time,
        step: 0,
        interval: 0,
        limit,
        direction,
        instant: true,
        categorize,
    };
    execute(&state, "query", run).await
}

/// Matchers of a `query`/`match[]` selector; `{}` or absent means all streams.
/// `with_pipeline`: a log pipeline after the selector is accepted and ignored.
pub(crate) fn matchers(
    s: Option<&str>,
    with_pipeline: bool,
) -> Result<Vec<LabelMatcher>, ApiError> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty() && *s != "{}") else {
        return Ok(Vec::new());
    };
    match silt_logql::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))? {
        Expr::Log(l) if with_pipeline || l.pipeline.is_empty() => Ok(l.selector),
        _ => Err(ApiError::bad_request("only label matchers are supported")),
    }
}

/// What every metadata endpoint starts from: tenant, parameters and `[start, end)`.
pub(crate) struct ReadRequest {
    pub tenant: String,
    pub params: Params,
    pub start: i64,
    pub end: i64,
}

pub(crate) fn read_request(
    state: &AppState,
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
) -> Result<ReadRequest, ApiError> {
    let tenant = tenant(state, headers)?;
    let params = collect_params(q, body);
    let (start, end) = time_range(&params, params::now_ns())?;
    Ok(ReadRequest {
        tenant,
        params,
        start,
        end,
    })
}

pub async fn labels(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = read_request(&state, &headers, q, &body)?;
    let m = matchers(get(&r.params, "query"), true)?;
    let streams = crate::unflushed::streams(&state, &r.tenant, &m, (r.start, r.end)).await?;
    let names: std::collections::BTreeSet<String> = streams
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k.to_string()))
        .collect();
    let names: Vec<String> = names.into_iter().collect();
    Ok(json(encode::string_list(&names)))
}

pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = read_request(&state, &headers, q, &body)?;
    let m = matchers(get(&r.params, "query"), true)?;
    let streams = crate::unflushed::streams(&state, &r.tenant, &m, (r.start, r.end)).await?;
    let values: std::collections::BTreeSet<String> = streams
        .iter()
        .filter_map(|l| l.get(&name).map(str::to_string))
        .collect();
    let values: Vec<String> = values.into_iter().collect();
    Ok(json(encode::string_list(&values)))
}

pub async fn series(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = read_request(&state, &headers, q, &body)?;
    // `match[]` (Prometheus, Grafana) and `match` (logcli) are unioned.
    let selectors: Vec<&String> = r
        .params
        .get("match[]")
        .into_iter()
        .chain(r.params.get("match"))
        .flatten()
        .collect();
    let mut out = std::collections::BTreeSet::new();
    let range = (r.start, r.end);
    if selectors.is_empty() {
        out.extend(crate::unflushed::streams(&state, &r.tenant, &[], range).await?);
    }
    for s in selectors {
        let m = matchers(Some(s), false)?;
        out.extend(crate::unflushed::streams(&state, &r.tenant, &m, range).await?);
    }
    let series: Vec<_> = out.into_iter().collect();
    Ok(json(encode::series_list(&series)))
}

pub async fn index_stats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let r = read_request(&state, &headers, q, &body)?;
    let m = matchers(get(&r.params, "query"), false)?;
    let st = state.store.index_stats(&r.tenant, &m, r.start, r.end);
    Ok(json(format!(
        "{{\"streams\":{},\"chunks\":{},\"bytes\":{},\"entries\":{}}}",
        st.streams, st.chunks, st.bytes, st.entries
    )))
}

pub async fn format_query(RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = collect_params(q, &body);
    let text = get(&p, "query").unwrap_or("");
    let mut out = String::new();
    match silt_logql::parse(text) {
        Ok(expr) => {
            out.push_str("{\"status\":\"success\",\"data\":");
            encode::write_str(&mut out, &silt_logql::format_query(&expr));
            out.push('}');
            json(out)
        }
        Err(e) => {
            out.push_str("{\"status\":\"invalid-query\",\"error\":");
            encode::write_str(&mut out, &e.to_string());
            out.push('}');
            (StatusCode::BAD_REQUEST, json(out)).into_response()
        }
    }
}
