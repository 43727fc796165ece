//! `target: gateway`: one address in front of the nodes. It authenticates the caller,
//! decides the tenant (`X-Scope-OrgID` is set by the gateway, never trusted from the
//! client when auth is on), limits requests per tenant, and forwards pushes to the
//! writers (Loki pushes split by stream, see [`split`]) and everything else to a reader.
//! It stores nothing.

mod auth;
mod split;
mod tail;

use crate::config::Config;
use crate::limiter::RateLimiter;
use auth::{Auth, Denied};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use split::Split;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const PUSH_PATHS: &[&str] = &["/loki/api/v1/push", "/api/prom/push", "/otlp/v1/logs"];
const TENANT: &str = "x-scope-orgid";

/// What a backend serves (deletes, rule groups, the rules and alerts lists): exact paths
/// and prefixes.
fn backend_path(path: &str) -> bool {
    const EXACT: &[&str] = &[
        "/loki/api/v1/delete",
        "/prometheus/api/v1/rules",
        "/prometheus/api/v1/alerts",
    ];
    const PREFIXES: &[&str] = &["/loki/api/v1/rules", "/api/prom/rules"];
    EXACT.contains(&path)
        || PREFIXES.iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with('/'))
        })
}

struct Gateway {
    auth: Auth,
    limiter: Option<RateLimiter>,
    writers: Arc<crate::discovery::Nodes>,
    readers: Vec<String>,
    backends: Vec<String>,
    next_reader: AtomicUsize,
    client: reqwest::Client,
    max_body: usize,
    decode_limits: silt_proto::DecodeLimits,
}

/// Headers that describe one connection, not the message: never forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    let mut r = (status, format!("{msg}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"silt\""),
        );
    }
    r
}

impl Gateway {
    /// Every reader, starting with the next one in turn (the rest are the fallbacks).
    fn readers_in_turn(&self) -> Vec<&str> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        (0..self.readers.len())
            .map(|i| self.readers[(start + i) % self.readers.len()].as_str())
            .collect()
    }

    async fn handle(&self, req: Request) -> Response {
        let headers = req.headers();
        let tenant = match self.auth.tenant(
            str_header(headers, "authorization"),
            str_header(headers, TENANT),
        ) {
            Ok(t) => t,
            Err(Denied::Unauthenticated(m)) => return refuse(StatusCode::UNAUTHORIZED, &m),
            Err(Denied::Forbidden(m)) => return refuse(StatusCode::FORBIDDEN, &m),
        };
        if let (Some(l), Some(t)) = (&self.limiter, &tenant) {
            if !l.allow(t, 1) {
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "too many requests for tenant {t:?} (limit {} per second)",
                        l.rate()
                    ),
                );
            }
        }
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let push = PUSH_PATHS.contains(&req.uri().path());
        let to_backend = !self.backends.is_empty() && backend_path(req.uri().path());
        if str_header(req.headers(), "upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        {
            let (mut parts, _) = req.into_parts();
            let reader = self.readers_in_turn()[0];
            let writers = self.writers.get();
            // Separate roles: the writers send live entries, the reader the replay. A node
            // listed as both (target: all) does both itself.
            let mut nodes: Vec<(&str, String)> = Vec::new();
            let is_reader = |w: &String| self.readers.iter().any(|r| r.trim_end_matches('/') == w);
            if !writers.iter().any(is_reader) {
                let live = tail::live_only(&path);
                nodes.extend(writers.iter().map(|w| (w.as_str(), live.clone())));
            }
            nodes.push((reader, path.clone()));
            return tail::proxy(&mut parts, &nodes, tenant.as_deref()).await;
        }
        let method = req.method().clone();
        let mut fwd = reqwest::header::HeaderMap::new();
        for (k, v) in req.headers() {
            if !hop_by_hop(k) && k != header::AUTHORIZATION && k.as_str() != TENANT {
                fwd.append(k.clone(), v.clone());
            }
        }
        if let Some(t) = &tenant {
            match header::HeaderValue::from_str(t) {
                Ok(v) => {
                    fwd.insert(TENANT, v);
                }
                Err(_) => return refuse(StatusCode::BAD_REQUEST, "invalid X-Scope-OrgID"),
            }
        }
        let body = match axum::body::to_bytes(req.into_body(), self.max_body).await {
            Ok(b) => b,
            Err(e) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body: {e} (limit {} bytes)", self.max_body),
                )
            }
        };
        let writers = self.writers.get();
        let upstreams: Vec<&str> = if push {
            let t = tenant.as_deref().unwrap_or(silt_model::DEFAULT_TENANT);
            if writers.is_empty() {
                return refuse(StatusCode::SERVICE_UNAVAILABLE, "no writer found yet");
            }
            match self
                .split_push(&writers, req_path(&path), &fwd, &body, t)
                .await
            {
                Ok(Split::Whole(w)) => vec![writers[w].as_str()],
                Ok(Split::Parts(parts)) => return self.push_parts(&writers, parts, &fwd).await,
                Err(r) => return r,
            }
        } else if to_backend {
            // In order, not in turn: the first is the lease holder while it is up, and
            // only the holder knows the alerts' state.
            self.backends.iter().map(String::as_str).collect()
        } else {
            self.readers_in_turn()
        };
        let mut last_err = String::new();
        for up in upstreams {
            let sent = self
                .client
                .request(
                    method.clone(),
                    format!("{}{path}", up.trim_end_matches('/')),
                )
                .headers(fwd.clone())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) => return relay(resp),
                // Only a request that never reached the node is tried on the next one.
                Err(e) if e.is_connect() => last_err = format!("{up}: {e}"),
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_GATEWAY,
                        &format!("upstream {up} failed: {e}"),
                    )
                }
            }
        }
        tracing::warn!(error = %last_err, "no upstream reachable");
        refuse(
            StatusCode::BAD_GATEWAY,
            &format!("no upstream reachable ({last_err})"),
        )
    }
}

