//! SIGKILL in the middle of concurrent pushes: after a restart every acknowledged
//! entry is there exactly once (WAL replay + segments + read-time dedup).

use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use silt_testkit::{free_port, http, query_lines, Server};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Small flush threshold and age so segments are cut and WAL files dropped during the test.
const CONFIG: &str = "
limits:
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
storage:
  wal_fsync: true
  flush_max_bytes: 1MiB
  flush_max_age: 1s
";

const WORKERS: usize = 4;
const PER_BATCH: usize = 200;

fn batch(worker: usize, b: usize, base: i64) -> (Vec<u8>, Vec<String>) {
    let lines: Vec<String> = (0..PER_BATCH)
        .map(|e| {
            format!(
                "worker={worker} batch={b} entry={e} payload={}",
                "x".repeat(200)
            )
        })
        .collect();
    let entries = lines
        .iter()
        .enumerate()
        .map(|(e, l)| Entry {
            ts: base + (b * PER_BATCH + e) as i64,
            line: l.clone(),
            metadata: Labels::new(),
        })
        .collect();
    let labels = Labels::from_pairs([
        ("test", "durability".to_string()),
        ("worker", worker.to_string()),
    ]);
    (
        encode_push_protobuf(&[PushStream { labels, entries }]),
        lines,
    )
}

fn query_all(addr: &str, worker: usize, base: i64) -> Vec<String> {
    let q = format!("{{test=\"durability\", worker=\"{worker}\"}}");
    query_lines(addr, &q, base, base + 3_600_000_000_000)
}

#[test]
fn sigkill_during_pushes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(bin(), dir.path(), CONFIG, port);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        - 600_000_000_000;
    let acked: Arc<Mutex<HashMap<usize, Vec<String>>>> = Arc::default();
    let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..WORKERS {
        let (addr, acked, sent, stop) = (
            server.addr.clone(),
            acked.clone(),
            sent.clone(),
            stop.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let hdr = [("Content-Type", "application/x-protobuf")];
            for b in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (body, lines) = batch(w, b, base);
                sent.lock().unwrap().extend(lines.iter().cloned());
                match http(&addr, "POST", "/loki/api/v1/push", &hdr, &body) {
                    Ok((204, _)) => {
                        // A client retry of an acknowledged push must not duplicate anything.
                        if b % 7 == 0 {
                            let _ = http(&addr, "POST", "/loki/api/v1/push", &hdr, &body);
                        }
                        acked.lock().unwrap().entry(w).or_default().extend(lines);
                    }
                    Ok((status, body)) => {
                        panic!("push answered {status}: {}", String::from_utf8_lossy(&body))
                    }
                    Err(_) => break, // server killed
                }
            }
        }));
    }
    // Let segments be cut and WAL files dropped, then kill mid-push.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(
        total > 5_000,
        "too few pushes acknowledged before the kill ({total})"
    );
    let segments = std::fs::read_dir(dir.path().join("data/objects/tenants/fake/segments"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        segments > 0,
        "no segment was written before the kill; the test would not cover the flush path"
    );

    let server = Server::start(bin(), dir.path(), CONFIG, port);
    let sent = sent.lock().unwrap();
    for w in 0..WORKERS {
        let found = query_all(&server.addr, w, base);
        let mut seen = HashSet::new();
        for l in &found {
            assert!(seen.insert(l.clone()), "entry returned twice: {l}");
            assert!(sent.contains(l), "entry never sent: {l}");
        }
        for l in acked.get(&w).into_iter().flatten() {
            assert!(seen.contains(l), "acknowledged entry lost: {l}");
        }
    }
}

fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_silt"))
}
