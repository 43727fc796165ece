//! Loki pushes split by stream across the writers (Loki's distributor): each stream goes
//! to one writer by rendezvous hashing of (tenant, stream labels), so one tenant's
//! ingest spreads over every writer while a stream's lines stay in order on one. Readers
//! ask every writer, so nothing depends on which writer holds a stream.

use silt_proto::{DecodeLimits, PushBody, PushStream};
use std::collections::BTreeMap;

/// Index into `writers` of the writer of a stream: it keeps its writer while the list is
/// unchanged, and only the streams of a removed writer move.
pub(super) fn writer_of(writers: &[String], tenant: &str, labels: &str) -> usize {
    (0..writers.len())
        .max_by_key(|&i| {
            xxhash_rust::xxh3::xxh3_64(format!("{tenant}\0{labels}\0{}", writers[i]).as_bytes())
        })
        .unwrap_or(0)
}

/// What to send where: one body per writer.
pub(super) enum Split {
    /// Every stream goes to this writer: forward the body unchanged.
    Whole(usize),
    /// Protobuf + snappy bodies (Loki's push format), one per writer.
    Parts(Vec<(usize, Vec<u8>)>),
}

/// Splits a Loki push body (protobuf, or JSON; `legacy`: `/api/prom/push`), any content
/// encoding. Protobuf streams are cut out of the request as encoded, their entries never
/// decoded. A body that does not decode goes whole to the writer of the tenant's first
/// place, which answers it with the error a single node gives.
pub(super) fn split(
    body: &[u8],
    (content_type, content_encoding): (Option<&str>, Option<&str>),
    legacy: bool,
    limits: &DecodeLimits,
    writers: &[String],
    tenant: &str,
) -> Split {
    let fallback = Split::Whole(writer_of(writers, tenant, ""));
    let decoded =
        silt_proto::decode_push_body(body, content_type, content_encoding, legacy, limits);
    let groups: BTreeMap<usize, Vec<u8>> = match decoded {
        Err(_) => return fallback,
        Ok(PushBody::Protobuf(raw)) => {
            let Ok(streams) = silt_proto::raw_streams(&raw, limits) else {
                return fallback;
            };
            let mut by_writer: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
            for (labels, field) in streams {
                let w = writer_of(writers, tenant, &labels.to_string());
                by_writer.entry(w).or_default().extend_from_slice(field);
            }
            by_writer
                .into_iter()
                .map(|(w, raw)| (w, silt_proto::snappy_compress(&raw)))
                .collect()
        }
        Ok(PushBody::Decoded(req)) => {
            let mut by_writer: BTreeMap<usize, Vec<PushStream>> = BTreeMap::new();
            for s in req.streams {
                let w = writer_of(writers, tenant, &s.labels.to_string());
                by_writer.entry(w).or_default().push(s);
            }
            by_writer
                .into_iter()
                .map(|(w, streams)| (w, silt_proto::encode_push_protobuf(&streams)))
                .collect()
        }
    };
    match groups.len() {
        0 => fallback,
        // One writer: the body as sent (no re-encoding).
        1 => Split::Whole(groups.into_keys().next().unwrap_or(0)),
        _ => Split::Parts(groups.into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_model::{Entry, Labels};

    fn streams(n: usize) -> Vec<PushStream> {
        (0..n)
            .map(|i| PushStream {
                labels: Labels::from_pairs([("app", format!("a{i}"))]),
                entries: vec![Entry {
                    ts: 1_700_000_000_000_000_000 + i as i64,
                    line: format!("line {i}"),
                    metadata: Labels::from_pairs([("trace_id", format!("{i:032x}"))]),
                }],
            })
            .collect()
    }

    #[test]
    fn streams_spread_over_writers_and_come_back_whole() {
        let w: Vec<String> = (0..3).map(|i| format!("http://w{i}")).collect();
        let pushed = streams(60);
        let body = silt_proto::encode_push_protobuf(&pushed);
        let limits = DecodeLimits::default();
        let ct = (Some("application/x-protobuf"), None);
        let Split::Parts(parts) = split(&body, ct, false, &limits, &w, "t") else {
            panic!("60 streams on one writer");
        };
        assert_eq!(parts.len(), 3);
        let mut back = Vec::new();
        for (i, b) in parts {
            let got = silt_proto::decode_push(&b, ct.0, None, false, &limits)
                .unwrap()
                .streams;
            assert!(got.len() > 5, "writer {i} got {} of 60 streams", got.len());
            for s in &got {
                assert_eq!(writer_of(&w, "t", &s.labels.to_string()), i);
            }
            back.extend(got);
        }
        back.sort_by(|a, b| a.labels.cmp(&b.labels));
        let mut want = pushed;
        want.sort_by(|a, b| a.labels.cmp(&b.labels));
        assert_eq!(back, want);

        // One stream: the body goes unchanged; one that does not decode, whole too.
        let one = silt_proto::encode_push_protobuf(&streams(1));
        assert!(matches!(
            split(&one, ct, false, &limits, &w, "t"),
            Split::Whole(_)
        ));
        assert!(matches!(
            split(b"junk", ct, false, &limits, &w, "t"),
            Split::Whole(_)
        ));
    }

    #[test]
    fn streams_keep_their_writer_unless_it_goes() {
        let w: Vec<String> = (0..3).map(|i| format!("http://w{i}")).collect();
        let labels: Vec<String> = (0..300).map(|i| format!("{{app=\"a{i}\"}}")).collect();
        let before: Vec<usize> = labels.iter().map(|l| writer_of(&w, "t", l)).collect();
        let fewer = &w[..2];
        for (l, b) in labels.iter().zip(&before) {
            if *b != 2 {
                assert_eq!(writer_of(fewer, "t", l), *b, "{l} moved");
            }
        }
    }
}
