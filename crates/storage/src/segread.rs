//! One query's read of one segment: the slices of every wanted stream, read together on
//! first use and shared by the streams' cursors, and read ahead of the merge on another
//! core when the segment before it in the merge's order is first used.

use crate::segment::SegmentMeta;
use crate::{Result, Store};
use parking_lot::Mutex;
use silt_model::{Entry, Timestamp};
use silt_query::stats::{self, Stats};
use silt_query::LinePredicate;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// The slices one query needs from one segment, read together on first use so pages
/// shared by neighbouring streams are decoded once; each cursor then takes its own.
pub(crate) struct SegmentRead {
    pub(crate) meta: Arc<SegmentMeta>,
    pub(crate) wanted: Vec<usize>,
    pub(crate) range: (Timestamp, Timestamp),
    /// Set by the plan when a stream's parts overlap (see `Store::plan`).
    pub(crate) lines: AtomicBool,
    pub(crate) filter: Option<LinePredicate>,
    pub(crate) stats: Arc<Stats>,
    data: Mutex<Option<Loaded>>,
    /// The segment the merge most likely reads after this one: read ahead once this one is
    /// first taken (and taken out then, so it is read ahead once, and not a whole chain).
    next: Mutex<Option<Arc<SegmentRead>>>,
}

/// A segment's entries by stream.
struct Loaded {
    entries: HashMap<usize, Vec<Entry>>,
    /// What a read ahead counted: added to the query's stats when the merge first takes
    /// from it, so stats count the segments a query used, however fast it ran.
    ahead: Option<Stats>,
}

/// Held by every cursor of one query: once they are all dropped (the query is over), a
/// read ahead still running stops.
pub(crate) type Alive = Arc<()>;

impl SegmentRead {
    pub(crate) fn new(
        meta: Arc<SegmentMeta>,
        range: (Timestamp, Timestamp),
        lines: bool,
        filter: Option<LinePredicate>,
        stats: Arc<Stats>,
    ) -> Self {
        SegmentRead {
            meta,
            wanted: Vec::new(),
            range,
            lines: AtomicBool::new(lines),
            filter,
            stats,
            data: Mutex::new(None),
            next: Mutex::new(None),
        }
    }

    /// Chains `reads`, in the order the merge reaches them, for reading ahead.
    pub(crate) fn chain(reads: &[Arc<SegmentRead>]) {
        for w in reads.windows(2) {
            *w[0].next.lock() = Some(w[1].clone());
        }
    }

    /// Stream `idx`'s entries (each stream is taken once).
    pub(crate) fn take(&self, store: &Arc<Store>, idx: usize, alive: &Alive) -> Result<Vec<Entry>> {
        if let Some(next) = self.next.lock().take() {
            if store.cfg.read_ahead {
                next.read_ahead(store.clone(), Arc::downgrade(alive));
            }
        }
        let mut data = self.data.lock();
        if data.is_none() {
            *data = Some(Loaded {
                entries: self.load(store, &self.stats, &|| true)?,
                ahead: None,
            });
        }
        let loaded = data.as_mut().expect("loaded above");
        if let Some(s) = loaded.ahead.take() {
            self.stats.add_all(&s);
        }
        Ok(loaded.entries.remove(&idx).unwrap_or_default())
    }

    fn load(
        &self,
        store: &Store,
        stats: &Stats,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<HashMap<usize, Vec<Entry>>> {
        let started = std::time::Instant::now();
        let out = store.read_segment(
            &self.meta,
            &self.wanted,
            self.range,
            (self.lines.load(Ordering::Relaxed), self.filter.as_ref()),
            stats,
            keep_going,
        )?;
        stats::add(&stats.download_ns, started.elapsed().as_nanos() as u64);
        Ok(out)
    }

    /// Reads the segment on a blocking thread unless the merge gets to it first (it then
    /// waits for the read under way). A failed read is left for the merge to redo and
    /// report; a read the query outlived is dropped.
    fn read_ahead(self: Arc<Self>, store: Arc<Store>, alive: Weak<()>) {
        let rt = store.rt.clone();
        rt.spawn_blocking(move || {
            let mut data = self.data.lock();
            if data.is_some() || alive.strong_count() == 0 {
                return;
            }
            let stats = Stats::default();
            let keep_going = || alive.strong_count() > 0;
            if let Ok(entries) = self.load(&store, &stats, &keep_going) {
                // Once every cursor is gone none comes back: a read cut short is never taken.
                if keep_going() {
                    *data = Some(Loaded {
                        entries,
                        ahead: Some(stats),
                    });
                }
            }
        });
    }
}
