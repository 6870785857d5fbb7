//! Classify: what an event did to which data. File paths map to data
//! classes by glob (`rules/classes.toml`, first match wins); payloads take
//! the class of the most sensitive PII type found in them.

use std::net::IpAddr;

use monitor_pii::PiiType;

use crate::event::{Detail, Event, FileOpName};
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
            let action = match f.op {
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
            let class = classes
                .of_path(&f.path)
                .or_else(|| f.new_path.as_deref().and_then(|p| classes.of_path(p)));
            Access {
                action,
                object: f.path.clone(),
                remote: None,
                class,
                bytes: None,
                errno: f.errno.clone(),
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
            }
        }
        Detail::Exec(_) | Detail::Fork(_) | Detail::Exit(_) => return None,
    })
}
