//! The shared vocabulary: what every stage after enrichment speaks. An
//! [`Access`] is an event seen as something done to data; a [`Judge`]
//! (in `judge/`) turns it into [`Alert`]s; a [`Record`] is what the store
//! keeps of it, with its [`Outcome`]; a [`Follower`] reads the stored
//! records after its own cursor. Stages import this module, never each other.
//!
//! [`Judge`]: crate::judge::Judge

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::event::{Detail, Event, PiiFinding};

/// The role of a process no rule matches.
pub const UNASSIGNED: &str = "unassigned";

/// What was done, as the record and the policy name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A file opened for reading.
    Read,
    /// A file opened for writing, created or truncated.
    Write,
    /// A file deleted.
    Delete,
    /// A file renamed.
    Rename,
    /// An outbound connection.
    Connect,
    /// An inbound connection.
    Accept,
    /// Bytes sent.
    Send,
    /// Bytes received.
    Receive,
    /// An analyst query, answered.
    Query,
    /// An analyst query, refused.
    QueryRefused,
    /// The daemon started recording.
    Start,
    /// The daemon stopped recording.
    Stop,
    /// The rules were reloaded (or a reload was refused).
    Reload,
    /// Old records were removed by the retention task.
    Retention,
    /// The daemon could not do its job for a while: the record could not
    /// be written, records were dropped, or it stopped uncleanly.
    Outage,
    /// The chain's head (seq and MAC), sent off the host by every sink so a
    /// later truncation of the local record can be proven.
    Heartbeat,
    /// Unusual access found by the anomaly detectors (`anomaly/`): the
    /// alert's `explain` holds the numbers and the evidence.
    Anomaly,
    /// A responder ran (`respond/`): `run` says which, on what, and how it went.
    Response,
    /// A file's bytes sent to a socket by the kernel (`sendfile`, or
    /// `splice` through a pipe): `object` is the file, `dest_host` the
    /// socket's `addr:port`; the bytes themselves are not seen.
    Transfer,
}

impl Action {
    /// The action's name (`read`, `query_refused`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Rename => "rename",
            Action::Connect => "connect",
            Action::Accept => "accept",
            Action::Send => "send",
            Action::Receive => "receive",
            Action::Query => "query",
            Action::QueryRefused => "query_refused",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Reload => "reload",
            Action::Retention => "retention",
            Action::Outage => "outage",
            Action::Heartbeat => "heartbeat",
            Action::Anomaly => "anomaly",
            Action::Response => "response",
            Action::Transfer => "transfer",
        }
    }

    /// True for actions that change data (need `write` permission).
    pub fn writes(self) -> bool {
        matches!(self, Action::Write | Action::Delete | Action::Rename)
    }

    /// True for actions on files (read, write, delete, rename).
    pub fn on_files(self) -> bool {
        matches!(
            self,
            Action::Read | Action::Write | Action::Delete | Action::Rename
        )
    }
}

/// An event seen as an access to data.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    /// What was done.
    pub action: Action,
    /// The path, or `addr:port` of the destination.
    pub object: String,
    /// The other end, for network actions.
    pub remote: Option<(IpAddr, u16)>,
    /// The data class, when the object or the payload is classified.
    pub class: Option<Arc<str>>,
    /// Bytes moved (payloads).
    pub bytes: Option<i64>,
    /// The call failed with this error.
    pub errno: Option<String>,
    /// The object is a path the kernel cut short and whose class could not
    /// be decided (its ancestors were too many to walk).
    pub unresolved: bool,
}

/// The rule of the alert on a send recorded but not scanned for PII (the
/// daemon was behind; see `PayloadInfo::inspected`).
pub const NOT_INSPECTED_RULE: &str = "send-not-inspected";

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Should be looked at today.
    Medium,
    /// Look now.
    High,
    /// Start incident response.
    Critical,
}

impl Severity {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "unknown severity `{s}` (low, medium, high, critical)"
                ))
            }
        })
    }
}

/// A rule broken by an access (or the daemon's own finding about itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// Which rule: `class-read`, `class-write`, `egress`, `pii-egress`,
    /// `query-refused`, or an anomaly detector's (`bulk-access`, ...).
    pub rule: String,
    /// What happened, for people (never a raw value).
    pub message: String,
    /// For an anomaly: the numbers behind it and the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Box<Explain>>,
}

impl Alert {
    /// An alert with no anomaly explanation.
    pub fn new(severity: Severity, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Alert {
            severity,
            rule: rule.into(),
            message: message.into(),
            explain: None,
        }
    }
}

