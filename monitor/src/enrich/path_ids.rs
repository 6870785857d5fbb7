//! Paths the kernel's path cache sent once and then by id.
//!
//! The first open of a file carries its walked path and an id; later opens
//! of the same file (same dentry, mount and root, no rename, unlink or
//! mount change since) carry the id alone. Records arrive in ring order, so
//! a path is always learnt before its id is used.

use std::collections::HashMap;

use crate::event::CUT;

/// Paths by the id the kernel gave them. The current table holds at most
/// `cap` paths; when it fills it becomes the previous table (still read, for
/// records already on the ring buffer) and the kernel is asked to walk every
/// path again ([`PathIds::take_forget`]).
#[derive(Debug)]
pub struct PathIds {
    current: HashMap<u64, Box<str>>,
    previous: HashMap<u64, Box<str>>,
    cap: usize,
    forget: bool,
    unknown: u64,
}

/// What an id no longer known stands for: a cut path (classified by the
/// kernel's mark), so that it cannot pass for a real one.
pub const UNKNOWN_PATH: &str = "…/(path not known)";

impl PathIds {
    /// Paths held in the current table: twice what the kernel caches.
    pub const DEFAULT_CAP: usize = 2 * monitor_common::MAX_CACHED_PATHS as usize;

    /// An empty table that holds `cap` paths before it turns over.
    pub fn new(cap: usize) -> Self {
        Self {
            current: HashMap::new(),
            previous: HashMap::new(),
            cap: cap.max(1),
            forget: false,
            unknown: 0,
        }
    }

    /// Learns the path sent with `id`.
    pub fn learn(&mut self, id: u64, path: &str) {
        if self.current.len() >= self.cap {
            self.previous = std::mem::take(&mut self.current);
            self.forget = true;
        }
        self.current.insert(id, path.into());
    }

    /// The path learnt for `id`, or [`UNKNOWN_PATH`] (counted) when it was
    /// never learnt or has been forgotten.
    pub fn path(&mut self, id: u64) -> String {
        match self.current.get(&id).or_else(|| self.previous.get(&id)) {
            Some(p) => p.to_string(),
            None => {
                self.unknown += 1;
                debug_assert!(UNKNOWN_PATH.starts_with(CUT));
                UNKNOWN_PATH.to_owned()
            }
        }
    }

    /// True once after the table turned over: the kernel must then stop
    /// serving ids it handed out before (`Sensor::forget_paths`).
    pub fn take_forget(&mut self) -> bool {
        std::mem::take(&mut self.forget)
    }

    /// Ids asked for that were not known.
    pub fn unknown(&self) -> u64 {
        self.unknown
    }
}

impl Default for PathIds {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learnt_path_is_served_by_id() {
        let mut ids = PathIds::new(4);
        ids.learn(7, "/srv/crm/a.json");
        assert_eq!(ids.path(7), "/srv/crm/a.json");
        assert_eq!(ids.unknown(), 0);
        assert!(!ids.take_forget());
    }

    #[test]
    fn an_unknown_id_is_counted_and_never_a_real_path() {
        let mut ids = PathIds::new(4);
        assert_eq!(ids.path(9), UNKNOWN_PATH);
        assert!(ids.path(9).starts_with(CUT));
        assert_eq!(ids.unknown(), 2);
    }

    #[test]
    fn a_full_table_turns_over_keeps_the_last_and_asks_the_kernel_to_forget() {
        let mut ids = PathIds::new(2);
        ids.learn(1, "/a");
        ids.learn(2, "/b");
        assert!(!ids.take_forget());
        ids.learn(3, "/c");
        assert!(ids.take_forget());
        assert!(!ids.take_forget(), "asked once per turn-over");
        // Records already on the ring still name the previous table's ids.
        assert_eq!(ids.path(1), "/a");
        assert_eq!(ids.path(3), "/c");
        ids.learn(4, "/d");
        ids.learn(5, "/e");
        assert!(ids.take_forget());
        assert_eq!(ids.path(3), "/c");
        assert_eq!(ids.path(1), UNKNOWN_PATH, "two turn-overs ago");
        assert_eq!(ids.unknown(), 1);
    }
}
