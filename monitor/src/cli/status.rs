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
    /// The daemon's query socket, asked first (root and analysts).
    #[arg(long, default_value = crate::server::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The status file the daemon writes every second, read when the
    /// socket does not answer.
    #[arg(long, default_value = DEFAULT_STATUS_FILE)]
    status_file: PathBuf,
}

impl StatusArgs {
    /// Prints the report: the daemon's own answer over its socket, else its
    /// status file; exit 3 when the daemon that wrote the file is gone.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let asked = super::analyst::ask(&self.socket, &crate::server::Request::Status)
            .ok()
            .and_then(|r| r.status);
        let live = asked.is_some();
        let status = match asked {
            Some(s) => s,
            None => Status::read(&self.status_file).with_context(|| {
                format!(
                    "the daemon did not answer on {} and {} cannot be read (is the daemon running?)",
                    self.socket.display(),
                    self.status_file.display()
                )
            })?,
        };
        if self.json {
            println!("{}", serde_json::to_string_pretty(&status)?);
        } else {
            print!("{}", status.render());
        }
        Ok(if live || status.daemon_alive() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    }
}
