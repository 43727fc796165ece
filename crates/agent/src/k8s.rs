//! Pod metadata from the Kubernetes API: list + watch of this node's pods
//! (`fieldSelector=spec.nodeName=<node>`), cached by pod UID for `kubernetes_pods` targets.
//! Files are never held back waiting for metadata: targets are enriched when it arrives,
//! and entries of deleted pods keep their metadata for a grace period.
//!
//! The API is reached through [`Access`]: an explicit `url`, a `kubeconfig` file, or (with
//! neither) the in-cluster service account.

use crate::error::{Error, Result};
use crate::metrics::metrics;
use crate::net::{Auth, Connector, Endpoint, Secret, TlsConfig, TlsMaterial};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// `kubernetes_api` options of a `kubernetes_pods` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesApiConfig {
    /// API base URL, e.g. `http://127.0.0.1:8001` (kubectl proxy) or `https://host:6443`.
    #[serde(default)]
    pub url: Option<String>,
    /// kubeconfig file (its current context) instead of `url`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// File holding a bearer token (re-read on every request).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// TLS settings for an `https://` `url`.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// How long metadata of deleted pods is kept for their remaining log lines.
    #[serde(default = "d_grace", deserialize_with = "crate::units::de_duration")]
    pub deleted_grace: Duration,
    /// Also watch the pods' namespaces and this node (Prometheus/Alloy `attach_metadata`):
    /// `__meta_kubernetes_namespace_label_*` / `_annotation_*` and
    /// `__meta_kubernetes_node_label_*` / `_annotation_*` for relabel rules.
    #[serde(default)]
    pub attach_metadata: AttachMetadata,
}

/// Which extra objects' metadata targets get (needs get/list/watch on them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachMetadata {
    #[serde(default)]
    pub namespace: bool,
    #[serde(default)]
    pub node: bool,
}

fn d_grace() -> Duration {
    Duration::from_secs(300)
}

impl KubernetesApiConfig {
    pub fn access(&self) -> Access<'_> {
        Access {
            url: self.url.as_deref(),
            kubeconfig: self.kubeconfig.as_deref(),
            token_file: self.token_file.as_deref(),
            tls: &self.tls_config,
        }
    }
}

/// Service-account mount of in-cluster pods.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Overrides [`SERVICE_ACCOUNT_DIR`] (tests, unusual mounts).
pub const SERVICE_ACCOUNT_DIR_ENV: &str = "SILT_AGENT_SERVICE_ACCOUNT_DIR";

/// How to reach the API, shared by `kubernetes_pods.kubernetes_api` and
/// `kubernetes_events` (each declares the keys itself: serde's `flatten` would disable
/// their unknown-key checks).
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub url: Option<&'a str>,
    pub kubeconfig: Option<&'a Path>,
    pub token_file: Option<&'a Path>,
    pub tls: &'a TlsConfig,
}

/// A resolved API server: where, which TLS settings, which credentials.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTarget {
    pub endpoint: Endpoint,
    pub tls: TlsMaterial,
    pub auth: Auth,
}

impl Access<'_> {
    /// `url`, else `kubeconfig`, else in-cluster; reads every file once (errors at start-up).
    pub fn target(&self) -> Result<ApiTarget> {
        let mut t = match (self.url, self.kubeconfig) {
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "url and kubeconfig are mutually exclusive".into(),
                ))
            }
            (Some(url), None) => ApiTarget {
                endpoint: Endpoint::parse_base(url)?,
                tls: self.tls.load("tls_config")?,
                auth: Auth::None,
            },
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("kubeconfig {}: {e}", path.display())))?;
                let dir = path.parent().unwrap_or(Path::new("."));
                parse_kubeconfig(&text, dir)
                    .map_err(|e| Error::Config(format!("kubeconfig {}: {e}", path.display())))?
            }
            (None, None) => in_cluster(|k| std::env::var(k).ok())?,
        };
        if let Some(f) = self.token_file {
            t.auth = Auth::Bearer(Secret::File(f.to_path_buf()));
        }
        Ok(t)
    }

    pub fn connector(&self) -> Result<Connector> {
        let t = self.target()?;
        Connector::new(t.endpoint, &t.tls, t.auth)
    }
}

