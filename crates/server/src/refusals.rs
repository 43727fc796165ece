//! Operators see what the server refuses: every 4xx/5xx answer is logged with tenant,
//! route, status and reason (at warn for 429 and 5xx, which mean lost or delayed data
//! for a client, else info), at most [`PER_SECOND`] lines a second; the next logged
//! line says how many were left out.

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use parking_lot::Mutex;
use std::time::Instant;

/// Most refusal lines logged per second (a burst of bad clients must not flood the log).
const PER_SECOND: f64 = 10.0;

/// Why a request was refused, carried from the handler to the logging layer.
#[derive(Clone, Debug)]
pub struct Reason(pub String);

/// A token bucket over refusal log lines, counting what it leaves out.
pub struct RefusalLog {
    inner: Mutex<Bucket>,
    /// Without auth every request is tenant `fake`, whatever its headers say.
    auth_enabled: bool,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl RefusalLog {
    pub fn new(auth_enabled: bool) -> Self {
        RefusalLog {
            inner: Mutex::new(Bucket {
                tokens: PER_SECOND,
                last: Instant::now(),
                suppressed: 0,
            }),
            auth_enabled,
        }
    }

    /// `Some(lines left out since the last logged one)` when this one may be logged.
    fn admit(&self) -> Option<u64> {
        let mut b = self.inner.lock();
        let now = Instant::now();
        b.tokens =
            (b.tokens + now.duration_since(b.last).as_secs_f64() * PER_SECOND).min(PER_SECOND);
        b.last = now;
        if b.tokens < 1.0 {
            b.suppressed += 1;
            return None;
        }
        b.tokens -= 1.0;
        Some(std::mem::take(&mut b.suppressed))
    }
}

/// Middleware: logs refused requests after the handler answered.
pub async fn log_refusals(
    axum::extract::State(log): axum::extract::State<std::sync::Arc<RefusalLog>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let tenant = if log.auth_enabled {
        req.headers()
            .get("x-scope-orgid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    } else {
        silt_model::DEFAULT_TENANT.to_string()
    };
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let Some(suppressed) = log.admit() else {
        return resp;
    };
    // Answers axum gives itself (413 body limit, 404, 405) carry no reason of ours.
    let reason = match resp.extensions().get::<Reason>() {
        Some(r) => r.0.as_str(),
        None => status.canonical_reason().unwrap_or("-"),
    };
    let status = status.as_u16();
    if status == StatusCode::TOO_MANY_REQUESTS.as_u16() || status >= 500 {
        tracing::warn!(tenant, route, status, reason, suppressed, "request refused");
    } else {
        tracing::info!(tenant, route, status, reason, suppressed, "request refused");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_a_burst_then_counts_what_it_leaves_out() {
        let log = RefusalLog::new(false);
        let admitted = (0..100).filter(|_| log.admit().is_some()).count();
        assert!((10..=11).contains(&admitted), "{admitted} admitted");
        std::thread::sleep(std::time::Duration::from_millis(150));
        // The next admitted line reports the ones left out before it.
        assert_eq!(log.admit(), Some(100 - admitted as u64));
    }
}
