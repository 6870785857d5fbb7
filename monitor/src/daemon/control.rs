//! The control loop: readiness to systemd, stats and the status file on a
//! timer, rule reloads on SIGHUP, until SIGTERM or SIGINT (or the pipeline
//! thread ends).

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};

use super::start::Daemon;
use super::{now, Options};
use crate::model::Follower;
use crate::model::{Action, Alert, Outcome, Record, Severity};
use crate::pipeline::Counters;
use crate::record::follow;
use crate::record::writer::WriterCounters;
use crate::record::Store;
use crate::rules::RuleSet;
use crate::sinks::SinkSpec;
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
        sinks = d.sinks.len(),
        "sensor attached; monitoring"
    );
    // Handlers first: a SIGHUP sent as soon as the daemon says it is ready
    // must reload, not kill it (the default action).
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // systemd names its notify socket by path; `sd-notify` does not speak
    // abstract (`@`) addresses.
    sd_notify::notify(&[NotifyState::Ready]).context("notifying the service manager")?;

    let mut tick = tokio::time::interval(opts.stats_interval());
    tick.tick().await;
    let mut last_dropped = 0;
    let mut losses = Losses::default();
    let mut watch = FollowerWatch::default();
    let mut wedged = false;
    let heartbeat = std::time::Duration::from_secs(opts.heartbeat_secs.max(1));
    let mut last_beat = std::time::Instant::now();
    // The service manager's watchdog (WatchdogSec=): pinged at half its
    // interval while the pipeline runs, so a hung daemon is restarted.
    let watchdog_every = sd_notify::watchdog_enabled();
    let watchdog = watchdog_every.is_some();
    let mut dog = tokio::time::interval(
        (watchdog_every.unwrap_or_default() / 2).max(std::time::Duration::from_millis(10)),
    );
    loop {
        tokio::select! {
            _ = dog.tick(), if watchdog => {
                // A wedged writer stores nothing more: let the service
                // manager restart the daemon rather than feign health.
                if !d.pipeline.is_finished() && !wedged {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                }
            }
            _ = tick.tick() => {
                let snapshot = d.counters.lock().expect("counters lock").clone();
                refresh(d, &snapshot);
                crate::record::release_free_memory();
                // For the metrics endpoint and `monitor status` over the socket.
                *d.published.write().expect("status lock") = d.status.clone();
                log_stats(&d.status, &mut last_dropped);
                let busy = d.status.record.busy_secs;
                if (busy >= crate::status::WRITER_STUCK.as_secs()) != wedged {
                    wedged = !wedged;
                    if wedged {
                        tracing::error!(busy_secs = busy, queued = d.status.record.queued, watchdog, "the record writer is wedged in one write: records are not being stored; the service manager's watchdog is no longer fed");
                    } else {
                        tracing::warn!("the record writer is moving again");
                    }
                }
                let _ = sd_notify::notify(&[NotifyState::Status(&service_status(&d.status))]);
                if let Some(note) = losses.since_last(&d.status, &d.template) {
                    let _ = d.records.send(note);
                }
                for note in watch.check(&d.status, &d.template) {
                    let _ = d.records.send(note);
                }
                if !d.sinks.is_empty() && last_beat.elapsed() >= heartbeat
                {
                    last_beat = std::time::Instant::now();
                    let (seq, mac) = d.store.head_mac();
                    let _ = d.records.send(Record {
                        action: Action::Heartbeat,
                        object: format!("head {seq}:{mac}"),
                        ..d.template.stamped()
                    });
                }
                if let Err(e) = d.status.write(&opts.status_file) {
                    tracing::warn!(error = %e, "cannot write status file");
                }
                if d.pipeline.is_finished() {
                    return Ok(());
                }
            }
            _ = sighup.recv() => {
                let _ = sd_notify::notify(&[NotifyState::Reloading]);
                reload(opts, d);
                let _ = sd_notify::notify(&[NotifyState::Ready]);
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
    }
}

/// The service manager's one-line status: the event rate, what was
/// dropped, what the record holds.
fn service_status(s: &Status) -> String {
    let dropped = s.kernel.ringbuf_full + s.pipeline.decode_errors + s.pipeline.record_errors;
    format!(
        "{:.0} events/s, {dropped} dropped, {} records stored, {} probes",
        s.events_per_sec,
        s.record.stored,
        s.attached.len()
    )
}

/// A follower failing this long raises an alert (once per outage).
pub const FOLLOWER_DOWN_ALERT: std::time::Duration = std::time::Duration::from_secs(300);
/// A follower this many records behind raises an alert (once, until it catches up).
pub const FOLLOWER_BACKLOG_ALERT: u64 = 100_000;

/// Which followers have been alerted about, so each outage alerts once.
#[derive(Default)]
struct FollowerWatch {
    down: std::collections::HashSet<String>,
    behind: std::collections::HashSet<String>,
}

impl FollowerWatch {
    /// Records for followers down longer than [`FOLLOWER_DOWN_ALERT`] or
    /// behind by more than [`FOLLOWER_BACKLOG_ALERT`]: self-alerts, which the
    /// other sinks deliver.
    fn check(&mut self, s: &Status, template: &Record) -> Vec<Record> {
        let mut out = Vec::new();
        let note = |rule: &str, object: String, message: String| Record {
            action: Action::Outage,
            object,
            outcome: Outcome::Failed,
            alert: Some(Alert {
                explain: None,
                severity: Severity::High,
                rule: rule.into(),
                message,
            }),
            ..template.stamped()
        };
        for f in &s.followers {
            let down_for = f
                .failing_since
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(|t| t.elapsed().ok());
            match down_for {
                Some(d) if d >= FOLLOWER_DOWN_ALERT && self.down.insert(f.name.clone()) => {
                    out.push(note(
                        "sink-down",
                        format!(
                            "{}: failing since {} ({}), {} records waiting",
                            f.name,
                            f.failing_since.as_deref().unwrap_or("?"),
                            f.last_error.as_deref().unwrap_or("?"),
                            f.lag
                        ),
                        format!("sink {} has been down for {} s", f.name, d.as_secs()),
                    ));
                }
                None => {
                    self.down.remove(&f.name);
                }
                _ => {}
            }
            if f.lag > FOLLOWER_BACKLOG_ALERT {
                if self.behind.insert(f.name.clone()) {
                    out.push(note(
                        "sink-backlog",
                        format!("{}: {} records behind", f.name, f.lag),
                        format!("sink {} is {} records behind", f.name, f.lag),
                    ));
                }
            } else if f.lag < FOLLOWER_BACKLOG_ALERT / 2 {
                self.behind.remove(&f.name);
            }
        }
        out
    }
}

/// The drop counters at the last tick, to record what was lost since.
#[derive(Default)]
struct Losses {
    ringbuf_full: u64,
    decode_errors: u64,
    sink_errors: u64,
    record_errors: u64,
    since: Option<String>,
}

impl Losses {
    /// A record of what was dropped since the last call, if anything was
    /// (one per stats interval at most). Store write failures are recorded
    /// by the writer itself.
    fn since_last(&mut self, s: &Status, template: &Record) -> Option<Record> {
        let now = Losses {
            ringbuf_full: s.kernel.ringbuf_full,
            decode_errors: s.pipeline.decode_errors,
            sink_errors: s.pipeline.sink_errors,
            record_errors: s.pipeline.record_errors,
            since: Some(s.updated.clone()),
        };
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        let (full, dec, sink, rec) = (
            delta(now.ringbuf_full, self.ringbuf_full),
            delta(now.decode_errors, self.decode_errors),
            delta(now.sink_errors, self.sink_errors),
            delta(now.record_errors, self.record_errors),
        );
        let since = std::mem::replace(self, now)
            .since
            .unwrap_or_else(|| s.started.clone());
        let total = full + dec + sink + rec;
        if total == 0 {
            return None;
        }
        Some(Record {
            action: Action::Outage,
            object: format!(
                "{total} events dropped since {since}: {full} with the ring buffer full, \
                 {dec} undecodable, {sink} refused by an event sink, {rec} not handed to the record writer"
            ),
            bytes: Some(total as i64),
            outcome: Outcome::Failed,
            alert: Some(Alert {
                explain: None,
                severity: Severity::High,
                rule: "events-dropped".into(),
                message: format!("{total} events were dropped unseen"),
            }),
            ..template.stamped()
        })
    }
}

/// Brings the status report up to date.
pub fn refresh(d: &mut Daemon, counters: &Counters) {
    update_status(
        &mut d.status,
        counters,
        &d.writer_counters,
        &d.store,
        d.followers.iter().chain(d.sinks.iter().map(|(_, f)| f)),
    );
}

/// Fills `status` from the pipeline's counters, the writer's, and the followers'.
pub fn update_status<'a>(
    status: &mut Status,
    counters: &Counters,
    writer: &WriterCounters,
    store: &Store,
    followers: impl Iterator<Item = &'a follow::Running>,
) {
    let previous = humantime::parse_rfc3339_weak(&status.updated)
        .ok()
        .and_then(|t| t.elapsed().ok());
    if let Some(secs) = previous.map(|d| d.as_secs_f64()).filter(|s| *s > 0.0) {
        let received = counters.pipeline.received;
        status.events_per_sec = received.saturating_sub(status.pipeline.received) as f64 / secs;
    }
    status.updated = now();
    status.kernel = counters.kernel;
    status.pipeline = counters.pipeline;
    status.processes_tracked = counters.processes_tracked;
    status.tls_libraries = counters.tls_hooked.clone();
    status.tls_blind = counters.tls_blind.clone();
    status.record = writer.snapshot();
    // While the store reopens after a write failure, the last figures stand.
    status.store_records = store.records().unwrap_or(status.store_records);
    status.store_bytes = store.size_on_disk().unwrap_or(status.store_bytes);
    let head = store.head();
    status.followers = followers.map(|f| f.status(head)).collect();
}

