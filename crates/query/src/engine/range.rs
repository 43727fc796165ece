//! Range aggregations: samples per series, then one value per step from the window
//! `(t - range - offset, t - offset]`.

use super::{series_limit, Engine, Grid, StepMatrix};
use crate::logpipe::{EntryLabels, SampleExtractor};
use crate::{Error, Result, SelectRequest};
use silt_logql::ast::{Grouping, RangeAggregation, RangeOp};
use silt_model::{Direction, Labels, MatchOp};
use std::collections::HashMap;

/// A time slice holds about an hour of data time, or fewer, larger slices where that
/// holds under this many entries: a source may hold a slice's entries of one segment
/// decoded at once, and each slice decodes again the pages it shares with its neighbours,
/// so sparse data is read in as few slices as memory allows.
const SLICE_ENTRIES: u64 = 1 << 16;
/// The same when only timestamps are read ([`count_timestamps`]): 16 bytes an entry.
const SLICE_TIMESTAMPS: u64 = 1 << 20;
/// Data time of a slice when entries are dense.
const SLICE_NS: i64 = 3_600_000_000_000;
/// At most this many slices per query (each slice opens the source once).
const MAX_SLICES: usize = 256;

/// `pushdown`: grouping of an enclosing `sum by/without` that may be applied to samples
/// before windowing (exact for the additive ops, see [`additive`]), so that per-entry
/// series (e.g. a trace_id in structured metadata) never materialise.
///
/// Long ranges are evaluated in time slices (runs of steps, or for an instant count a
/// split window) on `parallelism` threads; only one slice per thread is in memory.
pub(super) fn eval(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    tenant: &str,
    grid: &Grid,
    pushdown: Option<&Grouping>,
) -> Result<StepMatrix> {
    if !timestamps_suffice(engine, r, pushdown) {
        if let Some(m) = super::onepass::eval(engine, r, tenant, grid, pushdown)? {
            return Ok(m);
        }
    }
    if grid.steps.len() == 1 {
        if let Some(parts) = split_window(engine, r, tenant, grid.steps[0], pushdown) {
            return eval_split_window(engine, r, &parts, tenant, grid, pushdown);
        }
    }
    let slices = slice_steps(engine, r, tenant, grid, pushdown);
    if slices.len() <= 1 {
        return eval_slice(engine, r, tenant, grid, pushdown);
    }
    let results = engine.parallel(slices.len(), |i| {
        eval_slice(engine, r, tenant, &slices[i], pushdown)
    })?;
    let n = grid.steps.len();
    let mut merged: HashMap<Labels, Vec<Option<f64>>> = HashMap::new();
    let mut offset = 0;
    for (slice, part) in slices.iter().zip(results) {
        for (labels, values) in part.series {
            if !merged.contains_key(&labels) && merged.len() >= engine.limits().max_series {
                return Err(series_limit(engine.limits().max_series));
            }
            let row = merged.entry(labels).or_insert_with(|| vec![None; n]);
            row[offset..offset + values.len()].copy_from_slice(&values);
        }
        offset += slice.steps.len();
    }
    Ok(StepMatrix {
        series: merged.into_iter().collect(),
    })
}

/// How many pieces memory asks for when reading `(start, end]`: one per [`SLICE_NS`] of
/// data time, fewer when the source says each would hold under [`SLICE_ENTRIES`] (or
/// [`SLICE_TIMESTAMPS`]).
fn pieces_for_memory(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    tenant: &str,
    (start, end): (i64, i64),
    pushdown: Option<&Grouping>,
) -> usize {
    let by_time = ((end - start) / SLICE_NS) as usize;
    let per_slice = if timestamps_suffice(engine, r, pushdown) {
        SLICE_TIMESTAMPS
    } else {
        SLICE_ENTRIES
    };
    match engine
        .source()
        .entries_hint(tenant, &r.log.selector, start + 1, end + 1)
    {
        Some(n) => by_time.min((n / per_slice) as usize),
        None => by_time,
    }
}

