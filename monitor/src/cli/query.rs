//! The analyst's record queries (`events`, `alerts`, `who-accessed`,
//! `role`, `trace-pii`): one request to the daemon, the answer as a table
//! or JSON.

use std::process::ExitCode;

use clap::Args;

use super::analyst::{self, Common, FilterArgs};
use crate::server::Request;

/// `monitor events`.
#[derive(Debug, Args)]
pub struct Events {
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: Common,
}

impl Events {
    /// Runs the query.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let req = Request::Events {
            filter: self.filter.filter()?,
        };
        show_records(&self.common, &req, false)
    }
}

/// `monitor alerts`.
#[derive(Debug, Args)]
pub struct Alerts {
    /// Counts by severity, rule, role and user over the window, and the
    /// alerts grouped into bursts (one process raising one rule again and
    /// again is one row, ×N, with its first and last time). Reads up to
    /// 10,000 alerts unless --limit says otherwise.
    #[arg(long)]
    summary: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: Common,
}

impl Alerts {
    /// Runs the query.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut filter = self.filter.filter()?;
        if !self.summary {
            return show_records(&self.common, &Request::Alerts { filter }, true);
        }
        if filter.limit == 100 {
            filter.limit = crate::server::MAX_LIMIT;
        }
        let limit = filter.limit;
        let answer = analyst::ask(&self.common.socket, &Request::Alerts { filter })?;
        let summary = analyst::AlertSummary::of(&answer.records);
        if self.common.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            let mut style =
                analyst::TableStyle::for_stdout(self.common.wide, self.common.utc, limit);
            style.total = answer.total;
            print!("{}", summary.text(&style));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `monitor who-accessed PATH`.
#[derive(Debug, Args)]
pub struct WhoAccessed {
    /// The path.
    #[arg(id = "target_path", value_name = "PATH")]
    path: String,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: Common,
}

impl WhoAccessed {
    /// Runs the query.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let req = Request::WhoAccessed {
            path: analyst::record_path(&self.path)?,
            filter: self.filter.filter()?,
        };
        show_records(&self.common, &req, false)
    }
}

/// `monitor role ROLE`.
#[derive(Debug, Args)]
pub struct Role {
    /// The role.
    #[arg(id = "role_name", value_name = "ROLE")]
    role: String,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: Common,
}

impl Role {
    /// Runs the query.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if let Some(other) = self.filter.role.as_deref().filter(|r| *r != self.role) {
            anyhow::bail!(
                "`role {}` and `--role {other}` name two roles: give one",
                self.role
            );
        }
        let req = Request::Role {
            role: self.role,
            filter: self.filter.filter()?,
        };
        let answer = analyst::ask(&self.common.socket, &req)?;
        let summary = answer.summary.unwrap_or_default();
        if self.common.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            let style = analyst::TableStyle::for_stdout(self.common.wide, self.common.utc, 0);
            print!("{}", analyst::summary_text(&summary, &style));
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `monitor trace-pii VALUE`.
#[derive(Debug, Args)]
pub struct TracePii {
    /// The value, or `-` for stdin.
    value: String,
    /// Its PII type (`CREDIT_CARD`), when the detector cannot tell.
    #[arg(long = "type")]
    kind: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: Common,
}

impl TracePii {
    /// Runs the query.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let value = if self.value == "-" {
            let mut v = String::new();
            std::io::stdin().read_line(&mut v)?;
            v.trim_end_matches(['\r', '\n']).to_owned()
        } else {
            self.value
        };
        let req = Request::TracePii {
            value,
            kind: self.kind,
            filter: self.filter.filter()?,
        };
        show_records(&self.common, &req, false)
    }
}

fn show_records(common: &Common, req: &Request, alerts: bool) -> anyhow::Result<ExitCode> {
    let limit = match req {
        Request::Events { filter }
        | Request::Alerts { filter }
        | Request::WhoAccessed { filter, .. }
        | Request::TracePii { filter, .. } => filter.limit,
        _ => 0,
    };
    let mut answer = analyst::ask(&common.socket, req)?;
    if common.reverse {
        answer.records.reverse();
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&answer.records)?);
    } else {
        let mut style = analyst::TableStyle::for_stdout(common.wide, common.utc, limit);
        style.total = answer.total;
        print!(
            "{}",
            analyst::records_table(&answer.records, alerts, &style)
        );
    }
    Ok(ExitCode::SUCCESS)
}
