//! The query API: the daemon answers analysts on a Unix socket, one JSON
//! request and one JSON response per connection. The caller's credentials
//! come from the kernel (`SO_PEERCRED`, `SO_PEERGROUPS`): root and members
//! of the analyst group are answered, anyone else is refused. Every query,
//! answered or refused, is itself a record.

use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub mod limits;

use limits::{Limits, Refusal};

use crate::model::Action;
use crate::model::{Alert, Severity};
use crate::model::{Outcome, Record};
use crate::record::query::{Filter, Found, RoleSummary, RoleUsage, Total};
use crate::record::writer::RecordSender;
use crate::record::{Store, VerifyReport};

/// Where the daemon listens by default.
pub const DEFAULT_SOCKET: &str = "/run/monitor/query.sock";
/// The group whose members may query, by default.
pub const DEFAULT_ANALYST_GROUP: &str = "monitor-analysts";
/// The longest request accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// The most records one answer carries.
pub const MAX_LIMIT: usize = 10_000;

/// One analyst request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "kebab-case")]
pub enum Request {
    /// Records matching the filter.
    Events {
        /// Filters.
        filter: Filter,
    },
    /// Records that raised alerts.
    Alerts {
        /// Filters.
        filter: Filter,
    },
    /// Who touched a path (or anything under a directory ending in `/`).
    WhoAccessed {
        /// The path.
        path: String,
        /// Filters.
        filter: Filter,
    },
    /// A role's activity, summarised.
    Role {
        /// The role.
        role: String,
        /// Filters.
        filter: Filter,
    },
    /// Where a value went: the daemon fingerprints it and looks the
    /// fingerprint up; the value is never stored or logged.
    TracePii {
        /// The value.
        value: String,
        /// Its PII type, when the detector cannot tell on its own.
        kind: Option<String>,
        /// Filters.
        filter: Filter,
    },
    /// Walk the record's MAC chain, and check it against a head (seq and
    /// MAC) taken off the host earlier, when given.
    Verify {
        /// `SEQ:MAC` from a heartbeat the SIEM holds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<String>,
    },
    /// What the anomaly learner learned of a role (as it last saved it).
    Baseline {
        /// The role.
        role: String,
    },
    /// What a role actually used (classes, destinations, PII types), for a
    /// least-data policy.
    Usage {
        /// The role.
        role: String,
        /// Filters (the time range).
        filter: Filter,
    },
    /// The daemon's self-report, as it stands now.
    Status,
}

impl Request {
    /// How the query is written in the record (never the traced value).
    pub fn describe(&self, fingerprints: &[(String, String)]) -> String {
        let f = |f: &Filter| serde_json::to_string(f).unwrap_or_default();
        match self {
            Request::Events { filter } => format!("events {}", f(filter)),
            Request::Alerts { filter } => format!("alerts {}", f(filter)),
            Request::WhoAccessed { path, filter } => format!("who-accessed {path} {}", f(filter)),
            Request::Role { role, filter } => format!("role {role} {}", f(filter)),
            Request::TracePii { .. } => {
                let fps: Vec<String> = fingerprints
                    .iter()
                    .map(|(k, fp)| format!("{k}:{fp}"))
                    .collect();
                format!("trace-pii {}", fps.join(","))
            }
            Request::Verify { head } => match head {
                Some(h) => format!("verify --head {h}"),
                None => "verify".into(),
            },
            Request::Baseline { role } => format!("baseline {role}"),
            Request::Usage { role, filter } => format!("policy suggest {role} {}", f(filter)),
            Request::Status => "status".to_owned(),
        }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// Why the request failed or was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Matching records, newest first.
    #[serde(default)]
    pub records: Vec<Record>,
    /// For `role`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<RoleSummary>,
    /// For `verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
    /// For `baseline`: the learner's saved state for the role (`role`,
    /// `applied`, `learn_ns`, `baseline`, `incidents`); null when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<serde_json::Value>,
    /// For `policy suggest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<RoleUsage>,
    /// For `trace-pii`: the types and fingerprints looked up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<(String, String)>,
    /// For `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<crate::status::Status>,
    /// For record queries: how many matched, those past the limit included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<Total>,
}

impl Response {
    /// The answer carrying what a record query found.
    fn found(found: Found) -> Self {
        Self {
            records: found.records,
            total: Some(found.total),
            ..Self::default()
        }
    }
}

/// Who is asking, from the kernel.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Process id.
    pub pid: u32,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// What the server needs.
pub struct Server {
    /// The record, for reading.
    pub store: Arc<Store>,
    /// The record writer, for recording queries.
    pub records: RecordSender,
    /// The detector, for `trace-pii`.
    pub detector: Arc<monitor_pii::Detector>,
    /// The daemon's published self-report, for `monitor status`.
    pub status: Arc<std::sync::RwLock<crate::status::Status>>,
    /// The data classes of the rules in force at start, to tell an unknown
    /// `--class` from one nobody touched.
    pub classes: Arc<[String]>,
    /// The analyst group's name.
    pub analyst_group: String,
    /// A template record with this host's name.
    pub template: Record,
    /// Per-uid connection and rate limits, and folded refusals.
    pub limits: Limits,
}

/// Binds the socket (mode 0666: access is decided per caller, not by the file).
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            // Analysts must reach the socket: the directory is searchable.
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// The peer's supplementary groups (`SO_PEERGROUPS`).
fn peer_groups(stream: &UnixStream) -> Vec<u32> {
    let mut groups = vec![0 as libc::gid_t; 256];
    let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
    // SAFETY: the buffer is valid for `len` bytes; the kernel writes at most that.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERGROUPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Vec::new();
    }
    groups.truncate(len as usize / std::mem::size_of::<libc::gid_t>());
    groups
}

