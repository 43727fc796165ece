//! Segments written by earlier versions stay readable: `fixtures/segment-v1` is a data
//! dir whose segment has the v1 layout (one `ts` column of nanoseconds), written by
//! Silt before timestamps were split into seconds and nanoseconds; it must answer
//! exactly what [`entries`] pushed, over the whole range and narrow ranges, and a
//! compaction must carry it into the current layout with the same answers.

use silt_model::{Direction, Entry, LabelMatcher, Labels, MatchOp};
use silt_query::{LogSource, SelectRequest};
use silt_storage::{Store, StoreConfig};
use std::path::Path;
use std::sync::Arc;

type Row = (String, i64, String, Vec<(String, String)>);

/// Three streams; times with nanosecond, millisecond and whole-second precision, some
/// before 1970; structured metadata on some rows.
fn entries() -> Vec<(Labels, Vec<Entry>)> {
    let base = 1_700_000_000_000_000_000i64;
    (0..3i64)
        .map(|s| {
            let labels = Labels::from_pairs([("app", format!("app-{s}"))]);
            let es = (0..400i64)
                .map(|i| {
                    let ts = match s {
                        0 => base + i * 1_234_567_891 + (i * 7919) % 1000,
                        1 => base + i * 250_000_000,
                        _ => -5_000_000_000 + i * 1_000_000_000 - (i % 3) * 7,
                    };
                    let metadata = if i % 4 == 0 {
                        Labels::from_pairs([("trace_id", format!("{:032x}", i * 104_729 + s))])
                    } else {
                        Labels::new()
                    };
                    Entry {
                        ts,
                        line: format!("level=info app={s} i={i} msg=\"row {i}\""),
                        metadata,
                    }
                })
                .collect();
            (labels, es)
        })
        .collect()
}

fn expected(start: i64, end: i64) -> Vec<Row> {
    let mut out: Vec<Row> = entries()
        .into_iter()
        .flat_map(|(l, es)| {
            let l = l.to_string();
            es.into_iter()
                .filter(move |e| e.ts >= start && e.ts < end)
                .map(move |e| (l.clone(), e.ts, e.line, e.metadata.as_slice().to_vec()))
        })
        .collect();
    out.sort();
    out
}

fn rows(store: &Arc<Store>, start: i64, end: i64) -> Vec<Row> {
    let m = [LabelMatcher::new("app", MatchOp::Re, ".+").unwrap()];
    let req = SelectRequest {
        tenant: "t",
        matchers: &m,
        start,
        end,
        direction: Direction::Forward,
        lines: true,
        line_filter: None,
        stats: Default::default(),
    };
    let mut out = Vec::new();
    for c in silt_storage::StoreSource(store.clone())
        .select(&req)
        .unwrap()
    {
        for e in c.entries {
            let e = e.unwrap();
            out.push((
                c.labels.to_string(),
                e.ts,
                e.line,
                e.metadata.as_slice().to_vec(),
            ));
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The sidecars' format versions under `dir`.
fn versions(dir: &Path) -> Vec<u64> {
    let seg = dir.join("objects/tenants/t/segments");
    let mut out: Vec<u64> = std::fs::read_dir(seg)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".index.json"))
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            v["version"].as_u64().unwrap()
        })
        .collect();
    out.sort();
    out
}

/// Whole range, narrow ranges that cut the streams (page and row pruning by time), and
/// ranges on either side of 1970.
fn ranges() -> Vec<(i64, i64)> {
    let base = 1_700_000_000_000_000_000i64;
    vec![
        (i64::MIN, i64::MAX),
        (base + 10_000_000_000, base + 60_000_000_001),
        (base + 12_345_679_100, base + 12_345_679_101),
        (-3_000_000_000, 2_000_000_000),
        (-5_000_000_000, -4_999_999_999),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_segments_read_the_same_and_compact_into_the_current_layout() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/segment-v1");
    copy_dir(&fixture, dir.path());
    assert_eq!(versions(dir.path()), [1]);
    let mut cfg = StoreConfig::new(dir.path());
    cfg.delete_delay = std::time::Duration::ZERO;
    let store = Store::open(cfg.clone()).await.unwrap();
    for (a, b) in ranges() {
        let want = expected(a, b);
        assert!(!want.is_empty(), "{a}..{b}");
        assert_eq!(rows(&store, a, b), want, "v1, {a}..{b}");
    }
    // The same rows pushed again are exact duplicates of the v1 rows: one copy survives.
    store.append("t", entries()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(versions(dir.path()), [1, 2]);
    assert_eq!(
        rows(&store, i64::MIN, i64::MAX),
        expected(i64::MIN, i64::MAX)
    );
    let r = store.run_maintenance().await.unwrap();
    assert_eq!(r.segments_written, 1, "{r:?}");
    assert_eq!(versions(dir.path()), [2]);
    for (a, b) in ranges() {
        assert_eq!(rows(&store, a, b), expected(a, b), "v2, {a}..{b}");
    }
}

/// Fresh segments in the current layout answer the same, flushed and compacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_segments_answer_every_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.delete_delay = std::time::Duration::ZERO;
    let store = Store::open(cfg).await.unwrap();
    store.append("t", entries()).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(versions(dir.path()), [2]);
    for (a, b) in ranges() {
        assert_eq!(rows(&store, a, b), expected(a, b), "{a}..{b}");
    }
}
