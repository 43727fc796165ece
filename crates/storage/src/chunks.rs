//! A head stream's bytes (each entry's line, then its encoded metadata) in chunks that
//! never grow. The last chunk takes appends; once full it is compressed (zstd level 1,
//! ~4x on log lines at ~350 MB/s), so a head holds about a quarter of its raw bytes.
//! Readers decompress through an [`Unpacked`] cache of a few chunks.

use std::cell::RefCell;

/// Largest chunk, in bytes. A stream's first chunks are smaller (4 KiB, doubling up to
/// this), so a head of many quiet streams does not hold 64 KiB for each.
pub(crate) const CHUNK: usize = 64 << 10;
const FIRST_CHUNK: usize = 4 << 10;
/// zstd level of full chunks: level 1 compresses log lines ~4x, faster levels lose a
/// quarter of that for ~30 % more speed; the segment re-encodes them anyway.
const LEVEL: i32 = 1;
/// Chunks an [`Unpacked`] keeps decompressed: entries sorted by time come from a few
/// neighbouring chunks when a stream arrived slightly out of order.
const SLOTS: usize = 4;

/// Where an entry is: its chunk and, within it, where its line starts and ends and
/// where its metadata (after the line) ends. Sorting permutes these, never the data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    chunk: u32,
    start: u32,
    line_end: u32,
    end: u32,
}

impl Loc {
    /// Bytes of the entry's line.
    pub(crate) fn line_len(&self) -> usize {
        (self.line_end - self.start) as usize
    }

    /// Whether the entry carries structured metadata.
    pub(crate) fn has_meta(&self) -> bool {
        self.end > self.line_end
    }
}

#[derive(Debug)]
enum Chunk {
    /// Raw bytes: the chunk being filled, or one that did not compress.
    Raw(Vec<u8>),
    /// A zstd frame of `len` raw bytes.
    Packed { z: Box<[u8]>, len: u32 },
}

/// Entries' bytes in entry order; an entry larger than [`CHUNK`] gets a chunk of its own.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    chunks: Vec<Chunk>,
    /// Bytes allocated by the chunks.
    pub(crate) cap: usize,
}

thread_local! {
    static PACKER: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static UNPACKER: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

impl Chunks {
    /// Number of chunks.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes the vector of chunks itself takes.
    pub(crate) fn table_mem(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    /// Appends an entry's line and metadata; returns its location. With `pack`, a chunk
    /// that fills up is compressed.
    pub(crate) fn put(&mut self, line: &[u8], meta: &[u8], pack: bool) -> Loc {
        let need = line.len() + meta.len();
        let room = match self.chunks.last() {
            Some(Chunk::Raw(c)) => c.capacity() - c.len() >= need,
            _ => false,
        };
        if !room {
            if pack {
                self.pack_last();
            }
            let size = CHUNK.min(FIRST_CHUNK << self.chunks.len().min(8));
            let c = Vec::with_capacity(need.max(size));
            self.cap += c.capacity();
            crate::head::reserve(&mut self.chunks, 1, 16);
            self.chunks.push(Chunk::Raw(c));
        }
        let chunk = self.chunks.len() - 1;
        let Some(Chunk::Raw(c)) = self.chunks.last_mut() else {
            unreachable!("the last chunk is raw after the check above")
        };
        let start = c.len() as u32;
        c.extend_from_slice(line);
        let line_end = c.len() as u32;
        c.extend_from_slice(meta);
        Loc {
            chunk: chunk as u32,
            start,
            line_end,
            end: c.len() as u32,
        }
    }

    /// Compresses the last chunk, which takes no more appends; one that does not get
    /// smaller stays raw.
    fn pack_last(&mut self) {
        let Some(last) = self.chunks.last_mut() else {
            return;
        };
        let Chunk::Raw(raw) = last else {
            return;
        };
        let packed = PACKER.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = zstd::bulk::Compressor::new(LEVEL).ok();
            }
            p.as_mut()?.compress(raw).ok()
        });
        match packed {
            Some(z) if z.len() < raw.len() => {
                self.cap = self.cap - raw.capacity() + z.len();
                *last = Chunk::Packed {
                    z: z.into_boxed_slice(),
                    len: raw.len() as u32,
                };
            }
            _ => {
                self.cap -= raw.capacity();
                raw.shrink_to_fit();
                self.cap += raw.capacity();
            }
        }
    }

    /// An entry's bytes (line, then metadata).
    pub(crate) fn get<'a>(&'a self, l: Loc, u: &'a mut Unpacked) -> &'a [u8] {
        let c = match &self.chunks[l.chunk as usize] {
            Chunk::Raw(c) => c.as_slice(),
            Chunk::Packed { z, len } => u.chunk(z, *len as usize),
        };
        &c[l.start as usize..l.end as usize]
    }

    /// An entry's line and its encoded metadata.
    pub(crate) fn parts<'a>(&'a self, l: Loc, u: &'a mut Unpacked) -> (&'a [u8], &'a [u8]) {
        self.get(l, u).split_at(l.line_len())
    }
}

