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
    /// Also check the record against a head (`SEQ:MAC`) a heartbeat took
    /// off the host earlier: a record cut back or rewritten since fails.
    #[arg(long, value_name = "SEQ:MAC")]
    head: Option<String>,
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
                let head = self
                    .head
                    .as_deref()
                    .map(crate::server::parse_head)
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                crate::record::Store::open_existing(&dir, &key)?
                    .verify_with_head(head.as_ref().map(|(s, m)| (*s, m.as_str())))?
            }
            None => analyst::ask(
                &self.common.socket,
                &Request::Verify {
                    head: self.head.clone(),
                },
            )?
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
