//! Loki wire formats for Silt's push path.
//!
//! * [`decode_push`]: protobuf (raw-block snappy), JSON v1 and legacy JSON bodies, with
//!   gzip/deflate outer encodings and bounded decompression.
//! * [`validate_and_enrich`]: Loki's distributor checks and ingest-time enrichment
//!   (`service_name`, `detected_level`, structured-metadata name normalisation), with
//!   partial-success error aggregation.
//! * [`parse_label_string`], [`validate_tenant`]: label strings and tenant IDs.
//! * [`encode_push_protobuf`], [`encode_push_json`]: client-side encoders.
//! * [`decode_otlp_logs`]: `/otlp/v1/logs` (protobuf or JSON) mapped to push streams.
//!
//! Typical server use:
//!
//! ```
//! use silt_proto::{decode_push, encode_push_protobuf, validate_and_enrich, DecodeLimits, PushStream, ValidationLimits};
//! use silt_model::{Entry, Labels};
//!
//! let now = 1_704_067_200_000_000_000;
//! let body = encode_push_protobuf(&[PushStream {
//!     labels: Labels::from_pairs([("app", "web")]),
//!     entries: vec![Entry { ts: now, line: "level=error msg=boom".into(), metadata: Labels::new() }],
//! }]);
//! // Headers: Content-Type, Content-Encoding; `legacy_json` is true on /api/prom/push.
//! let req = match decode_push(&body, Some("application/x-protobuf"), None, false, &DecodeLimits::default()) {
//!     Ok(r) => r,
//!     Err(e) => panic!("answer {} with body {:?}", e.status(), e.message()),
//! };
//! let v = validate_and_enrich(req, &ValidationLimits::default(), now);
//! // Write v.streams (even on 400: partial success), then answer v.status() (204/400/422)
//! // with v.error's message as a plain-text body.
//! assert_eq!(v.status(), 204);
//! assert_eq!(v.streams[0].labels.get("service_name"), Some("web"));
//! assert_eq!(v.streams[0].entries[0].metadata.get("detected_level"), Some("error"));
//! ```
//!
//! Owns: the push wire formats. Must not: do I/O or know about HTTP frameworks or storage.

pub mod enrich;
mod error;
mod json;
mod keywords;
pub mod labels;
pub mod otlp;
pub mod push;
pub mod remote_write;
pub mod time;
pub mod validate;
pub mod view;
pub mod wire;

pub use enrich::{detect_log_level, normalize_log_level, Fields, LevelDetection};
pub use error::PushError;
pub use labels::{
    is_valid_label_name, parse_label_string, validate_tenant, LabelParseError, TenantError,
};
pub use otlp::{decode_otlp_logs, encode_otlp_error};
pub use push::{
    body_format, decode_push, decode_push_body, encode_push_json, encode_push_protobuf,
    snappy_compress, BodyFormat, DecodeLimits, PushBody, PushRequest, PushStream,
};
pub use validate::{
    group_errors, validate_and_enrich, validate_view, CheckedPush, ValidatedPush, ValidationLimits,
};
pub use view::{decode_protobuf_view, raw_streams, EntryView, MetaPair, PushView, StreamView};
