//! The `monitor` binary: the daemon (`monitor run`) and the analyst's
//! commands, as subcommands of one program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
        } => {
            let opts = monitor::daemon::RunOptions {
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
