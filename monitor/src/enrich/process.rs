//! The process table: executable, command line and parent of every live
//! process, seeded from `/proc` at start-up and kept current from exec,
//! fork and exit events, so that events are attributed without reading
//! `/proc` (and without the process still existing).

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

/// How many exited processes are remembered (for late events and lineage).
const EXITED_KEPT: usize = 4096;

/// What is known about one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcInfo {
    /// Parent process id.
    pub ppid: u32,
    /// Executable path.
    pub exe: Option<Arc<str>>,
    /// Command line.
    pub cmdline: Arc<[String]>,
}

/// Live processes by pid, plus the most recently exited ones.
#[derive(Default)]
pub struct ProcessTable {
    live: HashMap<u32, ProcInfo>,
    exited: HashMap<u32, ProcInfo>,
    exited_order: VecDeque<u32>,
}

impl ProcessTable {
    /// A table seeded from the processes under `proc_root` (normally `/proc`).
    pub fn from_proc(proc_root: &Path) -> Self {
        let mut table = Self::default();
        let Ok(entries) = std::fs::read_dir(proc_root) else {
            return table;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(info) = read_proc(&entry.path()) {
                table.live.insert(pid, info);
            }
        }
        table
    }

    /// Rewrites every known command line (to mask sensitive values).
    pub fn scrub_cmdlines(&mut self, f: impl Fn(&str) -> String) {
        for info in self.live.values_mut() {
            info.cmdline = info.cmdline.iter().map(|a| f(a)).collect::<Vec<_>>().into();
        }
    }

    /// Number of live processes known.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when no live process is known.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The process `pid`, live or recently exited.
    pub fn get(&self, pid: u32) -> Option<&ProcInfo> {
        self.live.get(&pid).or_else(|| self.exited.get(&pid))
    }

    /// `child` was created by `parent`: it runs the parent's program until it execs.
    pub fn on_fork(&mut self, parent: u32, child: u32) {
        let mut info = self.get(parent).cloned().unwrap_or_default();
        info.ppid = parent;
        self.live.insert(child, info);
    }

    /// `pid` executed a new program.
    pub fn on_exec(&mut self, pid: u32, ppid: u32, exe: Option<Arc<str>>, cmdline: Arc<[String]>) {
        self.live.insert(pid, ProcInfo { ppid, exe, cmdline });
    }

    /// `pid` exited; it stays findable among the recently exited.
    pub fn on_exit(&mut self, pid: u32) {
        let Some(info) = self.live.remove(&pid) else {
            return;
        };
        if self.exited_order.len() >= EXITED_KEPT {
            if let Some(old) = self.exited_order.pop_front() {
                self.exited.remove(&old);
            }
        }
        self.exited.insert(pid, info);
        self.exited_order.push_back(pid);
    }
}

/// Reads one `/proc/<pid>` directory.
fn read_proc(dir: &Path) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // The comm field is parenthesised and may hold spaces: parse after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
    let exe = std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| Arc::from(p.to_string_lossy().as_ref()));
    let cmdline = std::fs::read(dir.join("cmdline"))
        .map(|raw| split_args(&raw))
        .unwrap_or_default();
    Some(ProcInfo {
        ppid,
        exe,
        cmdline: cmdline.into(),
    })
}

/// Splits a NUL-separated argument block.
pub fn split_args(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).map(super::paths::text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_from_proc_including_ourselves() {
        let table = ProcessTable::from_proc(Path::new("/proc"));
        let me = table.get(std::process::id()).expect("own process seeded");
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.exe.is_some());
        assert!(!me.cmdline.is_empty());
    }

    #[test]
    fn fork_inherits_exec_replaces_exit_remembers() {
        let mut t = ProcessTable::default();
        t.on_exec(10, 1, Some("/bin/sh".into()), vec!["sh".to_owned()].into());
        t.on_fork(10, 11);
        assert_eq!(t.get(11).unwrap().exe.as_deref(), Some("/bin/sh"));
        assert_eq!(t.get(11).unwrap().ppid, 10);
        t.on_exec(
            11,
            10,
            Some("/bin/cat".into()),
            vec!["cat".to_owned()].into(),
        );
        assert_eq!(&t.get(11).unwrap().cmdline[..], ["cat"]);
        t.on_exit(11);
        assert_eq!(t.get(11).unwrap().exe.as_deref(), Some("/bin/cat"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn exited_memory_is_bounded() {
        let mut t = ProcessTable::default();
        for pid in 0..(EXITED_KEPT as u32 + 10) {
            t.on_fork(1, pid + 100);
            t.on_exit(pid + 100);
        }
        assert_eq!(t.exited.len(), EXITED_KEPT);
        assert!(t.get(100).is_none());
    }

    #[test]
    fn splits_argument_blocks() {
        assert_eq!(split_args(b"a\0b c\0"), ["a", "b c"]);
        assert!(split_args(b"").is_empty());
    }
}
