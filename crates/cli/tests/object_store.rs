//! The S3 backend against a real S3-compatible server (moto's server from PyPI, installed
//! into `target/pydeps-s3` on first run): restart from the bucket alone, an outage during
//! ingestion (with and without a SIGKILL of silt), the WAL disk cap, and retention.

use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use silt_testkit::moto::{Moto, BUCKET};
use silt_testkit::{enc, free_port, http, metric, query_lines, wait_for, Server};
use std::collections::BTreeSet;
use std::path::Path;

fn config(moto: &Moto, extra_storage: &str) -> String {
    format!(
        "
limits:
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
storage:
  flush_max_bytes: 1MiB
  flush_max_age: 1h
{extra_storage}
  object_store:
    backend: s3
    retry_max_backoff: 2s
    s3:
      bucket: {BUCKET}
      endpoint: http://{}
      region: us-east-1
      force_path_style: true
      access_key_id: test
      secret_access_key: ${{SILT_TEST_S3_SECRET:-test}}
      request_timeout: 1s
      max_retries: 0
",
        moto.addr()
    )
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Pushes `n` entries to stream `{app=<app>}` starting at `ts0`; returns status and the lines.
fn push(addr: &str, app: &str, tag: &str, ts0: i64, n: usize) -> (u16, String, Vec<String>) {
    let lines: Vec<String> = (0..n)
        .map(|i| format!("app={app} tag={tag} i={i} {}", "p".repeat(100)))
        .collect();
    let entries = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Entry {
            ts: ts0 + i as i64,
            line: l.clone(),
            metadata: Labels::new(),
        })
        .collect();
    let labels = Labels::from_pairs([("app", app.to_string())]);
    let body = encode_push_protobuf(&[PushStream { labels, entries }]);
    let hdr = [("Content-Type", "application/x-protobuf")];
    let (status, resp) = http(addr, "POST", "/loki/api/v1/push", &hdr, &body).unwrap();
    (status, String::from_utf8_lossy(&resp).to_string(), lines)
}

/// Pushes batches of 500 entries (from `*ts` on) until one is refused with 503, at most
/// `tries`; the acknowledged lines go to `expected`. The 503's body, if any.
fn push_until_refused(
    addr: &str,
    tag: &str,
    tries: usize,
    ts: &mut i64,
    expected: &mut BTreeSet<String>,
) -> Option<String> {
    for i in 0..tries {
        let (st, body, lines) = push(addr, "svc", &format!("{tag}-{i}"), *ts, 500);
        *ts += 1_000_000;
        match st {
            204 => expected.extend(lines),
            503 => return Some(body),
            _ => panic!("push answered {st}: {body}"),
        }
    }
    None
}

/// Every line of `{app=~".+"}` between `start` and now, paging forward.
fn query_all(addr: &str, start: i64) -> Vec<String> {
    query_lines(addr, "{app=~\".+\"}", start, now_ns() + 3_600_000_000_000)
}

fn assert_exactly(found: Vec<String>, expected: &BTreeSet<String>) {
    let n = found.len();
    let found: BTreeSet<String> = found.into_iter().collect();
    assert_eq!(n, found.len(), "some entries returned twice");
    let missing: Vec<_> = expected.difference(&found).take(3).collect();
    let extra: Vec<_> = found.difference(expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {} (e.g. {missing:?}), unexpected {} (e.g. {extra:?})",
        expected.difference(&found).count(),
        found.difference(expected).count()
    );
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_silt"))
}

#[test]
fn restart_with_empty_disk_reads_everything_from_the_bucket() {
    let moto = Moto::start();
    let cfg = config(&moto, "");
    let t0 = now_ns() - 600_000_000_000;
    let mut expected = BTreeSet::new();
    {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(bin(), dir.path(), &cfg, free_port());
        for (k, app) in ["api", "db", "web"].iter().enumerate() {
            for round in 0..3 {
                let ts = t0 + (k as i64 * 10 + round) * 1_000_000_000;
                let (st, body, lines) = push(&server.addr, app, &format!("r{round}"), ts, 2000);
                assert_eq!(st, 204, "{body}");
                expected.extend(lines);
            }
            // Several segments per stream.
            let (st, body) = http(&server.addr, "POST", "/flush", &[], b"").unwrap();
            assert_eq!(st, 204, "{}", String::from_utf8_lossy(&body));
        }
        assert_exactly(query_all(&server.addr, t0), &expected);
    } // the data dir is deleted here
    let keys = moto.keys();
    assert!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count() >= 3,
        "segments not in the bucket: {keys:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &cfg, free_port());
    assert_exactly(query_all(&server.addr, t0), &expected);
    // Segments were read by byte range, through the block cache.
    assert!(metric(&server.addr, "silt_object_store_range_requests") > 0.0);
    assert!(metric(&server.addr, "silt_cache_bytes") > 0.0);
}