/// Splits the steps into contiguous runs: as many as memory asks for, and at least one
/// per thread when each run still spans ≥ 4 windows (re-read overlap stays small).
fn slice_steps(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    tenant: &str,
    grid: &Grid,
    pushdown: Option<&Grouping>,
) -> Vec<Grid> {
    let steps = &grid.steps;
    if steps.len() < 2 {
        return vec![grid.clone()];
    }
    let step = steps[1] - steps[0];
    let span = steps[steps.len() - 1] - steps[0] + step;
    let read = (
        steps[0] - r.range - r.offset,
        steps[steps.len() - 1] - r.offset,
    );
    let by_time = pieces_for_memory(engine, r, tenant, read, pushdown);
    let by_threads = engine
        .limits()
        .parallelism
        .min((span / (4 * r.range.max(1))) as usize);
    let n = by_time
        .max(by_threads)
        .clamp(1, steps.len().min(MAX_SLICES));
    if n == 1 {
        return vec![grid.clone()];
    }
    (0..n)
        .map(|i| Grid {
            steps: steps[i * steps.len() / n..(i + 1) * steps.len() / n].to_vec(),
        })
        .collect()
}

/// For an instant count/bytes/rate over a long window: the window cut into consecutive
/// sub-windows whose integer counts add up exactly.
fn split_window(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    tenant: &str,
    t: i64,
    pushdown: Option<&Grouping>,
) -> Option<Vec<RangeAggregation>> {
    // unwrapped rates sum float values: splitting would change the rounding
    if r.unwrap.is_some()
        || !matches!(
            r.op,
            RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate
        )
    {
        return None;
    }
    let window = (t - r.range - r.offset, t - r.offset);
    let by_time = pieces_for_memory(engine, r, tenant, window, pushdown);
    // below a minute per part the source set-up outweighs the parallel gain
    let by_threads = engine
        .limits()
        .parallelism
        .min((r.range / 60_000_000_000) as usize);
    let n = by_time.max(by_threads).min(MAX_SLICES);
    if n < 2 {
        return None;
    }
    let op = match r.op {
        RangeOp::Rate | RangeOp::CountOverTime => RangeOp::CountOverTime,
        _ => RangeOp::BytesOverTime,
    };
    let cut = |j: usize| (r.range as i128 * j as i128 / n as i128) as i64;
    Some(
        (0..n)
            .map(|j| RangeAggregation {
                op,
                range: cut(j + 1) - cut(j),
                offset: r.offset + cut(j),
                ..r.clone()
            })
            .collect(),
    )
}

fn eval_split_window(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    parts: &[RangeAggregation],
    tenant: &str,
    grid: &Grid,
    pushdown: Option<&Grouping>,
) -> Result<StepMatrix> {
    let results = engine.parallel(parts.len(), |i| {
        eval_slice(engine, &parts[i], tenant, grid, pushdown)
    })?;
    let mut total: HashMap<Labels, f64> = HashMap::new();
    for part in results {
        for (labels, values) in part.series {
            if let Some(v) = values[0] {
                if !total.contains_key(&labels) && total.len() >= engine.limits().max_series {
                    return Err(series_limit(engine.limits().max_series));
                }
                *total.entry(labels).or_default() += v;
            }
        }
    }
    let per_sec = matches!(r.op, RangeOp::Rate | RangeOp::BytesRate);
    let range_s = r.range as f64 / 1e9;
    Ok(StepMatrix {
        series: total
            .into_iter()
            .map(|(l, v)| (l, vec![Some(if per_sec { v / range_s } else { v })]))
            .collect(),
    })
}

/// One slice: reads the entries its windows cover and computes every step.
fn eval_slice(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    tenant: &str,
    grid: &Grid,
    pushdown: Option<&Grouping>,
) -> Result<StepMatrix> {
    let req = request(engine, r, tenant, grid);
    crate::stats::add(&engine.stats().splits, 1);
    if let Some(counted) = count_timestamps(engine, r, &req, grid, pushdown)? {
        return Ok(counted);
    }
    let mut by_series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
    extract(engine, r, &req, pushdown, &mut by_series)?;
    finish(r, grid, by_series)
}

