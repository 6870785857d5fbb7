//! `responders.toml`: what runs when an alert is recorded (read by
//! `respond/`). Each `[[responder]]` has a kind, its settings, and
//! selectors that say which alerts it answers.

use std::path::PathBuf;
use std::time::Duration;

use monitor_pii::{PiiRules, RulesError};
use serde::Deserialize;
use toml::Spanned;

use super::parse_toml;
use crate::model::{Record, Severity};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    responder: Vec<RawResponder>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponder {
    name: Spanned<String>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    #[serde(default)]
    rules: Vec<String>,
    min_severity: Option<Spanned<String>>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    pii: Vec<String>,
    window_secs: Option<u64>,
    max_age_secs: Option<u64>,
    timeout_secs: Option<f64>,
    command: Option<Spanned<Vec<String>>>,
    max_concurrent: Option<usize>,
    url: Option<Spanned<String>>,
    secret_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    retries: Option<u32>,
    enforce: Option<bool>,
    cgroup: Option<bool>,
    bus: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
}

/// Which records a responder answers. Empty lists match everything.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    /// Alert rule ids.
    pub rules: Vec<String>,
    /// Only alerts at least this severe.
    pub min_severity: Option<Severity>,
    /// Only these roles.
    pub roles: Vec<String>,
    /// Only records of these data classes.
    pub classes: Vec<String>,
    /// Only records carrying one of these PII types.
    pub pii: Vec<String>,
}

impl Selector {
    /// Whether an alert record `r` is selected.
    pub fn wants(&self, r: &Record) -> bool {
        let Some(a) = &r.alert else {
            return false;
        };
        let any = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        any(&self.rules, Some(&a.rule))
            && self.min_severity.is_none_or(|m| a.severity >= m)
            && any(&self.roles, Some(&r.role))
            && any(&self.classes, r.class.as_deref())
            && (self.pii.is_empty() || r.findings.iter().any(|f| self.pii.contains(&f.kind)))
    }
}

/// What a responder does.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Runs a program (argv, no shell), the alert as JSON on stdin.
    Exec {
        /// Program and arguments.
        command: Vec<String>,
        /// Runs at once at most; past it a run is skipped and recorded.
        max_concurrent: usize,
    },
    /// POSTs the alert as JSON, signed with HMAC-SHA256.
    Webhook {
        /// `https://...` (or `http://` on loopback).
        url: String,
        /// The HMAC key.
        secret: Vec<u8>,
        /// CA certificates (PEM) the server's certificate must chain to.
        ca_file: Option<PathBuf>,
        /// Attempts after the first.
        retries: u32,
    },
    /// SIGKILLs the offending process (or its cgroup).
    Kill {
        /// Only with `enforce = true` does it kill; else it records what
        /// it would have killed.
        enforce: bool,
        /// Kill the process's whole cgroup (`cgroup.kill`).
        cgroup: bool,
    },
    /// A desktop notification on the user's session bus.
    Notify {
        /// The bus socket, `{uid}` replaced (default `/run/user/{uid}/bus`).
        bus: String,
    },
    /// Hands a chatbot conversation to a person: POSTs its identity and
    /// the risk categories matched (never the values).
    Handoff {
        /// The chatbot platform's hand-off endpoint.
        url: String,
        /// The detector categories that trigger it (`risk`).
        categories: Vec<String>,
        /// The custom detectors in those categories.
        detectors: Vec<String>,
    },
}

impl Kind {
    /// The kind's name.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Exec { .. } => "exec",
            Kind::Webhook { .. } => "webhook",
            Kind::Kill { .. } => "kill",
            Kind::Notify { .. } => "notify",
            Kind::Handoff { .. } => "handoff",
        }
    }
}

/// One validated responder.
#[derive(Debug, Clone)]
pub struct Responder {
    /// Its name (in every run record).
    pub name: String,
    /// What it does.
    pub kind: Kind,
    /// Which alerts it answers.
    pub select: Selector,
    /// Storm control: one run per incident (rule, role, user; process for
    /// `kill`; process and destination for `handoff`) within this window.
    pub window: Duration,
    /// Records older than this are not acted on (after an outage, a pid
    /// may belong to another process).
    pub max_age: Duration,
    /// How long one run may take.
    pub timeout: Duration,
}

