//! Wiring: sources on their own threads, the client task, the HTTP listener and shutdown.

use crate::client::{fan_out, AckSink, Client, Joiner};
use crate::config::{AgentConfig, SourceConfig};
use crate::file::FileSource;
use crate::push_source::{Buffer, PushReject, PushSource};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long shutdown waits for the last batches to be delivered.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
struct AppState {
    push: Option<Arc<Buffer>>,
}

/// Runs the agent until `stop` resolves (signal), then drains and returns.
pub async fn run(
    cfg: AgentConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let data_dir = cfg
        .data_dir
        .clone()
        .ok_or_else(|| anyhow::anyhow!("data_dir is required"))?;
    std::fs::create_dir_all(&data_dir)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Small channel: back-pressure reaches the readers instead of piling up in memory.
    let (tx, rx) = mpsc::channel(8);
    let mut ack_txs = Vec::new();
    let mut threads = Vec::new();
    let mut state = AppState::default();
    for (i, s) in cfg.sources.iter().enumerate() {
        let (atx, arx) = std_mpsc::channel();
        ack_txs.push(atx);
        let name = s.name();
        match s {
            SourceConfig::KubernetesEvents(e) => {
                threads.push(crate::k8s_events::spawn(
                    i,
                    e,
                    &name,
                    &data_dir,
                    tx.clone(),
                    arx,
                    stop_rx.clone(),
                )?);
            }
            SourceConfig::Journal(j) => {
                let src = crate::journal::JournalSource::new(
                    i,
                    j,
                    &name,
                    &data_dir,
                    cfg.positions.sync_period,
                    tx.clone(),
                    arx,
                    shutdown.clone(),
                )?;
                threads.push(spawn_source(&name, move || src.run())?);
            }
            SourceConfig::LokiPush(p) => {
                let buf = Arc::new(Buffer::open(data_dir.join("buffer").join(&name), p)?);
                state.push = Some(buf.clone());
                let src =
                    PushSource::new(i, p, name.clone(), buf, tx.clone(), arx, shutdown.clone())?;
                threads.push(spawn_source(&name, move || src.run())?);
            }
            _ => {
                let mut src = FileSource::new(
                    i,
                    s,
                    &data_dir,
                    cfg.positions.sync_period,
                    tx.clone(),
                    arx,
                    shutdown.clone(),
                )?;
                if let SourceConfig::KubernetesPods(t) = s {
                    if let Some(api) = &t.kubernetes_api {
                        let cache = Arc::new(crate::k8s::PodCache::default());
                        let node = crate::file::node_name(t);
                        tokio::spawn(crate::k8s::watch_pods(api.clone(), node, cache.clone()));
                        src = src.with_pod_cache(cache);
                    }
                }
                threads.push(spawn_source(&name, move || src.run())?);
            }
        }
    }
    drop(tx);
    let endpoints: Vec<_> = cfg.endpoints().cloned().collect();
    let mut client_tasks = Vec::new();
    if endpoints.len() == 1 {
        let client = Client::new(
            cfg.client.clone(),
            AckSink::Sources(ack_txs),
            stop_rx,
            DRAIN_TIMEOUT,
        )?;
        client_tasks.push(tokio::spawn(client.run(rx)));
    } else {
        let joiner = Arc::new(Joiner::new(ack_txs, endpoints.len()));
        let mut outs = Vec::new();
        for (i, c) in endpoints.into_iter().enumerate() {
            let (etx, erx) = mpsc::channel(8);
            outs.push(etx);
            let sink = AckSink::Joined {
                endpoint: i,
                joiner: joiner.clone(),
            };
            let client = Client::new(c, sink, stop_rx.clone(), DRAIN_TIMEOUT)?;
            client_tasks.push(tokio::spawn(client.run(erx)));
        }
        // The joiner (and the ack channels) live until the fan-out and every client end.
        client_tasks.push(tokio::spawn(fan_out(rx, joiner, outs)));
    }

    let mut http_task = None;
    let (http_stop_tx, mut http_stop_rx) = watch::channel(false);
    if let Some(listen) = &cfg.server.listen {
        let app = Router::new()
            .route("/ready", get(|| async { "ready\n" }))
            .route("/metrics", get(|| async { crate::metrics::render() }))
            .route("/loki/api/v1/push", post(push))
            .route("/api/v1/push", post(push))
            .route("/loki/api/v1/raw", post(push_raw))
            .route("/api/v1/raw", post(push_raw))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(listen).await?;
        tracing::info!(addr = %listener.local_addr()?, "listening");
        http_task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = http_stop_rx.wait_for(|v| *v).await;
                })
                .await;
        }));
    }

    stop.await;
    tracing::info!("shutting down: stopping sources, flushing batches");
    let _ = http_stop_tx.send(true);
    if let Some(t) = http_task {
        let _ = t.await;
    }
    shutdown.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    for t in client_tasks {
        let _ = t.await;
    }
    let _ = joined.await;
    tracing::info!("stopped");
    Ok(())
}

async fn push(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let Some(buf) = st.push else {
        return (
            StatusCode::NOT_FOUND,
            "no loki_push source configured\n".to_string(),
        );
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (ct, ce, tenant) = (h("content-type"), h("content-encoding"), h("x-scope-orgid"));
    let res = tokio::task::spawn_blocking(move || {
        buf.accept(&body, ct.as_deref(), ce.as_deref(), tenant.as_deref())
    })
    .await;
    push_answer(res)
}

/// `POST /loki/api/v1/raw`: newline-delimited lines, same disk buffer as `push`.
async fn push_raw(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let Some(buf) = st.push else {
        return (
            StatusCode::NOT_FOUND,
            "no loki_push source configured\n".to_string(),
        );
    };
    let tenant = headers
        .get("x-scope-orgid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let res = tokio::task::spawn_blocking(move || buf.accept_raw(&body, tenant.as_deref())).await;
    push_answer(res)
}

fn push_answer(
    res: Result<Result<usize, PushReject>, tokio::task::JoinError>,
) -> (StatusCode, String) {
    match res {
        Ok(Ok(_)) => (StatusCode::NO_CONTENT, String::new()),
        Ok(Err(PushReject::Bad(code, msg))) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            format!("{msg}\n"),
        ),
        Ok(Err(PushReject::Io(e))) => {
            tracing::error!(error = %e, "buffering push failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("buffer write failed: {e}\n"),
            )
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// A source's reader thread, named after it.
fn spawn_source(
    name: &str,
    run: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("src-{name}"))
        .spawn(run)
}
