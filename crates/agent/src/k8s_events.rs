//! `kubernetes_events`: Kubernetes Event objects as log lines (`loki.source.kubernetes_events`).
//! Lines are logfmt (or JSON) with Alloy's keys; labels `namespace`, `job`, `instance`.
//! A per-namespace cursor (newest acknowledged event time) is persisted in
//! `<data_dir>/positions/<source>.yaml`, so a restart does not resend old events. Events
//! carry only second precision, so events within the cursor's second may be resent after a
//! restart; run one agent with this source per cluster (e.g. a 1-replica Deployment).

use crate::k8s::Api;
use crate::{now_ns, Ack, Item, Record};
use serde::Deserialize;
use serde_json::Value;
use silt_model::{Entry, Labels};
use silt_proto::time::parse_rfc3339;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// `kubernetes_events` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Name for logs, metrics and the cursor file.
    #[serde(default)]
    pub name: Option<String>,
    /// API base URL (`http://` e.g. a `kubectl proxy` sidecar, or `https://`); with neither
    /// `url` nor `kubeconfig` the in-cluster service account is used.
    #[serde(default)]
    pub url: Option<String>,
    /// kubeconfig file (its current context) instead of `url`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Bearer token file (re-read on every request).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// TLS settings for an `https://` `url`.
    #[serde(default)]
    pub tls_config: crate::net::TlsConfig,
    /// Namespaces to watch; empty = all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// `job` label (Alloy: `loki.source.kubernetes_events`; Promtail-era
    /// `integrations/kubernetes/eventhandler`).
    #[serde(default = "d_job")]
    pub job_name: String,
    /// `logfmt` (default) or `json`.
    #[serde(default)]
    pub log_format: EventFormat,
    /// Extra static labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl EventsConfig {
    pub fn access(&self) -> crate::k8s::Access<'_> {
        crate::k8s::Access {
            url: self.url.as_deref(),
            kubeconfig: self.kubeconfig.as_deref(),
            token_file: self.token_file.as_deref(),
            tls: &self.tls_config,
        }
    }
}

fn d_job() -> String {
    "loki.source.kubernetes_events".into()
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    #[default]
    Logfmt,
    Json,
}

fn logfmt_value(v: &str) -> String {
    if v.is_empty() || v.contains([' ', '"', '=', '\n', '\t']) {
        serde_json::to_string(v).unwrap_or_default()
    } else {
        v.to_string()
    }
}

/// Event time: lastTimestamp, eventTime, firstTimestamp, then creation time.
fn event_ts(o: &Value) -> Option<i64> {
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .filter_map(|k| o[*k].as_str())
        .chain(o["metadata"]["creationTimestamp"].as_str())
        .find_map(parse_rfc3339)
}

/// The line for one event, with Alloy's keys (empty values left out).
pub fn event_line(o: &Value, format: EventFormat) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let io = &o["involvedObject"];
    let count = o["count"]
        .as_u64()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let fields: Vec<(&str, String)> = vec![
        ("name", s(&io["name"])),
        ("kind", s(&io["kind"])),
        ("action", s(&o["action"])),
        ("objectAPIversion", s(&io["apiVersion"])),
        ("objectRV", s(&io["resourceVersion"])),
        ("eventRV", s(&o["metadata"]["resourceVersion"])),
        ("reportinginstance", s(&o["reportingInstance"])),
        ("reportingcontroller", s(&o["reportingComponent"])),
        ("sourcecomponent", s(&o["source"]["component"])),
        ("sourcehost", s(&o["source"]["host"])),
        ("reason", s(&o["reason"])),
        ("type", s(&o["type"])),
        ("count", count),
        ("msg", s(&o["message"])),
    ];
    let fields = fields.into_iter().filter(|(_, v)| !v.is_empty());
    match format {
        EventFormat::Json => {
            let m: serde_json::Map<String, Value> =
                fields.map(|(k, v)| (k.to_string(), v.into())).collect();
            Value::Object(m).to_string()
        }
        EventFormat::Logfmt => fields
            .map(|(k, v)| format!("{k}={}", logfmt_value(&v)))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

type Cursors = Arc<Mutex<BTreeMap<String, i64>>>;

#[derive(Deserialize, serde::Serialize, Default)]
struct CursorFile {
    cursors: BTreeMap<String, i64>,
}

fn load_cursors(p: &Path) -> BTreeMap<String, i64> {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| serde_yaml::from_str::<CursorFile>(&t).ok())
        .map(|c| c.cursors)
        .unwrap_or_default()
}

