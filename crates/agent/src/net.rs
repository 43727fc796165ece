//! HTTP(S) plumbing shared by the push client and the Kubernetes API client: URL parsing,
//! rustls client configs (private CA or system roots, client certificates, skip-verify)
//! and `Authorization` headers whose secret files are re-read per request, so rotated
//! tokens and passwords are picked up without a restart.

use crate::error::{Error, Result};
use base64::Engine as _;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Endpoint {
    /// A push URL: no path means `/loki/api/v1/push`.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let mut ep = Endpoint::parse_base(url)?;
        if ep.path.is_empty() || ep.path == "/" {
            ep.path = "/loki/api/v1/push".into();
        }
        Ok(ep)
    }

    /// `http(s)://host[:port][/path]`, the path kept as given (`""` when none).
    pub fn parse_base(url: &str) -> Result<Endpoint> {
        let bad = |m: &str| Error::Config(format!("url {url:?}: {m}"));
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if hostport.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported; use basic_auth",
            ));
        }
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after {
                "" => (h, None),
                _ => (
                    h,
                    Some(after.strip_prefix(':').ok_or_else(|| bad("bad host"))?),
                ),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
            None if tls => 443,
            None => 80,
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` for the `Host` header and messages (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A secret string that never shows up in `Debug` output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Promtail/Prometheus `tls_config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA bundle; the system roots when unset.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name to verify the server certificate against (and send as SNI) instead of the URL host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any server certificate. Only for testing.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

impl TlsConfig {
    /// Reads the files; errors name `at` (the config key).
    pub fn load(&self, at: &str) -> Result<TlsMaterial> {
        let read = |k: &str, p: &Option<PathBuf>| -> Result<Option<Vec<u8>>> {
            p.as_ref()
                .map(|p| {
                    std::fs::read(p)
                        .map_err(|e| Error::Config(format!("{at}.{k} {}: {e}", p.display())))
                })
                .transpose()
        };
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(Error::Config(format!(
                "{at}: cert_file and key_file must be set together"
            )));
        }
        Ok(TlsMaterial {
            ca_pem: read("ca_file", &self.ca_file)?,
            cert_pem: read("cert_file", &self.cert_file)?,
            key_pem: read("key_file", &self.key_file)?,
            server_name: self.server_name.clone(),
            insecure_skip_verify: self.insecure_skip_verify,
        })
    }
}

pub use silt_tls::TlsMaterial;

/// A secret given inline or as a file (re-read on every use).
#[derive(Debug, Clone, PartialEq)]
pub enum Secret {
    Inline(Redacted),
    File(PathBuf),
}

impl Secret {
    /// The value; files are trimmed like Prometheus does (a trailing newline is common).
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.0.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("{}: {e}", p.display())),
        }
    }
}

/// The `Authorization` header to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Auth {
    #[default]
    None,
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
}

impl Auth {
    /// The header value, reading secret files now.
    pub fn header(&self) -> Result<Option<String>, String> {
        Ok(match self {
            Auth::None => None,
            Auth::Bearer(t) => Some(format!("Bearer {}", t.read()?)),
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{}", password.read()?);
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ))
            }
        })
    }
}

/// Opens HTTP/1.1 connections (TLS for `https://`) and builds authenticated requests.
#[derive(Clone)]
pub struct Connector {
    ep: Endpoint,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    auth: Auth,
}

impl Connector {
    /// Builds the TLS config up front so bad certificates fail at start-up.
    pub fn new(ep: Endpoint, tls: &TlsMaterial, auth: Auth) -> Result<Connector> {
        let tls = if ep.tls {
            let cfg = tls.client_config().map_err(Error::Config)?;
            let name = tls.server_name.clone().unwrap_or_else(|| ep.host.clone());
            let name = ServerName::try_from(name.clone())
                .map_err(|_| Error::Config(format!("invalid TLS server name {name:?}")))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        // Fail now on unreadable secret files rather than on the first request.
        auth.header().map_err(Error::Config)?;
        Ok(Connector { ep, tls, auth })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// A new connection with its driver task spawned.
    pub async fn connect<B>(&self) -> Result<SendRequest<B>, String>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let at = self.ep.authority();
        let tcp = tokio::net::TcpStream::connect((self.ep.host.as_str(), self.ep.port))
            .await
            .map_err(|e| format!("connect {at}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((c, name)) => {
                let s = c
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {at}: {e}"))?;
                handshake(s).await
            }
        }
    }

    /// A request to `path_and_query` with `Host` and `Authorization` set.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
    ) -> Result<hyper::http::request::Builder, String> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", self.ep.authority());
        if let Some(v) = self.auth.header()? {
            b = b.header("authorization", v);
        }
        Ok(b)
    }
}

async fn handshake<S, B>(io: S) -> Result<SendRequest<B>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://loki:3100").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.path.as_str()),
            (false, "loki", 3100, "/loki/api/v1/push")
        );
        let e = Endpoint::parse("http://10.0.0.1/custom/push").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/custom/push"));
        let e = Endpoint::parse("https://logs.example.com").unwrap();
        assert_eq!((e.tls, e.port), (true, 443));
        let e = Endpoint::parse_base("https://[::1]:6443").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("::1", 6443, "")
        );
        assert_eq!(e.authority(), "[::1]:6443");
        assert_eq!(Endpoint::parse_base("https://[::1]").unwrap().port, 443);
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://:80").is_err());
        assert!(Endpoint::parse("http://h:notaport").is_err());
        assert!(Endpoint::parse("https://u:p@h").is_err());
    }

    #[test]
    fn auth_headers_reread_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "one\n").unwrap();
        let a = Auth::Bearer(Secret::File(f.clone()));
        assert_eq!(a.header().unwrap().as_deref(), Some("Bearer one"));
        std::fs::write(&f, "two").unwrap();
        assert_eq!(a.header().unwrap().as_deref(), Some("Bearer two"));
        let b = Auth::Basic {
            username: "user".into(),
            password: Secret::Inline(Redacted("pass".into())),
        };
        assert_eq!(b.header().unwrap().as_deref(), Some("Basic dXNlcjpwYXNz"));
        assert!(format!("{b:?}").contains("<redacted>") && !format!("{b:?}").contains("pass\""));
        std::fs::remove_file(&f).unwrap();
        assert!(a.header().is_err());
    }

    #[test]
    fn bad_pem_is_an_error_not_a_panic() {
        let m = TlsMaterial {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..Default::default()
        };
        assert!(m.client_config().unwrap_err().contains("CA"));
        let ep = Endpoint::parse("https://h:1").unwrap();
        assert!(Connector::new(ep, &m, Auth::None).is_err());
    }
}
