//! `silt-agent` binary: `--config FILE`, or quick start with `--url`, `--path`, `--label`,
//! `--data-dir`. Flags override the file's client URL, tenant and data dir.

use clap::Parser;
use silt_agent::config::{AgentConfig, ClientConfig, ServerConfig, SourceConfig, TailConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

// glibc malloc was the top of the profile (one allocation per line and label set).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "silt-agent",
    version,
    about = "Ships node and pod logs to a Loki-compatible server"
)]
struct Args {
    /// YAML config (config/agent.example.yaml documents every key).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Push URL, e.g. http://silt:3100.
    #[arg(long)]
    url: Option<String>,
    /// Glob of files to tail (repeatable); adds a `file` source.
    #[arg(long = "path")]
    paths: Vec<String>,
    /// Static label `k=v` for `--path` files (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// State directory (positions, disk buffer).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Tenant sent as X-Scope-OrgID.
    #[arg(long)]
    tenant: Option<String>,
    /// Listen address for /ready, /metrics and the push receiver.
    #[arg(long)]
    listen: Option<String>,
    /// Validate the config and exit.
    #[arg(long)]
    check: bool,
}

fn build(a: &Args) -> anyhow::Result<AgentConfig> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            AgentConfig::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
        }
        None => {
            let url = a
                .url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("either --config or --url is required"))?;
            AgentConfig {
                version: 1,
                data_dir: None,
                server: ServerConfig::default(),
                client: ClientConfig::for_url(&url),
                clients: vec![],
                positions: Default::default(),
                sources: vec![],
            }
        }
    };
    if let Some(u) = &a.url {
        cfg.client.url = u.clone();
    }
    if let Some(t) = &a.tenant {
        cfg.client.tenant_id = Some(t.clone());
    }
    if let Some(d) = &a.data_dir {
        cfg.data_dir = Some(d.clone());
    }
    if let Some(l) = &a.listen {
        cfg.server.listen = Some(l.clone());
    }
    if !a.paths.is_empty() {
        let mut labels = BTreeMap::new();
        for kv in &a.labels {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--label {kv:?}: expected k=v"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        let mut t = TailConfig::for_globs(a.paths.clone(), labels);
        t.name = Some("cli".into());
        cfg.sources.push(SourceConfig::File(t));
    } else if !a.labels.is_empty() {
        anyhow::bail!("--label applies to --path sources");
    }
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> std::process::ExitCode {
    // mimalloc asks for transparent huge pages on its arenas: each touched 2 MiB region
    // becomes resident whole, which was half of the agent's RSS. Off for this process.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes no pointers and only sets a process flag.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let cfg = match build(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("silt-agent: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.check {
        eprintln!("configuration ok");
        return std::process::ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt-agent: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(silt_agent::run::run(cfg, signal()));
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silt-agent: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
