//! The process table: executable, command line and parent of every live
//! process, seeded from `/proc` at start-up and kept current from exec,
//! fork and exit events, so that events are attributed without reading
//! `/proc` (and without the process still existing).

use std::collections::VecDeque;

use foldhash::HashMap;
use std::path::Path;
use std::sync::Arc;

/// How many exited processes are remembered (for late events and lineage).
const EXITED_KEPT: usize = 4096;
/// How many ancestors' executables a process's ancestry keeps.
pub const ANCESTRY_MAX: usize = 8;

/// What is known about one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcInfo {
    /// Parent process id.
    pub ppid: u32,
    /// Executable path.
    pub exe: Option<Arc<str>>,
    /// Command line.
    pub cmdline: Arc<[String]>,
    /// How the process's user logged in: the audit login uid and the
    /// controlling terminal (inherited; set again at each exec).
    pub login: Login,
    /// The executables of its ancestors when it was created, parent first
    /// (at most [`ANCESTRY_MAX`]); a parent that exits later stays named.
    pub ancestry: Arc<[Arc<str>]>,
}

/// The login a process belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Login {
    /// The audit login uid: who logged in, whatever uid the process has
    /// since taken (`sudo`, `su`). `None` when no login set it.
    pub uid: Option<u32>,
    /// The controlling terminal (`pts/3`), if any.
    pub tty: Option<Arc<str>>,
}

impl Login {
    /// From the kernel's values: a login uid (`u32::MAX` is unset) and a
    /// terminal's device number as [`monitor_common::tty_dev`] encodes it (0 is none).
    pub fn from_kernel(loginuid: u32, tty: u32) -> Self {
        Self {
            uid: (loginuid != u32::MAX).then_some(loginuid),
            tty: (tty != 0).then(|| Arc::from(tty_name(tty >> 20, tty & 0xf_ffff))),
        }
    }
}

/// A terminal's name from its device number (`Documentation/admin-guide/devices.txt`).
pub fn tty_name(major: u32, minor: u32) -> String {
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 1 => "console".to_owned(),
        _ => format!("tty({major}:{minor})"),
    }
}

