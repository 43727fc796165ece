//! Push requests as views: lines and structured metadata borrowed from the decoded body.
//!
//! The protobuf decoder here walks the wire format by hand so that a line costs no
//! allocation of its own (prost would copy each one into a `Vec<u8>`, then into a `String`).
//! Owned requests (JSON, OTLP) are viewed the same way, so one validation serves all.

use crate::error::PushError;
use crate::push::{parse_stream_labels, DecodeLimits, PushRequest, PushStream};
use silt_model::{Entry, Labels};
use std::borrow::Cow;
use std::ops::Range;

/// A metadata pair, borrowed where the body allowed it.
pub type MetaPair<'a> = (Cow<'a, str>, Cow<'a, str>);

/// One entry of a [`PushView`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// Nanoseconds since the epoch.
    pub ts: i64,
    /// The line.
    pub line: Cow<'a, str>,
    /// Its structured metadata: a range of [`PushView::meta`], sorted by name, names unique,
    /// values non-empty (as [`Labels`] keeps them).
    pub meta: Range<usize>,
}

/// One stream of a [`PushView`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamView<'a> {
    /// Parsed stream labels.
    pub labels: Labels,
    /// Entries in request order.
    pub entries: Vec<EntryView<'a>>,
}

/// A push request whose strings borrow from the body (or from an owned [`PushRequest`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushView<'a> {
    /// Streams in request order.
    pub streams: Vec<StreamView<'a>>,
    /// Metadata pairs of all entries, each entry's run contiguous.
    pub meta: Vec<MetaPair<'a>>,
}

