//! Pod metadata from the Kubernetes API: list + watch of this node's pods
//! (`fieldSelector=spec.nodeName=<node>`), cached by pod UID for `kubernetes_pods` targets.
//! Files are never held back waiting for metadata: targets are enriched when it arrives,
//! and entries of deleted pods keep their metadata for a grace period.
//!
//! Plain HTTP only (point `url` at `kubectl proxy` or an HTTP-exposed API); a bearer token
//! file is sent when configured.

use crate::metrics::metrics;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// `kubernetes_api` options of a `kubernetes_pods` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesApiConfig {
    /// API base URL, e.g. `http://127.0.0.1:8001` (kubectl proxy).
    pub url: String,
    /// File holding a bearer token (re-read on every request).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// How long metadata of deleted pods is kept for their remaining log lines.
    #[serde(default = "d_grace", deserialize_with = "crate::units::de_duration")]
    pub deleted_grace: Duration,
}

fn d_grace() -> Duration {
    Duration::from_secs(300)
}

/// What a pod contributes to its containers' targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodMeta {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub controller_kind: Option<String>,
    pub controller_name: Option<String>,
    pub pod_ip: Option<String>,
    pub phase: Option<String>,
}

/// Shared pod cache; `version` changes whenever the content does.
#[derive(Default)]
pub struct PodCache {
    pods: RwLock<HashMap<String, (PodMeta, Option<Instant>)>>,
    version: AtomicU64,
}

impl PodCache {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn get(&self, uid: &str) -> Option<PodMeta> {
        let g = self.pods.read().unwrap_or_else(|e| e.into_inner());
        g.get(uid).map(|(m, _)| m.clone())
    }

    fn upsert(&self, uid: String, meta: PodMeta) {
        let mut g = self.pods.write().unwrap_or_else(|e| e.into_inner());
        if g.get(&uid).map(|(m, _)| m) != Some(&meta) {
            g.insert(uid, (meta, None));
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        metrics().k8s_pods_cached.set(g.len() as i64);
    }

    fn mark_deleted(&self, uid: &str) {
        let mut g = self.pods.write().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = g.get_mut(uid) {
            e.1.get_or_insert_with(Instant::now);
        }
    }

    fn expire(&self, grace: Duration) {
        let mut g = self.pods.write().unwrap_or_else(|e| e.into_inner());
        let before = g.len();
        g.retain(|_, (_, del)| del.is_none_or(|d| d.elapsed() < grace));
        if g.len() != before {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
        metrics().k8s_pods_cached.set(g.len() as i64);
    }
}

/// `[^a-zA-Z0-9_]` → `_`, as Prometheus' kubernetes_sd does for meta label names.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl PodMeta {
    fn from_object(o: &Value) -> Option<(String, PodMeta)> {
        let md = &o["metadata"];
        let uid = md["uid"].as_str()?.to_string();
        let map = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let owner = md["ownerReferences"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["controller"].as_bool() == Some(true)));
        Some((
            uid,
            PodMeta {
                labels: map(&md["labels"]),
                annotations: map(&md["annotations"]),
                controller_kind: owner.and_then(|r| r["kind"].as_str()).map(str::to_string),
                controller_name: owner.and_then(|r| r["name"].as_str()).map(str::to_string),
                pod_ip: o["status"]["podIP"].as_str().map(str::to_string),
                phase: o["status"]["phase"].as_str().map(str::to_string),
            },
        ))
    }

    /// Meta labels (Prometheus `kubernetes_sd` pod role names) plus the k8s-monitoring
    /// defaults: `service_name` from annotation `resource.opentelemetry.io/service.name`
    /// or label `app.kubernetes.io/name`, `job` from annotation `k8s.grafana.com/logs.job`.
    pub fn target_labels(&self, out: &mut BTreeMap<String, String>) {
        for (k, v) in &self.labels {
            let n = sanitize(k);
            out.insert(format!("__meta_kubernetes_pod_label_{n}"), v.clone());
            out.insert(
                format!("__meta_kubernetes_pod_labelpresent_{n}"),
                "true".into(),
            );
        }
        for (k, v) in &self.annotations {
            let n = sanitize(k);
            out.insert(format!("__meta_kubernetes_pod_annotation_{n}"), v.clone());
            out.insert(
                format!("__meta_kubernetes_pod_annotationpresent_{n}"),
                "true".into(),
            );
        }
        let opt = [
            (
                "__meta_kubernetes_pod_controller_kind",
                &self.controller_kind,
            ),
            (
                "__meta_kubernetes_pod_controller_name",
                &self.controller_name,
            ),
            ("__meta_kubernetes_pod_ip", &self.pod_ip),
            ("__meta_kubernetes_pod_phase", &self.phase),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                out.insert(k.into(), v.clone());
            }
        }
        let svc = self
            .annotations
            .get("resource.opentelemetry.io/service.name")
            .or_else(|| self.labels.get("app.kubernetes.io/name"));
        if let Some(s) = svc {
            out.insert("service_name".into(), s.clone());
        }
        if let Some(j) = self.annotations.get("k8s.grafana.com/logs.job") {
            out.insert("job".into(), j.clone());
        }
    }
}

