//! Compaction rewrites flushed segments at the rest zstd level, streaming its inputs a
//! chunk of streams at a time, and the answers stay exactly the same.

mod common;

use common::select_all;
use silt_model::{Direction, Entry, LabelMatcher, Labels, MatchOp};
use silt_storage::{DeleteFilter, DeleteRequest, DeleteStatus, LineOp, Store, StoreConfig};
use std::path::Path;
use std::sync::Arc;

type Row = (String, i64, String, Vec<(String, String)>);

/// Every row of the tenant: stream labels, time, line, structured metadata.
fn rows(store: &Arc<Store>) -> Vec<Row> {
    let m = LabelMatcher::new("app", MatchOp::Re, ".+").unwrap();
    let mut out: Vec<Row> = select_all(store, "t", m, Direction::Forward)
        .into_iter()
        .map(|(l, e)| (l.to_string(), e.ts, e.line, e.metadata.as_slice().to_vec()))
        .collect();
    out.sort();
    out
}

/// (zstd level, data size) of each segment sidecar under `dir`.
fn sidecars(dir: &Path) -> Vec<(i64, u64)> {
    let seg = dir.join("objects/tenants/t/segments");
    let mut out = Vec::new();
    for f in std::fs::read_dir(seg).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().ends_with(".index.json") {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            out.push((
                v["zstd_level"].as_i64().unwrap_or(0),
                v["size"].as_u64().unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// Streams `app-0..8` with repetitive lines, metadata keys that differ per stream and
/// one exact duplicate across flushes; two flushes, so two segments.
async fn load(store: &Arc<Store>) {
    let base = 1_700_000_000_000_000_000i64;
    for round in 0..2i64 {
        let mut batch = Vec::new();
        for s in 0..8 {
            let labels = Labels::from_pairs([("app", format!("app-{s}"))]);
            let es: Vec<Entry> = (0..300i64)
                .map(|i| Entry {
                    ts: base + round * 1_000_000 + i * 1000,
                    line: format!("level=info app={s} msg=\"request served\" i={i} round={round}"),
                    metadata: Labels::from_pairs(
                        [
                            ("trace_id".to_string(), format!("{:032x}", i * 7919 + s)),
                            (format!("k{s}"), "v".to_string()),
                        ]
                        .into_iter()
                        .take(if i % 3 == 0 { 2 } else { 1 }),
                    ),
                })
                .collect();
            batch.push((labels, es));
        }
        if round == 1 {
            // Pushed again after its flush: one copy survives the merge.
            batch[0].1.push(Entry {
                ts: base + 5000,
                line: "level=info app=0 msg=\"request served\" i=5 round=0".into(),
                metadata: Labels::from_pairs([("trace_id", format!("{:032x}", 5 * 7919))]),
            });
        }
        store.append("t", batch).await.unwrap();
        store.flush().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_segments_are_rewritten_at_the_rest_level_with_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.flush_zstd_level = 1;
    cfg.zstd_level = 9;
    cfg.delete_delay = std::time::Duration::ZERO;
    // A few streams per read, so the rewrite takes several chunks.
    cfg.compaction.read_chunk = 40_000;
    cfg.compaction.target_size = 1 << 30;
    let store = Store::open(cfg.clone()).await.unwrap();
    load(&store).await;
    // A delete request inside its cancel period: filtered at read time, kept on disk.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    store
        .add_delete(DeleteRequest {
            request_id: "d".into(),
            user_id: "t".into(),
            query: String::new(),
            filter: DeleteFilter {
                matchers: vec![("app".into(), "=".into(), "app-3".into())],
                lines: vec![(LineOp::Contains, vec!["i=7 ".into()])],
            },
            start: 0,
            end: i64::MAX,
            created_at: now,
            status: DeleteStatus::Received,
        })
        .await
        .unwrap();
    let before = rows(&store);
    assert_eq!(
        before.len(),
        8 * 600 - 2,
        "one app-3 line per round deleted"
    );
    let flushed = sidecars(dir.path());
    assert_eq!(flushed.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 1]);

    let r = store.run_maintenance().await.unwrap();
    assert_eq!((r.segments_merged, r.segments_written), (2, 1), "{r:?}");
    let rest = sidecars(dir.path());
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, 9);
    let flushed_size: u64 = flushed.iter().map(|s| s.1).sum();
    assert!(rest[0].1 < flushed_size, "{rest:?} vs {flushed:?}");
    assert_eq!(rows(&store), before);

    // At the rest level: the next pass leaves it alone.
    let r = store.run_maintenance().await.unwrap();
    assert_eq!(r.segments_written, 0, "{r:?}");
    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(cfg).await.unwrap();
    assert_eq!(rows(&store), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_of_unknown_level_is_not_rewritten_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.flush_zstd_level = 1;
    cfg.zstd_level = 9;
    cfg.compaction.target_size = 1024;
    let store = Store::open(cfg.clone()).await.unwrap();
    load(&store).await;
    store.shutdown().await.unwrap();
    drop(store);
    // Sidecars as written before levels were recorded.
    let seg = dir.path().join("objects/tenants/t/segments");
    for f in std::fs::read_dir(&seg).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().ends_with(".index.json") {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            v.as_object_mut().unwrap().remove("zstd_level");
            std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    let store = Store::open(cfg).await.unwrap();
    let before = rows(&store);
    let r = store.run_maintenance().await.unwrap();
    assert_eq!(r.segments_written, 0, "{r:?}");
    assert_eq!(
        sidecars(dir.path()).iter().map(|s| s.0).collect::<Vec<_>>(),
        [0, 0]
    );
    assert_eq!(rows(&store), before);
}
