//! `monitor status`: the running daemon's self-report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::status::{Status, DEFAULT_STATUS_FILE};

/// `monitor status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the raw status as JSON.
    #[arg(long)]
    json: bool,
    /// The status file the daemon writes.
    #[arg(long, default_value = DEFAULT_STATUS_FILE)]
    status_file: PathBuf,
}

impl StatusArgs {
    /// Prints the report; exit 3 when the daemon that wrote it is gone.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let status = Status::read(&self.status_file).with_context(|| {
            format!(
                "reading {} (is the daemon running?)",
                self.status_file.display()
            )
        })?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", status.render());
        }
        Ok(if status.daemon_alive() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    }
}
