//! `silt-bench`: end-to-end figures for BENCHMARKS.md.
//!
//! Starts the release `silt` binary on a temp dir, pushes the conformance dataset
//! (replicated with shifted timestamps) over the Loki protobuf API from several
//! concurrent clients, flushes, then measures bytes on disk, peak RSS and the
//! latency of a fixed set of log and metric queries.
//!
//!     cargo build --release --workspace --bins && target/release/silt-bench
//!
//! `silt-bench peers` instead runs Silt, Loki and VictoriaLogs one after the other on the
//! same dataset and prints one comparison table (see `peers/mod.rs`); `silt-bench writers`
//! measures ingest through the gateway with 1 and 3 writers (`peers/writers.rs`).

mod peers;

use clap::Parser;
use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use silt_testkit::{enc, free_port, http, peak_rss, shared_dir, Server};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(after_help = "`silt-bench peers --help`: Silt, Loki and VictoriaLogs side by side.")]
struct Args {
    /// The silt binary (default: next to this one).
    #[arg(long)]
    silt: Option<PathBuf>,
    /// Dataset (JSONL, zstd) in the conformance kit's format.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Copies of the dataset, each shifted by 6h.
    #[arg(long, default_value_t = 4)]
    copies: usize,
    /// Concurrent push clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Raw bytes per push request.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Runs of each query (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Store segments in this S3-compatible endpoint (e.g. http://127.0.0.1:5000) instead
    /// of the local disk, and add object-store figures (objects per GB, cold vs warm cache).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Bucket (must exist) for `--s3-endpoint`.
    #[arg(long, default_value = "silt-bench")]
    s3_bucket: String,
}

struct Row {
    labels: Labels,
    entry: Entry,
}

const SIX_HOURS: i64 = 6 * 3600 * 1_000_000_000;
const START: &str = "2024-01-01T00:00:00Z";
const END: &str = "2024-01-01T06:00:00Z";

fn load(path: &Path) -> Vec<Row> {
    let mut child = Command::new("zstd")
        .arg("-dc")
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd");
    let out = child.stdout.take().unwrap();
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(out).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let labels = Labels::from_pairs(
            v["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())),
        );
        let md = v.get("sm").and_then(|m| m.as_object()).map(|m| {
            Labels::from_pairs(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())),
            )
        });
        let ts = silt_proto_ts(v["ts"].as_str().unwrap());
        rows.push(Row {
            labels,
            entry: Entry {
                ts,
                line: v["line"].as_str().unwrap().to_string(),
                metadata: md.unwrap_or_default(),
            },
        });
    }
    child.wait().unwrap();
    rows
}

/// RFC3339Nano `2024-01-01T00:00:00.000000933Z` → ns (dataset timestamps are UTC).
fn silt_proto_ts(s: &str) -> i64 {
    silt_proto::time::parse_rfc3339(s)
        .unwrap_or_else(|| panic!("bad timestamp {s:?} in the dataset"))
}

/// Push bodies of about `batch_bytes` raw bytes, streams grouped as an agent batches them,
/// each tagged with its tenant. Copy `c` goes to tenant `bench-c`, so no segment holds two
/// copies of a line (that would flatter the compression figure).
fn bodies(
    rows: &[Row],
    copies: usize,
    batch_bytes: usize,
) -> (Vec<(String, Vec<u8>)>, usize, usize) {
    let mut out = Vec::new();
    let (mut lines, mut raw) = (0, 0);
    for c in 0..copies {
        let shift = c as i64 * SIX_HOURS;
        let mut batch: BTreeMap<&Labels, Vec<Entry>> = BTreeMap::new();
        let mut size = 0;
        for r in rows {
            let mut e = r.entry.clone();
            e.ts += shift;
            size += e.line.len() + e.metadata.byte_size();
            raw += e.line.len();
            lines += 1;
            batch.entry(&r.labels).or_default().push(e);
            if size >= batch_bytes {
                out.push((format!("bench-{c}"), encode(&mut batch)));
                size = 0;
            }
        }
        if !batch.is_empty() {
            out.push((format!("bench-{c}"), encode(&mut batch)));
        }
    }
    (out, lines, raw)
}

