//! Enrich stage: turns a decoded kernel [`Record`] into an [`Event`] with
//! absolute paths, the process's executable and command line, user and
//! group names, cgroup path and systemd unit, and wall-clock time.

pub mod cgroups;
pub mod names;
pub mod path_ids;
pub mod paths;
pub mod process;
mod text;

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor_common::{FileOp, NetOp, COMM_LEN};
use nix::time::{clock_gettime, ClockId};

use crate::event::{
    Detail, Event, ExecInfo, ExitInfo, FileAccess, FileOpName, ForkInfo, NetConn, PayloadInfo,
    Process, Transfer,
};
use crate::wire::{Body, Record};
use cgroups::CgroupCache;
use names::NameCache;
use path_ids::PathIds;
use process::ProcessTable;

/// Converts `CLOCK_MONOTONIC` readings to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    /// `CLOCK_REALTIME - CLOCK_MONOTONIC`, in nanoseconds.
    offset_ns: i128,
}

/// A clock's reading now, ns (0 if it cannot be read).
fn clock_ns(id: ClockId) -> i128 {
    clock_gettime(id)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0)
}

/// `CLOCK_MONOTONIC` now, ns: the clock of events' `mono_ns`.
pub fn mono_now_ns() -> u64 {
    clock_ns(ClockId::CLOCK_MONOTONIC) as u64
}

impl WallClock {
    /// Reads both clocks now.
    pub fn now() -> Self {
        Self {
            offset_ns: clock_ns(ClockId::CLOCK_REALTIME) - clock_ns(ClockId::CLOCK_MONOTONIC),
        }
    }

    /// The clock under which monotonic `mono_ns` was wall-clock `unix_ns`
    /// (an event's two times).
    pub fn at(mono_ns: u64, unix_ns: u64) -> Self {
        Self {
            offset_ns: i128::from(unix_ns) - i128::from(mono_ns),
        }
    }

    /// The wall-clock time of a monotonic reading, RFC 3339 UTC.
    pub fn format(&self, mono_ns: u64) -> String {
        text::rfc3339_nanos(self.unix_ns(mono_ns))
    }

    /// The wall-clock time of a monotonic reading.
    pub fn system_time(&self, mono_ns: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_ns(mono_ns))
    }

    /// The wall-clock time of a monotonic reading, ns since the Unix epoch
    /// (0 before it).
    pub fn unix_ns(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.offset_ns).max(0) as u64
    }
}

/// Replaces every sensitive value the detector finds in `arg` by its mask:
/// command lines carry card numbers (`curl -d card=...`) as often as payloads do.
pub fn scrub(detector: &monitor_pii::Detector, arg: &str) -> String {
    let findings = detector.scan(arg.as_bytes());
    if findings.is_empty() {
        return arg.to_owned();
    }
    let mut out = String::with_capacity(arg.len());
    let mut at = 0;
    for f in findings {
        if f.start < at || !arg.is_char_boundary(f.start) || !arg.is_char_boundary(f.end) {
            continue;
        }
        out.push_str(&arg[at..f.start]);
        out.push_str(&f.masked);
        at = f.end;
    }
    out.push_str(&arg[at..]);
    out
}

/// The enrich stage's state.
pub struct Enricher {
    procs: ProcessTable,
    names: NameCache,
    cgroups: CgroupCache,
    clock: WallClock,
    scrubber: Option<Arc<monitor_pii::Detector>>,
    /// Pipes a file was spliced into, by process and pipe id: the file (and
    /// its class mark) a splice out of the pipe sends.
    pipes: HashMap<(u32, u64), (String, u32)>,
    /// Paths the kernel sends by id after the first open.
    path_ids: PathIds,
}

/// Pipes remembered at most (the oldest go first).
const MAX_PIPES: usize = 4096;

impl Enricher {
    /// A splice into a pipe is remembered; a splice out of it to a socket
    /// names the file that went in, not the pipe.
    fn follow_pipe(&mut self, tgid: u32, f: &mut FileAccess) {
        let Some(t) = &f.transfer else { return };
        let Some(pipe) = t.pipe.filter(|_| f.op == FileOpName::Splice) else {
            return;
        };
        if t.remote_addr.is_none() {
            if self.pipes.len() >= MAX_PIPES {
                self.pipes.clear();
            }
            self.pipes
                .insert((tgid, pipe), (f.path.clone(), f.class_mark));
        } else if let Some((path, mark)) = self.pipes.get(&(tgid, pipe)) {
            f.path = path.clone();
            f.class_mark = *mark;
        }
    }

