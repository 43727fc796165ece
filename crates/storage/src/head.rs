//! The in-memory head: entries acknowledged (in the WAL) but not yet in a segment.
//!
//! Each stream keeps its entries in columnar arenas (timestamps, locations, and the
//! lines with their metadata in fixed-size chunks) so the head costs a few bytes per
//! entry beyond the data itself. Entries are appended in arrival order; the stream is
//! re-sorted lazily (stable, so equal timestamps keep arrival order) when it is read.

use crate::chunks::{Chunks, Loc, Unpacked};
use crate::codec::{Reader, StreamBatch};
use crate::Result;
use silt_model::{Entry, Labels, Timestamp};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Hashes a `u64` that is already a hash (xxh3) by passing it through.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashSeen = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// Makes room for `extra` more items, growing by a quarter of the length (at least `min`)
/// instead of doubling: a head's arenas then hold at most ~25 % unused capacity, not up
/// to 100 %, which bounds the head's memory much closer to its data. The extra copies
/// cost a few memcpys of the data per flush.
pub(crate) fn reserve<T>(v: &mut Vec<T>, extra: usize, min: usize) {
    if v.capacity() - v.len() < extra {
        v.reserve_exact(extra.max(v.len() / 4).max(min));
    }
}

/// One stream's head data.
#[derive(Debug)]
pub struct HeadStream {
    /// Indexed labels.
    pub labels: Arc<Labels>,
    ts: Vec<Timestamp>,
    loc: Vec<Loc>,
    data: Chunks,
    /// Identity hashes of held entries, for dedup.
    seen: HashSeen,
    sorted: bool,
    /// Raw bytes (line + metadata) held.
    pub bytes: usize,
    /// Smallest timestamp.
    pub min_ts: Timestamp,
    /// Largest timestamp.
    pub max_ts: Timestamp,
}

impl HeadStream {
    fn new(labels: Arc<Labels>) -> Self {
        HeadStream {
            labels,
            ts: Vec::new(),
            loc: Vec::new(),
            data: Chunks::default(),
            seen: HashSeen::default(),
            sorted: true,
            bytes: 0,
            min_ts: Timestamp::MAX,
            max_ts: Timestamp::MIN,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether the stream holds no entries.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Bytes allocated for this stream (arenas at their capacity, the dedup set).
    pub fn mem(&self) -> usize {
        // A hash set bucket is the u64 and a control byte; buckets are ~8/7 of capacity.
        std::mem::size_of::<Self>()
            + self.data.cap
            + self.data.table_mem()
            + self.ts.capacity() * 8
            + self.loc.capacity() * std::mem::size_of::<Loc>()
            + self.seen.capacity() * 9 * 8 / 7
    }

    /// Timestamp of entry `i` in the current order.
    pub(crate) fn ts(&self, i: usize) -> Timestamp {
        self.ts[i]
    }

    /// Whether entry `i` carries structured metadata.
    pub(crate) fn has_meta(&self, i: usize) -> bool {
        self.loc[i].has_meta()
    }

    /// Line and metadata pairs (sorted by name) of entry `i`, borrowed from the arena or
    /// the reader's decompressed chunk. Lines came from a `str`, so they are UTF-8.
    pub(crate) fn read<'a>(
        &'a self,
        i: usize,
        u: &'a mut Unpacked,
        pairs: &mut Vec<(&'a str, &'a str)>,
    ) -> std::borrow::Cow<'a, str> {
        let (line, meta) = self.data.parts(self.loc[i], u);
        pairs.clear();
        let mut r = Reader::new(meta);
        while !r.done() {
            let (Ok(k), Ok(v)) = (r.bytes(), r.bytes()) else {
                break;
            };
            match (std::str::from_utf8(k), std::str::from_utf8(v)) {
                (Ok(k), Ok(v)) => pairs.push((k, v)),
                _ => break,
            }
        }
        // from_utf8 checks much faster than the lossy walk, which only a damaged WAL needs.
        match std::str::from_utf8(line) {
            Ok(s) => s.into(),
            Err(_) => String::from_utf8_lossy(line),
        }
    }

