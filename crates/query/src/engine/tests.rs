use super::*;
use crate::source::MemorySource;
use silt_logql::ast::*;
use silt_model::{Entry, LabelMatcher, MatchOp};

const S: i64 = 1_000_000_000;

fn src() -> MemorySource {
    let mut m = MemorySource::new();
    let e = |ts: i64, line: &str| Entry {
        ts: ts * S,
        line: line.into(),
        metadata: Labels::new(),
    };
    m.push(
        Labels::from_pairs([("app", "a"), ("env", "prod")]),
        (0..60).map(|i| e(i * 10, "aa")),
    );
    m.push(
        Labels::from_pairs([("app", "b"), ("env", "prod")]),
        (0..30).map(|i| e(i * 20 + 5, "bbbb")),
    );
    m
}

fn sel(v: &str) -> LogExpr {
    LogExpr {
        selector: vec![LabelMatcher::new("env", MatchOp::Eq, v).unwrap()],
        pipeline: vec![],
    }
}

fn range(op: RangeOp, secs: i64) -> MetricExpr {
    MetricExpr::Range(RangeAggregation {
        op,
        param: None,
        log: sel("prod"),
        unwrap: None,
        range: secs * S,
        offset: 0,
        grouping: None,
    })
}

fn run(expr: &Expr, start: i64, end: i64, step: i64, instant: bool) -> QueryResult {
    let s = src();
    let e = Engine::new(&s, Limits::default());
    let p = QueryParams {
        tenant: "t",
        expr,
        start: start * S,
        end: end * S,
        step: step * S,
        interval: 0,
        limit: 1000,
        direction: Direction::Backward,
        instant,
        categorize: false,
    };
    e.eval(&p).unwrap()
}

#[test]
fn count_over_time_windows_are_left_open() {
    let QueryResult::Matrix(m) = run(
        &Expr::Metric(range(RangeOp::CountOverTime, 60)),
        60,
        120,
        60,
        false,
    ) else {
        panic!()
    };
    // app=a has entries every 10s from 0: (0,60] holds 10..60 → 6; (60,120] → 6.
    assert_eq!(m[0].labels.get("app"), Some("a"));
    assert_eq!(m[0].points, vec![(60_000, 6.0), (120_000, 6.0)]);
    // app=b entries at 5,25,45,…: (0,60] → 5,25,45 = 3.
    assert_eq!(m[1].points[0], (60_000, 3.0));
}

#[test]
fn range_steps_align_to_epoch() {
    let QueryResult::Matrix(m) = run(
        &Expr::Metric(range(RangeOp::CountOverTime, 60)),
        65,
        130,
        60,
        false,
    ) else {
        panic!()
    };
    assert_eq!(
        m[0].points.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![60_000, 120_000, 180_000]
    );
}

#[test]
fn sum_by_and_rate() {
    let agg = MetricExpr::Vector(VectorAggregation {
        op: VectorOp::Sum,
        param: None,
        grouping: Some(Grouping {
            without: false,
            labels: vec!["env".into()],
        }),
        expr: Box::new(range(RangeOp::Rate, 60)),
    });
    let QueryResult::Vector(v) = run(&Expr::Metric(agg), 120, 120, 0, true) else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].labels.get("env"), Some("prod"));
    assert!((v[0].value - 9.0 / 60.0).abs() < 1e-12, "{}", v[0].value);
}

#[test]
fn bytes_and_topk() {
    let top = MetricExpr::Vector(VectorAggregation {
        op: VectorOp::Topk,
        param: Some(1.0),
        grouping: None,
        expr: Box::new(range(RangeOp::BytesOverTime, 60)),
    });
    let QueryResult::Vector(v) = run(&Expr::Metric(top), 120, 120, 0, true) else {
        panic!()
    };
    // a: 6 × 2 bytes = 12; b: 3 × 4 = 12 → tie, one of them with value 12.
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, 12.0);
}

