//! The data-source contract the engine reads through.

use crate::Result;
use crate::Stats;
use silt_model::{Direction, Entry, LabelMatcher, Labels, Timestamp};
use std::sync::Arc;

/// What to read: streams of one tenant matching all matchers, entries in `[start, end)`.
#[derive(Clone, Debug)]
pub struct SelectRequest<'a> {
    /// Tenant whose data is read; sources must never return another tenant's data.
    pub tenant: &'a str,
    /// Stream selector matchers (all must match the stream's indexed labels).
    pub matchers: &'a [LabelMatcher],
    /// Inclusive start, ns.
    pub start: Timestamp,
    /// Exclusive end, ns.
    pub end: Timestamp,
    /// Order in which each cursor yields entries.
    pub direction: Direction,
    /// Whether entry lines are needed; when false a source may return empty lines
    /// (metric queries without a pipeline only count entries).
    pub lines: bool,
    /// The query's leading line filters: a source may leave out entries whose line fails
    /// it (before building them), or return them anyway; the engine re-checks.
    pub line_filter: Option<LinePredicate>,
    /// Where the source counts what it reads (lines, bytes, pages, slices).
    pub stats: Arc<Stats>,
}

/// A shareable test on a line (the leading `|=`/`|~`/… stages of a pipeline), with what
/// it implies as data for content indexes.
#[derive(Clone)]
pub struct LinePredicate {
    test: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    required: Arc<[crate::needles::Clause]>,
}

impl LinePredicate {
    /// A predicate that implies nothing a content index could use.
    pub fn new(test: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        LinePredicate {
            test: Arc::new(test),
            required: Arc::new([]),
        }
    }

    /// Adds clauses every kept line satisfies: for each, the line contains one of its
    /// needles, ASCII case ignored (see [`crate::needles`]).
    pub fn with_required(mut self, required: Vec<crate::needles::Clause>) -> Self {
        self.required = required.into();
        self
    }

    /// Whether `line` may be kept.
    pub fn test(&self, line: &str) -> bool {
        (self.test)(line)
    }

    /// Clauses every kept line satisfies (empty: nothing known).
    pub fn required(&self) -> &[crate::needles::Clause] {
        &self.required
    }
}

impl std::fmt::Debug for LinePredicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinePredicate")
    }
}

/// What a cursor yields when stepped.
pub enum Step {
    Entry(Entry),
    /// Nothing comes earlier in the cursor's direction than this timestamp, and finding
    /// out more means reading another part: the merge resumes the cursor only when it
    /// reaches that point, so parts a limited query never needs are not read.
    Bound(Timestamp),
}

/// A stream's entries in order; `step` may also report progress without an entry.
pub trait EntryCursor: Iterator<Item = Result<Entry>> + Send {
    /// The next entry, or a [`Step::Bound`] before reading further.
    fn step(&mut self) -> Option<Result<Step>> {
        self.next().map(|r| r.map(Step::Entry))
    }
}

/// An iterator as a cursor that never reports bounds.
pub struct Entries<I>(pub I);