    /// Entry `i` in the current order.
    pub(crate) fn entry(&self, i: usize, u: &mut Unpacked) -> Entry {
        let mut pairs = Vec::new();
        let line = self.read(i, u, &mut pairs).into_owned();
        Entry {
            ts: self.ts[i],
            line,
            metadata: Labels::from_sorted_unchecked(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    /// Identity of an entry for dedup: hash of (ts, line, encoded metadata).
    fn identity(ts: Timestamp, line: &[u8], meta: &[u8]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&ts.to_le_bytes());
        h.update(&(line.len() as u64).to_le_bytes());
        h.update(line);
        h.update(meta);
        h.digest()
    }

    /// Whether an identical entry (ts, line, metadata) is already held. A hash set answers
    /// without sorting (concurrent pushes make streams arrive out of order); a hash hit is
    /// confirmed byte for byte, which only real duplicates (client retries) pay for.
    fn contains(&mut self, ts: Timestamp, line: &[u8], meta: &[u8], hash: u64) -> bool {
        if ts > self.max_ts || ts < self.min_ts || !self.seen.contains(&hash) {
            return false;
        }
        let mut u = Unpacked::default();
        let mut same = |i: usize| self.data.parts(self.loc[i], &mut u) == (line, meta);
        if self.sorted {
            let lo = self.ts.partition_point(|&t| t < ts);
            let hi = self.ts.partition_point(|&t| t <= ts);
            (lo..hi).any(same)
        } else {
            (0..self.ts.len()).any(|i| self.ts[i] == ts && same(i))
        }
    }

    /// Appends unless an exact duplicate is held; returns whether it was added. `meta` is
    /// the encoded metadata pairs, `meta_size` their names' and values' bytes.
    fn push(
        &mut self,
        ts: Timestamp,
        line: &[u8],
        meta: &[u8],
        meta_size: usize,
        pack: bool,
    ) -> bool {
        let hash = Self::identity(ts, line, meta);
        if self.contains(ts, line, meta, hash) {
            return false;
        }
        self.seen.insert(hash);
        if ts < self.max_ts {
            self.sorted = false;
        }
        reserve(&mut self.ts, 1, 64);
        reserve(&mut self.loc, 1, 64);
        self.loc.push(self.data.put(line, meta, pack));
        self.ts.push(ts);
        self.bytes += line.len() + meta_size;
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        true
    }

    /// Sorts by timestamp, keeping arrival order among equal timestamps. Only timestamps
    /// and locations move; the data stays where it is, so memory does not change.
    pub fn sort(&mut self) {
        if self.sorted {
            return;
        }
        let mut idx: Vec<u32> = (0..self.ts.len() as u32).collect();
        idx.sort_by_key(|&i| self.ts[i as usize]);
        // Same capacities as before, so the head's memory count (`mem`) stays right.
        let mut ts = Vec::with_capacity(self.ts.capacity());
        let mut loc = Vec::with_capacity(self.loc.capacity());
        for &i in &idx {
            ts.push(self.ts[i as usize]);
            loc.push(self.loc[i as usize]);
        }
        self.ts = ts;
        self.loc = loc;
        self.sorted = true;
    }

    /// Indexes of the entries with `start <= ts < end`, once sorted.
    fn bounds(&mut self, start: Timestamp, end: Timestamp) -> std::ops::Range<usize> {
        self.sort();
        let lo = self.ts.partition_point(|&t| t < start);
        let hi = self.ts.partition_point(|&t| t < end);
        lo..hi
    }

    /// Sorted entries with `start <= ts < end`.
    pub fn range(&mut self, start: Timestamp, end: Timestamp) -> Vec<Entry> {
        let mut u = Unpacked::default();
        self.bounds(start, end)
            .map(|i| self.entry(i, &mut u))
            .collect()
    }

    /// What a count needs of the entries with `start <= ts < end`, without building them.
    pub fn counts(&mut self, start: Timestamp, end: Timestamp, keys: &[String]) -> HeadCounts<'_> {
        let r = self.bounds(start, end);
        let mut c = HeadCounts {
            ts: &[],
            line_bytes: 0,
            metadata_bytes: 0,
            has_key: false,
        };
        let mut u = Unpacked::default();
        for i in r.clone() {
            let l = self.loc[i];
            c.line_bytes += l.line_len() as u64;
            if !l.has_meta() {
                continue;
            }
            let (_, meta) = self.data.parts(l, &mut u);
            let mut md = Reader::new(meta);
            while !md.done() {
                let (Ok(k), Ok(v)) = (md.bytes(), md.bytes()) else {
                    break;
                };
                c.metadata_bytes += (k.len() + v.len()) as u64;
                c.has_key |= keys.iter().any(|n| n.as_bytes() == k);
            }
        }
        c.ts = &self.ts[r];
        c
    }
}

/// Timestamps (sorted) of a head stream's entries in a range, their line and structured
/// metadata bytes, and whether any carries metadata named by the caller.
pub struct HeadCounts<'a> {
    pub ts: &'a [Timestamp],
    pub line_bytes: u64,
    pub metadata_bytes: u64,
    pub has_key: bool,
}

