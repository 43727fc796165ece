//! The LogQL query engine.
//!
//! Owns: running log pipelines over entries, extracting samples, range and
//! vector aggregations, binary operations, and log-query ordering/limits.
//! Reads data only through the [`LogSource`] trait; it must know nothing of
//! disks, segments or object stores.
//!
//! ```text
//!  LogSource::select ──► StreamCursor (entries per stream, in time order)
//!        │
//!        ▼
//!  Pipeline::process  (line filters, parsers, label filters, formatting)
//!        │                         │
//!        ▼                         ▼
//!  log query: merge, limit   SampleExtractor ──► range aggregation per step
//!        │                                           │
//!        ▼                                           ▼
//!  QueryResult::Streams          vector aggregation / binary ops ──► Matrix / Vector / Scalar
//! ```

pub mod engine;
pub mod error;
pub mod fields;
pub mod logpipe;
pub mod needles;
pub mod patterns;
pub mod result;
pub mod source;
pub mod stats;

pub use error::{Error, Result};
pub use logpipe::{EntryLabels, Pipeline, SampleExtractor};
pub use result::{LogRow, QueryResult, Sample, Series, StreamResult};
pub use source::{
    Entries, EntryCursor, LinePredicate, LogSource, SelectRequest, Shards, Step, StreamCursor,
    Visitor,
};
pub use stats::Stats;