    /// Seeds the process table from `/proc` and scans the cgroup hierarchy.
    /// With a `scrubber`, command lines are stored and reported with
    /// sensitive values masked.
    pub fn new(scrubber: Option<Arc<monitor_pii::Detector>>) -> Self {
        let mut procs = ProcessTable::from_proc(Path::new("/proc"));
        if let Some(d) = &scrubber {
            let d = d.clone();
            procs.scrub_with(Arc::new(move |a| scrub(&d, a)));
        }
        Self {
            procs,
            names: NameCache::default(),
            cgroups: CgroupCache::new(cgroups::CGROUP_ROOT),
            clock: WallClock::now(),
            scrubber,
            pipes: HashMap::new(),
            path_ids: PathIds::default(),
        }
    }

    /// True once after the table of paths by id turned over: the caller
    /// must then call `Sensor::forget_paths`.
    pub fn take_forget_paths(&mut self) -> bool {
        self.path_ids.take_forget()
    }

    /// Opens sent by a path id that was not known.
    pub fn paths_unknown(&self) -> u64 {
        self.path_ids.unknown()
    }

    /// Masks later command lines with `scrubber` (a reload).
    pub fn set_scrubber(&mut self, scrubber: Arc<monitor_pii::Detector>) {
        self.scrubber = Some(scrubber);
    }

    /// Re-reads the clocks (call periodically: wall time may be stepped).
    pub fn resync_clock(&mut self) {
        self.clock = WallClock::now();
    }

    /// Executables of `pid`'s ancestors, parent first (at most 64 steps).
    pub fn ancestors(&self, pid: u32) -> impl Iterator<Item = Arc<str>> + '_ {
        let mut next = self.procs.get(pid).map(|p| p.ppid);
        std::iter::from_fn(move || {
            let pid = next.filter(|&p| p > 1)?;
            let info = self.procs.get(pid)?;
            next = Some(info.ppid).filter(|&pp| pp != pid);
            Some(info.exe.clone().unwrap_or_else(|| Arc::from("")))
        })
        .take(64)
    }

    /// Live processes in the table.
    pub fn process_count(&self) -> usize {
        self.procs.len()
    }

    /// Enriches one record, updating the process table from lifecycle events.
    pub fn enrich(&mut self, rec: &Record<'_>) -> Event {
        let h = &rec.header;
        let mut detail_exe = None;
        let mut argv: Arc<[String]> = Arc::from(Vec::new());
        match rec.body {
            Body::Exec(x) => {
                if !rec.strs[0].is_none() {
                    detail_exe = Some(Arc::from(paths::from_components(&rec.strs[0])));
                }
                let mut args = process::split_args(rec.strs[2].bytes);
                if let Some(d) = &self.scrubber {
                    for a in &mut args {
                        *a = scrub(d, a);
                    }
                }
                argv = args.into();
                self.procs.keep_image(h.tgid, h.ktime_ns);
                self.procs.on_exec(
                    h.tgid,
                    h.ppid,
                    detail_exe.clone(),
                    argv.clone(),
                    process::Login::from_kernel(x.loginuid, x.tty),
                );
            }
            Body::Fork(f) => self.procs.on_fork(h.tgid, f.child_pid),
            _ => {}
        }
        let process = self.process(rec);
        let detail = match rec.body {
            Body::File(f) => {
                let mut access = file_access(rec, &f, &mut self.path_ids);
                if f.repeats > 0 {
                    access.repeats = Some(crate::event::Repeats {
                        count: f.repeats,
                        last_ns: self.clock.unix_ns(f.repeats_last_ns),
                    });
                }
                self.follow_pipe(h.tgid, &mut access);
                Detail::File(access)
            }
            Body::Net(n) => {
                let conn = net_conn(&n);
                match NetOp::from_u32(n.op) {
                    Some(NetOp::Accept) => Detail::Accept(conn),
                    _ => Detail::Connect(conn),
                }
            }
            Body::Exec(_) => Detail::Exec(ExecInfo {
                exe: detail_exe,
                filename: rec.strs[1].parts().next().map(paths::text),
                argv,
            }),
            Body::Fork(f) => Detail::Fork(ForkInfo {
                child_pid: f.child_pid,
            }),
            Body::Payload(p) => Detail::Payload(payload_info(&p)),
            Body::Exit(x) => {
                self.procs.on_exit(h.tgid);
                let signal = x.exit_code & 0x7f;
                Detail::Exit(ExitInfo {
                    exit_status: (signal == 0).then_some((x.exit_code >> 8) & 0xff),
                    signal: (signal != 0).then_some(signal),
                })
            }
        };
        Event {
            time: self.clock.format(h.ktime_ns),
            mono_ns: h.ktime_ns,
            process,
            detail,
            truncated: h.flags & monitor_common::FLAG_TRUNCATED != 0,
            via: match rec.body {
                Body::Payload(p) if p.flags & monitor_common::PAYLOAD_IO_URING != 0 => {
                    Some("io_uring".to_owned())
                }
                _ if h.flags & monitor_common::FLAG_IO_URING != 0 => Some("io_uring".to_owned()),
                _ => None,
            },
        }
    }

    fn process(&mut self, rec: &Record<'_>) -> Process {
        let h = &rec.header;
        // A record of counted opens arrives after the fact: the process
        // may have exec'd since its first one.
        let counted = matches!(rec.body, Body::File(f) if f.repeats > 0);
        let known = if counted {
            self.procs.as_of(h.tgid, h.ktime_ns)
        } else {
            self.procs.get(h.tgid)
        };
        let known = known.cloned().unwrap_or_default();
        let login_uid = known.login.uid;
        let cgroup = self.cgroups.get(h.cgroup_id);
        let comm_len = h.comm.iter().position(|&c| c == 0).unwrap_or(COMM_LEN);
        Process {
            pid: h.tgid,
            tid: h.pid,
            ppid: h.ppid,
            uid: h.uid,
            gid: h.gid,
            user: self.names.user(h.uid),
            group: self.names.group(h.gid),
            comm: paths::text(&h.comm[..comm_len]),
            exe: known.exe,
            cmdline: known.cmdline,
            cgroup_id: h.cgroup_id,
            unit: cgroup.as_ref().and_then(|c| c.unit.clone()),
            role: None,
            cgroup: cgroup.map(|c| c.path),
            login_uid,
            login_user: login_uid.and_then(|u| self.names.user(u)),
            tty: known.login.tty,
            ancestry: known.ancestry,
        }
    }
}

