//! The agent's YAML configuration: parse (with `${VAR}` expansion) → [`AgentConfig::validate`]
//! → build. Every struct rejects unknown keys so typos fail at start-up, not silently.

use crate::error::{Error, Result};
use crate::net::{Auth, Connector, Endpoint, Redacted, Secret, TlsConfig};
use crate::relabel::RelabelConfig;
use crate::stages::StageConfig;
use crate::units::{de_duration, de_opt_duration, de_size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whole agent configuration (`config/agent.example.yaml` documents every key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Config format version; only `1` exists.
    #[serde(default = "one")]
    pub version: u32,
    /// Where positions and the push-receiver disk buffer live. Must survive restarts.
    pub data_dir: Option<PathBuf>,
    /// The agent's own HTTP listener: `/ready`, `/metrics`, Loki push receiver.
    #[serde(default)]
    pub server: ServerConfig,
    /// Where logs are shipped.
    pub client: ClientConfig,
    /// More endpoints: every entry goes to `client` and to each of these, and a position
    /// advances only once all of them acknowledged. Promtail's `clients: [a, b]` works
    /// as is (the first becomes `client`).
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// How often acknowledged positions are written to disk.
    #[serde(default)]
    pub positions: PositionsConfig,
    /// Log sources.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

fn one() -> u32 {
    1
}

/// The agent's HTTP listener.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port`; no listener when absent (a `loki_push` source requires one).
    pub listen: Option<String>,
}

/// Positions file settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PositionsConfig {
    /// Period between writes of the positions file (also written on shutdown).
    #[serde(deserialize_with = "de_duration")]
    pub sync_period: Duration,
}

impl Default for PositionsConfig {
    fn default() -> Self {
        PositionsConfig {
            sync_period: Duration::from_secs(1),
        }
    }
}

/// The Loki push client (`loki.write` in Alloy, `clients:` in Promtail).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Push URL (`http://` or `https://`); a bare `http://host:port` gets `/loki/api/v1/push`.
    pub url: String,
    /// TLS settings for an `https://` URL.
    #[serde(default)]
    pub tls_config: TlsConfig,
    /// HTTP basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Bearer token sent as `Authorization: Bearer ...`.
    #[serde(default)]
    pub bearer_token: Option<Redacted>,
    /// File holding the bearer token, re-read on every request (rotated tokens work).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// `X-Scope-OrgID` for entries without a `__tenant_id__`; none when empty.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Labels added to every stream (an entry's own label wins).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Extra HTTP headers on every push.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Flush once a batch holds this many line bytes (1 MiB like Alloy).
    #[serde(default = "d_batch_size", deserialize_with = "de_size")]
    pub batch_size: u64,
    /// Flush a non-empty batch after this long (1s like Alloy).
    #[serde(default = "d_batch_wait", deserialize_with = "de_duration")]
    pub batch_wait: Duration,
    /// Per-request timeout.
    #[serde(default = "d_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// First retry delay; doubles up to `max_backoff`, with full jitter.
    #[serde(default = "d_min_backoff", deserialize_with = "de_duration")]
    pub min_backoff: Duration,
    /// Longest retry delay (a larger `Retry-After` is still honoured).
    #[serde(default = "d_max_backoff", deserialize_with = "de_duration")]
    pub max_backoff: Duration,
    /// Retries before a batch is dropped and counted; 0 = retry forever (the default:
    /// files on disk are the buffer, so waiting loses nothing while they are not rotated away).
    #[serde(default)]
    pub max_retries: u32,
}

/// `basic_auth` of the client: `password` or `password_file` (re-read on every request).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<Redacted>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn d_batch_size() -> u64 {
    1 << 20
}
fn d_batch_wait() -> Duration {
    Duration::from_secs(1)
}
fn d_timeout() -> Duration {
    Duration::from_secs(10)
}
fn d_min_backoff() -> Duration {
    Duration::from_millis(500)
}
fn d_max_backoff() -> Duration {
    Duration::from_secs(300)
}

