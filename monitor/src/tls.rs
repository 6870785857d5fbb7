//! TLS client settings (rustls with ring), shared by the SIEM sinks and the
//! responders: the server's certificate must chain to the configured CA
//! file; a client certificate is offered when configured.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A TLS setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{who}: {what}: {why}")]
pub struct TlsError {
    /// The sink or responder.
    pub who: String,
    /// Which setting.
    pub what: String,
    /// Why.
    pub why: String,
}

/// A rustls client configuration trusting the CAs in `ca_file`, offering
/// `client` (certificate and key files) when given.
pub fn build(
    who: &str,
    ca_file: Option<&std::path::Path>,
    client: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let bad = |what: &str, e: String| TlsError {
        who: who.to_owned(),
        what: what.to_owned(),
        why: e,
    };
    let mut roots = rustls::RootCertStore::empty();
    let ca = ca_file.ok_or_else(|| bad("ca_file", "missing".into()))?;
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad("ca_file", e.to_string()))? {
        let cert = cert.map_err(|e| bad("ca_file", e.to_string()))?;
        roots.add(cert).map_err(|e| bad("ca_file", e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("ca_file", "holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", e.to_string()))?
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad("client_cert", e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad("client_cert", e.to_string()))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| bad("client_key", e.to_string()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("client_cert", e.to_string()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