/// The validated `responders.toml`.
#[derive(Debug, Clone, Default)]
pub struct ResponderRules {
    /// In file order.
    pub responders: Vec<Responder>,
}

impl ResponderRules {
    /// Parses and checks `responders.toml`; `pii` resolves `handoff`'s
    /// categories to detectors.
    pub fn parse(src: &str, file: &str, pii: &PiiRules) -> Result<Self, RulesError> {
        let raw: Raw = parse_toml(src, file)?;
        let mut out = ResponderRules::default();
        for r in raw.responder {
            let at =
                |span: std::ops::Range<usize>, m: String| RulesError::at(src, file, span.start, m);
            let name = r.name.get_ref().clone();
            if name.is_empty() || out.responders.iter().any(|x| x.name == name) {
                return Err(at(
                    r.name.span(),
                    format!("responder name `{name}` is empty or used twice"),
                ));
            }
            let need_url = |what: &str| -> Result<String, RulesError> {
                let Some(u) = &r.url else {
                    return Err(at(
                        r.name.span(),
                        format!("{what} responder `{name}` has no url"),
                    ));
                };
                let v = u.get_ref();
                let loopback_http = v.starts_with("http://127.")
                    || v.starts_with("http://[::1]")
                    || v.starts_with("http://localhost");
                if !(v.starts_with("https://") || loopback_http) {
                    return Err(at(
                        u.span(),
                        format!("bad url `{v}` (https://, or http:// on loopback)"),
                    ));
                }
                Ok(v.clone())
            };
            let kind = match r.kind.get_ref().as_str() {
                "exec" => {
                    let Some(cmd) = &r.command else {
                        return Err(at(
                            r.name.span(),
                            format!("exec responder `{name}` has no command"),
                        ));
                    };
                    let argv = cmd.get_ref();
                    if argv.is_empty() || !argv[0].starts_with('/') {
                        return Err(at(
                            cmd.span(),
                            "command must be [\"/absolute/program\", args...]".into(),
                        ));
                    }
                    Kind::Exec {
                        command: argv.clone(),
                        max_concurrent: r.max_concurrent.unwrap_or(4).max(1),
                    }
                }
                "webhook" => {
                    let url = need_url("webhook")?;
                    let Some(f) = &r.secret_file else {
                        return Err(at(
                            r.name.span(),
                            format!(
                                "webhook responder `{name}` needs a secret_file (the HMAC key)"
                            ),
                        ));
                    };
                    let secret = std::fs::read(f).map_err(|e| {
                        at(r.name.span(), format!("secret_file {}: {e}", f.display()))
                    })?;
                    let secret = secret.trim_ascii().to_vec();
                    if secret.len() < 16 {
                        return Err(at(
                            r.name.span(),
                            format!(
                                "secret_file {}: the key must be at least 16 bytes",
                                f.display()
                            ),
                        ));
                    }
                    Kind::Webhook {
                        url,
                        secret,
                        ca_file: r.ca_file.clone(),
                        retries: r.retries.unwrap_or(3),
                    }
                }
                "kill" => {
                    if r.roles.is_empty() {
                        return Err(at(
                            r.name.span(),
                            format!("kill responder `{name}` must name the roles it may kill in"),
                        ));
                    }
                    Kind::Kill {
                        enforce: r.enforce.unwrap_or(false),
                        cgroup: r.cgroup.unwrap_or(false),
                    }
                }
                "notify" => Kind::Notify {
                    bus: r
                        .bus
                        .clone()
                        .unwrap_or_else(|| "/run/user/{uid}/bus".into()),
                },
                "handoff" => {
                    let url = need_url("handoff")?;
                    let categories = if r.categories.is_empty() {
                        vec!["risk".to_owned()]
                    } else {
                        r.categories.clone()
                    };
                    let detectors: Vec<String> = pii
                        .custom
                        .iter()
                        .filter(|d| {
                            d.category
                                .as_deref()
                                .is_some_and(|c| categories.iter().any(|x| x == c))
                        })
                        .map(|d| d.name.to_string())
                        .collect();
                    if detectors.is_empty() {
                        return Err(at(r.name.span(), format!("handoff responder `{name}`: no custom detector in pii.toml has category {}", categories.join(" or "))));
                    }
                    Kind::Handoff {
                        url,
                        categories,
                        detectors,
                    }
                }
                other => {
                    return Err(at(
                        r.kind.span(),
                        format!(
                        "unknown responder type `{other}` (exec, webhook, kill, notify, handoff)"
                    ),
                    ))
                }
            };
            let min_severity = match &r.min_severity {
                None => None,
                Some(v) => Some(
                    v.get_ref()
                        .parse::<Severity>()
                        .map_err(|m| at(v.span(), m))?,
                ),
            };
            let timeout = r.timeout_secs.unwrap_or(10.0);
            if !(timeout > 0.0 && timeout <= 3600.0) {
                return Err(at(
                    r.name.span(),
                    format!("responder `{name}`: timeout_secs must be above 0 and at most 3600"),
                ));
            }
            let realtime = matches!(
                kind,
                Kind::Kill { .. } | Kind::Notify { .. } | Kind::Handoff { .. }
            );
            out.responders.push(Responder {
                name,
                kind,
                select: Selector {
                    rules: r.rules,
                    min_severity,
                    roles: r.roles,
                    classes: r.classes,
                    pii: r.pii,
                },
                window: Duration::from_secs(r.window_secs.unwrap_or(300)),
                max_age: Duration::from_secs(r.max_age_secs.unwrap_or(if realtime {
                    60
                } else {
                    86_400
                })),
                timeout: Duration::from_secs_f64(timeout),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responders_parse_and_bad_ones_are_refused_with_a_position() {
        let pii = PiiRules::parse(
            "[[custom]]\nname = \"RISK_WIRE_TRANSFER\"\npattern = 'wire transfer'\nscore = 0.6\ncategory = \"risk\"\n",
            "pii.toml",
        )
        .unwrap();
        let ok = ResponderRules::parse(
            "[[responder]]\nname = \"stop\"\ntype = \"kill\"\nroles = [\"chatbot\"]\nenforce = true\nrules = [\"pii-egress\"]\n\n[[responder]]\nname = \"hand\"\ntype = \"handoff\"\nurl = \"http://127.0.0.1:9/h\"\n",
            "responders.toml",
            &pii,
        )
        .unwrap();
        assert!(matches!(
            ok.responders[0].kind,
            Kind::Kill {
                enforce: true,
                cgroup: false
            }
        ));
        assert_eq!(ok.responders[0].max_age, Duration::from_secs(60));
        let Kind::Handoff { detectors, .. } = &ok.responders[1].kind else {
            panic!()
        };
        assert!(
            detectors.iter().any(|d| d == "RISK_WIRE_TRANSFER"),
            "{detectors:?}"
        );
        let cases = [
            ("[[responder]]\nname = \"k\"\ntype = \"kill\"\n", 2, 8, "must name the roles"),
            ("[[responder]]\nname = \"e\"\ntype = \"exec\"\ncommand = [\"sh\", \"-c\", \"x\"]\n", 4, 11, "absolute"),
            ("[[responder]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"http://example.com/\"\n", 4, 7, "bad url"),
            ("[[responder]]\nname = \"x\"\ntype = \"email\"\n", 3, 8, "unknown responder type"),
            ("[[responder]]\nname = \"k\"\ntype = \"kill\"\nroles = [\"r\"]\nmin_severity = \"dire\"\n", 5, 16, "unknown severity"),
        ];
        for (src, line, col, msg) in cases {
            let e = ResponderRules::parse(src, "responders.toml", &pii).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{src:?}: {e}");
            assert!(e.message.contains(msg), "{src:?}: {e}");
        }
    }
}
