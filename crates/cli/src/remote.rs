//! The client side of the query verbs: logcli's connection flags and environment, and GET
//! requests answering JSON.

use clap::Args;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the server is and how to authenticate: logcli's flags and `LOKI_*` variables.
#[derive(Args, Clone, Debug)]
pub struct ConnArgs {
    /// Server address.
    #[arg(long, env = "LOKI_ADDR", default_value = "http://localhost:3100")]
    pub addr: String,
    /// Tenant, sent as X-Scope-OrgID.
    #[arg(long, env = "LOKI_ORG_ID")]
    pub org_id: Option<String>,
    /// Basic auth user.
    #[arg(long, env = "LOKI_USERNAME")]
    pub username: Option<String>,
    /// Basic auth password.
    #[arg(long, env = "LOKI_PASSWORD")]
    pub password: Option<String>,
    /// Bearer token (Authorization header).
    #[arg(long, env = "LOKI_BEARER_TOKEN")]
    pub bearer_token: Option<String>,
    /// File holding the bearer token.
    #[arg(long, env = "LOKI_BEARER_TOKEN_FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the server with.
    #[arg(long, env = "LOKI_CA_CERT_PATH")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, env = "LOKI_CLIENT_CERT_PATH")]
    pub cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, env = "LOKI_CLIENT_KEY_PATH")]
    pub key: Option<PathBuf>,
    /// Do not verify the server's certificate.
    #[arg(long, env = "LOKI_TLS_SKIP_VERIFY")]
    pub tls_skip_verify: bool,
    /// Suppress query metadata (URLs, common labels) on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// A tail session's socket.
pub type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// A connection to the server.
pub struct Remote {
    args: ConnArgs,
    client: reqwest::Client,
    /// The TLS settings of an `https://` address, shared by HTTP requests and the tail
    /// WebSocket.
    tls: Option<Arc<rustls::ClientConfig>>,
    rt: tokio::runtime::Runtime,
}

impl Remote {
    /// Builds the HTTP client from the flags (reads the certificate files once).
    pub fn new(args: &ConnArgs) -> Result<Remote, String> {
        if args.cert.is_some() != args.key.is_some() {
            return Err("--cert and --key go together".into());
        }
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(300));
        let tls = if args.addr.starts_with("https://") {
            let read = |p: &Option<PathBuf>| {
                p.as_ref()
                    .map(|p| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())))
                    .transpose()
            };
            let material = silt_tls::TlsMaterial {
                ca_pem: read(&args.ca_cert)?,
                cert_pem: read(&args.cert)?,
                key_pem: read(&args.key)?,
                server_name: None,
                insecure_skip_verify: args.tls_skip_verify,
            };
            let cfg = material.client_config()?;
            b = b.tls_backend_preconfigured(cfg.clone());
            Some(Arc::new(cfg))
        } else {
            None
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Remote {
            args: args.clone(),
            client: b.build().map_err(|e| e.to_string())?,
            tls,
            rt,
        })
    }

    /// `path` with query `params` as a URL, with the request logged unless quiet.
    fn url(&self, path: &str, params: &[(&str, String)]) -> Result<reqwest::Url, String> {
        let url = self.silent_url(path, params)?;
        if !self.args.quiet {
            eprintln!("{url}");
        }
        Ok(url)
    }

    /// `path` with query `params` as a URL.
    fn silent_url(&self, path: &str, params: &[(&str, String)]) -> Result<reqwest::Url, String> {
        let base = self.args.addr.trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| format!("invalid address {base:?}: {e}"))?;
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        Ok(url)
    }

    /// The `Authorization` header the flags ask for.
    fn authorization(&self) -> Result<Option<String>, String> {
        use base64::Engine as _;
        if let Some(u) = &self.args.username {
            let pair = format!("{u}:{}", self.args.password.as_deref().unwrap_or_default());
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
            return Ok(Some(format!("Basic {b64}")));
        }
        let token = match (&self.args.bearer_token, &self.args.bearer_token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("{}: {e}", f.display()))?
                .trim()
                .to_string(),
            _ => return Ok(None),
        };
        Ok(Some(format!("Bearer {token}")))
    }

    /// Opens a WebSocket to `path` (`ws://` or `wss://` after the address's scheme).
    pub fn websocket(&self, path: &str, params: &[(&str, String)]) -> Result<Socket, String> {
        use tungstenite::client::IntoClientRequest;
        let mut url = self.url(path, params)?;
        let tls = url.scheme() == "https";
        url.set_scheme(if tls { "wss" } else { "ws" })
            .map_err(|()| format!("cannot tail over {}", url.scheme()))?;
        let host = url.host_str().ok_or("address without a host")?.to_string();
        let port = url
            .port_or_known_default()
            .ok_or("address without a port")?;
        let tcp = std::net::TcpStream::connect((host.as_str(), port))
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let h = req.headers_mut();
        if let Some(o) = &self.args.org_id {
            h.insert("X-Scope-OrgID", o.parse().map_err(|_| "invalid --org-id")?);
        }
        if let Some(a) = self.authorization()? {
            h.insert(
                "Authorization",
                a.parse().map_err(|_| "invalid credentials")?,
            );
        }
        let connector = match (&self.tls, tls) {
            (Some(cfg), true) => tungstenite::Connector::Rustls(cfg.clone()),
            _ => tungstenite::Connector::Plain,
        };
        let (socket, _) = tungstenite::client_tls_with_config(req, tcp, None, Some(connector))
            .map_err(|e| format!("tail: {e}"))?;
        Ok(socket)
    }

    /// Sends `req` with the tenant and credentials; any answer, or the transport error.
    fn send(&self, mut req: reqwest::RequestBuilder) -> Result<Answer, String> {
        if let Some(o) = &self.args.org_id {
            req = req.header("X-Scope-OrgID", o);
        }
        if let Some(a) = self.authorization()? {
            req = req.header("Authorization", a);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
            Ok(Answer {
                status,
                retry_after,
                body,
            })
        })
    }

    /// GET `path` with query `params`; the JSON body of a 200, else the server's message.
    pub fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let a = self.send(self.client.get(self.url(path, params)?))?;
        if !(200..300).contains(&a.status) {
            return Err(format!(
                "Error response from server: {} ({})",
                a.text(),
                reqwest::StatusCode::from_u16(a.status).map_err(|e| e.to_string())?
            ));
        }
        serde_json::from_slice(&a.body).map_err(|e| format!("invalid JSON from server: {e}"))
    }

    /// GET `path` without logging it; the answer whatever its status.
    pub fn get_answer(&self, path: &str) -> Result<Answer, String> {
        self.send(self.client.get(self.silent_url(path, &[])?))
    }

    /// POST `body` to `path` (not logged); the answer whatever its status.
    pub fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Answer, String> {
        let req = self
            .client
            .post(self.silent_url(path, &[])?)
            .header("Content-Type", content_type)
            .body(body);
        self.send(req)
    }
}

/// A server's answer to a request.
pub struct Answer {
    pub status: u16,
    /// `Retry-After` in seconds, when sent.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text, trailing whitespace trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim_end().to_string()
    }
}
