//! Repeats as counts: the same access made again and again within a short
//! window (a process re-reading one customer file in a loop) is stored as
//! two records, not one per access. So are a connection's sends recorded
//! unscanned while the daemon was behind (a flood's), counted before any
//! record is made of them ([`UnscannedSends`]).
//!
//! The first access of a window is recorded as it comes, so nothing waits
//! for the window to close. The ones after it are counted; when the window
//! closes, one record carries their count and the time of the last. Every
//! access is in a record or a count: nothing is lost. Denied or failed
//! opens, records with an alert or findings, other sends and the daemon's own
//! records are never counted: each of those matters on its own. A record
//! of opens the kernel already counted (`FileAccess::repeats`) joins an
//! open window with its whole count, or goes out as it is.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::enrich::WallClock;
use crate::model::{Action, Outcome, Record, Repeats as Count};

/// What makes two records the same access.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    pid: u32,
    action: Action,
    outcome: Outcome,
    object: String,
    role: Arc<str>,
    class: Option<Arc<str>>,
    errno: Option<String>,
}

impl Key {
    fn of(r: &Record) -> Self {
        Self {
            pid: r.pid,
            action: r.action,
            outcome: r.outcome,
            object: r.object.clone(),
            role: r.role.clone(),
            class: r.class.clone(),
            errno: r.errno.clone(),
        }
    }
}

/// A window open for one key.
#[derive(Debug)]
struct Window {
    /// When its first access happened (recorded as it came).
    first_ns: u64,
    /// The first access counted after it, the record the count goes out in.
    counted: Option<Record>,
    /// Accesses counted.
    count: u64,
    /// When the last of them happened.
    last_ns: u64,
}

/// The repeat counter: one per pipeline.
#[derive(Debug)]
pub struct Repeats {
    window_ns: u64,
    max_windows: usize,
    open: HashMap<Key, Window>,
    /// Accesses recorded one by one because every window was taken.
    overflowed: u64,
}

/// Windows open at once, at most; past it accesses are recorded one by one.
pub const MAX_WINDOWS: usize = 65_536;

impl Repeats {
    /// A counter with windows of `window` (zero: nothing is counted).
    pub fn new(window: Duration, max_windows: usize) -> Self {
        Self {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            max_windows,
            open: HashMap::new(),
            overflowed: 0,
        }
    }

    /// Accesses recorded one by one because every window was taken.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Takes `rec`: hands it to `emit` (the first of its window, or a
    /// record that is never counted), or counts it. A window of its key
    /// that has closed is emitted first, and a new one opened in its place.
    pub fn admit(&mut self, rec: Record, emit: &mut impl FnMut(Record)) {
        if self.window_ns == 0 || !countable(&rec) {
            return emit(rec);
        }
        let key = Key::of(&rec);
        let full = self.open.len() >= self.max_windows;
        match self.open.get_mut(&key) {
            Some(w) if rec.time_ns.saturating_sub(w.first_ns) < self.window_ns => {
                // A record the kernel counted brings its count.
                w.count += rec.count();
                w.last_ns = w
                    .last_ns
                    .max(rec.repeats.map_or(rec.time_ns, |r| r.last_ns));
                if w.counted.is_none() {
                    w.counted = Some(rec);
                }
                return;
            }
            Some(w) => {
                if let Some(done) = closed(w) {
                    emit(done);
                }
                *w = Window::from(rec.time_ns);
            }
            None if full => self.overflowed += 1,
            None => {
                self.open.insert(key, Window::from(rec.time_ns));
            }
        }
        emit(rec);
    }

    /// Closes every window that opened at least a window's length before
    /// `now_ns`, emitting the record of each that counted anything.
    pub fn close_due(&mut self, now_ns: u64, emit: &mut impl FnMut(Record)) {
        let window = self.window_ns;
        self.open.retain(|_, w| {
            let open = now_ns.saturating_sub(w.first_ns) < window;
            if !open {
                if let Some(done) = closed(w) {
                    emit(done);
                }
            }
            open
        });
    }

    /// Closes every window (at shutdown).
    pub fn close_all(&mut self, emit: &mut impl FnMut(Record)) {
        for (_, mut w) in self.open.drain() {
            if let Some(done) = closed(&mut w) {
                emit(done);
            }
        }
    }
}

