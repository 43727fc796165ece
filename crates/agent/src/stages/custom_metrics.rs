//! `metrics`: counters, gauges and histograms from extracted values (Promtail's shape:
//! `metrics: {name: {type, description, source, prefix, max_idle_duration, config}}`),
//! exposed on the agent's /metrics. Series are labelled with the entry's labels (minus
//! internal `__` ones) and dropped after `max_idle_duration` without updates.

use super::MapStage;
use crate::metrics::custom::{self, Custom, Kind, SeriesLabels};
use crate::Record;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Metric name → definition.
pub type MetricsConfig = BTreeMap<String, MetricDef>;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum MetricType {
    #[serde(alias = "counter")]
    Counter,
    #[serde(alias = "gauge")]
    Gauge,
    #[serde(alias = "histogram")]
    Histogram,
}

/// One metric.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDef {
    #[serde(rename = "type")]
    pub kind: MetricType,
    #[serde(default)]
    pub description: Option<String>,
    /// Extracted key read; default the metric's name.
    #[serde(default)]
    pub source: Option<String>,
    /// Default `loki_process_custom_`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Default 5m, at least 1s.
    #[serde(default, deserialize_with = "crate::units::de_opt_duration")]
    pub max_idle_duration: Option<Duration>,
    #[serde(default)]
    pub config: MetricOpts,
}

/// The `config` block.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricOpts {
    /// Only count when the source value equals this.
    #[serde(default)]
    pub value: Option<String>,
    /// Counter: `inc`/`add`; gauge: `set`/`inc`/`dec`/`add`/`sub`.
    #[serde(default)]
    pub action: Option<String>,
    /// Counter: count every entry, source or not.
    #[serde(default)]
    pub match_all: bool,
    /// Counter with `match_all` and `add`: add the line's bytes.
    #[serde(default)]
    pub count_entry_bytes: bool,
    /// Histogram upper bounds (default Prometheus' 0.005 … 10).
    #[serde(default)]
    pub buckets: Option<Vec<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Inc,
    Dec,
    Add,
    Sub,
    Set,
    Observe,
}

struct Metric {
    source: String,
    value: Option<String>,
    action: Action,
    match_all: bool,
    count_bytes: bool,
    m: Arc<Mutex<Custom>>,
}

pub struct Metrics(Vec<Metric>);

fn valid_metric_name(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Metrics {
    pub fn new(c: &MetricsConfig) -> Result<Metrics, String> {
        c.iter()
            .map(|(name, d)| build(name, d).map_err(|e| format!("metric {name}: {e}")))
            .collect::<Result<_, _>>()
            .map(Metrics)
    }
}

fn build(name: &str, d: &MetricDef) -> Result<Metric, String> {
    let o = &d.config;
    let max_idle = d.max_idle_duration.unwrap_or(Duration::from_secs(300));
    if max_idle < Duration::from_secs(1) {
        return Err("max_idle_duration must be greater or equal than 1s".into());
    }
    let action = o.action.as_deref().unwrap_or("");
    let (kind, action) = match d.kind {
        MetricType::Counter => {
            let a = match action {
                "inc" => Action::Inc,
                "add" => Action::Add,
                _ => return Err("the 'action' counter field must be either 'inc' or 'add'".into()),
            };
            if o.match_all && o.value.is_some() {
                return Err(
                    "a 'counter' metric supports either 'match_all' or a 'value', but not both"
                        .into(),
                );
            }
            if o.count_entry_bytes && (!o.match_all || a != Action::Add) {
                return Err("'count_entry_bytes' needs match_all: true and action: add".into());
            }
            (Kind::Counter, a)
        }
        MetricType::Gauge => {
            let a = match action {
                "set" => Action::Set,
                "inc" => Action::Inc,
                "dec" => Action::Dec,
                "add" => Action::Add,
                "sub" => Action::Sub,
                _ => {
                    return Err(
                        "the 'action' gauge field must be one of set, inc, dec, add, sub".into(),
                    )
                }
            };
            (Kind::Gauge, a)
        }
        MetricType::Histogram => {
            let b = o.buckets.clone().unwrap_or_else(|| {
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]
            });
            if b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|x| x.is_nan()) {
                return Err("buckets must be in increasing order".into());
            }
            (Kind::Histogram(b), Action::Observe)
        }
    };
    let full = format!(
        "{}{name}",
        d.prefix
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("loki_process_custom_")
    );
    if !valid_metric_name(&full) {
        return Err(format!("invalid metric name {full:?}"));
    }
    let m = custom::get_or_register(
        &full,
        d.description.as_deref().unwrap_or(""),
        kind,
        max_idle,
    )?;
    Ok(Metric {
        source: d
            .source
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| name.to_string()),
        value: o.value.clone().filter(|v| !v.is_empty()),
        action,
        match_all: o.match_all,
        count_bytes: o.count_entry_bytes,
        m,
    })
}

/// Alloy's getFloat for a string: a float, else a Go duration in seconds. Bools (JSON
/// values Alloy keeps typed) count as 1/0.
fn to_float(v: &str) -> Option<f64> {
    match v {
        "true" => return Some(1.0),
        "false" => return Some(0.0),
        _ => {}
    }
    v.parse::<f64>()
        .ok()
        .or_else(|| silt_logql::units::parse_go_duration(v).map(|ns| ns as f64 / 1e9))
}

