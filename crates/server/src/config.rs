//! The server's YAML configuration: one file, `${VAR}` / `${VAR:-default}` expansion,
//! unknown keys rejected, every value validated before start-up.
//!
//! `config/server.example.yaml` documents every option; a test keeps it in sync.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Root of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// File format version (must be 1).
    pub version: u32,
    /// Require `X-Scope-OrgID` on every request (multi-tenant mode). Off: tenant `fake`.
    pub auth_enabled: bool,
    /// HTTP server.
    pub server: ServerConfig,
    /// Storage engine.
    pub storage: StorageConfig,
    /// Per-tenant limits (defaults for every tenant).
    pub limits: LimitsConfig,
    /// Per-tenant overrides of retention limits, keyed by tenant id.
    pub overrides: std::collections::HashMap<String, TenantOverrides>,
    /// Background maintenance: retention and compaction.
    pub compactor: CompactorConfig,
    /// Alerting and recording rules.
    pub ruler: RulerConfig,
    /// What this process runs: `all` (default), `write`, `read`, `backend` or `gateway`.
    pub target: Target,
    /// The gateway (with `target: gateway`).
    pub gateway: GatewayConfig,
    /// The roles sharing one bucket (`target: write`, `read`, `backend`).
    pub cluster: ClusterConfig,
}

/// Background maintenance settings (Loki's `compactor` block).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorConfig {
    /// Time between maintenance passes.
    #[serde(deserialize_with = "de_duration")]
    pub compaction_interval: Duration,
    /// Merge small segments of the same tenant and day.
    pub compaction_enabled: bool,
    /// Segments are merged up to about this size.
    #[serde(deserialize_with = "de_bytes")]
    pub target_segment_size: u64,
    /// Delete data past its retention (see `limits.retention_period`).
    pub retention_enabled: bool,
    /// How long replaced or expired objects stay for queries already running.
    #[serde(deserialize_with = "de_duration")]
    pub retention_delete_delay: Duration,
    /// Delete requests can be cancelled this long, then they are applied to stored data.
    #[serde(deserialize_with = "de_duration")]
    pub delete_request_cancel_period: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            compaction_interval: Duration::from_secs(600),
            compaction_enabled: true,
            target_segment_size: 128 << 20,
            // Silt keeps 7 days by default (Loki keeps everything unless told otherwise).
            retention_enabled: true,
            retention_delete_delay: Duration::from_secs(120),
            delete_request_cancel_period: Duration::from_secs(24 * 3600),
        }
    }
}

/// One `retention_stream` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionStreamConfig {
    /// Stream selector, e.g. `{namespace="dev"}`.
    pub selector: String,
    /// Highest priority among matching rules wins.
    #[serde(default)]
    pub priority: u32,
    /// Retention of matching streams.
    #[serde(deserialize_with = "de_duration")]
    pub period: Duration,
}

/// Per-tenant overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantOverrides {
    /// Overrides `limits.retention_period`.
    #[serde(deserialize_with = "de_opt_duration")]
    pub retention_period: Option<Duration>,
    /// Replaces `limits.retention_stream` for this tenant.
    pub retention_stream: Option<Vec<RetentionStreamConfig>>,
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address, `host:port`.
    pub listen: String,
    /// Log level filter (`info`, `debug`, `silt_storage=debug,info`…).
    pub log_level: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Time allowed for in-flight requests and the final flush on shutdown.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// Serve HTTPS instead of HTTP (Loki's `http_tls_config`).
    pub tls: Option<TlsConfig>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text (ANSI colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS of the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first).
    pub cert_file: PathBuf,
    /// PEM private key of the certificate.
    pub key_file: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Storage settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for the WAL, local objects and caches.
    pub data_dir: PathBuf,
    /// fsync the WAL before acknowledging a push. Turning this off can lose acknowledged data.
    pub wal_fsync: bool,
    /// Flush the head to a segment once it holds this much raw data.
    #[serde(deserialize_with = "de_bytes")]
    pub flush_max_bytes: u64,
    /// Flush the head once its oldest data is this old.
    #[serde(deserialize_with = "de_duration")]
    pub flush_max_age: Duration,
    /// zstd level of segments at rest (1–22): compaction rewrites flushed segments at it.
    pub zstd_level: i32,
    /// zstd level of segments written by a flush (1–22): fast, so compression does not
    /// hold up ingest; compaction later rewrites them at `zstd_level`.
    pub flush_zstd_level: i32,
    /// Write a content index beside each segment, so line filters skip blocks of lines
    /// that cannot match.
    pub content_index: bool,
    /// Refuse pushes (503) once the WAL holds this much; 0 disables the cap. The WAL only
    /// grows past a few flushes' worth when the object store is failing.
    #[serde(deserialize_with = "de_bytes")]
    pub wal_max_size: u64,
    /// Most memory the in-memory heads (the one taking writes and those being written out
    /// as segments) may hold together; above it pushes wait up to 5 s, then get 503. The
    /// head is also flushed once it holds half of this. 0 disables the cap.
    #[serde(deserialize_with = "de_bytes")]
    pub max_head_memory: u64,
    /// Where segments are stored.
    pub object_store: ObjectStoreConfig,
}

