//! A push batch encoded once, as its framed WAL record, on the thread that decoded it.
//!
//! The ingest thread is the one serial step of a push; it only writes these bytes, fsyncs
//! and copies lines from them into the head. The payload is [`crate::codec`]'s layout, so
//! WAL files stay readable by older versions; counts not known up front are written as
//! 5-byte varints (a valid, if not minimal, LEB128 encoding) and filled in at the end.

use crate::codec::put_varint;
use crate::{Error, Result};
use silt_model::Labels;

/// Framing before the payload: `[len u32 LE][crc32 u32 LE]`.
pub(crate) const HEADER: usize = 8;
/// Largest payload a WAL record may hold (replay refuses longer lengths as corrupt).
pub(crate) const MAX_PAYLOAD: usize = 1 << 31;
const SLOT: usize = 5;

/// One tenant's push as a framed WAL record.
#[derive(Debug)]
pub struct EncodedBatch {
    pub(crate) tenant: String,
    pub(crate) record: Vec<u8>,
    /// Entries and raw bytes (lines + metadata) encoded.
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
}

impl EncodedBatch {
    /// The record payload (what replay decodes).
    pub(crate) fn payload(&self) -> &[u8] {
        &self.record[HEADER..]
    }

    /// Entries in the batch.
    pub fn entries(&self) -> usize {
        self.entries
    }
}

/// Builds an [`EncodedBatch`] stream by stream, entry by entry.
pub struct BatchEncoder {
    tenant: String,
    buf: Vec<u8>,
    streams: u64,
    streams_at: usize,
    /// Where the open stream starts and where its entry count goes.
    stream_at: usize,
    entries_at: usize,
    stream_entries: u64,
    entries: usize,
    bytes: usize,
}

fn slot(buf: &mut [u8], at: usize, v: u64) {
    for i in 0..SLOT {
        let more = if i + 1 < SLOT { 0x80 } else { 0 };
        buf[at + i] = ((v >> (7 * i)) & 0x7f) as u8 | more;
    }
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

impl BatchEncoder {
    /// Starts a batch of `tenant`; `capacity` is a hint of the bytes to come.
    pub fn new(tenant: &str, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 64);
        buf.resize(HEADER, 0);
        put_str(&mut buf, tenant.as_bytes());
        let streams_at = buf.len();
        buf.resize(streams_at + SLOT, 0);
        BatchEncoder {
            tenant: tenant.to_string(),
            buf,
            streams: 0,
            streams_at,
            stream_at: 0,
            entries_at: 0,
            stream_entries: 0,
            entries: 0,
            bytes: 0,
        }
    }

    /// Opens a stream; entries added next belong to it until [`BatchEncoder::end_stream`].
    pub fn begin_stream(&mut self, labels: &Labels) {
        self.stream_at = self.buf.len();
        put_varint(&mut self.buf, labels.len() as u64);
        for (k, v) in labels.iter() {
            put_str(&mut self.buf, k.as_bytes());
            put_str(&mut self.buf, v.as_bytes());
        }
        self.entries_at = self.buf.len();
        self.buf.resize(self.entries_at + SLOT, 0);
        self.stream_entries = 0;
    }

    /// Adds an entry to the open stream. `meta` must be sorted by name, names unique and
    /// values non-empty (as in [`Labels`]).
    pub fn entry<'m>(
        &mut self,
        ts: i64,
        line: &str,
        meta: impl Iterator<Item = (&'m str, &'m str)> + Clone,
    ) {
        put_varint(&mut self.buf, ((ts << 1) ^ (ts >> 63)) as u64);
        put_str(&mut self.buf, line.as_bytes());
        put_varint(&mut self.buf, meta.clone().count() as u64);
        let mut size = line.len();
        for (k, v) in meta {
            put_str(&mut self.buf, k.as_bytes());
            put_str(&mut self.buf, v.as_bytes());
            size += k.len() + v.len();
        }
        self.stream_entries += 1;
        self.entries += 1;
        self.bytes += size;
    }

    /// Closes the open stream; a stream without entries is left out.
    pub fn end_stream(&mut self) {
        if self.stream_entries == 0 {
            self.buf.truncate(self.stream_at);
            return;
        }
        slot(&mut self.buf, self.entries_at, self.stream_entries);
        self.streams += 1;
    }

    /// Entries added so far.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Fills in the counts and frames the record. Fails when the record would be too large
    /// for the WAL.
    pub fn finish(mut self) -> Result<EncodedBatch> {
        slot(&mut self.buf, self.streams_at, self.streams);
        let len = self.buf.len() - HEADER;
        if len > MAX_PAYLOAD {
            return Err(Error::Internal(format!(
                "push too large for one WAL record: {len} bytes encoded (at most {MAX_PAYLOAD})"
            )));
        }
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        Ok(EncodedBatch {
            tenant: self.tenant,
            record: self.buf,
            entries: self.entries,
            bytes: self.bytes,
        })
    }
}

/// Encodes owned streams (the path of callers that hold [`crate::codec::StreamBatch`]es).
pub fn encode_streams(tenant: &str, streams: &[crate::codec::StreamBatch]) -> Result<EncodedBatch> {
    let mut enc = BatchEncoder::new(tenant, 0);
    for (labels, entries) in streams {
        enc.begin_stream(labels);
        for e in entries {
            let meta = e.metadata.as_slice().iter();
            enc.entry(e.ts, &e.line, meta.map(|(k, v)| (k.as_str(), v.as_str())));
        }
        enc.end_stream();
    }
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_batch;
    use silt_model::Entry;

    #[test]
    fn decodes_like_a_codec_batch_and_drops_empty_streams() {
        let a = Labels::from_pairs([("app", "a")]);
        let e = |ts: i64, line: &str, md: &[(&str, &str)]| Entry {
            ts,
            line: line.into(),
            metadata: Labels::from_pairs(md.iter().copied()),
        };
        let streams = vec![
            (
                a.clone(),
                vec![e(-3, "x", &[("k", "v"), ("a", "b")]), e(9, "", &[])],
            ),
            (Labels::from_pairs([("app", "empty")]), vec![]),
            (a, vec![e(1 << 62, "héllo", &[])]),
        ];
        let b = encode_streams("t1", &streams).unwrap();
        assert_eq!((b.entries, b.bytes), (3, 1 + 4 + 6));
        let (tenant, got) = decode_batch(b.payload()).unwrap();
        assert_eq!(tenant, "t1");
        let want: Vec<_> = streams.into_iter().filter(|s| !s.1.is_empty()).collect();
        assert_eq!(got, want);
        // The frame: length and CRC of the payload.
        let len = u32::from_le_bytes(b.record[..4].try_into().unwrap()) as usize;
        assert_eq!(len, b.payload().len());
        let crc = u32::from_le_bytes(b.record[4..8].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(b.payload()));
    }

    #[test]
    fn counts_past_one_varint_byte() {
        let l = Labels::from_pairs([("app", "a")]);
        let entries: Vec<Entry> = (0..300)
            .map(|i| Entry {
                ts: i,
                line: format!("l{i}"),
                metadata: Labels::new(),
            })
            .collect();
        let streams: Vec<_> = (0..200).map(|_| (l.clone(), entries.clone())).collect();
        let b = encode_streams("t", &streams).unwrap();
        assert_eq!(decode_batch(b.payload()).unwrap().1, streams);
    }
}
