//! Roles on one shared bucket (`--target write`, `read`, `backend`) against moto's S3
//! server: lines pushed to two writers and flushed are all found through a reader, before
//! and after the backend compacts them; of two backends only the lease holder rewrites,
//! and after a SIGKILL the other takes over once the lease expired, no segment being
//! rewritten twice; readers also answer with the lines writers have not flushed yet.

use super::bin;
use silt_testkit::moto::Moto;
use silt_testkit::{
    enc, free_port, http, metric, now_ns, push_json, query_lines, wait_for, Server,
};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

fn config(moto: &Moto, prefix: &str, target: &str, cluster: &str, delete_delay: &str) -> String {
    format!(
        "
target: {target}
storage:
  flush_max_age: 1h
{store}compactor:
  compaction_interval: 1s
  retention_delete_delay: {delete_delay}
cluster:
  catalog_refresh_interval: 200ms
  lease_ttl: 3s
{cluster}
",
        store = super::object_store(moto, prefix)
    )
}

/// Starts one role with its own data directory under `dir`.
fn start(dir: &Path, name: &str, cfg: String) -> Server {
    Server::start(bin(), &dir.join(name), &cfg, free_port())
}

/// Pushes `n` lines named after `tag` to `addr` and flushes them into one segment.
fn push_and_flush(addr: &str, tag: &str, n: usize, expected: &mut BTreeSet<String>) {
    push_and_flush_via(addr, addr, tag, n, expected);
}

fn lines(addr: &str, t0: i64) -> Vec<String> {
    query_lines(addr, r#"{app="roles"}"#, t0, now_ns() + 3_600_000_000_000)
}

fn assert_exactly(found: Vec<String>, expected: &BTreeSet<String>) {
    let n = found.len();
    let found: BTreeSet<String> = found.into_iter().collect();
    assert_eq!(n, found.len(), "some lines returned twice");
    assert_eq!(&found, expected);
}

/// The sidecars in the bucket under `prefix`.
fn sidecars(moto: &Moto, prefix: &str) -> Vec<serde_json::Value> {
    moto.keys()
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}/")) && k.ends_with(".index.json"))
        .filter_map(|k| moto.get(k))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .collect()
}

#[test]
fn writers_a_reader_and_a_backend_share_one_bucket() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = |target: &str, cluster: &str| config(&moto, "shared", target, cluster, "1s");
    let w1 = start(d, "w1", cfg("write", "  writer_id: w1"));
    let w2 = start(d, "w2", cfg("write", "  writer_id: w-2"));
    let reader = start(d, "reader", cfg("read", ""));
    let backend = start(d, "backend", cfg("backend", ""));

    // Each role serves its own part of the API only.
    let h = [("Content-Type", "application/json")];
    let (st, _) = http(&reader.addr, "POST", "/loki/api/v1/push", &h, b"{}").unwrap();
    assert_eq!(st, 404, "a reader takes no pushes");
    let q = "/loki/api/v1/query_range?query=%7Bapp%3D%22roles%22%7D";
    assert_eq!(http(&w1.addr, "GET", q, &[], b"").unwrap().0, 404);
    assert_eq!(http(&backend.addr, "GET", q, &[], b"").unwrap().0, 404);

    let t0 = now_ns();
    let mut expected = BTreeSet::new();
    for round in 0..2 {
        push_and_flush(&w1.addr, &format!("w1 r{round}"), 50, &mut expected);
        push_and_flush(&w2.addr, &format!("w2 r{round}"), 50, &mut expected);
    }
    wait_for("every flushed line through the reader", || {
        lines(&reader.addr, t0).into_iter().collect::<BTreeSet<_>>() == expected
    });
    // Four flushed segments, merged (and recompressed) into one per writer.
    wait_for(
        "one segment per writer, in the reader's catalog too",
        || {
            metric(&backend.addr, "silt_segments") == 2.0
                && metric(&reader.addr, "silt_segments") == 2.0
                && sidecars(&moto, "shared").len() == 2
        },
    );
    assert!(metric(&backend.addr, "silt_segments_compacted") >= 4.0);
    assert_exactly(lines(&reader.addr, t0), &expected);
    let mut writers: Vec<String> = sidecars(&moto, "shared")
        .iter()
        .map(|m| {
            let w = m["writer"].as_str().unwrap().to_string();
            assert!(m["id"].as_str().unwrap().contains(&format!("-{w}-")), "{m}");
            w
        })
        .collect();
    writers.sort();
    assert_eq!(
        writers,
        ["w-2", "w1"],
        "compaction keeps each writer's rows apart"
    );
    assert_eq!(metric(&w1.addr, "silt_segments_compacted"), 0.0);
    assert_eq!(
        metric(&w1.addr, "silt_segments"),
        0.0,
        "a writer keeps no catalog of what it flushed"
    );

    // A gateway in front of the roles: pushes to a writer, queries to the reader, the
    // delete API to the backend (the reader does not serve it).
    let gw = super::Gateway::start(
        d,
        &format!(
            "gateway:\n  write_urls: [{}]\n  read_urls: [{}]\n  backend_urls: [{}]\n",
            w1.url(),
            reader.url(),
            backend.url()
        ),
    );
    push_and_flush_via(&gw.addr, &w1.addr, "gw", 10, &mut expected);
    let del = format!(
        "/loki/api/v1/delete?query={}&start=0",
        enc(r#"{app="roles"} |= "w2 r0""#)
    );
    assert_eq!(http(&reader.addr, "POST", &del, &[], b"").unwrap().0, 404);
    let (st, b) = http(&gw.addr, "POST", &del, &[], b"").unwrap();
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&b));
    let (st, b) = http(&gw.addr, "GET", "/loki/api/v1/delete", &[], b"").unwrap();
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&b).contains("w2 r0"), "{b:?}");
    expected.retain(|l| !l.starts_with("w2 r0 "));
    wait_for(
        "the delete applied by the reader, through the gateway",
        || lines(&gw.addr, t0).into_iter().collect::<BTreeSet<_>>() == expected,
    );
}

