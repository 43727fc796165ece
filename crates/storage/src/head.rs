//! The in-memory head: entries acknowledged (in the WAL) but not yet in a segment.
//!
//! Each stream keeps its entries in columnar arenas (timestamps, offsets, one byte
//! buffer for lines and metadata) so the head costs a few bytes per entry beyond
//! the data itself. Entries are appended in arrival order; the stream is re-sorted
//! lazily (stable, so equal timestamps keep arrival order) when it is read.

use crate::codec::{put_varint, Reader, StreamBatch};
use silt_model::{Entry, Labels, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One stream's head data.
#[derive(Debug)]
pub struct HeadStream {
    /// Indexed labels.
    pub labels: Arc<Labels>,
    ts: Vec<Timestamp>,
    /// End offset in `data` of each entry's line; its metadata follows up to the next start.
    line_end: Vec<u32>,
    /// End offset in `data` of each entry (line + encoded metadata).
    end: Vec<u32>,
    data: Vec<u8>,
    /// Identity hashes of held entries, for dedup.
    seen: HashSet<u64>,
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
            line_end: Vec::new(),
            end: Vec::new(),
            data: Vec::new(),
            seen: HashSet::new(),
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

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.end[i - 1] as usize
        }
    }

    fn line(&self, i: usize) -> &[u8] {
        &self.data[self.start(i)..self.line_end[i] as usize]
    }

    fn meta_bytes(&self, i: usize) -> &[u8] {
        &self.data[self.line_end[i] as usize..self.end[i] as usize]
    }

    /// Entry `i` in the current order.
    pub fn entry(&self, i: usize) -> Entry {
        let line = String::from_utf8_lossy(self.line(i)).into_owned();
        let mut metadata = Vec::new();
        let mut r = Reader::new(self.meta_bytes(i));
        while !r.done() {
            match (r.string(), r.string()) {
                (Ok(k), Ok(v)) => metadata.push((k, v)),
                _ => break,
            }
        }
        Entry {
            ts: self.ts[i],
            line,
            metadata: Labels::from_sorted_unchecked(metadata),
        }
    }

    fn encode_meta(buf: &mut Vec<u8>, meta: &Labels) {
        for (k, v) in meta.iter() {
            put_varint(buf, k.len() as u64);
            buf.extend_from_slice(k.as_bytes());
            put_varint(buf, v.len() as u64);
            buf.extend_from_slice(v.as_bytes());
        }
    }

    /// Identity of an entry for dedup: hash of (ts, line, encoded metadata).
    fn identity(e: &Entry, meta: &[u8]) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(&e.ts.to_le_bytes());
        h.update(&(e.line.len() as u64).to_le_bytes());
        h.update(e.line.as_bytes());
        h.update(meta);
        h.digest()
    }

    /// Whether an identical entry (ts, line, metadata) is already held. A hash set answers
    /// without sorting (concurrent pushes make streams arrive out of order); a hash hit is
    /// confirmed byte for byte, which only real duplicates (client retries) pay for.
    fn contains(&mut self, e: &Entry, meta: &[u8], hash: u64) -> bool {
        if e.ts > self.max_ts || e.ts < self.min_ts || !self.seen.contains(&hash) {
            return false;
        }
        let same = |i: usize| self.line(i) == e.line.as_bytes() && self.meta_bytes(i) == meta;
        if self.sorted {
            let lo = self.ts.partition_point(|&t| t < e.ts);
            let hi = self.ts.partition_point(|&t| t <= e.ts);
            (lo..hi).any(same)
        } else {
            (0..self.ts.len()).any(|i| self.ts[i] == e.ts && same(i))
        }
    }

    /// Appends unless an exact duplicate is held; returns whether it was added.
    fn push(&mut self, e: &Entry, scratch: &mut Vec<u8>) -> bool {
        scratch.clear();
        Self::encode_meta(scratch, &e.metadata);
        let hash = Self::identity(e, scratch);
        if self.contains(e, scratch, hash) {
            return false;
        }
        self.seen.insert(hash);
        if e.ts < self.max_ts {
            self.sorted = false;
        }
        self.data.extend_from_slice(e.line.as_bytes());
        self.line_end.push(self.data.len() as u32);
        Self::encode_meta(&mut self.data, &e.metadata);
        self.end.push(self.data.len() as u32);
        self.ts.push(e.ts);
        self.bytes += e.line.len() + e.metadata.byte_size();
        self.min_ts = self.min_ts.min(e.ts);
        self.max_ts = self.max_ts.max(e.ts);
        true
    }

    /// Sorts by timestamp, keeping arrival order among equal timestamps.
    pub fn sort(&mut self) {
        if self.sorted {
            return;
        }
        let mut idx: Vec<u32> = (0..self.ts.len() as u32).collect();
        idx.sort_by_key(|&i| self.ts[i as usize]);
        let mut ts = Vec::with_capacity(idx.len());
        let mut line_end = Vec::with_capacity(idx.len());
        let mut end = Vec::with_capacity(idx.len());
        let mut data = Vec::with_capacity(self.data.len());
        for &i in &idx {
            let i = i as usize;
            ts.push(self.ts[i]);
            data.extend_from_slice(self.line(i));
            line_end.push(data.len() as u32);
            data.extend_from_slice(self.meta_bytes(i));
            end.push(data.len() as u32);
        }
        self.ts = ts;
        self.line_end = line_end;
        self.end = end;
        self.data = data;
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
        self.bounds(start, end).map(|i| self.entry(i)).collect()
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
        for i in r.clone() {
            c.line_bytes += self.line(i).len() as u64;
            let mut md = Reader::new(self.meta_bytes(i));
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
    /// Wall-clock time (ns) of the first append since the head was created.
    pub first_append: Option<i64>,
}

impl Head {
    /// Adds a tenant's batch, skipping exact duplicates.
    pub fn append(&mut self, tenant: &str, batch: Vec<StreamBatch>, now: i64) -> AppendStats {
        let mut stats = AppendStats::default();
        let th = match self.tenants.get_mut(tenant) {
            Some(t) => t,
            None => self.tenants.entry(tenant.to_string()).or_default(),
        };
        let mut scratch = Vec::new();
        for (labels, entries) in batch {
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
            for e in &entries {
                let before = hs.bytes;
                if hs.push(e, &mut scratch) {
                    stats.added += 1;
                    th.bytes += hs.bytes - before;
                    self.bytes += hs.bytes - before;
                } else {
                    stats.duplicates += 1;
                }
            }
        }
        th.entries += stats.added;
        if stats.added > 0 && self.first_append.is_none() {
            self.first_append = Some(now);
        }
        stats
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.tenants.values().all(|t| t.entries == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
