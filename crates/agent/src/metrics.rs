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
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
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
    pub compressed_resumes: Counter,
    pub bytes_behind: Family<SourceLabels, Gauge>,
    pub push_received_entries: Counter,
    pub buffer_bytes: Gauge,
    pub k8s_pods_cached: Gauge,
    pub journal_lines: Counter,
    pub journal_parse_errors: Family<ErrorLabels, Counter>,
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
            compressed_resumes: Counter::default(),
            bytes_behind: Family::default(),
            push_received_entries: Counter::default(),
            buffer_bytes: Gauge::default(),
            k8s_pods_cached: Gauge::default(),
            journal_lines: Counter::default(),
            journal_parse_errors: Family::default(),
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
            "silt_agent_file_bytes_behind",
            "Bytes of open files not yet acknowledged by the server (size minus position)",
            m.bytes_behind.clone(),
        );
        r.register(
            "silt_agent_compressed_resumes",
            "Files finished from their gzip'd rotation after a restart",
            m.compressed_resumes.clone(),
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
        r.register(
            "loki_source_journal_target_lines",
            "Journal entries read",
            m.journal_lines.clone(),
        );
        r.register(
            "loki_source_journal_target_parsing_errors",
            "Journal entries skipped or fields left out, by error",
            m.journal_parse_errors.clone(),
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
    // Custom metrics go before OpenMetrics' closing `# EOF`.
    let eof = s.rfind("# EOF").unwrap_or(s.len());
    let tail = s.split_off(eof);
    custom::render(&mut s);
    s.push_str(&tail);
    s
}

/// Metrics defined by `metrics` stages. They are written by hand rather than through the
/// registry: names must stay exactly as configured (prometheus-client would add `_total`)
/// and series come and go (idle ones expire), which Alloy does with unchecked collectors.
pub mod custom {
    use std::collections::HashMap;
    use std::fmt::Write;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// Kind of a custom metric.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Kind {
        Counter,
        Gauge,
        /// Upper bounds, ascending.
        Histogram(Vec<f64>),
    }

    /// Series key: label pairs, sorted.
    pub type SeriesLabels = Vec<(String, String)>;

    #[derive(Debug, Default)]
    struct Series {
        value: f64,
        /// Histogram: per-bucket (non-cumulative) counts, then sum and count.
        buckets: Vec<u64>,
        count: u64,
        touched: Option<Instant>,
    }

    /// One custom metric with its series.
    #[derive(Debug)]
    pub struct Custom {
        name: String,
        help: String,
        kind: Kind,
        max_idle: Duration,
        series: HashMap<SeriesLabels, Series>,
    }

    impl Custom {
        fn series(&mut self, labels: SeriesLabels) -> &mut Series {
            let n = match &self.kind {
                Kind::Histogram(b) => b.len(),
                _ => 0,
            };
            let s = self.series.entry(labels).or_insert_with(|| Series {
                buckets: vec![0; n],
                ..Series::default()
            });
            s.touched = Some(Instant::now());
            s
        }

        /// Counter/gauge: adds `d`.
        pub fn add(&mut self, labels: SeriesLabels, d: f64) {
            self.series(labels).value += d;
        }

        /// Gauge: sets `v`.
        pub fn set(&mut self, labels: SeriesLabels, v: f64) {
            self.series(labels).value = v;
        }

        /// Histogram: records `v`.
        pub fn observe(&mut self, labels: SeriesLabels, v: f64) {
            let bounds = match &self.kind {
                Kind::Histogram(b) => b.clone(),
                _ => return,
            };
            let s = self.series(labels);
            if let Some(i) = bounds.iter().position(|b| v <= *b) {
                s.buckets[i] += 1;
            }
            s.value += v;
            s.count += 1;
        }

        /// Whether this is a gauge (may go down).
        pub fn is_gauge(&self) -> bool {
            self.kind == Kind::Gauge
        }

        fn prune(&mut self, now: Instant) {
            let idle = self.max_idle;
            self.series
                .retain(|_, s| s.touched.is_some_and(|t| now.duration_since(t) < idle));
        }
    }

    type Store = Mutex<Vec<Arc<Mutex<Custom>>>>;

    fn store() -> &'static Store {
        static S: OnceLock<Store> = OnceLock::new();
        S.get_or_init(Default::default)
    }

    /// The metric `name`, created on first use; stages defining the same name share it
    /// (as sources sharing a pipeline config should), unless the kinds differ.
    pub fn get_or_register(
        name: &str,
        help: &str,
        kind: Kind,
        max_idle: Duration,
    ) -> Result<Arc<Mutex<Custom>>, String> {
        let mut all = store().lock().map_err(|_| "metrics store poisoned")?;
        for m in all.iter() {
            let g = m.lock().map_err(|_| "metrics store poisoned")?;
            if g.name == name {
                if g.kind != kind {
                    return Err(format!("metric {name} is already defined as another type"));
                }
                return Ok(m.clone());
            }
        }
        let m = Arc::new(Mutex::new(Custom {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            max_idle,
            series: HashMap::new(),
        }));
        all.push(m.clone());
        Ok(m)
    }

    fn num(v: f64) -> String {
        if v.is_nan() {
            "NaN".into()
        } else if v.is_infinite() {
            if v > 0.0 { "+Inf" } else { "-Inf" }.into()
        } else {
            v.to_string()
        }
    }

    fn labels(out: &mut String, l: &[(String, String)], extra: Option<(&str, &str)>) {
        let mut pairs: Vec<(&str, &str)> =
            l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.extend(extra);
        if pairs.is_empty() {
            return;
        }
        out.push('{');
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }

    /// Appends every custom metric in text format, first dropping idle series.
    pub fn render(out: &mut String) {
        let Ok(all) = store().lock() else { return };
        let now = Instant::now();
        for m in all.iter() {
            let Ok(mut m) = m.lock() else { continue };
            m.prune(now);
            let name = m.name.clone();
            let ty = match m.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram(_) => "histogram",
            };
            let help = m.help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {ty}");
            let mut series: Vec<_> = m.series.iter().collect();
            series.sort_by(|a, b| a.0.cmp(b.0));
            for (l, s) in series {
                match &m.kind {
                    Kind::Counter | Kind::Gauge => {
                        out.push_str(&name);
                        labels(out, l, None);
                        let _ = writeln!(out, " {}", num(s.value));
                    }
                    Kind::Histogram(bounds) => {
                        let mut cum = 0;
                        for (b, c) in bounds.iter().zip(&s.buckets) {
                            cum += c;
                            let _ = write!(out, "{name}_bucket");
                            labels(out, l, Some(("le", &num(*b))));
                            let _ = writeln!(out, " {cum}");
                        }
                        let _ = write!(out, "{name}_bucket");
                        labels(out, l, Some(("le", "+Inf")));
                        let _ = writeln!(out, " {}", s.count);
                        let _ = write!(out, "{name}_sum");
                        labels(out, l, None);
                        let _ = writeln!(out, " {}", num(s.value));
                        let _ = write!(out, "{name}_count");
                        labels(out, l, None);
                        let _ = writeln!(out, " {}", s.count);
                    }
                }
            }
        }
    }
}
