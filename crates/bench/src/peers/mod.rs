//! `silt-bench peers`: Silt, Loki 3.7.6 and VictoriaLogs 1.26 on the same data in one run.
//!
//! The dataset (shared `gen_data.sh`) becomes Loki push bodies before any clock starts;
//! then each system in turn gets a fresh data dir, the same bodies from the same
//! stream-affine clients, a flush, the six comparison queries, a graceful stop and a
//! look at its data dir. One markdown table compares them.
//!
//!     cargo build --release --workspace --bins && target/release/silt-bench peers

mod bodies;
mod dataset;
mod proc;
mod queries;
mod report;
mod systems;
pub mod writers;

use clap::Parser;
use queries::Answer;
use silt_testkit::shared_dir;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use systems::{Bins, System};

/// Errors are messages for the person running the bench.
pub type Res<T> = Result<T, String>;

#[derive(Parser)]
#[command(
    name = "silt-bench peers",
    about = "Silt, Loki and VictoriaLogs side by side: ingest, memory, disk, six queries"
)]
pub struct Args {
    /// Systems to run, in this order: silt, loki, vl.
    #[arg(long, default_value = "silt,loki,vl", value_delimiter = ',')]
    systems: Vec<String>,
    #[command(flatten)]
    input: Input,
    /// Runs of each query (the best is reported, and the first as the cold one).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Directory with the loki and victoria-logs binaries; unpacked there when missing.
    #[arg(long, default_value = "target/peers")]
    peers_dir: PathBuf,
    /// Loki config template with `__DATA_DIR__` (default: ../shared/peers/loki.yaml).
    #[arg(long)]
    loki_config: Option<PathBuf>,
    /// Data dirs and server logs, one subdirectory per system (cleared before each).
    #[arg(long, default_value = "target/bench-peers")]
    work_dir: PathBuf,
    /// Keep each system's data dir after measuring it (default: deleted).
    #[arg(long)]
    keep_data: bool,
    /// Where the markdown report is also written.
    #[arg(long, default_value = "target/bench-peers.md")]
    out: PathBuf,
}

/// What `peers` and `writers` push, and the silt binary they start.
#[derive(clap::Args)]
pub struct Input {
    /// Use only the first N lines of the dataset (default: all, 2 M).
    #[arg(long)]
    lines: Option<usize>,
    /// Concurrent push clients (each stream always pushed by the same one).
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Raw bytes (lines + structured metadata) per push request.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// The JSON-lines dataset; generated with --gen-script when missing.
    #[arg(long, default_value = "target/perf.jsonl")]
    data: PathBuf,
    /// Dataset generator (default: ../shared/peers/gen_data.sh beside the checkout).
    #[arg(long)]
    gen_script: Option<PathBuf>,
    /// The silt binary (default: next to this one).
    #[arg(long)]
    silt: Option<PathBuf>,
}

impl Input {
    /// The silt binary to start.
    fn silt(&self) -> Res<PathBuf> {
        match &self.silt {
            Some(p) => Ok(p.clone()),
            None => Ok(std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("silt")),
        }
    }

    /// The dataset (generated when missing) as push bodies, built before any clock starts.
    fn load(&self) -> Res<dataset::Dataset> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        let script = self
            .gen_script
            .clone()
            .unwrap_or_else(|| shared_dir().join("peers/gen_data.sh"));
        dataset::ensure(&self.data, &script)?;
        eprintln!("loading {} and building push bodies", self.data.display());
        let t = std::time::Instant::now();
        let builder = bodies::BodyBuilder::new(self.clients, self.batch_bytes);
        let ds = dataset::load(&self.data, self.lines, builder)?;
        eprintln!(
            "{} lines ({:.1} MB of lines, {} streams) → {} requests, {:.1} MB on the wire, in {:.1} s",
            ds.lines,
            ds.line_bytes as f64 / 1e6,
            ds.streams,
            ds.requests(),
            ds.wire_bytes() as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        Ok(ds)
    }
}

/// Parses a mode's flags; `--help` and `--version` print and exit (they are not errors).
fn parse_args<A: Parser>(argv: impl IntoIterator<Item = OsString>) -> Res<A> {
    A::try_parse_from(argv).map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            std::process::exit(0);
        }
        e.to_string()
    })
}

