//! Compact binary encoding of push batches, used by the WAL.
//!
//! Layout (all integers LEB128 varints, strings length-prefixed UTF-8):
//! `tenant, n_streams, { n_labels, {name, value}…, n_entries, { ts (zigzag), line, n_meta, {name, value}… }… }…`

use crate::{Error, Result};
use silt_model::{Entry, Labels};

/// One stream's entries in a push.
pub type StreamBatch = (Labels, Vec<Entry>);

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn put_labels(buf: &mut Vec<u8>, l: &Labels) {
    put_varint(buf, l.len() as u64);
    for (k, v) in l.iter() {
        put_str(buf, k);
        put_str(buf, v);
    }
}

/// Appends the encoding of one tenant's batch to `buf`.
pub fn encode_batch(buf: &mut Vec<u8>, tenant: &str, streams: &[StreamBatch]) {
    put_str(buf, tenant);
    put_varint(buf, streams.len() as u64);
    for (labels, entries) in streams {
        put_labels(buf, labels);
        put_varint(buf, entries.len() as u64);
        for e in entries {
            put_varint(buf, ((e.ts << 1) ^ (e.ts >> 63)) as u64);
            put_str(buf, &e.line);
            put_labels(buf, &e.metadata);
        }
    }
}

/// Reads values back from an encoded slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| Error::Corrupt("truncated varint".into()))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::Corrupt("varint too long".into()))
    }

    fn len(&mut self) -> Result<usize> {
        let n = self.varint()? as usize;
        if n > self.buf.len() - self.pos {
            return Err(Error::Corrupt("length past end of record".into()));
        }
        Ok(n)
    }

    /// A length-prefixed byte string, borrowed.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    pub(crate) fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        Ok(std::str::from_utf8(b)
            .map_err(|_| Error::Corrupt("invalid utf-8".into()))?
            .to_string())
    }

    /// A count of items that each take at least one byte.
    pub(crate) fn count(&mut self) -> Result<usize> {
        self.len()
    }

    /// A zigzag timestamp.
    pub(crate) fn timestamp(&mut self) -> Result<i64> {
        let z = self.varint()?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// A metadata count and pairs: the pairs' encoded bytes (without the count) and the bytes
    /// of their names and values.
    pub(crate) fn raw_pairs(&mut self) -> Result<(&'a [u8], usize)> {
        let n = self.len()?;
        let start = self.pos;
        let mut size = 0;
        for _ in 0..n {
            size += self.bytes()?.len() + self.bytes()?.len();
        }
        Ok((&self.buf[start..self.pos], size))
    }

    pub(crate) fn labels(&mut self) -> Result<Labels> {
        let n = self.len()?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            pairs.push((self.string()?, self.string()?));
        }
        Ok(Labels::from_pairs(pairs))
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Decodes one batch written by [`encode_batch`].
pub fn decode_batch(buf: &[u8]) -> Result<(String, Vec<StreamBatch>)> {
    let mut r = Reader::new(buf);
    let tenant = r.string()?;
    let n = r.len()?;
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let labels = r.labels()?;
        let m = r.len()?;
        let mut entries = Vec::with_capacity(m);
        for _ in 0..m {
            let ts = r.timestamp()?;
            let line = r.string()?;
            let metadata = r.labels()?;
            entries.push(Entry { ts, line, metadata });
        }
        streams.push((labels, entries));
    }
    if !r.done() {
        return Err(Error::Corrupt("trailing bytes in record".into()));
    }
    Ok((tenant, streams))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let streams = vec![(
            Labels::from_pairs([("app", "a"), ("env", "prod")]),
            vec![
                Entry {
                    ts: 1_704_067_200_000_000_001,
                    line: "héllo".into(),
                    metadata: Labels::new(),
                },
                Entry {
                    ts: -5,
                    line: String::new(),
                    metadata: Labels::from_pairs([("trace_id", "x")]),
                },
            ],
        )];
        let mut buf = Vec::new();
        encode_batch(&mut buf, "t1", &streams);
        let (t, got) = decode_batch(&buf).unwrap();
        assert_eq!(t, "t1");
        assert_eq!(got, streams);
        for cut in 0..buf.len() {
            assert!(
                decode_batch(&buf[..cut]).is_err(),
                "truncation at {cut} must be detected"
            );
        }
    }
}
