//! `monitor-bench`: the measurements behind `cargo xtask bench`, kept out
//! of the user-facing `monitor` command. Each prints one JSON report.

mod anomaly_eval;
mod bench;
mod overhead;
mod prevent;
mod side_doors;
mod siem;
mod soak;
mod tls_discovery;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks of the monitor (run by `cargo xtask bench`).
#[derive(Parser)]
#[command(name = "monitor-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The sensor: events/s and drops.
    Sensor {
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
    /// Payload capture: sender slowdown and captured/sent.
    Payload {
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
        /// Threads inspecting a batch's sends, as `monitor run
        /// --payload-threads` (0: its default).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// MiB of records held while behind, as `monitor run --backlog-mib`.
        #[arg(long, default_value_t = monitor::backlog::DEFAULT_BACKLOG_MIB)]
        backlog_mib: u64,
    },
    /// The anomaly detectors on a synthetic month: recall, false alerts,
    /// alerts per incident.
    EvalAnomaly,
    /// The record: ingest and query latency.
    Store {
        /// Records to store.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Distinct file paths among them.
        #[arg(long, default_value_t = 50_000)]
        paths: u64,
        /// Followers (JSON-lines file sinks) attached during ingest.
        #[arg(long, default_value_t = 0)]
        followers: usize,
    },
    /// What the daemon costs the host: a contact-center workload with no
    /// collector, with the daemon, and with a count-only bpftrace floor.
    Overhead {
        /// The `monitor` binary to run.
        #[arg(long)]
        monitor: PathBuf,
        /// Interleaved rounds per setup.
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        /// Customer-record files.
        #[arg(long, default_value_t = 3000)]
        files: u64,
        /// Open/read/close rounds.
        #[arg(long, default_value_t = 300_000)]
        opens: u64,
        /// Loopback connections.
        #[arg(long, default_value_t = 64)]
        connections: u64,
        /// 200-byte sends.
        #[arg(long, default_value_t = 200_000)]
        sends: u64,
        /// fork/exec/wait of `/bin/true`.
        #[arg(long, default_value_t = 2000)]
        execs: u64,
        /// The daemon's `--repeat-window-ms` (its default when not given).
        #[arg(long)]
        repeat_window_ms: Option<u64>,
    },
    /// The daemon under a mixed workload for a long time, its memory sampled.
    Soak {
        /// The `monitor` binary to run.
        #[arg(long)]
        monitor: PathBuf,
        /// Minutes to run.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Seconds between memory samples.
        #[arg(long, default_value_t = 60)]
        sample_secs: u64,
    },
    /// SIEM delivery into a real rsyslog: latency at a paced rate, then the
    /// rate delivered flat out.
    Siem {
        /// The `monitor` binary to run.
        #[arg(long)]
        monitor: PathBuf,
        /// The paced round's rate, opens per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// The paced round's length, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Prevention: a TLS request loop without the daemon, with it, and
    /// enforcing; the write probe's kernel run time per call.
    Prevent {
        /// The `monitor` binary to run.
        #[arg(long)]
        monitor: PathBuf,
        /// Requests per round.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
    },
    /// The side doors' probes: per-call cost of send, sendfile and sendmmsg
    /// with and without the daemon.
    SideDoors {
        /// The `monitor` binary to run.
        #[arg(long)]
        monitor: PathBuf,
        /// Calls per workload and round.
        #[arg(long, default_value_t = 100_000)]
        calls: u64,
    },
    /// TLS discovery: exec latency with it off and on, and exec to hooked
    /// for a 100 MB binary.
    TlsDiscovery {
        /// The `monitor` binary to run.
        #[arg(long)]
        monitor: PathBuf,
    },
    /// The payload benchmark's sender (a child of `payload`).
    PayloadChild {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        sends: u64,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        rate: u64,
    },
    /// The sensor benchmark's load generator (a child of `sensor`).
    SensorChild {
        #[arg(long)]
        opens: u64,
        #[arg(long)]
        rate: u64,
        path: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    monitor::record::pin_allocator_threshold();
    match Cli::parse().command {
        Command::Sensor {
            opens,
            rate,
            ring_mib,
        } => print(&bench::run_sensor_bench(opens, rate, ring_mib)?),
        Command::Payload {
            sends,
            size,
            rate,
            baseline,
            threads,
            backlog_mib,
        } => print(&bench::run_payload_bench(
            sends,
            size,
            rate,
            !baseline,
            monitor::payload::threads(threads),
            (backlog_mib.min(monitor::daemon::MAX_BACKLOG_MIB) << 20) as usize,
        )?),
        Command::EvalAnomaly => anomaly_eval::main(),
        Command::TlsDiscovery { monitor } => print(&tls_discovery::run(&monitor)?),
        Command::SideDoors { monitor, calls } => print(&side_doors::run(&monitor, calls)?),
        Command::Prevent { monitor, requests } => print(&prevent::run(&monitor, requests)?),
        Command::Store {
            records,
            paths,
            followers,
        } => print(&bench::run_store_bench(records, paths, followers)?),
        Command::Overhead {
            monitor,
            rounds,
            files,
            opens,
            connections,
            sends,
            execs,
            repeat_window_ms,
        } => print(&overhead::run(
            &monitor,
            overhead::Workload {
                files: files.max(1),
                opens,
                connections: connections.max(1),
                sends,
                execs,
                repeat_window_ms,
            },
            rounds.max(1),
        )?),
        Command::Soak {
            monitor,
            minutes,
            sample_secs,
        } => print(&soak::run(&monitor, minutes, sample_secs.max(1))?),
        Command::Siem {
            monitor,
            rate,
            seconds,
        } => print(&siem::run(&monitor, rate.max(1), seconds.max(1))?),
        Command::PayloadChild {
            port,
            sends,
            size,
            rate,
        } => bench::run_payload_child(port, sends, size, rate),
        Command::SensorChild { opens, rate, path } => bench::run_bench_child(opens, rate, &path),
    }
}

fn print(report: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}

/// A scratch directory under the temporary directory, emptied when made
/// and removed when dropped, on an error too (a bench's directories hold
/// up to a gigabyte).
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `monitor-<name>-<pid>` in the temporary directory.
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("monitor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
