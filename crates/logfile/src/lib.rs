//! Log file conventions shared by `silt-agent` and `silt import`, so that a file shipped
//! live and the same file imported later get the same streams and timestamps:
//!
//! * [`airflow`]: labels and structured metadata from Airflow task log paths;
//! * [`LineClock`]: each line's time from the line itself (Airflow, RFC 3339 / ISO 8601,
//!   common log format, syslog, JSON), continuation lines keeping their record's time;
//! * [`write_atomic`]: state files (positions, cursors, checkpoints) replaced atomically
//!   and durably.
//!
//! No regular expressions: the clock runs on every line the agent reads.

mod airflow;
mod durable;
mod timestamp;

pub use airflow::{airflow, PathInfo};
pub use durable::{atomic_temp, write_atomic};
pub use timestamp::{parse_line_time, ClockState, LineClock};
