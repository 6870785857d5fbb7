//! `monitor run`: starts the sensor, runs the pipeline on its own thread,
//! reports readiness to systemd, logs and publishes stats periodically, and
//! shuts down cleanly on SIGINT/SIGTERM.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use std::sync::mpsc::Sender;

use crate::enrich::Enricher;
use crate::model::Action;
use crate::model::{Alert, Severity};
use crate::model::{Outcome, Record};
use crate::notify::notify;
use crate::output::{EventSink, JsonLines};
use crate::pipeline::Recording;
use crate::pipeline::{Counters, Pipeline};
use crate::record::writer::{self, RecordSender, WriterCounters};
use crate::record::Store;
use crate::rules::RuleSet;
use crate::sensor::{Sensor, SensorSettings};
use crate::server::{self, Server};
use crate::status::Status;

/// Options of `monitor run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print every event as a JSON line on stdout.
    pub events_stdout: bool,
    /// Ring buffer size in MiB (a power of two).
    pub ring_mib: u32,
    /// How often stats are logged and the status file rewritten.
    pub stats_interval: Duration,
    /// Where the status snapshot is written.
    pub status_file: PathBuf,
    /// Most payload bytes captured per call.
    pub payload_limit: u32,
    /// OpenSSL libraries to hook, besides the system's.
    pub tls_libraries: Vec<PathBuf>,
    /// The fingerprint key (created 0600 on first run).
    pub key_file: PathBuf,
    /// Also capture received bytes.
    pub capture_inbound: bool,
    /// Where the record (`record/`) and its chain key (`record.key`) live.
    pub state_dir: PathBuf,
    /// Rule overrides.
    pub rules_dir: PathBuf,
    /// The analysts' query socket.
    pub socket: PathBuf,
    /// The analysts' group.
    pub analyst_group: String,
    /// How long records are kept.
    pub retention: Duration,
}

/// Where state lives by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/monitor";

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

fn refresh(status: &mut Status, counters: &Counters) {
    status.updated = now();
    status.kernel = counters.kernel;
    status.pipeline = counters.pipeline;
    status.processes_tracked = counters.processes_tracked;
}

