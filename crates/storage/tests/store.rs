//! Store-level behaviour: append, flush to segments, reopen with WAL replay.

use silt_model::{Direction, Entry, LabelMatcher, Labels, MatchOp};
use silt_query::{LogSource, SelectRequest};
use silt_storage::{Store, StoreConfig, StoreSource};
use std::sync::Arc;

fn entry(ts: i64, line: &str) -> Entry {
    Entry {
        ts,
        line: line.into(),
        metadata: Labels::from_pairs([("detected_level", "info")]),
    }
}

fn read_all(store: &Arc<Store>, tenant: &str, app: &str, dir: Direction) -> Vec<(i64, String)> {
    let m = [LabelMatcher::new("app", MatchOp::Eq, app).unwrap()];
    let req = SelectRequest {
        tenant,
        matchers: &m,
        start: 0,
        end: i64::MAX,
        direction: dir,
        lines: true,
        line_filter: None,
    };
    let mut out = Vec::new();
    for c in StoreSource(store.clone()).select(&req).unwrap() {
        for e in c.entries {
            let e = e.unwrap();
            out.push((e.ts, e.line));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_flush_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::new(dir.path());
    let a = Labels::from_pairs([("app", "a")]);
    let store = Store::open(cfg.clone()).await.unwrap();
    store
        .append(
            "t1",
            vec![(a.clone(), vec![entry(1, "one"), entry(3, "three")])],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.segment_totals().0, 1);
    // Out of order, overlapping the segment, plus an exact duplicate of a flushed entry.
    store
        .append(
            "t1",
            vec![(
                a.clone(),
                vec![entry(2, "two"), entry(3, "three"), entry(4, "four")],
            )],
        )
        .await
        .unwrap();
    store
        .append("t2", vec![(a.clone(), vec![entry(5, "other tenant")])])
        .await
        .unwrap();

    let want: Vec<(i64, String)> = vec![
        (1, "one".into()),
        (2, "two".into()),
        (3, "three".into()),
        (4, "four".into()),
    ];
    let s2 = store.clone();
    let got = tokio::task::spawn_blocking(move || read_all(&s2, "t1", "a", Direction::Forward))
        .await
        .unwrap();
    assert_eq!(got, want);
    let s2 = store.clone();
    let back = tokio::task::spawn_blocking(move || read_all(&s2, "t1", "a", Direction::Backward))
        .await
        .unwrap();
    assert_eq!(back, want.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(
        store.label_values("t2", "app", &[], 0, i64::MAX),
        vec!["a".to_string()]
    );
    assert_eq!(store.index_stats("t1", &[], 0, i64::MAX).streams, 1);

    // Drop without flushing: the unflushed entries come back from the WAL.
    store.shutdown_ingest_only();
    drop(store);
    let store = Store::open(cfg).await.unwrap();
    let s2 = store.clone();
    let got = tokio::task::spawn_blocking(move || read_all(&s2, "t1", "a", Direction::Forward))
        .await
        .unwrap();
    assert_eq!(got, want);
    let s2 = store.clone();
    let other = tokio::task::spawn_blocking(move || read_all(&s2, "t2", "a", Direction::Forward))
        .await
        .unwrap();
    assert_eq!(other, vec![(5, "other tenant".to_string())]);
    store.flush().await.unwrap();
    let s2 = store.clone();
    let got = tokio::task::spawn_blocking(move || read_all(&s2, "t1", "a", Direction::Forward))
        .await
        .unwrap();
    assert_eq!(got, want);
}
