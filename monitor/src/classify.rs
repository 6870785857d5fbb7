//! Classify: what an event did to which data. File paths map to data
//! classes by glob (`rules/classes.toml`, first match wins); payloads take
//! the class of the most sensitive PII type found in them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use globset::GlobSet;
use monitor_pii::{PiiRules, PiiType, RulesError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::event::{Detail, Event, FileOpName};
use crate::rules::{glob, parse_toml};

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
        }
    }

    /// True for actions that change data (need `write` permission).
    pub fn writes(self) -> bool {
        matches!(self, Action::Write | Action::Delete | Action::Rename)
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClasses {
    #[serde(default)]
    path: Vec<RawPath>,
    #[serde(default)]
    pii: HashMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    glob: Spanned<String>,
    class: Spanned<String>,
}

/// The validated data classes.
#[derive(Debug)]
pub struct ClassRules {
    globs: GlobSet,
    path_class: Vec<Arc<str>>,
    pii_class: HashMap<String, Arc<str>>,
    names: Vec<Arc<str>>,
}

fn class_name(src: &str, file: &str, s: &Spanned<String>) -> Result<Arc<str>, RulesError> {
    let n = s.get_ref();
    let ok = !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(Arc::from(n.as_str()))
    } else {
        Err(RulesError::at(
            src,
            file,
            s.span().start,
            format!("class name `{n}` must be lowercase letters, digits and `-`"),
        ))
    }
}

impl ClassRules {
    /// Parses and validates `classes.toml`; PII type names are checked against `pii`.
    pub fn parse(src: &str, file: &str, pii: &PiiRules) -> Result<Self, RulesError> {
        let raw: RawClasses = parse_toml(src, file)?;
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut intern = |c: Arc<str>| {
            if let Some(known) = names.iter().find(|n| **n == c) {
                known.clone()
            } else {
                names.push(c.clone());
                c
            }
        };
        let mut set = globset::GlobSetBuilder::new();
        let mut path_class = Vec::new();
        for p in &raw.path {
            if !p.glob.get_ref().starts_with('/') {
                return Err(RulesError::at(
                    src,
                    file,
                    p.glob.span().start,
                    format!("path glob `{}` must be absolute", p.glob.get_ref()),
                ));
            }
            set.add(glob(src, file, &p.glob)?);
            path_class.push(intern(class_name(src, file, &p.class)?));
        }
        let globs = set
            .build()
            .map_err(|e| RulesError::at(src, file, 0, e.to_string()))?;
        let mut pii_class = HashMap::new();
        for (t, c) in &raw.pii {
            if !pii.knows_type(t.get_ref()) {
                return Err(RulesError::at(
                    src,
                    file,
                    t.span().start,
                    format!("unknown PII type `{}`", t.get_ref()),
                ));
            }
            pii_class.insert(t.get_ref().clone(), intern(class_name(src, file, c)?));
        }
        Ok(Self {
            globs,
            path_class,
            pii_class,
            names,
        })
    }

    /// True when some rule names class `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| &**n == name)
    }

    /// The class names defined.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// The class of `path` (first matching rule), if any.
    pub fn of_path(&self, path: &str) -> Option<Arc<str>> {
        if self.path_class.is_empty() {
            return None;
        }
        self.globs
            .matches(path)
            .into_iter()
            .min()
            .map(|i| self.path_class[i].clone())
    }

    /// The class of PII type `name`, if mapped.
    pub fn of_pii(&self, name: &str) -> Option<Arc<str>> {
        self.pii_class.get(name).cloned()
    }

    /// Classifies an event; `None` for events that touch no data
    /// (process lifecycle).
    pub fn classify(&self, event: &Event) -> Option<Access> {
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
                let class = self
                    .of_path(&f.path)
                    .or_else(|| f.new_path.as_deref().and_then(|p| self.of_path(p)));
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
                    .min_by_key(|f| {
                        PiiType::from_name(&f.kind).map_or(usize::MAX, PiiType::priority)
                    })
                    .and_then(|f| self.of_pii(&f.kind));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> Result<ClassRules, RulesError> {
        ClassRules::parse(src, "classes.toml", &PiiRules::defaults())
    }

    #[test]
    fn first_matching_path_rule_wins() {
        let c = rules(
            r#"
[[path]]
glob = "/srv/cardholder/public/*"
class = "public-docs"
[[path]]
glob = "/srv/cardholder/**"
class = "cardholder-data"
[pii]
CREDIT_CARD = "cardholder-data"
"#,
        )
        .unwrap();
        assert_eq!(
            c.of_path("/srv/cardholder/2026/cards.csv").as_deref(),
            Some("cardholder-data")
        );
        assert_eq!(
            c.of_path("/srv/cardholder/public/faq.txt").as_deref(),
            Some("public-docs")
        );
        assert_eq!(c.of_path("/srv/other"), None);
        assert_eq!(c.of_pii("CREDIT_CARD").as_deref(), Some("cardholder-data"));
        assert!(c.knows("public-docs") && !c.knows("nope"));
    }

    #[test]
    fn broken_classes_are_refused_with_a_position() {
        let cases = [
            (
                "[[path]]\nglob = \"/a/{b\"\nclass = \"x\"\n",
                2,
                8,
                "bad glob",
            ),
            (
                "[[path]]\nglob = \"srv/**\"\nclass = \"x\"\n",
                2,
                8,
                "must be absolute",
            ),
            (
                "[pii]\nCREDIT_KARD = \"x\"\n",
                2,
                1,
                "unknown PII type `CREDIT_KARD`",
            ),
            (
                "[[path]]\nglob = \"/a\"\nclas = \"x\"\n",
                3,
                1,
                "unknown field `clas`",
            ),
            (
                "[[path]]\nglob = \"/a\"\nclass = \"Card Data\"\n",
                3,
                9,
                "must be lowercase",
            ),
        ];
        for (src, line, col, msg) in cases {
            let e = rules(src).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }
}
