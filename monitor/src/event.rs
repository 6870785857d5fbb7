//! The enriched event: what the sensor saw, attributed to a process, a user
//! and a cgroup. This is the JSON printed by `monitor run --events-stdout`
//! (one object per line); `docs/events.md` documents every field, and the
//! field names are stable.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a path cut short by the kernel starts with instead of `/` (or, for
/// a cut user string, ends with): the components above the kept ones are
/// unknown, so a cut path is never shown, stored or classified as an
/// absolute path.
pub const CUT: &str = "…";

/// One observed action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Wall-clock time, RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// `CLOCK_MONOTONIC` nanoseconds when the kernel saw it.
    pub mono_ns: u64,
    /// Who did it.
    pub process: Process,
    /// What was done.
    #[serde(flatten)]
    pub detail: Detail,
    /// A path or argument list was cut short in the kernel.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// How it was done when not by its syscall: `io_uring` (submitted
    /// through a ring; an open's result is not known yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// The acting process, as known when the event happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// User name, when the id resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// Group name, when the id resolves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<Arc<str>>,
    /// Task name (at most 15 bytes).
    pub comm: String,
    /// Executable path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// Command line.
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    pub cmdline: Arc<[String]>,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// cgroup v2 path, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<Arc<str>>,
    /// systemd unit (the cgroup's last `.service` or `.scope`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
    /// The role it acts for (`rules/roles.toml`), once resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Arc<str>>,
    /// The audit login uid: who logged in, whatever uid the process took since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// The login uid's name, when it resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_user: Option<Arc<str>>,
    /// The controlling terminal (`pts/3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<Arc<str>>,
    /// Executables of its ancestors when it was created, parent first.
    #[serde(default, skip_serializing_if = "<[Arc<str>]>::is_empty")]
    pub ancestry: Arc<[Arc<str>]>,
}

/// What was done; serialized with a `kind` tag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    /// A file was opened, deleted, renamed or truncated.
    File(FileAccess),
    /// An outbound connection was attempted.
    Connect(NetConn),
    /// An inbound connection was accepted.
    Accept(NetConn),
    /// A program was executed.
    Exec(ExecInfo),
    /// A process started another.
    Fork(ForkInfo),
    /// A process ended.
    Exit(ExitInfo),
    /// Bytes went out on a socket, or into the TLS library.
    Payload(PayloadInfo),
}

/// Bytes a process sent or received: never the bytes themselves, only their size, a
/// keyed digest, and what the PII detector found in them (masked).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PayloadInfo {
    /// `write`, `writev`, `sendto`, `sendmsg`, `ssl_write` (TLS plaintext);
    /// inbound: `read`, `readv`, `recvfrom`, `recvmsg`, `ssl_read`.
    pub op: String,
    /// `out` (sent) or `in` (received; with `--capture-inbound`).
    pub direction: String,
    /// Plaintext taken from the TLS library.
    pub tls: bool,
    /// The socket fd (-1 when a TLS connection's socket is not known).
    pub fd: i32,
    /// Bytes the call moved.
    pub bytes: i64,
    /// Bytes captured (at most the capture limit).
    pub captured: u32,
    /// Fewer bytes captured than moved.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Stopped in the kernel before the TLS library encrypted it (a card
    /// number from a role that enforces): the caller was killed, nothing
    /// was sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevented: bool,
    /// The remote address, when the socket is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// The remote port, when the socket is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// The destination's name: TLS SNI, or the HTTP Host header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_host: Option<String>,
    /// Distinguishes connections that reuse an fd number.
    pub conn_id: u64,
    /// Offset of these bytes in the connection's outbound stream.
    pub stream_offset: u64,
    /// Keyed digest (HMAC-SHA256, host key) of the captured bytes.
    pub digest: String,
    /// PII found, offsets in the stream; values masked and fingerprinted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<PiiFinding>,
    /// False when the bytes were not scanned: the daemon was behind, and
    /// this connection was one of the busiest (a flood's). Such a send is
    /// recorded with a `send-not-inspected` alert.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub inspected: bool,
}

/// Serde's default for fields that are true unless said otherwise.
fn yes() -> bool {
    true
}

/// Such a field is left out when true.
fn is_true(b: &bool) -> bool {
    *b
}