/// Reloads the rules (SIGHUP): a valid set replaces the running one,
/// with the PII detector's rules, the anomaly settings, the responders and
/// the sinks (a sink whose settings changed is replaced and resumes from
/// its cursor; a removed one stops; a new one starts). An invalid set, or
/// a sink that cannot be set up, is refused whole and the running set
/// stays. Either way it is recorded, with the files in force and their
/// digests. An override directory that existed at start-up and is gone now
/// is refused too: it would silently bring back the shipped rules.
fn reload(opts: &Options, d: &mut Daemon) {
    let dir = &opts.rules_dir;
    let loaded = if d.rules_dir_existed && !dir.is_dir() {
        Err(format!(
            "{}: the rules directory is gone (it existed at start-up)",
            dir.display()
        ))
    } else {
        RuleSet::load(Some(dir)).map_err(|e| e.to_string())
    };
    let prepared = loaded.and_then(|rules| {
        let sinks = prepare_sinks(&d.sinks, SinkSpec::all(&rules.sinks, &opts.sink_jsonl))?;
        Ok((rules, sinks))
    });
    match prepared {
        Ok((rules, sinks)) => {
            let changes = swap_sinks(d, sinks);
            let object = format!("{} rules {}{changes}", dir.display(), rules.describe());
            d.live.publish(&rules);
            d.status.reload_error = None;
            d.status.rules = rules.files_in_force();
            d.status.rules_loaded = now();
            tracing::info!(sinks = %changes, "rules reloaded");
            let record = Record {
                action: Action::Reload,
                object,
                ..d.template.stamped()
            };
            // The pipeline stores the record when the rules are in force.
            let _ = d.reloads.send(crate::pipeline::Reload { rules, record });
        }
        Err(e) => {
            let one_line = e.lines().map(str::trim).collect::<Vec<_>>().join(" | ");
            tracing::error!("rules reload REFUSED, keeping the running policy: {one_line}");
            d.status.reload_error = Some(format!("{}: {e}", now()));
            let _ = d.records.send(Record {
                action: Action::Reload,
                object: dir.display().to_string(),
                outcome: Outcome::Failed,
                reason: Some(e),
                alert: Some(Alert {
                    explain: None,
                    severity: Severity::Medium,
                    rule: "rules-reload".into(),
                    message: "a rules reload was refused; the running policy stays".into(),
                }),
                ..d.template.stamped()
            });
        }
    }
}

