//! Counts and byte sums over a pipeline in one pass: entries are lent by the source in
//! shards ([`LogSource::shards`](crate::LogSource::shards)) without building cursors or
//! owned entries, and each sample adds to the steps whose windows hold it, so neither the
//! samples nor a slice's entries are ever held.
//!
//! The answer equals [`super::range`]'s: a window's value is its number of samples (or
//! their byte sum), integers added exactly, so the order entries come in does not
//! matter, and a window without samples has no value.

use super::range::{pipeline_error, request, series_of};
use super::{series_limit, Engine, Grid, StepMatrix};
use crate::logpipe::{EntryLabels, SampleExtractor};
use crate::Result;
use silt_logql::ast::{Grouping, RangeAggregation, RangeOp};
use silt_model::Labels;
use std::collections::HashMap;

/// One series' samples: kept as `(ts, value)` while few, as difference arrays over the
/// steps (sample counts and value sums) once those are smaller, so a series costs no
/// more than the sample path's and no more than the steps.
#[derive(Default)]
struct Acc {
    few: Vec<(i64, i64)>,
    dense: Option<(Vec<i64>, Vec<i64>)>,
}

impl Acc {
    fn add(&mut self, w: &Windows<'_>, ts: i64, v: i64) {
        if let Some((n, sum)) = &mut self.dense {
            // Steps t with t - range - offset < ts <= t - offset.
            let lo = w.steps.partition_point(|&t| t < ts + w.offset);
            let hi = w.steps.partition_point(|&t| t < ts + w.offset + w.range);
            if lo < hi {
                n[lo] += 1;
                n[hi] -= 1;
                sum[lo] += v;
                sum[hi] -= v;
            }
            return;
        }
        self.few.push((ts, v));
        if self.few.len() > w.steps.len() {
            self.densify(w);
        }
    }

    fn densify(&mut self, w: &Windows<'_>) {
        if self.dense.is_none() {
            let zeros = vec![0; w.steps.len() + 1];
            self.dense = Some((zeros.clone(), zeros));
            for (ts, v) in std::mem::take(&mut self.few) {
                self.add(w, ts, v);
            }
        }
    }

    fn absorb(&mut self, w: &Windows<'_>, other: Acc) {
        if let Some((n, sum)) = &other.dense {
            self.densify(w);
            if let Some((a, b)) = &mut self.dense {
                for (x, y) in a.iter_mut().zip(n).chain(b.iter_mut().zip(sum)) {
                    *x += y;
                }
            }
        }
        for (ts, v) in other.few {
            self.add(w, ts, v);
        }
    }
}

/// The grid and window of the aggregation.
struct Windows<'g> {
    steps: &'g [i64],
    range: i64,
    offset: i64,
}

/// The answer, or `None` when the op or the source needs the sample path.
pub(super) fn eval(
    engine: &Engine<'_>,
    r: &RangeAggregation,
    tenant: &str,
    grid: &Grid,
    pushdown: Option<&Grouping>,
) -> Result<Option<StepMatrix>> {
    let bytes = match r.op {
        RangeOp::CountOverTime | RangeOp::Rate => false,
        RangeOp::BytesOverTime | RangeOp::BytesRate => true,
        _ => return Ok(None),
    };
    if !engine.fast_paths() || r.unwrap.is_some() || grid.steps.is_empty() {
        return Ok(None);
    }
    let series = r.grouping.as_ref().or(pushdown);
    let extractor = SampleExtractor::grouped(r, series)?;
    let metadata = extractor.metadata_read();
    let n = (engine.limits().parallelism * 2).max(1);
    let w = Windows {
        steps: &grid.steps,
        range: r.range,
        offset: r.offset,
    };
    let req = request(engine, r, tenant, grid);
    let Some(shards) = engine.source().shards(&req, n, metadata.as_deref())? else {
        return Ok(None);
    };
    let read = |j: usize| -> Result<HashMap<Labels, Acc>> {
        let mut accs: HashMap<Labels, Acc> = HashMap::new();
        let mut seen = 0u64;
        let mut visit = |stream: &std::sync::Arc<Labels>, ts: i64, line: &str, md: Labels| {
            seen += 1;
            if seen.is_multiple_of(4096) {
                engine.check_deadline()?;
            }
            let labels = EntryLabels::new(stream.clone(), md);
            let Some((labels, v)) = extractor.extract(ts, line, labels) else {
                return Ok(());
            };
            crate::stats::add(&engine.stats().post_filter_lines, 1);
            let v = if bytes { v as i64 } else { 1 };
            let key = series_of(&labels, series);
            if let Some(acc) = accs.get_mut(&key) {
                acc.add(&w, ts, v);
                return Ok(());
            }
            let max = engine.limits().max_series;
            if accs.len() >= max {
                return Err(series_limit(max));
            }
            accs.entry(key).or_default().add(&w, ts, v);
            Ok(())
        };
        crate::stats::add(&engine.stats().splits, 1);
        shards.visit(j, &mut visit)?;
        Ok(accs)
    };
    let parts = engine.parallel(shards.count(), read)?;
    let mut total: HashMap<Labels, Acc> = HashMap::new();
    for part in parts {
        for (key, acc) in part {
            if !total.contains_key(&key) && total.len() >= engine.limits().max_series {
                return Err(series_limit(engine.limits().max_series));
            }
            total.entry(key).or_default().absorb(&w, acc);
        }
    }
    finish(r, &w, total).map(Some)
}

fn finish(
    r: &RangeAggregation,
    w: &Windows<'_>,
    total: HashMap<Labels, Acc>,
) -> Result<StepMatrix> {
    let range_s = r.range as f64 / 1e9;
    let mut out = StepMatrix::default();
    for (labels, mut acc) in total {
        acc.densify(w);
        let Some((dn, dsum)) = acc.dense else {
            continue;
        };
        let (mut n, mut sum) = (0i64, 0i64);
        let mut values = Vec::with_capacity(w.steps.len());
        for i in 0..w.steps.len() {
            n += dn[i];
            sum += dsum[i];
            values.push((n > 0).then(|| match r.op {
                RangeOp::CountOverTime => n as f64,
                RangeOp::Rate => n as f64 / range_s,
                RangeOp::BytesOverTime => sum as f64,
                _ => sum as f64 / range_s,
            }));
        }
        if values.iter().all(Option::is_none) {
            continue;
        }
        pipeline_error(&labels)?;
        out.series.push((labels, values));
    }
    Ok(out)
}
