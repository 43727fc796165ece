//! Segments on a remote backend are read by byte range through the block cache: answers
//! equal the local backend's, a narrow query fetches a small part of a segment, the cache
//! stays within its bound, and a restarted store reuses the blocks it holds.

use silt_model::{Direction, Entry, Labels};
use silt_query::engine::{Engine, Limits, QueryParams};
use silt_query::QueryResult;
use silt_storage::{Objects, Store, StoreConfig, StoreSource};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const S: i64 = 1_000_000_000;
const PER_STREAM: i64 = 60_000;

/// 32 hex digits, different for every (stream, i): lines that compress little, so the
/// segment spans many blocks.
fn id(stream: usize, i: i64) -> String {
    let x = (stream as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    format!("{x:016x}{:016x}", x.rotate_left(29) ^ 0x94d0_49bb_1331_11eb)
}

fn batch() -> Vec<(Labels, Vec<Entry>)> {
    ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(n, app)| {
            let entries = (0..PER_STREAM)
                .map(|i| Entry {
                    ts: i * S / 100,
                    line: format!("app={app} i={i} id={} span={}", id(n, i), id(n + 9, i)),
                    metadata: Labels::from_pairs([("trace_id", id(n + 5, i))]),
                })
                .collect();
            (Labels::from_pairs([("app", *app)]), entries)
        })
        .collect()
}

