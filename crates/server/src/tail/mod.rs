//! Live tail: `GET /loki/api/v1/tail` (and legacy `/api/prom/tail`) over a WebSocket.
//!
//! Everything a request can get wrong (query, limits, tenant, session cap) is answered
//! with a plain HTTP error before the upgrade; after it, the session in [`session`]
//! replays recent entries and then streams live ones from the store's fan-out.

mod session;

use crate::app::{tenant, ApiError, AppState};
use crate::params::{self, get, parse_time};
use crate::query::{check_length, check_limit, collect_params, is_categorized, parse_limit};
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use silt_logql::ast::{Expr, LogExpr};
use silt_query::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Loki's ceiling for `delay_for`, seconds.
const MAX_DELAY_FOR: u64 = 5;

/// A validated tail request.
pub(crate) struct TailRequest {
    pub tenant: String,
    pub expr: LogExpr,
    pub pipeline: Pipeline,
    pub limit: usize,
    pub start: i64,
    pub delay_for: Duration,
    pub categorize: bool,
}

/// `GET /loki/api/v1/tail`: validates, takes a session slot, then upgrades.
pub async fn tail(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let p = collect_params(q, &Bytes::new());
    let req = parse_request(&state, &p, tenant, is_categorized(&headers))?;
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    let slot = Slot::acquire(&state, &req.tenant)?;
    // Origin is not checked: Loki accepts any (Grafana proxies the socket).
    Ok(ws.on_upgrade(move |socket| session::run(socket, state, req, slot)))
}

fn parse_request(
    state: &AppState,
    p: &params::Params,
    tenant: String,
    categorize: bool,
) -> Result<TailRequest, ApiError> {
    let expr = crate::query::parse_query(p)?;
    let Expr::Log(expr) = expr else {
        return Err(ApiError::bad_request("only log selector is supported"));
    };
    let limit = parse_limit(p)?;
    check_limit(state, &Expr::Log(expr.clone()), limit)?;
    let now = params::now_ns();
    let start = match get(p, "start") {
        Some(s) if !s.is_empty() => parse_time(s)?,
        _ => now - 3_600_000_000_000,
    };
    check_length(state, start.min(now), now)?;
    let delay_for = match get(p, "delay_for") {
        None | Some("") => 0,
        // Loki reads it as an unsigned count of seconds; a negative one wraps past the cap.
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (0..=MAX_DELAY_FOR as i64).contains(&n) => n as u64,
            Ok(_) => {
                return Err(ApiError::bad_request(format!(
                    "delay_for can't be greater than {MAX_DELAY_FOR}"
                )))
            }
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "cannot parse \"{s}\" to a valid delay_for"
                )))
            }
        },
    };
    let pipeline =
        Pipeline::new(&expr.pipeline).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(TailRequest {
        tenant,
        expr,
        pipeline,
        limit,
        start,
        delay_for: Duration::from_secs(delay_for),
        categorize,
    })
}

/// Open tail sessions per tenant.
#[derive(Default)]
pub(crate) struct TailSlots {
    by_tenant: Mutex<HashMap<String, usize>>,
}

/// One session's place under `max_concurrent_tail_requests`; freed on drop.
pub(crate) struct Slot {
    state: Arc<AppState>,
    tenant: String,
}

impl Slot {
    fn acquire(state: &Arc<AppState>, tenant: &str) -> Result<Slot, ApiError> {
        let max = state.cfg.limits.max_concurrent_tail_requests;
        let mut m = state.tails.by_tenant.lock();
        let n = m.entry(tenant.to_string()).or_default();
        if *n >= max {
            return Err(ApiError::bad_request(format!(
                "max concurrent tail requests limit exceeded, count > limit ({} > {max})",
                *n + 1
            )));
        }
        *n += 1;
        state.metrics.tail_sessions.inc();
        Ok(Slot {
            state: state.clone(),
            tenant: tenant.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.state.tails.by_tenant.lock();
        if let Some(n) = m.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.tenant);
            }
        }
        self.state.metrics.tail_sessions.dec();
    }
}
