//! Policy: what each role may do (`rules/policy.toml`), and the verdict on
//! an access. A role may read and write the classes it lists, connect to
//! the destinations it lists (when it lists any), and never send the PII
//! types it denies, globally or to one destination. A role without an entry
//! may touch no classified data and has no egress limit.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use monitor_pii::{PiiRules, RulesError};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::classify::{Access, Action, ClassRules};
use crate::event::PiiFinding;
use crate::roles::RoleRules;
use crate::rules::parse_toml;

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

/// A broken policy rule, found on an access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// Which rule: `class-read`, `class-write`, `egress`, `pii-egress`, `query-refused`.
    pub rule: String,
    /// What happened, for people (never a raw value).
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    role: BTreeMap<Spanned<String>, RawRolePolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRolePolicy {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
    egress: Option<Vec<RawEgress>>,
    #[serde(default)]
    deny_pii: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    to: Spanned<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    deny_pii: Vec<Spanned<String>>,
}

/// One allowed destination.
#[derive(Debug)]
struct Egress {
    to: IpNet,
    ports: Vec<u16>,
    deny_pii: Vec<String>,
}

/// What one role may do.
#[derive(Debug, Default)]
struct RolePolicy {
    read: Vec<String>,
    write: Vec<String>,
    egress: Option<Vec<Egress>>,
    deny_pii: Vec<String>,
}

/// The validated policy.
#[derive(Debug)]
pub struct Policy {
    roles: BTreeMap<String, RolePolicy>,
    none: RolePolicy,
}