impl Server {
    /// Serves until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: UnixListener) {
        // Refusal windows that close are recorded as one record each.
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                me.record_folds();
                me.limits.tidy();
            }
        });
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = me.handle(stream).await {
                            tracing::debug!(error = %e, "query connection failed");
                        }
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "query socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Records, one per uid, the refusals of every window that has closed.
    fn record_folds(&self) {
        for (uid, fold) in self.limits.closed() {
            let total: u64 = fold.more.values().sum();
            let reasons: Vec<String> = fold
                .more
                .iter()
                .map(|(why, n)| format!("{n} {}", why.text()))
                .collect();
            let peer = Peer {
                pid: 0,
                uid,
                gid: 0,
                groups: Vec::new(),
            };
            self.record(
                &peer,
                Action::QueryRefused,
                format!(
                    "{total} more queries refused since {} ({})",
                    fold.since,
                    reasons.join(", ")
                ),
            );
        }
    }

    /// Counts a refusal; the first of a window is recorded at once.
    fn refuse(&self, peer: &Peer, why: Refusal) -> Response {
        if self
            .limits
            .refuse(peer.uid, why, &self.template.stamped().time)
        {
            self.record(
                peer,
                Action::QueryRefused,
                format!("query refused: {}", why.text()),
            );
        }
        Response {
            error: Some(match why {
                Refusal::NotAnalyst => format!(
                    "permission denied: uid {} is not root and not in group {}",
                    peer.uid, self.analyst_group
                ),
                other => format!("refused: {}; try again later", other.text()),
            }),
            ..Response::default()
        }
    }

    fn allowed(&self, peer: &Peer) -> bool {
        if peer.uid == 0 {
            return true;
        }
        let Ok(Some(group)) = nix::unistd::Group::from_name(&self.analyst_group) else {
            return false;
        };
        let gid = group.gid.as_raw();
        peer.gid == gid || peer.groups.contains(&gid)
    }

    async fn handle(&self, stream: UnixStream) -> std::io::Result<()> {
        let cred = stream.peer_cred()?;
        let peer = Peer {
            pid: cred.pid().unwrap_or(0) as u32,
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(&stream),
        };
        let (read, mut write) = stream.into_split();
        let Some(_conn) = self.limits.connect(peer.uid) else {
            let response = self.refuse(&peer, Refusal::TooManyConnections);
            return send(&mut write, &response).await;
        };
        let mut line = Vec::new();
        let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
        // A connection that says nothing is closed (it holds a slot of its uid's share).
        match tokio::time::timeout(limits::IDLE, reader.read_until(b'\n', &mut line)).await {
            Ok(read) => read?,
            Err(_) => return Ok(()),
        };
        let response = if !self.allowed(&peer) {
            self.refuse(&peer, Refusal::NotAnalyst)
        } else if !self.limits.take(peer.uid) {
            self.refuse(&peer, Refusal::RateLimited)
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response {
                    error: Some(format!("bad request: {e}")),
                    ..Response::default()
                },
                Ok(Request::Status) => Response {
                    status: Some(self.status.read().expect("status lock").clone()),
                    ..Response::default()
                },
                Ok(req) => {
                    let store = self.store.clone();
                    let detector = self.detector.clone();
                    let classes = self.classes.clone();
                    let r = req.clone();
                    let answer =
                        tokio::task::spawn_blocking(move || answer(&store, &detector, &classes, r))
                            .await
                            .unwrap_or_else(|e| Response {
                                error: Some(format!("query failed: {e}")),
                                ..Response::default()
                            });
                    self.record(&peer, Action::Query, req.describe(&answer.fingerprints));
                    answer
                }
            }
        };
        send(&mut write, &response).await
    }
}

