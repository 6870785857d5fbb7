//! Sinks: where records go after the store, one file per kind. Each is a
//! [`Follower`](crate::model::Follower) of the record with its own cursor,
//! so a slow or dead destination never slows the pipeline, and a restart
//! resumes where it stopped. (The inline `--events-stdout` printer is an
//! event sink, `output.rs`, not a follower.)
//!
//! - [`jsonl`]: every record as a JSON line in a file.
//! - [`ecs`]: Elastic Common Schema documents in a size-rotated file.
//! - [`hec`]: Splunk HTTP Event Collector, with indexer acknowledgment.
//! - [`syslog`]: RFC 5424 over UDP, TCP or TLS, the record as structured
//!   data, the message plain or [`cef`].
//! - [`tls`]: rustls client settings. The configuration is `sinks.toml`
//!   ([`crate::rules::sinks`]).

pub mod cef;
pub mod ecs;
pub mod hec;
pub mod jsonl;
pub mod syslog;
pub mod tls;

use crate::rules::sinks::{Selection, SinkConfig};

use crate::model::{Action, Record, Severity};

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

/// Which records a sink delivers.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Every record, not only alerts.
    pub all: bool,
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only these roles (empty: all).
    pub roles: Vec<String>,
}

impl Filter {
    /// The filter `cfg` describes.
    pub fn of(cfg: &SinkConfig) -> Self {
        Self {
            all: cfg.records == Selection::All,
            min_severity: cfg.min_severity,
            roles: cfg.roles.clone(),
        }
    }

    /// Whether `r` is delivered. Heartbeats always are, and the daemon's own
    /// alerts about itself (outages, lost records) whatever the roles.
    pub fn wants(&self, r: &Record) -> bool {
        if r.action == Action::Heartbeat {
            return true;
        }
        let role_ok = self.roles.is_empty()
            || self.roles.iter().any(|x| **x == *r.role)
            || &*r.role == "monitor";
        let Some(a) = &r.alert else {
            return self.all && role_ok;
        };
        role_ok && self.min_severity.is_none_or(|m| a.severity >= m)
    }
}
