//! Running followers: each [`Follower`] on its own thread reads the records
//! after its durable cursor, hands them over in batches, and moves the
//! cursor once they are handled. A follower that fails is offered the same
//! batch again with backoff (100 ms doubling to 30 s); the pipeline never
//! waits for it. The cursor survives restarts and crashes, so a follower
//! resumes where it stopped; at most the last unacknowledged batch is
//! handed twice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Store;
use crate::model::Follower;
use crate::status::FollowerStatus;

/// Records handed to a follower at once at most.
pub const BATCH: usize = 1024;
/// How long a stopping daemon lets a follower catch up.
pub const DRAIN: Duration = Duration::from_secs(5);
/// The longest wait between retries of a failing batch.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a follower has done, shared with the status report.
#[derive(Debug, Default)]
pub struct FollowerCounters {
    /// Records handled.
    pub handled: AtomicU64,
    /// Batches that failed (each retried).
    pub errors: AtomicU64,
    /// The cursor: the last record handled.
    pub cursor: AtomicU64,
    /// Records retention removed before this follower handled them.
    pub lost: AtomicU64,
    /// Since when it has been failing (RFC 3339), and its last error; empty when fine.
    pub failing: std::sync::Mutex<Option<(String, String)>>,
}

/// A follower's thread.
pub struct Running {
    name: String,
    counters: Arc<FollowerCounters>,
    thread: Option<JoinHandle<()>>,
    retire: Arc<AtomicBool>,
}

/// When a follower's thread ends: with the daemon (after draining), or on
/// its own when a reload retires it (at once: its successor resumes from
/// the same cursor).
struct Stop {
    daemon: Arc<AtomicBool>,
    retire: Arc<AtomicBool>,
}

impl Stop {
    fn is_set(&self) -> bool {
        self.daemon.load(Ordering::Relaxed) || self.retire.load(Ordering::Relaxed)
    }

    fn drain(&self) -> Duration {
        if self.retire.load(Ordering::Relaxed) {
            Duration::ZERO
        } else {
            DRAIN
        }
    }
}

impl Running {
    /// The follower's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The follower's line of the status report; `head` is the last stored seq.
    pub fn status(&self, head: u64) -> FollowerStatus {
        let cursor = self.counters.cursor.load(Ordering::Relaxed);
        let failing = self.counters.failing.lock().expect("failing lock").clone();
        FollowerStatus {
            name: self.name.clone(),
            cursor,
            lag: head.saturating_sub(cursor),
            handled: self.counters.handled.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
            lost: self.counters.lost.load(Ordering::Relaxed),
            failing_since: failing.as_ref().map(|(since, _)| since.clone()),
            last_error: failing.map(|(_, e)| e),
        }
    }

    /// Stops this follower without draining and waits for it (a reload
    /// replaces or removes it). Its cursor stays where it got to.
    pub fn retire(&mut self) {
        self.retire.store(true, Ordering::Relaxed);
        self.join();
    }

    /// Waits for the thread (after `stop` was set).
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(follower = %self.name, "follower thread panicked");
            }
        }
    }
}

/// Starts `follower` on its own thread. It runs until `stop` is set and it
/// has caught up with the store (or [`DRAIN`] has passed).
pub fn spawn(
    store: Arc<Store>,
    mut follower: Box<dyn Follower>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Running> {
    let name = follower.name().to_owned();
    let counters = Arc::new(FollowerCounters::default());
    let retire = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new()
        .name(format!("follow {name}"))
        .spawn({
            let counters = counters.clone();
            let name = name.clone();
            let stop = Stop {
                daemon: stop,
                retire: retire.clone(),
            };
            move || {
                if let Err(e) = follow(&store, follower.as_mut(), &counters, &stop) {
                    tracing::error!(follower = %name, error = %e, "follower stopped: the record cannot be read");
                }
                store.unregister_follower(&name);
            }
        })?;
    Ok(Running {
        name,
        counters,
        thread: Some(thread),
        retire,
    })
}

fn follow(
    store: &Store,
    follower: &mut dyn Follower,
    counters: &FollowerCounters,
    stop: &Stop,
) -> Result<(), super::StoreError> {
    let name = follower.name().to_owned();
    let mut backoff = Duration::from_millis(100);
    // The store may be reopening after a write failure: wait for it.
    let start = loop {
        match store
            .register_follower(&name)
            .and_then(|gap| Ok((gap, store.cursor(&name)?)))
        {
            Ok(v) => break v,
            Err(e) if stop.is_set() => return Err(e),
            Err(_) => {
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    let (gap, start) = start;
    if gap > 0 {
        tracing::error!(follower = %name, lost = gap, "records were removed by retention before this follower handled them");
    }
    counters.cursor.store(start.seq, Ordering::Relaxed);
    counters.lost.store(start.lost, Ordering::Relaxed);
    let mut cursor = start.seq;
    backoff = Duration::from_millis(100);
    let mut deadline: Option<Instant> = None;
    loop {
        if deadline.is_none() && stop.is_set() {
            deadline = Some(Instant::now() + stop.drain());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        let step = store
            .read_after_where(cursor, BATCH, |json| follower.wants(json))
            .map_err(|e| e.to_string())
            .and_then(|read| {
                if read.seen == 0 {
                    return Ok(None);
                }
                if !read.records.is_empty() {
                    follower.handle(&read.records).map_err(|e| e.to_string())?;
                }
                let c = store
                    .advance(&name, read.through)
                    .map_err(|e| e.to_string())?;
                Ok(Some((c, read.seen as u64)))
            });
        match step {
            Ok(None) => {
                if deadline.is_some() {
                    return Ok(());
                }
                store.wait_past(cursor, Duration::from_millis(200));
            }
            Ok(Some((c, n))) => {
                cursor = c.seq;
                counters.cursor.store(c.seq, Ordering::Relaxed);
                counters.handled.fetch_add(n, Ordering::Relaxed);
                counters.lost.store(c.lost, Ordering::Relaxed);
                *counters.failing.lock().expect("failing lock") = None;
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                let n = counters.errors.fetch_add(1, Ordering::Relaxed) + 1;
                {
                    let mut failing = counters.failing.lock().expect("failing lock");
                    let since = failing.take().map_or_else(
                        || {
                            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                                .to_string()
                        },
                        |(since, _)| since,
                    );
                    *failing = Some((since, e.clone()));
                }
                // Rate-limited: the first failure, then every power of two.
                if n.is_power_of_two() {
                    tracing::warn!(follower = %name, error = %e, failures = n, behind = store.head().saturating_sub(cursor), "follower failed; retrying");
                }
                if deadline.is_some() {
                    return Ok(());
                }
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sleeps for `d`, waking early once `stop` is set.
fn sleep_unless(stop: &Stop, d: Duration) {
    let until = Instant::now() + d;
    while !stop.is_set() {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}
