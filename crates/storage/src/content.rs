//! Content index: for each block of a stream's rows in a segment, a bloom filter of what
//! its lines contain, so a line filter skips blocks that cannot match without reading them.
//!
//! Lines are split into words (runs of ASCII letters, digits, `_` and non-ASCII bytes),
//! lower-cased. Each word shorter than [`LONG`] bytes goes in whole; longer ones (ids,
//! hashes) give instead their winnowing fingerprints: the smallest hash of each window of
//! [`W`] consecutive [`K`]-byte grams. A line filter's needle (see `silt_query::needles`)
//! implies, for a line that contains it:
//! - each short word of the needle bounded on both sides by non-word bytes *inside the
//!   needle* is a whole word of the line;
//! - each word of the needle of at least [`LONG`] bytes (bounded or not: it may continue
//!   in the line) lies inside one long word of the line, so every window of it is a
//!   window of that word, and the window's smallest gram hash was inserted.
//!
//! So Loki's substring semantics are kept exactly: a block is skipped only when some
//! implied word or fingerprint is certainly absent. Short words at a needle's edge (e.g.
//! `error` in `|= "error"`) imply nothing; they are also the ones in most blocks.
//!
//! File `<segment>.content`, little-endian: magic, block count, per block
//! `(stream u32, first_row u64, rows u32, words u32)`, then each block's bit words, then a
//! CRC-32 of all of it. Segments without the file are read whole.

