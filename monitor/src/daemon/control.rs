//! The control loop: readiness to systemd, stats and the status file on a
//! timer, rule reloads on SIGHUP, until SIGTERM or SIGINT (or the pipeline
//! thread ends).

use std::sync::mpsc::Sender;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use super::start::Daemon;
use super::{now, Options};
use crate::model::{Action, Alert, Outcome, Record, Severity};
use crate::pipeline::Counters;
use crate::record::follow;
use crate::record::writer::{RecordSender, WriterCounters};
use crate::record::Store;
use crate::rules::RuleSet;
use crate::status::Status;
use sd_notify::NotifyState;

/// Runs until a termination signal (or the pipeline stops on its own).
pub async fn run(opts: &Options, d: &mut Daemon) -> anyhow::Result<()> {
    if let Err(e) = d.status.write(&opts.status_file) {
        tracing::warn!(path = %opts.status_file.display(), error = %e, "cannot write status file");
    }
    tracing::info!(
        probes = d.status.attached.len(),
        ring_mib = opts.ring_mib,
        followers = d.followers.len(),
        "sensor attached; monitoring"
    );
    // systemd names its notify socket by path; `sd-notify` does not speak
    // abstract (`@`) addresses.
    sd_notify::notify(&[NotifyState::Ready]).context("notifying the service manager")?;

    let mut tick = tokio::time::interval(opts.stats_interval());
    tick.tick().await;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut last_dropped = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let snapshot = *d.counters.lock().expect("counters lock");
                refresh(d, &snapshot);
                log_stats(&d.status, &mut last_dropped);
                if let Err(e) = d.status.write(&opts.status_file) {
                    tracing::warn!(error = %e, "cannot write status file");
                }
                if d.pipeline.is_finished() {
                    return Ok(());
                }
            }
            _ = sighup.recv() => reload(&opts.rules_dir, &d.reloads, &d.records, &d.template),
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
    }
}

/// Brings the status report up to date.
pub fn refresh(d: &mut Daemon, counters: &Counters) {
    update_status(
        &mut d.status,
        counters,
        &d.writer_counters,
        &d.store,
        &d.followers,
    );
}

/// Fills `status` from the pipeline's counters, the writer's, and the followers'.
pub fn update_status(
    status: &mut Status,
    counters: &Counters,
    writer: &WriterCounters,
    store: &Store,
    followers: &[follow::Running],
) {
    status.updated = now();
    status.kernel = counters.kernel;
    status.pipeline = counters.pipeline;
    status.processes_tracked = counters.processes_tracked;
    status.record = writer.snapshot();
    let head = store.head();
    status.followers = followers.iter().map(|f| f.status(head)).collect();
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

/// Logs one stats line, and a warning when drops grew since the last one.
pub fn log_stats(status: &Status, last_dropped: &mut u64) {
    let dropped = status.dropped();
    let behind = status.followers.iter().map(|f| f.lag).max().unwrap_or(0);
    tracing::info!(
        received = status.pipeline.received,
        emitted = status.kernel.emitted,
        dropped,
        ringbuf_full = status.kernel.ringbuf_full,
        decode_errors = status.pipeline.decode_errors,
        sink_errors = status.pipeline.sink_errors,
        truncated = status.kernel.truncated,
        processes = status.processes_tracked,
        followers_behind = behind,
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
