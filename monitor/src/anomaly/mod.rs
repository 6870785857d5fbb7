//! Unusual access: the [`Engine`] reads the record in order (as a
//! follower, `follower.rs`), keeps per-role, per-user and per-executable
//! [`baseline`]s, and runs each [`Detector`] (one file each) on every
//! record against what was learned before it. Hits on the same role and
//! user close together are one incident ([`incident`]): the first makes an
//! anomaly record with an alert that explains itself ([`Explain`]); the
//! rest are counted into it. The daemon appends those records to the
//! record, so they are kept, queried and delivered like any other alert.
//!
//! Detectors are stateful over the stream of stored records and cite
//! records by sequence number, so they run here, after the store, and not
//! in the judge chain (which sees an access before it has a number).
//!
//! The same code serves the daemon and `cargo xtask eval-anomaly`, which
//! replays a synthetic month through [`Engine::observe`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Action, Alert, Explain, Record, Severity};
use crate::rules::anomaly::AnomalyRules;

pub mod baseline;
pub mod bulk;
pub mod cleartext;
pub mod denied;
pub mod first_class;
pub mod first_egress;
pub mod follower;
pub mod incident;
pub mod new_exe;
pub mod off_hours;
pub mod peer;
pub mod pii_egress;
pub mod volume;

use baseline::{Baselines, Local, RoleBase, UserBase};
use incident::Incidents;

/// What a detector found in one record.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The detector's rule id.
    pub rule: &'static str,
    /// How urgent.
    pub severity: Severity,
    /// What happened, for people (never a raw value).
    pub message: String,
    /// What it is about: the class, the destination, the path.
    pub object: String,
    /// The numbers and the evidence.
    pub explain: Explain,
}

/// What a detector sees of a record: the settings and the baselines as
/// learned before the record (prepared to the record's hour and day).
pub struct Seen<'a> {
    /// The settings.
    pub rules: &'a AnomalyRules,
    /// The record's role's baseline.
    pub role: &'a RoleBase,
    /// The record's user's baseline in that role.
    pub user: &'a UserBase,
}

impl Seen<'_> {
    /// Whether the role is still learning.
    pub fn role_learning(&self, now: u64) -> bool {
        baseline::learning(self.role.first_seen, now, self.rules)
    }

    /// Whether the user is still learning in this role.
    pub fn user_learning(&self, now: u64) -> bool {
        baseline::learning(self.user.first_seen, now, self.rules)
    }
}

/// One anomaly detector.
pub trait Detector: Send {
    /// Its stable id (the alerts' rule id).
    fn id(&self) -> &'static str;

    /// Judges `r` against what was learned before it.
    fn check(&mut self, r: &Record, seen: &Seen) -> Option<Hit>;

    /// Its own state (windows), to persist; `Null` when it keeps none.
    fn save(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Takes back what [`Detector::save`] gave.
    fn restore(&mut self, _state: serde_json::Value) {}
}

/// Every detector the settings enable, in [`crate::rules::anomaly::DETECTORS`] order.
pub fn detectors(rules: &AnomalyRules) -> Vec<Box<dyn Detector>> {
    let all: Vec<Box<dyn Detector>> = vec![
        Box::new(cleartext::Cleartext),
        Box::new(denied::DeniedThenGranted::default()),
        Box::new(bulk::Bulk::default()),
        Box::new(off_hours::OffHours),
        Box::new(first_class::FirstClass),
        Box::new(first_egress::FirstEgress),
        Box::new(new_exe::NewExecutable),
        Box::new(pii_egress::NewPiiType),
        Box::new(pii_egress::PiiRate),
        Box::new(volume::Volume),
        Box::new(peer::PeerOutlier),
    ];
    all.into_iter()
        .filter(|d| rules.detector(d.id()).enabled)
        .collect()
}

/// What the engine keeps across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// The last record applied (records up to it are never applied twice).
    pub applied: u64,
    /// The baselines.
    pub baselines: Baselines,
    /// Open incidents.
    pub incidents: Incidents,
    /// Each detector's own state, by id.
    #[serde(default)]
    pub detectors: BTreeMap<String, serde_json::Value>,
    /// When the baselines last forgot old items (ns).
    #[serde(default)]
    pub forgot_at: u64,
    /// How long a new role or user learns (ns), as the settings said when
    /// saved (for `monitor baseline`).
    #[serde(default)]
    pub learn_ns: u64,
}