#[test]
fn outage_during_ingestion_loses_nothing_acknowledged() {
    let moto = Moto::start();
    // Small WAL cap so the outage also reaches it; age-based flushes every second.
    let cfg =
        config(&moto, "  wal_max_size: 600KiB").replace("flush_max_age: 1h", "flush_max_age: 1s");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Server::start(bin(), dir.path(), &cfg, port);
    let t0 = now_ns() - 600_000_000_000;
    let mut ts = t0;
    let mut expected = BTreeSet::new();
    let mut push_ok = |addr: &str, tag: &str, expected: &mut BTreeSet<String>| {
        let (st, body, lines) = push(addr, "svc", tag, ts, 500);
        ts += 1_000_000;
        assert_eq!(st, 204, "{body}");
        expected.extend(lines);
    };
    push_ok(&server.addr, "before", &mut expected);
    let (st, _) = http(&server.addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204);

    // Outage 1: pushes are still acknowledged (into the WAL); flushes fail and are retried.
    moto.pause();
    push_ok(&server.addr, "outage1", &mut expected);
    wait_for("object store reported down", || {
        metric(&server.addr, "silt_object_store_up") == 0.0
    });
    let (st, body) = http(&server.addr, "GET", "/ready", &[], b"").unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("degraded"), "{body}");
    push_ok(&server.addr, "outage1b", &mut expected);
    moto.resume();
    wait_for("the backlog uploaded", || {
        metric(&server.addr, "silt_object_store_up") == 1.0
            && metric(&server.addr, "silt_flush_failing_attempts") == 0.0
            && metric(&server.addr, "silt_head_bytes") == 0.0
    });
    assert_exactly(query_all(&server.addr, t0), &expected);

    // Outage 2: fill the WAL to its cap (then 503 with a clear message), SIGKILL silt
    // while S3 is still down, bring S3 back, restart: every acknowledged entry is there.
    moto.pause();
    let refused = push_until_refused(&server.addr, "outage2", 200, &mut ts, &mut expected)
        .expect("the WAL cap was never reached");
    assert!(refused.contains("WAL is full"), "{refused}");
    let (st, _) = http(&server.addr, "GET", "/ready", &[], b"").unwrap();
    assert_eq!(st, 503);
    server.kill();
    moto.resume();
    let server = Server::start(bin(), dir.path(), &cfg, port);
    assert_exactly(query_all(&server.addr, t0), &expected);
    // The replayed backlog drains into the bucket and the WAL shrinks below the cap again.
    let (st, _) = http(&server.addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204);
    let (st, body, _) = push(&server.addr, "svc", "after", ts, 10);
    assert_eq!(st, 204, "{body}");
}

#[test]
fn outage_fills_the_head_memory_cap_then_pushes_get_503_and_nothing_is_lost() {
    let moto = Moto::start();
    // No WAL cap: the heads' memory cap is what an outage reaches.
    let cfg = config(&moto, "  max_head_memory: 16MiB");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(bin(), dir.path(), &cfg, port);
    let t0 = now_ns() - 600_000_000_000;
    let mut ts = t0;
    let mut expected = BTreeSet::new();
    moto.pause();
    let refused = push_until_refused(&server.addr, "full", 2000, &mut ts, &mut expected)
        .expect("the head memory cap was never reached");
    assert!(refused.contains("over its memory limit"), "{refused}");
    assert!(refused.contains("segment uploads are failing"), "{refused}");
    assert!(metric(&server.addr, "silt_head_full_refusals") >= 1.0);
    // What was refused is not stored; what was acknowledged is readable from memory.
    assert_exactly(query_all(&server.addr, t0), &expected);
    moto.resume();
    wait_for("the backlog uploaded", || {
        metric(&server.addr, "silt_object_store_up") == 1.0
            && metric(&server.addr, "silt_head_memory_bytes") < (8 << 20) as f64
    });
    let (st, body, lines) = push(&server.addr, "svc", "after", ts, 10);
    assert_eq!(st, 204, "{body}");
    expected.extend(lines);
    assert_exactly(query_all(&server.addr, t0), &expected);
}

