//! Loki's log deletion API: `POST|PUT|GET|DELETE /loki/api/v1/delete`.
//!
//! A request is a stream selector plus optional line filters over `[start, end]`. It is
//! stored in the bucket, hides matching lines from queries at once, and is applied to the
//! segments by the maintenance pass once `compactor.delete_request_cancel_period` is over.

use crate::app::{json, tenant, ApiError, AppState};
use crate::params::{get, now_ns, parse_time, Params};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use silt_logql::ast::{Expr, LineFilterOp, LineFilterValue, Stage};
use silt_model::MatchOp;
use silt_storage::{DeleteFilter, DeleteRequest, DeleteStatus, LineOp};
use std::sync::Arc;

/// Query string merged with an urlencoded body.
fn params(query: Option<String>, body: &Bytes) -> Params {
    let mut p = Params::new();
    for raw in [query.unwrap_or_default().as_bytes(), body.as_ref()] {
        for (k, v) in form_urlencoded::parse(raw) {
            p.entry(k.into_owned()).or_default().push(v.into_owned());
        }
    }
    p
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.cfg.compactor.retention_enabled {
        Ok(())
    } else {
        Err(ApiError::bad_request("Retention is not enabled"))
    }
}

/// The structured filter of a delete query; only selectors and line filters qualify.
fn filter(query: &str) -> Result<DeleteFilter, ApiError> {
    let expr = silt_logql::parse(query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Expr::Log(log) = expr else {
        return Err(ApiError::bad_request(
            "invalid query: a delete query is a stream selector with optional line filters",
        ));
    };
    let matchers = log
        .selector
        .iter()
        .map(|m| {
            let op = match m.op {
                MatchOp::Eq => "=",
                MatchOp::Neq => "!=",
                MatchOp::Re => "=~",
                MatchOp::Nre => "!~",
            };
            (m.name.clone(), op.to_string(), m.value.clone())
        })
        .collect();
    let mut lines = Vec::new();
    for stage in &log.pipeline {
        let unsupported = || {
            ApiError::bad_request(
                "invalid query: only |=, !=, |~ and !~ line filters with string values are supported in delete queries",
            )
        };
        let Stage::LineFilter(f) = stage else {
            return Err(unsupported());
        };
        let op = match f.op {
            LineFilterOp::Contains => LineOp::Contains,
            LineFilterOp::NotContains => LineOp::NotContains,
            LineFilterOp::Match => LineOp::Match,
            LineFilterOp::NotMatch => LineOp::NotMatch,
            _ => return Err(unsupported()),
        };
        let values = f
            .values
            .iter()
            .map(|v| match v {
                LineFilterValue::Str(s) => Ok(s.clone()),
                LineFilterValue::Ip(_) => Err(unsupported()),
            })
            .collect::<Result<_, _>>()?;
        lines.push((op, values));
    }
    Ok(DeleteFilter { matchers, lines })
}

/// `POST|PUT /loki/api/v1/delete?query=…&start=…[&end=…]`: 204 with `X-Delete-Request-ID`.
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let tenant = tenant(&state, &headers)?;
    let p = params(q, &body);
    let query = get(&p, "query")
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::bad_request("query not set"))?;
    let filter = filter(query)?;
    let start = get(&p, "start")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("start not set"))
        .and_then(|s| {
            parse_time(s).map_err(|_| {
                ApiError::bad_request("invalid start time: require unix seconds or RFC3339 format")
            })
        })?;
    let now = now_ns();
    let end = match get(&p, "end").filter(|s| !s.is_empty()) {
        None => now,
        Some(s) => parse_time(s).map_err(|_| {
            ApiError::bad_request("invalid end time: require unix seconds or RFC3339 format")
        })?,
    };
    if end > now {
        return Err(ApiError::bad_request(
            "deletes in the future are not allowed",
        ));
    }
    if start > end {
        return Err(ApiError::bad_request(
            "start time can't be greater than end time",
        ));
    }
    let id = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(format!("{tenant}\n{query}\n{start}\n{end}\n{now}").as_bytes())
    );
    let req = DeleteRequest {
        request_id: id.clone(),
        user_id: tenant,
        query: query.to_string(),
        filter,
        start,
        end,
        created_at: now,
        status: DeleteStatus::Received,
    };
    state
        .store
        .add_delete(req)
        .await
        .map_err(|e| ApiError::new(500, format!("storing the delete request failed: {e}")))?;
    Ok((StatusCode::NO_CONTENT, [("X-Delete-Request-ID", id)]).into_response())
}

/// `GET /loki/api/v1/delete`: the tenant's requests.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let tenant = tenant(&state, &headers)?;
    let secs = |ns: i64| ns as f64 / 1e9;
    let out: Vec<serde_json::Value> = state
        .store
        .list_deletes(&tenant)
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "request_id": d.request_id,
                "start_time": secs(d.start),
                "end_time": secs(d.end),
                "query": d.query,
                "status": match d.status {
                    DeleteStatus::Received => "received",
                    DeleteStatus::Processed => "processed",
                },
                "created_at": secs(d.created_at),
                "user_id": d.user_id,
            })
        })
        .collect();
    Ok(json(serde_json::Value::Array(out).to_string()))
}

/// `DELETE /loki/api/v1/delete?request_id=…`: cancels a request not yet applied.
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    enabled(&state)?;
    let tenant = tenant(&state, &headers)?;
    let p = params(q, &Bytes::new());
    let id = get(&p, "request_id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing request_id"))?;
    match state.store.cancel_delete(&tenant, id).await {
        Ok(Some(true)) => Ok(StatusCode::NO_CONTENT),
        Ok(Some(false)) => Err(ApiError::bad_request(
            "deletion of request which is in process or already processed is not allowed",
        )),
        Ok(None) => Err(ApiError::new(
            404,
            "could not find delete request with given id",
        )),
        Err(e) => Err(ApiError::new(500, format!("cancelling failed: {e}"))),
    }
}