fn series_labels(rec: &Record) -> SeriesLabels {
    rec.labels
        .iter()
        .filter(|(k, _)| !k.starts_with("__") && silt_proto::is_valid_label_name(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl MapStage for Metrics {
    fn apply(&mut self, rec: &mut Record) -> bool {
        for mt in &self.0 {
            let v: Option<&str> = if mt.match_all {
                None
            } else {
                match rec.extracted.get(&mt.source) {
                    Some(v) => Some(v),
                    None => continue,
                }
            };
            if let (Some(want), Some(v)) = (&mt.value, v) {
                if want != v {
                    continue;
                }
            }
            // match_all has no value: only inc and count_entry_bytes apply.
            let f = if mt.count_bytes {
                Some(rec.entry.line.len() as f64)
            } else {
                v.and_then(to_float)
            };
            let Ok(mut m) = mt.m.lock() else { continue };
            let l = series_labels(rec);
            match (mt.action, f) {
                (Action::Inc, _) => m.add(l, 1.0),
                (Action::Dec, _) => m.add(l, -1.0),
                // A counter never decreases (Go's client would panic).
                (Action::Add, Some(f)) if f >= 0.0 || m.is_gauge() => m.add(l, f),
                (Action::Sub, Some(f)) => m.add(l, -f),
                (Action::Set, Some(f)) => m.set(l, f),
                (Action::Observe, Some(f)) => m.observe(l, f),
                _ => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::metrics::render;

    fn line<'a>(m: &'a str, prefix: &str) -> Vec<&'a str> {
        m.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn counters_gauges_histograms() {
        let y = r#"
- logfmt: {}
- metrics:
    t_lines_total:
      type: Counter
      description: all lines
      config: {match_all: true, action: inc}
    t_bytes_total:
      type: Counter
      config: {match_all: true, count_entry_bytes: true, action: add}
    t_errors_total:
      type: counter
      source: level
      config: {value: error, action: inc}
    t_size_total:
      type: Counter
      source: size
      prefix: my_
      config: {action: add}
    t_inflight:
      type: Gauge
      source: delta
      config: {action: add}
    t_latency:
      type: Histogram
      source: took
      config: {buckets: [0.1, 1]}
"#;
        let mut p = pipeline(y);
        let mut out = vec![];
        for l in [
            "level=error size=10 delta=2 took=50ms",
            "level=info size=-3 delta=-5 took=0.5",
            "level=error took=7s",
            "nothing",
        ] {
            p.process(rec(l), &mut out);
        }
        assert_eq!(out.len(), 4);
        let m = render();
        assert!(m.contains("# HELP loki_process_custom_t_lines_total all lines\n# TYPE loki_process_custom_t_lines_total counter\n"), "{m}");
        assert_eq!(
            line(&m, "loki_process_custom_t_lines_total{"),
            ["loki_process_custom_t_lines_total{job=\"test\"} 4"]
        );
        assert_eq!(
            line(&m, "loki_process_custom_t_bytes_total{"),
            ["loki_process_custom_t_bytes_total{job=\"test\"} 99"]
        );
        assert_eq!(
            line(&m, "loki_process_custom_t_errors_total{"),
            ["loki_process_custom_t_errors_total{job=\"test\"} 2"]
        );
        // negative adds to a counter are ignored
        assert_eq!(
            line(&m, "my_t_size_total{"),
            ["my_t_size_total{job=\"test\"} 10"]
        );
        assert_eq!(
            line(&m, "loki_process_custom_t_inflight{"),
            ["loki_process_custom_t_inflight{job=\"test\"} -3"]
        );
        assert_eq!(
            line(&m, "loki_process_custom_t_latency"),
            [
                "loki_process_custom_t_latency_bucket{job=\"test\",le=\"0.1\"} 1",
                "loki_process_custom_t_latency_bucket{job=\"test\",le=\"1\"} 2",
                "loki_process_custom_t_latency_bucket{job=\"test\",le=\"+Inf\"} 3",
                "loki_process_custom_t_latency_sum{job=\"test\"} 7.55",
                "loki_process_custom_t_latency_count{job=\"test\"} 3",
            ]
        );
        assert!(m.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn bad_configs_and_idle_expiry() {
        for bad in [
            "{m: {type: Counter, config: {action: set}}}",
            "{m: {type: Counter, config: {action: inc, match_all: true, value: x}}}",
            "{m: {type: Counter, config: {action: inc, match_all: true, count_entry_bytes: true}}}",
            "{m: {type: Gauge, config: {action: observe}}}",
            "{m: {type: Histogram, config: {buckets: [2, 1]}}}",
            "{m: {type: Counter, max_idle_duration: 10ms, config: {action: inc}}}",
            "{m-x: {type: Counter, config: {action: inc}}}",
            "{t_dup: {type: Gauge, config: {action: inc}}}",
        ] {
            let c: super::MetricsConfig = serde_yaml::from_str(bad).unwrap();
            // one name, two types
            let _ = super::Metrics::new(
                &serde_yaml::from_str("{t_dup: {type: Counter, config: {action: inc}}}").unwrap(),
            );
            assert!(super::Metrics::new(&c).is_err(), "{bad}");
        }
        let mut p = pipeline("- metrics: {t_idle: {type: Counter, max_idle_duration: 1s, config: {match_all: true, action: inc}}}\n");
        let mut out = vec![];
        p.process(rec("x"), &mut out);
        assert_eq!(line(&render(), "loki_process_custom_t_idle{").len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(line(&render(), "loki_process_custom_t_idle{").is_empty());
    }
}