fn lifecycle_config(moto: &Moto, prefix: &str, compactor: &str, limits: &str) -> String {
    config(moto, "")
        .replace(
            "      bucket: silt-test",
            &format!("      bucket: silt-test\n      prefix: {prefix}"),
        )
        .replace(
            "  ingestion_burst_size_mb: 1024",
            &format!("  ingestion_burst_size_mb: 1024\n{limits}"),
        )
        + &format!(
            "compactor:\n  compaction_interval: 1s\n  retention_delete_delay: 0s\n{compactor}"
        )
}

/// `data.result` of a query (the rest holds timings).
fn result(addr: &str, path: &str) -> serde_json::Value {
    let (st, body) = http(addr, "GET", path, &[], b"").unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(!v["data"]["result"].as_array().unwrap().is_empty(), "{v}");
    v["data"]["result"].clone()
}

fn flush(addr: &str) {
    let (st, body) = http(addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&body));
}

fn count_keys(moto: &Moto, prefix: &str, suffix: &str) -> usize {
    moto.keys()
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}/")) && k.ends_with(suffix))
        .count()
}

#[test]
fn retention_deletes_exactly_what_is_past_its_period() {
    let moto = Moto::start();
    let cfg = lifecycle_config(
        &moto,
        "retention",
        "  retention_enabled: true\n  compaction_enabled: false\n",
        "  retention_period: 2h\n  retention_stream:\n    - {selector: '{app=\"short\"}', priority: 1, period: 1h}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &cfg, free_port());
    let min = 60_000_000_000i64;
    let now = now_ns();
    let mut kept = BTreeSet::new();
    let mut push_at = |app: &str, ago_min: i64, keep: bool| {
        let (st, body, lines) = push(
            &server.addr,
            app,
            &format!("{ago_min}m"),
            now - ago_min * min,
            50,
        );
        assert_eq!(st, 204, "{body}");
        if keep {
            kept.extend(lines);
        }
    };
    // Segment 1: all expired (deleted whole). Segment 2: mixed (trimmed). Segment 3: kept.
    push_at("long", 180, false);
    push_at("short", 90, false);
    flush(&server.addr);
    push_at("long", 90, true);
    push_at("short", 70, false);
    push_at("short", 30, true);
    flush(&server.addr);
    push_at("short", 10, true);
    flush(&server.addr);
    wait_for("retention applied", || {
        count_keys(&moto, "retention", ".parquet") == 2
            && count_keys(&moto, "retention", ".index.json") == 2
    });
    assert_exactly(query_all(&server.addr, now - 240 * min), &kept);
    assert_eq!(metric(&server.addr, "silt_segments_expired"), 2.0);
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &cfg, free_port());
    assert_exactly(query_all(&server.addr, now - 240 * min), &kept);
}

/// Pushes three flushed rounds into a fresh prefix with maintenance off, runs `then`
/// against that server; returns the lines.
fn three_segments(moto: &Moto, prefix: &str, t0: i64, then: impl FnOnce(&str)) -> BTreeSet<String> {
    let cfg = lifecycle_config(moto, prefix, "  compaction_enabled: false\n", "");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &cfg, free_port());
    let mut expected = BTreeSet::new();
    for round in 0..3i64 {
        for app in ["a", "b"] {
            let (st, body, lines) = push(
                &server.addr,
                app,
                &format!("r{round}"),
                t0 + round * 1_000_000,
                300,
            );
            assert_eq!(st, 204, "{body}");
            expected.extend(lines);
        }
        flush(&server.addr);
    }
    assert_eq!(count_keys(moto, prefix, ".index.json"), 3);
    then(&server.addr);
    expected
}

#[test]
fn compaction_reduces_objects_with_identical_answers() {
    let moto = Moto::start();
    let t0 = now_ns() - 600_000_000_000;
    let metric_q = format!(
        "/loki/api/v1/query_range?query={}&start={t0}&end={}&step=60",
        enc("sum by (app) (count_over_time({app=~\".+\"}[10m]))"),
        now_ns()
    );
    let mut before = None;
    let expected = three_segments(&moto, "compaction", t0, |addr| {
        before = Some(result(addr, &metric_q));
    });
    let cfg = lifecycle_config(&moto, "compaction", "", "");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &cfg, free_port());
    wait_for("compaction", || {
        count_keys(&moto, "compaction", ".parquet") == 1
            && count_keys(&moto, "compaction", ".index.json") == 1
    });
    assert_exactly(query_all(&server.addr, t0), &expected);
    let after = result(&server.addr, &metric_q);
    assert_eq!(before.unwrap(), after);
    drop(server);
    // The same answers from a node that only has the bucket.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &cfg, free_port());
    assert_exactly(query_all(&server.addr, t0), &expected);
    let again = result(&server.addr, &metric_q);
    assert_eq!(after, again);
}

