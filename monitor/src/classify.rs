//! Classify: what an event did to which data. File paths map to data
//! classes by glob (`rules/classes.toml`, first match wins); payloads take
//! the class of the most sensitive PII type found in them.

use std::net::IpAddr;

use monitor_common::{ClassDirKey, MARK_UNRESOLVED};
use monitor_pii::PiiType;

use crate::event::{Detail, Event, FileOpName, CUT};
use crate::model::{Access, Action};
use crate::rules::classes::ClassRules;

/// Classifies an event; `None` for events that touch no data
/// (process lifecycle).
pub fn classify(classes: &ClassRules, event: &Event) -> Option<Access> {
    let net = |addr: &str, port: u16| {
        let ip = addr.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
        (ip.map(|ip| (ip, port)), format!("{addr}:{port}"))
    };
    Some(match &event.detail {
        Detail::File(f) => {
            // A file sent to a socket by the kernel; a splice into a pipe is
            // only remembered (the splice out of it is the transfer).
            let transfer = f
                .transfer
                .as_ref()
                .map(|t| match (&t.remote_addr, t.remote_port) {
                    (Some(a), Some(port)) => Some(net(a, port)),
                    _ => None,
                });
            if matches!(transfer, Some(None)) {
                return None;
            }
            let action = match f.op {
                FileOpName::Sendfile | FileOpName::Splice => Action::Transfer,
                FileOpName::Open
                    if f.flags
                        & (libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC | libc::O_CREAT)
                            as u64
                        != 0 =>
                {
                    Action::Write
                }
                FileOpName::Open => Action::Read,
                FileOpName::Truncate => Action::Write,
                FileOpName::Unlink => Action::Delete,
                FileOpName::Rename => Action::Rename,
            };
            // A path the kernel cut short is classified by the classified
            // directory the kernel found above it, never by its kept text.
            let of = |p: &str| {
                if p.starts_with('/') && !p.ends_with(CUT) {
                    classes.of_path(p)
                } else {
                    classes.of_mark(f.class_mark)
                }
            };
            let class = of(&f.path).or_else(|| f.new_path.as_deref().and_then(of));
            let unresolved = f.class_mark == MARK_UNRESOLVED && class.is_none();
            Access {
                action,
                object: f.path.clone(),
                remote: transfer.flatten().and_then(|(remote, _)| remote),
                class,
                bytes: f.transfer.as_ref().map(|t| t.bytes),
                errno: f.errno.clone(),
                unresolved,
            }
        }
        Detail::Connect(c) | Detail::Accept(c) => {
            let (remote, object) = net(&c.remote_addr, c.remote_port);
            Access {
                action: if matches!(event.detail, Detail::Connect(_)) {
                    Action::Connect
                } else {
                    Action::Accept
                },
                object,
                remote,
                class: None,
                bytes: None,
                errno: c.errno.clone(),
                unresolved: false,
            }
        }
        Detail::Payload(p) => {
            let (remote, object) = match (&p.remote_addr, p.remote_port) {
                (Some(a), Some(port)) => net(a, port),
                _ => (
                    None,
                    p.dest_host.clone().unwrap_or_else(|| "unknown".into()),
                ),
            };
            let class = p
                .findings
                .iter()
                .min_by_key(|f| PiiType::from_name(&f.kind).map_or(usize::MAX, PiiType::priority))
                .and_then(|f| classes.of_pii(&f.kind));
            Access {
                action: if p.direction == "in" {
                    Action::Receive
                } else {
                    Action::Send
                },
                object,
                remote,
                class,
                bytes: Some(p.bytes),
                errno: None,
                unresolved: false,
            }
        }
        Detail::Exec(_) | Detail::Fork(_) | Detail::Exit(_) => return None,
    })
}

/// The kernel's keys for the class rules' anchor directories
/// ([`ClassRules::anchors`]) that exist now, with their marks: the map the
/// kernel reads to classify a path it cut short. Directories created later
/// are picked up at the next refresh.
pub fn class_dirs(classes: &ClassRules) -> Vec<(ClassDirKey, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out: Vec<(ClassDirKey, u32)> = Vec::new();
    for (dir, mark) in classes.anchors() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        // The kernel numbers devices MAJOR << 20 | MINOR.
        let dev = (libc::major(meta.dev()) << 20) | libc::minor(meta.dev());
        let key = ClassDirKey {
            dev,
            _pad: 0,
            ino: meta.ino(),
        };
        // First rule wins, as for whole paths.
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, mark));
        }
    }
    out
}
