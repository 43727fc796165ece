//! `ruler.remote_write`: where recording rules' samples go, with Loki's keys (`enabled`,
//! `client` or `clients`, `add_org_id_header`) and a subset of Prometheus's
//! `remote_write` entry for each client.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `ruler.remote_write`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// Send recording rules' samples (off: they are evaluated and dropped).
    pub enabled: bool,
    /// One receiver (Loki's older key).
    pub client: Option<RemoteWriteClient>,
    /// Receivers by name; every sample goes to each.
    pub clients: BTreeMap<String, RemoteWriteClient>,
    /// Accepted for Loki configs; Silt reads its config once, so it has no effect.
    #[serde(deserialize_with = "super::de_duration")]
    pub config_refresh_period: Duration,
    /// Send `X-Scope-OrgID: <tenant>` with each request.
    pub add_org_id_header: bool,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            enabled: false,
            client: None,
            clients: BTreeMap::new(),
            config_refresh_period: Duration::from_secs(10),
            add_org_id_header: true,
        }
    }
}

/// One receiver (Prometheus's `remote_write` entry, the keys Silt supports).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteClient {
    /// Receiver URL, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Name used in logs (defaults to the `clients` key, or the URL).
    #[serde(default)]
    pub name: String,
    /// Timeout of one request.
    #[serde(default = "default_timeout", deserialize_with = "super::de_duration")]
    pub remote_timeout: Duration,
    /// Extra request headers (`X-Scope-OrgID` is dropped, as Loki does).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub queue_config: QueueConfig,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `basic_auth`: `password` or `password_file` (read at each request, so it can rotate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_file: String,
}

/// `authorization`: `Authorization: <type> <credentials>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(rename = "type", default = "bearer")]
    pub kind: String,
    #[serde(default)]
    pub credentials: String,
    #[serde(default)]
    pub credentials_file: String,
}

fn bearer() -> String {
    "Bearer".into()
}

/// `queue_config`: the in-memory queue in front of a receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Samples held while the receiver is slow or down; when full the oldest are dropped.
    pub capacity: usize,
    /// Most samples in one request.
    pub max_samples_per_send: usize,
    /// First retry delay, doubled after each failure up to `max_backoff`.
    #[serde(deserialize_with = "super::de_duration")]
    pub min_backoff: Duration,
    #[serde(deserialize_with = "super::de_duration")]
    pub max_backoff: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10_000,
            max_samples_per_send: 2_000,
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RemoteWriteConfig {
    /// The receivers when enabled, each with its name.
    pub fn receivers(&self) -> Vec<(String, &RemoteWriteClient)> {
        if !self.enabled {
            return Vec::new();
        }
        let named = |key: &str, c: &RemoteWriteClient| {
            let name = [c.name.as_str(), key, c.url.as_str()]
                .into_iter()
                .find(|n| !n.is_empty())
                .unwrap_or_default();
            name.to_string()
        };
        let mut out: Vec<_> = self.client.iter().map(|c| (named("", c), c)).collect();
        out.extend(self.clients.iter().map(|(k, c)| (named(k, c), c)));
        out
    }

    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled {
            return Ok(());
        }
        if self.client.is_none() && self.clients.is_empty() {
            return Err((
                "ruler.remote_write.client.url",
                "must be set when ruler.remote_write.enabled is true (or give clients)".into(),
            ));
        }
        for (name, c) in self.receivers() {
            let bad = |msg: String| Err(("ruler.remote_write", format!("client {name:?}: {msg}")));
            if let Err(e) = super::check_http_url(&c.url) {
                return bad(format!("url {e}"));
            }
            if c.remote_timeout.is_zero() {
                return bad("remote_timeout must be above 0".into());
            }
            if let Some(b) = &c.basic_auth {
                if b.username.is_empty() || !(b.password.is_empty() ^ b.password_file.is_empty()) {
                    return bad(
                        "basic_auth needs username and one of password, password_file".into(),
                    );
                }
            }
            if let Some(a) = &c.authorization {
                if !(a.credentials.is_empty() ^ a.credentials_file.is_empty()) {
                    return bad("authorization needs one of credentials, credentials_file".into());
                }
                if c.basic_auth.is_some() {
                    return bad("basic_auth and authorization are exclusive".into());
                }
            }
            let q = &c.queue_config;
            if q.capacity == 0 || q.max_samples_per_send == 0 {
                return bad(
                    "queue_config capacity and max_samples_per_send must be above 0".into(),
                );
            }
            if q.min_backoff.is_zero() || q.min_backoff > q.max_backoff {
                return bad("queue_config needs 0 < min_backoff <= max_backoff".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(yaml: &str) -> String {
        Config::from_yaml(yaml).unwrap_err().to_string()
    }

    #[test]
    fn loki_shapes_parse_and_bad_ones_are_named() {
        let cfg = Config::from_yaml(
            "ruler:
  remote_write:
    enabled: true
    config_refresh_period: 10s
    client:
      url: http://prom:9090/api/v1/write
      remote_timeout: 5s
      headers: {X-Extra: a}
      basic_auth: {username: u, password: p}
    clients:
      second:
        url: https://other/api/v1/write
        queue_config: {capacity: 10, max_backoff: 1s}
",
        )
        .unwrap();
        let rx = cfg.ruler.remote_write.receivers();
        assert_eq!(rx.len(), 2);
        assert_eq!(rx[0].0, "http://prom:9090/api/v1/write");
        assert_eq!(rx[1].0, "second");
        assert_eq!(rx[1].1.queue_config.capacity, 10);
        assert_eq!(rx[1].1.queue_config.max_samples_per_send, 2000);

        let e = err("ruler:\n  remote_write:\n    enabled: true\n");
        assert!(e.contains("ruler.remote_write.client.url"), "{e}");
        let e = err("ruler:\n  remote_write:\n    enabled: true\n    client: {url: prom:9090}\n");
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = err("ruler:\n  remote_write:\n    enabled: true\n    client: {url: 'http://p', basic_auth: {username: u}}\n");
        assert!(e.contains("basic_auth"), "{e}");
        let e = err("ruler:\n  remote_write:\n    client: {url: 'http://p', sigv4: {}}\n");
        assert!(e.contains("sigv4"), "{e}");
        // Disabled: nothing is required.
        assert!(Config::from_yaml("ruler:\n  remote_write:\n    enabled: false\n").is_ok());
    }
}
