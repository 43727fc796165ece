//! `GET /silt/api/v1/limits`: the push and retention limits in force for the requesting
//! tenant, read-only, so a client (`silt import`) can tell before sending whether old
//! entries would be refused or deleted, and which setting to change.

use crate::app::{json, tenant, ApiError, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

/// The tenant's effective limits; durations in seconds, sizes in bytes, under the YAML
/// names (`limits.*`, `compactor.retention_enabled`, `overrides.<tenant>.*`).
pub async fn limits(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let l = &state.cfg.limits;
    let o = state.cfg.overrides.get(&tenant);
    let period = o
        .and_then(|o| o.retention_period)
        .unwrap_or(l.retention_period);
    let streams = o
        .and_then(|o| o.retention_stream.as_ref())
        .unwrap_or(&l.retention_stream);
    let body = json!({
        "tenant": tenant,
        "reject_old_samples": l.reject_old_samples,
        "reject_old_samples_max_age": l.reject_old_samples_max_age.as_secs(),
        "creation_grace_period": l.creation_grace_period.as_secs(),
        "max_line_size": l.max_line_size,
        "max_line_size_truncate": l.max_line_size_truncate,
        "max_recv_msg_size": l.max_recv_msg_size,
        "allow_structured_metadata": l.allow_structured_metadata,
        "ingestion_rate_mb": l.ingestion_rate_mb,
        "ingestion_burst_size_mb": l.ingestion_burst_size_mb,
        "retention_enabled": state.cfg.compactor.retention_enabled,
        "retention_period": period.as_secs(),
        "retention_period_overridden": o.is_some_and(|o| o.retention_period.is_some()),
        "retention_stream": streams.iter().map(|r| json!({
            "selector": r.selector,
            "priority": r.priority,
            "period": r.period.as_secs(),
        })).collect::<Vec<_>>(),
    });
    Ok(json(body.to_string()))
}
