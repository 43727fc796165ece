//! Query evaluation: log queries (merge, limit, direction) and metric queries
//! (range aggregations per step, vector aggregations, binary operations).
//!
//! Metric queries are evaluated over a step grid. Range queries are step-aligned to
//! the Unix epoch as Loki's query frontend does (start rounded down, end up); an
//! instant query is a grid of one point at `time`. Every intermediate value is a
//! [`StepMatrix`]: series with one optional value per step.

mod binary;
mod log;
mod onepass;
mod range;
mod vector;

pub use log::{group_rows, group_streams};

use crate::result::{QueryResult, Sample, Series};
use crate::{Error, LogSource, Result};
use silt_logql::ast::{Expr, MetricExpr, VectorOp};
use silt_model::{Direction, Labels};
use std::time::Instant;

/// Protective limits of one query.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Highest log `limit`.
    pub max_entries: usize,
    /// Most series one range aggregation may hold in memory (a memory guard: Loki 3.7.6
    /// answers queries with thousands of series, so this is not its 500-series result cap).
    pub max_series: usize,
    /// Most points per series.
    pub max_points: i64,
    /// When the query must give up.
    pub deadline: Option<Instant>,
    /// Threads one query may use (time slices of a range aggregation run in parallel).
    pub parallelism: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 5000,
            max_series: 500_000,
            max_points: 11_000,
            deadline: None,
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// One query to evaluate.
#[derive(Clone, Debug)]
pub struct QueryParams<'a> {
    /// Tenant whose data is read.
    pub tenant: &'a str,
    /// Parsed query.
    pub expr: &'a Expr,
    /// Range start (ns); the evaluation time for instant queries.
    pub start: i64,
    /// Range end (ns); equal to `start` for instant queries.
    pub end: i64,
    /// Step (ns); ignored for instant queries.
    pub step: i64,
    /// Log thinning interval (ns), 0 for none.
    pub interval: i64,
    /// Log line limit.
    pub limit: usize,
    /// Log direction.
    pub direction: Direction,
    /// Instant query (`/query`).
    pub instant: bool,
    /// Group log results by indexed labels only (`categorize-labels`).
    pub categorize: bool,
}

/// Evaluates queries against a source.
pub struct Engine<'s> {
    source: &'s dyn LogSource,
    limits: Limits,
    stats: std::sync::Arc<crate::Stats>,
    /// Whether sources may answer counts without entries ([`LogSource::timestamps`]).
    fast_paths: bool,
}

/// Series with one optional value per step of the grid.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepMatrix {
    pub series: Vec<(Labels, Vec<Option<f64>>)>,
}

/// Value of a metric sub-expression.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    /// Labelled series.
    Vector(StepMatrix),
}

/// The evaluation grid of a metric query, in ns.
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    pub steps: Vec<i64>,
}

impl<'s> Engine<'s> {
    /// An engine reading from `source`.
    pub fn new(source: &'s dyn LogSource, limits: Limits) -> Self {
        Engine {
            source,
            limits,
            stats: Default::default(),
            fast_paths: true,
        }
    }

    /// The same engine reading every answer from entries, never through a fast path:
    /// tests compare both ways on the same data.
    pub fn plain(mut self) -> Self {
        self.fast_paths = false;
        self
    }

    pub(crate) fn fast_paths(&self) -> bool {
        self.fast_paths
    }

    /// What the queries evaluated so far read and kept.
    pub fn stats(&self) -> &std::sync::Arc<crate::Stats> {
        &self.stats
    }