impl ClientConfig {
    /// A client with defaults for `url` (used by the quick-start flags).
    pub fn for_url(url: &str) -> ClientConfig {
        ClientConfig {
            url: url.to_string(),
            tls_config: TlsConfig::default(),
            basic_auth: None,
            bearer_token: None,
            bearer_token_file: None,
            tenant_id: None,
            external_labels: BTreeMap::new(),
            headers: BTreeMap::new(),
            batch_size: d_batch_size(),
            batch_wait: d_batch_wait(),
            timeout: d_timeout(),
            min_backoff: d_min_backoff(),
            max_backoff: d_max_backoff(),
            max_retries: 0,
        }
    }

    /// Checks the auth/TLS combination, reads every file once and builds the connector.
    pub fn connector(&self) -> Result<Connector> {
        let bad = |m: String| Err(Error::Config(format!("client.{m}")));
        let ep = Endpoint::parse(&self.url).map_err(|e| e.at("client"))?;
        let bearer = match (&self.bearer_token, &self.bearer_token_file) {
            (Some(_), Some(_)) => {
                return bad("bearer_token and bearer_token_file are mutually exclusive".into())
            }
            (Some(t), None) => Some(Secret::Inline(t.clone())),
            (None, Some(f)) => Some(Secret::File(f.clone())),
            (None, None) => None,
        };
        let auth = match (&self.basic_auth, bearer) {
            (Some(_), Some(_)) => {
                return bad("basic_auth and bearer_token are mutually exclusive".into())
            }
            (None, Some(t)) => Auth::Bearer(t),
            (None, None) => Auth::None,
            (Some(b), None) => {
                if b.username.is_empty() {
                    return bad("basic_auth.username must not be empty".into());
                }
                let password = match (&b.password, &b.password_file) {
                    (Some(_), Some(_)) => {
                        return bad(
                            "basic_auth: password and password_file are mutually exclusive".into(),
                        )
                    }
                    (Some(p), None) => Secret::Inline(p.clone()),
                    (None, Some(f)) => Secret::File(f.clone()),
                    (None, None) => Secret::Inline(Redacted(String::new())),
                };
                Auth::Basic {
                    username: b.username.clone(),
                    password,
                }
            }
        };
        if auth != Auth::None
            && self
                .headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("authorization"))
        {
            return bad("headers: Authorization conflicts with basic_auth/bearer_token".into());
        }
        if let Err(e) = auth.header() {
            return bad(format!("credentials: cannot read {e}"));
        }
        let tls = self.tls_config.load("client.tls_config")?;
        Connector::new(ep, &tls, auth).map_err(|e| e.at("client.tls_config"))
    }
}

/// A log source; `type` selects it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Files matched by globs.
    File(TailConfig),
    /// Pod logs under `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` with path labels.
    KubernetesPods(TailConfig),
    /// Airflow task logs under `dag_id=*/run_id=*/task_id=*/[map_index=*/]attempt=*.log`.
    Airflow(TailConfig),
    /// Loki push API receiver (`loki.source.api`) on the agent's listener.
    LokiPush(PushSourceConfig),
    /// Kubernetes Event objects as log lines (`loki.source.kubernetes_events`).
    KubernetesEvents(crate::k8s_events::EventsConfig),
    /// systemd journal via `journalctl` (`loki.source.journal`).
    Journal(crate::journal::JournalConfig),
}

/// Line format of tailed files.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The line as is; timestamp = read time.
    #[default]
    Raw,
    /// CRI (containerd, CRI-O) with `P`/`F` partial reassembly.
    Cri,
    /// Docker json-file with partial (no trailing `\n`) reassembly.
    Docker,
    /// CRI or docker, decided per line (raw when neither parses).
    Auto,
}

/// What to do with a line longer than `max_line_size`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineAction {
    /// Keep the first `max_line_size` bytes.
    #[default]
    Truncate,
    /// Drop the line (counted).
    Drop,
}