impl Window {
    /// A window opened by an access at `first_ns`, nothing counted yet.
    fn from(first_ns: u64) -> Self {
        Self {
            first_ns,
            counted: None,
            count: 0,
            last_ns: first_ns,
        }
    }
}

/// The record a closed window goes out in, if it counted anything.
fn closed(w: &mut Window) -> Option<Record> {
    let mut rec = w.counted.take()?;
    rec.repeats = Some(Count {
        count: w.count,
        last_ns: w.last_ns,
    });
    Some(rec)
}

/// Whether a record may be counted with others: a file opened, allowed,
/// with no alert, no findings and nothing sent. (A denied open is never
/// counted: a burst of them is what `denied-then-granted` looks for, in
/// order with the open that succeeds.)
fn countable(r: &Record) -> bool {
    matches!(r.action, Action::Read | Action::Write)
        && r.outcome == Outcome::Allowed
        && r.alert.is_none()
        && r.findings.is_empty()
        && r.bytes.is_none()
        && r.run.is_none()
}

/// A connection whose sends are counted: process, connection id, TLS
/// plaintext or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendKey {
    /// The process.
    pub tgid: u32,
    /// The connection (`PayloadInfo::conn_id`).
    pub conn_id: u64,
    /// Plaintext from the TLS library.
    pub tls: bool,
}

/// A window of one connection's unscanned sends.
#[derive(Debug)]
struct SendWindow {
    /// The record of the first send, stored as it came.
    first: Record,
    /// Its monotonic time, and the wall clock its record was timed by.
    first_mono: u64,
    clock: WallClock,
    /// Sends counted after it, their bytes, and the monotonic times of the
    /// first and last of them.
    count: u64,
    bytes: i64,
    counted_mono: (u64, u64),
}

/// Sends recorded unscanned while the daemon was behind (a flood's: their
/// events say `inspected: false`), counted by connection before any record
/// is made of them. The first of a window is recorded as it comes; the
/// rest of the window add to a count, and one record carries the count,
/// their bytes and the time of the last when the window closes. A record
/// made of each would cost the daemon what skipping their scan saved.
#[derive(Debug)]
pub struct UnscannedSends {
    window_ns: u64,
    max_windows: usize,
    open: HashMap<SendKey, SendWindow>,
}

impl UnscannedSends {
    /// A counter with windows of `window` (zero: nothing is counted).
    pub fn new(window: Duration, max_windows: usize) -> Self {
        Self {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            max_windows,
            open: HashMap::new(),
        }
    }

    /// Counts a send of `bytes` on `key` at monotonic time `mono_ns` in
    /// its connection's open window; false when there is none (the send
    /// is to be recorded, and [`UnscannedSends::open`] given its record).
    pub fn count(&mut self, key: SendKey, mono_ns: u64, bytes: i64) -> bool {
        let Some(w) = self.open.get_mut(&key) else {
            return false;
        };
        if mono_ns.saturating_sub(w.first_mono) >= self.window_ns {
            return false;
        }
        if w.count == 0 {
            w.counted_mono.0 = mono_ns;
        }
        w.count += 1;
        w.bytes += bytes.max(0);
        w.counted_mono.1 = w.counted_mono.1.max(mono_ns);
        true
    }

    /// Opens `key`'s window with `first`, the record of a send at
    /// monotonic time `mono_ns` (a window of `key` that has closed is
    /// emitted first). Past the most windows, nothing is opened: each send
    /// is then recorded.
    pub fn open(
        &mut self,
        key: SendKey,
        mono_ns: u64,
        first: &Record,
        emit: &mut impl FnMut(Record),
    ) {
        if self.window_ns == 0 {
            return;
        }
        if let Some(done) = self.open.remove(&key).and_then(closed_sends) {
            emit(done);
        }
        if self.open.len() >= self.max_windows {
            return;
        }
        let w = SendWindow {
            first: first.clone(),
            first_mono: mono_ns,
            clock: WallClock::at(mono_ns, first.time_ns),
            count: 0,
            bytes: 0,
            counted_mono: (0, 0),
        };
        self.open.insert(key, w);
    }

