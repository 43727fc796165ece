//! HTTPS for the API (Loki's `server.http_tls_config`): rustls with the aws-lc-rs provider
//! the workspace already builds, connections served by hyper's HTTP/1.1 server so the axum
//! router stays unchanged.

use crate::config::{ConfigError, TlsConfig};
use axum::Router;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

fn certs(key: &'static str, p: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let invalid = |msg: String| ConfigError::Invalid { key, msg };
    let pem = std::fs::read(p).map_err(|e| invalid(format!("{}: {e}", p.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("{}: {e}", p.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "{}: no PEM certificate found",
            p.display()
        )));
    }
    Ok(certs)
}

/// Reads and checks the certificate, key and optional client CA.
pub fn server_config(t: &TlsConfig) -> Result<rustls::ServerConfig, ConfigError> {
    let invalid = |key: &'static str, msg: String| ConfigError::Invalid { key, msg };
    let chain = certs("server.tls.cert_file", &t.cert_file)?;
    let key_pem = std::fs::read(&t.key_file).map_err(|e| {
        invalid(
            "server.tls.key_file",
            format!("{}: {e}", t.key_file.display()),
        )
    })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        invalid(
            "server.tls.key_file",
            format!("{}: {e}", t.key_file.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("server.tls", e.to_string()))?;
    let builder = match &t.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(p) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs("server.tls.client_ca_file", p)? {
                roots
                    .add(c)
                    .map_err(|e| invalid("server.tls.client_ca_file", e.to_string()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid("server.tls.client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| invalid("server.tls", format!("certificate and key: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serves `app` over TLS until `shutdown` resolves, then lets open connections finish
/// their in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (acceptor, app, mut stop) = (acceptor.clone(), app.clone(), stop_rx.clone());
        conns.spawn(async move {
            // A client that never finishes the handshake must not hold the task forever.
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { drop(stop.wait_for(|v| *v).await) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// GET /ready over TLS; Err when the handshake or the exchange fails.
    async fn get(
        addr: std::net::SocketAddr,
        pki: &silt_testkit::Pki,
        client_cert: bool,
    ) -> Result<String, String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs("ca", &pki.ca).unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let cfg = if client_cert {
            let key = PrivateKeyDer::from_pem_file(&pki.client_key).unwrap();
            b.with_client_auth_cert(certs("c", &pki.client_cert).unwrap(), key)
                .unwrap()
        } else {
            b.with_no_client_auth()
        };
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn https_with_and_without_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = silt_testkit::pki(dir.path());
        let app = || Router::new().route("/ready", axum::routing::get(|| async { "ready" }));
        let start = |client_ca: Option<std::path::PathBuf>| async {
            let t = TlsConfig {
                cert_file: pki.server_cert.clone(),
                key_file: pki.server_key.clone(),
                client_ca_file: client_ca,
            };
            let cfg = Arc::new(server_config(&t).unwrap());
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(serve(l, app(), cfg, async {
                let _ = rx.await;
            }));
            (addr, tx, task)
        };

        let (addr, stop, task) = start(None).await;
        let resp = get(addr, &pki, false).await.unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200") && resp.ends_with("ready"),
            "{resp}"
        );
        // Plain HTTP on the TLS port gets no HTTP answer (blocking client off the runtime).
        let plain = tokio::task::spawn_blocking(move || {
            silt_testkit::http(&addr.to_string(), "GET", "/ready", &[], b"")
        })
        .await
        .unwrap();
        assert!(!matches!(plain, Ok((200, _))), "{plain:?}");
        stop.send(()).unwrap();
        task.await.unwrap();

        let (addr, _stop, _task) = start(Some(pki.ca.clone())).await;
        let resp = get(addr, &pki, true).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let denied = get(addr, &pki, false).await;
        assert!(
            denied.is_err() || !denied.as_ref().unwrap().contains("200"),
            "{denied:?}"
        );
    }

    #[test]
    fn tls_config_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let pki = silt_testkit::pki(dir.path());
        let yaml = |cert: &Path, key: &Path, extra: &str| {
            format!(
                "server:\n  tls:\n    cert_file: {}\n    key_file: {}\n{extra}",
                cert.display(),
                key.display()
            )
        };
        let cfg = Config::from_yaml(&yaml(
            &pki.server_cert,
            &pki.server_key,
            &format!("    client_ca_file: {}\n", pki.ca.display()),
        ))
        .unwrap();
        assert!(cfg.server.tls.unwrap().client_ca_file.is_some());
        let err = |y: String| Config::from_yaml(&y).unwrap_err().to_string();
        let e = err(yaml(Path::new("/nonexistent.crt"), &pki.server_key, ""));
        assert!(e.contains("server.tls.cert_file"), "{e}");
        let e = err(yaml(&pki.server_cert, &pki.server_cert, ""));
        assert!(e.contains("server.tls.key_file"), "{e}");
        // A key that does not belong to the certificate.
        let e = err(yaml(&pki.server_cert, &pki.client_key, ""));
        assert!(e.contains("server.tls"), "{e}");
        let e = err(yaml(
            &pki.server_cert,
            &pki.server_key,
            "    client_ca_file: /nonexistent\n",
        ));
        assert!(e.contains("server.tls.client_ca_file"), "{e}");
        let e = err("server:\n  tls: {cert_file: a}\n".into());
        assert!(e.contains("key_file"), "{e}");
    }
}