fn save_cursors(p: &Path, c: &BTreeMap<String, i64>) {
    let text = serde_yaml::to_string(&CursorFile { cursors: c.clone() }).unwrap_or_default();
    let tmp = p.with_extension("yaml.tmp");
    let ok = p.parent().map(std::fs::create_dir_all).transpose().is_ok()
        && std::fs::write(&tmp, text).is_ok()
        && std::fs::rename(&tmp, p).is_ok();
    if !ok {
        tracing::warn!(path = %p.display(), "writing event cursors failed");
    }
}

/// Starts the source: an async watcher plus a thread applying acknowledgements to the
/// cursors and persisting them. Returns the thread (it ends after the client did).
pub fn spawn(
    idx: usize,
    c: &EventsConfig,
    name: &str,
    data_dir: &Path,
    tx: mpsc::Sender<Vec<Item>>,
    acks: std_mpsc::Receiver<Ack>,
    stop: watch::Receiver<bool>,
) -> crate::Result<std::thread::JoinHandle<()>> {
    let path = data_dir.join("positions").join(format!("{name}.yaml"));
    let cursors: Cursors = Arc::new(Mutex::new(load_cursors(&path)));
    let units: Vec<String> = if c.namespaces.is_empty() {
        vec![String::new()]
    } else {
        c.namespaces.clone()
    };
    let (cfg, name_s) = (c.clone(), name.to_string());
    for (unit, ns) in units.iter().enumerate() {
        let w = Watcher {
            idx,
            unit: unit as u64,
            ns: ns.clone(),
            cfg: cfg.clone(),
            instance: name_s.clone(),
            start_cursors: cursors.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            seen: HashSet::new(),
        };
        let (tx, stop) = (tx.clone(), stop.clone());
        let api = Api::new(c.access().connector()?);
        tokio::spawn(w.run(api, tx, stop));
    }
    drop(tx);
    let h = std::thread::Builder::new()
        .name(format!("src-{name}"))
        .spawn(move || {
            let mut last = Instant::now();
            loop {
                match acks.recv_timeout(Duration::from_secs(1)) {
                    Ok(a) => {
                        // Offsets are event times; the unit is the watched namespace.
                        let mut g = cursors.lock().unwrap_or_else(|e| e.into_inner());
                        let key = decode_ns(&units, a.unit);
                        let cur = g.entry(key).or_insert(0);
                        *cur = (*cur).max(a.offset as i64);
                    }
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
                if last.elapsed() >= Duration::from_secs(1) {
                    save_cursors(&path, &cursors.lock().unwrap_or_else(|e| e.into_inner()));
                    last = Instant::now();
                }
            }
            save_cursors(&path, &cursors.lock().unwrap_or_else(|e| e.into_inner()));
        })
        .map_err(|e| crate::Error::io("thread", e))?;
    Ok(h)
}

fn decode_ns(units: &[String], unit: u64) -> String {
    units.get(unit as usize).cloned().unwrap_or_default()
}

struct Watcher {
    idx: usize,
    unit: u64,
    /// Namespace watched ("" = all).
    ns: String,
    cfg: EventsConfig,
    instance: String,
    start_cursors: BTreeMap<String, i64>,
    /// (uid, resourceVersion) already emitted: the API re-lists on reconnect.
    seen: HashSet<(String, String)>,
}

impl Watcher {
    async fn run(mut self, api: Api, tx: mpsc::Sender<Vec<Item>>, mut stop: watch::Receiver<bool>) {
        let path = if self.ns.is_empty() {
            "/api/v1/events".to_string()
        } else {
            format!("/api/v1/namespaces/{}/events", self.ns)
        };
        let ns = self.ns.clone();
        let mut delay = Duration::from_millis(500);
        loop {
            let mut batch: Vec<Item> = Vec::new();
            let (btx, mut brx) = mpsc::unbounded_channel::<Item>();
            let watch = api.list_watch(&path, "", |ty, o| {
                if matches!(ty, "LIST" | "ADDED" | "MODIFIED") {
                    if let Some(item) = self.item(o) {
                        let _ = btx.send(item);
                    }
                }
            });
            tokio::pin!(watch);
            let res = loop {
                tokio::select! {
                    r = &mut watch => break Some(r),
                    Some(it) = brx.recv() => {
                        batch.push(it);
                        while let Ok(it) = brx.try_recv() {
                            batch.push(it);
                        }
                        if tx.send(std::mem::take(&mut batch)).await.is_err() {
                            return;
                        }
                    }
                    _ = stop.changed() => break None,
                }
            };
            while let Ok(it) = brx.try_recv() {
                batch.push(it);
            }
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                return;
            }
            match res {
                None => return,
                Some(Ok(())) => delay = Duration::from_millis(500),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, namespace = %ns, "kubernetes events watch failed, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => return,
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn item(&mut self, o: &Value) -> Option<Item> {
        let md = &o["metadata"];
        let key = (
            md["uid"].as_str()?.to_string(),
            md["resourceVersion"].as_str().unwrap_or("").to_string(),
        );
        if !self.seen.insert(key) {
            return None;
        }
        if self.seen.len() > 100_000 {
            self.seen.clear();
        }
        let ns = md["namespace"].as_str().unwrap_or("").to_string();
        let ts = event_ts(o).unwrap_or_else(now_ns);
        let cursor_key = self.ns.clone();
        if self
            .start_cursors
            .get(&cursor_key)
            .is_some_and(|c| ts <= *c)
        {
            return None;
        }
        let mut labels: Labels = Labels::from_pairs(self.cfg.labels.clone());
        labels.set("namespace", &ns);
        labels.set("job", &self.cfg.job_name);
        labels.set("instance", &self.instance);
        Some(Item::Record(Record {
            labels,
            entry: Entry {
                ts,
                line: event_line(o, self.cfg.log_format),
                metadata: Labels::new(),
            },
            extracted: std::collections::BTreeMap::new(),
            ack: Some(Ack {
                source: self.idx,
                unit: self.unit,
                offset: ts.max(0) as u64,
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloy_style_line() {
        let o = serde_json::json!({
            "metadata": {"uid": "e1", "namespace": "shop", "resourceVersion": "42"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "apiVersion": "v1", "resourceVersion": "7"},
            "reason": "BackOff", "type": "Warning", "count": 3, "message": "Back-off restarting \"web\"",
            "source": {"component": "kubelet", "host": "node-1"},
            "lastTimestamp": "2024-01-01T00:00:00Z"
        });
        assert_eq!(
            event_line(&o, EventFormat::Logfmt),
            r#"name=web-1 kind=Pod objectAPIversion=v1 objectRV=7 eventRV=42 sourcecomponent=kubelet sourcehost=node-1 reason=BackOff type=Warning count=3 msg="Back-off restarting \"web\"""#
        );
        let j: Value = serde_json::from_str(&event_line(&o, EventFormat::Json)).unwrap();
        assert_eq!(j["reason"], "BackOff");
        assert_eq!(event_ts(&o), Some(1_704_067_200_000_000_000));
    }
}
