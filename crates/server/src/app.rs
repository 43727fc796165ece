//! Router, shared state, tenant resolution and error mapping.

use crate::config::{Config, Target};
use crate::limiter::RateLimiter;
use crate::metrics::Metrics;
use crate::refusals::{log_refusals, Reason, RefusalLog};
use crate::{delete, drilldown, limits, push, query, tail};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use silt_storage::{Store, StoreConfig};
use std::sync::Arc;
use tower_http::compression::CompressionLayer;

/// Everything a handler needs.
pub struct AppState {
    /// Validated configuration.
    pub cfg: Config,
    /// Storage engine.
    pub store: Arc<Store>,
    /// HTTP-layer metrics.
    pub metrics: Metrics,
    pub(crate) limiter: RateLimiter,
    pub(crate) tails: tail::TailSlots,
    pub(crate) rules: crate::ruler::Rules,
    /// Where pushes are decoded (one thread per core).
    pub(crate) decode: crate::decode_pool::DecodePool,
    /// The writers whose unflushed lines a reader adds to its answers.
    pub(crate) writers: Option<Arc<crate::unflushed::Writers>>,
}

impl AppState {
    /// Builds the state around an open store.
    pub fn new(cfg: Config, store: Arc<Store>) -> Arc<AppState> {
        let limiter = RateLimiter::new(
            cfg.limits.ingestion_rate_mb * 1024.0 * 1024.0,
            cfg.limits.ingestion_burst_size_mb * 1024.0 * 1024.0,
        );
        let asks = matches!(cfg.target, Target::Read | Target::Backend);
        let writers = (asks && !cfg.cluster.writer_urls.is_empty()).then(|| {
            Arc::new(crate::unflushed::Writers::new(
                cfg.cluster.writer_urls.clone(),
                cfg.cluster.writer_timeout,
                cfg.auth_enabled,
            ))
        });
        Arc::new(AppState {
            writers,
            rules: crate::ruler::Rules::new(store.objects().clone()),
            metrics: Metrics::new(store.clone()),
            cfg,
            store,
            limiter,
            tails: Default::default(),
            decode: crate::decode_pool::DecodePool::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        })
    }
}

/// An error answered as plain text with a Loki-like status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = Reason(self.message.clone());
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response();
        resp.extensions_mut().insert(reason);
        resp
    }
}

impl From<crate::params::ParamError> for ApiError {
    fn from(e: crate::params::ParamError) -> Self {
        ApiError::bad_request(e.0)
    }
}

/// Tenant of a request: `X-Scope-OrgID` when auth is enabled, else `fake`.
pub fn tenant(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if !state.cfg.auth_enabled {
        return Ok(silt_model::DEFAULT_TENANT.to_string());
    }
    let Some(v) = headers.get("x-scope-orgid") else {
        return Err(ApiError::new(401, "no org id"));
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::new(401, "no org id"))?
        .trim();
    if v.is_empty() {
        return Err(ApiError::new(401, "no org id"));
    }
    silt_proto::validate_tenant(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(v.to_string())
}

/// A JSON body with Loki's content type.
pub fn json(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

/// The routes of the API that `cfg.target` serves.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body = state.cfg.limits.max_recv_msg_size as usize;
    let push_routes = Router::new()
        .route("/loki/api/v1/push", post(push::push_v1))
        .route("/api/prom/push", post(push::push_legacy))
        .route("/otlp/v1/logs", post(push::push_otlp))
        .layer(DefaultBodyLimit::max(max_body));
    let read_routes = Router::new()
        .route(
            "/loki/api/v1/query_range",
            get(query::query_range).post(query::query_range),
        )
        .route(
            "/loki/api/v1/query",
            get(query::query_instant).post(query::query_instant),
        )
        .route(
            "/loki/api/v1/labels",
            get(query::labels).post(query::labels),
        )
        .route("/loki/api/v1/label", get(query::labels).post(query::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(query::label_values).post(query::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(query::series).post(query::series),
        )
        .route(
            "/loki/api/v1/index/stats",
            get(query::index_stats).post(query::index_stats),
        )
        .route(
            "/loki/api/v1/index/volume",
            get(drilldown::volume).post(drilldown::volume),
        )
        .route(
            "/loki/api/v1/index/volume_range",
            get(drilldown::volume_range).post(drilldown::volume_range),
        )
        .route(
            "/loki/api/v1/detected_labels",
            get(drilldown::detected_labels).post(drilldown::detected_labels),
        )
        .route(
            "/loki/api/v1/detected_fields",
            get(drilldown::detected_fields).post(drilldown::detected_fields),
        )
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(drilldown::detected_field_values).post(drilldown::detected_field_values),
        )
        .route(
            "/loki/api/v1/patterns",
            get(drilldown::patterns).post(drilldown::patterns),
        )
        .route(
            "/loki/api/v1/drilldown-limits",
            get(drilldown::drilldown_limits),
        )
        .route(
            "/loki/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route("/silt/api/v1/limits", get(limits::limits))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/metrics", get(metrics))
        .merge(crate::ui::routes())
        .layer(CompressionLayer::new().gzip(true));
    let deletes = post(delete::create)
        .put(delete::create)
        .get(delete::list)
        .delete(delete::cancel);
    let routes = match state.cfg.target {
        Target::All | Target::Gateway => Router::new()
            .merge(push_routes)
            .merge(read_routes)
            .merge(rule_routes(&state))
            .route("/loki/api/v1/delete", deletes)
            // Not compressed: the upgrade response has no body, frames go over the socket.
            .route("/loki/api/v1/tail", get(tail::tail))
            .route("/api/prom/tail", get(tail::tail))
            .route("/flush", post(flush)),
        Target::Write => Router::new()
            .merge(push_routes)
            .merge(node_routes())
            .route(crate::unflushed::PATH, get(crate::unflushed::serve))
            // Live entries for tails through the gateway.
            .route("/loki/api/v1/tail", get(tail::tail))
            .route("/flush", post(flush)),
        Target::Read => read_routes
            // Replays for tails through the gateway (writers send the live part).
            .route("/loki/api/v1/tail", get(tail::tail)),
        Target::Backend => Router::new()
            .merge(rule_routes(&state))
            .merge(node_routes())
            .route("/loki/api/v1/delete", deletes),
    };
    routes
        .route("/ready", get(ready))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(RefusalLog::new(state.cfg.auth_enabled)),
            log_refusals,
        ))
        .with_state(state)
}

