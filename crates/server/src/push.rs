//! Push endpoints: `/loki/api/v1/push`, `/api/prom/push`, `/otlp/v1/logs`.

use crate::app::{tenant, ApiError, AppState};
use crate::metrics::{ReasonLabel, StatusLabel};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use silt_proto::{DecodeLimits, PushError, PushRequest, ValidatedPush};
use std::sync::Arc;

pub async fn push_v1(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, Format::V1).await
}

pub async fn push_legacy(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, Format::Legacy).await
}

pub async fn push_otlp(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(state, headers, body, Format::Otlp).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    V1,
    Legacy,
    Otlp,
}

async fn handle(state: Arc<AppState>, headers: HeaderMap, body: Bytes, format: Format) -> Response {
    let resp = match push(&state, &headers, body, format).await {
        Ok(r) => r,
        Err(e) if format == Format::Otlp => {
            // OTLP clients retry only on 429/503; Loki maps its 500s to 503 here.
            let status = if e.status == StatusCode::INTERNAL_SERVER_ERROR {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                e.status
            };
            let mut resp = (
                status,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                silt_proto::encode_otlp_error(&e.message),
            )
                .into_response();
            resp.extensions_mut()
                .insert(crate::refusals::Reason(e.message));
            resp
        }
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .push_requests
        .get_or_create(&StatusLabel {
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn push_err(e: PushError) -> ApiError {
    ApiError::new(e.status(), e.message())
}

async fn push(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    body: Bytes,
    format: Format,
) -> Result<Response, ApiError> {
    let tenant = tenant(state, headers)?;
    let content_type = header_str(headers, header::CONTENT_TYPE).map(str::to_string);
    let content_encoding = header_str(headers, header::CONTENT_ENCODING).map(str::to_string);
    let limits = state.cfg.limits.validation();
    let decode_limits = DecodeLimits {
        max_recv_msg_size: state.cfg.limits.max_recv_msg_size as usize,
        ..DecodeLimits::default()
    };
    let now = crate::params::now_ns();
    // Decompression and decoding are CPU work: keep them off the async workers.
    let validated: ValidatedPush =
        tokio::task::spawn_blocking(move || -> Result<ValidatedPush, PushError> {
            let req: PushRequest = match format {
                Format::Otlp => silt_proto::decode_otlp_logs(
                    &body,
                    content_type.as_deref(),
                    content_encoding.as_deref(),
                    &decode_limits,
                    &limits.discover_service_name,
                    now,
                )?,
                _ => silt_proto::decode_push(
                    &body,
                    content_type.as_deref(),
                    content_encoding.as_deref(),
                    format == Format::Legacy,
                    &decode_limits,
                )?,
            };
            Ok(silt_proto::validate_and_enrich(req, &limits, now))
        })
        .await
        .map_err(|e| ApiError::new(500, format!("push decoding failed: {e}")))?
        .map_err(push_err)?;

    if validated.rejected_entries > 0 {
        state
            .metrics
            .discarded_entries
            .get_or_create(&ReasonLabel {
                reason: "validation",
            })
            .inc_by(validated.rejected_entries as u64);
    }
    let lines: usize = validated.streams.iter().map(|s| s.entries.len()).sum();
    if lines > 0 {
        if !state.limiter.allow(&tenant, validated.accepted_bytes) {
            state
                .metrics
                .discarded_entries
                .get_or_create(&ReasonLabel {
                    reason: "rate_limited",
                })
                .inc_by(lines as u64);
            return Err(ApiError::new(
                429,
                format!(
                    "Ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{lines}' lines totaling '{}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased",
                    state.limiter.rate() as u64,
                    validated.accepted_bytes
                ),
            ));
        }
        let mut streams: Vec<_> = validated
            .streams
            .into_iter()
            .map(|s| (s.labels, s.entries))
            .collect();
        let limit = state.cfg.limits.max_global_streams_per_user;
        let mut over_limit = 0;
        if limit > 0 {
            let (active, new) = state
                .store
                .active_streams(&tenant, streams.iter().map(|s| &s.0));
            let mut room = limit.saturating_sub(active);
            let mut keep = new.into_iter().map(|is_new| {
                if !is_new {
                    return true;
                }
                let ok = room > 0;
                room = room.saturating_sub(1);
                ok
            });
            streams.retain(|s| {
                let k = keep.next().unwrap_or(true);
                if !k {
                    over_limit += s.1.len();
                }
                k
            });
        }
        state
            .store
            .append(&tenant, streams)
            .await
            .map_err(|e| match e {
                // Clients retry 503: the data is refused, not lost.
                silt_storage::Error::WalFull { .. } => ApiError::new(503, e.to_string()),
                silt_storage::Error::Io(ref io) if io.kind() == std::io::ErrorKind::StorageFull => {
                    ApiError::new(
                        503,
                        format!("WAL disk is full, push refused (nothing was written): {e}"),
                    )
                }
                _ => {
                    tracing::error!(error = %e, %tenant, "push not persisted");
                    ApiError::new(500, format!("failed to persist push: {e}"))
                }
            })?;
        if over_limit > 0 {
            state
                .metrics
                .discarded_entries
                .get_or_create(&ReasonLabel {
                    reason: "stream_limit",
                })
                .inc_by(over_limit as u64);
            // The streams within the limit were stored; the client retries the rest.
            return Err(ApiError::new(
                429,
                format!(
                    "Maximum active stream limit exceeded, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}'"
                ),
            ));
        }
    }
    match validated.error {
        Some(e) => Err(push_err(e)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}
