//! `monitor baseline ROLE` (what the anomaly learner learned a role, or
//! one of its users, normally does) and `monitor policy suggest ROLE` (a
//! least-data `policy.toml` entry from what the role actually used, and
//! what the current policy allows that it never used).

use crate::model::now_ns;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::analyst::{self, Common, FilterArgs};
use crate::anomaly::baseline::{Local, RoleBase, UserBase, READY};
use crate::anomaly::incident::Incident;
use crate::anomaly::rfc3339;
use crate::server::Request;

/// `monitor baseline ROLE`.
#[derive(Debug, Args)]
pub struct Baseline {
    /// The role.
    #[arg(id = "role_name", value_name = "ROLE")]
    role: String,
    /// Only this user of the role (a name or a uid).
    #[arg(long)]
    user: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `time` as a short age (`3h`, `2d`).
fn age(time: u64, now: u64) -> String {
    let s = now.saturating_sub(time) / 1_000_000_000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The busiest slots of an hourly rate, as `hour 10 weekday 31.2±4.0`.
fn usual(slots: &[crate::anomaly::baseline::Ewma]) -> String {
    let mut ready: Vec<(usize, &crate::anomaly::baseline::Ewma)> = slots
        .iter()
        .enumerate()
        .filter(|(_, e)| e.n >= READY && e.mean >= 0.05)
        .collect();
    if ready.is_empty() {
        return "not enough hours seen yet".into();
    }
    ready.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
    ready
        .iter()
        .take(4)
        .map(|(i, e)| format!("{} {:.1}±{:.1}", Local::slot_name(*i), e.mean, e.dev))
        .collect::<Vec<_>>()
        .join(", ")
}

fn seen_list(set: &BTreeMap<String, u64>, now: u64) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(|(k, t)| format!("{k} ({} ago)", age(*t, now)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn user_text(out: &mut String, uid: &str, u: &UserBase, learn_ns: u64, now: u64) {
    let learning = now < u.first_seen.saturating_add(learn_ns);
    let _ = writeln!(
        out,
        "user {}{uid}: first seen {} ago{}; classes {}; {:.1} sensitive accesses a day over {} active days; busiest hours: {}",
        u.name.as_deref().map(|n| format!("{n} uid ")).unwrap_or_default(),
        age(u.first_seen, now),
        if learning { ", LEARNING" } else { "" },
        seen_list(&u.classes, now),
        u.daily.mean.mean,
        u.daily.mean.n,
        usual(&u.volume.slots),
    );
}

impl Baseline {
    /// Runs the query.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let answer = analyst::ask(
            &self.common.socket,
            &Request::Baseline {
                role: self.role.clone(),
            },
        )?;
        let mut v = answer.baseline.unwrap_or_default();
        let now = now_ns();
        let learn_ns = v["learn_ns"].as_u64().unwrap_or(0);
        if v["baseline"].is_null() {
            if self.common.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            anyhow::bail!("nothing learned of role {} yet", self.role);
        }
        let role: RoleBase =
            serde_json::from_value(v["baseline"].clone()).context("reading the baseline")?;
        let learning = now < role.first_seen.saturating_add(learn_ns);
        v["learning"] = serde_json::json!(learning);
        v["learning_until"] = serde_json::json!(rfc3339(role.first_seen.saturating_add(learn_ns)));
        let user = match &self.user {
            None => None,
            Some(u) => Some(
                role.users
                    .iter()
                    .find(|(uid, b)| uid.to_string() == *u || b.name.as_deref() == Some(u))
                    .with_context(|| format!("no user {u} in role {}", self.role))?,
            ),
        };
        if self.common.json {
            if let Some((uid, u)) = user {
                v["baseline"] = serde_json::json!({"users": {uid.to_string(): u}});
                v["learning"] = serde_json::json!(now < u.first_seen.saturating_add(learn_ns));
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = String::new();
        if let Some((uid, u)) = user {
            user_text(&mut out, &uid.to_string(), u, learn_ns, now);
            print!("{out}");
            return Ok(ExitCode::SUCCESS);
        }
        let _ = writeln!(
            out,
            "role {}: first seen {} ago, {}",
            self.role,
            age(role.first_seen, now),
            if learning {
                format!(
                    "LEARNING until {} (no baseline alerts yet)",
                    rfc3339(role.first_seen + learn_ns)
                )
            } else {
                "baseline in force".into()
            }
        );
        let _ = writeln!(out, "classes: {}", seen_list(&role.classes, now));
        let _ = writeln!(out, "destinations: {}", seen_list(&role.dests, now));
        let _ = writeln!(out, "PII types sent: {}", seen_list(&role.pii_types, now));
        let _ = writeln!(
            out,
            "sensitive accesses per hour, busiest: {}",
            usual(&role.volume.slots)
        );
        let _ = writeln!(
            out,
            "PII values sent per hour, busiest: {}",
            usual(&role.pii.slots)
        );
        for (exe, e) in &role.exes {
            let _ = writeln!(out, "executable {exe}: {}", seen_list(&e.classes, now));
        }
        for (uid, u) in &role.users {
            user_text(&mut out, &uid.to_string(), u, learn_ns, now);
        }
        let incidents: BTreeMap<String, Incident> =
            serde_json::from_value(v["incidents"].clone()).unwrap_or_default();
        for (k, i) in incidents {
            let _ = writeln!(
                out,
                "open incident {k}: {} since {}, {} hits ({})",
                i.rule,
                rfc3339(i.opened),
                i.hits,
                i.detectors.join(", ")
            );
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    }
}

/// `monitor policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print a least-data policy.toml entry for ROLE from what it actually
    /// used, and name what the current policy allows that it never used.
    Suggest(Suggest),
}

impl PolicyCommand {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Suggest(s) => s.run(),
        }
    }
}

/// `monitor policy suggest ROLE`.
#[derive(Debug, Args)]
pub struct Suggest {
    /// The role.
    #[arg(id = "role_name", value_name = "ROLE")]
    role: String,
    /// The rules directory whose policy is compared.
    #[arg(long, default_value = crate::rules::DEFAULT_RULES_DIR)]
    rules_dir: std::path::PathBuf,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    common: Common,
}

/// A TOML string array.
fn toml_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = items
        .into_iter()
        .map(|s| toml::Value::String(s.to_owned()).to_string())
        .collect();
    format!("[{}]", v.join(", "))
}

impl Suggest {
    /// Runs the command.
    pub fn run(mut self) -> anyhow::Result<ExitCode> {
        if self.filter.since.is_none() {
            self.filter.since = Some("30d".into());
        }
        let answer = analyst::ask(
            &self.common.socket,
            &Request::Usage {
                role: self.role.clone(),
                filter: self.filter.filter()?,
            },
        )?;
        let usage = answer.usage.unwrap_or_default();
        if self.common.json {
            println!("{}", serde_json::to_string_pretty(&usage)?);
            return Ok(ExitCode::SUCCESS);
        }
        let rules = crate::rules::RuleSet::load(Some(&self.rules_dir))
            .map_err(|e| anyhow::anyhow!("the current rules are invalid:\n{e}"))?;
        let current = rules.policy.role(&self.role);
        // Egress as used: one /32 (or /128) per address, with its ports.
        let mut egress: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for dest in usage.egress.keys() {
            if let Some((addr, port)) = dest.rsplit_once(':') {
                let addr = addr.trim_matches(['[', ']']);
                if let (Ok(ip), Ok(port)) = (addr.parse::<std::net::IpAddr>(), port.parse::<u16>())
                {
                    let net = if ip.is_ipv4() {
                        format!("{ip}/32")
                    } else {
                        format!("{ip}/128")
                    };
                    let ports = egress.entry(net).or_default();
                    if !ports.contains(&port) {
                        ports.push(port);
                    }
                }
            }
        }
        let known: Vec<&str> = monitor_pii::PiiType::ALL.iter().map(|t| t.name()).collect();
        let deny: Vec<&str> = known
            .iter()
            .copied()
            .filter(|t| !usage.pii_sent.contains_key(*t))
            .collect();
        let mut out = String::new();
        let span = if usage.records == 0 {
            "no records".to_owned()
        } else {
            format!(
                "{} records, {} to {}",
                usage.records,
                rfc3339(usage.first_ns),
                rfc3339(usage.last_ns)
            )
        };
        let _ = writeln!(
            out,
            "# Suggested for role {} from what it used ({span}).",
            self.role
        );
        let _ = writeln!(out, "# Put it in policy.toml in place of the role's entry.");
        let _ = writeln!(out, "[role.{}]", toml::Value::String(self.role.clone()));
        let _ = writeln!(
            out,
            "read = {}",
            toml_list(usage.read.keys().map(String::as_str))
        );
        let _ = writeln!(
            out,
            "write = {}",
            toml_list(usage.write.keys().map(String::as_str))
        );
        let _ = writeln!(out, "deny_pii = {}", toml_list(deny.iter().copied()));
        let _ = writeln!(out, "egress = [");
        for (net, ports) in &egress {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "    {{ to = \"{net}\", ports = [{}] }},",
                ports.join(", ")
            );
        }
        let _ = writeln!(out, "]");
        let mut unused = Vec::new();
        for c in &current.read {
            if !usage.read.contains_key(c) {
                unused.push(format!("read {c}"));
            }
        }
        for c in &current.write {
            if !usage.write.contains_key(c) {
                unused.push(format!("write {c}"));
            }
        }
        match &current.egress {
            None => unused.push("egress anywhere (no egress list)".into()),
            Some(list) => {
                for e in list {
                    let used = usage.egress.keys().any(|d| {
                        d.rsplit_once(':').is_some_and(|(a, p)| {
                            a.trim_matches(['[', ']'])
                                .parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| e.to.contains(&ip))
                                && p.parse::<u16>()
                                    .is_ok_and(|p| e.ports.is_empty() || e.ports.contains(&p))
                        })
                    });
                    if !used {
                        unused.push(format!("egress {}", e.to));
                    }
                }
            }
        }
        for t in &deny {
            if !current.deny_pii.iter().any(|d| d == t) {
                unused.push(format!("sending {t} (never sent)"));
            }
        }
        if unused.is_empty() {
            let _ = writeln!(
                out,
                "# The current policy allows nothing the role did not use."
            );
        } else {
            let _ = writeln!(out, "# Allowed now but never used:");
            for u in unused {
                let _ = writeln!(out, "#   {u}");
            }
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    }
}
