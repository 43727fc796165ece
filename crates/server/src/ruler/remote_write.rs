//! Recording rules' samples to Prometheus remote write (1.0: protobuf, snappy). One
//! bounded in-memory queue and one sending task per receiver: evaluation only appends
//! (it never waits on the network), samples wait out a receiver that is down and are
//! delivered when it is back, and a full queue drops its oldest samples.

use crate::app::AppState;
use crate::config::RemoteWriteClient;
use crate::metrics::Metrics;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// One sample of a recording rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub tenant: String,
    /// `__name__` included.
    pub labels: Vec<(String, String)>,
    /// Evaluation time (ms).
    pub ms: i64,
    pub value: f64,
}

/// The queues of every configured receiver.
pub(crate) struct RemoteWriter {
    queues: Vec<Arc<Queue>>,
}

struct Queue {
    name: String,
    cfg: RemoteWriteClient,
    org_id: bool,
    /// Samples with a sequence number, so a batch that was sent can be removed even if
    /// the queue dropped or gained samples while it was in flight.
    samples: parking_lot::Mutex<(VecDeque<(u64, Sample)>, u64)>,
    wake: tokio::sync::Notify,
}

impl RemoteWriter {
    /// Starts a sending task per receiver; `None` when remote write is off.
    pub(crate) fn start(state: &Arc<AppState>) -> Option<RemoteWriter> {
        let rw = &state.cfg.ruler.remote_write;
        let receivers = rw.receivers();
        if receivers.is_empty() {
            return None;
        }
        let http = reqwest::Client::new();
        let queues = receivers
            .into_iter()
            .map(|(name, cfg)| {
                let q = Arc::new(Queue {
                    name,
                    cfg: cfg.clone(),
                    org_id: rw.add_org_id_header,
                    samples: Default::default(),
                    wake: Default::default(),
                });
                tokio::spawn(send_loop(state.clone(), http.clone(), q.clone()));
                q
            })
            .collect();
        Some(RemoteWriter { queues })
    }

    /// Queues `samples` for every receiver, at once.
    pub(crate) fn push(&self, metrics: &Metrics, samples: &[Sample]) {
        for q in &self.queues {
            let dropped = q.push(samples);
            metrics.ruler_rw_dropped.inc_by(dropped as u64);
            metrics
                .ruler_rw_queue
                .inc_by(samples.len() as i64 - dropped as i64);
        }
    }
}

impl Queue {
    /// Appends, dropping the oldest past capacity; returns how many were dropped.
    fn push(&self, samples: &[Sample]) -> usize {
        let cap = self.cfg.queue_config.capacity;
        let mut dropped = 0;
        {
            let mut guard = self.samples.lock();
            let (queue, next) = &mut *guard;
            for s in samples {
                if queue.len() >= cap {
                    queue.pop_front();
                    dropped += 1;
                }
                queue.push_back((*next, s.clone()));
                *next += 1;
            }
        }
        self.wake.notify_one();
        dropped
    }

    /// The oldest samples, up to `max_samples_per_send`, all of the first one's tenant
    /// (one tenant per request: `X-Scope-OrgID`).
    fn batch(&self) -> Vec<(u64, Sample)> {
        let guard = self.samples.lock();
        let Some((_, first)) = guard.0.front() else {
            return Vec::new();
        };
        guard
            .0
            .iter()
            .take(self.cfg.queue_config.max_samples_per_send)
            .take_while(|(_, s)| s.tenant == first.tenant)
            .cloned()
            .collect()
    }

    /// Removes samples up to sequence number `last`; returns how many.
    fn remove_through(&self, last: u64) -> usize {
        let mut guard = self.samples.lock();
        let before = guard.0.len();
        while guard.0.front().is_some_and(|(seq, _)| *seq <= last) {
            guard.0.pop_front();
        }
        before - guard.0.len()
    }
}