#[test]
fn compaction_crash_at_each_step_loses_and_duplicates_nothing() {
    let moto = Moto::start();
    let t0 = now_ns() - 600_000_000_000;
    for fp in [
        "rewrite-after-data",
        "rewrite-after-index",
        "rewrite-after-swap",
        "delete-after-first",
    ] {
        let expected = three_segments(&moto, fp, t0, |_| {});
        let cfg = lifecycle_config(&moto, fp, "", "");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server =
            Server::start_env(bin(), dir.path(), &cfg, port, &[("SILT_FAILPOINT", fp)]);
        wait_for(&format!("abort at {fp}"), || {
            server.child.try_wait().unwrap().is_some()
        });
        server.kill();
        let server = Server::start(bin(), dir.path(), &cfg, port);
        assert_exactly(query_all(&server.addr, t0), &expected);
        wait_for(&format!("compaction after {fp}"), || {
            count_keys(&moto, fp, ".index.json") == 1
        });
        assert_exactly(query_all(&server.addr, t0), &expected);
    }
}

#[test]
fn delete_request_removes_exactly_the_matched_lines() {
    let moto = Moto::start();
    let limits = "";
    let hold = lifecycle_config(
        &moto,
        "deletes",
        "  retention_enabled: true\n  compaction_enabled: false\n  delete_request_cancel_period: 1h\n",
        limits,
    );
    let apply = hold.replace(
        "delete_request_cancel_period: 1h",
        "delete_request_cancel_period: 0s",
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(bin(), dir.path(), &hold, port);
    let t0 = now_ns() - 600_000_000_000;
    let mut kept = BTreeSet::new();
    for (i, (app, tag, keep)) in [
        ("svc", "keep", true),
        ("svc", "secret", false),
        ("other", "secret", true),
    ]
    .into_iter()
    .enumerate()
    {
        let (st, body, lines) = push(&server.addr, app, tag, t0 + i as i64 * 1000, 100);
        assert_eq!(st, 204, "{body}");
        if keep {
            kept.extend(lines);
        }
    }
    flush(&server.addr);
    let start = (t0 / 1_000_000_000 - 1).to_string();
    let create = |q: &str| {
        let path = format!("/loki/api/v1/delete?query={}&start={start}", enc(q));
        let (st, body) = http(&server.addr, "POST", &path, &[], b"").unwrap();
        assert_eq!(st, 204, "{}", String::from_utf8_lossy(&body));
    };
    let list = || -> serde_json::Value {
        let (st, body) = http(&server.addr, "GET", "/loki/api/v1/delete", &[], b"").unwrap();
        assert_eq!(st, 200);
        serde_json::from_slice(&body).unwrap()
    };
    create("{app=\"svc\"} |= \"tag=secret\"");
    // Query-time filtering right away.
    assert_exactly(query_all(&server.addr, t0), &kept);
    // A second request, cancelled: its lines come back.
    create("{app=\"other\"}");
    let other = list()
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["query"] == "{app=\"other\"}")
        .unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, _) = http(
        &server.addr,
        "DELETE",
        &format!("/loki/api/v1/delete?request_id={other}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 204);
    let l = list();
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    assert_eq!(l[0]["status"], "received");
    assert_exactly(query_all(&server.addr, t0), &kept);
    drop(server);

    // Past the cancel period the request is applied to the segments.
    let server = Server::start(bin(), dir.path(), &apply, port);
    wait_for("delete processed", || {
        let (_, body) = http(&server.addr, "GET", "/loki/api/v1/delete", &[], b"").unwrap();
        String::from_utf8_lossy(&body).contains("processed")
    });
    assert_exactly(query_all(&server.addr, t0), &kept);
    // The rows are gone from storage, not only hidden: the index counts what is left.
    let stats = format!(
        "/loki/api/v1/index/stats?query={}&start={t0}&end={}",
        enc("{app=~\".+\"}"),
        now_ns()
    );
    let (st, body) = http(&server.addr, "GET", &stats, &[], b"").unwrap();
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["entries"], kept.len(), "{v}");
    drop(server);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(bin(), dir.path(), &apply, port);
    assert_exactly(query_all(&server.addr, t0), &kept);
}