impl<'a> PushView<'a> {
    /// Views an owned request without copying its strings.
    pub fn of(req: &'a PushRequest) -> PushView<'a> {
        let mut meta = Vec::new();
        let streams = req
            .streams
            .iter()
            .map(|s| StreamView {
                labels: s.labels.clone(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| {
                        let start = meta.len();
                        meta.extend(
                            e.metadata
                                .iter()
                                .map(|(k, v)| (Cow::Borrowed(k), Cow::Borrowed(v))),
                        );
                        EntryView {
                            ts: e.ts,
                            line: Cow::Borrowed(e.line.as_str()),
                            meta: start..meta.len(),
                        }
                    })
                    .collect(),
            })
            .collect();
        PushView { streams, meta }
    }

    /// Copies the view into an owned request.
    pub fn to_request(&self) -> PushRequest {
        let streams = self
            .streams
            .iter()
            .map(|s| PushStream {
                labels: s.labels.clone(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| Entry {
                        ts: e.ts,
                        line: e.line.to_string(),
                        metadata: Labels::from_sorted_unchecked(
                            self.meta_of(e)
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect(),
                        ),
                    })
                    .collect(),
            })
            .collect();
        PushRequest { streams }
    }

    /// Metadata pairs of `e`.
    pub fn meta_of(&self, e: &EntryView<'_>) -> &[MetaPair<'a>] {
        &self.meta[e.meta.clone()]
    }
}

fn bad(what: &str) -> PushError {
    PushError::bad_request(format!("failed to parse proto: {what}"))
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// A cursor over protobuf wire bytes.
struct Wire<'a> {
    b: &'a [u8],
    pos: usize,
}

/// A field's value: varints and fixed-width numbers as u64, length-delimited as bytes.
enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl<'a> Wire<'a> {
    fn new(b: &'a [u8]) -> Self {
        Wire { b, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, PushError> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err(bad("truncated varint"));
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(bad("varint overflows 64 bits"));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PushError> {
        if n > self.b.len() - self.pos {
            return Err(bad("field runs past the end of its message"));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next field as (number, value); `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Val<'a>)>, PushError> {
        if self.pos >= self.b.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let num = key >> 3;
        if num == 0 {
            return Err(bad("field number 0"));
        }
        let val = match key & 7 {
            0 => Val::Int(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Val::Int(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            }
            2 => {
                let n = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                Val::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Val::Int(u64::from(u32::from_le_bytes(
                    b.try_into().unwrap_or([0; 4]),
                )))
            }
            t => return Err(bad(&format!("unsupported wire type {t}"))),
        };
        Ok(Some((num, val)))
    }
}

fn bytes_field<'a>(v: Val<'a>, what: &str) -> Result<&'a [u8], PushError> {
    match v {
        Val::Bytes(b) => Ok(b),
        Val::Int(_) => Err(bad(&format!("{what}: invalid wire type"))),
    }
}

fn int_field(v: Val<'_>, what: &str) -> Result<u64, PushError> {
    match v {
        Val::Int(i) => Ok(i),
        Val::Bytes(_) => Err(bad(&format!("{what}: invalid wire type"))),
    }
}

/// Decodes a `google.protobuf.Timestamp`, merging into `(seconds, nanos)` as protobuf does
/// when the field repeats.
fn timestamp(b: &[u8], t: &mut (i64, i32)) -> Result<(), PushError> {
    let mut w = Wire::new(b);
    while let Some((num, v)) = w.field()? {
        match num {
            1 => t.0 = int_field(v, "Timestamp.seconds")? as i64,
            2 => t.1 = int_field(v, "Timestamp.nanos")? as i32,
            _ => {}
        }
    }
    Ok(())
}

fn label_pair(b: &[u8]) -> Result<(&[u8], &[u8]), PushError> {
    let mut w = Wire::new(b);
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    while let Some((num, v)) = w.field()? {
        match num {
            1 => name = bytes_field(v, "LabelPair.name")?,
            2 => value = bytes_field(v, "LabelPair.value")?,
            _ => {}
        }
    }
    Ok((name, value))
}

/// Sorts an entry's metadata run as [`Labels::from_pairs`] would: by name, the last of equal
/// names wins, empty values dropped.
fn canonical_meta(meta: &mut Vec<MetaPair<'_>>, start: usize) {
    let run = &mut meta[start..];
    if run.len() > 1 {
        // Stable, so equal names keep their order and the last one is kept below.
        run.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mut w = start;
    for r in start..meta.len() {
        let last_of_name = r + 1 == meta.len() || meta[r + 1].0 != meta[r].0;
        if last_of_name && !meta[r].1.is_empty() {
            meta.swap(w, r);
            w += 1;
        }
    }
    meta.truncate(w);
}

fn entry<'a>(b: &'a [u8], meta: &mut Vec<MetaPair<'a>>) -> Result<EntryView<'a>, PushError> {
    let mut w = Wire::new(b);
    let mut ts = (0i64, 0i32);
    let mut line: &[u8] = b"";
    let start = meta.len();
    while let Some((num, v)) = w.field()? {
        match num {
            1 => timestamp(bytes_field(v, "EntryAdapter.timestamp")?, &mut ts)?,
            2 => line = bytes_field(v, "EntryAdapter.line")?,
            3 => {
                let (k, v) = label_pair(bytes_field(v, "EntryAdapter.structuredMetadata")?)?;
                meta.push((lossy(k), lossy(v)));
            }
            _ => {}
        }
    }
    canonical_meta(meta, start);
    Ok(EntryView {
        ts: ts
            .0
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(ts.1)),
        line: lossy(line),
        meta: start..meta.len(),
    })
}

/// Decodes an uncompressed protobuf `PushRequest`, borrowing lines and metadata from `raw`.
/// Same answers as decoding with prost: 400 `failed to parse proto: …` when malformed,
/// 413/400 from the stream label checks.
pub fn decode_protobuf_view<'a>(
    raw: &'a [u8],
    limits: &DecodeLimits,
) -> Result<PushView<'a>, PushError> {
    let mut view = PushView::default();
    let mut w = Wire::new(raw);
    while let Some((num, v)) = w.field()? {
        if num != 1 {
            continue;
        }
        let mut s = Wire::new(bytes_field(v, "PushRequest.streams")?);
        let mut labels: &[u8] = b"";
        let mut entries = Vec::new();
        while let Some((num, v)) = s.field()? {
            match num {
                1 => labels = bytes_field(v, "StreamAdapter.labels")?,
                2 => entries.push(entry(
                    bytes_field(v, "StreamAdapter.entries")?,
                    &mut view.meta,
                )?),
                _ => {}
            }
        }
        let labels = parse_stream_labels(&lossy(labels), limits)?;
        view.streams.push(StreamView { labels, entries });
    }
    Ok(view)
}

/// The streams of an uncompressed protobuf `PushRequest` without decoding their entries:
/// each stream's labels, parsed as [`decode_protobuf_view`] does, and its whole encoded
/// `PushRequest.streams` field. Any of these fields concatenated make a valid
/// `PushRequest` (the gateway splits pushes by stream so).
pub fn raw_streams<'a>(
    raw: &'a [u8],
    limits: &DecodeLimits,
) -> Result<Vec<(Labels, &'a [u8])>, PushError> {
    let mut out = Vec::new();
    let mut w = Wire::new(raw);
    loop {
        let start = w.pos;
        let Some((num, v)) = w.field()? else {
            return Ok(out);
        };
        if num != 1 {
            continue;
        }
        let mut s = Wire::new(bytes_field(v, "PushRequest.streams")?);
        let mut labels: &[u8] = b"";
        while let Some((num, v)) = s.field()? {
            if num == 1 {
                labels = bytes_field(v, "StreamAdapter.labels")?;
            }
        }
        let labels = parse_stream_labels(&lossy(labels), limits)?;
        out.push((labels, &raw[start..w.pos]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::to_wire;
    use crate::wire::{EntryPb, LabelPairPb, PushRequestPb, StreamPb, TimestampPb};
    use prost::Message;

    #[test]
    fn raw_streams_split_into_valid_requests() {
        let stream = |app: &str, n: i64| PushStream {
            labels: Labels::from_pairs([("app", app)]),
            entries: (0..n)
                .map(|i| Entry {
                    ts: i,
                    line: format!("{app} {i}"),
                    metadata: Labels::from_pairs([("k", "v")]),
                })
                .collect(),
        };
        let all = vec![stream("a", 3), stream("b", 2), stream("c", 1)];
        let raw = to_wire(&all).encode_to_vec();
        let limits = DecodeLimits::default();
        let parts = raw_streams(&raw, &limits).unwrap();
        let apps: Vec<String> = parts.iter().map(|(l, _)| l.to_string()).collect();
        assert_eq!(apps, [r#"{app="a"}"#, r#"{app="b"}"#, r#"{app="c"}"#]);
        let some = [parts[0].1, parts[2].1].concat();
        let back = decode_protobuf_view(&some, &limits).unwrap().to_request();
        assert_eq!(back.streams, [all[0].clone(), all[2].clone()]);
        assert!(raw_streams(&raw[..raw.len() - 1], &limits).is_err());
    }

    #[test]
    fn same_request_as_prost() {
        let streams = vec![PushStream {
            labels: Labels::from_pairs([("app", "a")]),
            entries: vec![
                Entry {
                    ts: -1_500_000_000,
                    line: "héllo".into(),
                    metadata: Labels::from_pairs([("z", "1"), ("a", "2")]),
                },
                Entry {
                    ts: 1_704_067_200_123_456_789,
                    line: String::new(),
                    metadata: Labels::new(),
                },
            ],
        }];
        let raw = to_wire(&streams).encode_to_vec();
        let v = decode_protobuf_view(&raw, &DecodeLimits::default()).unwrap();
        assert_eq!(v.to_request().streams, streams);
    }

    #[test]
    fn metadata_is_canonical_and_bad_utf8_replaced() {
        let pair = |k: &[u8], v: &[u8]| LabelPairPb {
            name: k.to_vec(),
            value: v.to_vec(),
        };
        let pb = PushRequestPb {
            streams: vec![StreamPb {
                labels: b"{a=\"1\"}".to_vec(),
                entries: vec![EntryPb {
                    timestamp: Some(TimestampPb {
                        seconds: 2,
                        nanos: 3,
                    }),
                    line: b"x\xffy".to_vec(),
                    structured_metadata: vec![
                        pair(b"b", b"1"),
                        pair(b"a", b"1"),
                        pair(b"b", b"2"),
                        pair(b"e", b""),
                    ],
                    parsed: vec![pair(b"ignored", b"x")],
                }],
                hash: 9,
            }],
            format: b"x".to_vec(),
        };
        let raw = pb.encode_to_vec();
        let v = decode_protobuf_view(&raw, &DecodeLimits::default()).unwrap();
        let e = &v.to_request().streams[0].entries[0];
        assert_eq!(e.ts, 2_000_000_003);
        assert_eq!(e.line, "x\u{FFFD}y");
        assert_eq!(e.metadata, Labels::from_pairs([("a", "1"), ("b", "2")]));
    }

    #[test]
    fn malformed_is_an_error_not_a_panic() {
        let streams = vec![PushStream {
            labels: Labels::from_pairs([("app", "a")]),
            entries: vec![Entry {
                ts: 5,
                line: "some line".into(),
                metadata: Labels::from_pairs([("k", "v")]),
            }],
        }];
        let raw = to_wire(&streams).encode_to_vec();
        for cut in 1..raw.len() {
            // Every prefix either fails cleanly or decodes (when cut at a field boundary).
            let _ = decode_protobuf_view(&raw[..cut], &DecodeLimits::default());
        }
        let e = decode_protobuf_view(b"\x0a\xff\xff\xff\xff\x0f", &DecodeLimits::default())
            .unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("proto"), "{}", e.message());
        assert!(decode_protobuf_view(b"\x0b", &DecodeLimits::default()).is_err());
        assert!(decode_protobuf_view(b"\x00", &DecodeLimits::default()).is_err());
    }
}