/// Masks sensitive values in a string kept for the record.
pub type Scrub = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Live processes by pid, plus the most recently exited ones.
#[derive(Default)]
pub struct ProcessTable {
    live: HashMap<u32, ProcInfo>,
    /// A live process's image before its last exec, and that exec's time
    /// (monotonic ns): opens the kernel counted before the exec are
    /// reported after it, and belong to the image that made them.
    before_exec: HashMap<u32, (u64, ProcInfo)>,
    exited: HashMap<u32, ProcInfo>,
    exited_order: VecDeque<u32>,
    /// Applied to each executable as it enters an ancestry, so a record's
    /// ancestry is masked once per process, not once per record.
    scrub: Option<Scrub>,
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
        let pids: Vec<u32> = table.live.keys().copied().collect();
        for pid in pids {
            let ancestry = table.ancestry_of(table.live[&pid].ppid);
            table.live.get_mut(&pid).expect("seeded").ancestry = ancestry;
        }
        table
    }

    /// The ancestry a child of `parent` has: the parent's executable, then
    /// the parent's own ancestry (its ancestors' as they were at its birth;
    /// for processes seeded from `/proc`, the chain of live parents).
    fn ancestry_of(&self, parent: u32) -> Arc<[Arc<str>]> {
        let mut chain = Vec::new();
        let mut next = Some(parent);
        while let Some(pid) = next.filter(|&p| p > 0 && chain.len() < ANCESTRY_MAX) {
            let Some(info) = self.get(pid) else { break };
            let exe = info.exe.clone().unwrap_or_else(|| Arc::from(""));
            chain.push(match &self.scrub {
                Some(f) => Arc::from(f(&exe)),
                None => exe,
            });
            if !info.ancestry.is_empty() {
                let room = ANCESTRY_MAX - chain.len();
                chain.extend(info.ancestry.iter().take(room).cloned());
                break;
            }
            next = Some(info.ppid).filter(|&pp| pp != pid && pid > 1);
        }
        chain.into()
    }

    /// Rewrites every known command line and ancestry with `f` (to mask
    /// sensitive values), and applies it to every ancestry from now on.
    pub fn scrub_with(&mut self, f: Scrub) {
        for info in self.live.values_mut() {
            info.cmdline = info.cmdline.iter().map(|a| f(a)).collect::<Vec<_>>().into();
            info.ancestry = info.ancestry.iter().map(|a| Arc::from(f(a))).collect();
        }
        self.scrub = Some(f);
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
        info.ancestry = self.ancestry_of(parent);
        self.live.insert(child, info);
    }

    /// `pid` executed a new program; the kernel read its login at the exec.
    pub fn on_exec(
        &mut self,
        pid: u32,
        ppid: u32,
        exe: Option<Arc<str>>,
        cmdline: Arc<[String]>,
        login: Login,
    ) {
        let ancestry = match self.live.get(&pid) {
            Some(p) if p.ppid == ppid && !p.ancestry.is_empty() => p.ancestry.clone(),
            _ => self.ancestry_of(ppid),
        };
        self.live.insert(
            pid,
            ProcInfo {
                ppid,
                exe,
                cmdline,
                login,
                ancestry,
            },
        );
    }

    /// `pid` is about to exec (at `at_ns`, monotonic): its current image
    /// is kept for what it did before ([`ProcessTable::as_of`]).
    pub fn keep_image(&mut self, pid: u32, at_ns: u64) {
        if let Some(info) = self.live.get(&pid) {
            self.before_exec.insert(pid, (at_ns, info.clone()));
        }
    }

    /// `pid` as it was at `at_ns` (monotonic): its image before its last
    /// exec when that exec came later, else as [`ProcessTable::get`].
    pub fn as_of(&self, pid: u32, at_ns: u64) -> Option<&ProcInfo> {
        match self.before_exec.get(&pid) {
            Some((exec_ns, before)) if at_ns < *exec_ns => Some(before),
            _ => self.get(pid),
        }
    }

    /// `pid` exited; it stays findable among the recently exited.
    pub fn on_exit(&mut self, pid: u32) {
        self.before_exec.remove(&pid);
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
    // Field 7 of stat is tty_nr: minor in bits 0-7 and 20-31, major in 8-19.
    let tty_nr: u32 = after.split_whitespace().nth(4)?.parse().ok()?;
    let (major, minor) = (
        (tty_nr >> 8) & 0xfff,
        (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00),
    );
    let loginuid = std::fs::read_to_string(dir.join("loginuid"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u32::MAX);
    Some(ProcInfo {
        ppid,
        exe,
        cmdline: cmdline.into(),
        login: Login::from_kernel(loginuid, monitor_common::tty_dev(major, minor)),
        ancestry: Arc::from(Vec::new()),
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
        let parent = table.get(me.ppid).expect("parent seeded");
        assert_eq!(me.ancestry.first(), parent.exe.as_ref());
    }

    #[test]
    fn what_a_process_did_before_an_exec_belongs_to_the_image_before() {
        let mut t = ProcessTable::default();
        let login = Login::from_kernel(1000, 0);
        t.on_exec(
            20,
            1,
            Some("/usr/bin/python3".into()),
            Arc::from([]),
            login.clone(),
        );
        t.keep_image(20, 5_000);
        t.on_exec(20, 1, Some("/usr/bin/curl".into()), Arc::from([]), login);
        let exe = |t: &ProcessTable, at| t.as_of(20, at).and_then(|p| p.exe.clone());
        assert_eq!(exe(&t, 4_999).as_deref(), Some("/usr/bin/python3"));
        assert_eq!(exe(&t, 5_000).as_deref(), Some("/usr/bin/curl"));
        t.on_exit(20);
        assert_eq!(
            exe(&t, 4_999).as_deref(),
            Some("/usr/bin/curl"),
            "forgotten at exit"
        );
    }

    #[test]
    fn fork_inherits_exec_replaces_exit_remembers() {
        let mut t = ProcessTable::default();
        let login = Login::from_kernel(1000, monitor_common::tty_dev(136, 3));
        t.on_exec(
            10,
            1,
            Some("/bin/sh".into()),
            vec!["sh".to_owned()].into(),
            login.clone(),
        );
        t.on_fork(10, 11);
        assert_eq!(t.get(11).unwrap().exe.as_deref(), Some("/bin/sh"));
        assert_eq!(t.get(11).unwrap().ppid, 10);
        assert_eq!(t.get(11).unwrap().login, login);
        t.on_exec(
            11,
            10,
            Some("/bin/cat".into()),
            vec!["cat".to_owned()].into(),
            login.clone(),
        );
        assert_eq!(&t.get(11).unwrap().cmdline[..], ["cat"]);
        assert_eq!(t.get(11).unwrap().login.tty.as_deref(), Some("pts/3"));
        assert_eq!(t.get(11).unwrap().login.uid, Some(1000));
        assert_eq!(&t.get(11).unwrap().ancestry[..], [Arc::from("/bin/sh")]);
        t.on_exit(11);
        assert_eq!(t.get(11).unwrap().exe.as_deref(), Some("/bin/cat"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ancestry_outlives_the_parent_and_is_bounded() {
        let mut t = ProcessTable::default();
        t.on_exec(
            2,
            1,
            Some("/usr/sbin/sshd".into()),
            Arc::from(Vec::new()),
            Login::default(),
        );
        // A chain: sshd -> 3 (bash) -> 4 (sudo) -> ... each a fork then an exec.
        for pid in 3..20u32 {
            t.on_fork(pid - 1, pid);
            let exe = format!("/bin/p{pid}");
            t.on_exec(
                pid,
                pid - 1,
                Some(exe.as_str().into()),
                Arc::from(Vec::new()),
                Login::default(),
            );
        }
        t.on_exit(18);
        t.on_fork(19, 30);
        let chain = &t.get(30).unwrap().ancestry;
        assert_eq!(chain.len(), ANCESTRY_MAX);
        assert_eq!(&*chain[0], "/bin/p19");
        assert_eq!(&*chain[1], "/bin/p18", "an exited parent stays named");
        let short = &t.get(5).unwrap().ancestry;
        assert_eq!(
            short.iter().map(|a| &**a).collect::<Vec<_>>(),
            ["/bin/p4", "/bin/p3", "/usr/sbin/sshd"]
        );
    }

    #[test]
    fn ancestry_is_masked_as_it_enters_the_table() {
        let mut t = ProcessTable::default();
        t.scrub_with(Arc::new(|s: &str| {
            s.replace("4111111111111111", "411111******1111")
        }));
        t.on_exec(
            2,
            1,
            Some("/tmp/cust_4111111111111111/run".into()),
            Arc::from(Vec::new()),
            Login::default(),
        );
        t.on_fork(2, 3);
        assert_eq!(
            &t.get(3).unwrap().ancestry[..],
            [Arc::from("/tmp/cust_411111******1111/run")]
        );
        // The executable itself stays as it is, for the role rules.
        assert_eq!(
            t.get(2).unwrap().exe.as_deref(),
            Some("/tmp/cust_4111111111111111/run")
        );
    }

    #[test]
    fn terminals_are_named_as_the_kernel_numbers_them() {
        assert_eq!(tty_name(136, 0), "pts/0");
        assert_eq!(tty_name(137, 2), "pts/258");
        assert_eq!(tty_name(4, 1), "tty1");
        assert_eq!(tty_name(4, 64), "ttyS0");
        assert_eq!(tty_name(5, 1), "console");
        assert_eq!(Login::from_kernel(u32::MAX, 0), Login::default());
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
