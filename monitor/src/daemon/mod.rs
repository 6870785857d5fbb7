//! `monitor run`: the daemon. [`start`] opens the store and the record
//! writer, starts the followers, the query server, the sensor and the
//! pipeline thread; [`control`] is the loop that runs until a termination
//! signal (stats and status on a timer, rule reloads on SIGHUP);
//! [`shutdown`] stops everything in order so the last records are stored
//! and handed to the followers.

pub mod control;
pub mod shutdown;
pub mod start;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Where state lives by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/monitor";

/// Options of `monitor run` (the command line is this struct; each is
/// also a key of `monitor.toml`, by its long name).
#[derive(Debug, Clone, Args, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Options {
    /// The settings file (default /etc/monitor/monitor.toml, or
    /// MONITOR_CONFIG); the command line overrides it.
    #[arg(long, value_name = "PATH")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Print every event as one JSON line on stdout.
    #[arg(long)]
    pub events_stdout: bool,
    /// With --events-stdout, let the kernel count repeated opens as it
    /// does for the record (the stream then shows the first open of each
    /// repeat window and events carrying the count of the rest). Without
    /// it, --events-stdout turns the kernel's counting off and prints every
    /// open.
    #[arg(long, requires = "events_stdout")]
    #[serde(default)]
    pub events_counted: bool,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, default_value_t = 32)]
    pub ring_mib: u32,
    /// Seconds between stats log lines and status file updates.
    #[arg(long = "stats-interval", default_value_t = 10, value_name = "SECS")]
    #[serde(rename = "stats-interval")]
    pub stats_interval_secs: u64,
    /// Where the status snapshot is written.
    #[arg(long, default_value = crate::status::DEFAULT_STATUS_FILE)]
    pub status_file: PathBuf,
    /// Most payload bytes captured per send (1 to 16384).
    #[arg(long, default_value_t = 16384)]
    pub payload_limit: u32,
    /// A library or binary to hook for TLS from the start, besides the
    /// system's libssl and libgnutls and what discovery finds (repeatable).
    #[arg(long = "tls-lib")]
    #[serde(rename = "tls-lib")]
    pub tls_libraries: Vec<PathBuf>,
    /// Hook TLS only in the system's libssl and libgnutls and the
    /// `--tls-lib` files: do not look at each process's binary and
    /// libraries for OpenSSL, GnuTLS or Go's crypto/tls.
    #[arg(long)]
    pub no_tls_discovery: bool,
    /// The fingerprint key (created, mode 0600, if absent).
    #[arg(long, default_value = crate::cli::scan::DEFAULT_KEY_FILE)]
    pub key_file: PathBuf,
    /// Also capture bytes received on sockets and from TLS (`read`, `recv*`, `SSL_read`).
    #[arg(long)]
    pub capture_inbound: bool,
    /// Where the access record and its chain key live.
    #[arg(long, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Rule files here replace the shipped ones of the same name.
    #[arg(long, default_value = crate::rules::DEFAULT_RULES_DIR)]
    pub rules_dir: PathBuf,
    /// The analysts' query socket.
    #[arg(long, default_value = crate::server::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Members of this group (and root) may query the record.
    #[arg(long, default_value = crate::server::DEFAULT_ANALYST_GROUP)]
    pub analyst_group: String,
    /// The record store's page cache, MiB (sled's default is 1 GiB). It
    /// bounds what queries and verification keep cached; sled's own page
    /// table still grows with the store.
    #[arg(long, default_value_t = crate::record::DEFAULT_CACHE_BYTES >> 20)]
    pub store_cache_mib: u64,
    /// Milliseconds in which the same access made again (the same process,
    /// file, action, outcome, role and class) is counted into one record
    /// rather than stored each time: the first is stored at once, the rest
    /// as one record with their count. 0 stores every access on its own.
    /// The kernel counts repeated opens of one file by one process with
    /// the same flags within the same window before they reach the daemon
    /// (see --events-counted). A SIGKILL loses at most one window of counts
    /// (each window's first access is stored at once).
    #[arg(long, default_value_t = DEFAULT_REPEAT_WINDOW_MS)]
    pub repeat_window_ms: u64,
    /// Threads that inspect a busy batch's payload bytes for PII, each for
    /// its share of the connections (one connection's sends stay in order,
    /// in one thread). 0: one per core but one (at most 8).
    #[arg(long, default_value_t = 0)]
    pub payload_threads: usize,
    /// MiB of records the daemon takes from the ring buffer into its own
    /// memory while it is behind (a burst of sends faster than it scans
    /// them), so that every send is still scanned, later. Only past seven
    /// eighths of this are the busiest connections' sends recorded
    /// unscanned. 0 (or below 2, a batch): the ring buffer alone.
    #[arg(long, default_value_t = crate::backlog::DEFAULT_BACKLOG_MIB)]
    pub backlog_mib: u64,
    /// Days records are kept.
    #[arg(long, default_value_t = 365)]
    pub retention_days: u64,
    /// Days past the retention period that records a follower has not yet
    /// handled are kept for it; after that they go and the loss is recorded.
    #[arg(long, default_value_t = 7)]
    pub follower_hold_days: u64,
    /// Seconds between heartbeats: a record carrying the chain's head
    /// (`SEQ:MAC`) that every sink delivers, so the SIEM holds what proves a
    /// later truncation (`monitor verify --head`). Only with sinks.
    #[arg(long, default_value_t = 300)]
    pub heartbeat_secs: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (loopback only; off
    /// when not given), e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How log lines are written to stderr (journald): `plain` text, or
    /// `json`, one object a line with the fields separate.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
    /// Append every record as one JSON line to this file (repeatable). A
    /// follower of the record: in order, at least once, resumed after a restart.
    #[arg(long = "sink-jsonl", value_name = "PATH")]
    pub sink_jsonl: Vec<PathBuf>,
}