/// What every role answers besides its own routes (the read routes include them).
fn node_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .route("/metrics", get(metrics))
}

/// The rules config API (when `ruler.enable_api`) under both of Loki's prefixes, and the
/// Prometheus-style rules and alerts lists.
fn rule_routes(state: &AppState) -> Router<Arc<AppState>> {
    use crate::ruler::api;
    let mut r = Router::new()
        .route("/prometheus/api/v1/rules", get(api::prom_rules))
        .route("/prometheus/api/v1/alerts", get(api::prom_alerts));
    if state.cfg.ruler.enable_api {
        for prefix in ["/loki/api/v1/rules", "/api/prom/rules"] {
            r = r
                .route(prefix, get(api::list))
                .route(
                    &format!("{prefix}/{{namespace}}"),
                    get(api::get_namespace)
                        .post(api::set_group)
                        .delete(api::delete_namespace),
                )
                .route(
                    &format!("{prefix}/{{namespace}}/{{group}}"),
                    get(api::get_group).delete(api::delete_group),
                );
        }
    }
    r
}

/// Loki's ingester `/flush`: write the in-memory head out as segments now.
async fn flush(State(state): State<Arc<AppState>>) -> Result<StatusCode, ApiError> {
    state
        .store
        .flush()
        .await
        .map_err(|e| ApiError::new(500, format!("flush failed: {e}")))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ready while pushes can be accepted. A failing object store alone keeps the server
/// ready (pushes are buffered in the WAL, and taking it out of rotation would stop that);
/// the body says so. A full WAL makes it unready.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let failing = state.store.object_store_failing();
    if let Some(lease) = state.store.lease() {
        let role = match lease.is_held() {
            true => "holding the lease, running maintenance",
            false => "standby, another backend holds the lease",
        };
        return format!(
            "ready ({role}; object store: {})\n",
            failing.as_deref().unwrap_or("ok")
        )
        .into_response();
    }
    if state.store.wal_full() {
        let msg = format!(
            "not ready: WAL is full, pushes are refused; object store: {}\n",
            failing.as_deref().unwrap_or("ok")
        );
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    match failing {
        None => "ready".into_response(),
        Some(e) => {
            format!("ready (degraded: object store failing, pushes buffered in the WAL: {e})\n")
                .into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn buildinfo() -> Response {
    // Grafana reads `version` to enable features; we answer the Loki API level we implement.
    json(format!(
        concat!(
            "{{\"version\":\"3.7.6\",\"revision\":\"silt-{}\",\"branch\":\"main\",",
            "\"buildUser\":\"silt\",\"buildDate\":\"\",\"goVersion\":\"\"}}"
        ),
        env!("CARGO_PKG_VERSION")
    ))
}

/// Opens storage, serves the API until SIGINT/SIGTERM, then flushes.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    if cfg.target == Target::Gateway {
        return run_gateway(cfg).await;
    }
    let mut scfg = StoreConfig::new(&cfg.storage.data_dir);
    scfg.wal_fsync = cfg.storage.wal_fsync;
    scfg.flush_max_bytes = cfg.storage.flush_max_bytes as usize;
    scfg.flush_max_age = cfg.storage.flush_max_age;
    scfg.zstd_level = cfg.storage.zstd_level;
    scfg.flush_zstd_level = cfg.storage.flush_zstd_level;
    scfg.content_index = cfg.storage.content_index;
    scfg.backend = cfg.storage.backend()?;
    scfg.wal_max_bytes = cfg.storage.wal_max_size;
    scfg.max_head_memory = cfg.storage.max_head_memory as usize;
    scfg.cache_max_bytes = cfg.storage.object_store.cache_max_size;
    scfg.upload_concurrency = cfg.storage.object_store.max_concurrency;
    scfg.max_retry_backoff = cfg.storage.object_store.retry_max_backoff;
    scfg.retention = cfg.retention()?;
    scfg.compaction = silt_storage::Compaction {
        enabled: cfg.compactor.compaction_enabled,
        target_size: cfg.compactor.target_segment_size,
        ..Default::default()
    };
    scfg.delete_delay = cfg.compactor.retention_delete_delay;
    scfg.delete_cancel_period = cfg.compactor.delete_request_cancel_period;
    // Check often enough that a short flush_max_age is honoured.
    scfg.flush_check_interval =
        (cfg.storage.flush_max_age / 4).min(std::time::Duration::from_secs(5));
    // Certificates are read before storage opens: a bad file should fail fast.
    let tls = match &cfg.server.tls {
        Some(t) => Some(Arc::new(crate::tls::server_config(t)?)),
        None => None,
    };
    let target = cfg.target;
    if target == Target::Write {
        scfg.writer = cfg.cluster.writer_id.clone();
    }
    let store = Store::open(scfg).await?;
    let mut tasks = Vec::new();
    if matches!(target, Target::All | Target::Write) {
        tasks.push(store.spawn_background());
    }
    if matches!(target, Target::Read | Target::Backend) {
        tasks.push(store.spawn_refresh(cfg.cluster.catalog_refresh_interval));
    }
    let lease = match target {
        Target::Backend => Some(backend_lease(&cfg, &store).await?),
        _ => None,
    };
    if let Some(l) = &lease {
        tasks.push(l.spawn());
    }
    if matches!(target, Target::All | Target::Backend) {
        tasks.push(store.spawn_maintenance(cfg.compactor.compaction_interval));
    }
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.server.listen))?;
    tracing::info!(addr = %listener.local_addr()?, data_dir = %cfg.storage.data_dir.display(), tls = tls.is_some(), target = ?target, "silt server listening");
    let grace = cfg.server.shutdown_grace;
    let state = AppState::new(cfg, store.clone());
    if matches!(target, Target::All | Target::Backend) {
        state.rules.load(state.cfg.ruler.local_directory()).await?;
        tasks.push(crate::ruler::eval::spawn(state.clone()));
    }
    match tls {
        Some(tls) => crate::tls::serve(listener, router(state), tls, shutdown_signal()).await,
        None => {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
    }
    for t in tasks {
        t.abort();
    }
    if let Some(l) = lease {
        // Another backend takes over at once instead of after the TTL.
        if let Err(e) = l.release().await {
            tracing::warn!(error = %e, "could not release the backend lease; it expires");
        }
    }
    tracing::info!("shutting down, flushing head");
    match tokio::time::timeout(grace, store.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "final flush failed; data stays in the WAL"),
        Err(_) => tracing::warn!("final flush timed out; data stays in the WAL"),
    }
    Ok(())
}