/// Settings shared by the tailing sources (`file`, `kubernetes_pods`, `airflow`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// Name used in logs and metrics; defaults to the type.
    #[serde(default)]
    pub name: Option<String>,
    /// Globs (`*`, `?`, `**`, `[a-z]`, `{a,b}`); `kubernetes_pods`/`airflow` derive them from `root`.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of paths never tailed (e.g. `**/*.tmp`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Root directory (`kubernetes_pods`: `/var/log/pods`; `airflow`: `/opt/airflow/logs`).
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Line format (`kubernetes_pods` defaults to `auto`).
    #[serde(default)]
    pub format: Option<Format>,
    /// Static labels for every entry of this source.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Files without a stored position found at start-up start at their end.
    /// Files appearing later are always read from the start.
    #[serde(default)]
    pub tail_from_end: bool,
    /// Lines (after partial reassembly) longer than this are truncated or dropped.
    #[serde(default = "d_max_line", deserialize_with = "de_size")]
    pub max_line_size: u64,
    /// `truncate` (default) or `drop`.
    #[serde(default)]
    pub max_line_action: LineAction,
    /// Period between reads of open files when idle.
    #[serde(default = "d_poll", deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// Period between glob scans for new, rotated and deleted files.
    #[serde(default = "d_discovery", deserialize_with = "de_duration")]
    pub discovery_period: Duration,
    /// Skip files not modified for this long when first seen (not set = never skip).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub ignore_older_than: Option<Duration>,
    /// Also read matching `.gz` archives, once each (off: rotated archives are ignored).
    #[serde(default)]
    pub include_compressed: bool,
    /// Each entry's time read from its line (Airflow, RFC 3339, common log, syslog
    /// formats; continuation lines keep their record's time) instead of the read time.
    /// Default: on for `airflow`, off otherwise. CRI/docker record times always win.
    #[serde(default)]
    pub line_timestamps: Option<bool>,
    /// The path as the `filename` label (one stream per file) rather than as structured
    /// metadata. Default: on for `file`, off for `airflow` (one stream per DAG and task).
    #[serde(default)]
    pub filename_label: Option<bool>,
    /// Node name label for `kubernetes_pods` (default: env `NODE_NAME`, else `HOSTNAME`).
    #[serde(default)]
    pub node_name: Option<String>,
    /// `kubernetes_pods`: pod labels/annotations from the API (list + watch of this node's pods).
    #[serde(default)]
    pub kubernetes_api: Option<crate::k8s::KubernetesApiConfig>,
    /// Prometheus relabel rules run once per file on its target labels (`__path__` included);
    /// a file whose labels end up empty or `drop`ped is not tailed.
    #[serde(default)]
    pub relabel_rules: Vec<RelabelConfig>,
    /// Processing stages run on every entry, in order.
    #[serde(default, deserialize_with = "crate::stages::de_stages")]
    pub stages: Vec<StageConfig>,
}

fn d_max_line() -> u64 {
    256 * 1024
}
fn d_poll() -> Duration {
    Duration::from_millis(250)
}
fn d_discovery() -> Duration {
    Duration::from_secs(5)
}

impl TailConfig {
    /// A `file` source for the quick-start flags.
    pub fn for_globs(include: Vec<String>, labels: BTreeMap<String, String>) -> TailConfig {
        let mut c: TailConfig =
            serde_yaml::from_str("{}").expect("an empty map is a valid TailConfig");
        c.include = include;
        c.labels = labels;
        c
    }
}

/// `loki_push` receiver settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSourceConfig {
    /// Name used in logs, metrics and the buffer directory.
    #[serde(default)]
    pub name: Option<String>,
    /// Labels added to every received stream.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Keep the pushed timestamps (default: replace with receive time, as Alloy).
    #[serde(default)]
    pub use_incoming_timestamp: bool,
    /// Disk buffer cap; the oldest buffered requests are dropped (and counted) beyond it.
    #[serde(default = "d_buffer", deserialize_with = "de_size")]
    pub max_buffer_size: u64,
    /// Relabel rules run on each received stream's labels.
    #[serde(default)]
    pub relabel_rules: Vec<RelabelConfig>,
    /// Processing stages.
    #[serde(default, deserialize_with = "crate::stages::de_stages")]
    pub stages: Vec<StageConfig>,
}

