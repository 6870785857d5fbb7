//! The `monitor` binary: the daemon (`monitor run`) and the analyst's
//! commands, as subcommands of one program (`monitor::cli`).

use std::process::ExitCode;

use clap::Parser as _;
use monitor::cli::{dispatch, Cli, Command};

fn main() -> ExitCode {
    monitor::record::pin_allocator_threshold();
    // `monitor run` takes its settings file's values first; its own
    // options override them.
    let argv = match monitor::config::with_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("monitor: error: refusing to start: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    init_logs(matches!(
        &cli.command,
        Command::Run(o) if o.log_format == monitor::daemon::LogFormat::Json
    ));
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("monitor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `MONITOR_LOG` (default `info`): plain text
/// for journald and log files (colours only on a terminal), or JSON lines.
fn init_logs(json: bool) {
    use std::io::IsTerminal as _;
    // sled reports each failed write of each tree; the record writer
    // reports a store outage itself, once and then every 30 s.
    let filter = tracing_subscriber::EnvFilter::try_from_env("MONITOR_LOG")
        .unwrap_or_else(|_| "info,sled=off".into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
}