/// What one record came to.
#[derive(Debug, Default)]
pub struct Outcome {
    /// New incidents: anomaly records to append to the record.
    pub alerts: Vec<Record>,
    /// Every hit, including those counted into an open incident.
    pub hits: Vec<Hit>,
}

/// The baselines, the detectors and the open incidents.
pub struct Engine {
    rules: std::sync::Arc<AnomalyRules>,
    state: State,
    detectors: Vec<Box<dyn Detector>>,
}

impl Engine {
    /// An engine with `rules`, starting from `state` (empty when new).
    pub fn new(rules: std::sync::Arc<AnomalyRules>, mut state: State) -> Self {
        let mut detectors = detectors(&rules);
        for d in &mut detectors {
            if let Some(v) = state.detectors.remove(d.id()) {
                d.restore(v);
            }
        }
        Engine {
            rules,
            state,
            detectors,
        }
    }

    /// The settings in force.
    pub fn rules(&self) -> &std::sync::Arc<AnomalyRules> {
        &self.rules
    }

    /// Takes new settings (a reload): the baselines, windows and open
    /// incidents stay; detectors turned off drop their windows.
    pub fn set_rules(&mut self, rules: std::sync::Arc<AnomalyRules>) {
        let saved: BTreeMap<String, serde_json::Value> = self
            .detectors
            .iter()
            .map(|d| (d.id().to_owned(), d.save()))
            .collect();
        let mut detectors = detectors(&rules);
        for d in &mut detectors {
            if let Some(v) = saved.get(d.id()) {
                d.restore(v.clone());
            }
        }
        self.detectors = detectors;
        self.rules = rules;
    }

    /// The last record applied.
    pub fn applied(&self) -> u64 {
        self.state.applied
    }

    /// The baselines as learned so far.
    pub fn baselines(&self) -> &Baselines {
        &self.state.baselines
    }

    /// The state to persist.
    pub fn save(&mut self) -> &State {
        self.state.learn_ns = self.rules.learn_ns;
        self.state.detectors = self
            .detectors
            .iter()
            .map(|d| (d.id().to_owned(), d.save()))
            .filter(|(_, v)| !v.is_null())
            .collect();
        &self.state
    }

    /// Judges and learns from `r` (in seq order; a record at or before the
    /// last applied one is skipped, so a replay after a crash counts
    /// nothing twice).
    pub fn observe(&mut self, r: &Record) -> Outcome {
        let mut out = Outcome::default();
        if r.seq != 0 && r.seq <= self.state.applied {
            return out;
        }
        self.state.applied = r.seq.max(self.state.applied);
        if !watched(r) {
            return out;
        }
        let at = Local::of(&self.rules, r.time_ns);
        self.state.baselines.prepare(r, at, &self.rules);
        {
            let role = &self.state.baselines.roles[&*r.role];
            let seen = Seen {
                rules: &self.rules,
                role,
                user: &role.users[&r.uid],
            };
            for d in &mut self.detectors {
                if let Some(h) = d.check(r, &seen) {
                    out.hits.push(h);
                }
            }
        }
        self.state.baselines.learn(r, &self.rules);
        for hit in &out.hits {
            let since = humantime::parse_rfc3339_weak(&hit.explain.first)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(r.time_ns, |d| d.as_nanos() as u64);
            if let Some(explain) =
                self.state
                    .incidents
                    .hit(&r.role, r.uid, hit, r.time_ns, since, self.rules.group_ns)
            {
                out.alerts.push(anomaly_record(r, hit, explain));
            }
        }
        if r.time_ns.saturating_sub(self.state.forgot_at) > baseline::HOUR_NS {
            self.state.forgot_at = r.time_ns;
            self.state.baselines.forget(r.time_ns, self.rules.forget_ns);
            self.state.incidents.close_before(r.time_ns);
        }
        out
    }
}

/// Whether the engine looks at `r`: people's and programs' accesses, not
/// the daemon's own records.
fn watched(r: &Record) -> bool {
    &*r.role != "monitor"
        && matches!(
            r.action,
            Action::Read
                | Action::Write
                | Action::Delete
                | Action::Rename
                | Action::Connect
                | Action::Send
        )
}