/// Head data of one tenant.
#[derive(Default, Debug)]
pub struct TenantHead {
    /// Streams by labels.
    pub streams: HashMap<Arc<Labels>, HeadStream>,
    /// Raw bytes held.
    pub bytes: usize,
    /// Entries held.
    pub entries: usize,
}

/// Result of applying a batch.
#[derive(Default, Debug, Clone, Copy)]
pub struct AppendStats {
    /// Entries added.
    pub added: usize,
    /// Exact duplicates skipped.
    pub duplicates: usize,
    /// Streams that did not exist in the head before.
    pub new_streams: usize,
}

/// The head of all tenants.
#[derive(Default, Debug)]
pub struct Head {
    /// Tenants by id.
    pub tenants: HashMap<String, TenantHead>,
    /// Raw bytes held, all tenants.
    pub bytes: usize,
    /// Bytes allocated for the streams' data (see [`HeadStream::mem`]), all tenants.
    pub mem: usize,
    /// Wall-clock time (ns) of the first append since the head was created.
    pub first_append: Option<i64>,
    /// Keep full chunks uncompressed (a head written out as soon as it is built).
    pub raw_chunks: bool,
}

impl Head {
    /// Adds a tenant's batch, skipping exact duplicates.
    pub fn append(&mut self, tenant: &str, batch: Vec<StreamBatch>, now: i64) -> AppendStats {
        let mut payload = Vec::new();
        crate::codec::encode_batch(&mut payload, tenant, &batch);
        self.append_record(&payload, now)
            .expect("a batch just encoded decodes")
    }

