//! What one query read and did, counted as it runs (sources count what they decode, the
//! engine what survives its pipeline) and reported in Loki's `stats` object.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters shared by every thread and source of one query.
#[derive(Debug, Default)]
pub struct Stats {
    /// Entries read from memory (head) within the range, before any filter.
    pub head_lines: AtomicU64,
    /// Line bytes of those entries.
    pub head_bytes: AtomicU64,
    /// Structured metadata bytes (names and values) of those entries.
    pub head_metadata_bytes: AtomicU64,
    /// Rows decoded from stored segments within the range, before any filter.
    pub decompressed_lines: AtomicU64,
    /// Line bytes of those rows.
    pub decompressed_bytes: AtomicU64,
    /// Structured metadata bytes of those rows.
    pub decompressed_metadata_bytes: AtomicU64,
    /// Compressed bytes of the segment pages read.
    pub compressed_bytes: AtomicU64,
    /// Segment pages read (every projected column counts its own pages).
    pub pages: AtomicU64,
    /// Stream slices (of segments or of the head) the query planned to read.
    pub chunks_ref: AtomicU64,
    /// Segment stream slices actually read.
    pub chunks_downloaded: AtomicU64,
    /// Segment files opened.
    pub segments: AtomicU64,
    /// Segment stream slices not read because their content index ruled them out.
    pub content_skipped_chunks: AtomicU64,
    /// Time spent reading segments, ns.
    pub download_ns: AtomicU64,
    /// Exact duplicates dropped while merging parts of a stream.
    pub duplicates: AtomicU64,
    /// Entries that passed the whole pipeline.
    pub post_filter_lines: AtomicU64,
    /// Sub-queries (time slices) the query ran as.
    pub splits: AtomicU64,
}

/// Adds `n` to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl Stats {
    /// Lines processed: from the head and from segments.
    pub fn lines(&self) -> u64 {
        self.head_lines.load(Relaxed) + self.decompressed_lines.load(Relaxed)
    }

    /// Bytes processed as Loki counts them: lines plus structured metadata, head and store.
    pub fn bytes(&self) -> u64 {
        self.head_bytes.load(Relaxed)
            + self.head_metadata_bytes.load(Relaxed)
            + self.decompressed_bytes.load(Relaxed)
            + self.decompressed_metadata_bytes.load(Relaxed)
    }

    /// Structured metadata bytes processed.
    pub fn metadata_bytes(&self) -> u64 {
        self.head_metadata_bytes.load(Relaxed) + self.decompressed_metadata_bytes.load(Relaxed)
    }

    /// Adds every counter of `o` to this one's.
    pub fn add_all(&self, o: &Stats) {
        let pairs = [
            (&self.head_lines, &o.head_lines),
            (&self.head_bytes, &o.head_bytes),
            (&self.head_metadata_bytes, &o.head_metadata_bytes),
            (&self.decompressed_lines, &o.decompressed_lines),
            (&self.decompressed_bytes, &o.decompressed_bytes),
            (
                &self.decompressed_metadata_bytes,
                &o.decompressed_metadata_bytes,
            ),
            (&self.compressed_bytes, &o.compressed_bytes),
            (&self.pages, &o.pages),
            (&self.chunks_ref, &o.chunks_ref),
            (&self.chunks_downloaded, &o.chunks_downloaded),
            (&self.segments, &o.segments),
            (&self.content_skipped_chunks, &o.content_skipped_chunks),
            (&self.download_ns, &o.download_ns),
            (&self.duplicates, &o.duplicates),
            (&self.post_filter_lines, &o.post_filter_lines),
            (&self.splits, &o.splits),
        ];
        for (a, b) in pairs {
            add(a, b.load(Relaxed));
        }
    }

    /// A counter's current value.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}
