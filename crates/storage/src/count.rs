//! Timestamps without entries, for pipeline-less counts (`count_over_time`, `rate` summed
//! by stream labels): segments decode only their `stream` and time columns.
//!
//! The answer must equal what counting [`crate::StoreSource`]'s entries gives, so every
//! case where it might not falls back (`None`): pending deletes on a stream, parts of a
//! stream that overlap in time (exact duplicates across them are dropped by the merge),
//! and structured metadata named in `metadata` (its value would split a series).

use crate::scan;
use crate::segment::{SegmentMeta, REST_COLUMN};
use crate::{Result, Store};
use silt_model::{Labels, Timestamp};
use silt_query::source::StreamTimestamps;
use silt_query::stats::{add, Stats};
use silt_query::SelectRequest;
use std::collections::HashMap;
use std::sync::Arc;

impl Store {
    /// Timestamps of every stream matching `req`, or `None` when only entries can answer.
    pub(crate) fn timestamps(
        &self,
        req: &SelectRequest<'_>,
        metadata: &[String],
        extra: Option<&crate::unflushed::Overlay>,
    ) -> Result<Option<Vec<StreamTimestamps>>> {
        let range = (req.start, req.end);
        let deletes = self.tenant_deletes(req.tenant);
        // Per stream: (min_ts, max_ts, where its timestamps come from).
        let mut parts: HashMap<Arc<Labels>, Vec<(Timestamp, Timestamp, Source)>> = HashMap::new();
        let mut segments: HashMap<String, (Arc<SegmentMeta>, Vec<usize>)> = HashMap::new();
        // Counted into the query's stats only if this path answers.
        let head = Stats::default();
        {
            let st = self.state.read();
            let mut slices = Vec::new();
            Self::for_each_segment_stream(&st, req.tenant, req.matchers, range, |m, i, l| {
                slices.push((m.clone(), i, l));
            });
            for (meta, idx, labels) in slices {
                let s = &meta.streams[idx];
                let (min, max) = (s.min_ts, s.max_ts);
                segments
                    .entry(meta.id.clone())
                    .or_insert_with(|| (meta.clone(), Vec::new()))
                    .1
                    .push(idx);
                let src = Source::Segment(meta.id.clone(), idx);
                parts
                    .entry(Arc::new(labels))
                    .or_default()
                    .push((min, max, src));
            }
            let mut unsure = false;
            self.for_each_head_stream(&st, extra, req.tenant, req.matchers, range, |labels, hs| {
                let c = hs.counts(req.start, req.end, metadata);
                unsure |= c.has_key;
                if let (Some(&first), Some(&last)) = (c.ts.first(), c.ts.last()) {
                    add(&head.head_lines, c.ts.len() as u64);
                    add(&head.head_bytes, c.line_bytes);
                    add(&head.head_metadata_bytes, c.metadata_bytes);
                    add(&head.chunks_ref, 1);
                    let src = Source::Head(c.ts.to_vec());
                    parts
                        .entry(labels.clone())
                        .or_default()
                        .push((first, last, src));
                }
            });
            if unsure {
                return Ok(None);
            }
        }
        for (labels, ps) in parts.iter_mut() {
            if deletes
                .iter()
                .any(|d| d.touches(labels, req.start, req.end))
            {
                return Ok(None);
            }
            ps.sort_by_key(|p| p.0);
            if ps.windows(2).any(|w| w[1].0 <= w[0].1) {
                return Ok(None);
            }
        }
        let mut opened = Vec::with_capacity(segments.len());
        for (id, (meta, wanted)) in segments {
            let (file, fm) = self.open_segment(&meta)?;
            let names = fm.schema();
            let has = |k: &str| names.index_of(&format!("md.{k}")).is_ok();
            if names.index_of(REST_COLUMN).is_ok() || metadata.iter().any(|k| has(k)) {
                return Ok(None);
            }
            opened.push((id, meta, wanted, file, fm));
        }
        let stats = &req.stats;
        stats.add_all(&head);
        let mut read: HashMap<String, HashMap<usize, Vec<Timestamp>>> = HashMap::new();
        for (id, meta, wanted, file, fm) in opened {
            let slices = scan::Slices {
                seg: &meta,
                wanted: &wanted,
                range,
                only: None,
            };
            let ts = scan::read_timestamps(file, &fm, slices, stats)?;
            read.insert(id, ts);
            add(&stats.segments, 1);
            add(&stats.chunks_ref, wanted.len() as u64);
            add(&stats.chunks_downloaded, wanted.len() as u64);
        }
        let mut out: Vec<StreamTimestamps> = parts
            .into_iter()
            .map(|(labels, ps)| {
                let mut ts = Vec::new();
                for (_, _, src) in ps {
                    match src {
                        Source::Head(v) => ts.extend(v),
                        Source::Segment(id, idx) => {
                            if let Some(v) = read.get_mut(&id).and_then(|m| m.remove(&idx)) {
                                ts.extend(v);
                            }
                        }
                    }
                }
                (labels, ts)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(out))
    }
}

/// Where a part's timestamps are.
enum Source {
    Head(Vec<Timestamp>),
    Segment(String, usize),
}