    /// Evaluates a query.
    pub fn eval(&self, p: &QueryParams<'_>) -> Result<QueryResult> {
        match p.expr {
            Expr::Log(l) => {
                if p.instant {
                    return Err(Error::InvalidQuery(
                        "log queries are not supported as an instant query type, please change your query to a range query type".into(),
                    ));
                }
                log::eval(self, l, p)
            }
            Expr::Metric(m) => self.eval_metric(m, p),
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<()> {
        match self.limits.deadline {
            Some(d) if Instant::now() > d => Err(Error::Timeout),
            _ => Ok(()),
        }
    }

    pub(crate) fn source(&self) -> &dyn LogSource {
        self.source
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `f(0..n)` on up to `parallelism` threads; results in index order, the
    /// first error wins and stops the remaining work.
    pub(crate) fn parallel<T: Send>(
        &self,
        n: usize,
        f: impl Fn(usize) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let threads = self.limits.parallelism.clamp(1, n.max(1));
        if threads == 1 {
            return (0..n).map(f).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let slots: Vec<std::sync::Mutex<Option<Result<T>>>> =
            (0..n).map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    use std::sync::atomic::Ordering::Relaxed;
                    let i = next.fetch_add(1, Relaxed);
                    if i >= n || failed.load(Relaxed) {
                        break;
                    }
                    let r = f(i);
                    if r.is_err() {
                        failed.store(true, Relaxed);
                    }
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                });
            }
        });
        let mut out = Vec::with_capacity(n);
        let mut first_err = None;
        for slot in slots {
            match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(v)) => out.push(v),
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    fn eval_metric(&self, m: &MetricExpr, p: &QueryParams<'_>) -> Result<QueryResult> {
        let grid = if p.instant {
            Grid {
                steps: vec![p.start],
            }
        } else {
            if uses_approx_topk(m) {
                return Err(Error::InvalidQuery(
                    "approx_topk is only supported for instant queries".into(),
                ));
            }
            if p.step <= 0 {
                return Err(Error::InvalidQuery(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
                ));
            }
            let start = p.start.div_euclid(p.step) * p.step;
            let end = -((-p.end).div_euclid(p.step)) * p.step;
            if (end - start) / p.step + 1 > self.limits.max_points {
                return Err(Error::LimitExceeded(
                    "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
                ));
            }
            Grid {
                steps: (0..=(end - start) / p.step)
                    .map(|k| start + k * p.step)
                    .collect(),
            }
        };
        let value = self.eval_expr(m, p.tenant, &grid)?;
        let to_ms = |ns: i64| ns.div_euclid(1_000_000);
        Ok(match (value, p.instant) {
            (Value::Scalar(v), true) => QueryResult::Scalar(to_ms(grid.steps[0]), v[0]),
            (Value::Scalar(v), false) => QueryResult::Matrix(vec![Series {
                labels: Labels::new(),
                points: grid
                    .steps
                    .iter()
                    .zip(v)
                    .map(|(t, v)| (to_ms(*t), v))
                    .collect(),
            }]),
            (Value::Vector(m), instant) => {
                let mut series: Vec<_> = m
                    .series
                    .into_iter()
                    .filter(|(_, v)| v.iter().any(Option::is_some))
                    .collect();
                // Loki 3.7.6 answers queries with thousands of series (e.g. one per trace_id);
                // `max_series` guards memory where series are built (range.rs).
                let sort = m_sort(p.expr).is_some();
                if instant {
                    let mut out: Vec<Sample> = series
                        .into_iter()
                        .filter_map(|(labels, v)| {
                            v[0].map(|value| Sample {
                                labels,
                                ts_ms: to_ms(grid.steps[0]),
                                value,
                            })
                        })
                        .collect();
                    match m_sort(p.expr) {
                        Some(true) => out.sort_by(|a, b| b.value.total_cmp(&a.value)),
                        Some(false) => out.sort_by(|a, b| a.value.total_cmp(&b.value)),
                        None => out.sort_by(|a, b| a.labels.cmp(&b.labels)),
                    }
                    QueryResult::Vector(out)
                } else {
                    if !sort {
                        series.sort_by(|a, b| a.0.cmp(&b.0));
                    }
                    QueryResult::Matrix(
                        series
                            .into_iter()
                            .map(|(labels, v)| Series {
                                labels,
                                points: grid
                                    .steps
                                    .iter()
                                    .zip(v)
                                    .filter_map(|(t, v)| v.map(|v| (to_ms(*t), v)))
                                    .collect(),
                            })
                            .collect(),
                    )
                }
            }
        })
    }