fn queries() -> Vec<(String, Direction, usize)> {
    use Direction::{Backward, Forward};
    let needle = id(2, 31_234);
    vec![
        (r#"{app="b"}"#.into(), Backward, 50),
        (format!(r#"{{app=~".+"}} |= "{needle}""#), Backward, 100),
        (
            r#"sum by (app) (count_over_time({app=~".+"}[10s]))"#.into(),
            Backward,
            100,
        ),
        (
            r#"sum(count_over_time({app=~".+"} |= "span=00" [1m]))"#.into(),
            Backward,
            100,
        ),
        (
            r#"{app=~"a|d"} | logfmt | i =~ "1.*7""#.into(),
            Forward,
            5000,
        ),
        (r#"{app=~".+"}"#.into(), Forward, 5000),
    ]
}

/// The answer of `q` over `[start, end)` seconds.
fn eval(
    store: &Arc<Store>,
    (q, dir, limit): &(String, Direction, usize),
    range: (i64, i64),
) -> String {
    let expr = silt_logql::parse(q).unwrap();
    let p = QueryParams {
        tenant: "t",
        expr: &expr,
        start: range.0 * S,
        end: range.1 * S,
        step: 10 * S,
        interval: 0,
        limit: *limit,
        direction: *dir,
        instant: false,
        categorize: false,
    };
    let source = StoreSource(store.clone());
    match Engine::new(&source, Limits::default()).eval(&p).unwrap() {
        QueryResult::Streams(s) => format!("{s:?}"),
        QueryResult::Matrix(m) => format!("{m:?}"),
        other => panic!("{q}: {other:?}"),
    }
}

/// A store whose objects live in `dir/bucket`, reached as a remote backend (so through
/// the block cache at `dir/cache`, at most `cache_max` bytes).
async fn remote(dir: &Path, cache_max: u64) -> (Arc<Store>, Objects) {
    let bucket = dir.join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(&bucket).unwrap();
    let objs = Objects::remote(Arc::new(fs), &dir.join("cache"), cache_max, 4);
    let cfg = StoreConfig::new(dir.join("data"));
    (Store::open_with(cfg, objs.clone()).await.unwrap(), objs)
}

/// Every query answers the same over both stores (over all the data).
async fn same_answers(local: &Arc<Store>, remote: &Arc<Store>) {
    let (l, r) = (local.clone(), remote.clone());
    tokio::task::spawn_blocking(move || {
        for q in queries() {
            assert_eq!(eval(&l, &q, (0, 500)), eval(&r, &q, (0, 500)), "{q:?}");
        }
    })
    .await
    .unwrap();
}

fn fetched(objs: &Objects) -> u64 {
    objs.ranges.bytes.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_segments_read_by_range_answer_like_local_ones() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = Store::open(StoreConfig::new(d1.path())).await.unwrap();
    let (writer, _) = remote(d2.path(), 1 << 30).await;
    for store in [&local, &writer] {
        store.append("t", batch()).await.unwrap();
        store.flush().await.unwrap();
    }
    let (segments, size, _) = writer.segment_totals();
    assert_eq!(segments, 1);
    assert!(
        size > 16 * silt_storage::ranged::BLOCK,
        "segment of {size} bytes"
    );
    writer.shutdown().await.unwrap();
    drop(writer);
    let _ = std::fs::remove_dir_all(d2.path().join("data"));
    let _ = std::fs::remove_dir_all(d2.path().join("cache"));

    // Cold cache: a narrow query fetches the footer, page index and a few pages.
    let (store, objs) = remote(d2.path(), 1 << 30).await;
    let (l, r) = (local.clone(), store.clone());
    tokio::task::spawn_blocking(move || {
        let q = &queries()[0];
        assert_eq!(eval(&l, q, (100, 101)), eval(&r, q, (100, 101)));
    })
    .await
    .unwrap();
    let narrow = fetched(&objs);
    assert!(
        narrow > 0 && narrow < size / 4,
        "a one-second query of one stream fetched {narrow} of {size} bytes"
    );

    // Every query answers the same; blocks are fetched at most once.
    same_answers(&local, &store).await;
    let all = fetched(&objs);
    assert!(all <= size, "fetched {all} bytes of a {size}-byte segment");
    store.shutdown().await.unwrap();
    drop(store);

    // A restarted store adopts the cached blocks: the same queries fetch nothing.
    let (store, objs) = remote(d2.path(), 1 << 30).await;
    // Every block fetched is still cached (the cache is large); content indexes, cached
    // whole, are fetched again after a restart and are not counted here.
    assert_eq!(objs.cache_bytes(), all);
    same_answers(&local, &store).await;
    assert_eq!(fetched(&objs), 0);
    store.shutdown().await.unwrap();
    drop(store);

    // A cache smaller than one page: blocks are evicted under the reader, answers stay.
    let _ = std::fs::remove_dir_all(d2.path().join("cache"));
    let small = 3 * silt_storage::ranged::BLOCK / 2;
    let (store, objs) = remote(d2.path(), small).await;
    same_answers(&local, &store).await;
    assert!(
        objs.cache_bytes() <= small,
        "{} > {small}",
        objs.cache_bytes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_on_a_remote_backend_uploads_in_parts_and_answers_the_same() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let local = Store::open(StoreConfig::new(d1.path())).await.unwrap();
    local.append("t", batch()).await.unwrap();
    local.flush().await.unwrap();
    let bucket = d2.path().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    let fs = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&bucket).unwrap());
    let mut cfg = StoreConfig::new(d2.path().join("data"));
    (cfg.flush_zstd_level, cfg.zstd_level) = (1, 3);
    cfg.delete_delay = std::time::Duration::ZERO;
    let open = || Objects::remote(fs.clone(), &d2.path().join("cache"), 1 << 30, 4);
    let store = Store::open_with(cfg.clone(), open()).await.unwrap();
    store.append("t", batch()).await.unwrap();
    store.flush().await.unwrap();

    // The flushed segment is rewritten at the rest level, through a local file uploaded
    // in parts (it is larger than one part).
    let r = store.run_maintenance().await.unwrap();
    assert_eq!((r.segments_merged, r.segments_written), (1, 1), "{r:?}");
    let (segments, size, _) = store.segment_totals();
    assert_eq!(segments, 1);
    assert!(
        size > silt_storage::PART_BYTES as u64,
        "segment of {size} bytes"
    );
    let tmp = d2.path().join("data/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary files left"
    );
    same_answers(&local, &store).await;
    store.shutdown().await.unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(d2.path().join("cache"));
    let store = Store::open_with(cfg, open()).await.unwrap();
    assert_eq!(store.segment_totals().1, size);
    same_answers(&local, &store).await;
}
