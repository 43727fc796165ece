//! Process-wide metrics, named as Alloy's where one exists so dashboards keep working.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabels {
    pub field: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: String,
}

/// All agent metrics.
pub struct Metrics {
    pub sent_entries: Counter,
    pub sent_bytes: Counter,
    pub dropped_entries: Family<ReasonLabels, Counter>,
    pub dropped_bytes: Family<ReasonLabels, Counter>,
    pub batch_retries: Counter,
    pub requests: Family<StatusLabels, Counter>,
    pub read_bytes: Counter,
    pub read_lines: Counter,
    pub files_active: Gauge,
    pub process_dropped_lines: Family<ReasonLabels, Counter>,
    pub truncated_lines: Counter,
    pub truncated_fields: Family<FieldLabels, Counter>,
    pub rotations: Counter,
    pub truncations: Counter,
    pub push_received_entries: Counter,
    pub buffer_bytes: Gauge,
    pub k8s_pods_cached: Gauge,
    pub registry: Registry,
}

/// The global metrics.
pub fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let mut r = Registry::default();
        let m = Metrics {
            sent_entries: Counter::default(),
            sent_bytes: Counter::default(),
            dropped_entries: Family::default(),
            dropped_bytes: Family::default(),
            batch_retries: Counter::default(),
            requests: Family::default(),
            read_bytes: Counter::default(),
            read_lines: Counter::default(),
            files_active: Gauge::default(),
            process_dropped_lines: Family::default(),
            truncated_lines: Counter::default(),
            truncated_fields: Family::default(),
            rotations: Counter::default(),
            truncations: Counter::default(),
            push_received_entries: Counter::default(),
            buffer_bytes: Gauge::default(),
            k8s_pods_cached: Gauge::default(),
            registry: Registry::default(),
        };
        r.register(
            "loki_write_sent_entries",
            "Entries acknowledged by the server",
            m.sent_entries.clone(),
        );
        r.register(
            "loki_write_sent_bytes",
            "Line bytes acknowledged by the server",
            m.sent_bytes.clone(),
        );
        r.register(
            "loki_write_dropped_entries",
            "Entries dropped by the client, by reason",
            m.dropped_entries.clone(),
        );
        r.register(
            "loki_write_dropped_bytes",
            "Line bytes dropped by the client, by reason",
            m.dropped_bytes.clone(),
        );
        r.register(
            "loki_write_batch_retries",
            "Push retries",
            m.batch_retries.clone(),
        );
        r.register(
            "loki_write_requests",
            "Push requests by HTTP status (0 = transport error)",
            m.requests.clone(),
        );
        r.register(
            "loki_source_file_read_bytes",
            "Bytes read from tailed files",
            m.read_bytes.clone(),
        );
        r.register(
            "loki_source_file_read_lines",
            "Lines read from tailed files",
            m.read_lines.clone(),
        );
        r.register(
            "loki_source_file_files_active",
            "Files currently open",
            m.files_active.clone(),
        );
        r.register(
            "loki_source_file_rotations",
            "Rotations detected (rename or replace)",
            m.rotations.clone(),
        );
        r.register(
            "loki_source_file_truncations",
            "Truncations detected (copytruncate)",
            m.truncations.clone(),
        );
        r.register(
            "loki_source_file_truncated_lines",
            "Lines cut at max_line_size",
            m.truncated_lines.clone(),
        );
        r.register(
            "loki_process_dropped_lines",
            "Lines dropped by stages or line limits, by reason",
            m.process_dropped_lines.clone(),
        );
        r.register(
            "loki_process_truncated_fields",
            "Lines, labels, extracted values or structured metadata cut by truncate stages",
            m.truncated_fields.clone(),
        );
        r.register(
            "loki_source_api_entries_written",
            "Entries received on the push API",
            m.push_received_entries.clone(),
        );
        r.register(
            "silt_agent_buffer_bytes",
            "Bytes in the push receiver's disk buffer",
            m.buffer_bytes.clone(),
        );
        r.register(
            "silt_agent_kubernetes_pods_cached",
            "Pods in the Kubernetes metadata cache",
            m.k8s_pods_cached.clone(),
        );
        Metrics { registry: r, ..m }
    })
}

/// Counts a client-side drop.
pub fn count_dropped(reason: &str, entries: u64, bytes: u64) {
    let l = ReasonLabels {
        reason: reason.to_string(),
    };
    metrics().dropped_entries.get_or_create(&l).inc_by(entries);
    metrics().dropped_bytes.get_or_create(&l).inc_by(bytes);
}

/// Counts a line dropped before the client.
pub fn count_process_drop(reason: &str) {
    let l = ReasonLabels {
        reason: reason.to_string(),
    };
    metrics().process_dropped_lines.get_or_create(&l).inc();
}

/// Prometheus text exposition.
pub fn render() -> String {
    let mut s = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut s, &metrics().registry);
    s
}