fn d_buffer() -> u64 {
    256 << 20
}

impl SourceConfig {
    /// Type name as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
            SourceConfig::KubernetesPods(_) => "kubernetes_pods",
            SourceConfig::Airflow(_) => "airflow",
            SourceConfig::LokiPush(_) => "loki_push",
            SourceConfig::KubernetesEvents(_) => "kubernetes_events",
            SourceConfig::Journal(_) => "journal",
        }
    }

    /// The configured or default name.
    pub fn name(&self) -> String {
        let n = match self {
            SourceConfig::File(t) | SourceConfig::KubernetesPods(t) | SourceConfig::Airflow(t) => {
                t.name.clone()
            }
            SourceConfig::LokiPush(p) => p.name.clone(),
            SourceConfig::KubernetesEvents(e) => e.name.clone(),
            SourceConfig::Journal(j) => j.name.clone(),
        };
        n.unwrap_or_else(|| self.kind().to_string())
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. Unset variables without a
/// default are an error (a silently empty URL or tenant is worse than refusing to start).
pub fn expand_env(text: &str, get: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| Error::Config("unterminated ${ in config".into()))?;
            let expr = &r[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            match get(name).or_else(|| default.map(str::to_string)) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(Error::Config(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}})"
                    )))
                }
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

impl AgentConfig {
    /// Parses YAML text after env expansion (no validation).
    pub fn parse(text: &str) -> Result<AgentConfig> {
        use serde_yaml::Value;
        let text = expand_env(text, |k| std::env::var(k).ok())?;
        let mut v: Value = serde_yaml::from_str(&text).map_err(|e| Error::Config(e.to_string()))?;
        // Promtail style `clients:` list without `client:`: the first one is the primary.
        if let Value::Mapping(m) = &mut v {
            if !m.contains_key("client") {
                if let Some(Value::Sequence(list)) = m.get_mut("clients") {
                    if !list.is_empty() {
                        let first = list.remove(0);
                        m.insert("client".into(), first);
                    }
                }
            }
        }
        serde_yaml::from_value(v).map_err(|e| Error::Config(e.to_string()))
    }

