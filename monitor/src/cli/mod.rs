//! The command line: one clap `Args` struct per command, one module per
//! group of commands, and [`dispatch`]. `monitor run` takes the daemon's
//! own [`Options`](crate::daemon::Options), written once there.

pub mod analyst;
pub mod baseline;
pub mod query;
pub mod scan;
pub mod status;
pub mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `--version`: the release, the commit it was built from and when, and
/// what the kernel side needs.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("MONITOR_GIT_COMMIT"),
    "\nbuilt: ",
    env!("MONITOR_BUILD_DATE"),
    "\nkernel programs: tracepoints, kprobes, uprobes (TLS libraries), ring buffer, BTF (CO-RE offsets), bpf_loop (prevention)"
);

/// Host data-access monitor.
#[derive(Parser)]
#[command(name = "monitor", version, long_version = LONG_VERSION, about)]
#[command(args_override_self = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon (needs root): attach the probes and process events.
    Run(crate::daemon::Options),
    /// Records matching the filters, newest first.
    Events(query::Events),
    /// Policy violations and other alerts, newest first.
    Alerts(query::Alerts),
    /// Who touched a file (or anything under a directory given with a trailing `/`).
    WhoAccessed(query::WhoAccessed),
    /// What a role touched, summarised.
    Role(query::Role),
    /// Where a PII value went. Give `-` to read it from stdin (keeps it out of
    /// the process list); it is fingerprinted by the daemon and never stored.
    TracePii(query::TracePii),
    /// What the anomaly learner learned a role (or `--user`) normally does.
    Baseline(baseline::Baseline),
    /// Least-data policy from what a role actually used.
    Policy {
        /// What to do.
        #[command(subcommand)]
        command: baseline::PolicyCommand,
    },
    /// Show one desktop notification on this process's session bus (run
    /// by the `notify` responder as the notified user).
    #[command(hide = true)]
    NotifyUser {
        /// The title.
        #[arg(long)]
        summary: String,
        /// The text.
        #[arg(long)]
        body: String,
    },
    /// Walk the record's MAC chain and name the first bad record.
    Verify(verify::Verify),
    /// Check or show the daemon's settings (monitor.toml).
    Config {
        /// What to do.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check rules.
    Rules {
        /// What to do with them.
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Show the running daemon's status: probes, counters, drops, followers.
    Status(status::StatusArgs),
    /// Find PII and secrets in files, directories or stdin; prints only
    /// masked values and fingerprints, as `path:line:col`. Exit status 0:
    /// nothing found, 1: findings, 2: an error (like grep).
    Scan(scan::ScanOptions),
    /// Print a shell's completion script (e.g. `monitor completions bash >
    /// /etc/bash_completion.d/monitor`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) for `monitor` (`monitor man | man -l -`).
    Man,
}

/// `monitor config ...`.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate a settings file; prints `file:line:col: message` when invalid.
    Check {
        /// The file.
        #[arg(default_value = crate::config::DEFAULT_CONFIG)]
        file: std::path::PathBuf,
    },
    /// Print the effective settings: the defaults, the file, then these
    /// `monitor run` options.
    Show {
        /// The file.
        #[arg(long, default_value = crate::config::DEFAULT_CONFIG)]
        file: std::path::PathBuf,
        /// `monitor run` options, after `--`.
        #[arg(last = true)]
        run: Vec<std::ffi::OsString>,
    },
}

fn config_command(c: ConfigCommand) -> anyhow::Result<ExitCode> {
    use clap::Parser as _;
    match c {
        ConfigCommand::Check { file } => match crate::config::load(&file, true) {
            Ok(args) => {
                println!(
                    "{}: ok ({} settings)",
                    file.display(),
                    args.iter()
                        .filter(|a| a.to_string_lossy().starts_with("--"))
                        .count()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        ConfigCommand::Show { file, run } => {
            let mut argv: Vec<std::ffi::OsString> = vec!["monitor".into(), "run".into()];
            argv.extend(crate::config::load(&file, false)?);
            argv.extend(run);
            let cli = Cli::try_parse_from(argv)?;
            let Command::Run(opts) = cli.command else {
                unreachable!("parsed as run")
            };
            print!("{}", toml::to_string(&opts)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `monitor rules ...`.
#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validate the shipped rules with the overrides in DIR; prints `file:line:col: message`.
    Check {
        /// The override directory.
        #[arg(default_value = crate::rules::DEFAULT_RULES_DIR)]
        dir: std::path::PathBuf,
    },
    /// Print the shipped rules (one file, or all with their names), to
    /// start an override from: `monitor rules show policy.toml >
    /// /etc/monitor/rules.d/policy.toml`.
    Show {
        /// The file (`roles.toml`, `classes.toml`, `policy.toml`, `pii.toml`,
        /// `sinks.toml`, `anomaly.toml`, `responders.toml`).
        file: Option<String>,
    },
}

/// Runs one command; the exit code says how it went.
pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(opts) => crate::daemon::main(opts).map(|()| ExitCode::SUCCESS),
        Command::Events(c) => c.run(),
        Command::Alerts(c) => c.run(),
        Command::WhoAccessed(c) => c.run(),
        Command::Role(c) => c.run(),
        Command::TracePii(c) => c.run(),
        Command::Verify(c) => c.run(),
        Command::Baseline(c) => c.run(),
        Command::Config { command } => config_command(command),
        Command::NotifyUser { summary, body } => {
            match crate::respond::notify::show(&summary, &body) {
                Ok(id) => {
                    println!("notification {id}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Policy { command } => command.run(),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => rules_check(&dir),
        Command::Rules {
            command: RulesCommand::Show { file },
        } => rules_show(file.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "monitor",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            use clap::CommandFactory as _;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(c) => c.run(),
        Command::Scan(opts) => {
            // Like grep: 2 when an input could not be read, else 1 when
            // something was found (files and stdin; --jsonl is a data
            // pipeline and exits 0 unless a line is bad), else 0.
            let outcome = match scan::run(&opts) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("monitor scan: error: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            Ok(if outcome.unreadable > 0 {
                eprintln!(
                    "monitor scan: {} input(s) could not be read",
                    outcome.unreadable
                );
                ExitCode::from(2)
            } else if outcome.findings > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// `monitor rules check DIR`: exit 0 and the sources when valid, 2 and
/// every positioned error when not.
fn rules_check(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    match crate::rules::RuleSet::load(Some(dir)) {
        Ok(rules) => {
            for (name, from) in &rules.sources {
                println!("{name}: {from}");
            }
            println!("rules OK");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `monitor rules show [FILE]`.
fn rules_show(file: Option<&str>) -> anyhow::Result<ExitCode> {
    let shipped = crate::rules::SHIPPED;
    match file {
        Some(name) => {
            let Some((_, text)) = shipped.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = shipped.iter().map(|(n, _)| *n).collect();
                anyhow::bail!(
                    "no shipped rules file `{name}` (files: {})",
                    names.join(", ")
                );
            };
            print!("{text}");
        }
        None => {
            for (name, text) in shipped {
                println!("# ==> {name} <==");
                print!("{text}");
                if !text.ends_with('\n') {
                    println!();
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