/// Object store settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectStoreConfig {
    /// `local` (`<data_dir>/objects`) or `s3`.
    pub backend: BackendKind,
    /// Most concurrent requests (uploads, downloads, lists) towards the object store.
    pub max_concurrency: usize,
    /// Size cap of the local cache of segment blocks read by range (remote backends).
    #[serde(deserialize_with = "de_bytes")]
    pub cache_max_size: u64,
    /// Longest wait between retries of a failed segment upload (backoff doubles up to it).
    #[serde(deserialize_with = "de_duration")]
    pub retry_max_backoff: Duration,
    /// S3 settings (backend `s3`).
    pub s3: S3Settings,
}

/// Object store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The local filesystem.
    #[default]
    Local,
    /// S3 or an S3-compatible server.
    S3,
}

/// S3 settings. Unset credentials fall back to `AWS_*` variables, web identity, or instance metadata.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Region.
    pub region: String,
    /// Endpoint URL of an S3-compatible server (empty: AWS).
    pub endpoint: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub force_path_style: bool,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token.
    pub session_token: String,
    /// File holding the access key id (e.g. a mounted secret); overrides `access_key_id`.
    pub access_key_id_file: PathBuf,
    /// File holding the secret access key; overrides `secret_access_key`.
    pub secret_access_key_file: PathBuf,
    /// Time one request may take.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: Duration,
    /// Retries of one request (with backoff) inside the S3 client.
    pub max_retries: usize,
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig {
            backend: BackendKind::Local,
            max_concurrency: 8,
            cache_max_size: 10 << 30,
            retry_max_backoff: Duration::from_secs(60),
            s3: S3Settings::default(),
        }
    }
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            bucket: String::new(),
            region: "us-east-1".into(),
            endpoint: String::new(),
            prefix: String::new(),
            force_path_style: false,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: String::new(),
            access_key_id_file: PathBuf::new(),
            secret_access_key_file: PathBuf::new(),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

impl StorageConfig {
    /// The storage engine's backend, reading credential files.
    pub fn backend(&self) -> Result<silt_storage::Backend, ConfigError> {
        let o = &self.object_store;
        if o.backend == BackendKind::Local {
            return Ok(silt_storage::Backend::Local);
        }
        let s = &o.s3;
        let read = |key: &'static str, path: &PathBuf, inline: &str| {
            if path.as_os_str().is_empty() {
                return Ok((!inline.is_empty()).then(|| inline.to_string()));
            }
            std::fs::read_to_string(path)
                .map(|v| Some(v.trim().to_string()))
                .map_err(|e| ConfigError::Invalid {
                    key,
                    msg: format!("cannot read {}: {e}", path.display()),
                })
        };
        let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Ok(silt_storage::Backend::S3(silt_storage::S3Config {
            bucket: s.bucket.clone(),
            region: s.region.clone(),
            endpoint: opt(&s.endpoint),
            prefix: s.prefix.clone(),
            path_style: s.force_path_style,
            access_key_id: read(
                "storage.object_store.s3.access_key_id_file",
                &s.access_key_id_file,
                &s.access_key_id,
            )?,
            secret_access_key: read(
                "storage.object_store.s3.secret_access_key_file",
                &s.secret_access_key_file,
                &s.secret_access_key,
            )?,
            session_token: opt(&s.session_token),
            request_timeout: s.request_timeout,
            max_retries: s.max_retries,
        }))
    }
}