/// A plain-HTTP Kubernetes API client for list + watch.
pub(crate) struct Api {
    host: String,
    port: u16,
    base_path: String,
    token_file: Option<PathBuf>,
}

impl Api {
    pub(crate) fn new(url: &str, token_file: Option<PathBuf>) -> Result<Api, String> {
        let ep = crate::client::Endpoint::parse(url).map_err(|e| e.to_string())?;
        // Endpoint::parse defaults an empty path to the push path; the API base has none.
        let base_path = if ep.path == "/loki/api/v1/push" {
            String::new()
        } else {
            ep.path.trim_end_matches('/').to_string()
        };
        Ok(Api {
            host: ep.host,
            port: ep.port,
            base_path,
            token_file,
        })
    }

    async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .uri(format!("{}{path_and_query}", self.base_path))
            .header("host", format!("{}:{}", self.host, self.port))
            .header("accept", "application/json");
        if let Some(f) = &self.token_file {
            let t = std::fs::read_to_string(f)
                .map_err(|e| format!("token_file {}: {e}", f.display()))?;
            req = req.header("authorization", format!("Bearer {}", t.trim()));
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        Ok(resp)
    }

    /// Lists `path`, then watches from the list's resourceVersion. `f` gets `("LIST", item)`
    /// for listed objects, the event type and object for watch events, and `("IDLE", null)`
    /// every 30 s of silence. Ok when the server ends the watch (the caller re-lists).
    pub(crate) async fn list_watch(
        &self,
        path: &str,
        query: &str,
        mut f: impl FnMut(&str, &Value),
    ) -> Result<(), String> {
        let resp = self.get(&format!("{path}?limit=500{query}")).await?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let list: Value = serde_json::from_slice(&body).map_err(|e| format!("list {path}: {e}"))?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        for item in list["items"].as_array().into_iter().flatten() {
            f("LIST", item);
        }
        let resp = self
            .get(&format!(
                "{path}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}{query}"
            ))
            .await?;
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let frame = match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
                Err(_) => {
                    f("IDLE", &Value::Null);
                    continue;
                }
                Ok(None) => return Ok(()),
                Ok(Some(fr)) => fr.map_err(|e| e.to_string())?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let Ok(ev) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let ty = ev["type"].as_str().unwrap_or("");
                // 410 Gone and friends: start over with a fresh list.
                if ty == "ERROR" {
                    return Err(format!("watch error: {}", ev["object"]));
                }
                f(ty, &ev["object"]);
            }
        }
    }
}

/// Keeps `cache` in sync with the API until the process ends; reconnects with backoff.
pub async fn watch_pods(cfg: KubernetesApiConfig, node: Option<String>, cache: Arc<PodCache>) {
    let api = match Api::new(&cfg.url, cfg.token_file.clone()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "kubernetes_api.url invalid, no pod metadata");
            return;
        }
    };
    let selector = node
        .filter(|n| !n.is_empty())
        .map(|n| format!("&fieldSelector=spec.nodeName%3D{n}"))
        .unwrap_or_default();
    let grace = cfg.deleted_grace;
    let mut delay = Duration::from_millis(500);
    loop {
        let res = api
            .list_watch("/api/v1/pods", &selector, |ty, o| match ty {
                "LIST" | "ADDED" | "MODIFIED" => {
                    if let Some((uid, m)) = PodMeta::from_object(o) {
                        cache.upsert(uid, m);
                    }
                }
                "DELETED" => {
                    if let Some(uid) = o["metadata"]["uid"].as_str() {
                        cache.mark_deleted(uid);
                    }
                }
                _ => cache.expire(grace),
            })
            .await;
        match res {
            Ok(()) => delay = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, "kubernetes pod watch failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_object_to_meta_labels() {
        let o = serde_json::json!({
            "metadata": {"uid": "u1", "labels": {"app.kubernetes.io/name": "web", "team": "pay"},
                "annotations": {"k8s.grafana.com/logs.job": "custom/job"},
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d9", "controller": true}]},
            "status": {"podIP": "10.0.0.7", "phase": "Running"}
        });
        let (uid, m) = PodMeta::from_object(&o).unwrap();
        assert_eq!(uid, "u1");
        let mut out = BTreeMap::new();
        m.target_labels(&mut out);
        assert_eq!(
            out["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "web"
        );
        assert_eq!(out["__meta_kubernetes_pod_labelpresent_team"], "true");
        assert_eq!(out["__meta_kubernetes_pod_controller_name"], "web-5d9");
        assert_eq!(out["__meta_kubernetes_pod_ip"], "10.0.0.7");
        assert_eq!(out["service_name"], "web");
        assert_eq!(out["job"], "custom/job");
        let cache = PodCache::default();
        cache.upsert(uid.clone(), m.clone());
        let v = cache.version();
        cache.upsert(uid.clone(), m);
        assert_eq!(cache.version(), v, "unchanged metadata keeps the version");
        cache.mark_deleted("u1");
        cache.expire(Duration::from_secs(60));
        assert!(cache.get("u1").is_some(), "kept during the grace period");
        cache.expire(Duration::ZERO);
        assert!(cache.get("u1").is_none());
    }
}
