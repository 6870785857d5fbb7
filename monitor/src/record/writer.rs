//! The one writer of the record: takes records from a bounded queue,
//! appends them in batches (one chain, one flush per batch), and runs the
//! retention task. A full queue blocks its producer rather than dropping,
//! so backpressure reaches the kernel ring buffer, where drops are counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Store;
use crate::model::Action;
use crate::model::{Alert, Outcome, Record, Severity};

/// Records queued for the writer at most.
pub const QUEUE: usize = 65_536;
/// Records appended per batch at most.
pub const BATCH: usize = 8192;
/// How often the retention task runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// What the writer has done, for the status report.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Records stored.
    pub stored: AtomicU64,
    /// Records lost because the store failed to write them.
    pub failed: AtomicU64,
    /// Records removed by retention.
    pub expired: AtomicU64,
}

impl WriterCounters {
    /// A copy for the status report.
    pub fn snapshot(&self) -> crate::status::RecordCounters {
        crate::status::RecordCounters {
            stored: self.stored.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
        }
    }
}

/// Hands records to the writer.
pub type RecordSender = SyncSender<Record>;

/// How long records are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Records older than this are removed...
    pub keep: Duration,
    /// ...unless a running follower has not handled them yet and they are
    /// younger than `keep + hold`.
    pub hold: Duration,
}

/// Starts the writer thread. It runs until every sender is dropped, or
/// until it has stored the daemon's own `stop` record.
pub fn spawn(
    store: Arc<Store>,
    retention: Retention,
    counters: Arc<WriterCounters>,
    template: Record,
) -> std::io::Result<(RecordSender, JoinHandle<()>)> {
    let (tx, rx) = sync_channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("record".into())
        .spawn(move || run(&store, &rx, retention, &counters, &template))?;
    Ok((tx, handle))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn run(
    store: &Store,
    rx: &Receiver<Record>,
    retention: Retention,
    counters: &WriterCounters,
    template: &Record,
) {
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut last_retention: Option<Instant> = None;
    loop {
        let open = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => {
                batch.push(r);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        let stopping = batch
            .iter()
            .any(|r| r.action == Action::Stop && r.pid == template.pid);
        if !batch.is_empty() {
            write(store, &mut batch, counters);
        } else if let Err(e) = store.maintain() {
            tracing::error!(error = %e, "writing the record index failed");
        }
        if stopping || !open {
            if let Err(e) = store.sync() {
                tracing::error!(error = %e, "writing the record index failed");
            }
            return;
        }
        if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            expire(store, retention, counters, template);
        }
    }
}

fn write(store: &Store, batch: &mut Vec<Record>, counters: &WriterCounters) {
    match store.append(batch) {
        Ok(_) => {
            counters
                .stored
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            counters
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::error!(error = %e, lost = batch.len(), "records could NOT be stored");
        }
    }
    batch.clear();
}

/// Removes records older than the retention period (held longer for
/// followers that have not handled them) and records that it did, and
/// what any follower lost.
fn expire(store: &Store, retention: Retention, counters: &WriterCounters, template: &Record) {
    let now = now_ns();
    let cutoff = now.saturating_sub(retention.keep.as_nanos() as u64);
    let hold = cutoff.saturating_sub(retention.hold.as_nanos() as u64);
    match store.trim(cutoff, hold) {
        Ok(t) if t.removed == 0 => {}
        Ok(t) => {
            counters.expired.fetch_add(t.removed, Ordering::Relaxed);
            let mut recs = vec![Record {
                action: Action::Retention,
                object: format!("records up to {}", t.last),
                bytes: Some(t.removed as i64),
                outcome: Outcome::Allowed,
                ..template.stamped()
            }];
            for (follower, n) in &t.lost {
                tracing::error!(follower = %follower, lost = n, "retention removed records a follower had not handled");
                recs.push(Record {
                    action: Action::Retention,
                    object: follower.clone(),
                    bytes: Some(*n as i64),
                    outcome: Outcome::Violation,
                    alert: Some(Alert {
                        severity: Severity::High,
                        rule: "follower-lost".into(),
                        message: format!(
                            "follower {follower} lost {n} records to retention before handling them"
                        ),
                    }),
                    ..template.stamped()
                });
            }
            write(store, &mut recs, counters);
            tracing::info!(
                removed = t.removed,
                through = t.last,
                "retention removed old records"
            );
        }
        Err(e) => tracing::error!(error = %e, "retention failed"),
    }
}