use crate::{Error, Result};
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Gram length of fingerprints.
pub const K: usize = 5;
/// Winnowing window, in grams: a 32-hex-digit id gives about 4 fingerprints.
pub const W: usize = 12;
/// Words at least this long get fingerprints: one whole window.
pub const LONG: usize = K + W - 1;
/// Line bytes per block (a block is also cut at a stream's end).
const BLOCK_BYTES: usize = 256 << 10;
/// About 6 % false positives per item; a needle usually implies several items, which
/// must all be present.
const BITS_PER_ITEM: usize = 6;
const PROBES: u64 = 3;
const MAGIC: &[u8; 8] = b"SILTCI01";
const SEED_WORD: u64 = 0x5111_7000_0000_0001;
const SEED_GRAM: u64 = 0x5111_7000_0000_0002;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Calls `f(word, starts_line_word, ends_line_word)` for each lower-cased word of `s`; the
/// flags say whether a non-word byte (or nothing, for lines) bounds it in `s`.
fn words(s: &[u8], buf: &mut Vec<u8>, mut f: impl FnMut(&[u8], bool, bool)) {
    let mut i = 0;
    while i < s.len() {
        if !is_word(s[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && is_word(s[i]) {
            i += 1;
        }
        buf.clear();
        buf.extend(s[start..i].iter().map(u8::to_ascii_lowercase));
        f(buf, start > 0, i < s.len());
    }
}

/// The winnowing fingerprints of `word` (at least [`LONG`] bytes), in order, without
/// consecutive repeats.
fn fingerprints(word: &[u8], mut f: impl FnMut(u64)) {
    let grams: Vec<u64> = word
        .windows(K)
        .map(|g| xxh3_64_with_seed(g, SEED_GRAM))
        .collect();
    let mut last = None;
    for w in grams.windows(W) {
        let m = *w.iter().min().expect("a window holds W grams");
        if last != Some(m) {
            // Minima are small numbers: mixed again, or they would crowd the low bits of
            // the filter and collide.
            f(mix(m));
            last = Some(m);
        }
    }
}

/// splitmix64's finaliser: a bijection that spreads any input over all 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn word_hash(word: &[u8]) -> u64 {
    xxh3_64_with_seed(word, SEED_WORD)
}

/// Everything a line contributes to its block's filter.
fn line_items(line: &[u8], buf: &mut Vec<u8>, mut f: impl FnMut(u64)) {
    words(line, buf, |w, _, _| {
        if w.len() >= LONG {
            fingerprints(w, &mut f);
        } else {
            f(word_hash(w));
        }
    });
}

/// What a line holding `needle` (lower-cased) certainly contributed; empty when nothing
/// is implied, so every block may hold it.
pub fn needle_items(needle: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    words(needle, &mut buf, |w, bounded_left, bounded_right| {
        if w.len() >= LONG {
            fingerprints(w, |h| out.push(h));
        } else if bounded_left && bounded_right {
            out.push(word_hash(w));
        }
    });
    out
}

/// Items are already hashes: no rehashing in the per-block sets.
type ItemSet = HashSet<u64, BuildHasherDefault<crate::head::PassThrough>>;

fn probe(h: u64, i: u64, nbits: u64) -> (usize, u64) {
    // Double hashing; the product's high half maps onto any bit count without bias.
    let x = h.wrapping_add(i.wrapping_mul(h.rotate_left(32) | 1));
    let bit = ((u128::from(x) * u128::from(nbits)) >> 64) as u64;
    ((bit / 64) as usize, 1 << (bit % 64))
}

fn contains(bits: &[u64], h: u64) -> bool {
    let nbits = bits.len() as u64 * 64;
    (0..PROBES).all(|i| {
        let (w, m) = probe(h, i, nbits);
        bits[w] & m != 0
    })
}

struct BlockHead {
    stream: u32,
    first_row: u64,
    rows: u32,
    words: u32,
}

/// Builds a segment's content index as its rows are written (stream by stream, in row
/// order).
#[derive(Default)]
pub struct Builder {
    heads: Vec<BlockHead>,
    bits: Vec<u64>,
    items: ItemSet,
    buf: Vec<u8>,
    open: Option<(u32, u64, u32, usize)>,
}

impl Builder {
    /// Adds row `row` (segment-global) of stream `stream`.
    pub fn push(&mut self, stream: u32, row: u64, line: &[u8]) {
        if self.open.is_some_and(|(s, ..)| s != stream) {
            self.cut();
        }
        let open = self.open.get_or_insert((stream, row, 0, 0));
        open.2 += 1;
        open.3 += line.len();
        let full = open.3 >= BLOCK_BYTES;
        let items = &mut self.items;
        line_items(line, &mut self.buf, |h| {
            items.insert(h);
        });
        if full {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let Some((stream, first_row, rows, _)) = self.open.take() else {
            return;
        };
        let words = (self.items.len() * BITS_PER_ITEM).div_ceil(64).max(1);
        let start = self.bits.len();
        self.bits.resize(start + words, 0);
        let bits = &mut self.bits[start..];
        let nbits = words as u64 * 64;
        for &h in &self.items {
            for i in 0..PROBES {
                let (w, m) = probe(h, i, nbits);
                bits[w] |= m;
            }
        }
        self.items.clear();
        self.heads.push(BlockHead {
            stream,
            first_row,
            rows,
            words: words as u32,
        });
    }

    /// The file's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.cut();
        let mut out = Vec::with_capacity(16 + self.heads.len() * 20 + self.bits.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.heads.len() as u32).to_le_bytes());
        for b in &self.heads {
            out.extend_from_slice(&b.stream.to_le_bytes());
            out.extend_from_slice(&b.first_row.to_le_bytes());
            out.extend_from_slice(&b.rows.to_le_bytes());
            out.extend_from_slice(&b.words.to_le_bytes());
        }
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

/// A loaded content index.
pub struct Index {
    heads: Vec<BlockHead>,
    /// Offset of each block's words in `bits`.
    offsets: Vec<usize>,
    bits: Vec<u64>,
}

fn corrupt(what: &str) -> Error {
    Error::Corrupt(format!("content index: {what}"))
}

impl Index {
    /// Parses and checks a file written by [`Builder::finish`].
    pub fn parse(data: &[u8]) -> Result<Index> {
        let body_len = data
            .len()
            .checked_sub(4)
            .ok_or_else(|| corrupt("truncated"))?;
        let (body, crc) = data.split_at(body_len);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = body
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("bad magic"))?;
        let mut take = |n: usize| -> Result<&[u8]> {
            if r.len() < n {
                return Err(corrupt("truncated"));
            }
            let (a, b) = r.split_at(n);
            r = b;
            Ok(a)
        };
        let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let n = u32_at(take(4)?) as usize;
        let mut heads = Vec::with_capacity(n.min(1 << 20));
        let mut offsets = Vec::with_capacity(n.min(1 << 20));
        let mut total = 0usize;
        for _ in 0..n {
            let h = take(20)?;
            let head = BlockHead {
                stream: u32_at(&h[0..4]),
                first_row: u64::from_le_bytes(h[4..12].try_into().expect("8 bytes")),
                rows: u32_at(&h[12..16]),
                words: u32_at(&h[16..20]),
            };
            if head.words == 0 {
                return Err(corrupt("empty block filter"));
            }
            offsets.push(total);
            total += head.words as usize;
            heads.push(head);
        }
        let raw = take(total.checked_mul(8).ok_or_else(|| corrupt("too large"))?)?;
        let bits = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(Index {
            heads,
            offsets,
            bits,
        })
    }

    /// Bytes held in memory.
    pub fn size(&self) -> usize {
        self.bits.len() * 8 + self.heads.len() * (std::mem::size_of::<BlockHead>() + 8)
    }

    /// Row ranges (segment-global, sorted) of the blocks of `streams` that may hold a line
    /// satisfying every clause; `clauses` holds, per clause, each needle's
    /// [`needle_items`].
    pub fn candidate_rows(
        &self,
        streams: &[usize],
        clauses: &[Vec<Vec<u64>>],
    ) -> Vec<(usize, usize)> {
        let mut want = vec![false; streams.iter().max().map_or(0, |m| m + 1)];
        for &s in streams {
            want[s] = true;
        }
        let mut out = Vec::new();
        for (i, b) in self.heads.iter().enumerate() {
            if !want.get(b.stream as usize).copied().unwrap_or(false) {
                continue;
            }
            let bits = &self.bits[self.offsets[i]..self.offsets[i] + b.words as usize];
            let hit = clauses.iter().all(|alts| {
                alts.iter()
                    .any(|items| items.iter().all(|&h| contains(bits, h)))
            });
            if hit {
                let first = b.first_row as usize;
                out.push((first, first + b.rows as usize));
            }
        }
        out.sort_unstable();
        out
    }
}

/// Parsed content indexes by object path, bounded in bytes (emptied when full: a query
/// then parses what it needs again).
pub(crate) struct Cache {
    map: std::collections::HashMap<String, std::sync::Arc<Index>>,
    bytes: usize,
    max_bytes: usize,
}

impl Cache {
    pub(crate) fn new(max_bytes: usize) -> Cache {
        Cache {
            map: Default::default(),
            bytes: 0,
            max_bytes,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<std::sync::Arc<Index>> {
        self.map.get(path).cloned()
    }

    pub(crate) fn insert(&mut self, path: String, idx: std::sync::Arc<Index>) {
        let size = idx.size();
        if size > self.max_bytes {
            return;
        }
        if self.bytes + size > self.max_bytes {
            self.map.clear();
            self.bytes = 0;
        }
        if let Some(old) = self.map.insert(path, idx) {
            self.bytes -= old.size();
        }
        self.bytes += size;
    }

    pub(crate) fn remove(&mut self, path: &str) {
        if let Some(old) = self.map.remove(path) {
            self.bytes -= old.size();
        }
    }
}

/// The items of each clause's needles, or `None` when no clause implies anything (the
/// index cannot help).
pub fn clause_items(clauses: &[Vec<Vec<u8>>]) -> Option<Vec<Vec<Vec<u64>>>> {
    let out: Vec<Vec<Vec<u64>>> = clauses
        .iter()
        .map(|c| c.iter().map(|n| needle_items(n)).collect::<Vec<_>>())
        // A needle that implies nothing makes its whole clause uninformative.
        .filter(|alts: &Vec<Vec<u64>>| !alts.is_empty() && alts.iter().all(|a| !a.is_empty()))
        .collect();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(lines: &[(u32, &str)]) -> Index {
        let mut b = Builder::default();
        for (row, (s, l)) in lines.iter().enumerate() {
            b.push(*s, row as u64, l.as_bytes());
        }
        Index::parse(&b.finish()).unwrap()
    }

    fn may_hold(idx: &Index, stream: usize, needle: &str) -> bool {
        let Some(clauses) = clause_items(&[vec![needle.to_ascii_lowercase().into_bytes()]]) else {
            return true;
        };
        !idx.candidate_rows(&[stream], &clauses).is_empty()
    }

    #[test]
    fn substrings_of_indexed_lines_are_never_ruled_out() {
        let lines = [
            "level=info msg=\"Session expired\" user=alice trace=4bf92f3577b34da6a3ce929d0e0e4736",
            "GET /api/v1/users/550e8400-e29b-41d4-a716-446655440000 HTTP/1.1 200",
            "caf\u{e9} cr\u{e8}me \u{212a}elvin ERROR_CODE_17 x",
        ];
        let idx = index_of(&lines.iter().map(|l| (0, *l)).collect::<Vec<_>>());
        for l in lines {
            let b = l.as_bytes();
            for i in 0..b.len() {
                for j in i + 1..=b.len() {
                    if let Ok(s) = std::str::from_utf8(&b[i..j]) {
                        assert!(may_hold(&idx, 0, s), "{s:?} ruled out");
                        assert!(
                            may_hold(&idx, 0, &s.to_ascii_uppercase()),
                            "{s:?} upper ruled out"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn absent_words_and_ids_are_ruled_out() {
        let idx = index_of(&[
            (0, "user=alice trace=4bf92f3577b34da6a3ce929d0e0e4736 done"),
            (1, "user=bob trace=00f067aa0ba902b7aaaa00f067aa0ba9 done"),
        ]);
        // Whole words inside a needle.
        assert!(may_hold(&idx, 0, "user=alice "));
        assert!(!may_hold(&idx, 0, "user=bob "));
        assert!(may_hold(&idx, 1, "user=bob "));
        // A long id as a bare needle: its fingerprints.
        assert!(!may_hold(&idx, 0, "00f067aa0ba902b7aaaa00f067aa0ba9"));
        assert!(may_hold(&idx, 1, "00f067aa0ba902b7aaaa00f067aa0ba9"));
        assert!(may_hold(&idx, 1, "0ba902b7aaaa00f0"));
        assert!(!may_hold(&idx, 1, "1234567890abcdef"));
        assert!(!may_hold(&idx, 1, " 1234567890abcdef "));
        // Short edge words imply nothing.
        assert!(may_hold(&idx, 0, "zzz"));
        // Streams without blocks hold nothing.
        assert!(!may_hold(&idx, 7, "user=alice "));
    }

    #[test]
    fn blocks_split_by_stream_and_size() {
        let long = "x".repeat(1000);
        let mut lines: Vec<(u32, &str)> = vec![(0, "a b"); 3];
        lines.extend(std::iter::repeat_n((1, long.as_str()), 600));
        lines.push((1, "needle word here"));
        let idx = index_of(&lines);
        assert_eq!(idx.heads.len(), 4, "stream 0, then stream 1 in 3 blocks");
        let c = clause_items(&[vec![b" word ".to_vec()]]).unwrap();
        assert_eq!(idx.candidate_rows(&[0, 1], &c), [(529, 604)]);
    }

    #[test]
    fn damaged_files_are_refused() {
        let mut b = Builder::default();
        b.push(0, 0, b"hello world");
        let mut data = b.finish();
        assert!(Index::parse(&data).is_ok());
        let n = data.len();
        data[n / 2] ^= 1;
        assert!(Index::parse(&data).is_err());
        assert!(Index::parse(&data[..3]).is_err());
        assert!(Index::parse(b"").is_err());
    }
}
