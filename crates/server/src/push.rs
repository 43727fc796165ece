//! Push endpoints: `/loki/api/v1/push`, `/api/prom/push`, `/otlp/v1/logs`.

use crate::app::{tenant, ApiError, AppState};
use crate::metrics::{ReasonLabel, StatusLabel};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use silt_proto::{DecodeLimits, PushBody, PushError};
use silt_storage::BatchEncoder;
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

/// What the blocking part of a push hands back: the batch to append and what to answer.
struct Prepared {
    batch: Option<silt_storage::EncodedBatch>,
    rejected_entries: usize,
    /// Entries of new streams over the active-stream limit (left out of `batch`).
    over_limit: usize,
    error: Option<PushError>,
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
    let now = crate::params::now_ns();
    // Decoding, validation and the WAL encoding are CPU work: keep them off the async
    // workers, on the decode threads. Lines are borrowed from the decompressed body until
    // the WAL record is built.
    let st = state.clone();
    let t = tenant.clone();
    let prepared = state
        .decode
        .run(move || -> Result<Prepared, ApiError> {
            prepare(
                &st,
                &t,
                &body,
                format,
                content_type.as_deref(),
                content_encoding.as_deref(),
                now,
            )
        })
        .await
        .ok_or_else(|| ApiError::new(500, "push decoding failed (panicked)"))??;

    if prepared.rejected_entries > 0 {
        state
            .metrics
            .discarded_entries
            .get_or_create(&ReasonLabel {
                reason: "validation",
            })
            .inc_by(prepared.rejected_entries as u64);
    }
    if let Some(batch) = prepared.batch {
        state
            .store
            .append_encoded(batch)
            .await
            .map_err(|e| match e {
                // Clients retry 503: the data is refused, not lost.
                silt_storage::Error::WalFull { .. } | silt_storage::Error::HeadFull { .. } => {
                    ApiError::new(503, e.to_string())
                }
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
    }
    if prepared.over_limit > 0 {
        state
            .metrics
            .discarded_entries
            .get_or_create(&ReasonLabel {
                reason: "stream_limit",
            })
            .inc_by(prepared.over_limit as u64);
        // The streams within the limit were stored; the client retries the rest.
        return Err(ApiError::new(
            429,
            format!(
                "Maximum active stream limit exceeded, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}'"
            ),
        ));
    }
    match prepared.error {
        Some(e) => Err(push_err(e)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Decodes, validates and checks the limits of a push, and encodes what is accepted as
/// its WAL record.
fn prepare(
    state: &AppState,
    tenant: &str,
    body: &[u8],
    format: Format,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    now: i64,
) -> Result<Prepared, ApiError> {
    let limits = state.cfg.limits.validation();
    let decode_limits = DecodeLimits {
        max_recv_msg_size: state.cfg.limits.max_recv_msg_size as usize,
        ..DecodeLimits::default()
    };
    let decoded = match format {
        Format::Otlp => silt_proto::decode_otlp_logs(
            body,
            content_type,
            content_encoding,
            &decode_limits,
            &limits.discover_service_name,
            now,
        )
        .map(PushBody::Decoded),
        _ => silt_proto::decode_push_body(
            body,
            content_type,
            content_encoding,
            format == Format::Legacy,
            &decode_limits,
        ),
    }
    .map_err(push_err)?;
    let view = decoded.view(&decode_limits).map_err(push_err)?;
    let mut checked = silt_proto::validate_view(view, &limits, now);
    let mut prepared = Prepared {
        batch: None,
        rejected_entries: checked.rejected_entries,
        over_limit: 0,
        error: checked.error.take(),
    };
    let lines = checked.accepted_entries;
    if lines == 0 {
        return Ok(prepared);
    }
    if !state.limiter.allow(tenant, checked.accepted_bytes) {
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
                checked.accepted_bytes
            ),
        ));
    }
    let view = &mut checked.view;
    let limit = state.cfg.limits.max_global_streams_per_user;
    if limit > 0 {
        let (active, new) = state
            .store
            .active_streams(tenant, view.streams.iter().map(|s| &s.labels));
        let mut room = limit.saturating_sub(active);
        let mut keep = new.into_iter().map(|is_new| {
            if !is_new {
                return true;
            }
            let ok = room > 0;
            room = room.saturating_sub(1);
            ok
        });
        view.streams.retain(|s| {
            let k = keep.next().unwrap_or(true);
            if !k {
                prepared.over_limit += s.entries.len();
            }
            k
        });
    }
    let mut enc = BatchEncoder::new(tenant, body.len().saturating_mul(3));
    for s in &view.streams {
        enc.begin_stream(&s.labels);
        for e in &s.entries {
            let meta = view
                .meta_of(e)
                .iter()
                .map(|(k, v)| (k.as_ref(), v.as_ref()));
            enc.entry(e.ts, &e.line, meta);
        }
        enc.end_stream();
    }
    if enc.entries() > 0 {
        let batch = enc
            .finish()
            .map_err(|e| ApiError::new(413, format!("push not accepted: {e}")))?;
        prepared.batch = Some(batch);
    }
    Ok(prepared)
}
