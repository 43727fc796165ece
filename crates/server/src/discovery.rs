//! Node lists that follow DNS (issue #13): a URL written `dns+http://name:port` stands
//! for every address `name` resolves to (a Kubernetes headless Service lists its ready
//! pods so), re-resolved every [`REFRESH`]; other URLs are taken as they are. Writers
//! added to a StatefulSet are then found by the gateway and the readers without a
//! config change.

use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;

/// How often names are resolved again.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);
const PREFIX: &str = "dns+";

/// Whether `u` is a `dns+http(s)://` URL.
pub(crate) fn is_dns(u: &str) -> bool {
    u.starts_with(PREFIX)
}

/// Checks a configured node URL: http(s), or dns+http(s) with a port.
pub(crate) fn check(u: &str) -> Result<(), String> {
    let Some(plain) = u.strip_prefix(PREFIX) else {
        return crate::config::check_http_url(u);
    };
    crate::config::check_http_url(plain)?;
    match reqwest::Url::parse(plain) {
        Ok(url) if url.port().is_some() && url.path() == "/" => Ok(()),
        _ => Err(format!(
            "{u:?}: a dns+ URL needs a port and no path (dns+http://name:port)"
        )),
    }
}

/// The current URLs of a configured list.
pub(crate) struct Nodes {
    configured: Vec<String>,
    current: RwLock<Arc<Vec<String>>>,
}

impl Nodes {
    /// The list as configured; `dns+` entries are empty until [`Nodes::resolve`].
    pub(crate) fn new(configured: Vec<String>) -> Arc<Nodes> {
        let fixed: Vec<String> = configured
            .iter()
            .filter(|u| !is_dns(u))
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        Arc::new(Nodes {
            configured,
            current: RwLock::new(Arc::new(fixed)),
        })
    }

    /// The URLs now (sorted, so every process hashes streams over the same order).
    pub(crate) fn get(&self) -> Arc<Vec<String>> {
        self.current.read().clone()
    }

    /// Resolves the `dns+` entries again. When a name does not resolve the list stays as
    /// it was (a DNS hiccup must not empty it).
    pub(crate) async fn resolve(&self) {
        if !self.configured.iter().any(|u| is_dns(u)) {
            return;
        }
        let before = self.get();
        let mut out = Vec::new();
        for u in &self.configured {
            let Some(plain) = u.strip_prefix(PREFIX) else {
                out.push(u.trim_end_matches('/').to_string());
                continue;
            };
            let Ok(url) = reqwest::Url::parse(plain) else {
                continue;
            };
            let (scheme, host, port) = (
                url.scheme(),
                url.host_str().unwrap_or_default().to_string(),
                url.port().unwrap_or(80),
            );
            let found = tokio::net::lookup_host(format!("{host}:{port}")).await;
            match found {
                Ok(addrs) => out.extend(addrs.map(|a| format!("{scheme}://{a}"))),
                Err(e) => {
                    tracing::warn!(url = %u, error = %e, "cannot resolve; node list kept");
                    return;
                }
            }
        }
        out.sort();
        out.dedup();
        if *before != out {
            tracing::info!(nodes = ?out, "node list changed");
            *self.current.write() = Arc::new(out);
        }
    }

    /// Resolves now, then every [`REFRESH`] until the process ends.
    pub(crate) fn spawn_refresh(self: &Arc<Self>) {
        if !self.configured.iter().any(|u| is_dns(u)) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.resolve().await;
                tokio::time::sleep(REFRESH).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dns_urls_become_one_url_per_address() {
        let n = Nodes::new(vec![
            "http://fixed:3100/".into(),
            "dns+http://localhost:3101".into(),
        ]);
        assert_eq!(*n.get(), ["http://fixed:3100"]);
        n.resolve().await;
        let now = n.get();
        assert!(now.contains(&"http://fixed:3100".to_string()), "{now:?}");
        assert!(
            now.contains(&"http://127.0.0.1:3101".to_string()),
            "{now:?}"
        );
        assert!(now.iter().all(|u| !u.starts_with("dns+")), "{now:?}");
        assert!(check("dns+http://silt-write.ns.svc:3100").is_ok());
        assert!(check("dns+http://silt-write:3100/x").is_err());
        assert!(check("dns+http://silt-write").is_err());
        assert!(check("dns+ftp://a:1").is_err());
    }
}