    /// Adds the batch held by a WAL record payload (see [`crate::codec`]), skipping exact
    /// duplicates. Lines are copied once, from the record into the stream's arena.
    pub fn append_record(&mut self, payload: &[u8], now: i64) -> Result<AppendStats> {
        let mut stats = AppendStats::default();
        let mut r = Reader::new(payload);
        let tenant = std::str::from_utf8(r.bytes()?)
            .map_err(|_| crate::Error::Corrupt("invalid utf-8 tenant".into()))?;
        let th = match self.tenants.get_mut(tenant) {
            Some(t) => t,
            None => self.tenants.entry(tenant.to_string()).or_default(),
        };
        let mut added_bytes = 0;
        for _ in 0..r.count()? {
            let labels = r.labels()?;
            let hs = match th.streams.get_mut(&labels) {
                Some(s) => s,
                None => {
                    stats.new_streams += 1;
                    let l = Arc::new(labels);
                    th.streams
                        .entry(l.clone())
                        .or_insert_with(|| HeadStream::new(l))
                }
            };
            let mem_before = hs.mem();
            for _ in 0..r.count()? {
                let ts = r.timestamp()?;
                let line = r.bytes()?;
                let (meta, meta_size) = r.raw_pairs()?;
                let before = hs.bytes;
                if hs.push(ts, line, meta, meta_size, !self.raw_chunks) {
                    stats.added += 1;
                    added_bytes += hs.bytes - before;
                } else {
                    stats.duplicates += 1;
                }
            }
            self.mem = self.mem + hs.mem() - mem_before;
        }
        if !r.done() {
            return Err(crate::Error::Corrupt("trailing bytes in record".into()));
        }
        th.bytes += added_bytes;
        self.bytes += added_bytes;
        th.entries += stats.added;
        if stats.added > 0 && self.first_append.is_none() {
            self.first_append = Some(now);
        }
        Ok(stats)
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.tenants.values().all(|t| t.entries == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::CHUNK;

    fn e(ts: i64, line: &str) -> Entry {
        Entry {
            ts,
            line: line.into(),
            metadata: Labels::new(),
        }
    }

    #[test]
    fn dedup_and_out_of_order() {
        let mut h = Head::default();
        let l = Labels::from_pairs([("app", "x")]);
        let s = h.append(
            "t",
            vec![(
                l.clone(),
                vec![e(10, "a"), e(5, "b"), e(10, "a"), e(10, "c")],
            )],
            0,
        );
        assert_eq!((s.added, s.duplicates, s.new_streams), (3, 1, 1));
        let s = h.append("t", vec![(l.clone(), vec![e(5, "b"), e(7, "d")])], 0);
        assert_eq!((s.added, s.duplicates), (1, 1));
        let hs = h.tenants.get_mut("t").unwrap().streams.get_mut(&l).unwrap();
        let got: Vec<_> = hs
            .range(0, 100)
            .into_iter()
            .map(|e| (e.ts, e.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (5, "b".into()),
                (7, "d".into()),
                (10, "a".into()),
                (10, "c".into())
            ]
        );
        assert_eq!(hs.range(7, 10).len(), 1);
    }

    #[test]
    fn entries_across_chunks_and_larger_than_one() {
        // Out of order, spanning many chunks, some entries bigger than a chunk, with
        // metadata: read back in time order, byte for byte, and sorting moves no data.
        let mut h = Head::default();
        let l = Labels::from_pairs([("app", "x")]);
        let mut want = Vec::new();
        for i in 0..3000i64 {
            let ts = (i * 7919) % 3000;
            let len = if i % 500 == 0 {
                CHUNK + 100
            } else {
                100 + (i as usize % 300)
            };
            let line: String = (0..len)
                .map(|j| (b'a' + ((i as usize + j) % 26) as u8) as char)
                .collect();
            let mut e = e(ts, &line);
            if i % 3 == 0 {
                e.metadata = Labels::from_pairs([("k", format!("v{i}").as_str())]);
            }
            want.push(e.clone());
            h.append("t", vec![(l.clone(), vec![e])], 0);
        }
        want.sort_by_key(|e| e.ts);
        let hs = h.tenants.get_mut("t").unwrap().streams.get_mut(&l).unwrap();
        assert!(hs.data.len() > 10, "{} chunks", hs.data.len());
        let mem = hs.mem();
        // Full chunks are held compressed (these lines compress well).
        assert!(mem < hs.bytes / 4, "{mem} bytes held for {} raw", hs.bytes);
        assert_eq!(hs.range(0, 3000), want);
        assert_eq!(hs.mem(), mem, "sorting changed the memory count");
        // Each entry's stored once: a duplicate of a large one is found after the sort.
        let s = h.append("t", vec![(l.clone(), vec![want[0].clone()])], 0);
        assert_eq!((s.added, s.duplicates), (0, 1));
    }

    #[test]
    fn metadata_is_part_of_identity() {
        let mut h = Head::default();
        let l = Labels::from_pairs([("app", "x")]);
        let m = Entry {
            ts: 1,
            line: "a".into(),
            metadata: Labels::from_pairs([("trace_id", "1")]),
        };
        let s = h.append(
            "t",
            vec![(l.clone(), vec![e(1, "a"), m.clone(), m.clone()])],
            0,
        );
        assert_eq!((s.added, s.duplicates), (2, 1));
        let hs = h.tenants.get_mut("t").unwrap().streams.get_mut(&l).unwrap();
        assert_eq!(hs.range(0, 2)[1], m);
    }
}