#[test]
fn binary_ops_and_scalars() {
    let e = Expr::Metric(MetricExpr::Binary(Box::new(BinaryExpr {
        op: BinaryOp::Gt,
        return_bool: false,
        matching: None,
        lhs: range(RangeOp::CountOverTime, 60),
        rhs: MetricExpr::Literal(4.0),
    })));
    let QueryResult::Vector(v) = run(&e, 120, 120, 0, true) else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].labels.get("app"), v[0].value), (Some("a"), 6.0));
    let QueryResult::Scalar(_, x) = run(&Expr::Metric(MetricExpr::Literal(2.0)), 1, 1, 0, true)
    else {
        panic!()
    };
    assert_eq!(x, 2.0);
    let QueryResult::Matrix(m) = run(&Expr::Metric(MetricExpr::Literal(2.0)), 0, 120, 60, false)
    else {
        panic!()
    };
    assert_eq!(m[0].points.len(), 3);
}

#[test]
fn or_vector_fills_missing() {
    let e = Expr::Metric(MetricExpr::Binary(Box::new(BinaryExpr {
        op: BinaryOp::Or,
        return_bool: false,
        matching: None,
        lhs: MetricExpr::Vector(VectorAggregation {
            op: VectorOp::Sum,
            param: None,
            grouping: None,
            expr: Box::new(MetricExpr::Range(RangeAggregation {
                log: sel("nope"),
                ..match range(RangeOp::CountOverTime, 60) {
                    MetricExpr::Range(r) => r,
                    _ => unreachable!(),
                }
            })),
        }),
        rhs: MetricExpr::VectorLiteral(0.0),
    })));
    let QueryResult::Vector(v) = run(&e, 120, 120, 0, true) else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, 0.0);
}

#[test]
fn log_limit_and_direction() {
    let e = Expr::Log(sel("prod"));
    let s = src();
    let eng = Engine::new(&s, Limits::default());
    let mut p = QueryParams {
        tenant: "t",
        expr: &e,
        start: 0,
        end: 1000 * S,
        step: 0,
        interval: 0,
        limit: 3,
        direction: Direction::Backward,
        instant: false,
        categorize: false,
    };
    let QueryResult::Streams(st) = eng.eval(&p).unwrap() else {
        panic!()
    };
    let mut ts: Vec<i64> = st
        .iter()
        .flat_map(|s| s.rows.iter().map(|r| r.ts / S))
        .collect();
    ts.sort();
    assert_eq!(ts, vec![580, 585, 590]);
    p.direction = Direction::Forward;
    let QueryResult::Streams(st) = eng.eval(&p).unwrap() else {
        panic!()
    };
    let mut ts: Vec<i64> = st
        .iter()
        .flat_map(|s| s.rows.iter().map(|r| r.ts / S))
        .collect();
    ts.sort();
    assert_eq!(ts, vec![0, 5, 10]);
    p.instant = true;
    assert!(eng.eval(&p).is_err());
}

/// Evaluates query text over `src` (times in seconds).
fn eval_text(
    src: &MemorySource,
    limits: Limits,
    q: &str,
    (start, end, step): (i64, i64, i64),
    instant: bool,
) -> Result<QueryResult> {
    let expr = silt_logql::parse(q).unwrap();
    Engine::new(src, limits).eval(&QueryParams {
        tenant: "t",
        expr: &expr,
        start: start * S,
        end: end * S,
        step: step * S,
        interval: 0,
        limit: 100,
        direction: Direction::Backward,
        instant,
        categorize: false,
    })
}

#[test]
fn approx_topk_is_instant_only() {
    let q = silt_logql::parse(r#"approx_topk(1, count_over_time({env="prod"}[1m]))"#).unwrap();
    let QueryResult::Vector(v) = run(&q, 120, 120, 0, true) else {
        panic!()
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].labels.get("app"), Some("a"));
    let err = eval_text(
        &src(),
        Limits::default(),
        r#"approx_topk(1, count_over_time({env="prod"}[1m]))"#,
        (60, 120, 60),
        false,
    )
    .unwrap_err();
    assert!(
        err.is_client_error() && err.to_string().contains("instant"),
        "{err}"
    );
}

