//! Live tail through the gateway in front of separate roles: the reader replays what
//! was pushed before (from the writers' heads), every writer sends what it takes from
//! then on, and the client gets each line once.

use super::{bin, Gateway};
use silt_testkit::moto::Moto;
use silt_testkit::{enc, free_port, metric, now_ns, push_json, Server};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

fn config(moto: &Moto, target: &str, cluster: &str) -> String {
    format!(
        "target: {target}\nstorage:\n  flush_max_age: 1h\n{}cluster:\n  catalog_refresh_interval: 200ms\n{cluster}\n",
        super::object_store(moto, "tail")
    )
}

/// Pushes `n` lines per stream `s{first}..s{first + streams}` through `gw`.
fn push(gw: &str, tag: &str, streams: std::ops::Range<usize>, n: usize) -> Vec<String> {
    let mut all = Vec::new();
    for s in streams {
        let lines: Vec<String> = (0..n).map(|i| format!("{tag} s{s} line {i}")).collect();
        let ts = now_ns();
        let entries: Vec<(i64, String)> = (ts..).zip(lines.iter().cloned()).collect();
        push_json(
            gw,
            None,
            &[("app", "tail"), ("s", &format!("s{s}"))],
            &entries,
        );
        all.extend(lines);
    }
    all
}

/// The lines of a tail frame.
fn lines_of(frame: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(frame).unwrap();
    let mut out = Vec::new();
    for s in v["streams"].as_array().unwrap() {
        for e in s["values"].as_array().unwrap() {
            out.push(e[1].as_str().unwrap().to_string());
        }
    }
    out
}

#[test]
fn live_tail_through_the_gateway_hears_every_writer() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = |name: &str, cfg: String| Server::start(bin(), &d.join(name), &cfg, free_port());
    let w0 = start("w0", config(&moto, "write", "  writer_id: w0"));
    let w1 = start("w1", config(&moto, "write", "  writer_id: w1"));
    let asks = format!("  writer_urls: [{}, {}]", w0.url(), w1.url());
    let reader = start("r", config(&moto, "read", &asks));
    let gw = Gateway::start(
        d,
        &format!(
            "gateway:\n  write_urls: [{}, {}]\n  read_urls: [{}]\n",
            w0.url(),
            w1.url(),
            reader.url()
        ),
    );

    let mut expected: BTreeSet<String> = push(&gw.addr, "before", 0..4, 3).into_iter().collect();
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}&start={}",
        gw.addr,
        enc(r#"{app="tail"}"#),
        now_ns() - 3_600_000_000_000
    );
    let (mut ws, _) = tungstenite::connect(url.into_client_request().unwrap()).unwrap();
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let mut got: Vec<String> = Vec::new();
    let mut read_until = |n: usize, got: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < n {
            assert!(
                Instant::now() < deadline,
                "got {} of {n} lines: {got:?}",
                got.len()
            );
            match ws.read() {
                Ok(Message::Text(t)) => got.extend(lines_of(t.as_str())),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("tail read failed: {e}"),
            }
        }
    };
    read_until(expected.len(), &mut got);
    // Live: streams spread over both writers.
    expected.extend(push(&gw.addr, "live", 0..10, 4));
    read_until(expected.len(), &mut got);
    // Late copies would show up now.
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        if let Ok(Message::Text(t)) = ws.read() {
            got.extend(lines_of(t.as_str()));
        }
    }
    let n = got.len();
    let set: BTreeSet<String> = got.into_iter().collect();
    assert_eq!(n, set.len(), "some lines came twice");
    assert_eq!(set, expected);
    for w in [&w0, &w1] {
        assert!(
            metric(&w.addr, "silt_ingested_entries") > 0.0,
            "{}",
            w.url()
        );
    }
}
