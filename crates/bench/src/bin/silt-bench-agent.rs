//! `silt-bench-agent`: silt-agent tailing throughput, CPU and memory into a real server.
//!
//!     cargo build --release -p silt -p silt-agent -p silt-bench
//!     target/release/silt-bench-agent [--mb 512] [--rate-lines 10000 --rate-secs 30] [--null-sink]
//!
//! Phase 1 (throughput): writes `--mb` of 200-byte lines to a file, starts the agent on it
//! and times until the server acknowledged every line (`loki_write_sent_entries_total`);
//! reports lines/s, MB/s, agent CPU seconds per MB and peak RSS.
//! Phase 2 (steady rate): a writer appends `--rate-lines` lines/s for `--rate-secs` while the
//! agent ships them; reports the agent's peak RSS and CPU %.

use clap::Parser;
use silt_testkit::{free_port, http, peak_rss, Server};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Directory holding `silt` and `silt-agent` (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Size of the throughput file in MB.
    #[arg(long, default_value_t = 512)]
    mb: usize,
    /// Lines per second for the steady-rate phase.
    #[arg(long, default_value_t = 10_000)]
    rate_lines: usize,
    /// Duration of the steady-rate phase.
    #[arg(long, default_value_t = 30)]
    rate_secs: u64,
    /// Also measure against a null sink (answers 204 without decoding) to separate the
    /// agent's own cost from the server's ingest speed.
    #[arg(long)]
    null_sink: bool,
}

/// An HTTP endpoint that reads each request body and answers 204.
fn null_sink() -> String {
    use std::io::{BufRead, BufReader, Read};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err()
                        || w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

const SERVER_CONFIG: &str =
    "limits:\n  ingestion_rate_mb: 100000\n  ingestion_burst_size_mb: 100000\n  max_line_size: 1MiB\n";

fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let ut: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let st: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (ut + st) / tick
}

fn metric(addr: &str, name: &str) -> f64 {
    let Ok((200, body)) = http(addr, "GET", "/metrics", &[], b"") else {
        return 0.0;
    };
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start_agent(bin: &Path, dir: &Path, server: &str, glob: &str) -> (Child, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = format!(
        "data_dir: {}\nserver: {{listen: '{listen}'}}\nclient: {{url: '{server}', batch_wait: 200ms}}\nsources:\n  - type: file\n    include: ['{glob}']\n    labels: {{job: bench}}\n    max_line_size: 1MiB\n",
        dir.join("data").display()
    );
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("agent.yaml");
    std::fs::write(&p, cfg).unwrap();
    let child = Command::new(bin)
        .arg("--config")
        .arg(&p)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start silt-agent");
    let t = Instant::now();
    while !matches!(http(&listen, "GET", "/ready", &[], b""), Ok((200, _))) {
        assert!(t.elapsed() < Duration::from_secs(30), "agent not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, listen)
}

fn line(i: usize) -> String {
    // ~200 bytes, logfmt-ish, varying content.
    format!(
        "ts=2024-01-01T00:00:00.{:06}Z level=info caller=handler.go:{} msg=\"request served\" method=GET path=/api/v1/items/{} status=200 dur_ms={} user={} pad={}\n",
        i % 1_000_000, i % 997, i, i % 313, i % 10_007, "x".repeat(40)
    )
}

fn main() {
    let a = Args::parse();
    let dir = a.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf()
    });
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.join("silt"),
        &tmp.path().join("srv"),
        SERVER_CONFIG,
        free_port(),
    );

    // Phase 1: throughput on a pre-written file.
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let path = logs.join("big.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (mut bytes, mut n) = (0usize, 0usize);
    while bytes < a.mb << 20 {
        let l = line(n);
        bytes += l.len();
        f.write_all(l.as_bytes()).unwrap();
        n += 1;
    }
    f.flush().unwrap();
    drop(f);
    let throughput = |target: &str, label: &str, sub: &str| {
        let (mut agent, listen) = start_agent(
            &dir.join("silt-agent"),
            &tmp.path().join(sub),
            target,
            &format!("{}/big.log", logs.display()),
        );
        let t = Instant::now();
        while metric(&listen, "loki_write_sent_entries") < n as f64 {
            std::thread::sleep(Duration::from_millis(20));
            assert!(t.elapsed() < Duration::from_secs(1800), "timeout");
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds(agent.id());
        let rss = peak_rss(agent.id()).unwrap_or(0);
        let _ = agent.kill();
        let _ = agent.wait();
        let mb = bytes as f64 / 1e6;
        println!("throughput ({label}): {n} lines, {mb:.0} MB in {secs:.2}s = {:.0} lines/s, {:.1} MB/s; agent CPU {cpu:.2}s ({:.1} MB per CPU-second); peak RSS {:.1} MiB",
            n as f64 / secs, mb / secs, mb / cpu.max(1e-9), rss as f64 / 1048576.0);
    };
    if a.null_sink {
        throughput(&null_sink(), "null sink", "a0");
    }
    throughput(&server.url(), "silt server", "a1");

    // Phase 2: steady rate.
    let path2 = logs.join("steady.log");
    std::fs::File::create(&path2).unwrap();
    let (mut agent, listen) = start_agent(
        &dir.join("silt-agent"),
        &tmp.path().join("a2"),
        &server.url(),
        &format!("{}/steady.log", logs.display()),
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path2)
        .unwrap();
    let start = Instant::now();
    let cpu0 = cpu_seconds(agent.id());
    let mut written = 0usize;
    while start.elapsed() < Duration::from_secs(a.rate_secs) {
        let due = (start.elapsed().as_secs_f64() * a.rate_lines as f64) as usize;
        let mut buf = String::new();
        while written < due {
            buf.push_str(&line(written));
            written += 1;
        }
        f.write_all(buf.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = cpu_seconds(agent.id()) - cpu0;
    while metric(&listen, "loki_write_sent_entries") < written as f64 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss = peak_rss(agent.id()).unwrap_or(0);
    let _ = agent.kill();
    let _ = agent.wait();
    println!(
        "steady: {} lines/s for {}s: agent CPU {:.1}% of one core, peak RSS {:.1} MiB",
        a.rate_lines,
        a.rate_secs,
        cpu / a.rate_secs as f64 * 100.0,
        rss as f64 / 1048576.0
    );
}