impl Default for Enricher {
    fn default() -> Self {
        Self::new(None)
    }
}

fn errno_name(result: i64) -> Option<String> {
    (result < 0).then(|| format!("{:?}", nix::errno::Errno::from_raw((-result) as i32)))
}

fn file_access(
    rec: &Record<'_>,
    f: &monitor_common::FileBody,
    path_ids: &mut PathIds,
) -> FileAccess {
    let op = FileOp::from_u32(f.op);
    // A successful open and ftruncate carry the file itself (symlinks resolved);
    // everything else carries the caller's path and the directory it is relative to.
    // An open through an io_uring is reported at submission: the caller's path.
    let submitted = rec.header.flags & monitor_common::FLAG_IO_URING != 0;
    let whole_file = match op {
        Some(FileOp::Openat | FileOp::Openat2) => f.ret >= 0 && !submitted,
        Some(FileOp::Ftruncate | FileOp::Sendfile | FileOp::Splice) => true,
        _ => false,
    } && (rec.strs[0].parts().next().is_some() || rec.strs[1].is_none());
    let path = if whole_file && f.path_id != 0 && rec.strs[0].is_none() {
        path_ids.path(f.path_id)
    } else if whole_file {
        let path = paths::from_components(&rec.strs[0]);
        if f.path_id != 0 {
            path_ids.learn(f.path_id, &path);
        }
        path
    } else {
        paths::resolve(&rec.strs[0], &rec.strs[1])
    };
    let (op_name, is_open) = match op {
        Some(FileOp::Openat | FileOp::Openat2) => (FileOpName::Open, true),
        Some(FileOp::Unlinkat) => (FileOpName::Unlink, false),
        Some(FileOp::Renameat2) => (FileOpName::Rename, false),
        Some(FileOp::Truncate | FileOp::Ftruncate) | None => (FileOpName::Truncate, false),
        Some(FileOp::Sendfile) => (FileOpName::Sendfile, false),
        Some(FileOp::Splice) => (FileOpName::Splice, false),
    };
    let transfer = matches!(op, Some(FileOp::Sendfile | FileOp::Splice)).then(|| {
        let to_socket = f.sock.family != 0 && f.sock.port != 0;
        let addr = to_socket.then(|| ip_of(f.sock.family, &f.sock.addr).1);
        Transfer {
            remote_addr: addr,
            remote_port: to_socket.then_some(f.sock.port),
            bytes: f.ret,
            pipe: (op == Some(FileOp::Splice)).then_some(f.mode),
        }
    });
    let creates = f.flags & (libc::O_CREAT as u64 | libc::O_TMPFILE as u64) != 0;
    FileAccess {
        op: op_name,
        path,
        new_path: (op_name == FileOpName::Rename)
            .then(|| paths::resolve(&rec.strs[2], &rec.strs[3])),
        flags: f.flags,
        flag_names: if is_open {
            open_flag_names(f.flags)
        } else {
            Vec::new()
        },
        mode: (is_open && creates).then_some(f.mode as u32),
        length: (op_name == FileOpName::Truncate).then_some(f.mode),
        result: f.ret,
        errno: errno_name(f.ret),
        class_mark: f.class_mark,
        transfer,
        repeats: None,
    }
}

