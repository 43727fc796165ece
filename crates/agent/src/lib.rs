//! `silt-agent`: the node log collector.
//!
//! ```text
//!  file / kubernetes_pods / airflow ──┐ (reader thread per source: tail, decode CRI/docker,
//!  journal (journalctl child) ────────┤  relabel targets, run stages)
//!  loki_push (disk buffer) ───────────┤
//!                                     ▼ bounded channel (back-pressure stops reading)
//!                               client task: batch by size/time, push protobuf+snappy,
//!                               retry 429/5xx/conn errors ─► acks back to each source
//!                                     │
//!                    sources persist positions only up to acknowledged offsets
//! ```
//!
//! Owns: sources, stages, the push client. Must not: depend on server-side storage.

pub mod client;
pub mod config;
pub mod error;
pub mod file;
pub mod glob;
pub mod journal;
pub mod k8s;
pub mod k8s_events;
pub mod metrics;
pub mod net;
pub mod push_source;
pub mod relabel;
pub mod run;
pub mod stages;
pub mod units;

pub use error::{Error, Result};

use silt_model::{Entry, Labels};
use std::collections::BTreeMap;

/// Where an entry came from, so the client can report delivery back to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Index of the source in the config.
    pub source: usize,
    /// Source-defined unit (file id, buffer segment).
    pub unit: u64,
    /// Position safe to resume from once this entry and everything before it is delivered.
    pub offset: u64,
}

/// An entry flowing through stages. Labels starting with `__` are internal and stripped
/// before sending (`__tenant_id__` selects the tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub labels: Labels,
    pub entry: Entry,
    /// Values extracted by parsing stages, read by later stages.
    pub extracted: BTreeMap<String, String>,
    pub ack: Option<Ack>,
}

/// What a source hands to the client.
#[derive(Debug, Clone)]
pub enum Item {
    Record(Record),
    /// A position with nothing to send (line dropped by a stage): acknowledged in order.
    Ack(Ack),
}

/// Label carrying a per-entry tenant.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// Removes internal (`__`-prefixed) labels.
pub fn strip_internal(labels: &mut Labels) {
    if !labels.iter().any(|(k, _)| k.starts_with("__")) {
        return;
    }
    let internal: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.starts_with("__"))
        .map(|(k, _)| k.to_string())
        .collect();
    for k in internal {
        labels.remove(&k);
    }
}

/// Current time in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
