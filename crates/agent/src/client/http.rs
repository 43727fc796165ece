//! Minimal HTTP/1.1 POST over hyper with one kept-alive connection (plain HTTP only).

use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::time::Duration;

/// A parsed push URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Endpoint {
    /// `http://host[:port][/path]`; no path means `/loki/api/v1/push`.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let bad = |m: &str| Error::Config(format!("client.url {url:?}: {m}"));
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse().map_err(|_| bad("invalid port"))?)
            }
            _ => (hostport, 80),
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let path = if path.is_empty() || path == "/" {
            "/loki/api/v1/push"
        } else {
            path
        };
        Ok(Endpoint {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            path: path.to_string(),
        })
    }
}

pub(super) struct Conn {
    ep: Endpoint,
    timeout: Duration,
    headers: BTreeMap<String, String>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(ep: Endpoint, timeout: Duration, headers: BTreeMap<String, String>) -> Conn {
        Conn {
            ep,
            timeout,
            headers,
            sender: None,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let t = |e: String| Error::PushTransport(e);
        let stream = tokio::net::TcpStream::connect((self.ep.host.as_str(), self.ep.port))
            .await
            .map_err(|e| t(format!("connect {}:{}: {e}", self.ep.host, self.ep.port)))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| t(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// POSTs one protobuf+snappy body; Ok only on 2xx.
    pub async fn post(&mut self, tenant: Option<&str>, body: Bytes) -> Result<()> {
        match tokio::time::timeout(self.timeout, self.post_inner(tenant, body)).await {
            Ok(r) => {
                if r.is_err() {
                    self.sender = None;
                }
                r
            }
            Err(_) => {
                self.sender = None;
                crate::metrics::metrics()
                    .requests
                    .get_or_create(&crate::metrics::StatusLabels {
                        status_code: "0".into(),
                    })
                    .inc();
                Err(Error::PushTransport(format!(
                    "timeout after {:?}",
                    self.timeout
                )))
            }
        }
    }

    async fn post_inner(&mut self, tenant: Option<&str>, body: Bytes) -> Result<()> {
        let t = |e: String| Error::PushTransport(e);
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await.map_err(|e| t(e.to_string()))?;
        let authority = format!("{}:{}", self.ep.host, self.ep.port);
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(&self.ep.path)
            .header("host", authority)
            .header("content-type", "application/x-protobuf")
            .header(
                "user-agent",
                concat!("silt-agent/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(tn) = tenant {
            req = req.header("x-scope-orgid", tn);
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(body)).map_err(|e| t(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| t(e.to_string()));
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                crate::metrics::metrics()
                    .requests
                    .get_or_create(&crate::metrics::StatusLabels {
                        status_code: "0".into(),
                    })
                    .inc();
                return Err(e);
            }
        };
        let status = resp.status().as_u16();
        crate::metrics::metrics()
            .requests
            .get_or_create(&crate::metrics::StatusLabels {
                status_code: status.to_string(),
            })
            .inc();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        // Read the body fully so the connection can be reused.
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        self.sender = Some(sender);
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned();
        Err(Error::PushStatus {
            status,
            body,
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = Endpoint::parse("http://loki:3100").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("loki", 3100, "/loki/api/v1/push")
        );
        let e = Endpoint::parse("http://10.0.0.1/custom/push").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/custom/push"));
        assert!(Endpoint::parse("https://x").is_err());
        assert!(Endpoint::parse("http://:80").is_err());
        assert!(Endpoint::parse("http://h:notaport").is_err());
    }
}