/// Names of the open flags in `flags`, access mode first.
pub fn open_flag_names(flags: u64) -> Vec<String> {
    let flags = flags as i32;
    let access = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    };
    let mut names = vec![access.to_owned()];
    let known = [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_NOCTTY, "O_NOCTTY"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DSYNC, "O_DSYNC"),
        (libc::O_DIRECT, "O_DIRECT"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_NOFOLLOW, "O_NOFOLLOW"),
        (libc::O_NOATIME, "O_NOATIME"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
        (libc::O_PATH, "O_PATH"),
    ];
    for (bit, name) in known {
        if flags & bit == bit {
            names.push(name.to_owned());
        }
    }
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        names.push("O_TMPFILE".to_owned());
    }
    names
}

fn payload_info(p: &monitor_common::PayloadBody) -> PayloadInfo {
    use monitor_common::{PayloadOp, PAYLOAD_INBOUND, PAYLOAD_TLS, PAYLOAD_TRUNCATED};
    let op = match PayloadOp::from_u32(p.op) {
        Some(PayloadOp::Write) => "write",
        Some(PayloadOp::Writev) => "writev",
        Some(PayloadOp::Sendto) => "sendto",
        Some(PayloadOp::Sendmsg) => "sendmsg",
        Some(PayloadOp::SslWrite) => "ssl_write",
        Some(PayloadOp::Read) => "read",
        Some(PayloadOp::Readv) => "readv",
        Some(PayloadOp::Recvfrom) => "recvfrom",
        Some(PayloadOp::Recvmsg) => "recvmsg",
        Some(PayloadOp::SslRead) => "ssl_read",
        Some(PayloadOp::GoTlsWrite) => "go_tls_write",
        Some(PayloadOp::Sendmmsg) => "sendmmsg",
        None => "unknown",
    };
    let known = p.sock.family != 0 && p.sock.port != 0;
    let (_, addr) = ip_of(p.sock.family, &p.sock.addr);
    PayloadInfo {
        op: op.to_owned(),
        direction: if p.flags & PAYLOAD_INBOUND != 0 {
            "in"
        } else {
            "out"
        }
        .to_owned(),
        tls: p.flags & PAYLOAD_TLS != 0,
        prevented: p.flags & monitor_common::PAYLOAD_PREVENTED != 0,
        fd: p.fd,
        bytes: p.size,
        captured: p.captured,
        truncated: p.flags & PAYLOAD_TRUNCATED != 0,
        remote_addr: known.then_some(addr),
        remote_port: known.then_some(p.sock.port),
        dest_host: None,
        conn_id: p.sock.conn_id,
        stream_offset: 0,
        digest: String::new(),
        findings: Vec::new(),
        inspected: true,
    }
}

fn ip_of(family: u16, a: &[u8; 16]) -> (&'static str, String) {
    if family == libc::AF_INET6 as u16 {
        ("ipv6", Ipv6Addr::from(*a).to_string())
    } else {
        ("ipv4", text::ipv4([a[0], a[1], a[2], a[3]]))
    }
}

fn net_conn(n: &monitor_common::NetBody) -> NetConn {
    let (family, remote_addr) = ip_of(n.family, &n.addr);
    NetConn {
        family: family.to_owned(),
        remote_addr,
        remote_port: n.port,
        fd: n.fd,
        result: n.ret,
        errno: errno_name(n.ret),
        conn_id: n.conn_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_values_in_arguments() {
        let d = monitor_pii::Detector::new(
            monitor_pii::PiiRules::defaults(),
            monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
        );
        assert_eq!(
            scrub(&d, "card=4111 1111 1111 1111&ssn=123-45-6789"),
            "card=411111******1111&ssn=***-**-6789"
        );
        assert_eq!(scrub(&d, "--verbose"), "--verbose");
    }

    #[test]
    fn open_flags_are_named() {
        let f = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC) as u64;
        assert_eq!(
            open_flag_names(f),
            ["O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"]
        );
        assert_eq!(open_flag_names(0), ["O_RDONLY"]);
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(-2).as_deref(), Some("ENOENT"));
        assert_eq!(errno_name(3), None);
    }

    #[test]
    fn wall_clock_is_close_to_now() {
        let clock = WallClock::now();
        let mono = clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap();
        let mono_ns = mono.tv_sec() as u64 * 1_000_000_000 + mono.tv_nsec() as u64;
        let t = clock.system_time(mono_ns);
        let skew = SystemTime::now().duration_since(t).unwrap_or_default();
        assert!(skew < Duration::from_secs(1), "skew {skew:?}");
        assert!(clock.format(mono_ns).ends_with('Z'));
    }
}