    /// Every endpoint: `client` first, then `clients`.
    pub fn endpoints(&self) -> impl Iterator<Item = &ClientConfig> {
        std::iter::once(&self.client).chain(&self.clients)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<AgentConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg = AgentConfig::parse(&text).map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        cfg.validate().map_err(|e| Error::ConfigFile {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// Pure checks with messages naming the offending key.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.version != 1 {
            return bad(format!(
                "version: {} is not supported (only 1)",
                self.version
            ));
        }
        for (i, c) in self.endpoints().enumerate() {
            let at = if i == 0 {
                "client".to_string()
            } else {
                format!("clients[{}]", i - 1)
            };
            c.connector()
                .map_err(|e| Error::Config(format!("{at}: {e}")))?;
            if c.batch_size == 0 {
                return bad(format!("{at}.batch_size must be > 0"));
            }
            if c.min_backoff > c.max_backoff {
                return bad(format!("{at}.min_backoff is larger than {at}.max_backoff"));
            }
            for k in c.external_labels.keys() {
                if !silt_proto::is_valid_label_name(k) {
                    return bad(format!("{at}.external_labels: invalid label name {k:?}"));
                }
            }
        }
        if self.sources.is_empty() {
            return bad("sources: at least one source is required".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let name = s.name();
            let at = format!("sources[{i}] ({name})");
            if !names.insert(name.clone()) {
                return bad(format!("{at}: duplicate source name; set `name`"));
            }
            if name.contains(['/', '\\']) || name.starts_with('.') {
                return bad(format!("{at}: name must not contain '/' or start with '.'"));
            }
            match s {
                SourceConfig::File(t)
                | SourceConfig::KubernetesPods(t)
                | SourceConfig::Airflow(t) => {
                    if matches!(s, SourceConfig::File(_)) && t.include.is_empty() {
                        return bad(format!("{at}: include needs at least one glob"));
                    }
                    for g in t.include.iter().chain(&t.exclude) {
                        crate::glob::Glob::new(g)
                            .map_err(|e| Error::Config(format!("{at}: {e}")))?;
                    }
                    if let Some(k) = &t.kubernetes_api {
                        if !matches!(s, SourceConfig::KubernetesPods(_)) {
                            return bad(format!(
                                "{at}: kubernetes_api only applies to kubernetes_pods"
                            ));
                        }
                        k.access()
                            .connector()
                            .map_err(|e| e.at(&format!("{at}: kubernetes_api")))?;
                    }
                    if t.max_line_size == 0 {
                        return bad(format!("{at}: max_line_size must be > 0"));
                    }
                    for k in t.labels.keys() {
                        if !silt_proto::is_valid_label_name(k) {
                            return bad(format!("{at}: labels: invalid label name {k:?}"));
                        }
                    }
                    crate::relabel::Relabeler::new(&t.relabel_rules)
                        .map_err(|e| Error::Config(format!("{at}: relabel_rules: {e}")))?;
                    crate::stages::Pipeline::new(&t.stages)
                        .map_err(|e| Error::Config(format!("{at}: stages: {e}")))?;
                }
                SourceConfig::KubernetesEvents(e) => {
                    e.access().connector().map_err(|x| x.at(&at))?;
                    for k in e.labels.keys() {
                        if !silt_proto::is_valid_label_name(k) {
                            return bad(format!("{at}: labels: invalid label name {k:?}"));
                        }
                    }
                }
                SourceConfig::Journal(j) => {
                    j.validate()
                        .map_err(|e| Error::Config(format!("{at}: {e}")))?;
                }
                SourceConfig::LokiPush(p) => {
                    if self.server.listen.is_none() {
                        return bad(format!("{at}: needs server.listen"));
                    }
                    crate::relabel::Relabeler::new(&p.relabel_rules)
                        .map_err(|e| Error::Config(format!("{at}: relabel_rules: {e}")))?;
                    crate::stages::Pipeline::new(&p.stages)
                        .map_err(|e| Error::Config(format!("{at}: stages: {e}")))?;
                }
            }
        }
        if self.data_dir.is_none() {
            return bad("data_dir is required (positions are kept there)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_expansion() {
        let get = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(
            expand_env("a=${A} b=${B:-d} $$ $c", get).unwrap(),
            "a=x b=d $ $c"
        );
        assert!(expand_env("${B}", get)
            .unwrap_err()
            .to_string()
            .contains("B is not set"));
        assert!(expand_env("${A", get).is_err());
    }

    const MIN: &str = "data_dir: /tmp/x\nclient: {url: http://h:3100}\nsources: [{type: file, include: [/a/*.log]}]\n";

    #[test]
    fn minimal_config_validates() {
        let c = AgentConfig::parse(MIN).unwrap();
        c.validate().unwrap();
        assert_eq!(c.client.batch_size, 1 << 20);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = AgentConfig::parse(&MIN.replace("include:", "includ:")).unwrap_err();
        assert!(e.to_string().contains("includ"), "{e}");
        let e = AgentConfig::parse(&format!("{MIN}bogus: 1\n")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let c = AgentConfig::parse(&MIN.replace("http://h:3100", "ftp://h")).unwrap();
        assert!(c.validate().is_err());
        let c = AgentConfig::parse(&MIN.replace("[/a/*.log]", "[]")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("sources[0]"));
        let c = AgentConfig::parse(&MIN.replace("data_dir: /tmp/x\n", "")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("data_dir"));
    }

    #[test]
    fn client_auth_and_tls_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("token");
        std::fs::write(&tok, "t\n").unwrap();
        let with = |client: &str| {
            let text = MIN.replace("{url: http://h:3100}", client);
            AgentConfig::parse(&text).unwrap().validate()
        };
        let err = |client: &str| with(client).unwrap_err().to_string();
        let t = tok.display();
        with(&format!("{{url: 'https://h', bearer_token_file: '{t}', tls_config: {{insecure_skip_verify: true}}}}")).unwrap();
        with(&format!(
            "{{url: 'http://h', basic_auth: {{username: u, password_file: '{t}'}}}}"
        ))
        .unwrap();
        let e = err(&format!(
            "{{url: 'http://h', bearer_token: x, bearer_token_file: '{t}'}}"
        ));
        assert!(e.contains("mutually exclusive"), "{e}");
        let e = err(&format!(
            "{{url: 'http://h', basic_auth: {{username: u, password: p, password_file: '{t}'}}}}"
        ));
        assert!(e.contains("password_file"), "{e}");
        let e = err("{url: 'http://h', basic_auth: {username: u}, bearer_token: x}");
        assert!(e.contains("basic_auth and bearer_token"), "{e}");
        let e = err("{url: 'http://h', bearer_token_file: /nonexistent/token}");
        assert!(e.contains("/nonexistent/token"), "{e}");
        let e = err("{url: 'https://h', tls_config: {ca_file: /nonexistent/ca.pem}}");
        assert!(e.contains("client.tls_config.ca_file"), "{e}");
        let e = err(&format!(
            "{{url: 'https://h', tls_config: {{ca_file: '{t}'}}}}"
        ));
        assert!(e.contains("client.tls_config") && e.contains("CA"), "{e}");
        let e = err(&format!(
            "{{url: 'https://h', tls_config: {{cert_file: '{t}'}}}}"
        ));
        assert!(e.contains("key_file"), "{e}");
        let e = err("{url: 'http://h', bearer_token: x, headers: {authorization: y}}");
        assert!(e.contains("Authorization"), "{e}");
        let e = AgentConfig::parse(&MIN.replace(
            "{url: http://h:3100}",
            "{url: 'http://h', tls_config: {ca_fil: x}}",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("ca_fil"), "{e}");
        // Secrets stay out of Debug output (which may end up in logs).
        let c = AgentConfig::parse(&MIN.replace(
            "{url: http://h:3100}",
            "{url: 'http://h', bearer_token: hunter2}",
        ))
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn kubernetes_api_access_is_validated() {
        let pods = |api: &str| {
            let text = format!("data_dir: /tmp/x\nclient: {{url: http://h:3100}}\nsources: [{{type: kubernetes_pods, kubernetes_api: {api}}}]\n");
            AgentConfig::parse(&text).unwrap().validate()
        };
        pods("{url: 'http://127.0.0.1:8001'}").unwrap();
        let e = pods("{url: 'http://a', kubeconfig: /k}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kubernetes_api") && e.contains("mutually exclusive"),
            "{e}"
        );
        let e = pods("{kubeconfig: /nonexistent/kc}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/kc"), "{e}");
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
            let e = pods("{}").unwrap_err().to_string();
            assert!(e.contains("KUBERNETES_SERVICE_HOST"), "{e}");
        }
        let text = "data_dir: /tmp/x\nclient: {url: http://h:3100}\nsources: [{type: kubernetes_events, kubeconfig: /nonexistent/kc}]\n";
        let e = AgentConfig::parse(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sources[0]") && e.contains("/nonexistent/kc"),
            "{e}"
        );
    }

    #[test]
    fn example_config_parses() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agent.example.yaml");
        let text = std::fs::read_to_string(p).unwrap();
        let text = expand_env(&text, |_| Some("node-1".into())).unwrap();
        let c: AgentConfig = serde_yaml::from_str(&text).unwrap();
        c.validate().unwrap();
        assert!(c.sources.len() >= 3);
    }
}
