//! `silt`: the server and the command-line tools in one binary.

mod gofmt;
mod import;
mod logcli;
mod remote;

use clap::{Args, Parser, Subcommand};
use silt_server::config::LogFormat;
use silt_server::Config;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// glibc malloc keeps per-thread arenas that hold freed head and segment buffers;
// mimalloc returns them, which keeps RSS near the live data (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3 keeps freed memory resident for 1 s before returning it to the OS (its
/// `purge_delay`). A head of tens of MiB is freed after every flush, so that delay held
/// tens of MB of freed memory in RSS while ingesting. 100 ms returns it soon after; 10 ms
/// (mimalloc 2's default) saved a little more but cost ~10 % of ingest CPU in page faults
/// (the encoder's and pushes' buffers were returned and faulted in again). The
/// `MIMALLOC_PURGE_DELAY` environment variable still overrides it.
fn tune_allocator() {
    /// `mi_option_purge_delay` in mimalloc 3's `mi_option_t`.
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    #[allow(unsafe_code)]
    extern "C" {
        fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    }
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator linked into this binary; called
        // before any thread but this one exists.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_set(MI_OPTION_PURGE_DELAY, 100);
        }
    }
}

#[derive(Parser)]
#[command(name = "silt", version, about = "Silt: a Loki-compatible log store")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the Loki-compatible server (push, query, labels, series, metrics).
    #[command(
        after_help = "Every YAML key is documented in config/server.example.yaml; flags override the file."
    )]
    Server(ServerArgs),
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// Config file to check.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Run a LogQL query over a time range, as logcli does (lines paged past the server's
    /// per-request limit; metric results as JSON).
    Query(logcli::QueryArgs),
    /// Run a LogQL query at one point in time.
    InstantQuery(logcli::InstantArgs),
    /// List label names, or the values of one label.
    Labels(logcli::LabelsArgs),
    /// List the streams a selector matches.
    Series(logcli::SeriesArgs),
    /// Streams, chunks, bytes and entries the index holds for a selector.
    Stats(logcli::StatsArgs),
    /// Bytes stored per series (or label) for a selector, over the whole range.
    Volume(logcli::VolumeArgs),
    /// Bytes stored per series (or label) for a selector, per step.
    #[command(name = "volume_range")]
    VolumeRange(logcli::VolumeArgs),
    /// Backfill log files and directory trees (Airflow task logs recognised) into a
    /// running server over the push API; resumable (docs/import.md).
    Import(import::ImportArgs),
}

/// Flags override the YAML config file; every option is documented in config/server.example.yaml.
#[derive(Args)]
struct ServerArgs {
    /// YAML config file (defaults apply to every key it omits).
    #[arg(long, short = 'c', env = "SILT_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (server.listen), e.g. 0.0.0.0:3100.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory for WAL, segments and caches (storage.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Reject entries older than limits.reject_old_samples_max_age (limits.reject_old_samples).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    reject_old_samples: Option<bool>,
    /// Require X-Scope-OrgID on every request (auth_enabled).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    auth_enabled: Option<bool>,
    /// Per-tenant ingestion rate in MB/s (limits.ingestion_rate_mb); burst is raised to match if lower.
    #[arg(long)]
    ingestion_rate_mb: Option<f64>,
    /// fsync the WAL before acknowledging pushes (storage.wal_fsync).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    wal_fsync: Option<bool>,
    /// Log filter (server.log_level), e.g. info or silt_storage=debug,info.
    #[arg(long)]
    log_level: Option<String>,
    /// What to run (target): all (one node), write, read, backend (roles sharing one
    /// bucket) or gateway (auth and routing in front of nodes).
    #[arg(long)]
    target: Option<silt_server::config::Target>,
}

fn load(args: &ServerArgs) -> Result<Config, String> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        cfg.server.listen = l.to_string();
    }
    if let Some(d) = &args.data_dir {
        cfg.storage.data_dir = d.clone();
    }
    if let Some(v) = args.reject_old_samples {
        cfg.limits.reject_old_samples = v;
    }
    if let Some(v) = args.auth_enabled {
        cfg.auth_enabled = v;
    }
    if let Some(v) = args.ingestion_rate_mb {
        cfg.limits.ingestion_rate_mb = v;
        cfg.limits.ingestion_burst_size_mb = cfg.limits.ingestion_burst_size_mb.max(v);
    }
    if let Some(v) = args.wal_fsync {
        cfg.storage.wal_fsync = v;
    }
    if let Some(v) = &args.log_level {
        cfg.server.log_level = v.clone();
    }
    if let Some(v) = args.target {
        cfg.target = v;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// Exit code of a query verb: 1 with the message on stderr when it failed.
fn verb(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Query failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Query(a) => verb(logcli::query(&a)),
        Cmd::InstantQuery(a) => verb(logcli::instant(&a)),
        Cmd::Labels(a) => verb(logcli::labels(&a)),
        Cmd::Series(a) => verb(logcli::series(&a)),
        Cmd::Stats(a) => verb(logcli::stats(&a)),
        Cmd::Volume(a) => verb(logcli::volume(&a, false)),
        Cmd::VolumeRange(a) => verb(logcli::volume(&a, true)),
        Cmd::Import(a) => import::run(&a),
        Cmd::CheckConfig { config } => match Config::load(&config) {
            Ok(cfg) => {
                println!("{cfg:#?}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("silt: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Server(args) => {
            tune_allocator();
            let cfg = match load(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("silt: {e}");
                    return ExitCode::from(2);
                }
            };
            let filter = tracing_subscriber::EnvFilter::try_new(&cfg.server.log_level)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let fmt = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false);
            match cfg.server.log_format {
                LogFormat::Json => fmt.json().init(),
                LogFormat::Text => fmt.with_ansi(std::io::stdout().is_terminal()).init(),
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("silt")
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("silt: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(silt_server::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "server failed");
                    eprintln!("silt: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