/// What `r` reads for the steps of `grid`: the entries with
/// `first - range - offset < ts <= last - offset`, oldest first.
pub(super) fn request<'a>(
    engine: &Engine<'_>,
    r: &'a RangeAggregation,
    tenant: &'a str,
    grid: &Grid,
) -> SelectRequest<'a> {
    let first = grid.steps[0];
    let last = *grid.steps.last().unwrap_or(&first);
    SelectRequest {
        tenant,
        matchers: &r.log.selector,
        start: first - r.range - r.offset + 1,
        end: last - r.offset + 1,
        direction: Direction::Forward,
        // Counting needs no line text; parsers, unwrap and byte counts do.
        lines: !r.log.pipeline.is_empty()
            || r.unwrap.is_some()
            || matches!(r.op, RangeOp::BytesOverTime | RangeOp::BytesRate),
        // A bad filter is reported when the pipeline compiles.
        line_filter: crate::logpipe::line_prefilter(&r.log.pipeline)
            .ok()
            .flatten(),
        stats: engine.stats().clone(),
    }
}

/// Samples of every entry the source yields, by series.
fn extract(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    req: &SelectRequest<'_>,
    pushdown: Option<&Grouping>,
    by_series: &mut HashMap<Labels, Vec<(i64, f64)>>,
) -> Result<()> {
    let cursors = engine.source().select(req)?;
    if !cursors.is_empty() {
        // The plain path (tests) extracts every label, to compare with the hinted one.
        let series = r.grouping.as_ref().or(pushdown);
        let extractor = SampleExtractor::grouped(r, series.filter(|_| engine.fast_paths()))?;
        let mut n = 0u64;
        for c in cursors {
            for e in c.entries {
                let e = e?;
                n += 1;
                if n.is_multiple_of(4096) {
                    engine.check_deadline()?;
                }
                let labels = EntryLabels::new(c.labels.clone(), e.metadata);
                if let Some((labels, v)) = extractor.extract(e.ts, &e.line, labels) {
                    crate::stats::add(&engine.stats().post_filter_lines, 1);
                    let series = series_of(&labels, r.grouping.as_ref().or(pushdown));
                    if !by_series.contains_key(&series)
                        && by_series.len() >= engine.limits().max_series
                    {
                        return Err(series_limit(engine.limits().max_series));
                    }
                    by_series.entry(series).or_default().push((e.ts, v));
                }
            }
        }
    }
    Ok(())
}

/// Pipeline-less counts grouped by labels, from each stream's timestamps alone when the
/// source can give them (`None`: entries must be read instead). Each stream's sorted
/// timestamps are counted into its series' steps directly, never turned into samples.
fn count_timestamps(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    req: &SelectRequest<'_>,
    grid: &Grid,
    pushdown: Option<&Grouping>,
) -> Result<Option<StepMatrix>> {
    let Some(g) = r
        .grouping
        .as_ref()
        .or(pushdown)
        .filter(|_| timestamps_suffice(engine, r, pushdown))
    else {
        return Ok(None);
    };
    let Some(streams) = engine.source().timestamps(req, &g.labels)? else {
        return Ok(None);
    };
    let mut counts: HashMap<Labels, Vec<u64>> = HashMap::new();
    for (labels, mut ts) in streams {
        crate::stats::add(&engine.stats().post_filter_lines, ts.len() as u64);
        let series = EntryLabels::new(labels, Labels::new()).project(&g.labels);
        if !counts.contains_key(&series) && counts.len() >= engine.limits().max_series {
            return Err(series_limit(engine.limits().max_series));
        }
        if !ts.is_sorted() {
            ts.sort_unstable();
        }
        let c = counts
            .entry(series)
            .or_insert_with(|| vec![0; grid.steps.len()]);
        step_counts(r, grid, &ts, c);
    }
    let range_s = r.range as f64 / 1e9;
    let mut out = StepMatrix::default();
    for (labels, c) in counts {
        if c.iter().all(|&n| n == 0) {
            continue;
        }
        pipeline_error(&labels)?;
        let value = |n: u64| match r.op {
            RangeOp::Rate => n as f64 / range_s,
            _ => n as f64,
        };
        let values = c.into_iter().map(|n| (n > 0).then(|| value(n))).collect();
        out.series.push((labels, values));
    }
    Ok(Some(out))
}

