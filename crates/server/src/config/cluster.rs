//! The `cluster:` block: settings of the roles that share one bucket (`target: write`,
//! `read`, `backend`; issue #13).

use serde::Deserialize;
use std::time::Duration;

/// Settings of the roles sharing one bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This writer's id (`target: write`): unique among the writers of the bucket and
    /// stable across restarts (its WAL replay trusts the segments written under it), e.g.
    /// the pod name in a StatefulSet.
    pub writer_id: String,
    /// How often readers and the backend list the bucket for new and removed segments.
    #[serde(deserialize_with = "super::de_duration")]
    pub catalog_refresh_interval: Duration,
    /// The backend lease lasts this long unrenewed; another backend then takes over.
    #[serde(deserialize_with = "super::de_duration")]
    pub lease_ttl: Duration,
    /// Time between renewals of the lease (default: a third of `lease_ttl`).
    #[serde(deserialize_with = "super::de_opt_duration")]
    pub lease_renew_interval: Option<Duration>,
    /// The writers a reader (or the backend's ruler) asks for their unflushed lines on
    /// every read (`target: read`, `backend`), e.g. each pod of the writers'
    /// StatefulSet, or `dns+http://name:port` for every address of a headless Service;
    /// empty: lines are seen once flushed. A writer that cannot be reached fails the query.
    pub writer_urls: Vec<String>,
    /// Timeout of one such request.
    #[serde(deserialize_with = "super::de_duration")]
    pub writer_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            writer_id: String::new(),
            catalog_refresh_interval: Duration::from_secs(15),
            lease_ttl: Duration::from_secs(30),
            lease_renew_interval: None,
            writer_urls: Vec::new(),
            writer_timeout: Duration::from_secs(10),
        }
    }
}

impl ClusterConfig {
    /// Time between lease renewals.
    pub fn renew_interval(&self) -> Duration {
        self.lease_renew_interval.unwrap_or(self.lease_ttl / 3)
    }

    /// Checks the block for `target`: (key, message) of the first problem.
    pub(crate) fn validate(&self, target: super::Target) -> Result<(), (&'static str, String)> {
        use super::Target;
        let id = &self.writer_id;
        if target == Target::Write {
            if id.is_empty() {
                return Err((
                    "cluster.writer_id",
                    "must be set with target: write (unique per writer, stable across restarts)"
                        .into(),
                ));
            }
            let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if id.len() > 64 || !id.chars().all(ok) {
                return Err((
                    "cluster.writer_id",
                    format!("{id:?}: letters, digits, - and _ only, at most 64"),
                ));
            }
        }
        if self.catalog_refresh_interval < Duration::from_millis(100) {
            return Err((
                "cluster.catalog_refresh_interval",
                "must be at least 100ms".into(),
            ));
        }
        for u in &self.writer_urls {
            crate::discovery::check(u).map_err(|e| ("cluster.writer_urls", e))?;
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(("cluster.lease_ttl", "must be at least 1s".into()));
        }
        let renew = self.renew_interval();
        if renew.is_zero() || renew > self.lease_ttl / 3 {
            return Err((
                "cluster.lease_renew_interval",
                "must be positive and at most a third of cluster.lease_ttl (a holder counts its lease as two thirds of it)".into(),
            ));
        }
        Ok(())
    }
}
