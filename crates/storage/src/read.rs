//! The read path: streams, labels and stats over head, frozen heads and segments.

use crate::head::HeadStream;
use crate::ranged::SegmentFile;
use crate::segment::SegmentMeta;
use crate::unflushed::Overlay;
use crate::{content, scan};
use crate::{Error, Result, State, Store};
use parking_lot::Mutex;
use silt_model::{Direction, Entry, LabelMatcher, Labels, Timestamp};
use silt_query::stats::{self, Stats};
use silt_query::{EntryCursor, LinePredicate, LogSource, SelectRequest, Step, StreamCursor};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Answer of `/index/stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Streams.
    pub streams: u64,
    /// Chunks (stream slices of segments, plus head streams).
    pub chunks: u64,
    /// Raw bytes.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
}

/// Size of one stored piece of a stream (a segment slice or a head stream), from the
/// index alone: what `/index/volume` adds up.
#[derive(Debug, Clone)]
pub struct SliceStats {
    /// The stream.
    pub labels: Arc<Labels>,
    /// Raw line bytes.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
    /// Oldest entry, ns.
    pub min_ts: Timestamp,
    /// Newest entry, ns.
    pub max_ts: Timestamp,
}

/// A piece of one stream: already in memory (head) or a slice of a segment.
enum Part {
    Loaded(Vec<Entry>),
    Segment { read: Arc<SegmentRead>, idx: usize },
}

/// The slices one query needs from one segment, read together on first use so pages
/// shared by neighbouring streams are decoded once; each cursor then takes its own.
struct SegmentRead {
    meta: Arc<SegmentMeta>,
    wanted: Vec<usize>,
    range: (Timestamp, Timestamp),
    /// Set by the plan when a stream's parts overlap (see [`Store::plan`]).
    lines: AtomicBool,
    filter: Option<LinePredicate>,
    stats: Arc<Stats>,
    data: Mutex<Option<HashMap<usize, Vec<Entry>>>>,
}

impl SegmentRead {
    fn take(&self, store: &Store, idx: usize) -> Result<Vec<Entry>> {
        let mut data = self.data.lock();
        if data.is_none() {
            let started = std::time::Instant::now();
            *data = Some(store.read_segment(
                &self.meta,
                &self.wanted,
                self.range,
                self.lines.load(Ordering::Relaxed),
                self.filter.as_ref(),
                &self.stats,
            )?);
            stats::add(&self.stats.download_ns, started.elapsed().as_nanos() as u64);
        }
        Ok(data
            .as_mut()
            .and_then(|d| d.remove(&idx))
            .unwrap_or_default())
    }
}

/// A segment's file, its footer, and the only rows worth reading (`None`: all).
pub(crate) type OpenedSegment = (SegmentFile, scan::FileMeta, Option<Vec<(usize, usize)>>);

struct PartRef {
    part: Part,
    min_ts: Timestamp,
    max_ts: Timestamp,
}

fn matches_all(matchers: &[LabelMatcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

impl Store {
    /// Calls `f` for every head stream (frozen heads, then the active one, then `extra`:
    /// other writers' unflushed data) of `tenant` matching `matchers` with data
    /// overlapping `[start, end)`. `st` is the held state lock.
    pub(crate) fn for_each_head_stream(
        &self,
        st: &State,
        extra: Option<&Overlay>,
        tenant: &str,
        matchers: &[LabelMatcher],
        (start, end): (Timestamp, Timestamp),
        mut f: impl FnMut(&Arc<Labels>, &mut HeadStream),
    ) {
        for head in st
            .frozen
            .iter()
            .map(|f| &f.head)
            .chain(std::iter::once(&*self.active))
            .chain(extra.map(|o| &o.head))
        {
            let mut head = head.lock();
            let Some(th) = head.tenants.get_mut(tenant) else {
                continue;
            };
            for (labels, hs) in th.streams.iter_mut() {
                if !hs.is_empty()
                    && hs.max_ts >= start
                    && hs.min_ts < end
                    && matches_all(matchers, labels)
                {
                    f(labels, hs);
                }
            }
        }
    }

    /// Calls `f(segment, stream index, labels)` for every segment slice of `tenant`
    /// matching `matchers` with data overlapping `[start, end)`.
    pub(crate) fn for_each_segment_stream(
        st: &State,
        tenant: &str,
        matchers: &[LabelMatcher],
        (start, end): (Timestamp, Timestamp),
        mut f: impl FnMut(&Arc<SegmentMeta>, usize, Labels),
    ) {
        let Some(tc) = st.catalog.tenants.get(tenant) else {
            return;
        };
        for meta in tc
            .segments
            .iter()
            .filter(|m| m.max_ts >= start && m.min_ts < end)
        {
            for (idx, s) in meta.streams.iter().enumerate() {
                if s.max_ts < start || s.min_ts >= end {
                    continue;
                }
                let labels = Labels::from_sorted_unchecked(s.labels.clone());
                if matches_all(matchers, &labels) {
                    f(meta, idx, labels);
                }
            }
        }
    }

    /// Snapshot of every part of every stream matching the request.
    fn plan(
        &self,
        req: &SelectRequest<'_>,
        extra: Option<&Overlay>,
    ) -> HashMap<Arc<Labels>, Vec<PartRef>> {
        let mut out: HashMap<Arc<Labels>, Vec<PartRef>> = HashMap::new();
        let range = (req.start, req.end);
        let st = self.state.read();
        let mut slices: Vec<(Arc<SegmentMeta>, usize, Labels)> = Vec::new();
        Self::for_each_segment_stream(&st, req.tenant, req.matchers, range, |meta, idx, labels| {
            slices.push((meta.clone(), idx, labels));
        });
        let mut reads: HashMap<String, Arc<SegmentRead>> = HashMap::new();
        for (meta, idx, _) in &slices {
            reads.entry(meta.id.clone()).or_insert_with(|| {
                Arc::new(SegmentRead {
                    meta: meta.clone(),
                    wanted: Vec::new(),
                    range,
                    lines: AtomicBool::new(req.lines),
                    filter: req.line_filter.clone(),
                    stats: req.stats.clone(),
                    data: Mutex::new(None),
                })
            });
            if let Some(r) = reads.get_mut(&meta.id).and_then(Arc::get_mut) {
                r.wanted.push(*idx);
            }
        }
        stats::add(&req.stats.chunks_ref, slices.len() as u64);
        for (meta, idx, labels) in slices {
            let s = &meta.streams[idx];
            out.entry(Arc::new(labels)).or_default().push(PartRef {
                part: Part::Segment {
                    read: reads[&meta.id].clone(),
                    idx,
                },
                min_ts: s.min_ts,
                max_ts: s.max_ts,
            });
        }
        self.for_each_head_stream(&st, extra, req.tenant, req.matchers, range, |labels, hs| {
            let mut entries = hs.range(req.start, req.end);
            silt_query::source::count_memory(&req.stats, &entries);
            if let Some(f) = &req.line_filter {
                entries.retain(|e| f.test(&e.line));
            }
            if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
                let (min_ts, max_ts) = (first.ts, last.ts);
                out.entry(labels.clone()).or_default().push(PartRef {
                    part: Part::Loaded(entries),
                    min_ts,
                    max_ts,
                });
            }
        });
        // Exact duplicates across a stream's overlapping parts (a frozen head and its new
        // segment, late entries) are recognised by line: read it even for counts.
        for parts in out.values().filter(|p| p.len() > 1) {
            let mut spans: Vec<_> = parts.iter().map(|p| (p.min_ts, p.max_ts)).collect();
            spans.sort_unstable();
            if spans.windows(2).any(|w| w[1].0 <= w[0].1) {
                for p in parts {
                    if let Part::Segment { read, .. } = &p.part {
                        read.lines.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        out
    }

    /// A segment's file (read by range on a remote backend) and its (cached) footer.
    pub(crate) fn open_segment(&self, meta: &SegmentMeta) -> Result<(SegmentFile, scan::FileMeta)> {
        let path = meta.data_path();
        let file = self.objects.segment_file(&path, meta.size, &self.rt)?;
        let cached = self.file_meta.lock().get(&path).cloned();
        let fm = match cached {
            Some(m) => m,
            None => {
                let m = scan::load_meta(&file)?;
                self.file_meta.lock().insert(path, m.clone());
                m
            }
        };
        Ok((file, fm))
    }

    pub(crate) fn read_segment(
        &self,
        meta: &SegmentMeta,
        wanted: &[usize],
        range: (Timestamp, Timestamp),
        lines: bool,
        filter: Option<&LinePredicate>,
        stats: &Stats,
    ) -> Result<HashMap<usize, Vec<Entry>>> {
        let filter = filter.filter(|_| lines);
        let Some((file, fm, only)) = self.open_wanted(meta, wanted, filter, stats)? else {
            return Ok(HashMap::new());
        };
        let slices = scan::Slices {
            seg: meta,
            wanted,
            range,
            only: only.as_deref(),
        };
        scan::read_streams(file, &fm, slices, lines, filter, stats)
    }

    /// A segment opened to read its `wanted` streams, with the rows its content index
    /// leaves for `filter` (`None`: all); `None` when no block can hold a line passing
    /// `filter`, and then the data file is not even opened. Counts what it opens.
    pub(crate) fn open_wanted(
        &self,
        meta: &SegmentMeta,
        wanted: &[usize],
        filter: Option<&LinePredicate>,
        stats: &Stats,
    ) -> Result<Option<OpenedSegment>> {
        let only = match filter {
            Some(f) if meta.content_size > 0 => self.content_rows(meta, wanted, f),
            _ => None,
        };
        if only.as_ref().is_some_and(|o| o.is_empty()) {
            stats::add(&stats.content_skipped_chunks, wanted.len() as u64);
            return Ok(None);
        }
        let (file, fm) = self.open_segment(meta)?;
        stats::add(&stats.segments, 1);
        stats::add(&stats.chunks_downloaded, wanted.len() as u64);
        Ok(Some((file, fm, only)))
    }

    /// The rows of `wanted` streams that the segment's content index cannot rule out for
    /// `filter`; `None` when the filter implies nothing or the index is unreadable (then
    /// everything is read: the index only ever saves work).
    pub(crate) fn content_rows(
        &self,
        meta: &SegmentMeta,
        wanted: &[usize],
        filter: &LinePredicate,
    ) -> Option<Vec<(usize, usize)>> {
        let clauses = content::clause_items(filter.required())?;
        let path = meta.content_path();
        let cached = self.content.lock().get(&path);
        let parsed = match cached {
            Some(idx) => Ok(idx),
            None => self
                .with_local(&path, |p| std::fs::read(p))
                .and_then(|data| content::Index::parse(&data))
                .map(|idx| {
                    let idx = Arc::new(idx);
                    self.content.lock().insert(path, idx.clone());
                    idx
                }),
        };
        match parsed {
            Ok(idx) => Some(idx.candidate_rows(wanted, &clauses)),
            Err(e) => {
                tracing::warn!(segment = %meta.id, error = %e, "content index unusable; reading the segment whole");
                None
            }
        }
    }

    /// `open` on a local copy of an object (through the cache for remote backends).
    fn with_local<T>(
        &self,
        path: &str,
        open: impl Fn(&std::path::Path) -> std::io::Result<T>,
    ) -> Result<T> {
        match open(&self.objects.local_file(path, &self.rt)?) {
            // Evicted from the cache between lookup and open: fetch it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.objects.is_local() => {
                self.objects.evict_path(path);
                Ok(open(&self.objects.local_file(path, &self.rt)?)?)
            }
            r => Ok(r?),
        }
    }

    /// Streams of `tenant` matching `matchers` with data in `[start, end)` (head and segments).
    pub fn streams(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<Arc<Labels>> {
        let st = self.state.read();
        let mut set: BTreeSet<Arc<Labels>> = st
            .catalog
            .streams(tenant, matchers, start, end)
            .into_iter()
            .collect();
        self.for_each_head_stream(&st, None, tenant, matchers, (start, end), |labels, _| {
            set.insert(labels.clone());
        });
        set.into_iter().collect()
    }

    /// Index statistics of matching streams (whole slices that overlap the range, as Loki counts chunks).
    pub fn index_stats(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: Timestamp,
        end: Timestamp,
    ) -> IndexStats {
        let mut stats = IndexStats::default();
        let mut seen: BTreeSet<Arc<Labels>> = BTreeSet::new();
        let st = self.state.read();
        Self::for_each_segment_stream(&st, tenant, matchers, (start, end), |meta, idx, labels| {
            let s = &meta.streams[idx];
            stats.chunks += 1;
            stats.bytes += s.bytes;
            stats.entries += s.rows;
            seen.insert(Arc::new(labels));
        });
        self.for_each_head_stream(&st, None, tenant, matchers, (start, end), |labels, hs| {
            stats.chunks += 1;
            stats.bytes += hs.bytes as u64;
            stats.entries += hs.len() as u64;
            seen.insert(labels.clone());
        });
        stats.streams = seen.len() as u64;
        stats
    }
}

impl Store {
    /// Every slice of matching streams overlapping `[start, end)`, counted whole.
    pub fn stream_slices(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<SliceStats> {
        let mut out = Vec::new();
        let st = self.state.read();
        Self::for_each_segment_stream(&st, tenant, matchers, (start, end), |meta, idx, labels| {
            let s = &meta.streams[idx];
            out.push(SliceStats {
                labels: Arc::new(labels),
                bytes: s.bytes,
                entries: s.rows,
                min_ts: s.min_ts,
                max_ts: s.max_ts,
            });
        });
        self.for_each_head_stream(&st, None, tenant, matchers, (start, end), |labels, hs| {
            out.push(SliceStats {
                labels: labels.clone(),
                bytes: hs.bytes as u64,
                entries: hs.len() as u64,
                min_ts: hs.min_ts,
                max_ts: hs.max_ts,
            });
        });
        out
    }
}

/// The store as a query-engine data source.
#[derive(Clone)]
pub struct StoreSource(pub Arc<Store>);

impl LogSource for StoreSource {
    fn entries_hint(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Option<u64> {
        Some(self.0.index_stats(tenant, matchers, start, end).entries)
    }

    fn timestamps(
        &self,
        req: &SelectRequest<'_>,
        metadata: &[String],
    ) -> silt_query::Result<Option<Vec<silt_query::source::StreamTimestamps>>> {
        self.timestamps_with(req, metadata, None)
    }

    fn shards(
        &self,
        req: &SelectRequest<'_>,
        n: usize,
        metadata: Option<&[String]>,
    ) -> silt_query::Result<Option<Box<dyn silt_query::Shards>>> {
        self.shards_with(req, n, metadata, None)
    }

    fn select(&self, req: &SelectRequest<'_>) -> silt_query::Result<Vec<StreamCursor>> {
        self.select_with(req, None)
    }
}

/// The [`LogSource`] calls with other writers' unflushed data (`extra`) read as one more
/// head (`target: read`).
impl StoreSource {
    /// [`LogSource::timestamps`] with `extra`.
    pub fn timestamps_with(
        &self,
        req: &SelectRequest<'_>,
        metadata: &[String],
        extra: Option<&Overlay>,
    ) -> silt_query::Result<Option<Vec<silt_query::source::StreamTimestamps>>> {
        self.0
            .timestamps(req, metadata, extra)
            .map_err(to_query_error)
    }

    /// [`LogSource::shards`] with `extra`.
    pub fn shards_with(
        &self,
        req: &SelectRequest<'_>,
        n: usize,
        metadata: Option<&[String]>,
        extra: Option<&Overlay>,
    ) -> silt_query::Result<Option<Box<dyn silt_query::Shards>>> {
        let plan = self
            .0
            .visit_plan(req, n, metadata, extra)
            .map_err(to_query_error)?;
        Ok(plan.map(|p| Box::new(p) as Box<dyn silt_query::Shards>))
    }

    /// [`LogSource::select`] with `extra`.
    pub fn select_with(
        &self,
        req: &SelectRequest<'_>,
        extra: Option<&Overlay>,
    ) -> silt_query::Result<Vec<StreamCursor>> {
        // Pending deletes hide what they match; line filters need the lines.
        let deletes = self.0.tenant_deletes(req.tenant);
        let lines = req.lines || deletes.iter().any(|d| d.needs_lines());
        let plan = self.0.plan(
            &SelectRequest {
                lines,
                ..req.clone()
            },
            extra,
        );
        let mut streams: Vec<_> = plan.into_iter().collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(streams
            .into_iter()
            .map(|(labels, parts)| {
                let bound = if req.direction == Direction::Forward {
                    parts.iter().map(|p| p.min_ts.max(req.start)).min()
                } else {
                    parts.iter().map(|p| p.max_ts.min(req.end - 1)).max()
                };
                let cursor =
                    MergeCursor::new(self.0.clone(), parts, req.direction, req.stats.clone());
                let ds: Vec<_> = deletes
                    .iter()
                    .filter(|d| d.touches(&labels, req.start, req.end))
                    .cloned()
                    .collect();
                let entries: Box<dyn EntryCursor> = if ds.is_empty() {
                    Box::new(cursor)
                } else {
                    Box::new(Deleting { inner: cursor, ds })
                };
                StreamCursor {
                    labels,
                    entries,
                    bound,
                }
            })
            .collect())
    }
}

/// Merges the parts of one stream in time order, loading segment slices only when the
/// merge reaches them, and drops exact duplicates (same ts, line and metadata).
struct MergeCursor {
    store: Arc<Store>,
    /// Parts not loaded yet, in the order the merge reaches them (last = next).
    pending: Vec<PartRef>,
    /// Loaded parts, each reversed so `pop()` yields the next entry.
    loaded: Vec<Vec<Entry>>,
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    forward: bool,
    /// Exact duplicates can only come from overlapping parts (each part is deduplicated).
    dedup: bool,
    /// Timestamp of the entries in `emitted_at_ts`.
    current_ts: Timestamp,
    /// Identity hashes (line + metadata) of entries emitted at `current_ts`: hashing
    /// instead of cloning each entry; two distinct lines would need a 64-bit collision
    /// at the same nanosecond in the same stream to be taken for duplicates.
    emitted_at_ts: Vec<u64>,
    failed: bool,
    /// The next part's bound was reported by `step`: the next call loads it.
    bound_reported: bool,
    stats: Arc<Stats>,
}

impl MergeCursor {
    fn new(store: Arc<Store>, mut parts: Vec<PartRef>, dir: Direction, stats: Arc<Stats>) -> Self {
        let forward = dir == Direction::Forward;
        let parts_total = parts.len();
        // Sort so the part reached first is last (popped first).
        if forward {
            parts.sort_by_key(|p| Reverse(p.min_ts));
        } else {
            parts.sort_by_key(|p| p.max_ts);
        }
        MergeCursor {
            store,
            pending: parts,
            loaded: Vec::new(),
            heap: BinaryHeap::new(),
            dedup: parts_total > 1,
            forward,
            current_ts: Timestamp::MIN,
            emitted_at_ts: Vec::new(),
            failed: false,
            bound_reported: false,
            stats,
        }
    }

    /// Merge key: ascending ts going forward, descending going backward.
    fn key(&self, ts: Timestamp) -> i64 {
        if self.forward {
            ts
        } else {
            -ts
        }
    }

    fn load_next(&mut self) -> Result<()> {
        let Some(p) = self.pending.pop() else {
            return Ok(());
        };
        let mut entries = match p.part {
            Part::Loaded(v) => v,
            Part::Segment { read, idx } => read.take(&self.store, idx)?,
        };
        if self.forward {
            entries.reverse();
        }
        if let Some(first) = entries.last() {
            let k = self.key(first.ts);
            self.heap.push(Reverse((k, self.loaded.len())));
        }
        self.loaded.push(entries);
        Ok(())
    }

    /// The next entry; with `stepping`, a part's bound instead when only reading that part
    /// could tell what comes next.
    fn next_entry(&mut self, stepping: bool) -> Result<Option<Step>> {
        loop {
            // Load every part that could hold an entry before the current head of the merge.
            while let Some(p) = self.pending.last() {
                let ts = if self.forward { p.min_ts } else { p.max_ts };
                let bound = self.key(ts);
                match self.heap.peek() {
                    Some(Reverse((k, _))) if *k < bound => break,
                    None if stepping && !self.bound_reported => {
                        self.bound_reported = true;
                        return Ok(Some(Step::Bound(ts)));
                    }
                    _ => {
                        self.bound_reported = false;
                        self.load_next()?
                    }
                }
            }
            let Some(Reverse((_, i))) = self.heap.pop() else {
                return Ok(None);
            };
            let Some(e) = self.loaded[i].pop() else {
                continue;
            };
            if let Some(n) = self.loaded[i].last() {
                let k = self.key(n.ts);
                self.heap.push(Reverse((k, i)));
            } else {
                self.loaded[i] = Vec::new();
            }
            if !self.dedup {
                return Ok(Some(Step::Entry(e)));
            }
            if self.current_ts != e.ts {
                self.current_ts = e.ts;
                self.emitted_at_ts.clear();
            }
            let id = identity(&e);
            if self.emitted_at_ts.contains(&id) {
                stats::add(&self.stats.duplicates, 1);
                continue;
            }
            self.emitted_at_ts.push(id);
            return Ok(Some(Step::Entry(e)));
        }
    }

    fn checked_step(&mut self, stepping: bool) -> Option<silt_query::Result<Step>> {
        if self.failed {
            return None;
        }
        match self.next_entry(stepping) {
            Ok(s) => s.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(to_query_error(e)))
            }
        }
    }
}

impl Iterator for MergeCursor {
    type Item = silt_query::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.checked_step(false)? {
                Ok(Step::Entry(e)) => return Some(Ok(e)),
                Ok(Step::Bound(_)) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl EntryCursor for MergeCursor {
    fn step(&mut self) -> Option<silt_query::Result<Step>> {
        self.checked_step(true)
    }
}

/// A cursor without the entries pending deletes hide.
struct Deleting {
    inner: MergeCursor,
    ds: Vec<Arc<crate::deletes::Compiled>>,
}

impl Deleting {
    fn hidden(&self, e: &Entry) -> bool {
        self.ds.iter().any(|d| d.deletes(e))
    }
}

impl Iterator for Deleting {
    type Item = silt_query::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.inner.next()? {
                Ok(e) if self.hidden(&e) => continue,
                other => return Some(other),
            }
        }
    }
}

impl EntryCursor for Deleting {
    fn step(&mut self) -> Option<silt_query::Result<Step>> {
        loop {
            match self.inner.step()? {
                Ok(Step::Entry(e)) if self.hidden(&e) => continue,
                other => return Some(other),
            }
        }
    }
}

fn identity(e: &Entry) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(e.line.len() as u64).to_le_bytes());
    h.update(e.line.as_bytes());
    for (k, v) in e.metadata.iter() {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.digest()
}

fn to_query_error(e: Error) -> silt_query::Error {
    silt_query::Error::Source(e.to_string())
}
