//! Incident response: the [`Runner`] follows the record and, for each
//! alert a responder selects (`rules/responders.toml`), runs it: `kill`
//! at once on the follower's thread (it is a syscall or two), the others
//! on a thread of their own, so a slow or hanging responder never holds up
//! the record, the pipeline or another responder. Storm control: one run
//! per incident and responder within the responder's window; what it folds
//! is counted into the next run. Every run, skipped ones included, is
//! appended to the record as a `response` record. One file per kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, UNIX_EPOCH};

use crate::model::{now_ns, Action, FollowError, Follower, Outcome, Record, Run, RunOutcome};
use crate::record::writer::RecordSender;
use crate::rules::responders::{Kind, Responder, ResponderRules};

pub mod exec;
pub mod handoff;
pub mod kill;
pub mod notify;
pub mod webhook;

/// The runner's name (its cursor's).
pub const NAME: &str = "respond";
/// Runs of one responder at once, for kinds without their own limit.
const MAX_THREADS: usize = 8;

/// What one run came to.
#[derive(Debug)]
pub struct Done {
    /// What it acted on.
    pub target: String,
    /// How it went.
    pub outcome: RunOutcome,
    /// Exit status, HTTP status, what was killed, or why it was skipped.
    pub detail: String,
}

impl Done {
    /// A run that was not made, and why.
    pub fn skipped(target: impl Into<String>, why: impl Into<String>) -> Self {
        Done {
            target: target.into(),
            outcome: RunOutcome::Skipped,
            detail: why.into(),
        }
    }
}

/// The responder runner.
pub struct Runner {
    live: crate::rules::Live,
    rules: Arc<ResponderRules>,
    responders: Vec<(Arc<Responder>, Arc<AtomicUsize>)>,
    records: RecordSender,
    /// Storm control: by responder and incident, when it last ran (ns) and
    /// what was folded since.
    storms: HashMap<String, (u64, u64)>,
}

impl Runner {
    /// The runner for the responders in `live` (a reload replaces them);
    /// run records go to `records`.
    pub fn new(live: crate::rules::Live, records: RecordSender) -> Self {
        let rules = live.responders();
        Runner {
            responders: Self::armed(&rules),
            rules,
            live,
            records,
            storms: HashMap::new(),
        }
    }

    fn armed(rules: &ResponderRules) -> Vec<(Arc<Responder>, Arc<AtomicUsize>)> {
        rules
            .responders
            .iter()
            .map(|r| (Arc::new(r.clone()), Arc::new(AtomicUsize::new(0))))
            .collect()
    }

    /// Whether `resp` answers `r`, and the incident it belongs to.
    fn incident(resp: &Responder, r: &Record) -> Option<String> {
        if matches!(r.action, Action::Response | Action::Heartbeat) {
            return None;
        }
        let base = format!("{}/{}/{}", resp.name, r.role, r.uid);
        match &resp.kind {
            Kind::Handoff { detectors, .. } => {
                let roles_ok = resp.select.roles.is_empty()
                    || resp.select.roles.iter().any(|x| **x == *r.role);
                let risky = r.action == Action::Send
                    && r.findings.iter().any(|f| detectors.contains(&f.kind));
                (roles_ok && risky).then(|| format!("{base}/{}/{}", r.pid, r.object))
            }
            Kind::Kill { .. } => resp.select.wants(r).then(|| format!("{base}/{}", r.pid)),
            _ => resp.select.wants(r).then(|| {
                let rule = r.alert.as_ref().map_or("", |a| a.rule.as_str());
                format!("{base}/{rule}")
            }),
        }
    }

    /// The record of a run of `resp` answering `r`.
    fn run_record(
        resp: &Responder,
        r: &Record,
        done: Done,
        started: Instant,
        folded: u64,
    ) -> Record {
        let now = now_ns();
        Record {
            seq: 0,
            time: humantime::format_rfc3339_nanos(
                UNIX_EPOCH + std::time::Duration::from_nanos(now),
            )
            .to_string(),
            time_ns: now,
            action: Action::Response,
            object: format!("{} {} {}", resp.name, resp.kind.name(), done.target),
            outcome: match done.outcome {
                RunOutcome::Done | RunOutcome::Skipped => Outcome::Allowed,
                RunOutcome::Failed | RunOutcome::TimedOut => Outcome::Failed,
            },
            errno: None,
            alert: None,
            findings: Vec::new(),
            bytes: None,
            run: Some(Box::new(Run {
                responder: resp.name.clone(),
                kind: resp.kind.name().to_owned(),
                alert_seq: r.seq,
                target: done.target,
                outcome: done.outcome,
                detail: done.detail,
                duration_ms: started.elapsed().as_millis() as u64,
                folded,
            })),
            ..r.clone()
        }
    }

