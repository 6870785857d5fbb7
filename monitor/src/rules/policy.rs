//! `policy.toml`: what each role may do. A role may read and write the
//! classes it lists, send the files of the classes its `transfer` lists to
//! a socket whole (`sendfile`, `splice`), connect to the destinations it lists (when it lists
//! any), and never send the PII types it denies, globally or to one
//! destination. A role without an entry may touch no classified data and
//! has no egress limit. The verdict itself is the policy judge's
//! (`judge/policy.rs`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use monitor_pii::{PiiRules, RulesError};
use serde::Deserialize;
use toml::Spanned;

use super::classes::ClassRules;
use super::parse_toml;
use super::roles::RoleRules;

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
    #[serde(default)]
    transfer: Vec<Spanned<String>>,
    egress: Option<Vec<RawEgress>>,
    #[serde(default)]
    deny_pii: Vec<Spanned<String>>,
    #[serde(default)]
    deny_io_uring: bool,
    #[serde(default)]
    enforce: Vec<Spanned<String>>,
    enforce_action: Option<Spanned<String>>,
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
pub struct Egress {
    /// The addresses.
    pub to: IpNet,
    /// The ports (empty: any).
    pub ports: Vec<u16>,
    /// PII types never sent there.
    pub deny_pii: Vec<String>,
}

/// What one role may do.
#[derive(Debug, Default)]
pub struct RolePolicy {
    /// Classes it may read.
    pub read: Vec<String>,
    /// Classes it may write.
    pub write: Vec<String>,
    /// Classes whose files it may send to a socket whole (`sendfile`,
    /// `splice`); reading a class does not allow this.
    pub transfer: Vec<String>,
    /// Where it may connect (`None`: anywhere).
    pub egress: Option<Vec<Egress>>,
    /// PII types it may never send.
    pub deny_pii: Vec<String>,
    /// Any open or send through an io_uring is an alert.
    pub deny_io_uring: bool,
    /// PII types stopped in the kernel before a TLS write encrypts them
    /// (only `CREDIT_CARD`: the kernel's check finds card numbers); the
    /// caller is killed.
    pub enforce: Vec<String>,
}

impl RolePolicy {
    /// The egress entry that allows `ip:port`, if any.
    pub fn egress_to(&self, ip: IpAddr, port: u16) -> Option<&Egress> {
        find_egress(self.egress.as_deref()?, ip, port)
    }
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
        // Only card numbers can be found in the kernel, and only by killing
        // the caller: a uprobe cannot change the result of the call it is on.
        let enforce_list = |_: &str,
                            _: &str,
                            list: &[Spanned<String>],
                            action: Option<&Spanned<String>>| {
            if let Some(a) = action {
                if a.get_ref() != "kill" {
                    return Err(at(
                        a,
                        format!(
                            "enforce_action `{}` is not available: a uprobe cannot make the \
                             library call fail on this kernel, so the only action is `kill`",
                            a.get_ref()
                        ),
                    ));
                }
            }
            list.iter()
                .map(|t| {
                    if t.get_ref() == "CREDIT_CARD" {
                        Ok(t.get_ref().clone())
                    } else {
                        Err(at(
                            t,
                            format!(
                                "`{}` cannot be enforced: the kernel's check finds CREDIT_CARD only \
                                 (other types are found after the fact; use deny_pii)",
                                t.get_ref()
                            ),
                        ))
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
                    transfer: class_list(&r.transfer)?,
                    write: class_list(&r.write)?,
                    egress,
                    deny_pii: pii_list(&r.deny_pii)?,
                    deny_io_uring: r.deny_io_uring,
                    enforce: enforce_list(src, file, &r.enforce, r.enforce_action.as_ref())?,
                },
            );
        }
        Ok(Self {
            roles: out,
            none: RolePolicy::default(),
        })
    }

    /// What `role` may do (nothing, for a role without an entry).
    pub fn role(&self, role: &str) -> &RolePolicy {
        self.roles.get(role).unwrap_or(&self.none)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

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
            (
                "[role.chatbot]\nenforce = [\"US_SSN\"]\n",
                2,
                12,
                "`US_SSN` cannot be enforced",
            ),
            (
                "[role.chatbot]\nenforce = [\"CREDIT_CARD\"]\nenforce_action = \"deny\"\n",
                3,
                18,
                "the only action is `kill`",
            ),
            (
                "[role.chatbot]\ntransfer = [\"cardholder\"]\n",
                2,
                13,
                "unknown data class `cardholder`",
            ),
        ];
        for (src, line, col, msg) in cases {
            let e = Policy::parse(src, "policy.toml", &rules.roles, &rules.classes, &rules.pii)
                .unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
        let ok = Policy::parse(
            "[role.chatbot]\nenforce = [\"CREDIT_CARD\"]\nenforce_action = \"kill\"\ndeny_io_uring = true\n",
            "policy.toml",
            &rules.roles,
            &rules.classes,
            &rules.pii,
        )
        .unwrap();
        assert_eq!(ok.role("chatbot").enforce, ["CREDIT_CARD"]);
        assert!(ok.role("chatbot").deny_io_uring);
    }
}