/// Why an anomaly alert fired, in numbers: what was observed against what
/// is usual, over which window, and the records that show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explain {
    /// The value observed (accesses in the window, PII findings, ...).
    pub observed: f64,
    /// The usual value (the baseline), when the detector has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The value above which it alerts (baseline plus its deviation band).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The role's peers' figure (their median), when compared to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<f64>,
    /// The window the value is over (`10m`, `hour 03 weekday`, `ever`).
    pub window: String,
    /// Records that show it (sequence numbers; the first and last 16).
    pub evidence: Vec<u64>,
    /// Occurrences counted (records in the window).
    pub count: u64,
    /// When the first and last of them happened (RFC 3339).
    pub first: String,
    /// The last.
    pub last: String,
    /// Every detector that agreed (one incident, one alert).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detectors: Vec<String>,
    /// About the whole role (its volume, its PII rate), not one user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub role_wide: bool,
}

/// The alerts on one access folded into one: the most severe leads, the
/// others' messages follow it.
pub fn worst(mut alerts: Vec<Alert>) -> Option<Alert> {
    alerts.sort_by_key(|a| std::cmp::Reverse(a.severity));
    let mut it = alerts.into_iter();
    let first = it.next()?;
    let rest: Vec<String> = it.map(|a| a.message).collect();
    Some(if rest.is_empty() {
        first
    } else {
        Alert {
            message: format!("{}; {}", first.message, rest.join("; ")),
            ..first
        }
    })
}

/// How a responder's run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// It did what it was for.
    Done,
    /// It failed (see `detail`).
    Failed,
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It was not run (see `detail`: not enforcing, no session bus, at the
    /// concurrency limit, the target is gone or protected).
    Skipped,
}

/// One run of a responder, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The responder's name.
    pub responder: String,
    /// Its kind (`exec`, `webhook`, `kill`, `notify`, `handoff`).
    pub kind: String,
    /// The record it answered.
    pub alert_seq: u64,
    /// What it acted on (a pid, a URL, a user).
    pub target: String,
    /// How it went.
    pub outcome: RunOutcome,
    /// Exit status, HTTP status, what was killed, or why it was skipped;
    /// for `exec`, the first 4 KiB of its output.
    pub detail: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// Matching records folded into this run by storm control since the
    /// previous one.
    pub folded: u64,
}

/// What came of an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Allowed by policy.
    Allowed,
    /// Broke the policy (see `alert`).
    Violation,
    /// The call failed (see `errno`).
    Failed,
    /// Refused by the daemon (a query from a caller without access).
    Refused,
}

/// One record (the fields PCI DSS 10.2.2 asks for). Never holds a raw PII value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the chain (1, 2, ...); set when stored.
    pub seq: u64,
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// The same, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Host name.
    pub host: Arc<str>,
    /// Process id (the analyst's, for queries).
    pub pid: u32,
    /// Executable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<Arc<str>>,
    /// Task name.
    pub comm: String,
    /// Real uid.
    pub uid: u32,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Arc<str>>,
    /// The process's role.
    pub role: Arc<str>,
    /// What was done.
    pub action: Action,
    /// The path, `addr:port`, or the query.
    pub object: String,
    /// The destination's name (TLS SNI, HTTP Host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_host: Option<String>,
    /// The data class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Arc<str>>,
    /// Bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// PII found: masked and fingerprinted only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<PiiFinding>,
    /// What came of it.
    pub outcome: Outcome,
    /// The error, when the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// Why one of the daemon's own operations failed (a refused reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The alert, when it broke the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<Alert>,
    /// A string of the event was cut short by the kernel (a cut path starts
    /// with `…`, and is classified by its ancestors, not its text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The payload was taken from a TLS library before encryption (false:
    /// it went out as it is, in cleartext).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// For a `response` record: the responder's run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Box<Run>>,
    /// `io_uring` when the access was submitted through a ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Where the process came from (accesses made by a process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ProcessContext>,
    /// The same access made again and again, counted into this one record
    /// (see [`crate::repeat`]); `None` for a record of one access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<Repeats>,
}

pub use crate::event::Repeats;

impl Record {
    /// How many accesses the record stands for: 1 unless counted.
    pub fn count(&self) -> u64 {
        self.repeats.map_or(1, |r| r.count)
    }
}

/// A process's context: what started it, how, and in which unit, so "what
/// did this user run" has an answer in the record itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessContext {
    /// The parent process id.
    pub ppid: u32,
    /// The command line, its values masked by the detector, at most
    /// [`CMDLINE_MAX`] bytes (cut with `…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// The systemd unit (service or session scope).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Arc<str>>,
    /// Executables of its ancestors when it was created, parent first (at
    /// most [`crate::enrich::process::ANCESTRY_MAX`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<String>,
    /// The audit login uid: who logged in, whatever uid the process took
    /// since (`sudo`, `su`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_uid: Option<u32>,
    /// The login uid's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_user: Option<Arc<str>>,
    /// The controlling terminal (`pts/3`); none for services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<Arc<str>>,
}