/// Limits, with Loki's defaults and names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Per-tenant ingestion rate, MB/s of lines + structured metadata.
    pub ingestion_rate_mb: f64,
    /// Per-tenant burst, MB.
    pub ingestion_burst_size_mb: f64,
    /// Largest accepted line.
    #[serde(deserialize_with = "de_bytes")]
    pub max_line_size: u64,
    /// Truncate long lines instead of rejecting them.
    pub max_line_size_truncate: bool,
    /// Most labels per stream (`service_name` not counted).
    pub max_label_names_per_series: usize,
    /// Longest label name.
    pub max_label_name_length: usize,
    /// Longest label value.
    pub max_label_value_length: usize,
    /// Reject entries older than `reject_old_samples_max_age`.
    pub reject_old_samples: bool,
    /// Age beyond which entries are rejected.
    #[serde(deserialize_with = "de_duration")]
    pub reject_old_samples_max_age: Duration,
    /// How far in the future an entry may be.
    #[serde(deserialize_with = "de_duration")]
    pub creation_grace_period: Duration,
    /// Accept structured metadata.
    pub allow_structured_metadata: bool,
    /// Largest structured metadata per entry.
    #[serde(deserialize_with = "de_bytes")]
    pub max_structured_metadata_size: u64,
    /// Most structured metadata pairs per entry.
    pub max_structured_metadata_entries_count: usize,
    /// Add `detected_level` structured metadata at ingest.
    pub discover_log_levels: bool,
    /// Add `service_name` from these labels (first present wins).
    pub discover_service_name: Vec<String>,
    /// Most streams a tenant may hold in memory (new streams beyond it get 429); 0 disables.
    pub max_global_streams_per_user: usize,
    /// Largest push body as received.
    #[serde(deserialize_with = "de_bytes")]
    pub max_recv_msg_size: u64,
    /// Highest `limit` of a log query.
    pub max_entries_limit_per_query: usize,
    /// Most series one query may build (memory guard).
    pub max_query_series: usize,
    /// Longest query range.
    #[serde(deserialize_with = "de_duration")]
    pub max_query_length: Duration,
    /// Time a query may run.
    #[serde(deserialize_with = "de_duration")]
    pub query_timeout: Duration,
    /// Threads one query may use (time slices run in parallel); 0 = one per core.
    pub max_query_parallelism: usize,
    /// Most live tail sessions (`/loki/api/v1/tail`) a tenant may hold open.
    pub max_concurrent_tail_requests: usize,
    /// Longest a live tail session stays open before the server closes it.
    #[serde(deserialize_with = "de_duration")]
    pub tail_max_duration: Duration,
    /// Data older than this is deleted (when `compactor.retention_enabled`); 0 keeps forever.
    #[serde(deserialize_with = "de_duration")]
    pub retention_period: Duration,
    /// Per-stream retention by selector; the highest priority matching rule wins.
    pub retention_stream: Vec<RetentionStreamConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: 1,
            auth_enabled: false,
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            limits: LimitsConfig::default(),
            overrides: Default::default(),
            compactor: CompactorConfig::default(),
            ruler: RulerConfig::default(),
            target: Target::All,
            gateway: GatewayConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:3100".into(),
            log_level: "info".into(),
            log_format: LogFormat::Text,
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            wal_fsync: true,
            flush_max_bytes: 64 << 20,
            flush_max_age: Duration::from_secs(15 * 60),
            zstd_level: 15,
            flush_zstd_level: 1,
            content_index: true,
            wal_max_size: 0,
            max_head_memory: 128 << 20,
            object_store: ObjectStoreConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let v = silt_proto::ValidationLimits::default();
        LimitsConfig {
            ingestion_rate_mb: 4.0,
            ingestion_burst_size_mb: 6.0,
            max_line_size: v.max_line_size as u64,
            max_line_size_truncate: v.max_line_size_truncate,
            max_label_names_per_series: v.max_label_names_per_series,
            max_label_name_length: v.max_label_name_length,
            max_label_value_length: v.max_label_value_length,
            reject_old_samples: v.reject_old_samples,
            reject_old_samples_max_age: v.reject_old_samples_max_age,
            creation_grace_period: v.creation_grace_period,
            allow_structured_metadata: v.allow_structured_metadata,
            max_structured_metadata_size: v.max_structured_metadata_size as u64,
            max_structured_metadata_entries_count: v.max_structured_metadata_entries_count,
            discover_log_levels: v.discover_log_levels,
            discover_service_name: v.discover_service_name,
            max_global_streams_per_user: 5000,
            max_recv_msg_size: 100 << 20,
            max_entries_limit_per_query: 5000,
            max_query_series: 500_000,
            max_query_length: Duration::from_secs(721 * 3600),
            query_timeout: Duration::from_secs(60),
            max_query_parallelism: 0,
            max_concurrent_tail_requests: 10,
            tail_max_duration: Duration::from_secs(3600),
            retention_period: Duration::from_secs(168 * 3600),
            retention_stream: Vec::new(),
        }
    }
}

