//! The `ruler:` block, with Loki's keys.

use serde::Deserialize;
use std::path::PathBuf;

/// Ruler settings (Loki's `ruler` block).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulerConfig {
    /// Serve the rules config API (`/loki/api/v1/rules`, `/api/prom/rules`). Rules posted
    /// through it are kept in the object store under `rules/<tenant>/`.
    pub enable_api: bool,
    /// Where rule files are read from, besides the API.
    pub storage: RulerStorage,
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
        }
    }
}

impl RulerConfig {
    /// The read-only rules directory, if one is configured.
    pub fn local_directory(&self) -> Option<&std::path::Path> {
        self.storage.local.directory.as_deref()
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
        if let Some(d) = &self.storage.local.directory {
            if !d.is_dir() {
                return Err((
                    "ruler.storage.local.directory",
                    format!("{} is not a directory", d.display()),
                ));
            }
        }
        Ok(())
    }
}
