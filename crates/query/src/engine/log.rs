//! Log queries: k-way merge of stream cursors in the requested direction, pipeline per
//! entry, limit honoured as soon as it is reached, then grouping into result streams.

use super::{Engine, QueryParams};
use crate::logpipe::{EntryLabels, Pipeline};
use crate::result::{LogRow, QueryResult, StreamResult};
use crate::{Error, Result, SelectRequest, Step, StreamCursor};
use silt_logql::ast::LogExpr;
use silt_model::{Direction, Entry, Labels};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

pub(super) fn eval(engine: &Engine<'_>, l: &LogExpr, p: &QueryParams<'_>) -> Result<QueryResult> {
    if p.limit > engine.limits().max_entries {
        return Err(Error::LimitExceeded(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
            p.limit,
            engine.limits().max_entries
        )));
    }
    let req = SelectRequest {
        tenant: p.tenant,
        matchers: &l.selector,
        start: p.start,
        end: p.end,
        direction: p.direction,
        lines: true,
        // An invalid filter is reported by the pipeline below, after the select.
        line_filter: crate::logpipe::line_prefilter(&l.pipeline).ok().flatten(),
        stats: engine.stats().clone(),
    };
    crate::stats::add(&engine.stats().splits, 1);
    let cursors = engine.source().select(&req)?;
    if cursors.is_empty() {
        return Ok(QueryResult::Streams(Vec::new()));
    }
    // Built only once a stream matched: Loki answers an empty result, not an error,
    // for an invalid line-filter regex when nothing matches the selector.
    let pipeline = Pipeline::new(&l.pipeline)?;
    let rows = merge(engine, cursors, &pipeline, p)?;
    Ok(QueryResult::Streams(group_streams(rows, p.categorize)))
}

/// The next entry of a stream, or (`entry: None`) only a bound on it: streams start
/// reading when the merge reaches their bound, so a limit is met without touching
/// streams whose entries all come later.
struct Head {
    key: i64,
    stream: usize,
    entry: Option<Entry>,
}

impl PartialEq for Head {
    fn eq(&self, o: &Self) -> bool {
        (self.key, self.stream) == (o.key, o.stream)
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Head {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.key, self.stream).cmp(&(o.key, o.stream))
    }
}

fn merge(
    engine: &Engine<'_>,
    mut cursors: Vec<StreamCursor>,
    pipeline: &Pipeline,
    p: &QueryParams<'_>,
) -> Result<Vec<LogRow>> {
    let forward = p.direction == Direction::Forward;
    let key = |ts: i64| if forward { ts } else { -ts };
    let head = |s: Step, stream: usize| match s {
        Step::Entry(e) => Head {
            key: key(e.ts),
            stream,
            entry: Some(e),
        },
        Step::Bound(b) => Head {
            key: key(b),
            stream,
            entry: None,
        },
    };
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some(b) = c.bound {
            heap.push(Reverse(Head {
                key: key(b),
                stream: i,
                entry: None,
            }));
        } else if let Some(s) = c.entries.step() {
            heap.push(Reverse(head(s?, i)));
        }
    }
    let mut rows = Vec::new();
    let mut last_kept: HashMap<usize, i64> = HashMap::new();
    let mut n = 0u64;
    while let Some(Reverse(h)) = heap.pop() {
        n += 1;
        if n.is_multiple_of(4096) {
            engine.check_deadline()?;
        }
        let c = &mut cursors[h.stream];
        if let Some(s) = c.entries.step() {
            heap.push(Reverse(head(s?, h.stream)));
        }
        // A bound reached: its first entry now takes its real place in the merge.
        let Some(e) = h.entry else {
            continue;
        };
        if p.interval > 0 {
            if let Some(&last) = last_kept.get(&h.stream) {
                let gap = if forward { e.ts - last } else { last - e.ts };
                if gap < p.interval {
                    continue;
                }
            }
        }
        let labels = EntryLabels::new(c.labels.clone(), e.metadata);
        let Some((line, labels)) = pipeline.process(e.ts, &e.line, labels) else {
            continue;
        };
        crate::stats::add(&engine.stats().post_filter_lines, 1);
        last_kept.insert(h.stream, e.ts);
        rows.push(LogRow {
            ts: e.ts,
            line,
            labels,
        });
        if rows.len() >= p.limit {
            break;
        }
    }
    Ok(rows)
}

/// Groups rows (already in result order) into streams: by all labels, or by indexed
/// labels only when categorized. Streams come out sorted by labels.
pub fn group_streams(rows: Vec<LogRow>, categorize: bool) -> Vec<StreamResult> {
    let mut out = group_rows(rows, categorize);
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

/// [`group_streams`] with streams in order of their first row (live tail frames).
pub fn group_rows(rows: Vec<LogRow>, categorize: bool) -> Vec<StreamResult> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StreamResult> = Vec::new();
    for r in rows {
        let labels = if categorize {
            (*r.labels.stream).clone()
        } else {
            r.labels.flatten()
        };
        let i = *index.entry(labels.clone()).or_insert_with(|| {
            out.push(StreamResult {
                labels,
                rows: Vec::new(),
            });
            out.len() - 1
        });
        out[i].rows.push(r);
    }
    out
}
