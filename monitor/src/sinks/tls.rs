//! TLS client settings for sinks: [`crate::tls`] with the sink's settings.

use std::sync::Arc;

use super::SinkError;
use crate::rules::sinks::SinkConfig;

impl From<crate::tls::TlsError> for SinkError {
    fn from(e: crate::tls::TlsError) -> Self {
        SinkError::Tls {
            sink: e.who,
            what: e.what,
            why: e.why,
        }
    }
}

/// The rustls client configuration for a syslog sink.
pub fn client_config(cfg: &SinkConfig) -> Result<Arc<rustls::ClientConfig>, SinkError> {
    Ok(crate::tls::build(
        &cfg.name,
        cfg.ca_file.as_deref(),
        cfg.client_cert.as_deref().zip(cfg.client_key.as_deref()),
    )?)
}