impl<I: Iterator<Item = Result<Entry>> + Send> Iterator for Entries<I> {
    type Item = Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl<I: Iterator<Item = Result<Entry>> + Send> EntryCursor for Entries<I> {}

/// One matching stream and its entries.
pub struct StreamCursor {
    /// Indexed labels of the stream.
    pub labels: Arc<Labels>,
    /// Entries within the requested range, ordered by `direction` (ties keep
    /// insertion order), with exact duplicates (same ts, line, metadata) removed.
    pub entries: Box<dyn EntryCursor>,
    /// No entry comes earlier in `direction` than this (the newest possible timestamp going
    /// backward, the oldest going forward), when the source knows it without reading. A
    /// limited log query then starts reading a stream only once the merge reaches it.
    pub bound: Option<Timestamp>,
}

/// One stream's entry timestamps, ascending.
pub type StreamTimestamps = (Arc<Labels>, Vec<Timestamp>);

/// Anything the engine can query: storage, or an in-memory source in tests.
pub trait LogSource: Send + Sync {
    /// Cursors for every stream matching the request.
    fn select(&self, req: &SelectRequest<'_>) -> Result<Vec<StreamCursor>>;

    /// The timestamps of every matching stream's entries (those `select` would yield,
    /// duplicates and deleted entries excluded), for counts that need nothing else; only
    /// when no entry carries structured metadata named in `metadata`. `None`: the source
    /// cannot tell without entries, and the engine uses `select`.
    fn timestamps(
        &self,
        _req: &SelectRequest<'_>,
        _metadata: &[String],
    ) -> Result<Option<Vec<StreamTimestamps>>> {
        Ok(None)
    }

    /// About how many entries `select` would read for these streams in `[start, end)`
    /// (an upper bound is fine), when the source knows without reading: the engine sizes
    /// its time slices by it. `None`: slices follow data time.
    fn entries_hint(
        &self,
        _tenant: &str,
        _matchers: &[LabelMatcher],
        _start: Timestamp,
        _end: Timestamp,
    ) -> Option<u64> {
        None
    }

    /// The entries `select` would yield (duplicates and deleted entries excluded), cut in
    /// up to `n` shards of about equal size to be lent one by one without building cursors:
    /// for aggregations that do not depend on order, one shard per thread. Only the
    /// structured metadata named in `metadata` must be filled in (`None`: all of it);
    /// entries failing the request's line filter may be left out. `None`: the source
    /// cannot, and the engine uses `select`.
    fn shards(
        &self,
        _req: &SelectRequest<'_>,
        _n: usize,
        _metadata: Option<&[String]>,
    ) -> Result<Option<Box<dyn Shards>>> {
        Ok(None)
    }
}

/// A request's entries in shards, planned once so the shards cut one snapshot.
pub trait Shards: Send + Sync {
    /// How many shards.
    fn count(&self) -> usize;
    /// Lends the entries of shard `i` to `f`, each stream part in time order; stops at
    /// the first error of `f` and returns it.
    fn visit(&self, i: usize, f: &mut Visitor<'_>) -> Result<()>;
}

/// What [`Shards::visit`] calls for each entry: its stream, timestamp, line (empty when
/// the request asks for no lines) and structured metadata.
pub type Visitor<'v> = dyn FnMut(&Arc<Labels>, Timestamp, &str, Labels) -> Result<()> + 'v;

/// The pairs of `metadata` named in `names` (`None`: all).
pub fn metadata_named(metadata: &Labels, names: Option<&[String]>) -> Labels {
    match names {
        None => metadata.clone(),
        Some(names) => Labels::from_sorted_unchecked(
            metadata
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    }
}

/// A `LogSource` over streams held in memory, for tests and small tools.
#[derive(Default, Clone)]
pub struct MemorySource {
    streams: Vec<(Arc<Labels>, Vec<Entry>)>,
}

impl MemorySource {
    /// Empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds entries to the stream with `labels` (created if new); keeps time order.
    pub fn push(&mut self, labels: Labels, entries: impl IntoIterator<Item = Entry>) {
        let idx = match self.streams.iter().position(|(l, _)| **l == labels) {
            Some(i) => i,
            None => {
                self.streams.push((Arc::new(labels), Vec::new()));
                self.streams.len() - 1
            }
        };
        let v = &mut self.streams[idx].1;
        v.extend(entries);
        v.sort_by_key(|e| e.ts);
    }
}

impl LogSource for MemorySource {
    fn select(&self, req: &SelectRequest<'_>) -> Result<Vec<StreamCursor>> {
        let mut out = Vec::new();
        for (labels, entries) in &self.streams {
            if !req.matchers.iter().all(|m| m.matches_labels(labels)) {
                continue;
            }
            let mut sel: Vec<Entry> = Vec::new();
            for e in entries
                .iter()
                .filter(|e| e.ts >= req.start && e.ts < req.end)
            {
                // Exact duplicates are stored once.
                if sel
                    .iter()
                    .rev()
                    .take_while(|p| p.ts == e.ts)
                    .any(|p| p == e)
                {
                    continue;
                }
                sel.push(e.clone());
            }
            count_memory(&req.stats, &sel);
            if req.direction == Direction::Backward {
                sel.reverse();
            }
            out.push(StreamCursor {
                labels: labels.clone(),
                bound: sel.first().map(|e| e.ts),
                entries: Box::new(Entries(sel.into_iter().map(Ok))),
            });
        }
        Ok(out)
    }

    fn shards(
        &self,
        req: &SelectRequest<'_>,
        n: usize,
        metadata: Option<&[String]>,
    ) -> Result<Option<Box<dyn Shards>>> {
        let mut streams = Vec::new();
        for c in self.select(req)? {
            let entries = c.entries.collect::<Result<Vec<_>>>()?;
            streams.push((c.labels, entries));
        }
        Ok(Some(Box::new(MemoryShards {
            streams,
            n: n.max(1),
            metadata: metadata.map(<[String]>::to_vec),
        })))
    }
}

/// [`MemorySource`]'s streams, shard `i` holding every `n`th from the `i`th.
struct MemoryShards {
    streams: Vec<(Arc<Labels>, Vec<Entry>)>,
    n: usize,
    metadata: Option<Vec<String>>,
}

impl Shards for MemoryShards {
    fn count(&self) -> usize {
        self.n
    }

    fn visit(&self, i: usize, f: &mut Visitor<'_>) -> Result<()> {
        for (labels, entries) in self.streams.iter().skip(i).step_by(self.n) {
            for e in entries {
                let md = metadata_named(&e.metadata, self.metadata.as_deref());
                f(labels, e.ts, &e.line, md)?;
            }
        }
        Ok(())
    }
}

/// Counts entries read from memory (a head or a test source) as processed.
pub fn count_memory(stats: &Stats, entries: &[Entry]) {
    let md: usize = entries
        .iter()
        .flat_map(|e| e.metadata.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    crate::stats::add(&stats.head_lines, entries.len() as u64);
    crate::stats::add(
        &stats.head_bytes,
        entries.iter().map(|e| e.line.len() as u64).sum(),
    );
    crate::stats::add(&stats.head_metadata_bytes, md as u64);
    crate::stats::add(&stats.chunks_ref, u64::from(!entries.is_empty()));
}
