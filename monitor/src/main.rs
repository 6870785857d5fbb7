//! The `monitor` binary: the daemon (`monitor run`) and the analyst's
//! commands, as subcommands of one program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use monitor::analyst;
use monitor::server::Request;
use monitor::status::{Status, DEFAULT_STATUS_FILE};

/// Host data-access monitor.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (needs root): attach the probes and process events.
    Run {
        /// Print every event as one JSON line on stdout.
        #[arg(long)]
        events_stdout: bool,
        /// Ring buffer size in MiB (a power of two).
        #[arg(long, default_value_t = 32)]
        ring_mib: u32,
        /// Seconds between stats log lines and status file updates.
        #[arg(long, default_value_t = 10)]
        stats_interval: u64,
        /// Where the status snapshot is written.
        #[arg(long, default_value = DEFAULT_STATUS_FILE)]
        status_file: PathBuf,
        /// Most payload bytes captured per send (1 to 16384).
        #[arg(long, default_value_t = 16384)]
        payload_limit: u32,
        /// An OpenSSL library to hook besides the system's (repeatable).
        #[arg(long = "tls-lib")]
        tls_libraries: Vec<PathBuf>,
        /// The fingerprint key (created, mode 0600, if absent).
        #[arg(long, default_value = monitor::scan_cli::DEFAULT_KEY_FILE)]
        key_file: PathBuf,
        /// Also capture bytes received on sockets and from TLS (`read`, `recv*`, `SSL_read`).
        #[arg(long)]
        capture_inbound: bool,
        /// Where the access record and its chain key live.
        #[arg(long, default_value = monitor::daemon::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        /// Rule files here replace the shipped ones of the same name.
        #[arg(long, default_value = monitor::rules::DEFAULT_RULES_DIR)]
        rules_dir: PathBuf,
        /// The analysts' query socket.
        #[arg(long, default_value = monitor::server::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Members of this group (and root) may query the record.
        #[arg(long, default_value = monitor::server::DEFAULT_ANALYST_GROUP)]
        analyst_group: String,
        /// Days records are kept.
        #[arg(long, default_value_t = 365)]
        retention_days: u64,
    },
    /// Records matching the filters, newest first.
    Events {
        #[command(flatten)]
        filter: monitor::analyst::FilterArgs,
        #[command(flatten)]
        common: monitor::analyst::Common,
    },
    /// Policy violations and other alerts, newest first.
    Alerts {
        #[command(flatten)]
        filter: monitor::analyst::FilterArgs,
        #[command(flatten)]
        common: monitor::analyst::Common,
    },
    /// Who touched a file (or anything under a directory given with a trailing `/`).
    WhoAccessed {
        /// The path.
        #[arg(id = "target_path", value_name = "PATH")]
        path: String,
        #[command(flatten)]
        filter: monitor::analyst::FilterArgs,
        #[command(flatten)]
        common: monitor::analyst::Common,
    },
    /// What a role touched, summarised.
    Role {
        /// The role.
        #[arg(id = "role_name", value_name = "ROLE")]
        role: String,
        #[command(flatten)]
        filter: monitor::analyst::FilterArgs,
        #[command(flatten)]
        common: monitor::analyst::Common,
    },
    /// Where a PII value went. Give `-` to read it from stdin (keeps it out of
    /// the process list); it is fingerprinted by the daemon and never stored.
    TracePii {
        /// The value, or `-` for stdin.
        value: String,
        /// Its PII type (`CREDIT_CARD`), when the detector cannot tell.
        #[arg(long = "type")]
        kind: Option<String>,
        #[command(flatten)]
        filter: monitor::analyst::FilterArgs,
        #[command(flatten)]
        common: monitor::analyst::Common,
    },
    /// Walk the record's MAC chain and name the first bad record.
    Verify {
        /// Verify this store directly instead of asking the daemon (it must be stopped).
        #[arg(long)]
        store: Option<PathBuf>,
        /// The chain key, with `--store`.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[command(flatten)]
        common: monitor::analyst::Common,
    },
    /// Check rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Show the running daemon's status: probes, counters, drops.
    Status {
        /// Print the raw status as JSON.
        #[arg(long)]
        json: bool,
        /// The status file the daemon writes.
        #[arg(long, default_value = DEFAULT_STATUS_FILE)]
        status_file: PathBuf,
    },
    /// Find PII and secrets in a file or stdin; prints only masked values and fingerprints.
    Scan(monitor::scan_cli::ScanOptions),
    /// Benchmark the sensor (used by `cargo xtask bench sensor`).
    #[command(hide = true)]
    BenchSensor {
        /// How many opens the child makes.
        #[arg(long, default_value_t = 1_000_000)]
        opens: u64,
        /// Opens per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Ring buffer size in MiB.
        #[arg(long, default_value_t = 32)]
        ring_mib: u32,
    },
    /// Benchmark payload capture (used by `cargo xtask bench payload`).
    #[command(hide = true)]
    BenchPayload {
        /// How many sends the child makes.
        #[arg(long, default_value_t = 500_000)]
        sends: u64,
        /// Bytes per send.
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Sends per second (0: as fast as possible).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Run without the sensor (the baseline).
        #[arg(long)]
        baseline: bool,
    },
    /// Benchmark the record (used by `cargo xtask bench store`).
    #[command(hide = true)]
    BenchStore {
        /// Records to store.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Distinct file paths among them.
        #[arg(long, default_value_t = 50_000)]
        paths: u64,
    },
    /// The payload benchmark's sender.
    #[command(hide = true)]
    BenchPayloadChild {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        sends: u64,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        rate: u64,
    },
    /// The benchmark's load generator.
    #[command(hide = true)]
    BenchChild {
        #[arg(long)]
        opens: u64,
        #[arg(long)]
        rate: u64,
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate the shipped rules with the overrides in DIR; prints `file:line:col: message`.
    Check {
        /// The override directory.
        #[arg(default_value = monitor::rules::DEFAULT_RULES_DIR)]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MONITOR_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("monitor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run {
            events_stdout,
            ring_mib,
            stats_interval,
            status_file,
            payload_limit,
            tls_libraries,
            key_file,
            capture_inbound,
            state_dir,
            rules_dir,
            socket,
            analyst_group,
            retention_days,
        } => {
            let opts = monitor::daemon::RunOptions {
                state_dir,
                rules_dir,
                socket,
                analyst_group,
                retention: Duration::from_secs(retention_days.max(1) * 86_400),
                events_stdout,
                ring_mib,
                stats_interval: Duration::from_secs(stats_interval.max(1)),
                status_file,
                payload_limit,
                tls_libraries,
                key_file,
                capture_inbound,
            };
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?
                .block_on(monitor::daemon::run(opts))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json, status_file } => {
            let status = Status::read(&status_file).with_context(|| {
                format!("reading {} (is the daemon running?)", status_file.display())
            })?;
            if json {
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
        Command::Events { filter, common } => {
            let req = Request::Events {
                filter: filter.filter()?,
            };
            show_records(&common, &req, false)
        }
        Command::Alerts { filter, common } => {
            let req = Request::Alerts {
                filter: filter.filter()?,
            };
            show_records(&common, &req, true)
        }
        Command::WhoAccessed {
            path,
            filter,
            common,
        } => {
            let req = Request::WhoAccessed {
                path,
                filter: filter.filter()?,
            };
            show_records(&common, &req, false)
        }
        Command::Role {
            role,
            filter,
            common,
        } => {
            let req = Request::Role {
                role,
                filter: filter.filter()?,
            };
            let answer = analyst::ask(&common.socket, &req)?;
            let summary = answer.summary.unwrap_or_default();
            if common.json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", analyst::summary_text(&summary));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::TracePii {
            value,
            kind,
            filter,
            common,
        } => {
            let value = if value == "-" {
                let mut v = String::new();
                std::io::stdin().read_line(&mut v)?;
                v.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                value
            };
            let req = Request::TracePii {
                value,
                kind,
                filter: filter.filter()?,
            };
            show_records(&common, &req, false)
        }
        Command::Verify {
            store,
            key_file,
            common,
        } => {
            let report = match store {
                Some(dir) => {
                    let key =
                        key_file.unwrap_or_else(|| dir.parent().unwrap_or(&dir).join("record.key"));
                    anyhow::ensure!(key.exists(), "no chain key at {}", key.display());
                    monitor::record::Store::open(&dir, &key)
                        .with_context(|| format!("opening {}", dir.display()))?
                        .verify()?
                }
                None => analyst::ask(&common.socket, &Request::Verify)?
                    .verify
                    .context("the daemon sent no report")?,
            };
            if common.json {
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
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => match monitor::rules::RuleSet::load(Some(&dir)) {
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
        },
        Command::Scan(opts) => {
            let bad = monitor::scan_cli::run(&opts)?;
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("monitor scan: {bad} input record(s) could not be read");
                ExitCode::from(2)
            })
        }
        Command::BenchSensor {
            opens,
            rate,
            ring_mib,
        } => {
            let report = monitor::bench::run_sensor_bench(opens, rate, ring_mib)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchPayload {
            sends,
            size,
            rate,
            baseline,
        } => {
            let report = monitor::bench::run_payload_bench(sends, size, rate, !baseline)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchStore { records, paths } => {
            let report = monitor::bench::run_store_bench(records, paths)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchPayloadChild {
            port,
            sends,
            size,
            rate,
        } => {
            monitor::bench::run_payload_child(port, sends, size, rate)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchChild { opens, rate, path } => {
            monitor::bench::run_bench_child(opens, rate, &path)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_records(common: &analyst::Common, req: &Request, alerts: bool) -> anyhow::Result<ExitCode> {
    let answer = analyst::ask(&common.socket, req)?;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&answer.records)?);
    } else {
        print!("{}", analyst::records_table(&answer.records, alerts));
    }
    Ok(ExitCode::SUCCESS)
}