fn encode(batch: &mut BTreeMap<&Labels, Vec<Entry>>) -> Vec<u8> {
    let streams: Vec<PushStream> = std::mem::take(batch)
        .into_iter()
        .map(|(l, entries)| PushStream {
            labels: l.clone(),
            entries,
        })
        .collect();
    encode_push_protobuf(&streams)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Queries that must read every line of the window and keep none: scan speed.
const SCANS: &[(&str, &str)] = &[
    (
        "substring line filter",
        "{cluster=~\"cluster-.*\"} |= \"no-such-text\"",
    ),
    (
        "regex line filter",
        "{cluster=~\"cluster-.*\"} |~ \"no-such-(text|thing)\"",
    ),
    (
        "json parser + label filter",
        "{cluster=~\"cluster-.*\"} | json | nosuchfield=\"x\"",
    ),
    (
        "logfmt parser + label filter",
        "{cluster=~\"cluster-.*\"} | logfmt | nosuchfield=\"x\"",
    ),
];

/// GB/s of line bytes scanned per query (the engine runs a query on one core).
fn scan_speed(addr: &str, bytes: &usize, runs: usize) {
    println!("\n## LogQL scan speed over the whole 6 h window of `bench-0` ({:.1} MB of lines, one core per query)\n", *bytes as f64 / 1e6);
    println!("| query | median ms | GB/s per core |\n| --- | --- | --- |");
    for (name, q) in SCANS {
        let path = format!(
            "/loki/api/v1/query_range?query={}&start={START}&end={END}&limit=1000",
            enc(q)
        );
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let (status, body) =
                http(addr, "GET", &path, &[("X-Scope-OrgID", "bench-0")], b"").unwrap();
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let med = times[times.len() / 2];
        println!(
            "| {name}: `{q}` | {:.0} | {:.2} |",
            med * 1000.0,
            *bytes as f64 / med / 1e9
        );
    }
}

const QUERIES: &[(&str, &str)] = &[
    ("log: selector, limit 100", "{service_name=\"web-server\"}"),
    ("log: two substring filters, limit 1000", "{service_name=\"nginx\"} |= \"GET\" |= \"200\""),
    ("log: filter over all streams, limit 1000", "{cluster=~\"cluster-.*\"} |= \"error\""),
    ("log: json + label filter", "{service_name=\"web-server\"} | json | status >= 500"),
    ("log: logfmt + duration filter", "{service_name=\"grafana\"} | logfmt | duration > 1s"),
    ("metric: count_over_time by service, all streams", "sum by (service_name) (count_over_time({cluster=~\"cluster-.*\"}[5m]))"),
    ("metric: rate of one service", "sum(rate({service_name=\"nginx\"}[1m]))"),
    ("metric: json count by level", "sum by (level) (count_over_time({service_name=\"auth-service\"} | json [5m]))"),
    ("metric: p95 of unwrapped json field", "quantile_over_time(0.95, {service_name=\"web-server\"} | json | unwrap duration_ms [5m]) by (service_name)"),
];

fn main() {
    // `silt-bench peers ...`: Silt, Loki and VictoriaLogs side by side (own flags).
    if std::env::args().nth(1).as_deref() == Some("peers") {
        if let Err(e) = peers::main(std::env::args_os().skip(1)) {
            eprintln!("silt-bench peers: {e}");
            std::process::exit(1);
        }
        return;
    }
    // `silt-bench writers ...`: ingest through the gateway with 1 and 3 writers.
    if std::env::args().nth(1).as_deref() == Some("writers") {
        if let Err(e) = peers::writers::main(std::env::args_os().skip(1)) {
            eprintln!("silt-bench writers: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args = Args::parse();
    let silt = args
        .silt
        .clone()
        .unwrap_or_else(|| std::env::current_exe().unwrap().with_file_name("silt"));
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| shared_dir().join("conformance/data.jsonl.zst"));
    eprintln!("loading {}", data.display());
    let rows = load(&data);
    let rows_bytes_first_copy: usize = rows.iter().map(|r| r.entry.line.len()).sum();
    let (bodies, lines, raw) = bodies(&rows, args.copies, args.batch_bytes);
    drop(rows);
    let wire: usize = bodies.iter().map(|b| b.1.len()).sum();
    eprintln!(
        "{} requests, {lines} lines, {raw} raw line bytes, {wire} bytes on the wire",
        bodies.len()
    );

    let dir = tempfile::tempdir().unwrap();
    // The benchmark data is from 2024: no retention.
    let mut config = "auth_enabled: true\ncompactor:\n  retention_enabled: false\nlimits:\n  reject_old_samples: false\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n".to_string();
    if let Some(ep) = &args.s3_endpoint {
        config.push_str(&format!(
            "storage:\n  object_store:\n    backend: s3\n    s3:\n      bucket: {}\n      endpoint: {ep}\n      force_path_style: true\n      access_key_id: bench\n      secret_access_key: bench\n",
            args.s3_bucket
        ));
    }
    let server = Server::start(&silt, dir.path(), &config, free_port());
    let pid = server.child.id();

    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..args.clients)
        .map(|_| {
            let (bodies, next, addr) = (bodies.clone(), next.clone(), server.addr.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((tenant, b)) = bodies.get(i) else {
                    break;
                };
                let headers = [
                    ("Content-Type", "application/x-protobuf"),
                    ("X-Scope-OrgID", tenant.as_str()),
                ];
                let (status, body) = http(&addr, "POST", "/loki/api/v1/push", &headers, b).unwrap();
                assert_eq!(status, 204, "{}", String::from_utf8_lossy(&body));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ingest = t0.elapsed().as_secs_f64();
    let rss_ingest = peak_rss(pid).unwrap_or(0);
    let t1 = Instant::now();
    let (status, _) = http(&server.addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(status, 204);
    let flush = t1.elapsed().as_secs_f64();
    let objects = if args.s3_endpoint.is_some() {
        metric(&server.addr, "silt_segment_bytes") as u64
    } else {
        dir_size(&dir.path().join("data/objects"))
    };
    let wal = dir_size(&dir.path().join("data/wal"));

    println!(
        "## Ingest ({} clients, protobuf+snappy, {} copies of the conformance data, one tenant each)\n",
        args.clients, args.copies
    );
    println!("| figure | value |\n| --- | --- |");
    println!("| lines pushed | {lines} |");
    println!("| raw line bytes | {:.1} MB |", raw as f64 / 1e6);
    println!("| ingest time (fsynced WAL, acked) | {ingest:.2} s |");
    println!(
        "| throughput | {:.0} lines/s, {:.1} MB/s |",
        lines as f64 / ingest,
        raw as f64 / 1e6 / ingest
    );
    println!("| flush to segments | {flush:.2} s |");
    println!("| segment bytes on disk | {:.1} MB |", objects as f64 / 1e6);
    println!(
        "| compression (raw line bytes / bytes on disk) | {:.2}x |",
        raw as f64 / objects.max(1) as f64
    );
    println!("| WAL left after flush | {wal} bytes |");
    println!(
        "| peak RSS during ingest | {:.0} MB |",
        rss_ingest as f64 / 1e6
    );

    println!(
        "\n## Queries over the 6 h window of the first copy (median of {} runs)\n",
        args.runs
    );
    println!(
        "| query | kind | median ms | min ms | result size |\n| --- | --- | --- | --- | --- |"
    );
    for (name, q) in QUERIES {
        let limit = if name.contains("1000") { 1000 } else { 100 };
        let (mut times, size) = timed_runs(&server.addr, &query_path(name, q, limit), args.runs);
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| `{q}` | {name} | {:.1} | {:.1} | {size} B |",
            times[times.len() / 2],
            times[0]
        );
    }
    scan_speed(&server.addr, &rows_bytes_first_copy, args.runs);
    if args.s3_endpoint.is_some() {
        let segments = metric(&server.addr, "silt_segments_written_total");
        drop(server);
        object_store_figures(&silt, &config, segments, raw, objects, args.runs);
        return;
    }
    println!(
        "\npeak RSS overall: {:.0} MB",
        peak_rss(pid).unwrap_or(0) as f64 / 1e6
    );
}

/// A value of the server's `/metrics`.
fn metric(addr: &str, name: &str) -> f64 {
    let (_, body) = http(addr, "GET", "/metrics", &[], b"").unwrap();
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}

/// Objects per GB, bucket bytes per raw byte, and query latency from a node that starts
/// with an empty disk (cold: every segment fetched from the bucket) and then warm.
fn object_store_figures(
    silt: &Path,
    config: &str,
    segments: f64,
    raw: usize,
    bucket_bytes: u64,
    runs: usize,
) {
    let gb = raw as f64 / 1e9;
    println!("\n## Object store (S3 backend)\n");
    println!("| figure | value |\n| --- | --- |");
    println!(
        "| objects written per GB of raw lines | {:.1} (segment + sidecar each) |",
        2.0 * segments / gb
    );
    println!(
        "| bucket bytes per raw line byte | {:.3} |",
        bucket_bytes as f64 / raw.max(1) as f64
    );
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let server = Server::start(silt, dir.path(), config, free_port());
    println!(
        "| start-up from the bucket alone (empty disk) | {:.2} s |",
        t.elapsed().as_secs_f64()
    );
    drop(server);
    println!(
        "\n### Query latency, cold (first run on a node started with an empty disk) vs warm cache\n"
    );
    println!("| query | cold ms | fetched cold, MB (share of the bucket) | warm median ms |\n| --- | --- | --- | --- |");
    for (name, q) in QUERIES {
        // A fresh node per query so every query starts cold.
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(silt, dir.path(), config, free_port());
        let path = query_path(name, q, 1000);
        let (mut times, _) = timed_runs(&server.addr, &path, 1);
        let fetched = metric(&server.addr, "silt_object_store_range_bytes_total");
        times.extend(timed_runs(&server.addr, &path, runs.max(1)).0);
        let cold = times.remove(0);
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| `{q}` | {cold:.1} | {:.2} ({:.1}%) | {:.1} |",
            fetched / 1e6,
            100.0 * fetched / bucket_bytes.max(1) as f64,
            times[times.len() / 2]
        );
    }
}

/// `query_range` over the benchmark window: a step for metric queries, else `limit`.
fn query_path(name: &str, q: &str, limit: usize) -> String {
    if name.starts_with("metric") {
        format!(
            "/loki/api/v1/query_range?query={}&start={START}&end={END}&step=60",
            enc(q)
        )
    } else {
        format!(
            "/loki/api/v1/query_range?query={}&start={START}&end={END}&limit={limit}",
            enc(q)
        )
    }
}

/// Runs a query `runs` times as tenant `bench-0`: each run's ms, and the response size.
fn timed_runs(addr: &str, path: &str, runs: usize) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let (status, body) = http(addr, "GET", path, &[("X-Scope-OrgID", "bench-0")], b"").unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
        size = body.len();
    }
    (times, size)
}