    /// Runs `resp` for `r`: kill inline, the rest on their own thread.
    fn dispatch(&self, resp: &Arc<Responder>, busy: &Arc<AtomicUsize>, r: &Record, folded: u64) {
        let started = Instant::now();
        let age = now_ns().saturating_sub(r.time_ns);
        if age > resp.max_age.as_nanos() as u64 {
            let done = Done::skipped(
                r.pid.to_string(),
                format!(
                    "the alert is {} s old (max_age_secs {})",
                    age / 1_000_000_000,
                    resp.max_age.as_secs()
                ),
            );
            let _ = self
                .records
                .send(Self::run_record(resp, r, done, started, folded));
            return;
        }
        if let Kind::Kill { enforce, cgroup } = resp.kind {
            let done = kill::run(r, enforce, cgroup);
            let _ = self
                .records
                .send(Self::run_record(resp, r, done, started, folded));
            return;
        }
        let limit = match resp.kind {
            Kind::Exec { max_concurrent, .. } => max_concurrent,
            _ => MAX_THREADS,
        };
        if busy.fetch_add(1, Ordering::SeqCst) >= limit {
            busy.fetch_sub(1, Ordering::SeqCst);
            let done = Done::skipped(
                resp.kind.name(),
                format!("{limit} runs already in progress (the concurrency limit)"),
            );
            let _ = self
                .records
                .send(Self::run_record(resp, r, done, started, folded));
            return;
        }
        let name = resp.name.clone();
        let counter = busy.clone();
        let (resp, busy, r, records) =
            (resp.clone(), busy.clone(), r.clone(), self.records.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("respond {}", resp.name))
            .spawn(move || {
                let done = match &resp.kind {
                    Kind::Exec { command, .. } => exec::run(command, &r, resp.timeout),
                    Kind::Webhook {
                        url,
                        secret,
                        ca_file,
                        retries,
                    } => webhook::run(
                        &resp.name,
                        url,
                        secret,
                        ca_file.as_deref(),
                        *retries,
                        resp.timeout,
                        &r,
                    ),
                    Kind::Notify { bus } => notify::run(bus, &r, resp.timeout),
                    Kind::Handoff { url, detectors, .. } => {
                        handoff::run(url, detectors, &r, resp.timeout)
                    }
                    Kind::Kill { .. } => unreachable!("kill runs inline"),
                };
                busy.fetch_sub(1, Ordering::SeqCst);
                let _ = records.send(Self::run_record(&resp, &r, done, started, folded));
            });
        if let Err(e) = spawned {
            counter.fetch_sub(1, Ordering::SeqCst);
            tracing::error!(responder = %name, error = %e, "cannot start a responder thread");
        }
    }
}

impl Follower for Runner {
    fn name(&self) -> &str {
        NAME
    }

    /// Every responder answers an alert or (a hand-off) a send with
    /// findings; a record with neither is not parsed. Both fields are left
    /// out of a record's JSON when empty, and a key is never escaped, so a
    /// record without these keys has neither.
    fn wants(&self, json: &[u8]) -> bool {
        memchr::memmem::find(json, b"\"alert\":").is_some()
            || memchr::memmem::find(json, b"\"findings\":").is_some()
    }

