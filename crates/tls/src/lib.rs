//! rustls client configurations shared by the agent and the CLI: a private CA or the
//! system roots, a client certificate, or (for tests) no verification at all.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// PEM material (from files, or the agent's kubeconfig `*-data` fields).
#[derive(Clone, Default, PartialEq)]
pub struct TlsMaterial {
    pub ca_pem: Option<Vec<u8>>,
    pub cert_pem: Option<Vec<u8>>,
    pub key_pem: Option<Vec<u8>>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("ca", &self.ca_pem.as_ref().map(Vec::len))
            .field("cert", &self.cert_pem.as_ref().map(Vec::len))
            .field("key", &self.key_pem.is_some())
            .field("server_name", &self.server_name)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate found"));
    }
    Ok(certs)
}

impl TlsMaterial {
    /// A rustls client config (aws-lc-rs, the provider the workspace already builds).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.insecure_skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca_pem {
                Some(pem) => {
                    for c in parse_certs(pem, "CA")? {
                        roots.add(c).map_err(|e| format!("CA certificate: {e}"))?;
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    // Unparsable system certificates are skipped, as Go does.
                    let (added, _) = roots.add_parsable_certificates(found.certs);
                    if added == 0 {
                        return Err("no system CA certificates found; set ca_file".into());
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut cfg = match (&self.cert_pem, &self.key_pem) {
            (Some(c), Some(k)) => {
                let key =
                    PrivateKeyDer::from_pem_slice(k).map_err(|e| format!("client key: {e}"))?;
                builder
                    .with_client_auth_cert(parse_certs(c, "client certificate")?, key)
                    .map_err(|e| format!("client certificate/key: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

/// `insecure_skip_verify`: any certificate, but handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