/// The anomaly record for the incident `hit` opened on `r`.
fn anomaly_record(r: &Record, hit: &Hit, explain: Explain) -> Record {
    Record {
        seq: 0,
        action: Action::Anomaly,
        object: hit.object.clone(),
        outcome: crate::model::Outcome::Violation,
        errno: None,
        findings: Vec::new(),
        bytes: None,
        alert: Some(Alert {
            severity: hit.severity,
            rule: hit.rule.to_owned(),
            message: hit.message.clone(),
            explain: Some(Box::new(explain)),
        }),
        ..r.clone()
    }
}

/// RFC 3339 of `ns` (for an explanation's first and last).
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

/// An explanation of one record `r` (the detectors that judge one record).
pub fn one_record(r: &Record, observed: f64, window: &str) -> Explain {
    Explain {
        observed,
        baseline: None,
        threshold: None,
        peers: None,
        window: window.to_owned(),
        evidence: vec![r.seq],
        count: 1,
        first: r.time.clone(),
        last: r.time.clone(),
        detectors: Vec::new(),
        role_wide: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const DAY: u64 = 86_400_000_000_000;

    fn read(seq: u64, t: u64, uid: u32, class: &str, object: &str) -> Record {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "time": rfc3339(t), "time_ns": t, "host": "h", "pid": 7, "comm": "crm",
            "exe": "/opt/crm", "uid": uid, "role": "billing", "action": "read",
            "object": object, "class": class, "outcome": "allowed"
        }))
        .unwrap()
    }

    fn engine() -> Engine {
        Engine::new(
            Arc::new(AnomalyRules::parse("[learning]\ntimezone = \"UTC\"\n", "t").unwrap()),
            State::default(),
        )
    }

    #[test]
    fn a_learning_role_raises_no_baseline_alert_and_a_replay_counts_nothing_twice() {
        let mut e = engine();
        let t0 = 1_793_577_600 * 1_000_000_000;
        assert!(e
            .observe(&read(1, t0, 10, "profile", "/a"))
            .alerts
            .is_empty());
        // A new class on day 2: the role is learning, so no first-class alert.
        assert!(e
            .observe(&read(2, t0 + DAY, 10, "cards", "/b"))
            .alerts
            .is_empty());
        // Day 8: learning is over; a third class is new to the role.
        let out = e.observe(&read(3, t0 + 8 * DAY, 10, "secrets", "/c"));
        assert_eq!(out.alerts.len(), 1);
        let a = out.alerts[0].alert.as_ref().unwrap();
        assert_eq!(a.rule, "first-class-access");
        assert_eq!(a.explain.as_ref().unwrap().evidence, vec![3]);
        assert_eq!(out.alerts[0].action, Action::Anomaly);
        // The same record again (a replay after a crash) is skipped.
        let again = e.observe(&read(3, t0 + 8 * DAY, 10, "secrets", "/c"));
        assert!(again.hits.is_empty() && again.alerts.is_empty());
        assert_eq!(e.applied(), 3);
    }

    #[test]
    fn hits_close_together_are_one_incident_and_the_state_round_trips() {
        let mut e = engine();
        let t0 = 1_793_577_600 * 1_000_000_000;
        let mut alerts = 0;
        let mut hits = 0;
        for i in 0..80u64 {
            let out = e.observe(&read(
                i + 1,
                t0 + i * 1_000_000_000,
                10,
                "cards",
                &format!("/c/{i}"),
            ));
            alerts += out.alerts.len();
            hits += out.hits.len();
        }
        // Bulk access from the 50th distinct record on: 31 hits, one alert.
        assert_eq!((hits, alerts), (31, 1));
        let saved = serde_json::to_string(e.save()).unwrap();
        let mut back = Engine::new(e.rules.clone(), serde_json::from_str(&saved).unwrap());
        assert_eq!(back.applied(), 80);
        // The window came back with the state: the next read still hits,
        // and joins the open incident.
        let out = back.observe(&read(81, t0 + 81 * 1_000_000_000, 10, "cards", "/c/81"));
        assert_eq!((out.hits.len(), out.alerts.len()), (1, 0));
    }
}