impl Gateway {
    /// Where a push goes: whole to one writer (OTLP by tenant, as its stream labels come
    /// from per-tenant settings; a body with one writer's streams), or in parts.
    async fn split_push(
        &self,
        writers: &Arc<Vec<String>>,
        path: &str,
        headers: &reqwest::header::HeaderMap,
        body: &bytes::Bytes,
        tenant: &str,
    ) -> Result<Split, Response> {
        let whole = Split::Whole(split::writer_of(writers, tenant, ""));
        if writers.len() < 2 || path == "/otlp/v1/logs" {
            return Ok(whole);
        }
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let (ct, ce) = (h("content-type"), h("content-encoding"));
        let legacy = path == "/api/prom/push";
        let (body, writers, limits) = (body.clone(), writers.clone(), self.decode_limits.clone());
        let tenant = tenant.to_string();
        tokio::task::spawn_blocking(move || {
            split::split(
                &body,
                (ct.as_deref(), ce.as_deref()),
                legacy,
                &limits,
                &writers,
                &tenant,
            )
        })
        .await
        .map_err(|e| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("push split: {e}"),
            )
        })
    }

    /// Sends each writer its part at once: 204 when all took theirs, else the first
    /// refusal (the client retries the whole push; writers drop the exact duplicates of
    /// parts they already took).
    async fn push_parts(
        &self,
        writers: &[String],
        parts: Vec<(usize, Vec<u8>)>,
        headers: &reqwest::header::HeaderMap,
    ) -> Response {
        let mut headers = headers.clone();
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/x-protobuf"),
        );
        let sends = parts.into_iter().map(|(w, body)| {
            let up = writers[w].trim_end_matches('/');
            let req = self
                .client
                .post(format!("{up}/loki/api/v1/push"))
                .headers(headers.clone())
                .body(body);
            async move { (up, req.send().await) }
        });
        for (up, sent) in futures::future::join_all(sends).await {
            match sent {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => return relay(resp),
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_GATEWAY,
                        &format!("upstream {up} failed: {e}"),
                    )
                }
            }
        }
        StatusCode::NO_CONTENT.into_response()
    }
}

/// The path of a path-and-query.
fn req_path(path_and_query: &str) -> &str {
    path_and_query.split('?').next().unwrap_or_default()
}

fn str_header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The node's answer, streamed back as it comes.
fn relay(resp: reqwest::Response) -> Response {
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            out = out.header(k, v);
        }
    }
    out.body(Body::from_stream(resp.bytes_stream()))
        .unwrap_or_else(|e| refuse(StatusCode::BAD_GATEWAY, &e.to_string()))
}

/// The gateway's routes: its own `/ready`, everything else forwarded.
pub(crate) fn router(cfg: &Config) -> anyhow::Result<Router> {
    let g = &cfg.gateway;
    let gw = Arc::new(Gateway {
        auth: Auth::new(g),
        limiter: (g.requests_per_second > 0.0)
            .then(|| RateLimiter::new(g.requests_per_second, f64::from(g.burst))),
        writers: crate::discovery::Nodes::new(g.write_urls.clone()),
        readers: g.read_urls.clone(),
        backends: g.backend_urls.clone(),
        next_reader: AtomicUsize::new(0),
        client: reqwest::Client::builder()
            .timeout(g.timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("http client: {e}"))?,
        max_body: cfg.limits.max_recv_msg_size as usize,
        decode_limits: silt_proto::DecodeLimits {
            max_recv_msg_size: cfg.limits.max_recv_msg_size as usize,
            ..Default::default()
        },
    });
    gw.writers.spawn_refresh();
    Ok(Router::new()
        .route("/ready", get(|| async { "ready" }))
        .fallback(
            |State(gw): State<Arc<Gateway>>, req: Request| async move { gw.handle(req).await },
        )
        .with_state(gw))
}

#[cfg(test)]
mod tests {
    use super::backend_path;

    #[test]
    fn deletes_and_rules_are_backend_paths() {
        for p in [
            "/loki/api/v1/delete",
            "/loki/api/v1/rules",
            "/loki/api/v1/rules/ns/group",
            "/api/prom/rules/ns",
            "/prometheus/api/v1/alerts",
        ] {
            assert!(backend_path(p), "{p}");
        }
        for p in [
            "/loki/api/v1/query_range",
            "/loki/api/v1/rulesx",
            "/loki/api/v1/push",
        ] {
            assert!(!backend_path(p), "{p}");
        }
    }
}
