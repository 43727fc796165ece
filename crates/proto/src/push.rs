//! Push request decoding (`/loki/api/v1/push`, `/api/prom/push`) and client-side encoding.

use crate::error::PushError;
use crate::labels::parse_label_string;
use crate::wire::{EntryPb, LabelPairPb, PushRequestPb, StreamPb, TimestampPb};
use prost::Message;
use silt_model::{Entry, Labels};
use std::io::Read;

/// A decoded push request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushRequest {
    /// Streams in request order (not merged; the same label set may appear twice).
    pub streams: Vec<PushStream>,
}

/// One stream of a push request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushStream {
    /// Parsed stream labels (sorted, empty values dropped).
    pub labels: Labels,
    /// Entries in request order; `metadata` holds the structured metadata as sent.
    pub entries: Vec<Entry>,
}

/// Size limits applied while decoding a push body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum body size as received, before any decompression (`distributor.max-recv-msg-size`).
    pub max_recv_msg_size: usize,
    /// Maximum size after gzip/deflate and after snappy decompression.
    pub max_decompressed_size: usize,
    /// Maximum length of one stream's label string.
    pub max_stream_labels_size: usize,
}

/// 1 MiB.
const MIB: usize = 1 << 20;

impl Default for DecodeLimits {
    /// Loki's defaults: 100 MiB received, 5000 MiB decompressed, 16 MiB per label string.
    fn default() -> Self {
        DecodeLimits {
            max_recv_msg_size: 100 * MIB,
            max_decompressed_size: 5000 * MIB,
            max_stream_labels_size: 16 * MIB,
        }
    }
}

/// Body format selected from `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// Snappy (raw block) compressed protobuf.
    Protobuf,
    /// JSON.
    Json,
}

/// Media type of a `Content-Type` header value (parameters dropped, lower-cased).
pub fn media_type(content_type: Option<&str>) -> String {
    content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The decoder Loki picks for a `Content-Type`: JSON for `application/json`, protobuf otherwise
/// (including a missing header).
pub fn body_format(content_type: Option<&str>) -> BodyFormat {
    if media_type(content_type) == "application/json" {
        BodyFormat::Json
    } else {
        BodyFormat::Protobuf
    }
}

fn too_large(what: &str, size: usize, max: usize) -> PushError {
    PushError::too_large(format!("{what} too large than max ({size} vs {max})"))
}

/// Reads all of `r`, failing with 413 once more than `max` bytes come out. Never buffers more
/// than `max + 1` bytes, whatever the compression ratio.
fn read_capped(r: impl Read, max: usize, what: &str) -> Result<Vec<u8>, PushError> {
    let mut out = Vec::new();
    let limit = (max as u64).saturating_add(1);
    let mut taken = r.take(limit);
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match taken.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if out.len() + n > max {
                    return Err(too_large("decompressed message size", out.len() + n, max));
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PushError::bad_request(format!("{what}: {e}"))),
        }
    }
    Ok(out)
}

/// Undoes the outer `Content-Encoding`. Returns the body unchanged for none/`snappy`.
fn decode_content_encoding<'a>(
    body: &'a [u8],
    content_encoding: Option<&str>,
    limits: &DecodeLimits,
) -> Result<std::borrow::Cow<'a, [u8]>, PushError> {
    use std::borrow::Cow;
    match content_encoding.unwrap_or("") {
        // Snappy decoding of protobuf bodies happens below; the header is optional.
        "" | "snappy" => Ok(Cow::Borrowed(body)),
        "gzip" => {
            let dec = flate2::read::MultiGzDecoder::new(body);
            read_capped(dec, limits.max_decompressed_size, "gzip").map(Cow::Owned)
        }
        "deflate" => {
            // Loki uses raw DEFLATE (Go's compress/flate); accept zlib-wrapped too, as HTTP
            // clients commonly send that for "deflate".
            let zlib = body.len() >= 2
                && body[0] & 0x0f == 8
                && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
            if zlib {
                read_capped(
                    flate2::read::ZlibDecoder::new(body),
                    limits.max_decompressed_size,
                    "flate",
                )
                .map(Cow::Owned)
            } else {
                read_capped(
                    flate2::read::DeflateDecoder::new(body),
                    limits.max_decompressed_size,
                    "flate",
                )
                .map(Cow::Owned)
            }
        }
        other => Err(PushError::bad_request(format!(
            "Content-Encoding {other:?} not supported"
        ))),
    }
}

