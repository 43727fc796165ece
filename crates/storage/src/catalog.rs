//! The label/stream index: which segments hold which streams over which time.

use crate::segment::SegmentMeta;
use silt_model::{LabelMatcher, Labels, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;

/// Time bounds of a stream across segments.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Smallest timestamp.
    pub min_ts: Timestamp,
    /// Largest timestamp.
    pub max_ts: Timestamp,
}

impl Bounds {
    /// Whether `[start, end)` overlaps the closed interval `[min_ts, max_ts]`.
    pub fn overlaps(&self, start: Timestamp, end: Timestamp) -> bool {
        self.min_ts < end && self.max_ts >= start
    }

    fn widen(&mut self, min_ts: Timestamp, max_ts: Timestamp) {
        self.min_ts = self.min_ts.min(min_ts);
        self.max_ts = self.max_ts.max(max_ts);
    }
}

/// Index of one tenant's segments.
#[derive(Default, Debug)]
pub struct TenantCatalog {
    /// Segments ordered by id (creation order).
    pub segments: Vec<Arc<SegmentMeta>>,
    /// Every stream with data in some segment.
    pub streams: HashMap<Arc<Labels>, Bounds>,
    /// Highest WAL sequence covered by this tenant's segments.
    pub wal_through: u64,
}

/// Index of all tenants.
#[derive(Default, Debug)]
pub struct Catalog {
    /// Tenants by id.
    pub tenants: HashMap<String, TenantCatalog>,
}

impl Catalog {
    /// Registers a committed segment.
    pub fn add(&mut self, meta: Arc<SegmentMeta>) {
        let t = self.tenants.entry(meta.tenant.clone()).or_default();
        for s in &meta.streams {
            let labels = Arc::new(Labels::from_sorted_unchecked(s.labels.clone()));
            t.streams
                .entry(labels)
                .and_modify(|b| b.widen(s.min_ts, s.max_ts))
                .or_insert(Bounds {
                    min_ts: s.min_ts,
                    max_ts: s.max_ts,
                });
        }
        t.wal_through = t.wal_through.max(meta.wal_through);
        let pos = t.segments.partition_point(|m| m.id < meta.id);
        t.segments.insert(pos, meta);
    }

    /// Unregisters segments of `tenant` (replaced or deleted). The WAL coverage stays.
    pub fn remove(&mut self, tenant: &str, ids: &[&str]) {
        let Some(t) = self.tenants.get_mut(tenant) else {
            return;
        };
        let wal_through = t.wal_through;
        let keep: Vec<_> = t
            .segments
            .drain(..)
            .filter(|s| !ids.contains(&s.id.as_str()))
            .collect();
        *t = TenantCatalog::default();
        for s in keep {
            self.add(s);
        }
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.wal_through = t.wal_through.max(wal_through);
        }
    }

    /// Streams of `tenant` matching all `matchers` with data overlapping `[start, end)`.
    pub fn streams(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<Arc<Labels>> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        t.streams
            .iter()
            .filter(|(l, b)| b.overlaps(start, end) && matchers.iter().all(|m| m.matches_labels(l)))
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// Total objects and bytes, for metrics.
    pub fn totals(&self) -> (usize, u64, u64) {
        let mut n = 0;
        let (mut size, mut raw) = (0, 0);
        for t in self.tenants.values() {
            n += t.segments.len();
            size += t.segments.iter().map(|s| s.size).sum::<u64>();
            raw += t.segments.iter().map(|s| s.raw_bytes).sum::<u64>();
        }
        (n, size, raw)
    }
}
