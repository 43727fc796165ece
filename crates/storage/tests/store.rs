//! Store-level behaviour: append, flush to segments, reopen with WAL replay.

mod common;

use common::select_all;

use silt_model::{Direction, Entry, LabelMatcher, Labels, MatchOp};
use silt_query::LogSource;
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
    let m = LabelMatcher::new("app", MatchOp::Eq, app).unwrap();
    select_all(store, tenant, m, dir)
        .into_iter()
        .map(|(_, e)| (e.ts, e.line))
        .collect()
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
    let t2: Vec<String> = store
        .streams("t2", &[], 0, i64::MAX)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(t2, [r#"{app="a"}"#]);
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

fn ago(d: std::time::Duration) -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        - d.as_nanos() as i64
}

async fn read(store: &Arc<Store>, app: &'static str) -> Vec<(i64, String)> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || read_all(&s, "t", app, Direction::Forward))
        .await
        .unwrap()
}

fn segment_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("objects/tenants/t/segments"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".parquet"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_is_past_its_period() {
    use silt_storage::{Retention, StreamRule, TenantRetention};
    use std::time::Duration;
    let h = Duration::from_secs(3600);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.compaction.enabled = false;
    cfg.delete_delay = Duration::ZERO;
    cfg.retention = Retention {
        enabled: true,
        period: 2 * h,
        streams: vec![StreamRule {
            matchers: vec![LabelMatcher::new("app", MatchOp::Eq, "short").unwrap()],
            priority: 1,
            period: h,
        }],
        // Tenant "other" keeps everything for 24h and has no stream rules of its own.
        tenants: [(
            "other".to_string(),
            TenantRetention {
                period: Some(24 * h),
                streams: Some(vec![]),
            },
        )]
        .into(),
    };
    assert_eq!(
        cfg.retention
            .period("other", &Labels::from_pairs([("app", "short")])),
        Some(24 * h)
    );
    let store = Store::open(cfg.clone()).await.unwrap();
    let short = Labels::from_pairs([("app", "short")]);
    let long = Labels::from_pairs([("app", "long")]);
    let m = Duration::from_secs(60);
    // Segment 1: everything expired, deleted whole.
    let (l3h, s90) = (ago(180 * m), ago(90 * m));
    store
        .append(
            "t",
            vec![
                (long.clone(), vec![entry(l3h, "long 3h")]),
                (short.clone(), vec![entry(s90, "short 90m")]),
            ],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    // Segment 2: mixed, rewritten without the expired rows.
    let (l90, s70, s30) = (ago(90 * m), ago(70 * m), ago(30 * m));
    store
        .append(
            "t",
            vec![
                (long.clone(), vec![entry(l90, "long 90m")]),
                (
                    short.clone(),
                    vec![entry(s70, "short 70m"), entry(s30, "short 30m")],
                ),
            ],
        )
        .await
        .unwrap();
    store.flush().await.unwrap();
    // Segment 3: nothing expired, untouched.
    let s10 = ago(10 * m);
    store
        .append("t", vec![(short.clone(), vec![entry(s10, "short 10m")])])
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(segment_files(dir.path()), 3);

    let r = store.run_maintenance().await.unwrap();
    assert_eq!((r.segments_deleted, r.segments_trimmed), (1, 1), "{r:?}");
    let expired = &store.metrics.segments_expired;
    assert_eq!(expired.load(std::sync::atomic::Ordering::Relaxed), 2);
    let want_long = vec![(l90, "long 90m".to_string())];
    let want_short = vec![
        (s30, "short 30m".to_string()),
        (s10, "short 10m".to_string()),
    ];
    assert_eq!(read(&store, "long").await, want_long);
    assert_eq!(read(&store, "short").await, want_short);
    assert_eq!(segment_files(dir.path()), 2);
    // Nothing more to do; and a reopened store sees the same.
    let r = store.run_maintenance().await.unwrap();
    assert_eq!(r.segments_deleted + r.segments_trimmed, 0, "{r:?}");
    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(cfg).await.unwrap();
    assert_eq!(read(&store, "long").await, want_long);
    assert_eq!(read(&store, "short").await, want_short);
}

/// A store with five small segments of streams `a` and `b`, 100 entries each per segment.
async fn five_segments(cfg: &StoreConfig) -> Arc<Store> {
    let store = Store::open(cfg.clone()).await.unwrap();
    let base = ago(std::time::Duration::from_secs(600));
    for round in 0..5i64 {
        let mut streams = Vec::new();
        for app in ["a", "b"] {
            let es = (0..100)
                .map(|i| entry(base + round * 1000 + i, &format!("{app} r{round} i{i}")))
                .collect();
            streams.push((Labels::from_pairs([("app", app)]), es));
        }
        store.append("t", streams).await.unwrap();
        store.flush().await.unwrap();
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_at_most_max_merge_raw_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.delete_delay = std::time::Duration::ZERO;
    let store = five_segments(&cfg).await;
    let per_segment = store.segment_totals().2 / 5;
    store.shutdown().await.unwrap();
    drop(store);
    // Room for two segments' rows per merge: 2 + 2 merged, the fifth rewritten alone
    // (flushed at a faster zstd level than the rest level).
    cfg.compaction.max_merge_raw = per_segment * 5 / 2;
    let store = Store::open(cfg).await.unwrap();
    let before = (read(&store, "a").await, read(&store, "b").await);
    let r = store.run_maintenance().await.unwrap();
    assert_eq!((r.segments_merged, r.segments_written), (5, 3), "{r:?}");
    assert_eq!(segment_files(dir.path()), 3);
    assert_eq!((read(&store, "a").await, read(&store, "b").await), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_segments_with_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.delete_delay = std::time::Duration::ZERO;
    let store = five_segments(&cfg).await;
    assert_eq!(segment_files(dir.path()), 5);
    let before = (read(&store, "a").await, read(&store, "b").await);
    assert_eq!(before.0.len(), 500);
    let r = store.run_maintenance().await.unwrap();
    assert_eq!((r.segments_merged, r.segments_written), (5, 1), "{r:?}");
    let compacted = &store.metrics.segments_compacted;
    assert_eq!(compacted.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(segment_files(dir.path()), 1);
    assert_eq!((read(&store, "a").await, read(&store, "b").await), before);
    store.shutdown().await.unwrap();
    drop(store);
    let store = Store::open(cfg).await.unwrap();
    assert_eq!(store.segment_totals().0, 1);
    assert_eq!((read(&store, "a").await, read(&store, "b").await), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_segment_cache_is_a_size_bounded_lru() {
    use silt_storage::Objects;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let remote = object_store::local::LocalFileSystem::new_with_prefix(&bucket).unwrap();
    let cache = dir.path().join("cache");
    let objs = Objects::remote(Arc::new(remote), &cache, 250, 2);
    for i in 0..3u8 {
        objs.put(&format!("s/{i}.parquet"), vec![i; 100])
            .await
            .unwrap();
    }
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let get = |i: u8| objs.local_file(&format!("s/{i}.parquet"), &rt).unwrap();
        get(0);
        get(1);
        get(0); // 0 is now used more recently than 1
        get(2); // over 250 bytes: 1 goes
        assert_eq!(objs.cache_bytes(), 200);
        assert!(cache.join("s/0.parquet").exists());
        assert!(!cache.join("s/1.parquet").exists());
        assert_eq!(std::fs::read(get(2)).unwrap(), vec![2; 100]);
        assert_eq!(
            objs.cache_misses.load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    })
    .await
    .unwrap();
}

/// Limited, filtered log queries over many segments (the merge steps streams by part
/// bounds) answer exactly what the same query answers over the data held in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_filtered_queries_over_segments_match_the_in_memory_answer() {
    use silt_query::engine::{Engine, Limits, QueryParams};
    use silt_query::source::MemorySource;
    use silt_query::QueryResult;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    let mut mem = MemorySource::new();
    // Five segments; `rare` matches only in the oldest, `often` in every one, `never` not.
    for seg in 0..5i64 {
        for (app, every) in [("rare", 0), ("often", 3), ("never", -1)] {
            let labels = Labels::from_pairs([("app", app)]);
            let entries: Vec<Entry> = (0..40)
                .map(|i| {
                    let ts = seg * 1000 + i * 10 + app.len() as i64;
                    let hit = match every {
                        0 => seg == 0 && i % 7 == 0,
                        -1 => false,
                        n => i % n == 0,
                    };
                    entry(ts, if hit { "an error here" } else { "fine" })
                })
                .collect();
            mem.push(labels.clone(), entries.clone());
            store.append("t", vec![(labels, entries)]).await.unwrap();
        }
        store.flush().await.unwrap();
    }
    let expr = silt_logql::parse(r#"{app=~".+"} |= "error""#).unwrap();
    for direction in [Direction::Backward, Direction::Forward] {
        for limit in [1, 5, 20, 60, 1000] {
            let expr = expr.clone();
            let answer = move |src: &dyn LogSource| {
                let p = QueryParams {
                    tenant: "t",
                    expr: &expr,
                    start: 0,
                    end: 10_000,
                    step: 0,
                    interval: 0,
                    limit,
                    direction,
                    instant: false,
                    categorize: false,
                };
                match Engine::new(src, Limits::default()).eval(&p).unwrap() {
                    QueryResult::Streams(s) => s
                        .into_iter()
                        .map(|s| {
                            let ts: Vec<i64> = s.rows.iter().map(|r| r.ts).collect();
                            (format!("{:?}", s.labels), ts)
                        })
                        .collect::<Vec<_>>(),
                    other => panic!("{other:?}"),
                }
            };
            let (s2, m2) = (StoreSource(store.clone()), mem.clone());
            let (got, want) = tokio::task::spawn_blocking(move || (answer(&s2), answer(&m2)))
                .await
                .unwrap();
            assert_eq!(got, want, "{direction:?} limit {limit}");
        }
    }
}