    pub(crate) fn eval_expr(&self, m: &MetricExpr, tenant: &str, grid: &Grid) -> Result<Value> {
        self.check_deadline()?;
        match m {
            MetricExpr::Literal(v) => Ok(Value::Scalar(vec![*v; grid.steps.len()])),
            MetricExpr::VectorLiteral(v) => Ok(Value::Vector(StepMatrix {
                series: vec![(Labels::new(), vec![Some(*v); grid.steps.len()])],
            })),
            MetricExpr::Range(r) => range::eval(self, r, tenant, grid, None).map(Value::Vector),
            MetricExpr::Vector(v) => vector::eval(self, v, tenant, grid),
            MetricExpr::Binary(b) => binary::eval(self, b, tenant, grid),
            MetricExpr::LabelReplace(lr) => {
                let inner = self.eval_expr(&lr.expr, tenant, grid)?;
                let Value::Vector(mut m) = inner else {
                    return Err(Error::InvalidQuery(
                        "label_replace needs a vector argument".into(),
                    ));
                };
                let re = regex::Regex::new(&format!("^(?s:{})$", lr.regex)).map_err(|e| {
                    Error::InvalidQuery(format!(
                        "invalid regular expression in label_replace(): {e}"
                    ))
                })?;
                for (labels, _) in &mut m.series {
                    let src = labels.get(&lr.src).unwrap_or("").to_string();
                    if let Some(caps) = re.captures(&src) {
                        let mut dst = String::new();
                        caps.expand(&go_template_to_rust(&lr.replacement), &mut dst);
                        labels.set(&lr.dst, &dst);
                    }
                }
                Ok(Value::Vector(merge_same_labels(m)?))
            }
        }
    }
}

/// `Some(true)` for a top-level `sort_desc`, `Some(false)` for `sort`.
fn m_sort(e: &Expr) -> Option<bool> {
    use silt_logql::ast::VectorOp;
    match e {
        Expr::Metric(MetricExpr::Vector(v)) if v.op == VectorOp::SortDesc => Some(true),
        Expr::Metric(MetricExpr::Vector(v)) if v.op == VectorOp::Sort => Some(false),
        _ => None,
    }
}

/// The error Loki gives when a query has too many series.
pub(crate) fn series_limit(max: usize) -> Error {
    Error::LimitExceeded(format!(
        "maximum number of series ({max}) reached for a single query; consider reducing query cardinality by adding more filters or aggregating"
    ))
}

/// Go's `$1` / `${1}` replacement syntax is Rust's too, except that Rust treats `$1x` as a
/// group named `1x`; Prometheus reads it the same way, so the text is used as is.
fn go_template_to_rust(s: &str) -> String {
    s.to_string()
}

/// After relabelling, two series may share labels: that is an error in Prometheus.
fn merge_same_labels(m: StepMatrix) -> Result<StepMatrix> {
    let mut seen = std::collections::HashSet::new();
    for (l, _) in &m.series {
        if !seen.insert(l.clone()) {
            return Err(Error::InvalidQuery(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod hints_tests;
#[cfg(test)]
mod tests;

/// `approx_topk` answers instant queries only (its sketch has no per-step form in Loki).
fn uses_approx_topk(m: &MetricExpr) -> bool {
    match m {
        MetricExpr::Vector(v) => v.op == VectorOp::ApproxTopk || uses_approx_topk(&v.expr),
        MetricExpr::Binary(b) => uses_approx_topk(&b.lhs) || uses_approx_topk(&b.rhs),
        MetricExpr::LabelReplace(l) => uses_approx_topk(&l.expr),
        MetricExpr::Range(_) | MetricExpr::Literal(_) | MetricExpr::VectorLiteral(_) => false,
    }
}
