//! Memory backpressure: the in-memory heads are capped by `max_head_memory`; past it a
//! push waits for a flush, then is refused with nothing of it written, and every
//! acknowledged entry is kept.

mod common;

use common::select_all;
use silt_model::{Direction, Entry, LabelMatcher, Labels, MatchOp};
use silt_storage::{Error, Store, StoreConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const CAP: usize = 16 << 20;

/// ~64 KiB of distinct lines for `app`, starting at `ts0`: random hex, so the head's
/// compressed chunks still take about half their raw size.
fn batch(app: &str, ts0: i64) -> Vec<(Labels, Vec<Entry>)> {
    let mut x = (ts0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let entries = (0..64)
        .map(|i| {
            let hex: String = (0..63)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{:016x}", x)
                })
                .collect();
            Entry {
                ts: ts0 + i,
                line: format!("{hex} line {}", ts0 + i),
                metadata: Labels::new(),
            }
        })
        .collect();
    vec![(Labels::from_pairs([("app", app)]), entries)]
}

async fn read_all(store: &Arc<Store>, app: &'static str) -> Vec<(i64, String)> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let m = LabelMatcher::new("app", MatchOp::Eq, app).unwrap();
        select_all(&store, "t", m, Direction::Forward)
            .into_iter()
            .map(|(_, e)| (e.ts, e.line))
            .collect()
    })
    .await
    .unwrap()
}

fn lines(batches: &[Vec<(Labels, Vec<Entry>)>]) -> Vec<(i64, String)> {
    let mut v: Vec<_> = batches
        .iter()
        .flat_map(|b| b[0].1.iter().map(|e| (e.ts, e.line.clone())))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_pushes_are_refused_until_a_flush_frees_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.max_head_memory = CAP;
    cfg.head_full_wait = Duration::ZERO;
    // No background flusher: nothing frees memory until the test flushes.
    let store = Store::open(cfg.clone()).await.unwrap();
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..1000 {
        let b = batch("a", i * 64);
        match store.append("t", b.clone()).await {
            Ok(_) => acked.push(b),
            Err(Error::HeadFull { held, cap, cause }) => {
                assert!(held >= cap && cap == CAP, "{held} {cap}");
                assert!(
                    cause.contains("faster than segments are written"),
                    "{cause}"
                );
                refused = Some(b);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let refused = refused.expect("the cap was never reached");
    // Refused again while nothing is flushed; the message says what to do.
    let e = store.append("t", refused.clone()).await.unwrap_err();
    assert!(e.to_string().contains("retry later"), "{e}");
    assert!(store.head_memory() >= CAP);
    assert!(store.metrics.head_full_refusals.load(Ordering::Relaxed) >= 2);
    // Nothing of a refused push was written: only acknowledged entries are there.
    assert_eq!(read_all(&store, "a").await, lines(&acked));

    store.flush().await.unwrap();
    assert!(store.head_memory() < CAP);
    store.append("t", refused.clone()).await.unwrap();
    acked.push(refused);
    assert_eq!(read_all(&store, "a").await, lines(&acked));

    // And after a restart (segments plus WAL replay), exactly the acknowledged entries.
    store.shutdown_ingest_only();
    drop(store);
    let store = Store::open(cfg).await.unwrap();
    assert_eq!(read_all(&store, "a").await, lines(&acked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_wait_for_the_flusher_instead_of_growing_the_heads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::new(dir.path());
    cfg.max_head_memory = CAP;
    // Long enough that no push here is refused: each waits for the flusher instead.
    cfg.head_full_wait = Duration::from_secs(600);
    cfg.flush_check_interval = Duration::from_secs(3600);
    let store = Store::open(cfg).await.unwrap();
    store.spawn_background();
    let mut acked = Vec::new();
    let mut peak = 0;
    // 4x the cap, from one pusher: the heads never hold much more than the cap (the cap
    // is checked before a push, so one push may go past it).
    for i in 0..1024 {
        let b = batch(if i % 2 == 0 { "a" } else { "b" }, i * 64);
        store.append("t", b.clone()).await.unwrap();
        acked.push(b);
        peak = peak.max(store.head_memory());
    }
    assert!(peak < CAP + CAP / 4, "heads held {peak} bytes, cap {CAP}");
    store.flush().await.unwrap();
    let mut got = read_all(&store, "a").await;
    got.extend(read_all(&store, "b").await);
    got.sort();
    assert_eq!(got, lines(&acked));
}
