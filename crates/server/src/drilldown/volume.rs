//! `/index/volume` and `/index/volume_range`: bytes per stream or per label from the
//! index statistics storage keeps for every segment slice and head stream, without
//! reading any line.
//!
//! `volume` counts every slice overlapping the range whole, as `/index/stats` and Loki
//! (which sums whole chunks) do, so its total equals the stats' `bytes`. Storage keeps
//! bytes per slice, not per instant: `volume_range` spreads each slice's bytes over the
//! `step` buckets in proportion to how much of the slice's `[oldest, newest]` entry span
//! falls in each (an even-rate assumption), instead of Loki's whole chunk in every
//! bucket it touches; bucket totals then add up to the bytes in range.

use crate::app::{json, ApiError, AppState};
use crate::encode::{self, QueryStats};
use crate::params::get;
use crate::query::{matchers, parse_step, read_request};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use silt_model::{LabelMatcher, Labels};
use silt_query::{QueryResult, Sample, Series};
use silt_storage::SliceStats;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const NS_PER_MS: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AggregateBy {
    Series,
    Labels,
}

struct VolumeRequest {
    tenant: String,
    matchers: Vec<LabelMatcher>,
    start: i64,
    end: i64,
    limit: usize,
    targets: Vec<String>,
    by: AggregateBy,
    params: crate::params::Params,
}

fn parse(
    state: &AppState,
    headers: &HeaderMap,
    q: Option<String>,
    body: &Bytes,
) -> Result<VolumeRequest, ApiError> {
    let r = read_request(state, headers, q, body)?;
    let query = get(&r.params, "query")
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter is required"))?;
    let matchers = matchers(Some(query), false)?;
    let limit = match get(&r.params, "limit").map(str::trim) {
        None | Some("") => 100,
        Some(s) => match s.parse::<u32>() {
            Ok(0) => 100,
            Ok(n) => n as usize,
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "cannot parse \"{s}\" to a valid limit"
                )))
            }
        },
    };
    let targets = get(&r.params, "targetLabels")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let by = match get(&r.params, "aggregateBy").unwrap_or("") {
        "" | "series" => AggregateBy::Series,
        "labels" => AggregateBy::Labels,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid aggregation option '{other}': use series or labels"
            )))
        }
    };
    Ok(VolumeRequest {
        tenant: r.tenant,
        matchers,
        start: r.start,
        end: r.end,
        limit,
        targets,
        by,
        params: r.params,
    })
}

/// The label sets a stream's bytes count toward.
fn keys(req: &VolumeRequest, labels: &Labels) -> Vec<Labels> {
    let wanted = |name: &str| -> bool {
        if !req.targets.is_empty() {
            return req.targets.iter().any(|t| t == name);
        }
        match req.by {
            // Without targets a series is named by the labels the query matched on.
            AggregateBy::Series => {
                req.matchers.is_empty() || req.matchers.iter().any(|m| m.name == name)
            }
            AggregateBy::Labels => true,
        }
    };
    match req.by {
        AggregateBy::Series => {
            let l = Labels::from_pairs(labels.iter().filter(|(k, _)| wanted(k)));
            if l.is_empty() {
                Vec::new()
            } else {
                vec![l]
            }
        }
        AggregateBy::Labels => labels
            .iter()
            .filter(|(k, _)| wanted(k))
            // `{name=""}`: from_pairs would drop the empty value.
            .map(|(k, _)| Labels::from_sorted_unchecked(vec![(k.to_string(), String::new())]))
            .collect(),
    }
}

/// Keys ordered by volume (desc), then by labels, cut to `limit`.
fn top(totals: HashMap<Labels, f64>, limit: usize) -> Vec<(Labels, f64)> {
    let mut v: Vec<_> = totals.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

fn respond(result: &QueryResult) -> Response {
    json(encode::query_response(
        result,
        false,
        &QueryStats::default(),
    ))
}

pub async fn volume(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse(&state, &headers, q, &body)?;
    let range = (req.start, req.end);
    let slices = crate::unflushed::slices(&state, &req.tenant, &req.matchers, range).await?;
    let mut totals: HashMap<Labels, f64> = HashMap::new();
    for s in &slices {
        for k in keys(&req, &s.labels) {
            *totals.entry(k).or_default() += s.bytes as f64;
        }
    }
    let ts_ms = req.end.div_euclid(NS_PER_MS);
    let samples = top(totals, req.limit)
        .into_iter()
        .map(|(labels, value)| Sample {
            labels,
            ts_ms,
            value,
        })
        .collect();
    Ok(respond(&QueryResult::Vector(samples)))
}

/// Bytes of `s` per bucket start, spread by overlap with its entry span.
fn spread(s: &SliceStats, start: i64, end: i64, step: i64, out: &mut BTreeMap<i64, f64>) {
    let lo = s.min_ts.max(start);
    let hi = s.max_ts.min(end - 1);
    if lo > hi {
        return;
    }
    let span = (s.max_ts - s.min_ts + 1) as f64;
    let mut b = lo - lo.rem_euclid(step);
    while b <= hi {
        let a = lo.max(b);
        let z = hi.min(b + step - 1);
        let share = (z - a + 1) as f64 / span;
        *out.entry(b).or_default() += s.bytes as f64 * share;
        b += step;
    }
}

pub async fn volume_range(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse(&state, &headers, q, &body)?;
    let step = parse_step(&req.params, req.start, req.end)?;
    let range = (req.start, req.end);
    let slices = crate::unflushed::slices(&state, &req.tenant, &req.matchers, range).await?;
    let mut per_key: HashMap<Labels, BTreeMap<i64, f64>> = HashMap::new();
    for s in &slices {
        let mut buckets = BTreeMap::new();
        spread(s, req.start, req.end, step, &mut buckets);
        for k in keys(&req, &s.labels) {
            let m = per_key.entry(k).or_default();
            for (b, v) in &buckets {
                *m.entry(*b).or_default() += v;
            }
        }
    }
    let totals = per_key
        .iter()
        .map(|(k, m)| (k.clone(), m.values().sum()))
        .collect();
    let end_ms = req.end.div_euclid(NS_PER_MS);
    let series = top(totals, req.limit)
        .into_iter()
        .map(|(labels, _)| {
            let points = per_key[&labels]
                .iter()
                .map(|(b, v)| (v.round(), b))
                .filter(|(v, _)| *v > 0.0)
                // Loki stamps a bucket at its last millisecond, the last one at `end`.
                .map(|(v, b)| (((b + step) / NS_PER_MS - 1).min(end_ms), v))
                .collect();
            Series { labels, points }
        })
        .collect();
    Ok(respond(&QueryResult::Matrix(series)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(bytes: u64, min_ts: i64, max_ts: i64) -> SliceStats {
        SliceStats {
            labels: Arc::new(Labels::new()),
            bytes,
            entries: 1,
            min_ts,
            max_ts,
        }
    }

    #[test]
    fn spread_is_proportional_and_sums_up() {
        let mut out = BTreeMap::new();
        spread(&slice(100, 0, 99), 0, 1000, 50, &mut out);
        assert_eq!(out, BTreeMap::from([(0, 50.0), (50, 50.0)]));
        let mut out = BTreeMap::new();
        // Only the part inside [start, end) counts.
        spread(&slice(100, 0, 99), 50, 1000, 1000, &mut out);
        assert_eq!(out, BTreeMap::from([(0, 50.0)]));
        let mut out = BTreeMap::new();
        spread(&slice(7, 5, 5), 0, 10, 3, &mut out);
        assert_eq!(out, BTreeMap::from([(3, 7.0)]));
    }
}
