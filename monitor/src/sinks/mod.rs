//! Sinks: where records go after the store, one file per kind. Each is a
//! [`Follower`](crate::model::Follower) of the record with its own cursor,
//! so a slow or dead destination never slows the pipeline, and a restart
//! resumes where it stopped. (The inline `--events-stdout` printer is an
//! event sink, `output.rs`, not a follower.)
//!
//! - [`jsonl`]: every record as a JSON line in a file.
//! - [`ecs`]: Elastic Common Schema documents in a size-rotated file.
//! - [`ocsf`]: OCSF 1.7.0 activities and findings in a size-rotated file.
//! - [`hec`]: Splunk HTTP Event Collector, with indexer acknowledgment.
//! - [`syslog`]: RFC 5424 over UDP, TCP or TLS, the record as structured
//!   data, the message plain or [`cef`].
//! - [`tls`]: rustls client settings. The configuration is `sinks.toml`
//!   ([`crate::rules::sinks`]).

pub mod cef;
pub mod ecs;
pub mod hec;
pub mod jsonl;
pub mod ocsf;
pub mod syslog;
pub mod tls;

/// Why a sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A TLS setting could not be used.
    #[error("sink {sink}: {what}: {why}")]
    Tls {
        /// The sink.
        sink: String,
        /// Which setting.
        what: String,
        /// Why.
        why: String,
    },
}