/// Why a request failed.
enum Failure {
    /// Connection error, timeout, 5xx or 429: kept and retried.
    Retry(String),
    /// Any other 4xx: the receiver will never take these samples.
    Refused(String),
}

async fn send_loop(state: Arc<AppState>, http: reqwest::Client, q: Arc<Queue>) {
    let qc = &q.cfg.queue_config;
    let mut backoff = qc.min_backoff;
    let mut failing = false;
    loop {
        let batch = q.batch();
        let Some((last, _)) = batch.last() else {
            // A push between batch() and here left a permit: no wake-up is lost.
            q.wake.notified().await;
            continue;
        };
        let (last, n, tenant) = (*last, batch.len() as u64, batch[0].1.tenant.clone());
        let m = &state.metrics;
        match send(&http, &q, &tenant, body(batch)).await {
            Ok(()) => {
                if failing {
                    tracing::info!(receiver = %q.name, "remote write delivers again");
                }
                (failing, backoff) = (false, qc.min_backoff);
                m.ruler_rw_queue.dec_by(q.remove_through(last) as i64);
                m.ruler_rw_sent.inc_by(n);
            }
            Err(Failure::Refused(e)) => {
                tracing::warn!(receiver = %q.name, error = %e, samples = n, "remote write refused samples; dropped");
                m.ruler_rw_queue.dec_by(q.remove_through(last) as i64);
                m.ruler_rw_failed.inc_by(n);
            }
            Err(Failure::Retry(e)) => {
                // Once per outage, not once per retry.
                if !failing {
                    tracing::warn!(receiver = %q.name, error = %e, "remote write failed; samples kept and retried");
                }
                failing = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(qc.max_backoff);
            }
        }
    }
}

/// The request body: samples grouped into series, each series' samples in time order.
fn body(batch: Vec<(u64, Sample)>) -> Vec<u8> {
    let mut series: BTreeMap<_, Vec<(i64, f64)>> = BTreeMap::new();
    for (_, s) in batch {
        series.entry(s.labels).or_default().push((s.ms, s.value));
    }
    silt_proto::remote_write::encode_write_request(series.into_iter().collect())
}