/// The largest backlog `--backlog-mib` takes (64 GiB).
pub const MAX_BACKLOG_MIB: u64 = 64 << 10;

/// The default repeat window, ms: short, as a SIGKILL loses the counts of
/// the windows open; a loop of opens is still counted hundreds to one.
pub const DEFAULT_REPEAT_WINDOW_MS: u64 = 250;

/// How the daemon's log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Plain text (no colours off a terminal).
    Plain,
    /// One JSON object a line.
    Json,
}

impl Options {
    /// How long records are kept.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days.max(1) * 86_400)
    }

    /// How long past retention a follower's unhandled records are held.
    pub fn follower_hold(&self) -> Duration {
        Duration::from_secs(self.follower_hold_days * 86_400)
    }

    /// How often stats are logged and the status file rewritten.
    pub fn stats_interval(&self) -> Duration {
        Duration::from_secs(self.stats_interval_secs.max(1))
    }

    /// Refuses options that cannot work, before anything starts.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ring_mib.is_power_of_two(),
            "--ring-mib must be a power of two, got {}",
            self.ring_mib
        );
        anyhow::ensure!(
            self.backlog_mib <= MAX_BACKLOG_MIB,
            "--backlog-mib must be at most {MAX_BACKLOG_MIB}, got {}",
            self.backlog_mib
        );
        anyhow::ensure!(
            (1..=monitor_common::PAYLOAD_MAX as u32).contains(&self.payload_limit),
            "--payload-limit must be 1..={} bytes, got {}",
            monitor_common::PAYLOAD_MAX,
            self.payload_limit
        );
        Ok(())
    }
}

/// Runs the daemon on its own runtime until a termination signal.
pub fn main(opts: Options) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(run(opts))
}

/// Starts, runs the control loop, and shuts down.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    opts.check()?;
    let mut daemon = start::start(&opts).await?;
    control::run(&opts, &mut daemon).await?;
    shutdown::shutdown(&opts, daemon).await
}

fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