    /// Emits the record of every window that opened at least a window's
    /// length before monotonic time `now_mono` and counted anything (every
    /// window, when `all`).
    pub fn close_due(&mut self, now_mono: u64, all: bool, emit: &mut impl FnMut(Record)) {
        let window = self.window_ns;
        let due = self
            .open
            .extract_if(|_, w| all || now_mono.saturating_sub(w.first_mono) >= window);
        for (_, w) in due {
            if let Some(done) = closed_sends(w) {
                emit(done);
            }
        }
    }
}

/// The record of a closed window's counted sends, if it counted any: the
/// first send's record with the count, the bytes and the times of the
/// counted ones.
fn closed_sends(w: SendWindow) -> Option<Record> {
    if w.count == 0 {
        return None;
    }
    let (first, last) = w.counted_mono;
    Some(Record {
        time: w.clock.format(first),
        time_ns: w.clock.unix_ns(first),
        bytes: Some(w.bytes),
        repeats: Some(Count {
            count: w.count,
            last_ns: w.clock.unix_ns(last),
        }),
        ..w.first
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn access(pid: u32, object: &str, at_ms: u64) -> Record {
        serde_json::from_value(serde_json::json!({
            "seq": 0, "time": "", "time_ns": at_ms * MS, "host": "h", "pid": pid,
            "comm": "cat", "uid": 1000, "role": "billing-agent", "action": "read",
            "object": object, "class": "cardholder-data", "outcome": "allowed",
        }))
        .unwrap()
    }

    fn total(records: &[Record]) -> u64 {
        records.iter().map(Record::count).sum()
    }

    #[test]
    fn a_burst_is_two_records_with_the_exact_count() {
        let mut repeats = Repeats::new(Duration::from_secs(1), MAX_WINDOWS);
        let mut out = Vec::new();
        for i in 0..1000 {
            repeats.admit(access(7, "/cards/a.json", i / 2), &mut |r| out.push(r));
        }
        // The first went out at once; the rest wait for the window.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].repeats, None);
        repeats.close_due(999 * MS, &mut |r| out.push(r));
        assert_eq!(out.len(), 1, "the window is still open");
        repeats.close_due(1000 * MS, &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].repeats,
            Some(Count {
                count: 999,
                last_ns: 499 * MS
            })
        );
        assert_eq!(out[1].time_ns, 0, "the first counted access");
        assert_eq!(total(&out), 1000);
    }

    #[test]
    fn a_floods_unscanned_sends_are_one_record_and_a_count_per_window() {
        let mut sends = UnscannedSends::new(Duration::from_secs(1), 2);
        let mut out = Vec::new();
        let first = |at_ms: u64| {
            let mut r = access(7, "203.0.113.7:443", at_ms);
            r.action = Action::Send;
            r.bytes = Some(200);
            r
        };
        let a = SendKey {
            tgid: 7,
            conn_id: 1,
            tls: false,
        };
        let b = SendKey {
            tgid: 7,
            conn_id: 2,
            tls: false,
        };
        // Wall clock = monotonic + 5 s.
        let wall = 5_000 * MS;
        assert!(
            !sends.count(a, 0, 200),
            "no window yet: the send is recorded"
        );
        sends.open(a, 0, &first(5_000), &mut |r| out.push(r));
        for i in 1..=500 {
            assert!(sends.count(a, i * MS, 200));
        }
        // Another connection has its own window.
        assert!(!sends.count(b, 10 * MS, 100));
        sends.open(b, 10 * MS, &first(5_010), &mut |r| out.push(r));
        assert!(out.is_empty(), "the first records are stored by the caller");
        // Past the window the next send is recorded, and opens a new one.
        assert!(!sends.count(a, 1_000 * MS, 200));
        sends.open(a, 1_000 * MS, &first(6_000), &mut |r| out.push(r));
        assert_eq!(out.len(), 1, "the closed window's count");
        let rec = &out[0];
        assert_eq!(
            rec.repeats,
            Some(Count {
                count: 500,
                last_ns: wall + 500 * MS
            })
        );
        assert_eq!((rec.time_ns, rec.bytes), (wall + MS, Some(500 * 200)));
        // A window that counted nothing makes no record; at shutdown every
        // window with a count goes.
        assert!(sends.count(a, 1_001 * MS, 50));
        sends.close_due(1_500 * MS, false, &mut |r| out.push(r));
        assert_eq!(out.len(), 1, "b counted nothing, a is still open");
        sends.close_due(1_500 * MS, true, &mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].repeats.map(|c| c.count), Some(1));
        assert_eq!(out[1].bytes, Some(50));
        // Past the most windows, sends are recorded one by one.
        let mut full = UnscannedSends::new(Duration::from_secs(1), 1);
        full.open(a, 0, &first(0), &mut |r| out.push(r));
        full.open(b, 0, &first(0), &mut |r| out.push(r));
        assert!(full.count(a, MS, 1) && !full.count(b, MS, 1));
    }

    #[test]
    fn counts_from_the_kernel_join_the_open_window() {
        let mut repeats = Repeats::new(Duration::from_secs(1), MAX_WINDOWS);
        let mut out = Vec::new();
        let counted = |at_ms: u64, count: u64, last_ms: u64| {
            let mut r = access(7, "/cards/a.json", at_ms);
            r.repeats = Some(Count {
                count,
                last_ns: last_ms * MS,
            });
            r
        };
        // Alone, a record of counts goes out as it is.
        repeats.admit(counted(0, 40, 90), &mut |r| out.push(r));
        assert_eq!(total(&out), 40);
        // In its window, the next ones add to one record.
        repeats.admit(access(7, "/cards/a.json", 100), &mut |r| out.push(r));
        repeats.admit(counted(200, 500, 300), &mut |r| out.push(r));
        repeats.admit(counted(400, 7, 450), &mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        repeats.close_all(&mut |r| out.push(r));
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[1].repeats,
            Some(Count {
                count: 508,
                last_ns: 450 * MS
            })
        );
        assert_eq!(total(&out), 548);
    }

    #[test]
    fn other_processes_files_and_late_accesses_are_their_own() {
        let mut repeats = Repeats::new(Duration::from_millis(100), MAX_WINDOWS);
        let mut out = Vec::new();
        let mut emit = |r| out.push(r);
        repeats.admit(access(1, "/a", 0), &mut emit);
        repeats.admit(access(2, "/a", 1), &mut emit);
        repeats.admit(access(1, "/b", 2), &mut emit);
        repeats.admit(access(1, "/a", 3), &mut emit);
        // After the window: the old one closes, a new one opens.
        repeats.admit(access(1, "/a", 150), &mut emit);
        repeats.close_all(&mut emit);
        let shown: Vec<(u32, &str, u64)> = out
            .iter()
            .map(|r| (r.pid, r.object.as_str(), r.count()))
            .collect();
        assert_eq!(
            shown,
            [
                (1, "/a", 1),
                (2, "/a", 1),
                (1, "/b", 1),
                (1, "/a", 1),
                (1, "/a", 1)
            ]
        );
        assert_eq!(total(&out), 5);
    }

    #[test]
    fn sends_and_denied_opens_are_never_counted() {
        let mut repeats = Repeats::new(Duration::from_secs(1), MAX_WINDOWS);
        let mut out = Vec::new();
        for i in 0..10 {
            let mut r = access(1, "/a", i);
            r.action = Action::Send;
            r.bytes = Some(200);
            repeats.admit(r, &mut |r| out.push(r));
            let mut r = access(1, "/a", i);
            r.outcome = Outcome::Failed;
            r.errno = Some("EACCES".into());
            repeats.admit(r, &mut |r| out.push(r));
        }
        assert_eq!(out.len(), 20);
    }

    #[test]
    fn a_full_table_records_one_by_one_and_says_so() {
        let mut repeats = Repeats::new(Duration::from_secs(1), 2);
        let mut out = Vec::new();
        for (pid, at) in [(1, 0), (2, 1), (3, 2), (3, 3), (1, 4)] {
            repeats.admit(access(pid, "/a", at), &mut |r| out.push(r));
        }
        repeats.close_all(&mut |r| out.push(r));
        // Processes 1 and 2 have windows; 3 has none, so each of its
        // accesses is recorded.
        assert_eq!(repeats.overflowed(), 2);
        assert_eq!(total(&out), 5);
    }

    #[test]
    fn a_zero_window_counts_nothing() {
        let mut repeats = Repeats::new(Duration::ZERO, MAX_WINDOWS);
        let mut out = Vec::new();
        for i in 0..5 {
            repeats.admit(access(1, "/a", i), &mut |r| out.push(r));
        }
        assert_eq!(out.len(), 5);
    }
}