/// Runs the daemon until a termination signal.
pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.ring_mib.is_power_of_two(),
        "--ring-mib must be a power of two, got {}",
        opts.ring_mib
    );
    anyhow::ensure!(
        (1..=monitor_common::PAYLOAD_MAX as u32).contains(&opts.payload_limit),
        "--payload-limit must be 1..={} bytes, got {}",
        monitor_common::PAYLOAD_MAX,
        opts.payload_limit
    );
    let rules = RuleSet::load(Some(&opts.rules_dir))
        .map_err(|e| anyhow::anyhow!("refusing to start: invalid rules\n{e}"))?;
    let key = monitor_pii::FingerprintKey::load_or_create(&opts.key_file)
        .context("loading the fingerprint key")?;
    let detector = Arc::new(monitor_pii::Detector::new(rules.pii.clone(), key));
    let store = Arc::new(
        Store::open(
            &opts.state_dir.join("record"),
            &opts.state_dir.join("record.key"),
        )
        .context("opening the access record")?,
    );
    let host: Arc<str> = Arc::from(
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into()),
    );
    let template = Record {
        seq: 0,
        time: String::new(),
        time_ns: 0,
        host: host.clone(),
        pid: std::process::id(),
        exe: std::env::current_exe()
            .ok()
            .map(|p| Arc::from(p.to_string_lossy().as_ref())),
        comm: "monitor".into(),
        uid: nix::unistd::getuid().as_raw(),
        user: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| Arc::from(u.name)),
        role: Arc::from("monitor"),
        action: Action::Start,
        object: String::new(),
        dest_host: None,
        class: None,
        bytes: None,
        findings: Vec::new(),
        outcome: Outcome::Allowed,
        errno: None,
        alert: None,
    };
    let writer_counters = Arc::new(WriterCounters::default());
    let (records, writer) = writer::spawn(
        store.clone(),
        opts.retention,
        writer_counters.clone(),
        template.clone(),
    )
    .context("starting the record writer")?;
    let sources: Vec<String> = rules.sources.iter().map(|(_, f)| f.clone()).collect();
    let _ = records.send(Record {
        object: format!(
            "monitor {} rules {}",
            env!("CARGO_PKG_VERSION"),
            sources.join(",")
        ),
        ..template.stamped()
    });
    let listener = server::bind(&opts.socket)
        .with_context(|| format!("binding the query socket {}", opts.socket.display()))?;
    let server = tokio::spawn(
        Arc::new(Server {
            store: store.clone(),
            records: records.clone(),
            detector: detector.clone(),
            analyst_group: opts.analyst_group.clone(),
            template: template.clone(),
        })
        .serve(listener),
    );
    let (reload_tx, reloads) = std::sync::mpsc::channel();
    let mut settings = SensorSettings {
        ring_bytes: opts.ring_mib << 20,
        payload_limit: opts.payload_limit,
        capture_inbound: opts.capture_inbound,
        ..SensorSettings::default()
    };
    for lib in &opts.tls_libraries {
        let real =
            std::fs::canonicalize(lib).with_context(|| format!("--tls-lib {}", lib.display()))?;
        if !settings.tls_libraries.contains(&real) {
            settings.tls_libraries.push(real);
        }
    }
    let ring_bytes = settings.ring_bytes;
    let sensor = tokio::task::spawn_blocking(move || Sensor::start(&settings))
        .await?
        .context("starting the sensor")?;
    let attached = sensor.attached().to_vec();
    let tls_libraries = sensor.tls_attached().to_vec();
    let scrubber = detector.clone();
    let enricher = tokio::task::spawn_blocking(move || Enricher::new(Some(scrubber))).await?;

    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if opts.events_stdout {
        sinks.push(Box::new(JsonLines::new(std::io::stdout())));
    }
    let pipeline = Pipeline::new(
        sensor,
        enricher,
        crate::payload::PayloadStage::new(detector),
        sinks,
        Recording {
            judges: crate::judge::Chain::standard(&rules),
            rules,
            records: records.clone(),
            host,
            reloads,
        },
    );
    let counters = pipeline.counters();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn({
            let stop = stop.clone();
            move || pipeline.run(&stop)
        })
        .context("starting the pipeline thread")?;

    let mut status = Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started: now(),
        updated: now(),
        attached,
        ring_bytes,
        tls_libraries,
        tls_not_covered: crate::sensor::TLS_NOT_COVERED.to_owned(),
        ..Status::default()
    };
    if let Err(e) = status.write(&opts.status_file) {
        tracing::warn!(path = %opts.status_file.display(), error = %e, "cannot write status file");
    }
    tracing::info!(
        probes = status.attached.len(),
        ring_mib = opts.ring_mib,
        "sensor attached; monitoring"
    );
    notify("READY=1").context("notifying the service manager")?;

    let mut tick = tokio::time::interval(opts.stats_interval);
    tick.tick().await;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut last_dropped = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let snapshot = *counters.lock().expect("counters lock");
                refresh(&mut status, &snapshot);
                status.record = writer_counters.snapshot();
                log_stats(&status, &mut last_dropped);
                if let Err(e) = status.write(&opts.status_file) {
                    tracing::warn!(error = %e, "cannot write status file");
                }
                if worker.is_finished() {
                    break;
                }
            }
            _ = sighup.recv() => reload(&opts.rules_dir, &reload_tx, &records, &template),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }

    let _ = notify("STOPPING=1");
    stop.store(true, Ordering::Relaxed);
    let result = worker
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    let final_counters = result.context("pipeline stopped")?;
    server.abort();
    let _ = records.send(Record {
        action: Action::Stop,
        object: format!("monitor {}", env!("CARGO_PKG_VERSION")),
        ..template.stamped()
    });
    drop(records);
    tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("record writer panicked"))?;
    refresh(&mut status, &final_counters);
    status.record = writer_counters.snapshot();
    log_stats(&status, &mut last_dropped);
    status.write(&opts.status_file).ok();
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the rules (SIGHUP): a valid set replaces the running one; an
/// invalid one is refused and the running policy stays. Either way it is recorded.
fn reload(
    dir: &std::path::Path,
    to_pipeline: &Sender<RuleSet>,
    records: &RecordSender,
    template: &Record,
) {
    let (outcome, errno, alert) = match RuleSet::load(Some(dir)) {
        Ok(rules) => {
            let _ = to_pipeline.send(rules);
            tracing::info!("rules reloaded (PII detector settings apply at the next start)");
            (Outcome::Allowed, None, None)
        }
        Err(e) => {
            tracing::error!("rules reload REFUSED, keeping the running policy:\n{e}");
            (
                Outcome::Failed,
                Some(e.to_string()),
                Some(Alert {
                    severity: Severity::Medium,
                    rule: "rules-reload".into(),
                    message: "a rules reload was refused; the running policy stays".into(),
                }),
            )
        }
    };
    let _ = records.send(Record {
        action: Action::Reload,
        object: dir.display().to_string(),
        outcome,
        errno,
        alert,
        ..template.stamped()
    });
}

fn log_stats(status: &Status, last_dropped: &mut u64) {
    let dropped = status.dropped();
    tracing::info!(
        received = status.pipeline.received,
        emitted = status.kernel.emitted,
        dropped,
        ringbuf_full = status.kernel.ringbuf_full,
        decode_errors = status.pipeline.decode_errors,
        sink_errors = status.pipeline.sink_errors,
        truncated = status.kernel.truncated,
        processes = status.processes_tracked,
        "stats"
    );
    if dropped > *last_dropped {
        tracing::warn!(
            new = dropped - *last_dropped,
            total = dropped,
            "records were DROPPED since the last report; see `monitor status`"
        );
    }
    *last_dropped = dropped;
}
