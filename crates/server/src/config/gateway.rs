//! `target` and the `gateway:` block: one authenticated entry point in front of the
//! nodes that store and query (issue #13).

use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// What this process runs (Loki's `-target`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Everything in one process: today's single node.
    #[default]
    All,
    /// Only the gateway: authenticates, picks the tenant and forwards to `gateway.write_urls`
    /// and `gateway.read_urls`; stores nothing.
    Gateway,
    /// Takes pushes: WAL, head and segments flushed into the shared bucket under its
    /// `cluster.writer_id`; never compacts nor applies retention.
    Write,
    /// Answers queries from the shared bucket's catalog (refreshed by listing); no pushes.
    Read,
    /// Compaction, retention, deletes and the ruler, while it holds the bucket's lease.
    Backend,
}

impl Target {
    /// Whether several processes of this target share one bucket.
    pub fn shares_bucket(self) -> bool {
        matches!(self, Target::Write | Target::Read | Target::Backend)
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Target::All),
            "gateway" => Ok(Target::Gateway),
            "write" => Ok(Target::Write),
            "read" => Ok(Target::Read),
            "backend" => Ok(Target::Backend),
            _ => Err(format!(
                "unknown target {s:?} (all, write, read, backend, gateway)"
            )),
        }
    }
}

/// The gateway's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Where pushes go (`/loki/api/v1/push`, `/api/prom/push`, `/otlp/v1/logs`): Loki
    /// pushes split by stream, each stream to the same writer while the list is
    /// unchanged; OTLP pushes whole, by tenant. `dns+http://name:port`: every address of
    /// the name, re-resolved every 10 s.
    pub write_urls: Vec<String>,
    /// Where everything else goes, in turn; the next one is tried when one cannot be
    /// reached.
    pub read_urls: Vec<String>,
    /// Where the delete API and the rules API and lists go (`target: backend` nodes), the
    /// first reachable one in this order; empty: to `read_urls` like everything else.
    pub backend_urls: Vec<String>,
    /// htpasswd file of users allowed in with basic auth (bcrypt hashes, as made by
    /// `htpasswd -B`). Re-read when it changes.
    pub basic_auth_file: Option<PathBuf>,
    /// Bearer tokens, one `user:token` per line (`#` comments). Re-read when it changes.
    pub tokens_file: Option<PathBuf>,
    /// The tenants each user may act as: `user: tenant` or `user: [t1, t2]`. A user with
    /// several picks one with `X-Scope-OrgID`; a user not listed is refused (403).
    pub tenants: HashMap<String, OneOrMany>,
    /// Requests per second per tenant (0: no limit); over it the gateway answers 429.
    pub requests_per_second: f64,
    /// Requests a tenant may make at once above the rate.
    pub burst: u32,
    /// Timeout of one forwarded request (tail sessions excepted).
    #[serde(deserialize_with = "super::de_duration")]
    pub timeout: Duration,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            write_urls: Vec::new(),
            read_urls: Vec::new(),
            backend_urls: Vec::new(),
            basic_auth_file: None,
            tokens_file: None,
            tenants: HashMap::new(),
            requests_per_second: 0.0,
            burst: 100,
            timeout: Duration::from_secs(300),
        }
    }
}

impl GatewayConfig {
    /// Whether users must authenticate.
    pub fn auth(&self) -> bool {
        self.basic_auth_file.is_some() || self.tokens_file.is_some()
    }

    /// Checks the block when `target` is `gateway`: (key, message) of the first problem.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, urls) in [
            ("gateway.write_urls", &self.write_urls),
            ("gateway.read_urls", &self.read_urls),
        ] {
            if urls.is_empty() {
                return Err((
                    key,
                    "at least one URL is needed with target: gateway".into(),
                ));
            }
            for u in urls {
                // Writers may be found by DNS (`dns+http://name:port`).
                match key {
                    "gateway.write_urls" => crate::discovery::check(u),
                    _ => super::check_http_url(u),
                }
                .map_err(|e| (key, e))?;
            }
        }
        for u in &self.backend_urls {
            super::check_http_url(u).map_err(|e| ("gateway.backend_urls", e))?;
        }
        for (key, file) in [
            ("gateway.basic_auth_file", &self.basic_auth_file),
            ("gateway.tokens_file", &self.tokens_file),
        ] {
            if let Some(f) = file {
                if let Err(e) = std::fs::metadata(f) {
                    return Err((key, format!("cannot read {}: {e}", f.display())));
                }
            }
        }
        if !self.tenants.is_empty() && !self.auth() {
            return Err((
                "gateway.tenants",
                "needs gateway.basic_auth_file or gateway.tokens_file (no users otherwise)".into(),
            ));
        }
        for (user, t) in &self.tenants {
            for tenant in t.to_vec() {
                if let Err(e) = silt_proto::validate_tenant(&tenant) {
                    return Err(("gateway.tenants", format!("user {user:?}: {e}")));
                }
            }
        }
        if !(self.requests_per_second >= 0.0 && self.requests_per_second.is_finite()) {
            return Err(("gateway.requests_per_second", "must be 0 or more".into()));
        }
        if self.requests_per_second > 0.0 && self.burst == 0 {
            return Err(("gateway.burst", "must be at least 1 with a rate".into()));
        }
        Ok(())
    }
}
