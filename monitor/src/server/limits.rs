//! Limits on the query socket, per caller uid: how many connections it
//! may hold open, how fast it may ask, how long a connection may sit idle,
//! and refusals folded into one record per uid and window, so that a
//! flood of refused queries cannot push real alerts out of view.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a connection may wait before sending its request.
pub const IDLE: Duration = Duration::from_secs(10);
/// Connections one uid may hold open at once (root: eight times as many).
pub const MAX_CONNS_PER_UID: usize = 8;
/// Requests per second a uid may make, sustained...
pub const RATE_PER_SEC: f64 = 10.0;
/// ...and in a burst.
pub const BURST: f64 = 30.0;
/// Refusals of one uid within this window are recorded as one record.
pub const FOLD_WINDOW: Duration = Duration::from_secs(60);

/// Why a caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// Not root and not in the analyst group.
    NotAnalyst,
    /// Over [`MAX_CONNS_PER_UID`].
    TooManyConnections,
    /// Over [`RATE_PER_SEC`].
    RateLimited,
}

impl Refusal {
    /// What to tell the caller and the record.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::NotAnalyst => "not an analyst",
            Refusal::TooManyConnections => "too many open connections",
            Refusal::RateLimited => "too many queries",
        }
    }
}

/// Refusals of one uid since its window opened; the first is already recorded.
#[derive(Debug, Clone)]
pub struct Fold {
    /// When the window opened (RFC 3339).
    pub since: String,
    opened: Instant,
    /// Refusals after the first, by reason.
    pub more: BTreeMap<Refusal, u64>,
}

#[derive(Default)]
struct State {
    conns: HashMap<u32, usize>,
    buckets: HashMap<u32, (f64, Instant)>,
    folds: HashMap<u32, Fold>,
}

/// The limits' state, shared by every connection.
#[derive(Default)]
pub struct Limits {
    state: Mutex<State>,
}

/// An open connection, counted against its uid until dropped.
pub struct Conn<'a> {
    limits: &'a Limits,
    uid: u32,
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let mut s = self.limits.state.lock().expect("limits lock");
        if let Some(n) = s.conns.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.conns.remove(&self.uid);
            }
        }
    }
}

impl Limits {
    /// Counts a new connection of `uid`; `None` when it already holds its share.
    pub fn connect(&self, uid: u32) -> Option<Conn<'_>> {
        let mut s = self.state.lock().expect("limits lock");
        let cap = if uid == 0 {
            MAX_CONNS_PER_UID * 8
        } else {
            MAX_CONNS_PER_UID
        };
        let n = s.conns.entry(uid).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Conn { limits: self, uid })
    }

    /// Takes one request from `uid`'s allowance; false when it is spent.
    pub fn take(&self, uid: u32) -> bool {
        let mut s = self.state.lock().expect("limits lock");
        let now = Instant::now();
        let (tokens, last) = s.buckets.entry(uid).or_insert((BURST, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * RATE_PER_SEC).min(BURST);
        *last = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }

    /// Counts a refusal of `uid` at `now` (RFC 3339); true when it opens a
    /// window, and so must be recorded now.
    pub fn refuse(&self, uid: u32, why: Refusal, now: &str) -> bool {
        let mut s = self.state.lock().expect("limits lock");
        match s.folds.get_mut(&uid) {
            Some(f) if f.opened.elapsed() < FOLD_WINDOW => {
                *f.more.entry(why).or_default() += 1;
                false
            }
            _ => {
                s.folds.insert(
                    uid,
                    Fold {
                        since: now.to_owned(),
                        opened: Instant::now(),
                        more: BTreeMap::new(),
                    },
                );
                true
            }
        }
    }

    /// Windows that have closed, each with the refusals after its first
    /// (those with none are dropped: their one refusal is recorded).
    pub fn closed(&self) -> Vec<(u32, Fold)> {
        let mut s = self.state.lock().expect("limits lock");
        let done: Vec<u32> = s
            .folds
            .iter()
            .filter(|(_, f)| f.opened.elapsed() >= FOLD_WINDOW)
            .map(|(u, _)| *u)
            .collect();
        done.into_iter()
            .filter_map(|u| s.folds.remove(&u).map(|f| (u, f)))
            .filter(|(_, f)| !f.more.is_empty())
            .collect()
    }

    /// Forgets rate allowances no one has used for a while (bounded memory).
    pub fn tidy(&self) {
        let mut s = self.state.lock().expect("limits lock");
        s.buckets
            .retain(|_, (_, last)| last.elapsed() < Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_rate_are_limited_per_uid() {
        let l = Limits::default();
        let held: Vec<_> = (0..MAX_CONNS_PER_UID)
            .map(|_| l.connect(1000).unwrap())
            .collect();
        assert!(l.connect(1000).is_none());
        assert!(l.connect(1001).is_some(), "another uid has its own share");
        drop(held);
        assert!(l.connect(1000).is_some());
        let allowed = (0..100).filter(|_| l.take(1000)).count();
        assert_eq!(allowed, BURST as usize);
    }

    #[test]
    fn refusals_fold_into_one_window_per_uid() {
        let l = Limits::default();
        assert!(l.refuse(7, Refusal::NotAnalyst, "t0"));
        for _ in 0..4999 {
            assert!(!l.refuse(7, Refusal::NotAnalyst, "t"));
        }
        assert!(l.refuse(8, Refusal::RateLimited, "t0"));
        assert!(l.closed().is_empty(), "windows still open");
    }
}