impl LimitsConfig {
    /// Push validation limits for the wire-format crate.
    pub fn validation(&self) -> silt_proto::ValidationLimits {
        silt_proto::ValidationLimits {
            max_line_size: self.max_line_size as usize,
            max_line_size_truncate: self.max_line_size_truncate,
            max_label_names_per_series: self.max_label_names_per_series,
            max_label_name_length: self.max_label_name_length,
            max_label_value_length: self.max_label_value_length,
            reject_old_samples: self.reject_old_samples,
            reject_old_samples_max_age: self.reject_old_samples_max_age,
            creation_grace_period: self.creation_grace_period,
            allow_structured_metadata: self.allow_structured_metadata,
            max_structured_metadata_size: self.max_structured_metadata_size as usize,
            max_structured_metadata_entries_count: self.max_structured_metadata_entries_count,
            discover_service_name: self.discover_service_name.clone(),
            discover_log_levels: self.discover_log_levels,
            ..silt_proto::ValidationLimits::default()
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// YAML syntax, unknown key or wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value out of range.
    #[error("invalid config: {key}: {msg}")]
    Invalid {
        /// Dotted key path.
        key: &'static str,
        /// What is wrong.
        msg: String,
    },
}

impl Config {
    /// Reads, expands `${VAR}` references in, parses and validates a config file.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text)
    }

    /// Parses and validates YAML text (after env expansion).
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        let expanded = expand_env(text)?;
        let cfg: Config = if expanded.trim().is_empty() {
            Config::default()
        } else {
            let de = serde_yaml::Deserializer::from_str(&expanded);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                ConfigError::Parse(if path == "." {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                })
            })?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that the types alone do not constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &'static str, msg: &str| {
            Err(ConfigError::Invalid {
                key,
                msg: msg.to_string(),
            })
        };
        if self.version != 1 {
            return bad("version", "only version 1 is supported");
        }
        if let Err((key, msg)) = self.ruler.validate() {
            return bad(key, &msg);
        }
        if self.target == Target::Gateway {
            if let Err((key, msg)) = self.gateway.validate() {
                return bad(key, &msg);
            }
        }
        if self.target.shares_bucket() {
            if let Err((key, msg)) = self.cluster.validate(self.target) {
                return bad(key, &msg);
            }
            if self.storage.object_store.backend != BackendKind::S3 {
                return bad(
                    "storage.object_store.backend",
                    "must be s3 with target write, read or backend (they share one bucket)",
                );
            }
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(
                "server.listen",
                "must be host:port with a numeric host, e.g. 0.0.0.0:3100",
            );
        }
        if let Some(t) = &self.server.tls {
            crate::tls::server_config(t)?;
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return bad("storage.data_dir", "must not be empty");
        }
        if !(1..=22).contains(&self.storage.zstd_level) {
            return bad("storage.zstd_level", "must be between 1 and 22");
        }
        if !(1..=22).contains(&self.storage.flush_zstd_level) {
            return bad("storage.flush_zstd_level", "must be between 1 and 22");
        }
        if self.storage.flush_max_bytes < 1 << 20 {
            return bad("storage.flush_max_bytes", "must be at least 1MiB");
        }
        let head_mem = self.storage.max_head_memory;
        if head_mem != 0 && head_mem < 16 << 20 {
            return bad(
                "storage.max_head_memory",
                "must be 0 (no cap) or at least 16MiB",
            );
        }
        if self.storage.flush_max_age < Duration::from_secs(1) {
            return bad("storage.flush_max_age", "must be at least 1s");
        }
        let o = &self.storage.object_store;
        if o.max_concurrency == 0 {
            return bad("storage.object_store.max_concurrency", "must be positive");
        }
        if o.backend == BackendKind::S3 {
            if o.s3.bucket.is_empty() {
                return bad(
                    "storage.object_store.s3.bucket",
                    "must be set for backend s3",
                );
            }
            if o.s3.request_timeout.is_zero() {
                return bad(
                    "storage.object_store.s3.request_timeout",
                    "must be positive",
                );
            }
        }
        let l = &self.limits;
        if l.ingestion_rate_mb <= 0.0 || l.ingestion_burst_size_mb <= 0.0 {
            return bad(
                "limits.ingestion_rate_mb",
                "rate and burst must be positive",
            );
        }
        if l.max_entries_limit_per_query == 0 {
            return bad("limits.max_entries_limit_per_query", "must be positive");
        }
        if l.max_query_series == 0 {
            return bad("limits.max_query_series", "must be positive");
        }
        if l.query_timeout.is_zero() {
            return bad("limits.query_timeout", "must be positive");
        }
        if l.tail_max_duration.is_zero() {
            return bad("limits.tail_max_duration", "must be positive");
        }
        if l.max_recv_msg_size == 0 {
            return bad("limits.max_recv_msg_size", "must be positive");
        }
        self.retention()?;
        if self.compactor.compaction_interval.is_zero() {
            return bad("compactor.compaction_interval", "must be positive");
        }
        Ok(())
    }
}