/// A sink a reload wants, and its new follower unless it runs already.
type Wanted = (SinkSpec, Option<Box<dyn Follower>>);

/// The sinks a reload asks for: those already running with the same
/// settings are kept (`None`), the others set up now, so that one that
/// cannot be refuses the reload before anything changed.
fn prepare_sinks(
    running: &[(SinkSpec, follow::Running)],
    wanted: Vec<SinkSpec>,
) -> Result<Vec<Wanted>, String> {
    wanted
        .into_iter()
        .map(|spec| {
            if running.iter().any(|(s, _)| *s == spec) {
                return Ok((spec, None));
            }
            let sink = spec.open().map_err(|e| e.to_string())?;
            Ok((spec, Some(sink)))
        })
        .collect()
}

/// Retires the running sinks a reload dropped or changed and starts the
/// new ones; says what changed (`, sinks +new ~changed -removed`).
fn swap_sinks(d: &mut Daemon, wanted: Vec<Wanted>) -> String {
    let mut kept = Vec::new();
    let mut retired = Vec::new();
    for (spec, running) in std::mem::take(&mut d.sinks) {
        if wanted.iter().any(|(s, new)| new.is_none() && *s == spec) {
            kept.push((spec, running));
        } else {
            retired.push(running);
        }
    }
    // Each retired sink stops before its successor (same name, same
    // cursor) starts.
    let retired_names: Vec<String> = retired
        .iter_mut()
        .map(|r| {
            r.retire();
            r.name().to_owned()
        })
        .collect();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (spec, new) in wanted {
        let Some(sink) = new else { continue };
        let name = sink.name().to_owned();
        match follow::spawn(d.store.clone(), sink, d.followers_stop.clone()) {
            Ok(running) => {
                if retired_names.contains(&name) {
                    changed.push(name);
                } else {
                    added.push(name);
                }
                kept.push((spec, running));
            }
            Err(e) => tracing::error!(sink = %name, error = %e, "cannot start the sink's thread"),
        }
    }
    let removed: Vec<String> = retired_names
        .into_iter()
        .filter(|n| !changed.contains(n))
        .collect();
    d.sinks = kept;
    let list = |sign: &str, names: &[String]| -> String {
        names.iter().map(|n| format!(" {sign}{n}")).collect()
    };
    let all = [list("+", &added), list("~", &changed), list("-", &removed)].concat();
    if all.is_empty() {
        String::new()
    } else {
        format!(", sinks{all}")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_since_the_last_tick_become_one_record_with_an_alert() {
        let template = Record {
            role: "monitor".into(),
            ..serde_json::from_value(serde_json::json!({
                "seq": 0, "time": "", "time_ns": 0, "host": "h", "pid": 1, "comm": "monitor",
                "uid": 0, "role": "monitor", "action": "start", "object": "", "outcome": "allowed"
            }))
            .unwrap()
        };
        let mut status = Status {
            started: "t0".into(),
            updated: "t1".into(),
            ..Status::default()
        };
        let mut losses = Losses::default();
        assert!(losses.since_last(&status, &template).is_none());
        status.kernel.ringbuf_full = 120;
        status.pipeline.decode_errors = 2;
        status.updated = "t2".into();
        let rec = losses.since_last(&status, &template).unwrap();
        assert_eq!(rec.action, Action::Outage);
        assert_eq!(rec.bytes, Some(122));
        assert!(
            rec.object.starts_with(
                "122 events dropped since t1: 120 with the ring buffer full, 2 undecodable"
            ),
            "{}",
            rec.object
        );
        let alert = rec.alert.unwrap();
        assert_eq!(
            (alert.rule.as_str(), alert.severity),
            ("events-dropped", Severity::High)
        );
        // Nothing new: no record.
        status.updated = "t3".into();
        assert!(losses.since_last(&status, &template).is_none());
    }
}
