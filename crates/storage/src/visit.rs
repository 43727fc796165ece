//! Entries lent one at a time ([`silt_query::LogSource::shards`]): segments are read batch
//! by batch without building entries or holding a slice of them, only the structured
//! metadata the query can read is decoded, and the work is cut in shards of about equal
//! rows along the segments' row order, so no page is decoded by two shards but at a cut.
//!
//! The entries must be exactly those [`crate::StoreSource`]'s cursors yield, so every case
//! where they might not falls back (`None`): pending deletes on a stream, and parts of a
//! stream that overlap in time (exact duplicates across them are dropped by the merge).

use crate::scan;
use crate::segment::SegmentMeta;
use crate::Store;
use silt_model::{Entry, Labels, Timestamp};
use silt_query::source::metadata_named;
use silt_query::stats::{add, Stats};
use silt_query::{LinePredicate, SelectRequest, Shards, Visitor};
use std::collections::HashMap;
use std::sync::Arc;

/// A stream's slice of one segment.
struct SegmentStream {
    seg: usize,
    idx: usize,
    labels: Arc<Labels>,
}

/// One snapshot of a request's parts, cut in shards.
pub(crate) struct Plan {
    store: Arc<Store>,
    range: (Timestamp, Timestamp),
    lines: bool,
    filter: Option<LinePredicate>,
    metadata: Option<Vec<String>>,
    stats: Arc<Stats>,
    segments: Vec<Arc<SegmentMeta>>,
    shards: Vec<Shard>,
}

/// Segment slices in row order, and head parts.
#[derive(Default)]
struct Shard {
    slices: Vec<SegmentStream>,
    heads: Vec<(Arc<Labels>, Vec<Entry>)>,
}

impl Store {
    /// The plan of `req` in up to `n` shards, or `None` when the merge is needed.
    pub(crate) fn visit_plan(
        self: &Arc<Self>,
        req: &SelectRequest<'_>,
        n: usize,
        metadata: Option<&[String]>,
        extra: Option<&crate::unflushed::Overlay>,
    ) -> crate::Result<Option<Plan>> {
        let range = (req.start, req.end);
        let deletes = self.tenant_deletes(req.tenant);
        let mut spans: HashMap<Arc<Labels>, Vec<(Timestamp, Timestamp)>> = HashMap::new();
        let mut segments: Vec<Arc<SegmentMeta>> = Vec::new();
        let mut slices: Vec<(SegmentStream, u64)> = Vec::new();
        let mut heads: Vec<(Arc<Labels>, Vec<Entry>)> = Vec::new();
        {
            let st = self.state.read();
            let mut index: HashMap<String, usize> = HashMap::new();
            Self::for_each_segment_stream(&st, req.tenant, req.matchers, range, |m, i, l| {
                let labels = Arc::new(l);
                let s = &m.streams[i];
                spans
                    .entry(labels.clone())
                    .or_default()
                    .push((s.min_ts, s.max_ts));
                let seg = *index.entry(m.id.clone()).or_insert_with(|| {
                    segments.push(m.clone());
                    segments.len() - 1
                });
                slices.push((
                    SegmentStream {
                        seg,
                        idx: i,
                        labels,
                    },
                    s.rows,
                ));
            });
            self.for_each_head_stream(&st, extra, req.tenant, req.matchers, range, |labels, hs| {
                let entries = hs.range(req.start, req.end);
                if let (Some(a), Some(b)) = (entries.first(), entries.last()) {
                    spans.entry(labels.clone()).or_default().push((a.ts, b.ts));
                    heads.push((labels.clone(), entries));
                }
            });
        }
        for (labels, ps) in spans.iter_mut() {
            if deletes
                .iter()
                .any(|d| d.touches(labels, req.start, req.end))
            {
                return Ok(None);
            }
            ps.sort_unstable();
            if ps.windows(2).any(|w| w[1].0 <= w[0].1) {
                return Ok(None);
            }
        }
        // Row order of the files: segment, then stream index.
        slices.sort_by_key(|(s, _)| (s.seg, s.idx));
        let n = n.max(1);
        let total: u64 = slices.iter().map(|(_, rows)| rows).sum();
        let mut shards: Vec<Shard> = (0..n).map(|_| Shard::default()).collect();
        let mut before = 0u64;
        for (s, rows) in slices {
            let i = ((before as u128 * n as u128) / total.max(1) as u128) as usize;
            shards[i.min(n - 1)].slices.push(s);
            before += rows;
        }
        for (k, h) in heads.into_iter().enumerate() {
            shards[k % n].heads.push(h);
        }
        Ok(Some(Plan {
            store: self.clone(),
            range,
            lines: req.lines,
            filter: req.line_filter.clone().filter(|_| req.lines),
            metadata: metadata.map(<[String]>::to_vec),
            stats: req.stats.clone(),
            segments,
            shards,
        }))
    }
}

impl Shards for Plan {
    fn count(&self) -> usize {
        self.shards.len()
    }

    fn visit(&self, i: usize, f: &mut Visitor<'_>) -> silt_query::Result<()> {
        let Some(Shard { slices, heads }) = self.shards.get(i) else {
            return Ok(());
        };
        let md = self.metadata.as_deref();
        for (labels, entries) in heads {
            silt_query::source::count_memory(&self.stats, entries);
            for e in entries {
                if self.filter.as_ref().is_some_and(|p| !p.test(&e.line)) {
                    continue;
                }
                let line = if self.lines { e.line.as_str() } else { "" };
                f(labels, e.ts, line, metadata_named(&e.metadata, md))?;
            }
        }
        for run in slices.chunk_by(|a, b| a.seg == b.seg) {
            self.visit_segment(run, f)?;
        }
        Ok(())
    }
}

impl Plan {
    /// The rows of one segment's slices.
    fn visit_segment(&self, run: &[SegmentStream], f: &mut Visitor<'_>) -> silt_query::Result<()> {
        let meta = &self.segments[run[0].seg];
        let wanted: Vec<usize> = run.iter().map(|s| s.idx).collect();
        let labels: HashMap<usize, &Arc<Labels>> = run.iter().map(|s| (s.idx, &s.labels)).collect();
        let stats = &self.stats;
        add(&stats.chunks_ref, wanted.len() as u64);
        let started = std::time::Instant::now();
        let opened = self
            .store
            .open_wanted(meta, &wanted, self.filter.as_ref(), stats);
        let Some((file, fm, only)) = opened.map_err(to_query)? else {
            return Ok(());
        };
        let slices = scan::Slices {
            seg: meta,
            wanted: &wanted,
            range: self.range,
            only: only.as_deref(),
        };
        let mut failed = None;
        scan::visit_rows(
            file,
            &fm,
            slices,
            (self.lines, self.filter.as_ref()),
            self.metadata.as_deref(),
            stats,
            |i, ts, line, md| {
                let Some(stream) = labels.get(&i) else {
                    return true;
                };
                match f(stream, ts, line, md) {
                    Ok(()) => true,
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
            },
        )
        .map_err(to_query)?;
        add(&stats.download_ns, started.elapsed().as_nanos() as u64);
        failed.map_or(Ok(()), Err)
    }
}

fn to_query(e: crate::Error) -> silt_query::Error {
    silt_query::Error::Source(e.to_string())
}
