//! The one writer of the record: takes records from a bounded queue,
//! appends them in batches (one chain, one flush per batch), and runs the
//! retention task. A full queue blocks its producer rather than dropping,
//! so backpressure reaches the kernel ring buffer, where drops are counted.
//!
//! When the store cannot write (a full disk), the writer holds the records
//! in memory (up to [`HOLD`]; beyond that each is counted lost), reopens the
//! store and tries again with backoff, and once a write succeeds appends
//! what it held, with the seqs they were first given, then records the
//! outage itself: when, how many attempts failed, how many records were
//! lost, as a high (or, with losses, critical) alert.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Store;
use crate::model::Action;
use crate::model::{now_ns, Alert, Outcome, Record, Severity};

/// Records queued for the writer at most.
pub const QUEUE: usize = 65_536;
/// Records appended per batch at most.
pub const BATCH: usize = 8192;
/// How often the retention task runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Records held in memory while the store cannot write, at most.
pub const HOLD: usize = 262_144;
/// The longest wait between attempts to write again.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often a continuing outage is logged.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

/// What the writer has done, for the status report.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Records stored.
    pub stored: AtomicU64,
    /// Records lost because the store failed to write them.
    pub failed: AtomicU64,
    /// Records removed by retention.
    pub expired: AtomicU64,
    /// Attempts to write that failed.
    pub write_errors: AtomicU64,
    /// Records held in memory while the store cannot write.
    pub held: AtomicU64,
    /// Records handed over and not yet taken by the writer (its queue depth).
    pub queued: AtomicU64,
    /// When the store last failed to write (RFC 3339), and why.
    pub last_error: std::sync::Mutex<Option<(String, String)>>,
    /// When (monotonic ns) the writer began the work it is doing now (a
    /// batch, a retry, retention); 0 while it waits for records.
    pub busy_since: AtomicU64,
}

impl WriterCounters {
    /// Seconds the writer's current work has taken at `now` ([`mono_ns`]);
    /// 0 while it waits.
    fn busy_secs_at(&self, now: u64) -> u64 {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => 0,
            since => now.saturating_sub(since) / 1_000_000_000,
        }
    }

    /// A copy for the status report.
    pub fn snapshot(&self) -> crate::status::RecordCounters {
        crate::status::RecordCounters {
            stored: self.stored.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            busy_secs: self.busy_secs_at(mono_ns()),
            last_error: self
                .last_error
                .lock()
                .expect("last error lock")
                .as_ref()
                .map(|(at, e)| format!("{at}: {e}")),
        }
    }
}

/// Monotonic nanoseconds since the first call, never 0 (0 is "idle").
fn mono_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX) | 1
}

/// The record writer has stopped: nothing more can be stored.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the record writer has stopped")]
pub struct WriterGone;

/// Hands records to the writer, counting what waits in its queue.
#[derive(Clone)]
pub struct RecordSender {
    tx: SyncSender<Record>,
    counters: Arc<WriterCounters>,
}

impl RecordSender {
    /// A sender whose records go to `tx` (for tests that read them there).
    pub fn new(tx: SyncSender<Record>) -> Self {
        Self {
            tx,
            counters: Arc::default(),
        }
    }

    /// Queues `r` for the writer, waiting while the queue is full; fails
    /// only once the writer is gone (the record is then dropped).
    pub fn send(&self, r: Record) -> Result<(), WriterGone> {
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.send(r).map_err(|_| {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            WriterGone
        })
    }
}

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
    let sender = RecordSender {
        tx,
        counters: counters.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("record".into())
        .spawn(move || run(&store, &rx, retention, &counters, &template))?;
    Ok((sender, handle))
}

/// A time the store could not write.
struct Outage {
    since: String,
    failures: u64,
    lost: u64,
    /// Held records stored since (by attempts that got part of the way).
    stored: usize,
    last_error: String,
    retry: Duration,
    next_try: Instant,
    last_log: Instant,
}

fn run(
    store: &Store,
    rx: &Receiver<Record>,
    retention: Retention,
    counters: &WriterCounters,
    template: &Record,
) {
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut held: Vec<Record> = Vec::new();
    let mut outage: Option<Outage> = None;
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
                counters
                    .queued
                    .fetch_sub(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        counters.busy_since.store(mono_ns(), Ordering::Relaxed);
        let stopping = batch
            .iter()
            .any(|r| r.action == Action::Stop && r.pid == template.pid);
        if let Some(o) = &mut outage {
            hold(&mut held, &mut batch, o, counters);
            let due = stopping || !open || Instant::now() >= o.next_try;
            if due && recover(store, &mut held, o, counters, template) {
                outage = None;
            }
        } else if !batch.is_empty() {
            if let Err(e) = store.append(&mut batch) {
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                *counters.last_error.lock().expect("last error lock") =
                    Some((template.stamped().time, e.to_string()));
                tracing::error!(error = %e, held = batch.len(), "the record store cannot write; holding records and retrying");
                let mut o = Outage {
                    since: template.stamped().time,
                    failures: 1,
                    lost: 0,
                    stored: 0,
                    last_error: e.to_string(),
                    retry: Duration::from_millis(200),
                    next_try: Instant::now() + Duration::from_millis(200),
                    last_log: Instant::now(),
                };
                hold(&mut held, &mut batch, &mut o, counters);
                outage = Some(o);
            } else {
                counters
                    .stored
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
        } else if let Err(e) = store.maintain() {
            tracing::error!(error = %e, "writing the record index failed");
        }
        if stopping || !open {
            if let Some(o) = &outage {
                counters
                    .failed
                    .fetch_add(held.len() as u64, Ordering::Relaxed);
                tracing::error!(lost = held.len() as u64 + o.lost, since = %o.since, "records could NOT be stored before the daemon stopped");
            }
            if let Err(e) = store.sync() {
                tracing::error!(error = %e, "writing the record index failed");
            }
            counters.busy_since.store(0, Ordering::Relaxed);
            return;
        }
        if outage.is_none() && last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            expire(store, retention, counters, template);
        }
        counters.busy_since.store(0, Ordering::Relaxed);
    }
}

