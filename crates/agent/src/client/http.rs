//! Minimal HTTP/1.1 POST over hyper with one kept-alive connection (HTTP or HTTPS).

use crate::error::{Error, Result};
use crate::net::Connector;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) struct Conn {
    net: Connector,
    timeout: Duration,
    headers: BTreeMap<String, String>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(net: Connector, timeout: Duration, headers: BTreeMap<String, String>) -> Conn {
        Conn {
            net,
            timeout,
            headers,
            sender: None,
        }
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
                failed_request();
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
            _ => match self.net.connect().await {
                Ok(s) => s,
                Err(e) => {
                    // Refused connections and TLS failures show up like other failed requests.
                    failed_request();
                    return Err(t(e));
                }
            },
        };
        sender.ready().await.map_err(|e| t(e.to_string()))?;
        let mut req = self
            .net
            .request("POST", &self.net.endpoint().path)
            .map_err(|e| t(format!("credentials: {e}")))?
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
                failed_request();
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

/// Counts a request that got no HTTP status (`status_code="0"`).
fn failed_request() {
    crate::metrics::metrics()
        .requests
        .get_or_create(&crate::metrics::StatusLabels {
            status_code: "0".into(),
        })
        .inc();
}
