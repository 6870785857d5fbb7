//! The policy judge: what each role may do (`rules/policy.toml`), and the
//! verdict on an access. Reading or writing a class the role does not list,
//! sending a classified file to a socket (`sendfile`, `splice`) unless its
//! `transfer` list names the class, connecting outside its egress list,
//! and sending a PII type it denies
//! (globally or to that destination) each raise an alert, as severe as
//! `classes.toml` rates the class or the PII type.

use std::sync::Arc;

use super::{Case, Judge};
use crate::event::PiiFinding;
use crate::model::{Access, Action, Alert, Severity};
use crate::rules::classes::{ClassRules, DEFAULT_PII_SEVERITY};
use crate::rules::policy::Policy;
use crate::rules::RuleSet;

/// Judges accesses against the per-role policy.
pub struct PolicyJudge {
    policy: Arc<Policy>,
    classes: Arc<ClassRules>,
}

impl PolicyJudge {
    /// The judge of `rules`' policy.
    pub fn new(rules: &RuleSet) -> Self {
        Self {
            policy: rules.policy.clone(),
            classes: rules.classes.clone(),
        }
    }

    /// The alerts `access` by a process in `role` raises (none when allowed).
    pub fn verdict(&self, role: &str, access: &Access, findings: &[PiiFinding]) -> Vec<Alert> {
        let p = self.policy.role(role);
        let mut alerts = Vec::new();
        match access.action {
            Action::Read | Action::Write | Action::Delete | Action::Rename => {
                if access.unresolved {
                    alerts.push(Alert {
                        explain: None,
                        severity: Severity::Medium,
                        rule: "path-unresolved".into(),
                        message: format!(
                            "role {role} touched a path too deep to classify: {}",
                            access.object
                        ),
                    });
                }
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
                        explain: None,
                        severity: self.classes.severity_of_class(class),
                        rule: rule.into(),
                        message: format!("role {role} may not {verb} {class} data{tried}"),
                    });
                }
            }
            Action::Transfer => {
                if let Some(class) = &access.class {
                    if !p.transfer.iter().any(|c| **c == **class) {
                        alerts.push(Alert {
                            explain: None,
                            severity: self.classes.severity_of_class(class),
                            rule: "class-transfer".into(),
                            message: format!(
                                "role {role} sent a {class} file to a socket ({})",
                                access.remote.map_or_else(
                                    || "?".to_owned(),
                                    |(ip, port)| format!("{ip}:{port}")
                                )
                            ),
                        });
                    }
                }
            }
            Action::Connect => {
                if let (Some(_), Some((ip, port))) = (&p.egress, access.remote) {
                    if p.egress_to(ip, port).is_none() {
                        alerts.push(Alert {
                            explain: None,
                            severity: Severity::Medium,
                            rule: "egress".into(),
                            message: format!("role {role} may not connect to {}", access.object),
                        });
                    }
                }
            }
            Action::Send => {
                let dest = access.remote.and_then(|(ip, port)| p.egress_to(ip, port));
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
                    let severity = denied
                        .iter()
                        .map(|k| self.classes.severity_of_pii(k))
                        .max()
                        .unwrap_or(DEFAULT_PII_SEVERITY);
                    alerts.push(Alert {
                        explain: None,
                        severity,
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

impl Judge for PolicyJudge {
    fn name(&self) -> &'static str {
        "policy"
    }

    fn judge(&mut self, case: &Case<'_>) -> Vec<Alert> {
        let mut alerts = self.verdict(case.role, case.access, case.findings);
        if let crate::event::Detail::Payload(p) = &case.event.detail {
            if p.prevented {
                let mut kinds: Vec<&str> = case.findings.iter().map(|f| f.kind.as_str()).collect();
                kinds.dedup();
                alerts.push(Alert {
                    explain: None,
                    severity: Severity::Critical,
                    rule: "pii-prevented".into(),
                    message: format!(
                        "role {}'s {} carrying {} to {} {}; the process was killed",
                        case.role,
                        if p.tls { "TLS write" } else { "socket write" },
                        if kinds.is_empty() {
                            "a card number".to_owned()
                        } else {
                            kinds.join(", ")
                        },
                        case.access.object,
                        if p.tls {
                            "was stopped before encryption"
                        } else {
                            "was caught at the syscall, which still sent it"
                        }
                    ),
                });
            }
        }
        if case.event.via.as_deref() == Some("io_uring")
            && self.policy.role(case.role).deny_io_uring
        {
            alerts.push(Alert {
                explain: None,
                severity: Severity::High,
                rule: "io-uring-use".into(),
                message: format!(
                    "role {} used an io_uring ({} {})",
                    case.role,
                    case.access.action.name(),
                    case.access.object
                ),
            });
        }
        alerts
    }

    fn reload(&mut self, rules: &RuleSet) {
        *self = Self::new(rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;
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
            unresolved: false,
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
            field: None,
        }
    }

    #[test]
    fn shipped_policy_verdicts() {
        let rules = RuleSet::shipped();
        let p = PolicyJudge::new(&rules);
        let card = access(
            Action::Read,
            "/srv/cardholder/a",
            Some("cardholder-data"),
            None,
        );
        assert!(p.verdict("billing-agent", &card, &[]).is_empty());
        let a = p.verdict("support-agent", &card, &[]);
        assert_eq!(
            (a[0].rule.as_str(), a[0].severity),
            ("class-read", Severity::High)
        );
        assert_eq!(p.verdict("unassigned", &card, &[]).len(), 1);
        let w = access(
            Action::Write,
            "/srv/cardholder/a",
            Some("cardholder-data"),
            None,
        );
        assert_eq!(p.verdict("billing-agent", &w, &[])[0].rule, "class-write");

        let api = access(
            Action::Send,
            "203.0.113.7:443",
            None,
            Some(("203.0.113.7", 443)),
        );
        assert!(p
            .verdict("chatbot", &api, &[finding("EMAIL_ADDRESS")])
            .is_empty());
        let a = p.verdict(
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
        let a = p.verdict("ai-assistant", &api, &[finding("EMAIL_ADDRESS")]);
        assert_eq!(a[0].severity, Severity::High);
        let a = p.verdict("chatbot", &api, &[finding("CVV")]);
        assert_eq!(a[0].severity, Severity::Critical);

        let ok = access(
            Action::Connect,
            "203.0.113.7:443",
            None,
            Some(("203.0.113.7", 443)),
        );
        assert!(p.verdict("chatbot", &ok, &[]).is_empty());
        let bad = access(
            Action::Connect,
            "198.51.100.1:443",
            None,
            Some(("198.51.100.1", 443)),
        );
        assert_eq!(p.verdict("chatbot", &bad, &[])[0].rule, "egress");
        // No egress list: any destination.
        assert!(p.verdict("billing-agent", &bad, &[]).is_empty());
    }
}