/// The bucket's backend lease for this process, after checking that the object store
/// honours conditional writes (a lease it ignores would exclude no one).
async fn backend_lease(
    cfg: &Config,
    store: &Store,
) -> anyhow::Result<Arc<silt_storage::lease::Lease>> {
    use silt_storage::lease::{Lease, LeaseConfig, BACKEND_LEASE};
    let holder = format!(
        "backend-{}-{:x}",
        std::process::id(),
        crate::params::now_ns()
    );
    let lcfg = LeaseConfig {
        ttl: cfg.cluster.lease_ttl,
        renew_every: cfg.cluster.renew_interval(),
    };
    let lease = Arc::new(Lease::new(store.objects(), BACKEND_LEASE, holder, lcfg));
    lease.check_store().await?;
    store.set_lease(lease.clone());
    tracing::info!(holder = %lease.holder(), ttl = ?lcfg.ttl, "backend: maintenance runs while holding the lease");
    Ok(lease)
}

/// `target: gateway`: serves [`crate::gateway`] until SIGINT/SIGTERM; nothing to flush.
async fn run_gateway(cfg: Config) -> anyhow::Result<()> {
    let tls = match &cfg.server.tls {
        Some(t) => Some(Arc::new(crate::tls::server_config(t)?)),
        None => None,
    };
    let app = crate::gateway::router(&cfg)?;
    let listener = tokio::net::TcpListener::bind(&cfg.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.server.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        writers = cfg.gateway.write_urls.len(),
        readers = cfg.gateway.read_urls.len(),
        auth = cfg.gateway.auth(),
        tls = tls.is_some(),
        "silt gateway listening"
    );
    match tls {
        Some(tls) => crate::tls::serve(listener, app, tls, shutdown_signal()).await,
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown_signal())
                .await?
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