    fn handle(&mut self, records: &[Record]) -> Result<(), FollowError> {
        let rules = self.live.responders();
        if !Arc::ptr_eq(&rules, &self.rules) {
            // A reload: runs in progress finish; storm control carries over.
            self.responders = Self::armed(&rules);
            self.rules = rules;
        }
        for r in records {
            for (resp, busy) in &self.responders {
                let Some(key) = Self::incident(resp, r) else {
                    continue;
                };
                let window = resp.window.as_nanos() as u64;
                let t = r.time_ns;
                let folded = match self.storms.get_mut(&key) {
                    Some((last, folded)) if t.saturating_sub(*last) < window => {
                        *folded += 1;
                        continue;
                    }
                    Some((last, folded)) => {
                        *last = t;
                        std::mem::take(folded)
                    }
                    None => {
                        self.storms.insert(key, (t, 0));
                        0
                    }
                };
                self.dispatch(resp, busy, r, folded);
            }
        }
        // Forget incidents whose window has long passed.
        if self.storms.len() > 10_000 {
            let now = now_ns();
            self.storms
                .retain(|_, (last, _)| now.saturating_sub(*last) < 86_400_000_000_000);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(seq: u64, t: u64, pid: u32) -> Record {
        serde_json::from_value(serde_json::json!({
            "seq": seq, "time": "", "time_ns": t, "host": "h", "pid": pid, "comm": "bot",
            "exe": "/nonexistent/bot", "uid": 65534, "role": "chatbot", "action": "send",
            "object": "203.0.113.7:443", "outcome": "violation",
            "alert": {"severity": "critical", "rule": "pii-egress", "message": "m"}
        }))
        .unwrap()
    }

    #[test]
    fn one_run_per_incident_in_the_window_and_the_next_counts_what_was_folded() {
        let rules = ResponderRules::parse(
            "[[responder]]\nname = \"stop\"\ntype = \"kill\"\nroles = [\"chatbot\"]\nwindow_secs = 60\n",
            "responders.toml",
            &monitor_pii::PiiRules::defaults(),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let set = crate::rules::RuleSet {
            responders: Arc::new(rules),
            ..crate::rules::RuleSet::shipped()
        };
        let mut runner = Runner::new(
            crate::rules::Live::new(&set),
            crate::record::writer::RecordSender::new(tx),
        );
        let t = now_ns();
        // Five alerts on one process within the window: one run.
        let batch: Vec<Record> = (1..=5).map(|i| alert(i, t + i, 4_000_000)).collect();
        runner.handle(&batch).unwrap();
        // Another process is another incident.
        runner.handle(&[alert(6, t + 6, 4_000_001)]).unwrap();
        // Past the window: a new run, carrying the four folded in.
        runner
            .handle(&[alert(7, t + 61_000_000_000, 4_000_000)])
            .unwrap();
        let runs: Vec<Run> = rx.try_iter().map(|r| *r.run.unwrap()).collect();
        assert_eq!(runs.len(), 3, "{runs:#?}");
        assert_eq!((runs[0].alert_seq, runs[0].folded), (1, 0));
        assert_eq!((runs[1].alert_seq, runs[1].folded), (6, 0));
        assert_eq!((runs[2].alert_seq, runs[2].folded), (7, 4));
        // Not enforcing, and the pid does not exist: skipped, and why.
        assert_eq!(runs[0].outcome, RunOutcome::Skipped);
        assert!(runs[0].detail.contains("gone"), "{}", runs[0].detail);
    }

    /// The runner's JSON filter passes over only records no responder of
    /// any kind answers: alerts and sends with findings are all parsed.
    #[test]
    fn the_filter_passes_over_only_what_no_responder_answers() {
        let mut rules = ResponderRules::parse(
            "[[responder]]\nname = \"k\"\ntype = \"kill\"\nroles = [\"chatbot\"]\n\
             [[responder]]\nname = \"e\"\ntype = \"exec\"\ncommand = [\"/bin/true\"]\n",
            "responders.toml",
            &monitor_pii::PiiRules::defaults(),
        )
        .unwrap();
        // A hand-off on a detector (its pii.toml category is beside the point).
        let handoff = Responder {
            name: "h".into(),
            kind: Kind::Handoff {
                url: "http://127.0.0.1:9/".into(),
                categories: vec!["risk".into()],
                detectors: vec!["CREDIT_CARD".into()],
            },
            ..rules.responders[0].clone()
        };
        rules.responders.push(handoff);
        let set = crate::rules::RuleSet {
            responders: Arc::new(rules),
            ..crate::rules::RuleSet::shipped()
        };
        let (tx, _rx) = std::sync::mpsc::sync_channel(64);
        let runner = Runner::new(
            crate::rules::Live::new(&set),
            crate::record::writer::RecordSender::new(tx),
        );
        let plain = |action: &str, object: &str| -> Record {
            serde_json::from_value(serde_json::json!({
                "seq": 1, "time": "", "time_ns": 1, "host": "h", "pid": 7, "comm": "c",
                "uid": 1, "role": "chatbot", "action": action, "object": object,
                "outcome": "allowed"
            }))
            .unwrap()
        };
        let mut card = plain("send", "203.0.113.7:443");
        card.findings = vec![serde_json::from_value(serde_json::json!({
            "type": "CREDIT_CARD", "masked": "****1111", "score": 1.0,
            "fingerprint": "0123456789abcdef0123456789abcdef", "start": 0, "end": 16
        }))
        .unwrap()];
        let cases = [
            (alert(1, 1, 7), true),
            (card, true),
            (plain("read", "/srv/cards/a.csv"), false),
            (plain("send", "203.0.113.7:443"), false),
            // A path that spells a key is escaped in the JSON: not taken for one.
            (plain("read", "/tmp/\"alert\":{}"), false),
        ];
        for (r, answered) in cases {
            let json = serde_json::to_vec(&r).unwrap();
            let any = runner
                .responders
                .iter()
                .any(|(resp, _)| Runner::incident(resp, &r).is_some());
            assert_eq!(any, answered, "{r:?}");
            assert_eq!(
                runner.wants(&json),
                answered,
                "{}",
                String::from_utf8_lossy(&json)
            );
        }
    }
}