/// Decompresses a raw (block) snappy buffer, checking the declared length before allocating.
pub fn snappy_decompress(body: &[u8], max_decompressed: usize) -> Result<Vec<u8>, PushError> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| PushError::bad_request(format!("snappy: {e}")))?;
    if len > max_decompressed {
        return Err(too_large(
            "decompressed message size",
            len,
            max_decompressed,
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| PushError::bad_request(format!("snappy: {e}")))
}

/// Parses one stream's label string as Loki's push parser does (413 when over the size limit,
/// 400 `couldn't parse labels: …` when malformed).
pub(crate) fn parse_stream_labels(s: &str, limits: &DecodeLimits) -> Result<Labels, PushError> {
    if s.len() > limits.max_stream_labels_size {
        return Err(PushError::too_large(format!(
            "request body too large: stream labels size {} exceeds limit of {}",
            s.len(),
            limits.max_stream_labels_size
        )));
    }
    parse_label_string(s).map_err(|e| PushError::bad_request(format!("couldn't parse labels: {e}")))
}

/// Decodes an uncompressed protobuf `PushRequest` into owned strings.
fn decode_protobuf_owned(raw: &[u8], limits: &DecodeLimits) -> Result<PushRequest, PushError> {
    Ok(crate::view::decode_protobuf_view(raw, limits)?.to_request())
}

/// A push body made ready for [`crate::view`] decoding: protobuf bodies are kept as the
/// uncompressed wire bytes (lines are borrowed from them), other formats are decoded.
pub enum PushBody {
    /// Uncompressed protobuf `PushRequest`.
    Protobuf(Vec<u8>),
    /// An already decoded request (JSON).
    Decoded(PushRequest),
}

impl PushBody {
    /// The request as a view; borrows the protobuf bytes or the decoded strings.
    pub fn view(&self, limits: &DecodeLimits) -> Result<crate::view::PushView<'_>, PushError> {
        match self {
            PushBody::Protobuf(raw) => crate::view::decode_protobuf_view(raw, limits),
            PushBody::Decoded(req) => Ok(crate::view::PushView::of(req)),
        }
    }
}

/// Like [`decode_push`], but leaves protobuf bodies undecoded (only decompressed) so that
/// [`PushBody::view`] can borrow their lines. Same errors as [`decode_push`].
pub fn decode_push_body(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    legacy_json: bool,
    limits: &DecodeLimits,
) -> Result<PushBody, PushError> {
    if body.len() > limits.max_recv_msg_size {
        return Err(too_large(
            "message size",
            body.len(),
            limits.max_recv_msg_size,
        ));
    }
    let body = decode_content_encoding(body, content_encoding, limits)?;
    match body_format(content_type) {
        BodyFormat::Json if legacy_json => {
            crate::json::decode_legacy_json(&body, limits).map(PushBody::Decoded)
        }
        BodyFormat::Json => crate::json::decode_json_v1(&body, limits).map(PushBody::Decoded),
        BodyFormat::Protobuf => {
            snappy_decompress(&body, limits.max_decompressed_size).map(PushBody::Protobuf)
        }
    }
}

/// Decodes a push request body the way Loki's `/loki/api/v1/push` handler does.
///
/// * `content_encoding`: none or `snappy` (ignored), `gzip`, `deflate`; anything else is 400
///   `Content-Encoding "x" not supported`. gzip/deflate wrap either format.
/// * `content_type`: `application/json` (params ignored) selects JSON — the v1 shape, or the
///   legacy `/api/prom/push` shape when `legacy_json` is set; anything else, including a
///   missing header, means raw-block-snappy protobuf.
/// * Sizes: the received body over `max_recv_msg_size`, or the gzip/deflate/snappy output over
///   `max_decompressed_size`, is 413; decompression stops at the cap. A label string over
///   `max_stream_labels_size` is 413.
/// * Malformed snappy/protobuf/JSON or a stream label string that does not parse is 400.
///
/// Streams are returned as sent (no validation, no `service_name`); see
/// [`crate::validate_and_enrich`].
pub fn decode_push(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    legacy_json: bool,
    limits: &DecodeLimits,
) -> Result<PushRequest, PushError> {
    match decode_push_body(body, content_type, content_encoding, legacy_json, limits)? {
        PushBody::Protobuf(raw) => decode_protobuf_owned(&raw, limits),
        PushBody::Decoded(req) => Ok(req),
    }
}

/// Builds the wire message for `streams` (labels rendered with `Labels`' Display).
pub fn to_wire(streams: &[PushStream]) -> PushRequestPb {
    PushRequestPb {
        streams: streams
            .iter()
            .map(|s| StreamPb {
                labels: s.labels.to_string().into_bytes(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| EntryPb {
                        timestamp: Some(TimestampPb::from_nanos(e.ts)),
                        line: e.line.as_bytes().to_vec(),
                        structured_metadata: e
                            .metadata
                            .iter()
                            .map(|(k, v)| LabelPairPb {
                                name: k.as_bytes().to_vec(),
                                value: v.as_bytes().to_vec(),
                            })
                            .collect(),
                        parsed: Vec::new(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: Vec::new(),
    }
}

/// Encodes streams as a Loki push body: protobuf `PushRequest`, raw-block snappy compressed
/// (send with `Content-Type: application/x-protobuf`).
pub fn encode_push_protobuf(streams: &[PushStream]) -> Vec<u8> {
    snappy_compress(&to_wire(streams).encode_to_vec())
}

/// Raw-block snappy compression, as push bodies use.
pub fn snappy_compress(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// Encodes streams as a JSON v1 push body (`Content-Type: application/json`).
pub fn encode_push_json(streams: &[PushStream]) -> Vec<u8> {
    use serde_json::{json, Map, Value};
    let streams: Vec<Value> = streams
        .iter()
        .map(|s| {
            let stream: Map<String, Value> = s
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect();
            let values: Vec<Value> = s
                .entries
                .iter()
                .map(|e| {
                    let mut v = vec![
                        Value::String(e.ts.to_string()),
                        Value::String(e.line.clone()),
                    ];
                    if !e.metadata.is_empty() {
                        let sm: Map<String, Value> = e
                            .metadata
                            .iter()
                            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                            .collect();
                        v.push(Value::Object(sm));
                    }
                    Value::Array(v)
                })
                .collect();
            json!({"stream": stream, "values": values})
        })
        .collect();
    serde_json::to_vec(&json!({ "streams": streams }))
        .expect("JSON encoding of strings cannot fail")
}