/// Pushes `n` lines through the gateway at `gw`, then flushes the writer at `writer`.
fn push_and_flush_via(
    gw: &str,
    writer: &str,
    tag: &str,
    n: usize,
    expected: &mut BTreeSet<String>,
) {
    push(gw, tag, n, expected);
    let (st, b) = http(writer, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204, "{}", String::from_utf8_lossy(&b));
}

/// Pushes `n` lines named after `tag` to `addr`.
fn push(addr: &str, tag: &str, n: usize, expected: &mut BTreeSet<String>) {
    let ts = now_ns();
    let lines: Vec<String> = (0..n).map(|i| format!("{tag} line {i}")).collect();
    let entries: Vec<(i64, String)> = (ts..).zip(lines.iter().cloned()).collect();
    push_json(addr, None, &[("app", "roles")], &entries);
    expected.extend(lines);
}

#[test]
fn one_backend_rewrites_at_a_time_and_another_takes_over_after_a_kill() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Replaced objects stay for the whole test: every sidecar ever committed is kept.
    let cfg = |target: &str, cluster: &str| config(&moto, "lease", target, cluster, "1h");
    let w = start(d, "w", cfg("write", "  writer_id: w"));
    let mut b1 = start(d, "b1", cfg("backend", ""));
    wait_for("b1 holds the lease", || {
        metric(&b1.addr, "silt_backend_lease_held") == 1.0
    });
    let b2 = start(d, "b2", cfg("backend", ""));
    let (_, ready) = http(&b2.addr, "GET", "/ready", &[], b"").unwrap();
    assert!(String::from_utf8_lossy(&ready).contains("standby"));

    let t0 = now_ns();
    let mut expected = BTreeSet::new();
    for round in 0..3 {
        push_and_flush(&w.addr, &format!("first r{round}"), 40, &mut expected);
    }
    wait_for("b1 merged the flushed segments into one", || {
        metric(&b1.addr, "silt_segments_compacted") >= 3.0
            && metric(&b1.addr, "silt_segments") == 1.0
    });
    assert_eq!(metric(&b2.addr, "silt_backend_lease_held"), 0.0);
    assert_eq!(metric(&b2.addr, "silt_segments_compacted"), 0.0);
    assert_eq!(metric(&b2.addr, "silt_maintenance_passes"), 0.0);

    // A rule group set through the holder: the next holder evaluates it too.
    let h = [("Content-Type", "application/yaml")];
    let group = "name: g1\nrules:\n  - record: roles:lines:rate1m\n    expr: sum(rate({app=\"roles\"}[1m]))\n";
    let (st, body) = http(
        &b1.addr,
        "POST",
        "/loki/api/v1/rules/ns1",
        &h,
        group.as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 202, "{}", String::from_utf8_lossy(&body));
    let groups = |addr: &str| {
        let (_, body) = http(addr, "GET", "/prometheus/api/v1/rules", &[], b"").unwrap();
        String::from_utf8_lossy(&body).matches("\"g1\"").count()
    };
    assert_eq!(
        groups(&b2.addr),
        0,
        "b2 loaded the rules before the group was set"
    );

    b1.kill();
    for round in 0..3 {
        push_and_flush(&w.addr, &format!("second r{round}"), 40, &mut expected);
    }
    wait_for("b2 took the lease over and merged the new segments", || {
        metric(&b2.addr, "silt_backend_lease_held") == 1.0
            && metric(&b2.addr, "silt_segments_compacted") >= 3.0
            && metric(&b2.addr, "silt_segments") == 1.0
    });
    assert_eq!(metric(&b2.addr, "silt_backend_lease_acquired"), 1.0);
    wait_for("b2 reloaded the rules on taking the lease", || {
        groups(&b2.addr) == 1
    });

    // No segment was replaced by two rewrites.
    let mut replaced: HashMap<String, usize> = HashMap::new();
    for m in sidecars(&moto, "lease") {
        for id in m["replaces"].as_array().into_iter().flatten() {
            *replaced
                .entry(id.as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert!(replaced.len() >= 6, "{replaced:?}");
    assert!(replaced.values().all(|n| *n == 1), "{replaced:?}");

    let reader = start(d, "reader", cfg("read", ""));
    assert_exactly(lines(&reader.addr, t0), &expected);
}

#[test]
fn a_writer_killed_with_unflushed_lines_keeps_them_after_a_restart() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = |target: &str, cluster: &str| config(&moto, "restart", target, cluster, "1s");
    let mut w = start(d, "w", cfg("write", "  writer_id: w"));
    let backend = start(d, "backend", cfg("backend", ""));
    let reader = start(d, "reader", cfg("read", ""));
    let t0 = now_ns();
    let mut expected = BTreeSet::new();
    for round in 0..2 {
        push_and_flush(&w.addr, &format!("flushed r{round}"), 30, &mut expected);
    }
    wait_for("the backend merged the writer's segments", || {
        metric(&backend.addr, "silt_segments") == 1.0
            && metric(&backend.addr, "silt_segments_compacted") >= 2.0
    });
    // Acknowledged, in the WAL only.
    let entries: Vec<(i64, String)> = (0..30)
        .map(|i| (now_ns() + i, format!("unflushed line {i}")))
        .collect();
    push_json(&w.addr, None, &[("app", "roles")], &entries);
    expected.extend(entries.into_iter().map(|e| e.1));
    w.kill();

    let w = start(d, "w", cfg("write", "  writer_id: w"));
    let (st, _) = http(&w.addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204);
    wait_for("every acknowledged line through the reader", || {
        lines(&reader.addr, t0).into_iter().collect::<BTreeSet<_>>() == expected
    });
    assert_exactly(lines(&reader.addr, t0), &expected);
    // After the replay and compaction the bucket holds each line once.
    wait_for("one segment again", || {
        metric(&backend.addr, "silt_segments") == 1.0 && sidecars(&moto, "restart").len() == 1
    });
    let rows: u64 = sidecars(&moto, "restart")
        .iter()
        .map(|m| m["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, expected.len() as u64);
}

#[test]
fn readers_see_what_writers_have_not_flushed_yet() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = |target: &str, cluster: &str| config(&moto, "fresh", target, cluster, "1s");
    let w1 = start(d, "w1", cfg("write", "  writer_id: w1"));
    let mut w2 = start(d, "w2", cfg("write", "  writer_id: w2"));
    // The reader lists the bucket only when a writer names a segment it does not know.
    let reader_cfg = cfg(
        "read",
        &format!("  writer_urls: [{}, {}]", w1.url(), w2.url()),
    )
    .replace(
        "catalog_refresh_interval: 200ms",
        "catalog_refresh_interval: 1h",
    );
    let reader = start(d, "reader", reader_cfg.clone());
    // The backend's ruler asks the writers too. A group set before the backend holds the
    // lease would wait for the next takeover (docs/scaling.md).
    let backend = start(
        d,
        "backend",
        reader_cfg.replace("target: read", "target: backend"),
    );
    wait_for("the backend holds the lease", || {
        metric(&backend.addr, "silt_backend_lease_held") == 1.0
    });
    let group = "name: fresh\ninterval: 1s\nrules:\n  - alert: Fresh\n    expr: sum(count_over_time({app=\"roles\"}[1h])) > 0\n";
    let h = [("Content-Type", "application/yaml")];
    let (st, body) = http(
        &backend.addr,
        "POST",
        "/loki/api/v1/rules/ns",
        &h,
        group.as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 202, "{}", String::from_utf8_lossy(&body));
    let t0 = now_ns();
    let mut expected = BTreeSet::new();
    let count = || {
        let q = format!(
            "/loki/api/v1/query?query={}&time={}",
            enc(r#"sum(count_over_time({app="roles"}[1h]))"#),
            now_ns() + 1_000_000_000
        );
        first_value(&reader.addr, &q)
    };

    // In the writers' heads only: no flush, no segment.
    push(&w1.addr, "w1 a", 20, &mut expected);
    push(&w2.addr, "w2 a", 20, &mut expected);
    assert_exactly(lines(&reader.addr, t0), &expected);
    assert_eq!(count(), 40);
    assert!(sidecars(&moto, "fresh").is_empty());
    // Index volume (Logs Drilldown) counts the writers' head streams too: at least the
    // lines' bytes now, and the same once flushed.
    let volume = || {
        let q = format!(
            "/loki/api/v1/index/volume?query={}&start={t0}&end={}",
            enc(r#"{app="roles"}"#),
            now_ns() + 1_000_000_000
        );
        first_value(&reader.addr, &q)
    };
    let unflushed_volume = volume();
    let line_bytes = expected.iter().map(String::len).sum::<usize>() as u64;
    assert!(
        unflushed_volume >= line_bytes,
        "{unflushed_volume} < {line_bytes}"
    );
    wait_for("the backend's alert on unflushed lines", || {
        let (_, body) = http(&backend.addr, "GET", "/prometheus/api/v1/alerts", &[], b"").unwrap();
        String::from_utf8_lossy(&body).contains("\"firing\"")
    });

    // Flushed: gone from w1's head, in a segment the reader has not listed yet; it is
    // found at once, and once.
    let (st, _) = http(&w1.addr, "POST", "/flush", &[], b"").unwrap();
    assert_eq!(st, 204);
    assert_eq!(sidecars(&moto, "fresh").len(), 1);
    assert_exactly(lines(&reader.addr, t0), &expected);
    assert_eq!(count(), 40);
    assert_eq!(metric(&reader.addr, "silt_segments"), 1.0);
    assert_eq!(volume(), unflushed_volume, "w1's part now from its segment");
    push(&w1.addr, "w1 b", 10, &mut expected);
    assert_exactly(lines(&reader.addr, t0), &expected);
    assert_eq!(count(), 50);

    // A writer that cannot answer fails the query rather than leave its lines out.
    w2.kill();
    let q = format!(
        "/loki/api/v1/query_range?query={}&start={t0}&end={}",
        enc(r#"{app="roles"}"#),
        now_ns() + 1_000_000_000
    );
    let (st, body) = http(&reader.addr, "GET", &q, &[], b"").unwrap();
    assert!(st >= 500, "{st} {}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("writer"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// The value of the first sample of an instant answer at `path` (0 when empty).
fn first_value(addr: &str, path: &str) -> u64 {
    let (st, body) = http(addr, "GET", path, &[], b"").unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["data"]["result"][0]["value"][1]
        .as_str()
        .map_or(0, |s| s.parse().unwrap())
}
