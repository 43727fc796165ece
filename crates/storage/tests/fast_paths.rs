//! Every fast path answers exactly what the plain path (entries through the pipeline)
//! answers on the same stored data: segments and head, structured metadata, duplicates
//! across parts, pending deletes.

use silt_model::{Entry, Labels};
use silt_query::engine::{Engine, Limits, QueryParams};
use silt_query::{QueryResult, Stats};
use silt_storage::{DeleteFilter, DeleteRequest, DeleteStatus, Store, StoreConfig, StoreSource};
use std::sync::Arc;

const S: i64 = 1_000_000_000;

fn entry(ts: i64, line: &str, md: &[(&str, &str)]) -> Entry {
    Entry {
        ts,
        line: line.into(),
        metadata: Labels::from_pairs(md.iter().copied()),
    }
}

/// Three apps in two envs, `per` entries each from `t0`, one per 250 ms, half with a
/// unique trace id in structured metadata.
fn batch(t0: i64, per: i64) -> Vec<(Labels, Vec<Entry>)> {
    let mut out = Vec::new();
    for (n, app) in ["api", "db", "web"].into_iter().enumerate() {
        for env in ["prod", "dev"] {
            let labels = Labels::from_pairs([("app", app), ("env", env)]);
            let entries = (0..per)
                .map(|i| {
                    let ts = t0 + i * S / 4 + n as i64;
                    let trace = format!("{app}{env}{ts}");
                    let level = if i % 3 == 0 { "error" } else { "info" };
                    let mut md = vec![("detected_level", level)];
                    if i % 2 == 0 {
                        md.push(("trace_id", trace.as_str()));
                    }
                    entry(ts, &format!("{app} {env} line {i} {level}"), &md)
                })
                .collect();
            out.push((labels, entries));
        }
    }
    out
}

const QUERIES: &[&str] = &[
    r#"sum by (app) (count_over_time({app=~".+"}[10s]))"#,
    r#"sum by (env, app) (rate({env="prod"}[30s]))"#,
    r#"sum(count_over_time({app=~".+"}[1m]))"#,
    r#"topk(2, sum by (app) (count_over_time({app=~"a.*|w.*"}[5s])))"#,
    // Metadata named in the grouping: answered from entries.
    r#"sum by (detected_level) (count_over_time({app="api"}[10s]))"#,
    r#"sum by (app, trace_id) (count_over_time({app="db"}[10s]))"#,
    // Not pipeline-less, or not grouped by labels: the plain path either way.
    r#"sum by (app) (count_over_time({app=~".+"} |= "error" [10s]))"#,
    r#"count_over_time({app="web", env="dev"}[10s])"#,
];

/// Metric queries with a pipeline, counted in one pass over lent entries when the parts
/// of each stream do not overlap and no delete is pending.
const PIPELINE_QUERIES: &[&str] = &[
    r#"sum by (app) (count_over_time({app=~".+"} |= "error" [10s]))"#,
    r#"sum by (env) (rate({app=~".+"} |~ "line [0-9]*7 " [30s]))"#,
    r#"sum by (app, level) (count_over_time({app=~".+"} | logfmt | drop __error__, __error_details__ [10s]))"#,
    r#"sum(bytes_over_time({env="dev"} != "info" [1m]))"#,
    // Metadata read by a filter or the grouping, or any label kept (no grouping, `without`).
    r#"sum by (detected_level) (rate({env="prod"} |~ "line [0-9]+ e" [30s]))"#,
    r#"sum by (app, trace_id) (bytes_over_time({app="api"} != "info" [10s]))"#,
    r#"sum by (app) (count_over_time({app=~".+"} | detected_level="error" [10s]))"#,
    r#"count_over_time({app="web"} |= "line 3" [10s])"#,
    r#"sum without (env) (bytes_rate({app=~"a.*|d.*"} | trace_id=~".+7" [20s]))"#,
];

/// Each query's answer as sorted text, with the engine's stats.
fn answers(
    store: &Arc<Store>,
    queries: &'static [&'static str],
    plain: bool,
    end: i64,
) -> Vec<(String, Arc<Stats>)> {
    queries
        .iter()
        .flat_map(|q| [(q, false), (q, true)])
        .map(|(q, instant)| {
            let expr = silt_logql::parse(q).unwrap();
            let p = QueryParams {
                tenant: "t",
                expr: &expr,
                start: if instant { end / 2 } else { 0 },
                end: if instant { end / 2 } else { end },
                step: 5 * S,
                interval: 0,
                limit: 100,
                direction: silt_model::Direction::Backward,
                instant,
                categorize: false,
            };
            let source = StoreSource(store.clone());
            let mut engine = Engine::new(&source, Limits::default());
            if plain {
                engine = engine.plain();
            }
            let mut rows: Vec<String> = match engine.eval(&p).unwrap() {
                QueryResult::Matrix(m) => m.iter().map(|s| format!("{s:?}")).collect(),
                QueryResult::Vector(v) => v.iter().map(|s| format!("{s:?}")).collect(),
                other => panic!("{q}: {other:?}"),
            };
            rows.sort();
            (format!("{q}\n{}", rows.join("\n")), engine.stats().clone())
        })
        .collect()
}