impl Policy {
    /// Parses `policy.toml`, checking role, class and PII type names against the other files.
    pub fn parse(
        src: &str,
        file: &str,
        roles: &RoleRules,
        classes: &ClassRules,
        pii: &PiiRules,
    ) -> Result<Self, RulesError> {
        let raw: RawPolicy = parse_toml(src, file)?;
        let at = |s: &Spanned<String>, m: String| RulesError::at(src, file, s.span().start, m);
        let class_list = |list: &[Spanned<String>]| {
            list.iter()
                .map(|c| {
                    if classes.knows(c.get_ref()) {
                        Ok(c.get_ref().clone())
                    } else {
                        Err(at(
                            c,
                            format!(
                                "unknown data class `{}` (classes.toml defines: {})",
                                c.get_ref(),
                                classes.names().collect::<Vec<_>>().join(", ")
                            ),
                        ))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let pii_list = |list: &[Spanned<String>]| {
            list.iter()
                .map(|t| {
                    if pii.knows_type(t.get_ref()) {
                        Ok(t.get_ref().clone())
                    } else {
                        Err(at(t, format!("unknown PII type `{}`", t.get_ref())))
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut out = BTreeMap::new();
        for (name, r) in &raw.role {
            if !roles.knows(name.get_ref()) {
                let known: Vec<&str> = roles.names().collect();
                return Err(at(
                    name,
                    format!(
                        "unknown role `{}` (roles.toml defines: {}, plus unassigned)",
                        name.get_ref(),
                        known.join(", ")
                    ),
                ));
            }
            let egress = match &r.egress {
                None => None,
                Some(list) => Some(
                    list.iter()
                        .map(|e| {
                            let to = parse_net(e.to.get_ref()).ok_or_else(|| {
                                at(
                                    &e.to,
                                    format!(
                                        "bad destination `{}` (expected an address or CIDR)",
                                        e.to.get_ref()
                                    ),
                                )
                            })?;
                            Ok(Egress {
                                to,
                                ports: e.ports.clone(),
                                deny_pii: pii_list(&e.deny_pii)?,
                            })
                        })
                        .collect::<Result<Vec<_>, RulesError>>()?,
                ),
            };
            out.insert(
                name.get_ref().clone(),
                RolePolicy {
                    read: class_list(&r.read)?,
                    write: class_list(&r.write)?,
                    egress,
                    deny_pii: pii_list(&r.deny_pii)?,
                },
            );
        }
        Ok(Self {
            roles: out,
            none: RolePolicy::default(),
        })
    }

    /// The alerts `access` by a process in `role` raises (none when allowed).
    pub fn judge(&self, role: &str, access: &Access, findings: &[PiiFinding]) -> Vec<Alert> {
        let p = self.roles.get(role).unwrap_or(&self.none);
        let mut alerts = Vec::new();
        let sensitive = |class: &str| matches!(class, "cardholder-data" | "credentials");
        match access.action {
            Action::Read | Action::Write | Action::Delete | Action::Rename => {
                let Some(class) = &access.class else {
                    return alerts;
                };
                let (allowed, rule, verb) = if access.action.writes() {
                    (&p.write, "class-write", "change")
                } else {
                    (&p.read, "class-read", "read")
                };
                if !allowed.iter().any(|c| **c == **class) {
                    let tried = if access.errno.is_some() {
                        " (attempt failed)"
                    } else {
                        ""
                    };
                    alerts.push(Alert {
                        severity: if sensitive(class) {
                            Severity::High
                        } else {
                            Severity::Medium
                        },
                        rule: rule.into(),
                        message: format!("role {role} may not {verb} {class} data{tried}"),
                    });
                }
            }
            Action::Connect => {
                if let (Some(list), Some((ip, port))) = (&p.egress, access.remote) {
                    if find_egress(list, ip, port).is_none() {
                        alerts.push(Alert {
                            severity: Severity::Medium,
                            rule: "egress".into(),
                            message: format!("role {role} may not connect to {}", access.object),
                        });
                    }
                }
            }
            Action::Send => {
                let dest = match (&p.egress, access.remote) {
                    (Some(list), Some((ip, port))) => find_egress(list, ip, port),
                    _ => None,
                };
                let mut denied: Vec<&str> = Vec::new();
                for f in findings {
                    let by_dest = dest.is_some_and(|d| d.deny_pii.contains(&f.kind));
                    if (p.deny_pii.contains(&f.kind) || by_dest)
                        && !denied.contains(&f.kind.as_str())
                    {
                        denied.push(&f.kind);
                    }
                }
                if !denied.is_empty() {
                    let forbidden_at_rest = denied
                        .iter()
                        .any(|k| matches!(*k, "CVV" | "CARD_TRACK_DATA" | "PRIVATE_KEY"));
                    alerts.push(Alert {
                        severity: if forbidden_at_rest {
                            Severity::Critical
                        } else {
                            Severity::High
                        },
                        rule: "pii-egress".into(),
                        message: format!(
                            "role {role} sent {} to {}",
                            denied.join(", "),
                            access.object
                        ),
                    });
                }
            }
            _ => {}
        }
        alerts
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn find_egress(list: &[Egress], ip: IpAddr, port: u16) -> Option<&Egress> {
    list.iter()
        .find(|e| e.to.contains(&ip) && (e.ports.is_empty() || e.ports.contains(&port)))
}

/// The policy's verdict on one access: the alert, if any, most severe first.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

    fn access(
        action: Action,
        object: &str,
        class: Option<&str>,
        remote: Option<(&str, u16)>,
    ) -> Access {
        Access {
            action,
            object: object.into(),
            remote: remote.map(|(a, p)| (a.parse().unwrap(), p)),
            class: class.map(std::sync::Arc::from),
            bytes: None,
            errno: None,
        }
    }

    fn finding(kind: &str) -> PiiFinding {
        PiiFinding {
            kind: kind.into(),
            start: 0,
            end: 16,
            score: 1.0,
            masked: "411111******1111".into(),
            fingerprint: "0123456789abcdef0123456789abcdef".parse().unwrap(),
        }
    }

    #[test]
    fn shipped_policy_verdicts() {
        let rules = RuleSet::shipped();
        let p = &rules.policy;
        let card = access(
            Action::Read,
            "/srv/cardholder/a",
            Some("cardholder-data"),
            None,
        );
        assert!(p.judge("billing-agent", &card, &[]).is_empty());
        let a = p.judge("support-agent", &card, &[]);
        assert_eq!(
            (a[0].rule.as_str(), a[0].severity),
            ("class-read", Severity::High)
        );
        assert_eq!(p.judge("unassigned", &card, &[]).len(), 1);
        let w = access(
            Action::Write,
            "/srv/cardholder/a",
            Some("cardholder-data"),
            None,
        );
        assert_eq!(p.judge("billing-agent", &w, &[])[0].rule, "class-write");

        let api = access(
            Action::Send,
            "203.0.113.7:443",
            None,
            Some(("203.0.113.7", 443)),
        );
        assert!(p
            .judge("chatbot", &api, &[finding("EMAIL_ADDRESS")])
            .is_empty());
        let a = p.judge(
            "chatbot",
            &api,
            &[finding("CREDIT_CARD"), finding("CREDIT_CARD")],
        );
        assert_eq!(a[0].rule, "pii-egress");
        assert_eq!(
            a[0].message,
            "role chatbot sent CREDIT_CARD to 203.0.113.7:443"
        );
        // Destination-specific denial.
        let a = p.judge("ai-assistant", &api, &[finding("EMAIL_ADDRESS")]);
        assert_eq!(a[0].severity, Severity::High);
        let a = p.judge("chatbot", &api, &[finding("CVV")]);
        assert_eq!(a[0].severity, Severity::Critical);

        let ok = access(
            Action::Connect,
            "203.0.113.7:443",
            None,
            Some(("203.0.113.7", 443)),
        );
        assert!(p.judge("chatbot", &ok, &[]).is_empty());
        let bad = access(
            Action::Connect,
            "198.51.100.1:443",
            None,
            Some(("198.51.100.1", 443)),
        );
        assert_eq!(p.judge("chatbot", &bad, &[])[0].rule, "egress");
        // No egress list: any destination.
        assert!(p.judge("billing-agent", &bad, &[]).is_empty());
    }

    #[test]
    fn broken_policy_is_refused_with_a_position() {
        let rules = RuleSet::shipped();
        let cases = [
            ("[role.nobody]\nread = []\n", 1, 7, "unknown role `nobody`"),
            (
                "[role.chatbot]\nread = [\"cardholder\"]\n",
                2,
                9,
                "unknown data class `cardholder`",
            ),
            (
                "[role.chatbot]\ndeny_pii = [\"CARD\"]\n",
                2,
                13,
                "unknown PII type `CARD`",
            ),
            (
                "[role.chatbot]\negress = [{ to = \"10.0.0.0/33\" }]\n",
                2,
                18,
                "bad destination",
            ),
            (
                "[role.chatbot]\negres = []\n",
                2,
                1,
                "unknown field `egres`",
            ),
            (
                "[role.chatbot]\negress = [{ to = \"10.0.0.0/8\", ports = [70000] }]\n",
                2,
                41,
                "expected u16",
            ),
            ("[role.chatbot\n", 1, 14, ""),
        ];
        for (src, line, col, msg) in cases {
            let e = Policy::parse(src, "policy.toml", &rules.roles, &rules.classes, &rules.pii)
                .unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }

    #[test]
    fn worst_alert_leads() {
        let a = |s, m: &str| Alert {
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
