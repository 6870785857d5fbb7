//! `monitor verify`: walk the record's MAC chain, through the daemon or
//! directly on a stopped daemon's store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::analyst::{self, Common};
use crate::server::Request;

/// `monitor verify`.
#[derive(Debug, Args)]
pub struct Verify {
    /// Verify this store directly instead of asking the daemon (it must be stopped).
    #[arg(long)]
    store: Option<PathBuf>,
    /// The chain key, with `--store`.
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

impl Verify {
    /// Runs the check; exit 1 when the chain is broken.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let report = match self.store {
            Some(dir) => {
                let key = self
                    .key_file
                    .unwrap_or_else(|| dir.parent().unwrap_or(&dir).join("record.key"));
                anyhow::ensure!(key.exists(), "no chain key at {}", key.display());
                crate::record::Store::open(&dir, &key)
                    .with_context(|| format!("opening {}", dir.display()))?
                    .verify()?
            }
            None => analyst::ask(&self.common.socket, &Request::Verify)?
                .verify
                .context("the daemon sent no report")?,
        };
        if self.common.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", analyst::verify_text(&report));
        }
        Ok(if report.ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