fn stream_rules(
    key: &'static str,
    rules: &[RetentionStreamConfig],
) -> Result<Vec<silt_storage::StreamRule>, ConfigError> {
    rules
        .iter()
        .map(|r| {
            let invalid = |msg: String| ConfigError::Invalid { key, msg };
            let matchers = match silt_logql::parse(&r.selector) {
                Ok(silt_logql::ast::Expr::Log(e)) if e.pipeline.is_empty() => e.selector,
                Ok(_) => {
                    return Err(invalid(format!(
                        "{:?} must be a stream selector only",
                        r.selector
                    )))
                }
                Err(e) => return Err(invalid(format!("{:?}: {e}", r.selector))),
            };
            Ok(silt_storage::StreamRule {
                matchers,
                priority: r.priority,
                period: r.period,
            })
        })
        .collect()
}

impl Config {
    /// The storage engine's retention settings (selectors parsed).
    pub fn retention(&self) -> Result<silt_storage::Retention, ConfigError> {
        let mut tenants = std::collections::HashMap::new();
        for (t, o) in &self.overrides {
            let streams = match &o.retention_stream {
                Some(r) => Some(stream_rules("overrides.retention_stream", r)?),
                None => None,
            };
            tenants.insert(
                t.clone(),
                silt_storage::TenantRetention {
                    period: o.retention_period,
                    streams,
                },
            );
        }
        Ok(silt_storage::Retention {
            enabled: self.compactor.retention_enabled,
            period: self.limits.retention_period,
            streams: stream_rules("limits.retention_stream", &self.limits.retention_stream)?,
            tenants,
        })
    }
}

/// Replaces `${VAR}` and `${VAR:-default}`; an unset variable without default is an error.
fn expand_env(text: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find('}') else {
            return Err(ConfigError::Parse("unterminated ${ in config".into()));
        };
        let expr = &after[..j];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(d)) => out.push_str(d),
            (Err(_), None) => {
                return Err(ConfigError::Parse(format!(
                    "environment variable {name} is not set (use ${{{name}:-default}})"
                )))
            }
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that `u` is an absolute http(s) URL with a host; the error names it.
pub(crate) fn check_http_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        _ => Err(format!("{u:?} is not an http(s) URL")),
    }
}

mod cluster;
mod gateway;
mod remote_write;
mod ruler;
mod units;
pub use cluster::ClusterConfig;
pub use gateway::{GatewayConfig, OneOrMany, Target};
pub use remote_write::{
    Authorization, BasicAuth, QueueConfig, RemoteWriteClient, RemoteWriteConfig,
};
pub use ruler::{RulerConfig, RulerLocal, RulerStorage};
pub(crate) use units::{de_bytes, de_duration, de_opt_duration};
pub use units::{parse_bytes, parse_duration};

#[cfg(test)]
mod tests;