/// A detector finding as it appears in events and records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PiiFinding {
    /// The PII type (`CREDIT_CARD`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Start offset.
    pub start: u64,
    /// End offset.
    pub end: u64,
    /// Confidence.
    pub score: f32,
    /// The value masked.
    pub masked: String,
    /// Keyed fingerprint of the value.
    pub fingerprint: monitor_pii::Fingerprint,
    /// Where in a record the value was (`object`, `dest_host`, `exe`); absent
    /// for a payload's findings, whose offsets are into the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<monitor_pii::Finding> for PiiFinding {
    fn from(f: monitor_pii::Finding) -> Self {
        Self {
            kind: f.kind.name().to_owned(),
            start: f.start as u64,
            end: f.end as u64,
            score: (f.score * 100.0).round() / 100.0,
            masked: f.masked.into(),
            fingerprint: f.fingerprint,
            field: None,
        }
    }
}

/// The file operations reported.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileOpName {
    /// `open`, `openat`, `openat2`.
    Open,
    /// `unlink`, `unlinkat`.
    Unlink,
    /// `rename`, `renameat`, `renameat2`.
    Rename,
    /// `truncate`, `ftruncate`.
    Truncate,
    /// `sendfile` of the file to a socket.
    Sendfile,
    /// `splice` of the file into a pipe, or out of such a pipe to a socket.
    Splice,
}

/// Where a file's bytes went without crossing user memory (`sendfile`,
/// `splice`): the bytes cannot be inspected, only named.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transfer {
    /// The socket's remote address; absent for a splice into a pipe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// The socket's remote port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// Bytes moved.
    pub bytes: i64,
    /// The pipe's id, for a splice (both ends share it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipe: Option<u64>,
}

/// A file syscall.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileAccess {
    /// Which operation.
    pub op: FileOpName,
    /// Absolute path: the file actually opened for a successful open (symlinks
    /// resolved), otherwise the caller's path made absolute.
    pub path: String,
    /// The rename target, absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_path: Option<String>,
    /// Raw flags (open flags, `AT_REMOVEDIR`, `RENAME_*`).
    pub flags: u64,
    /// Names of the open flags set (`O_WRONLY`, `O_CREAT`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flag_names: Vec<String>,
    /// Creation mode for an open with `O_CREAT`/`O_TMPFILE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// New length for a truncate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Syscall result: the new fd for an open, 0, or a negative errno.
    pub result: i64,
    /// Error name when it failed (`ENOENT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// Only for a path the kernel cut short (it starts with `…`): which
    /// classified directory the file is under, found by the kernel walking
    /// the file's ancestors (an index into the class rules' directories;
    /// 4294967295 when the walk could not finish).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub class_mark: u32,
    /// For `sendfile` and `splice`: where the bytes went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// For opens the kernel counted instead of sending (the same process,
    /// file and flags as an open sent before, within the repeat window):
    /// how many this event stands for, the first at the event's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
}

/// Accesses counted into one record or event: the same process, object,
/// action, outcome, role and class (for the kernel's count: the same
/// process, file and open flags), within the repeat window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repeats {
    /// How many accesses it stands for (the first at its time).
    pub count: u64,
    /// When the last of them happened, ns since the Unix epoch.
    pub last_ns: u64,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A connect or accept on an IPv4/IPv6 socket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetConn {
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// The other end's address: the destination of a connect, the peer of an accept.
    pub remote_addr: String,
    /// The other end's port.
    pub remote_port: u16,
    /// The socket fd the call was made on (the listener for accept).
    pub fd: i32,
    /// Syscall result: 0 or the new fd for accept, or a negative errno.
    pub result: i64,
    /// Error name when it failed (`ECONNREFUSED`, `EINPROGRESS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The connection's id: payload events on it carry the same `conn_id`.
    pub conn_id: u64,
}

/// A successful exec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExecInfo {
    /// The executable, absolute.
    pub exe: Option<Arc<str>>,
    /// The file name as passed to exec.
    pub filename: Option<String>,
    /// The argument vector.
    pub argv: Arc<[String]>,
}

/// A new process (threads are not reported).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ForkInfo {
    /// The new process's id.
    pub child_pid: u32,
}

/// A process exit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExitInfo {
    /// Exit status, when it exited normally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<u32>,
    /// The signal that ended it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<u32>,
}