/// The longest command line a record keeps, bytes.
pub const CMDLINE_MAX: usize = 512;

impl ProcessContext {
    /// The context of `p`.
    pub fn of(p: &crate::event::Process) -> Self {
        let cmdline = (!p.cmdline.is_empty()).then(|| {
            let mut line = p.cmdline.join(" ");
            if line.len() > CMDLINE_MAX {
                let mut cut = CMDLINE_MAX;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push('…');
            }
            line
        });
        Self {
            ppid: p.ppid,
            cmdline,
            unit: p.unit.clone(),
            ancestry: p.ancestry.iter().map(|a| a.to_string()).collect(),
            login_uid: p.login_uid,
            login_user: p.login_user.clone(),
            tty: p.tty.clone(),
        }
    }
}

impl Record {
    /// The record of `access` by `event`'s process, with the judges' alert if any.
    pub fn of_access(host: &Arc<str>, event: &Event, access: Access, alert: Option<Alert>) -> Self {
        let p = &event.process;
        let when = humantime::parse_rfc3339(&event.time).unwrap_or_else(|_| SystemTime::now());
        let (findings, dest_host, tls) = match &event.detail {
            Detail::Payload(info) => (info.findings.clone(), info.dest_host.clone(), info.tls),
            // A transfer names the socket it went to.
            Detail::File(_) => (
                Vec::new(),
                access.remote.map(|(ip, port)| match ip {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
                    ip => format!("{ip}:{port}"),
                }),
                false,
            ),
            _ => (Vec::new(), None, false),
        };
        let outcome = if alert.is_some() {
            Outcome::Violation
        } else if access.errno.is_some() {
            Outcome::Failed
        } else {
            Outcome::Allowed
        };
        Record {
            seq: 0,
            time: event.time.clone(),
            time_ns: unix_ns(when),
            host: host.clone(),
            pid: p.pid,
            exe: p.exe.clone(),
            comm: p.comm.clone(),
            uid: p.uid,
            user: p.user.clone(),
            role: p.role.clone().unwrap_or_else(|| Arc::from(UNASSIGNED)),
            action: access.action,
            object: access.object,
            dest_host,
            class: access.class,
            bytes: access.bytes,
            findings,
            outcome,
            errno: access.errno,
            alert,
            truncated: event.truncated,
            tls,
            run: None,
            via: event.via.clone(),
            reason: None,
            context: Some(ProcessContext::of(p)),
            repeats: match &event.detail {
                Detail::File(f) => f.repeats,
                _ => None,
            },
        }
    }

    /// `self` (the daemon's own identity) stamped with the current time.
    pub fn stamped(&self) -> Record {
        let now = SystemTime::now();
        Record {
            time: humantime::format_rfc3339_nanos(now).to_string(),
            time_ns: unix_ns(now),
            ..self.clone()
        }
    }
}

/// The wall clock now, ns since the Unix epoch (0 before it).
pub fn now_ns() -> u64 {
    unix_ns(SystemTime::now())
}

/// `t` in ns since the Unix epoch (0 before it).
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Why a follower could not handle a batch (it is retried).
pub type FollowError = Box<dyn std::error::Error + Send + Sync>;

/// A follower of the record (a SIEM sink, the responder runner, the
/// anomaly learner): handed every stored record, in order and in batches,
/// after its own durable cursor, on its own thread. Delivery is at least
/// once: a batch handled just before a crash may be handed again.
pub trait Follower: Send {
    /// A stable name: its cursor is kept under it, so a renamed follower
    /// starts over.
    fn name(&self) -> &str;

    /// Handles `records` (in seq order). `Ok` means they are done for good
    /// and the cursor moves past them; an error means the same records are
    /// offered again later (with backoff).
    fn handle(&mut self, records: &[Record]) -> Result<(), FollowError>;

    /// Whether a record, as the JSON it is stored as, may concern this
    /// follower. One that does not is passed over without being parsed
    /// (the cursor still moves past it). Must never say no to a record
    /// `handle` would act on; the default takes every record.
    fn wants(&self, _json: &[u8]) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_alert_leads() {
        let a = |s, m: &str| Alert {
            explain: None,
            severity: s,
            rule: "r".into(),
            message: m.into(),
        };
        let w = worst(vec![a(Severity::Medium, "m"), a(Severity::Critical, "c")]).unwrap();
        assert_eq!(
            (w.severity, w.message.as_str()),
            (Severity::Critical, "c; m")
        );
        assert!(worst(vec![]).is_none());
    }
}