async fn send(
    http: &reqwest::Client,
    q: &Queue,
    tenant: &str,
    body: Vec<u8>,
) -> Result<(), Failure> {
    let c = &q.cfg;
    let mut req = http
        .post(&c.url)
        .timeout(c.remote_timeout)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header(
            "User-Agent",
            concat!("silt-ruler/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in &c.headers {
        if !k.eq_ignore_ascii_case("X-Scope-OrgID") {
            req = req.header(k, v);
        }
    }
    if q.org_id {
        req = req.header("X-Scope-OrgID", tenant);
    }
    if let Some(b) = &c.basic_auth {
        let pw = secret(&b.password, &b.password_file).await?;
        req = req.basic_auth(&b.username, Some(pw));
    }
    if let Some(a) = &c.authorization {
        let cred = secret(&a.credentials, &a.credentials_file).await?;
        req = req.header("Authorization", format!("{} {cred}", a.kind));
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = format!("{status}: {}", text.chars().take(200).collect::<String>());
    if status.is_server_error() || status.as_u16() == 429 {
        Err(Failure::Retry(msg))
    } else {
        Err(Failure::Refused(msg))
    }
}

/// A value given inline or in a file (read each time, so it can be rotated).
async fn secret(inline: &str, file: &str) -> Result<String, Failure> {
    if file.is_empty() {
        return Ok(inline.to_string());
    }
    tokio::fs::read_to_string(file)
        .await
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|e| Failure::Retry(format!("{file}: {e}")))
}

/// A recording rule's samples at `ms`: result labels (without `__name__`), then the
/// rule's labels (an empty value removes the label), then `__name__` = the record name.
/// Two results with one label set are an error, as in Prometheus.
pub(crate) fn record_samples(
    rule: &silt_ruler::Rule,
    tenant: &str,
    ms: i64,
    results: Vec<(BTreeMap<String, String>, f64)>,
) -> Result<Vec<Sample>, String> {
    let name = rule.record.clone().unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(results.len());
    for (mut labels, value) in results {
        labels.remove("__name__");
        for (k, v) in &rule.labels {
            if v.is_empty() {
                labels.remove(k);
            } else {
                labels.insert(k.clone(), v.clone());
            }
        }
        labels.insert("__name__".into(), name.clone());
        let labels: Vec<(String, String)> = labels.into_iter().collect();
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        out.push(Sample {
            tenant: tenant.to_string(),
            labels,
            ms,
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_samples_name_labels_and_duplicates() {
        let g = silt_ruler::parse_group(
            b"name: g\nrules:\n  - record: app:lines\n    expr: vector(1)\n    labels: {source: silt, env: ''}\n",
        )
        .unwrap();
        let r = &g.rules[0];
        let res = |app: &str| {
            BTreeMap::from([
                ("app".to_string(), app.to_string()),
                ("env".to_string(), "prod".to_string()),
            ])
        };
        let s = record_samples(r, "t", 5, vec![(res("x"), 2.0)]).unwrap();
        let want: Vec<(String, String)> =
            [("__name__", "app:lines"), ("app", "x"), ("source", "silt")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(s[0].labels, want);
        assert_eq!((s[0].ms, s[0].value, s[0].tenant.as_str()), (5, 2.0, "t"));
        // `env` is removed, so these two collide.
        let mut other = res("x");
        other.insert("env".into(), "dev".into());
        let e = record_samples(r, "t", 5, vec![(res("x"), 1.0), (other, 2.0)]).unwrap_err();
        assert!(e.contains("same labelset"), "{e}");
    }

    fn sample(tenant: &str, ms: i64) -> Sample {
        Sample {
            tenant: tenant.into(),
            labels: vec![("__name__".into(), "m".into())],
            ms,
            value: 1.0,
        }
    }

    #[test]
    fn full_queue_drops_oldest_and_a_sent_batch_is_removed_exactly() {
        let mut cfg: RemoteWriteClient = serde_yaml::from_str(
            "{url: 'http://p', queue_config: {capacity: 3, max_samples_per_send: 2}}",
        )
        .unwrap();
        cfg.name = "p".into();
        let q = Queue {
            name: "p".into(),
            cfg,
            org_id: true,
            samples: Default::default(),
            wake: Default::default(),
        };
        assert_eq!(q.push(&[sample("a", 1), sample("a", 2)]), 0);
        assert_eq!(q.push(&[sample("b", 3), sample("b", 4)]), 1);
        // Oldest (a@1) went; a batch is one tenant's.
        let b = q.batch();
        assert_eq!(b.iter().map(|(_, s)| s.ms).collect::<Vec<_>>(), [2]);
        // Pushed while in flight: a@2 is dropped; removing through its number keeps b@5.
        assert_eq!(q.push(&[sample("b", 5)]), 1);
        assert_eq!(q.remove_through(b[0].0), 0);
        let b = q.batch();
        assert_eq!(b.iter().map(|(_, s)| s.ms).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(q.remove_through(b[1].0), 2);
        assert_eq!(q.batch().len(), 1);
    }

    #[test]
    fn body_groups_samples_into_series_in_time_order() {
        let s = |app: &str, ms| Sample {
            tenant: "t".into(),
            labels: vec![("__name__".into(), "m".into()), ("app".into(), app.into())],
            ms,
            value: ms as f64,
        };
        let batch = vec![(0, s("a", 1)), (1, s("b", 1)), (2, s("a", 2))];
        let req = silt_proto::remote_write::decode_write_request(&body(batch)).unwrap();
        assert_eq!(req.timeseries.len(), 2);
        let ts: Vec<i64> = req.timeseries[0]
            .samples
            .iter()
            .map(|x| x.timestamp)
            .collect();
        assert_eq!(ts, [1, 2]);
        assert_eq!(req.timeseries[0].labels[1].value, "a");
    }
}