/// The in-cluster config (as client-go's `rest.InClusterConfig`): API at
/// `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`, the service account's CA and token.
/// The token file is re-read per request: bound tokens are rotated by the kubelet.
pub fn in_cluster(env: impl Fn(&str) -> Option<String>) -> Result<ApiTarget> {
    let (Some(host), Some(port)) = (
        env("KUBERNETES_SERVICE_HOST").filter(|h| !h.is_empty()),
        env("KUBERNETES_SERVICE_PORT").filter(|p| !p.is_empty()),
    ) else {
        return Err(Error::Config(
            "no url or kubeconfig given and not running in a cluster \
             (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset)"
                .into(),
        ));
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let endpoint = Endpoint::parse_base(&format!("https://{host}:{port}"))?;
    let dir =
        PathBuf::from(env(SERVICE_ACCOUNT_DIR_ENV).unwrap_or_else(|| SERVICE_ACCOUNT_DIR.into()));
    let ca = dir.join("ca.crt");
    let ca_pem = std::fs::read(&ca)
        .map_err(|e| Error::Config(format!("in-cluster CA {}: {e}", ca.display())))?;
    Ok(ApiTarget {
        endpoint,
        tls: TlsMaterial {
            ca_pem: Some(ca_pem),
            ..Default::default()
        },
        auth: Auth::Bearer(Secret::File(dir.join("token"))),
    })
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Kubeconfig {
    current_context: String,
    contexts: Vec<Named<KcContext>>,
    clusters: Vec<Named<KcCluster>>,
    users: Vec<Named<KcUser>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "cluster", alias = "user")]
    value: T,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KcContext {
    cluster: String,
    user: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct KcCluster {
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    insecure_skip_tls_verify: bool,
    tls_server_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct KcUser {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<PathBuf>,
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    username: Option<String>,
    password: Option<String>,
    exec: Option<serde_yaml::Value>,
    auth_provider: Option<serde_yaml::Value>,
}

/// The current context of a kubeconfig; relative file paths are relative to `dir`.
pub fn parse_kubeconfig(text: &str, dir: &Path) -> Result<ApiTarget, String> {
    let mut kc: Kubeconfig = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if kc.current_context.is_empty() {
        return Err("current-context is not set".into());
    }
    fn find<T>(what: &str, name: &str, list: &[Named<T>]) -> Result<usize, String> {
        list.iter()
            .position(|n| n.name == name)
            .ok_or_else(|| format!("{what} {name:?} not found"))
    }
    let ctx = &kc.contexts[find("context", &kc.current_context, &kc.contexts)?].value;
    let cluster = &kc.clusters[find("cluster", &ctx.cluster, &kc.clusters)?].value;
    // A context may name no user (e.g. a proxy that needs no credentials).
    let user = match ctx.user.as_str() {
        "" => KcUser::default(),
        u => {
            let i = find("user", u, &kc.users)?;
            std::mem::take(&mut kc.users[i].value)
        }
    };
    if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(format!(
            "user {:?}: exec and auth-provider plugins are not supported; use a token, \
             tokenFile or client certificate",
            ctx.user
        ));
    }
    let path = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    // `*-data` (base64) wins over the file, as in kubectl.
    let pem = |what: &str,
               data: &Option<String>,
               file: &Option<PathBuf>|
     -> Result<Option<Vec<u8>>, String> {
        if let Some(d) = data {
            let clean: String = d.split_whitespace().collect();
            return base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map(Some)
                .map_err(|e| format!("{what}-data: invalid base64: {e}"));
        }
        file.as_deref()
            .map(|f| {
                let f = path(f);
                std::fs::read(&f).map_err(|e| format!("{what} {}: {e}", f.display()))
            })
            .transpose()
    };
    if cluster.server.is_empty() {
        return Err(format!("cluster {:?}: server is not set", ctx.cluster));
    }
    let endpoint = Endpoint::parse_base(&cluster.server).map_err(|e| e.to_string())?;
    let tls = TlsMaterial {
        ca_pem: pem(
            "certificate-authority",
            &cluster.certificate_authority_data,
            &cluster.certificate_authority,
        )?,
        cert_pem: pem(
            "client-certificate",
            &user.client_certificate_data,
            &user.client_certificate,
        )?,
        key_pem: pem("client-key", &user.client_key_data, &user.client_key)?,
        server_name: cluster.tls_server_name.clone(),
        insecure_skip_verify: cluster.insecure_skip_tls_verify,
    };
    if tls.cert_pem.is_some() != tls.key_pem.is_some() {
        return Err(format!(
            "user {:?}: client-certificate and client-key must be set together",
            ctx.user
        ));
    }
    let auth = if let Some(t) = user.token.filter(|t| !t.is_empty()) {
        Auth::Bearer(Secret::Inline(crate::net::Redacted(t)))
    } else if let Some(f) = user.token_file {
        Auth::Bearer(Secret::File(path(&f)))
    } else if let Some(u) = user.username.filter(|u| !u.is_empty()) {
        Auth::Basic {
            username: u,
            password: Secret::Inline(crate::net::Redacted(user.password.unwrap_or_default())),
        }
    } else {
        Auth::None
    };
    Ok(ApiTarget {
        endpoint,
        tls,
        auth,
    })
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

/// Labels and annotations of a namespace or node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    fn from_object(o: &Value) -> Option<(String, ObjectMeta)> {
        let md = &o["metadata"];
        Some((
            md["name"].as_str()?.to_string(),
            ObjectMeta {
                labels: string_map(&md["labels"]),
                annotations: string_map(&md["annotations"]),
            },
        ))
    }

    /// `__meta_kubernetes_<kind>_label_<name>` and friends, as Prometheus names them.
    fn target_labels(&self, kind: &str, out: &mut BTreeMap<String, String>) {
        for (what, m) in [("label", &self.labels), ("annotation", &self.annotations)] {
            for (k, v) in m {
                let n = sanitize(k);
                out.insert(format!("__meta_kubernetes_{kind}_{what}_{n}"), v.clone());
                out.insert(
                    format!("__meta_kubernetes_{kind}_{what}present_{n}"),
                    "true".into(),
                );
            }
        }
    }
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Shared pod cache; `version` changes whenever the content does.
#[derive(Default)]
pub struct PodCache {
    pods: RwLock<HashMap<String, (PodMeta, Option<Instant>)>>,
    namespaces: RwLock<HashMap<String, ObjectMeta>>,
    node: RwLock<Option<ObjectMeta>>,
    version: AtomicU64,
}

/// Static pods' log directories are named after this annotation of their mirror pod,
/// not after the mirror pod's uid: the cache is keyed by both.
const CONFIG_HASH: &str = "kubernetes.io/config.hash";

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

    /// Namespace and node metadata for a pod's targets (when attached).
    pub fn context_labels(&self, namespace: &str, out: &mut BTreeMap<String, String>) {
        let ns = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = ns.get(namespace) {
            m.target_labels("namespace", out);
        }
        let node = self.node.read().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = node.as_ref() {
            m.target_labels("node", out);
        }
    }

    fn set_namespace(&self, name: String, meta: Option<ObjectMeta>) {
        let mut g = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        let changed = match meta {
            Some(m) => g.insert(name, m.clone()).as_ref() != Some(&m),
            None => g.remove(&name).is_some(),
        };
        if changed {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn set_node(&self, meta: Option<ObjectMeta>) {
        let mut g = self.node.write().unwrap_or_else(|e| e.into_inner());
        if *g != meta {
            *g = meta;
            self.version.fetch_add(1, Ordering::AcqRel);
        }
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
        let map = string_map;
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

/// A Kubernetes API client for list + watch (HTTP or HTTPS, one connection per request).
pub(crate) struct Api {
    net: Connector,
    base_path: String,
}

impl Api {
    pub(crate) fn new(net: Connector) -> Api {
        let base_path = net.endpoint().path.trim_end_matches('/').to_string();
        Api { net, base_path }
    }

    async fn get(
        &self,
        path_and_query: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let mut sender = self.net.connect::<Empty<Bytes>>().await?;
        let req = self
            .net
            .request("GET", &format!("{}{path_and_query}", self.base_path))
            .map_err(|e| format!("credentials: {e}"))?
            .header("accept", "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{path_and_query}: status {}", resp.status()));
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
        // The server ends the watch after timeoutSeconds, so the request (and the token it
        // carries) is renewed regularly, as client-go's reflector does.
        let timeout = 300 + fastrand::u32(0..300);
        let resp = self
            .get(&format!(
                "{path}?watch=1&allowWatchBookmarks=true&timeoutSeconds={timeout}&resourceVersion={rv}{query}"
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
    let api = match cfg.access().connector() {
        Ok(c) => Arc::new(Api::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "kubernetes_api unusable, no pod metadata");
            return;
        }
    };
    if cfg.attach_metadata.namespace {
        let (api, cache) = (api.clone(), cache.clone());
        tokio::spawn(async move {
            watch_forever(&api, "/api/v1/namespaces", "", "namespace", |ty, o| {
                if let Some((name, m)) = ObjectMeta::from_object(o) {
                    cache.set_namespace(name, (ty != "DELETED").then_some(m));
                }
            })
            .await
        });
    }
    if let Some(n) = node
        .as_ref()
        .filter(|n| cfg.attach_metadata.node && !n.is_empty())
    {
        let (api, cache) = (api.clone(), cache.clone());
        let selector = format!("&fieldSelector=metadata.name%3D{n}");
        tokio::spawn(async move {
            watch_forever(&api, "/api/v1/nodes", &selector, "node", |ty, o| {
                if let Some((_, m)) = ObjectMeta::from_object(o) {
                    cache.set_node((ty != "DELETED").then_some(m));
                }
            })
            .await
        });
    }
    let selector = node
        .filter(|n| !n.is_empty())
        .map(|n| format!("&fieldSelector=spec.nodeName%3D{n}"))
        .unwrap_or_default();
    let grace = cfg.deleted_grace;
    watch_forever(&api, "/api/v1/pods", &selector, "pod", |ty, o| match ty {
        "LIST" | "ADDED" | "MODIFIED" => {
            if let Some((uid, m)) = PodMeta::from_object(o) {
                if let Some(h) = m.annotations.get(CONFIG_HASH) {
                    cache.upsert(h.clone(), m.clone());
                }
                cache.upsert(uid, m);
            }
        }
        "DELETED" => {
            let md = &o["metadata"];
            for key in [&md["uid"], &md["annotations"][CONFIG_HASH]] {
                if let Some(k) = key.as_str() {
                    cache.mark_deleted(k);
                }
            }
        }
        _ => cache.expire(grace),
    })
    .await
}

/// List+watch `path` for ever, reconnecting with backoff; `f` sees LIST/ADDED/MODIFIED/
/// DELETED objects.
async fn watch_forever(
    api: &Api,
    path: &str,
    selector: &str,
    what: &str,
    mut f: impl FnMut(&str, &Value),
) {
    let mut delay = Duration::from_millis(500);
    loop {
        match api.list_watch(path, selector, |ty, o| f(ty, o)).await {
            Ok(()) => delay = Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, what, "kubernetes watch failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "
apiVersion: v1
kind: Config
current-context: prod
contexts:
  - name: dev
    context: {cluster: dev, user: dev}
  - name: prod
    context: {cluster: prod, user: robot, namespace: logs}
clusters:
  - name: dev
    cluster: {server: 'http://127.0.0.1:8001'}
  - name: prod
    cluster:
      server: https://10.0.0.1:6443/
      certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
      tls-server-name: kubernetes.default
users:
  - name: dev
    user: {}
  - name: robot
    user: {token: s3cret, client-certificate: certs/c.pem, client-key: /abs/k.pem}
";

    #[test]
    fn kubeconfig_current_context() {
        let dir = tempfile::tempdir().unwrap();
        // Files named by the kubeconfig are read relative to its directory.
        let no_files = parse_kubeconfig(KUBECONFIG, dir.path()).unwrap_err();
        assert!(no_files.contains("certs/c.pem"), "{no_files}");
        let text = KUBECONFIG.replace(
            "client-certificate: certs/c.pem, client-key: /abs/k.pem",
            "client-certificate-data: Y2VydA==, client-key: k.pem",
        );
        std::fs::write(dir.path().join("k.pem"), "key").unwrap();
        let t = parse_kubeconfig(&text, dir.path()).unwrap();
        assert_eq!(
            (t.endpoint.tls, t.endpoint.host.as_str(), t.endpoint.port),
            (true, "10.0.0.1", 6443)
        );
        assert_eq!(
            t.tls.ca_pem.as_deref(),
            Some(&b"-----BEGIN CERTIFICATE-----\n"[..])
        );
        assert_eq!(t.tls.cert_pem.as_deref(), Some(&b"cert"[..]));
        assert_eq!(t.tls.key_pem.as_deref(), Some(&b"key"[..]));
        assert_eq!(t.tls.server_name.as_deref(), Some("kubernetes.default"));
        assert_eq!(t.auth.header().unwrap().as_deref(), Some("Bearer s3cret"));
        // The API base path is kept without its trailing slash by Api::new.
        assert_eq!(t.endpoint.path, "/");

        let dev = parse_kubeconfig(
            &KUBECONFIG.replace("current-context: prod", "current-context: dev"),
            dir.path(),
        )
        .unwrap();
        assert!(!dev.endpoint.tls);
        assert_eq!(dev.auth, Auth::None);

        let token_file = text.replace("token: s3cret", "tokenFile: tok");
        let t = parse_kubeconfig(&token_file, dir.path()).unwrap();
        assert_eq!(t.auth, Auth::Bearer(Secret::File(dir.path().join("tok"))));
    }

    #[test]
    fn kubeconfig_errors_are_named() {
        let d = Path::new("/nonexistent");
        let err = |text: &str| parse_kubeconfig(text, d).unwrap_err();
        assert!(err("kind: Config\n").contains("current-context"));
        assert!(
            err(&KUBECONFIG.replace("current-context: prod", "current-context: x"))
                .contains("context \"x\" not found")
        );
        assert!(
            err(&KUBECONFIG.replace("cluster: prod, user", "cluster: gone, user"))
                .contains("cluster \"gone\" not found")
        );
        assert!(
            err(&KUBECONFIG.replace("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==", "not*base64"))
                .contains("base64")
        );
        let exec = KUBECONFIG.replace(
            "user: {token: s3cret, client-certificate: certs/c.pem, client-key: /abs/k.pem}",
            "user: {exec: {command: aws}}",
        );
        assert!(err(&exec).contains("exec"));
        let half = KUBECONFIG.replace(", client-key: /abs/k.pem", "").replace(
            "client-certificate: certs/c.pem",
            "client-certificate-data: Y2VydA==",
        );
        assert!(err(&half).contains("client-key"));
        assert!(!err("current-context: [").is_empty());
    }

    #[test]
    fn in_cluster_config() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let env = |vars: &'static [(&'static str, &'static str)], d: String| {
            move |k: &str| {
                if k == SERVICE_ACCOUNT_DIR_ENV {
                    return Some(d.clone());
                }
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = in_cluster(env(&[], d.clone())).unwrap_err().to_string();
        assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
        let vars = &[
            ("KUBERNETES_SERVICE_HOST", "fd00::1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
        ];
        let e = in_cluster(env(vars, d.clone())).unwrap_err().to_string();
        assert!(e.contains("ca.crt"), "{e}");
        std::fs::write(dir.path().join("ca.crt"), "pem").unwrap();
        let t = in_cluster(env(vars, d)).unwrap();
        assert_eq!(t.endpoint.authority(), "[fd00::1]:443");
        assert!(t.endpoint.tls);
        assert_eq!(t.tls.ca_pem.as_deref(), Some(&b"pem"[..]));
        assert_eq!(t.auth, Auth::Bearer(Secret::File(dir.path().join("token"))));
    }

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