/// Timings of one query on one system.
pub struct QueryResult {
    pub first_ms: f64,
    pub best_ms: f64,
    pub answer: Answer,
}

/// Everything measured of one system.
pub struct Measured {
    pub load_before: Option<f64>,
    pub ready_s: f64,
    pub push_s: f64,
    pub flush_s: f64,
    pub stop_s: f64,
    /// VmHWM right after the push: peak while ingesting (start-up included).
    pub hwm_ingest: u64,
    /// VmHWM and VmRSS after the queries.
    pub hwm_total: u64,
    pub rss_after: u64,
    pub disk: proc::DiskUsage,
    /// Silt only: the data dir after a compaction pass, and the pass's seconds.
    pub rest: Option<(proc::DiskUsage, f64)>,
    pub queries: Vec<QueryResult>,
}

pub fn main(argv: impl IntoIterator<Item = OsString>) -> Res<()> {
    let args: Args = parse_args(argv)?;
    let systems = args
        .systems
        .iter()
        .map(|s| System::parse(s))
        .collect::<Res<Vec<_>>>()?;
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let peers = shared_dir().join("peers");
    let bins = Bins {
        silt: args.input.silt()?,
        loki: args.peers_dir.join("loki"),
        vl: args.peers_dir.join("victoria-logs"),
        loki_yaml: args
            .loki_config
            .clone()
            .unwrap_or_else(|| peers.join("loki.yaml")),
    };
    if systems.iter().any(|&s| s != System::Silt) {
        unpack_peers(&args.peers_dir, &bins, &peers.join("unpack.sh"))?;
    }
    bins.check(&systems)?;

    let ds = args.input.load()?;
    let (start, end) = query_range(ds.min_ts, ds.max_ts);
    let queries = queries::six(&ds.needle);

    std::fs::create_dir_all(&args.work_dir)
        .map_err(|e| format!("create {}: {e}", args.work_dir.display()))?;
    let mut results: Vec<(System, Res<Measured>)> = Vec::new();
    for &sys in &systems {
        eprintln!("\n== {} ==", sys.title());
        let r = measure(sys, &bins, &args, &ds, &queries, (start, end));
        if let Err(e) = &r {
            eprintln!("{}: {e}", sys.title());
        }
        results.push((sys, r));
    }

    let warnings = report::check_answers(&ds, &queries, &results);
    let text = report::render(&report::Context {
        ds: &ds,
        queries: &queries,
        results: &results,
        warnings: &warnings,
        runs: args.runs,
        clients: args.input.clients,
        batch_bytes: args.input.batch_bytes,
        range: (start, end),
    });
    println!("{text}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    std::fs::write(&args.out, &text).map_err(|e| format!("write {}: {e}", args.out.display()))?;
    eprintln!("report written to {}", args.out.display());
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    if results.iter().any(|r| r.1.is_err()) {
        return Err("a system failed (see above)".into());
    }
    Ok(())
}

/// Whole hours around the data: metric steps (5 min, 1 h) then line up the same way in
/// every system, and `count_over_time` sums count each line exactly once.
fn query_range(min_ts: i64, max_ts: i64) -> (i64, i64) {
    const HOUR: i64 = 3600 * 1_000_000_000;
    (
        min_ts.div_euclid(HOUR) * HOUR,
        (max_ts.div_euclid(HOUR) + 1) * HOUR,
    )
}

/// Runs the shared unpack script when a peer binary is missing.
fn unpack_peers(dir: &Path, bins: &Bins, script: &Path) -> Res<()> {
    if bins.loki.is_file() && bins.vl.is_file() {
        return Ok(());
    }
    eprintln!("unpacking peer binaries into {}", dir.display());
    run_script(script, dir, || {
        format!("peer binaries missing in {} (needs zstd)", dir.display())
    })
}

/// `bash script arg`; `why` says what the script was for when it is missing or fails.
fn run_script(script: &Path, arg: &Path, why: impl Fn() -> String) -> Res<()> {
    if !script.is_file() {
        return Err(format!("{}, and there is no {}", why(), script.display()));
    }
    let st = Command::new("bash")
        .arg(script)
        .arg(arg)
        .status()
        .map_err(|e| format!("{}: run {}: {e}", why(), script.display()))?;
    if !st.success() {
        return Err(format!("{}: {} failed: {st}", why(), script.display()));
    }
    Ok(())
}

/// Start, push, flush, query, stop and measure one system.
fn measure(
    sys: System,
    bins: &Bins,
    args: &Args,
    ds: &dataset::Dataset,
    queries: &[queries::Query],
    (start, end): (i64, i64),
) -> Res<Measured> {
    let load_before = proc::load_avg();
    if let Some(l) = load_before.filter(|&l| l >= 1.0) {
        eprintln!("note: load average {l:.2}: the machine is not idle, timings will be noisy");
    }
    let mut run = systems::start(sys, bins, &args.work_dir)?;
    eprintln!(
        "ready after {:.1} s (log: {})",
        run.ready_s,
        run.proc.log.display()
    );
    let pid = run.proc.pid();
    let push_s = run.push(&ds.bodies)?;
    let hwm_ingest = proc::memory(pid).map_or(0, |m| m.0);
    eprintln!(
        "pushed in {push_s:.2} s: {:.0} lines/s",
        ds.lines as f64 / push_s
    );
    let flush_s = run.flush()?;
    eprintln!("flushed in {flush_s:.2} s");
    let mut results = Vec::new();
    for q in queries {
        let mut times = Vec::new();
        let mut first = None;
        for _ in 0..args.runs {
            let (ms, a) = run.query(q, start, end)?;
            times.push(ms);
            first.get_or_insert(a);
        }
        let best = times.iter().copied().fold(f64::INFINITY, f64::min);
        let answer = first.unwrap_or_default();
        eprintln!(
            "{:<16} first {:>9.1} ms, best {:>9.1} ms, {} series, {} rows, sum {}",
            q.name, times[0], best, answer.series, answer.rows, answer.sum
        );
        results.push(QueryResult {
            first_ms: times[0],
            best_ms: best,
            answer,
        });
    }
    let (hwm_total, rss_after) = proc::memory(pid).unwrap_or((0, 0));
    let stop_s = run.proc.stop(Duration::from_secs(300))?;
    let disk = proc::disk_usage(&run.data_dir)?;
    eprintln!(
        "stopped in {stop_s:.1} s; data dir {:.1} MB ({:.1} MB without WAL)",
        disk.apparent as f64 / 1e6,
        disk.without_wal() as f64 / 1e6
    );
    let rest = match sys {
        System::Silt => Some(at_rest(bins, args)?),
        _ => None,
    };
    if !args.keep_data {
        let _ = std::fs::remove_dir_all(&run.data_dir);
    }
    Ok(Measured {
        load_before,
        ready_s: run.ready_s,
        push_s,
        flush_s,
        stop_s,
        hwm_ingest,
        hwm_total,
        rss_after,
        disk,
        rest,
        queries: results,
    })
}

/// Silt's data dir at rest: restarted, one maintenance pass (compaction rewrites the
/// flushed segments at the rest level), stopped. Returns the disk and the pass's seconds.
fn at_rest(bins: &Bins, args: &Args) -> Res<(proc::DiskUsage, f64)> {
    let mut run = systems::restart_silt_compacting(bins, &args.work_dir)?;
    let pass_s = run.wait_maintenance_pass()?;
    run.proc.stop(Duration::from_secs(300))?;
    let disk = proc::disk_usage(&run.data_dir)?;
    eprintln!(
        "at rest after a {pass_s:.1} s compaction pass: data dir {:.1} MB",
        disk.apparent as f64 / 1e6
    );
    Ok((disk, pass_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_whole_hours_around_the_data() {
        const H: i64 = 3_600_000_000_000;
        assert_eq!(query_range(H + 5, 3 * H - 1), (H, 3 * H));
        assert_eq!(query_range(H, 3 * H), (H, 4 * H));
    }

    #[test]
    fn bad_flags_are_errors() {
        let e = main(["peers", "--systems", "silt,es"].map(OsString::from)).unwrap_err();
        assert!(e.contains("unknown system"), "{e}");
        assert!(main(["peers", "--runs", "0"].map(OsString::from)).is_err());
    }
}