/// Writes `response` as one line and closes the connection.
async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

impl Server {
    /// Records a query (or its refusal) by `peer`.
    fn record(&self, peer: &Peer, action: Action, object: String) {
        let proc_dir = PathBuf::from(format!("/proc/{}", peer.pid));
        let refused = action == Action::QueryRefused;
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(peer.uid))
            .ok()
            .flatten()
            .map(|u| Arc::from(u.name));
        let mut rec = Record {
            pid: peer.pid,
            exe: std::fs::read_link(proc_dir.join("exe"))
                .ok()
                .map(|p| Arc::from(p.to_string_lossy().as_ref())),
            comm: std::fs::read_to_string(proc_dir.join("comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_default(),
            uid: peer.uid,
            user: user.clone(),
            role: Arc::from(if refused {
                crate::model::UNASSIGNED
            } else {
                "analyst"
            }),
            action,
            object,
            outcome: if refused {
                Outcome::Refused
            } else {
                Outcome::Allowed
            },
            alert: refused.then(|| Alert {
                explain: None,
                severity: Severity::Medium,
                rule: "query-refused".into(),
                message: format!(
                    "uid {}{} asked the record without being an analyst",
                    peer.uid,
                    user.map(|u| format!(" ({u})")).unwrap_or_default()
                ),
            }),
            ..self.template.stamped()
        };
        // A path asked about may itself hold a value (`who-accessed cust_4539….csv`).
        crate::redact::redact_record(&self.detector, &mut rec);
        if self.records.send(rec).is_err() {
            tracing::error!("the record writer is gone; a query was NOT recorded");
        }
    }
}

/// Why a query that found nothing could never have found anything: a
/// role no record carries, a user this host does not have, a class the
/// rules do not define. An empty table would read as "nobody did it".
fn unknown_name(store: &Store, classes: &[String], f: &Filter) -> Option<String> {
    if let Some(role) = &f.role {
        let roles = store.recorded_roles().unwrap_or_default();
        if !roles.contains(role) {
            return Some(format!(
                "no record has role `{role}` (roles in the record: {})",
                roles.join(", ")
            ));
        }
    }
    if let Some(user) = &f.user {
        if matches!(nix::unistd::User::from_name(user), Ok(None)) {
            return Some(format!("this host has no user `{user}`"));
        }
    }
    if let Some(class) = &f.class {
        if !classes.contains(class) {
            return Some(format!(
                "no data class `{class}` in the rules (classes: {})",
                classes.join(", ")
            ));
        }
    }
    None
}

/// Answers one request from the store; an empty answer to a filter naming
/// something unknown is an error that says so.
fn answer(
    store: &Store,
    detector: &monitor_pii::Detector,
    classes: &[String],
    req: Request,
) -> Response {
    let filter = match &req {
        Request::Events { filter }
        | Request::Alerts { filter }
        | Request::WhoAccessed { filter, .. }
        | Request::TracePii { filter, .. } => Some(filter.clone()),
        Request::Role { role, filter } => Some(Filter {
            role: Some(role.clone()),
            ..filter.clone()
        }),
        _ => None,
    };
    let mut response = answer_request(store, detector, req);
    let empty =
        response.records.is_empty() && response.summary.as_ref().is_none_or(|s| s.records == 0);
    if response.error.is_none() && empty {
        if let Some(why) = filter.and_then(|f| unknown_name(store, classes, &f)) {
            response.error = Some(why);
        }
    }
    response
}

/// Answers one request from the store.
fn answer_request(store: &Store, detector: &monitor_pii::Detector, req: Request) -> Response {
    let clamp = |mut f: Filter| {
        f.limit = if f.limit == 0 {
            MAX_LIMIT
        } else {
            f.limit.min(MAX_LIMIT)
        };
        f
    };
    let result = match req {
        Request::Events { filter } => store.events(&clamp(filter), false).map(Response::found),
        Request::Alerts { filter } => store.events(&clamp(filter), true).map(Response::found),
        Request::WhoAccessed { path, filter } => store
            .who_accessed(&path, &clamp(filter))
            .map(Response::found),
        Request::Role { role, filter } => store.role_summary(&role, &filter).map(|s| Response {
            summary: Some(s),
            ..Response::default()
        }),
        Request::TracePii {
            value,
            kind,
            filter,
        } => {
            if let Some(k) = kind.as_deref().filter(|k| !detector.knows_type(k)) {
                return Response {
                    error: Some(format!(
                        "no PII type `{k}` (types: {})",
                        detector.type_names().join(", ")
                    )),
                    ..Response::default()
                };
            }
            let fingerprints = fingerprints(detector, &value, kind.as_deref());
            if fingerprints.is_empty() {
                return Response {
                    error: Some(
                        "the detector does not recognise this value; give its type with --type"
                            .into(),
                    ),
                    ..Response::default()
                };
            }
            let filter = clamp(filter);
            let mut records = Vec::new();
            let mut total = Total {
                count: 0,
                exact: fingerprints.len() == 1,
            };
            for (_, fp) in &fingerprints {
                match store.trace(fp, &filter) {
                    Ok(found) => {
                        // With several fingerprints a record may hold more
                        // than one: the largest count is the one sure bound.
                        total.count = total.count.max(found.total.count);
                        total.exact &= found.total.exact;
                        records.extend(found.records);
                    }
                    Err(e) => {
                        return Response {
                            error: Some(e.to_string()),
                            ..Response::default()
                        }
                    }
                }
            }
            records.sort_by_key(|r| std::cmp::Reverse(r.seq));
            records.dedup_by_key(|r| r.seq);
            records.truncate(filter.limit);
            total.count = total.count.max(records.len() as u64);
            Ok(Response {
                records,
                total: Some(total),
                fingerprints,
                ..Response::default()
            })
        }
        Request::Verify { head } => {
            let head = match head.as_deref().map(parse_head).transpose() {
                Ok(h) => h,
                Err(e) => {
                    return Response {
                        error: Some(e),
                        ..Response::default()
                    }
                }
            };
            store
                .verify_with_head(head.as_ref().map(|(s, m)| (*s, m.as_str())))
                .map(|v| Response {
                    verify: Some(v),
                    ..Response::default()
                })
        }
        Request::Baseline { role } => store.state("anomaly").map(|bytes| {
            let state: serde_json::Value = bytes
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let prefix = format!("{role}/");
            let incidents: serde_json::Map<String, serde_json::Value> = state["incidents"]["open"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Response {
                baseline: Some(serde_json::json!({
                    "role": role,
                    "applied": state["applied"],
                    "learn_ns": state["learn_ns"],
                    "baseline": state["baselines"]["roles"][&role],
                    "incidents": incidents,
                })),
                ..Response::default()
            }
        }),
        Request::Usage { role, filter } => store.role_usage(&role, &filter).map(|u| Response {
            usage: Some(u),
            ..Response::default()
        }),
        // Answered by the server itself, from the published status.
        Request::Status => Ok(Response::default()),
    };
    result.unwrap_or_else(|e| Response {
        error: Some(e.to_string()),
        ..Response::default()
    })
}

pub use crate::record::parse_head;

/// The (type, fingerprint) pairs `value` would be recorded under: the
/// detector's own findings in it, or the given type.
pub fn fingerprints(
    detector: &monitor_pii::Detector,
    value: &str,
    kind: Option<&str>,
) -> Vec<(String, String)> {
    if let Some(k) = kind {
        let kind = match monitor_pii::PiiType::from_name(k) {
            Some(t) => monitor_pii::Kind::Builtin(t),
            None => monitor_pii::Kind::Custom(Arc::from(k)),
        };
        return vec![(
            k.to_owned(),
            detector.fingerprint_of(&kind, value.as_bytes()).to_string(),
        )];
    }
    let mut out: Vec<(String, String)> = detector
        .scan(value.as_bytes())
        .into_iter()
        .map(|f| (f.kind.name().to_owned(), f.fingerprint.to_string()))
        .collect();
    out.dedup();
    out
}
