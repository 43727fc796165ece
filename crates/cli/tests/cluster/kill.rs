//! A writer SIGKILLed while pushes flow through the gateway (split by stream over three
//! writers): a client retrying every refused push until it is acknowledged, as Loki
//! clients do, ends with every line found exactly once after the writer restarts.

use super::{bin, Gateway};
use silt_testkit::moto::Moto;
use silt_testkit::{free_port, http, now_ns, query_lines, wait_for, Server};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(moto: &Moto, target: &str, cluster: &str) -> String {
    format!(
        "
target: {target}
storage:
  flush_max_age: 1h
{store}cluster:
  catalog_refresh_interval: 200ms
{cluster}
",
        store = super::object_store(moto, "kill")
    )
}

/// One push: 12 streams of 5 lines, batch `b`.
fn body(b: usize, ts: i64) -> (String, Vec<String>) {
    let mut lines = Vec::new();
    let streams: Vec<serde_json::Value> = (0..12)
        .map(|s| {
            let values: Vec<serde_json::Value> = (0..5)
                .map(|i| {
                    let line = format!("batch {b} stream {s} line {i}");
                    lines.push(line.clone());
                    serde_json::json!([(ts + i).to_string(), line])
                })
                .collect();
            serde_json::json!({"stream": {"app": "kill", "s": format!("s{s}")}, "values": values})
        })
        .collect();
    (serde_json::json!({ "streams": streams }).to_string(), lines)
}

#[test]
fn a_writer_killed_during_pushes_loses_no_acknowledged_line() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let writer = |i: usize| {
        let id = format!("w{i}");
        let cfg = config(&moto, "write", &format!("  writer_id: {id}"));
        Server::start(bin(), &d.join(&id), &cfg, ports[i])
    };
    let mut writers: Vec<Server> = (0..3).map(writer).collect();
    let urls: Vec<String> = writers.iter().map(Server::url).collect();
    let asks = format!("  writer_urls: [{}]", urls.join(", "));
    let reader = Server::start(
        bin(),
        &d.join("r"),
        &config(&moto, "read", &asks),
        free_port(),
    );
    let gw = Gateway::start(
        d,
        &format!(
            "gateway:\n  write_urls: [{}]\n  read_urls: [{}]\n",
            urls.join(", "),
            reader.url()
        ),
    );

    let t0 = now_ns();
    let acked = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let (addr, acked, refused) = (gw.addr.clone(), acked.clone(), refused.clone());
        std::thread::spawn(move || {
            let mut expected = BTreeSet::new();
            for b in 0..60 {
                let (body, lines) = body(b, now_ns());
                let h = [("Content-Type", "application/json")];
                // Until acknowledged, the same body (so the same timestamps) again.
                loop {
                    match http(&addr, "POST", "/loki/api/v1/push", &h, body.as_bytes()) {
                        Ok((204, _)) => break,
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                expected.extend(lines);
                acked.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            expected
        })
    };
    wait_for("a third of the pushes acknowledged", || {
        acked.load(Ordering::Relaxed) >= 20
    });
    writers[1].kill();
    wait_for("pushes refused while w1 is down", || {
        refused.load(Ordering::Relaxed) >= 3
    });
    writers[1] = writer(1);
    let expected = pusher.join().unwrap();
    assert_eq!(expected.len(), 60 * 60);

    let found = query_lines(&gw.addr, r#"{app="kill"}"#, t0, now_ns() + 60_000_000_000);
    let n = found.len();
    let found: BTreeSet<String> = found.into_iter().collect();
    assert_eq!(n, found.len(), "some lines returned twice");
    assert_eq!(found, expected);
}
