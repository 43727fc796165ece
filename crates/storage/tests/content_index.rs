//! Line filters answer the same with and without segments' content indexes (which skip
//! blocks of lines that cannot match), and the index does skip what it can.

use silt_model::{Direction, Entry, Labels};
use silt_query::engine::{Engine, Limits, QueryParams};
use silt_query::{QueryResult, Stats};
use silt_storage::{DeleteFilter, DeleteRequest, DeleteStatus, Store, StoreConfig, StoreSource};
use std::sync::Arc;

const S: i64 = 1_000_000_000;

/// A 32-hex-digit id that differs for every (stream, i).
fn id(stream: usize, i: i64) -> String {
    let x = (stream as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    format!("{x:016x}{:016x}", x.rotate_left(17) ^ 0x94d0_49bb_1331_11eb)
}

/// Four streams, `per` lines each from `t0`: JSON, logfmt and text with unique ids,
/// mixed case words and UUIDs.
fn batch(t0: i64, per: i64) -> Vec<(Labels, Vec<Entry>)> {
    let apps = ["api", "db", "web", "auth"];
    apps.iter()
        .enumerate()
        .map(|(n, app)| {
            let labels = Labels::from_pairs([("app", *app), ("env", "prod")]);
            let entries = (0..per)
                .map(|i| {
                    let ts = t0 + i * S / 10 + n as i64;
                    let rid = id(n, ts);
                    let word = ["Timeout", "refused", "OK", "Session expired"][(i % 4) as usize];
                    let line = match n {
                        0 => format!(r#"{{"level":"info","msg":"{word}","request_id":"{rid}","i":{i}}}"#),
                        1 => format!("level=warn msg=\"{word}\" trace={rid} user=u{}", i % 50),
                        2 => format!(
                            "10.0.{}.{} - - \"GET /v1/{:08x}-e29b-41d4-a716-{:012x} HTTP/1.1\" 200 {word}",
                            i % 7,
                            i % 250,
                            i,
                            ts
                        ),
                        _ => format!("{rid}{word}{}", i % 13),
                    };
                    Entry {
                        ts,
                        line,
                        metadata: Labels::from_pairs([("trace_id", rid.as_str())]),
                    }
                })
                .collect();
            (labels, entries)
        })
        .collect()
}

/// Queries whose filters the index can use (ids, whole words, regex literals, case
/// folding, patterns), and some it cannot; log and metric queries.
fn queries() -> Vec<String> {
    let needle = id(1, 150 * S + 1);
    let glued = id(3, 40 * S + 3);
    let mid = &needle[5..25];
    let mut q = vec![
        format!(r#"{{app=~".+"}} |= "{needle}""#),
        format!(r#"{{app=~".+"}} |= "{}""#, needle.to_uppercase()),
        format!(r#"{{app=~".+"}} |~ "(?i){}""#, needle.to_uppercase()),
        format!(r#"{{app=~".+"}} |= "{mid}""#),
        format!(r#"{{app=~".+"}} |= "{glued}" |= "Timeout""#),
        format!(r#"{{app=~".+"}} |= "trace={needle} ""#),
        format!(r#"{{app=~".+"}} |= "nothing-{needle}" or "{glued}""#),
        format!(r#"{{app=~".+"}} |~ "x|{needle}""#),
        format!(r#"{{app=~".+"}} |> "<_>trace={needle} <_>""#),
        format!(r#"{{app=~".+"}} |= "{needle}" | logfmt | user != """#),
        r#"{app=~".+"} |= " user=u7""#.to_string(),
        r#"{app=~".+"} |= "user=u49 ""#.to_string(),
        r#"{app=~".+"} |~ "(?i)session EXPIRED""#.to_string(),
        r#"{app="web"} |= "-e29b-41d4-a716-" |= " 10.0.3.""#.to_string(),
        r#"{app=~".+"} |= "0123456789abcdef0123""#.to_string(),
        r#"{app=~".+"} != "Timeout" |= "refused""#.to_string(),
        r#"{app=~".+"} |= "" |= "OK""#.to_string(),
        format!(r#"sum by (app) (count_over_time({{app=~".+"}} |= "{needle}" [30s]))"#),
        r#"sum by (app) (count_over_time({app=~".+"} |~ "(?i)timeout" [30s]))"#.to_string(),
        r#"sum(bytes_over_time({app=~".+"} |= "Session expired" [1m]))"#.to_string(),
    ];
    q.push(format!(r#"{{app=~".+"}} |= "{}""#, &glued[..20]));
    q
}

fn eval(store: &Arc<Store>, q: &str, direction: Direction, limit: usize) -> (String, Arc<Stats>) {
    let expr = silt_logql::parse(q).unwrap();
    let p = QueryParams {
        tenant: "t",
        expr: &expr,
        start: 0,
        end: 400 * S,
        step: 10 * S,
        interval: 0,
        limit,
        direction,
        instant: false,
        categorize: false,
    };
    let source = StoreSource(store.clone());
    let engine = Engine::new(&source, Limits::default());
    let text = match engine.eval(&p).unwrap() {
        QueryResult::Streams(s) => format!("{s:?}"),
        QueryResult::Matrix(m) => {
            let mut rows: Vec<String> = m.iter().map(|s| format!("{s:?}")).collect();
            rows.sort();
            rows.join("\n")
        }
        other => panic!("{q}: {other:?}"),
    };
    (text, engine.stats().clone())
}

/// Compares every query on both stores; returns per query the stream slices the indexed
/// store skipped, and the lines it and the plain store read.
async fn compare(with: &Arc<Store>, without: &Arc<Store>) -> Vec<(u64, u64, u64)> {
    let (a, b) = (with.clone(), without.clone());
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut matched = 0;
        for q in queries() {
            let mut row = (0, 0, 0);
            for (dir, limit) in [(Direction::Backward, 1000), (Direction::Forward, 3)] {
                let (x, xs) = eval(&a, &q, dir, limit);
                let (y, ys) = eval(&b, &q, dir, limit);
                assert_eq!(x, y, "{q} {dir:?} limit {limit}");
                assert_eq!(Stats::get(&ys.content_skipped_chunks), 0);
                row.0 += Stats::get(&xs.content_skipped_chunks);
                row.1 += xs.lines();
                row.2 += ys.lines();
                matched += usize::from(!x.is_empty() && x != "[]");
            }
            out.push(row);
        }
        // Equal answers are not all empty ones.
        assert!(matched >= 20, "only {matched} answers hold data");
        out
    })
    .await
    .unwrap()
}

async fn open(dir: &std::path::Path, content_index: bool) -> Arc<Store> {
    let mut cfg = StoreConfig::new(dir);
    cfg.content_index = content_index;
    Store::open(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_answer_the_same_with_and_without_the_index() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (with, without) = (open(d1.path(), true).await, open(d2.path(), false).await);
    // Three segments of 100 s, then 50 s in the head.
    for store in [&with, &without] {
        for seg in 0..3 {
            store.append("t", batch(seg * 100 * S, 1000)).await.unwrap();
            store.flush().await.unwrap();
        }
        store.append("t", batch(300 * S, 500)).await.unwrap();
    }
    let rows = compare(&with, &without).await;
    // The first query looks for one id: of the 12 stream slices of segments, only the
    // one holding it is read (backward; forward stops earlier).
    let (skipped, lines_with, lines_without) = rows[0];
    assert!(skipped >= 11 + 4, "the index skipped only {skipped} slices");
    // Per direction: the head's 2000 lines (scanned whole) and the one 1000-line slice.
    assert_eq!((lines_with, lines_without), (2 * (2000 + 1000), 2 * 14_000));
    let useful = rows.iter().filter(|r| r.0 > 0).count();
    assert!(useful >= 12, "the index helped {useful} queries: {rows:?}");

    // A pending delete applies the same way; so do duplicates across parts.
    for store in [&with, &without] {
        store.append("t", batch(100 * S, 100)).await.unwrap();
        store
            .add_delete(DeleteRequest {
                request_id: "d".into(),
                user_id: "t".into(),
                query: String::new(),
                filter: DeleteFilter {
                    matchers: vec![("app".into(), "=".into(), "db".into())],
                    lines: vec![(silt_storage::LineOp::Contains, vec!["Timeout".into()])],
                },
                start: 120 * S,
                end: 180 * S,
                created_at: 0,
                status: DeleteStatus::Received,
            })
            .await
            .unwrap();
    }
    compare(&with, &without).await;

    // A damaged index is ignored: the segment is read whole, answers unchanged.
    let mut damaged = 0;
    for f in walk(d1.path()) {
        if f.extension().is_some_and(|e| e == "content") {
            let mut data = std::fs::read(&f).unwrap();
            let n = data.len();
            data[n / 2] ^= 0x55;
            std::fs::write(&f, data).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 3, "one content index per segment");
    // Parsed indexes are cached: a restarted store reads the damaged files.
    drop(with);
    let with = open(d1.path(), true).await;
    let rows = compare(&with, &without).await;
    assert!(rows.iter().all(|r| r.0 == 0), "{rows:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