/// Moves `batch` to the held records; what does not fit under [`HOLD`] is lost (counted).
fn hold(held: &mut Vec<Record>, batch: &mut Vec<Record>, o: &mut Outage, c: &WriterCounters) {
    let room = HOLD.saturating_sub(held.len());
    if batch.len() > room {
        let lost = (batch.len() - room) as u64;
        o.lost += lost;
        c.failed.fetch_add(lost, Ordering::Relaxed);
        batch.truncate(room);
    }
    held.append(batch);
    c.held.store(held.len() as u64, Ordering::Relaxed);
}

/// Reopens the store and appends what is held; on success records the
/// outage and returns true.
fn recover(
    store: &Store,
    held: &mut Vec<Record>,
    o: &mut Outage,
    counters: &WriterCounters,
    template: &Record,
) -> bool {
    // sled refuses every write after an I/O error until it is reopened.
    let result = store
        .reopen()
        .and_then(|()| append_held(store, held, o, counters));
    if let Err(e) = result {
        o.failures += 1;
        o.last_error = e.to_string();
        counters.write_errors.fetch_add(1, Ordering::Relaxed);
        o.retry = (o.retry * 2).min(MAX_RETRY);
        o.next_try = Instant::now() + o.retry;
        if o.last_log.elapsed() >= OUTAGE_LOG_EVERY {
            o.last_log = Instant::now();
            tracing::error!(since = %o.since, failures = o.failures, held = held.len(), lost = o.lost, error = %o.last_error, "the record store still cannot write");
        }
        return false;
    }
    let recovered = o.stored;
    let mut note = vec![Record {
        action: Action::Outage,
        object: format!(
            "record writes failed from {} until now: {} failed attempts, {} records held and stored, {} lost ({})",
            o.since, o.failures, recovered, o.lost, o.last_error
        ),
        bytes: Some(o.lost as i64),
        outcome: Outcome::Failed,
        alert: Some(Alert {
            explain: None,
            severity: if o.lost > 0 {
                Severity::Critical
            } else {
                Severity::High
            },
            rule: "record-write-failed".into(),
            message: format!(
                "the record could not be written for a while ({} records lost)",
                o.lost
            ),
        }),
        ..template.stamped()
    }];
    write(store, &mut note, counters);
    tracing::warn!(since = %o.since, failures = o.failures, recovered, lost = o.lost, "record writes recovered");
    true
}

/// Appends the held records [`BATCH`] at a time, so that the chain's head
/// moves (and the followers start) as they go, and no one append chains a
/// quarter of a million records; what was stored leaves `held` even when a
/// later batch fails.
fn append_held(
    store: &Store,
    held: &mut Vec<Record>,
    o: &mut Outage,
    counters: &WriterCounters,
) -> Result<(), super::StoreError> {
    let mut stored = 0;
    let result = held.chunks_mut(BATCH).try_for_each(|chunk| {
        store.append(chunk)?;
        stored += chunk.len();
        Ok(())
    });
    held.drain(..stored);
    o.stored += stored;
    counters.stored.fetch_add(stored as u64, Ordering::Relaxed);
    counters.held.store(held.len() as u64, Ordering::Relaxed);
    result
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
                        explain: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::record;

    #[test]
    fn the_writer_says_how_long_its_work_has_taken_and_is_idle_after() {
        let tmp = tempfile::tempdir().unwrap();
        let store =
            Arc::new(Store::open(&tmp.path().join("db"), &tmp.path().join("record.key")).unwrap());
        let counters = Arc::new(WriterCounters::default());
        let day = Duration::from_secs(86_400);
        let retention = Retention {
            keep: day,
            hold: day,
        };
        let (tx, writer) = spawn(store, retention, counters.clone(), record(1, "r", "x")).unwrap();
        tx.send(record(crate::model::now_ns(), "r", "/p")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.stored.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "not stored");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(tx);
        writer.join().unwrap();
        assert_eq!(counters.busy_since.load(Ordering::Relaxed), 0);
        assert_eq!(counters.snapshot().busy_secs, 0);
        // Work begun 400 s before now reads as 400 s busy: wedged.
        counters.busy_since.store(1_000, Ordering::Relaxed);
        let busy = counters.busy_secs_at(1_000 + 400_000_000_000);
        assert_eq!(busy, 400);
        assert!(busy >= crate::status::WRITER_STUCK.as_secs());
        assert!(counters.snapshot().busy_secs < 400);
    }
}