/// A reader's decompressed chunks, reused. Chunks are known by their address, so one
/// must not be kept across changes of the head (create one per read).
#[derive(Default)]
pub(crate) struct Unpacked {
    slots: Vec<(usize, Vec<u8>)>,
    next: usize,
}

impl Unpacked {
    fn chunk(&mut self, z: &[u8], len: usize) -> &[u8] {
        let key = z.as_ptr() as usize;
        if let Some(i) = self.slots.iter().position(|(k, _)| *k == key) {
            return &self.slots[i].1;
        }
        if self.slots.len() < SLOTS {
            self.slots.push((0, Vec::new()));
        }
        let i = self.next % self.slots.len();
        self.next = self.next.wrapping_add(1);
        let (k, buf) = &mut self.slots[i];
        buf.clear();
        buf.reserve(len);
        UNPACKER.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(zstd::bulk::Decompressor::new().expect("a zstd context"));
            }
            let n = d
                .as_mut()
                .expect("just set")
                .decompress_to_buffer(z, buf)
                .expect("a chunk compressed by this process decompresses");
            debug_assert_eq!(n, len);
        });
        *k = key;
        buf
    }
}

/// `v` emptied, for borrows of another lifetime: a loop that reads entries through one
/// [`Unpacked`] keeps its pairs' buffer this way (collecting an emptied vector in place
/// keeps its allocation).
pub(crate) fn recycle<'b>(mut v: Vec<(&str, &str)>) -> Vec<(&'b str, &'b str)> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that zstd cannot shrink (xorshift output).
    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn full_chunks_are_packed_or_kept_raw_and_read_back() {
        let mut c = Chunks::default();
        let mut put = Vec::new();
        for i in 0..1000usize {
            // Text that compresses, and noise that does not (kept raw, shrunk to fit).
            let line = if i % 300 < 100 {
                format!(
                    "level=info msg=\"request served\" path=/api/v1/{} status=200",
                    i % 7
                )
                .into_bytes()
            } else {
                noise(700, i as u64)
            };
            let meta = format!("m{i}").into_bytes();
            put.push((c.put(&line, &meta, true), line, meta));
        }
        assert!(c.len() > 6, "{} chunks", c.len());
        let packed = c
            .chunks
            .iter()
            .filter(|k| matches!(k, Chunk::Packed { .. }))
            .count();
        let raw_full = c.chunks[..c.len() - 1]
            .iter()
            .filter(|k| matches!(k, Chunk::Raw(_)))
            .count();
        assert!(
            packed > 0 && raw_full > 0,
            "{packed} packed, {raw_full} raw"
        );
        let held: usize = c
            .chunks
            .iter()
            .map(|k| match k {
                Chunk::Raw(v) => v.capacity(),
                Chunk::Packed { z, .. } => z.len(),
            })
            .sum();
        assert_eq!(c.cap, held, "the memory count follows packing");
        // Read back in an order that cycles through more chunks than the cache holds.
        let mut u = Unpacked::default();
        for (loc, line, meta) in put.iter().rev().step_by(3).chain(put.iter().step_by(2)) {
            assert_eq!(c.parts(*loc, &mut u), (&line[..], &meta[..]));
        }
    }
}
