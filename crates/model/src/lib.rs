//! Core data types shared by every Silt crate.
//!
//! Owns: label sets, label matchers, log entries and time helpers.
//! Must not: do I/O, depend on async runtimes or on any other Silt crate.

mod labels;
mod matcher;

pub use labels::{Labels, LabelsBuilder};
pub use matcher::{str_eq, LabelMatcher, MatchOp, MatcherError};

/// Nanoseconds since the Unix epoch, the time unit used everywhere inside Silt.
pub type Timestamp = i64;

/// One log entry of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Entry time in nanoseconds since the epoch.
    pub ts: Timestamp,
    /// The log line.
    pub line: String,
    /// Structured metadata attached at ingest (sorted by name).
    pub metadata: Labels,
}

/// Direction in which log entries are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// Tenant (Loki "org id") that owns data.
pub type TenantId = String;

/// The tenant used when auth is disabled, as in Loki.
pub const DEFAULT_TENANT: &str = "fake";