/// All entries counted by one instant query over the whole range.
async fn total(store: &Arc<Store>, plain: bool) -> f64 {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let expr = silt_logql::parse(r#"sum(count_over_time({app=~".+"}[401s]))"#).unwrap();
        let p = QueryParams {
            tenant: "t",
            expr: &expr,
            start: 400 * S,
            end: 400 * S,
            step: 0,
            interval: 0,
            limit: 100,
            direction: silt_model::Direction::Backward,
            instant: true,
            categorize: false,
        };
        let source = StoreSource(store);
        let mut engine = Engine::new(&source, Limits::default());
        if plain {
            engine = engine.plain();
        }
        match engine.eval(&p).unwrap() {
            QueryResult::Vector(v) => v[0].value,
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap()
}

async fn compare(store: &Arc<Store>, queries: &'static [&'static str], end: i64) -> Vec<bool> {
    let s2 = store.clone();
    let (fast, plain) = tokio::task::spawn_blocking(move || {
        (
            answers(&s2, queries, false, end),
            answers(&s2, queries, true, end),
        )
    })
    .await
    .unwrap();
    let mut used = Vec::new();
    for ((f, fs), (p, ps)) in fast.iter().zip(&plain).step_by(2) {
        assert_eq!(f, p);
        assert!(f.lines().count() > 1, "empty answer: {f}");
        // Reading timestamps alone decodes no lines and no metadata; entries always do.
        let md = |s: &Stats| Stats::get(&s.decompressed_metadata_bytes);
        let ts_only = md(fs) == 0 && Stats::get(&fs.decompressed_bytes) == 0 && fs.lines() > 0;
        if ts_only {
            // Slices re-read the entries their windows share: the same on both paths here.
            assert_eq!(fs.lines(), ps.lines(), "{f}");
        }
        used.push(ts_only);
        assert!(Stats::get(&ps.head_metadata_bytes) + md(ps) > 0);
    }
    for ((f, _), (p, _)) in fast.iter().zip(&plain).skip(1).step_by(2) {
        assert_eq!(f, p, "instant");
    }
    used
}

/// Whether each query of [`PIPELINE_QUERIES`] (range form) decoded no segment metadata on
/// the fast path (the plain one always does): lent entries carry only what a query reads.
async fn compare_pipelines(store: &Arc<Store>, end: i64) -> Vec<bool> {
    let s2 = store.clone();
    let (fast, plain) = tokio::task::spawn_blocking(move || {
        (
            answers(&s2, PIPELINE_QUERIES, false, end),
            answers(&s2, PIPELINE_QUERIES, true, end),
        )
    })
    .await
    .unwrap();
    let md = |s: &Stats| Stats::get(&s.decompressed_metadata_bytes);
    let mut less = Vec::new();
    for ((f, fs), (p, ps)) in fast.iter().zip(&plain) {
        assert_eq!(f, p);
        assert!(f.lines().count() > 1, "empty answer: {f}");
        assert!(md(ps) > 0, "{p}");
        less.push(md(fs) == 0);
    }
    less.into_iter().step_by(2).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_less_counts_from_timestamps_equal_counts_from_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    // Three segments of 100 s each, then 50 s still in the head.
    for seg in 0..3 {
        store.append("t", batch(seg * 100 * S, 400)).await.unwrap();
        store.flush().await.unwrap();
    }
    store.append("t", batch(300 * S, 200)).await.unwrap();
    let end = 400 * S;
    let used = compare(&store, QUERIES, end).await;
    // The first four take the fast path on clean data, the rest cannot.
    assert_eq!(used, [true, true, true, true, false, false, false, false]);
    let less = compare_pipelines(&store, end).await;
    // Only the first four read no metadata at all; the others read some.
    assert_eq!(
        less,
        [true, true, true, true, false, false, false, false, false]
    );

    // Exact duplicates of flushed entries and out-of-order ones overlapping a segment.
    store.append("t", batch(100 * S, 40)).await.unwrap();
    store
        .append(
            "t",
            vec![(
                Labels::from_pairs([("app", "api"), ("env", "prod")]),
                vec![entry(120 * S + 7, "late", &[])],
            )],
        )
        .await
        .unwrap();
    compare(&store, QUERIES, end).await;
    compare_pipelines(&store, end).await;
    // Duplicates count once, both ways: 6 streams of 1400 entries, and the late one.
    for plain in [false, true] {
        assert_eq!(
            total(&store, plain).await,
            6.0 * 1400.0 + 1.0,
            "plain: {plain}"
        );
    }

    // A pending delete hides entries at once, with or without a line filter.
    for (i, (app, lines)) in [("db", vec![]), ("web", vec!["error"])]
        .into_iter()
        .enumerate()
    {
        store
            .add_delete(DeleteRequest {
                request_id: format!("d{i}"),
                user_id: "t".into(),
                query: String::new(),
                filter: DeleteFilter {
                    matchers: vec![("app".into(), "=".into(), app.into())],
                    lines: if lines.is_empty() {
                        vec![]
                    } else {
                        vec![(
                            silt_storage::LineOp::Contains,
                            lines.iter().map(|s| s.to_string()).collect(),
                        )]
                    },
                },
                start: 50 * S,
                end: 250 * S,
                created_at: 0,
                status: DeleteStatus::Received,
            })
            .await
            .unwrap();
    }
    compare(&store, QUERIES, end).await;
    compare_pipelines(&store, end).await;
}

/// Only the head holds the data: its structured metadata decides alone whether a
/// grouping may skip entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_metadata_named_in_the_grouping_reads_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path())).await.unwrap();
    store.append("t", batch(0, 400)).await.unwrap();
    const HEAD_QUERIES: &[&str] = &[
        r#"sum by (app) (count_over_time({app=~".+"}[10s]))"#,
        r#"sum by (app, trace_id) (count_over_time({app="db"}[10s]))"#,
    ];
    // Counted without the trace ids, the second query would answer one series per app.
    compare(&store, HEAD_QUERIES, 200 * S).await;
}
