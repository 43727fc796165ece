//! The `ruler:` block, with Loki's keys.

use super::RemoteWriteConfig;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Ruler settings (Loki's `ruler` block).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulerConfig {
    /// Serve the rules config API (`/loki/api/v1/rules`, `/api/prom/rules`). Rules posted
    /// through it are kept in the object store under `rules/<tenant>/`.
    pub enable_api: bool,
    /// Where rule files are read from, besides the API.
    pub storage: RulerStorage,
    /// Alertmanager base URLs, comma-separated (alerts go to `<url>/api/v2/alerts`);
    /// empty: alerting rules are evaluated and listed but sent nowhere.
    pub alertmanager_url: String,
    /// Interval of groups that set none.
    #[serde(deserialize_with = "super::de_duration")]
    pub evaluation_interval: Duration,
    /// A firing alert is sent again this often (Alertmanager expires it otherwise).
    #[serde(deserialize_with = "super::de_duration")]
    pub resend_delay: Duration,
    /// Where recording rules' samples are sent (Prometheus remote write).
    pub remote_write: RemoteWriteConfig,
}

/// `ruler.storage`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulerStorage {
    /// `local` (a directory of rule files) or empty.
    #[serde(rename = "type")]
    pub kind: String,
    /// `ruler.storage.local`.
    pub local: RulerLocal,
}

/// `ruler.storage.local`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulerLocal {
    /// Read-only rule files, Loki's layout: `<directory>/<tenant>/<namespace>.yaml`.
    pub directory: Option<PathBuf>,
}

impl Default for RulerConfig {
    fn default() -> Self {
        RulerConfig {
            enable_api: true,
            storage: RulerStorage::default(),
            alertmanager_url: String::new(),
            evaluation_interval: Duration::from_secs(60),
            resend_delay: Duration::from_secs(60),
            remote_write: RemoteWriteConfig::default(),
        }
    }
}

impl RulerConfig {
    /// The read-only rules directory, if one is configured.
    pub fn local_directory(&self) -> Option<&std::path::Path> {
        self.storage.local.directory.as_deref()
    }

    /// The Alertmanager URLs, without trailing slashes.
    pub fn alertmanager_urls(&self) -> Vec<&str> {
        self.alertmanager_url
            .split(',')
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| !u.is_empty())
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.storage.kind.as_str() {
            "" => {}
            "local" if self.storage.local.directory.is_none() => {
                return Err((
                    "ruler.storage.local.directory",
                    "must be set when ruler.storage.type is local".into(),
                ))
            }
            "local" => {}
            other => {
                return Err((
                    "ruler.storage.type",
                    format!("{other:?} is not supported: use local (API-managed rules always live in the object store)"),
                ))
            }
        }
        for u in self.alertmanager_urls() {
            super::check_http_url(u).map_err(|e| ("ruler.alertmanager_url", e))?;
        }
        if self.evaluation_interval < Duration::from_secs(1) {
            return Err(("ruler.evaluation_interval", "must be at least 1s".into()));
        }
        // The directory itself is checked at start (Rules::load): a config checked on
        // another machine (check-config in CI) need not have it.
        self.remote_write.validate()
    }
}
