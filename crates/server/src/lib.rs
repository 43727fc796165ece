//! The Loki-compatible HTTP API of `silt server`.
//!
//! Owns: routes, tenant resolution, push limits, parameter parsing, response
//! encoding and metrics. Wiring of storage and the query engine lives in `app.rs`.
//! Must not: implement storage or LogQL semantics itself.

mod app;
pub mod config;
mod decode_pool;
mod delete;
mod discovery;
mod drilldown;
pub mod encode;
mod gateway;
mod limiter;
mod limits;
pub mod metrics;
pub mod params;
mod push;
mod query;
mod refusals;
mod ruler;
mod tail;
pub mod tls;
mod ui;
mod unflushed;

pub use app::{router, run, AppState};
pub use config::Config;