/// Adds to `out[i]` how many of the sorted `ts` fall in step i's window, as [`windows`].
fn step_counts(r: &RangeAggregation, grid: &Grid, ts: &[i64], out: &mut [u64]) {
    let (mut lo, mut hi) = (0usize, 0usize);
    for (&t, n) in grid.steps.iter().zip(out.iter_mut()) {
        let (start, end) = (t - r.range - r.offset, t - r.offset);
        while lo < ts.len() && ts[lo] <= start {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < ts.len() && ts[hi] <= end {
            hi += 1;
        }
        *n += (hi - lo) as u64;
    }
}

/// Whether a range aggregation is a pipeline-less count grouped by labels, which
/// [`count_timestamps`] may answer from timestamps alone.
fn timestamps_suffice(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    pushdown: Option<&Grouping>,
) -> bool {
    r.grouping.as_ref().or(pushdown).is_some_and(|g| !g.without)
        && engine.fast_paths()
        && r.log.pipeline.is_empty()
        && r.unwrap.is_none()
        && matches!(r.op, RangeOp::CountOverTime | RangeOp::Rate)
}

/// One value per step from each series' samples.
fn finish(
    r: &RangeAggregation,
    grid: &Grid,
    by_series: HashMap<Labels, Vec<(i64, f64)>>,
) -> Result<StepMatrix> {
    if r.op == RangeOp::AbsentOverTime {
        return Ok(absent(r, grid, &by_series));
    }
    let mut out = StepMatrix::default();
    for (labels, mut samples) in by_series {
        samples.sort_by_key(|s| s.0);
        let values = windows(r, grid, &samples);
        if values.iter().all(Option::is_none) {
            continue;
        }
        pipeline_error(&labels)?;
        // Loki limits series on the final result only: inner series are often per-entry
        // (structured metadata) and collapse under an aggregation.
        out.series.push((labels, values));
    }
    Ok(out)
}

/// The series a sample belongs to: its labels kept by the grouping, if any.
pub(super) fn series_of(labels: &EntryLabels, series: Option<&Grouping>) -> Labels {
    match series {
        None => labels.flatten(),
        Some(g) if !g.without => labels.project(&g.labels),
        Some(g) => {
            let mut out = group(&labels.flatten(), g);
            // `without` must not hide pipeline errors either.
            for k in ["__error__", "__error_details__"] {
                if let Some(v) = labels.get(k) {
                    out.set(k, v);
                }
            }
            out
        }
    }
}

/// Loki's rule: a result series that still carries `__error__` fails the query.
pub(super) fn pipeline_error(labels: &Labels) -> Result<()> {
    match labels.get("__error__") {
        Some(err) => Err(Error::Pipeline(format!(
            "pipeline error: '{err}' for series: '{labels}'. Use a label filter to intentionally skip this error. (e.g | __error__!=\"{err}\"). To skip all potential errors you can match all errors with regex: | __error__=~\".+\""
        ))),
        None => Ok(()),
    }
}

/// Range ops whose per-series values add up across series in the same window, so a
/// `sum by` over them equals the op over the grouped samples.
pub(super) fn additive(op: RangeOp) -> bool {
    matches!(
        op,
        RangeOp::CountOverTime
            | RangeOp::Rate
            | RangeOp::BytesOverTime
            | RangeOp::BytesRate
            | RangeOp::SumOverTime
    )
}

/// `by` keeps only the listed labels; `without` drops them.
pub(super) fn group(labels: &Labels, g: &Grouping) -> Labels {
    if g.without {
        labels.without(&g.labels)
    } else {
        labels.keep_only(&g.labels)
    }
}

fn absent(
    r: &RangeAggregation,
    grid: &Grid,
    by_series: &HashMap<Labels, Vec<(i64, f64)>>,
) -> StepMatrix {
    let labels = Labels::from_pairs(
        r.log
            .selector
            .iter()
            .filter(|m| m.op == MatchOp::Eq)
            .map(|m| (m.name.clone(), m.value.clone())),
    );
    let mut all: Vec<i64> = by_series.values().flatten().map(|s| s.0).collect();
    all.sort_unstable();
    let values = grid
        .steps
        .iter()
        .map(|&t| {
            let (lo, hi) = (t - r.range - r.offset, t - r.offset);
            let a = all.partition_point(|&ts| ts <= lo);
            let b = all.partition_point(|&ts| ts <= hi);
            (a == b).then_some(1.0)
        })
        .collect();
    StepMatrix {
        series: vec![(labels, values)],
    }
}

/// One optional value per step, sliding two cursors over time-sorted samples.
fn windows(r: &RangeAggregation, grid: &Grid, samples: &[(i64, f64)]) -> Vec<Option<f64>> {
    let range_s = r.range as f64 / 1e9;
    let (mut lo, mut hi) = (0usize, 0usize);
    let mut out = Vec::with_capacity(grid.steps.len());
    for &t in &grid.steps {
        let (start, end) = (t - r.range - r.offset, t - r.offset);
        while lo < samples.len() && samples[lo].0 <= start {
            lo += 1;
        }
        hi = hi.max(lo);
        while hi < samples.len() && samples[hi].0 <= end {
            hi += 1;
        }
        let w = &samples[lo..hi];
        if w.is_empty() {
            out.push(None);
            continue;
        }
        let sum = || w.iter().map(|s| s.1).sum::<f64>();
        let v = match r.op {
            RangeOp::CountOverTime => w.len() as f64,
            RangeOp::Rate => sum() / range_s,
            RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
            RangeOp::BytesRate => sum() / range_s,
            RangeOp::AvgOverTime => avg(w),
            RangeOp::MinOverTime => {
                w.iter().map(|s| s.1).fold(
                    f64::INFINITY,
                    |a, b| if b < a || b.is_nan() { b } else { a },
                )
            }
            RangeOp::MaxOverTime => w.iter().map(|s| s.1).fold(f64::NEG_INFINITY, |a, b| {
                if b > a || b.is_nan() {
                    b
                } else {
                    a
                }
            }),
            RangeOp::StdvarOverTime => stdvar(w),
            RangeOp::StddevOverTime => stdvar(w).sqrt(),
            RangeOp::QuantileOverTime => {
                quantile(r.param.unwrap_or(0.0), w.iter().map(|s| s.1).collect())
            }
            RangeOp::FirstOverTime => w[0].1,
            RangeOp::LastOverTime => w[w.len() - 1].1,
            RangeOp::RateCounter => extrapolated_rate(w, start, end, range_s),
            RangeOp::AbsentOverTime => 1.0,
        };
        out.push(Some(v));
    }
    out
}

fn avg(w: &[(i64, f64)]) -> f64 {
    // Incremental mean, as Prometheus does, to limit rounding on large sums.
    let mut mean = 0.0;
    for (i, s) in w.iter().enumerate() {
        mean += (s.1 - mean) / (i + 1) as f64;
    }
    mean
}

fn stdvar(w: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for s in w {
        count += 1.0;
        let delta = s.1 - mean;
        mean += delta / count;
        m2 += delta * (s.1 - mean);
    }
    m2 / count
}

/// Prometheus `quantile`: linear interpolation between the closest ranks.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Prometheus' extrapolated counter rate (handles resets), per second.
fn extrapolated_rate(w: &[(i64, f64)], range_start: i64, range_end: i64, range_s: f64) -> f64 {
    if w.len() < 2 {
        return 0.0;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut result = last.1 - first.1;
    for pair in w.windows(2) {
        if pair[1].1 < pair[0].1 {
            result += pair[0].1;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1e9;
    let to_end = (range_end - last.0) as f64 / 1e9;
    let sampled = (last.0 - first.0) as f64 / 1e9;
    if sampled <= 0.0 {
        return 0.0;
    }
    let avg_between = sampled / (w.len() - 1) as f64;
    if result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_between / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_between / 2.0
    };
    result * (interval / sampled) / range_s
}
