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

use std::path::PathBuf;

use crate::model::Follower;
use crate::rules::sinks::{FileSinkConfig, HecConfig, SinkConfig, SinkRules};

/// One configured sink: what a reload compares to decide whether a running
/// sink stays, is replaced (its settings changed) or goes.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkSpec {
    /// `type = "syslog"`.
    Syslog(SinkConfig),
    /// `type = "hec"`.
    Hec(HecConfig),
    /// `type = "ecs"`.
    Ecs(FileSinkConfig),
    /// `type = "ocsf"`.
    Ocsf(FileSinkConfig),
    /// `--sink-jsonl PATH`.
    Jsonl(PathBuf),
}

impl SinkSpec {
    /// Every sink `sinks.toml` and the `--sink-jsonl` paths ask for, in order.
    pub fn all(rules: &SinkRules, jsonl: &[PathBuf]) -> Vec<Self> {
        let mut out: Vec<Self> = rules.syslog.iter().cloned().map(Self::Syslog).collect();
        out.extend(rules.hec.iter().cloned().map(Self::Hec));
        out.extend(rules.ecs.iter().cloned().map(Self::Ecs));
        out.extend(rules.ocsf.iter().cloned().map(Self::Ocsf));
        out.extend(jsonl.iter().cloned().map(Self::Jsonl));
        out
    }

    /// Sets the sink up (certificates read, files opened; nothing is sent yet).
    pub fn open(&self) -> Result<Box<dyn Follower>, SinkError> {
        let io = |name: &str, path: &std::path::Path, e: std::io::Error| SinkError::Open {
            sink: name.to_owned(),
            path: path.to_owned(),
            source: e,
        };
        Ok(match self {
            Self::Syslog(c) => Box::new(syslog::Syslog::new(c.clone())?),
            Self::Hec(c) => Box::new(hec::Hec::new(c.clone())?),
            Self::Ecs(c) => Box::new(ecs::open(c).map_err(|e| io(&c.name, &c.path, e))?),
            Self::Ocsf(c) => Box::new(ocsf::open(c).map_err(|e| io(&c.name, &c.path, e))?),
            Self::Jsonl(p) => {
                Box::new(jsonl::JsonlFile::open(p).map_err(|e| io("--sink-jsonl", p, e))?)
            }
        })
    }
}

/// Why a sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Its file could not be opened.
    #[error("sink {sink}: {}: {source}", path.display())]
    Open {
        /// The sink.
        sink: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
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