/// Long ranges are evaluated in time slices (and instant counts in split windows) on
/// several threads; the answers must equal a brute-force count.
#[test]
fn sliced_and_split_evaluation_is_exact() {
    let mut m = MemorySource::new();
    for (app, every) in [("a", 7), ("b", 13)] {
        m.push(
            Labels::from_pairs([("app", app), ("env", "prod")]),
            (0..3 * 3600 / every).map(|i| Entry {
                ts: i * every * S + 1,
                line: "x".repeat(app.len() + 2),
                metadata: Labels::new(),
            }),
        );
    }
    let brute = |every: i64, lo: i64, hi: i64| {
        (0..3 * 3600 / every)
            .filter(|i| {
                let ts = i * every * S + 1;
                ts > lo && ts <= hi
            })
            .count() as f64
    };
    for parallelism in [1, 2, 3] {
        let limits = Limits {
            parallelism,
            ..Limits::default()
        };
        let run = |q: &str, start: i64, end: i64, step: i64, instant: bool| {
            eval_text(&m, limits.clone(), q, (start, end, step), instant).unwrap()
        };
        let QueryResult::Matrix(mx) = run(
            r#"count_over_time({env="prod"}[5m])"#,
            0,
            3 * 3600,
            60,
            false,
        ) else {
            panic!()
        };
        for s in &mx {
            let every = if s.labels.get("app") == Some("a") {
                7
            } else {
                13
            };
            let want: Vec<(i64, f64)> = (0..=180)
                .map(|k| k * 60 * S)
                .map(|t| (t / 1_000_000, brute(every, t - 300 * S, t)))
                .filter(|p| p.1 > 0.0)
                .collect();
            assert_eq!(s.points, want, "p={parallelism}");
        }
        let instant = |q: &str| match run(q, 3 * 3600, 3 * 3600, 0, true) {
            QueryResult::Vector(v) => v[0].value,
            other => panic!("{other:?}"),
        };
        let (lo, hi) = (20 * 60 * S, 170 * 60 * S);
        let want = (brute(7, lo, hi) + brute(13, lo, hi)) / 9000.0;
        assert_eq!(
            instant(r#"sum(rate({env="prod"}[150m] offset 10m))"#),
            want,
            "p={parallelism}"
        );
        assert_eq!(
            instant(r#"bytes_over_time({app="b"}[3h])"#),
            3.0 * brute(13, 0, 3 * 3600 * S)
        );
    }
}

#[test]
fn unwrapped_rate_is_not_split_into_counts() {
    let mut m = MemorySource::new();
    m.push(
        Labels::from_pairs([("app", "u")]),
        (0..100).map(|i| Entry {
            ts: i * 60 * S + 1,
            line: format!("v={}", i % 7),
            metadata: Labels::new(),
        }),
    );
    let QueryResult::Vector(v) = eval_text(
        &m,
        Limits::default(),
        r#"sum(rate({app="u"} | logfmt | unwrap v [100m]))"#,
        (6000, 6000, 0),
        true,
    )
    .unwrap() else {
        panic!()
    };
    let sum: i64 = (0..100).map(|i| i % 7).sum();
    assert_eq!(v[0].value, sum as f64 / 6000.0);
}

/// Log queries over hours of two interleaved streams: limit in both directions, with a
/// line filter (pushed into the source), and `interval` thinning per stream.
#[test]
fn log_queries_keep_order_limit_and_interval() {
    let mut m = MemorySource::new();
    for (app, every, phase) in [("a", 600, 0), ("b", 900, 7)] {
        m.push(
            Labels::from_pairs([("app", app)]),
            (0..4 * 3600 / every).map(|i| Entry {
                ts: (i * every + phase) * S,
                line: format!("{app} {}", if i % 5 == 0 { "error" } else { "ok" }),
                metadata: Labels::new(),
            }),
        );
    }
    let all: Vec<(i64, String)> = {
        let mut v: Vec<(i64, String)> = [("a", 600, 0), ("b", 900, 7)]
            .iter()
            .flat_map(|&(app, every, phase)| {
                (0..4 * 3600 / every).map(move |i| {
                    let w = if i % 5 == 0 { "error" } else { "ok" };
                    ((i * every + phase) * S, format!("{app} {w}"))
                })
            })
            .collect();
        v.sort();
        v
    };
    let rows = |q: &str, dir: Direction, limit: usize, interval: i64| {
        let expr = silt_logql::parse(q).unwrap();
        let QueryResult::Streams(streams) = Engine::new(&m, Limits::default())
            .eval(&QueryParams {
                tenant: "t",
                expr: &expr,
                start: 0,
                end: 4 * 3600 * S,
                step: 0,
                interval,
                limit,
                direction: dir,
                instant: false,
                categorize: false,
            })
            .unwrap()
        else {
            panic!()
        };
        let mut v: Vec<(i64, String)> = streams
            .into_iter()
            .flat_map(|s| s.rows.into_iter().map(|r| (r.ts, r.line)))
            .collect();
        v.sort();
        v
    };
    let q = r#"{app=~"a|b"}"#;
    assert_eq!(rows(q, Direction::Backward, 7, 0), all[all.len() - 7..]);
    assert_eq!(rows(q, Direction::Forward, 7, 0), all[..7]);
    let errors: Vec<_> = all
        .iter()
        .filter(|r| r.1.ends_with("error"))
        .cloned()
        .collect();
    assert_eq!(
        rows(r#"{app=~"a|b"} |= "error""#, Direction::Backward, 3, 0),
        errors[errors.len() - 3..]
    );
    // interval thinning: per stream, entries at least 2500 s apart, across slices
    let thin = |app: &str| {
        let mut kept: Vec<(i64, String)> = Vec::new();
        for r in all.iter().filter(|r| r.1.starts_with(app)) {
            if kept.last().is_none_or(|k| r.0 - k.0 >= 2500 * S) {
                kept.push(r.clone());
            }
        }
        kept
    };
    let mut want = [thin("a"), thin("b")].concat();
    want.sort();
    assert_eq!(rows(q, Direction::Forward, 1000, 2500 * S), want);
}

/// A source whose cursors count the entries pulled from them.
struct Counting {
    inner: MemorySource,
    pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl crate::LogSource for Counting {
    fn select(&self, req: &crate::SelectRequest<'_>) -> Result<Vec<crate::StreamCursor>> {
        let mut cs = self.inner.select(req)?;
        for c in &mut cs {
            let pulled = self.pulled.clone();
            let inner =
                std::mem::replace(&mut c.entries, Box::new(crate::Entries(std::iter::empty())));
            c.entries = Box::new(crate::Entries(inner.inspect(move |_| {
                pulled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })));
        }
        Ok(cs)
    }
}

#[test]
fn a_limited_log_query_does_not_read_streams_the_merge_never_reaches() {
    let mut m = MemorySource::new();
    let e = |ts: i64| Entry {
        ts: ts * S,
        line: "x".into(),
        metadata: Labels::new(),
    };
    m.push(
        Labels::from_pairs([("app", "new"), ("env", "prod")]),
        (100..200).map(e),
    );
    // Many streams with only older entries: a backward limit 10 is met by `new` alone.
    for i in 0..50 {
        m.push(
            Labels::from_pairs([("app", format!("old{i}").as_str()), ("env", "prod")]),
            (0..50).map(e),
        );
    }
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = Counting {
        inner: m,
        pulled: pulled.clone(),
    };
    let expr = Expr::Log(sel("prod"));
    let p = QueryParams {
        tenant: "t",
        expr: &expr,
        start: 0,
        end: 300 * S,
        step: 0,
        interval: 0,
        limit: 10,
        direction: Direction::Backward,
        instant: false,
        categorize: false,
    };
    let QueryResult::Streams(r) = Engine::new(&s, Limits::default()).eval(&p).unwrap() else {
        panic!("not streams");
    };
    assert_eq!(r.iter().map(|s| s.rows.len()).sum::<usize>(), 10);
    // 10 rows plus the one-ahead entry of `new`; no old stream was touched.
    assert!(
        pulled.load(std::sync::atomic::Ordering::Relaxed) <= 11,
        "pulled {}",
        pulled.load(std::sync::atomic::Ordering::Relaxed)
    );
}
