//! The pipeline: owns the stages and moves records through them, left to
//! right (sensor → decode → enrich → role → payload detection → classify →
//! policy → record, and the event sinks). No stage knows another; this is
//! the one place they are composed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::mpsc::Receiver;

use crate::backlog::{Intake, Taken};
use crate::classify::classify;
use crate::enrich::Enricher;
use crate::event::{Detail, Event};
use crate::judge::{Case, Chain};
use crate::model::{worst, Action, Alert, Record, Severity, NOT_INSPECTED_RULE, UNASSIGNED};
use crate::output::EventSink;
use crate::payload::{Inspected, Shards};
use crate::record::writer::RecordSender;
use crate::redact::{redact_event, redact_record};
use crate::repeat::{Repeats, SendKey, UnscannedSends, MAX_WINDOWS};
use crate::role::RoleResolver;
use crate::rules::RuleSet;
use crate::sensor::{Sensor, SensorError};
use crate::status::KernelCounters;
use crate::status::PipelineCounters;
use crate::wire::{decode, Body};

/// How long one wait on the ring buffer lasts. The kernel wakes the reader
/// only once a batch is pending, so this bounds the delay of a lone event.
const WAIT: Duration = Duration::from_millis(20);
/// Records of a batch handled between two looks at the ring buffer
/// ([`Intake::top_up`]).
const TOP_UP_EVERY: usize = 1024;
/// How often the shared counters are refreshed.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// How often closed repeat windows are stored.
const REPEATS_EVERY: Duration = Duration::from_millis(100);

/// Counters the pipeline publishes for the status report.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Kernel-side counters.
    pub kernel: KernelCounters,
    /// Userspace counters.
    pub pipeline: PipelineCounters,
    /// Processes in the process table.
    pub processes_tracked: usize,
    /// Binaries and libraries hooked for TLS (`PATH (flavour)`).
    pub tls_hooked: Vec<String>,
    /// Executables seen starting TLS that no hooked file serves: their
    /// plaintext is not read.
    pub tls_blind: Vec<String>,
}

/// A validated rule set for the pipeline, and the record that says it is
/// in force (stored once the pipeline applies it).
pub struct Reload {
    /// The rules.
    pub rules: RuleSet,
    /// The `reload` record.
    pub record: crate::model::Record,
}

/// The stages after detection: roles and classes from the rules, the judge
/// chain, and the record writer's queue.
pub struct Recording {
    /// The rules in force.
    pub rules: RuleSet,
    /// The judges, in order.
    pub judges: Chain,
    /// The record writer's queue.
    pub records: RecordSender,
    /// This host's name, stamped on every record.
    pub host: Arc<str>,
    /// The detector that masks names (paths, hosts) before they are stored or printed.
    pub names: Option<Arc<monitor_pii::Detector>>,
    /// New rule sets (validated) from reloads.
    pub reloads: Receiver<Reload>,
}

/// The stages, composed.
pub struct Pipeline {
    sensor: Sensor,
    enricher: Enricher,
    payload: Shards,
    sinks: Vec<Box<dyn EventSink>>,
    roles: RoleResolver,
    recording: Recording,
    counters: PipelineCounters,
    shared: Arc<Mutex<Counters>>,
    tls_blind: Vec<String>,
    /// Processes marked for the kernel's check at TLS writes.
    enforced: std::collections::HashSet<u32>,
    /// Repeated accesses, counted into records.
    repeats: Repeats,
    /// Sends recorded unscanned, counted by connection.
    unscanned: UnscannedSends,
    /// The batches read from the ring, and what waits of them while behind.
    intake: Intake,
}

/// Executables listed as TLS blind spots at most.
const MAX_BLIND: usize = 64;

/// Why a process is looked at for TLS after a batch.
#[derive(Clone, Copy)]
enum Seen {
    /// It exec'd: a new binary.
    Exec,
    /// It connected or accepted: its libraries are mapped by now.
    Connection,
    /// It exited.
    Exit,
}

impl Pipeline {
    /// A pipeline over a started sensor.
    pub fn new(
        mut sensor: Sensor,
        enricher: Enricher,
        payload: Shards,
        sinks: Vec<Box<dyn EventSink>>,
        recording: Recording,
    ) -> Self {
        refresh_class_dirs(&mut sensor, &recording.rules);
        Self {
            sensor,
            enricher,
            payload,
            sinks,
            roles: RoleResolver::new(recording.rules.roles.clone()),
            recording,
            counters: PipelineCounters::default(),
            shared: Arc::default(),
            tls_blind: Vec::new(),
            enforced: std::collections::HashSet::new(),
            repeats: Repeats::new(Duration::ZERO, MAX_WINDOWS),
            unscanned: UnscannedSends::new(Duration::ZERO, MAX_WINDOWS),
            intake: Intake::new(0),
        }
    }

    /// Lets up to `bytes` of records wait in the daemon's memory while it
    /// is behind, before it passes over sends (see [`crate::backlog`]).
    pub fn backlog(mut self, bytes: usize) -> Self {
        self.intake = Intake::new(bytes);
        self
    }

    /// Counts the same access made again within `window` into one record
    /// (see [`crate::repeat`]); zero (the default) stores each on its own.
    pub fn count_repeats(mut self, window: Duration) -> Self {
        self.repeats = Repeats::new(window, MAX_WINDOWS);
        self.unscanned = UnscannedSends::new(window, MAX_WINDOWS);
        self
    }

    /// The counters this pipeline publishes while it runs.
    pub fn counters(&self) -> Arc<Mutex<Counters>> {
        self.shared.clone()
    }

    /// Runs until `stop` is set, then drains what is left and flushes.
    pub fn run(mut self, stop: &AtomicBool) -> Result<Counters, SensorError> {
        let mut last_publish = Instant::now();
        let mut last_clock = Instant::now();
        let mut last_repeats = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if !stopping && self.intake.backlog().is_empty() {
                self.sensor.wait(WAIT)?;
            }
            // A reload applies before the events that waited with it.
            while let Ok(Reload { rules, record }) = self.recording.reloads.try_recv() {
                if let Some(old) = &self.recording.names {
                    let detector = Arc::new(old.with_rules(rules.pii.clone()));
                    self.payload.set_consumer(detector.clone());
                    self.enricher.set_scrubber(detector.clone());
                    self.recording.names = Some(detector);
                }
                self.roles.set_rules(rules.roles.clone());
                // Marked again, under the new policy, as roles are resolved.
                self.sensor.enforce_none();
                self.enforced.clear();
                self.recording.judges.reload(&rules);
                refresh_class_dirs(&mut self.sensor, &rules);
                self.recording.rules = rules;
                // Recorded once in force: every record after it was judged
                // by these rules.
                store(&self.recording.records, &mut self.counters.record_errors)(record);
            }
            // The kernel's counts are collected before the ring is drained,
            // so that they reach the record's windows in the same round.
            let repeats_due = stopping || last_repeats.elapsed() >= REPEATS_EVERY;
            if repeats_due {
                self.sensor.flush_repeats(stopping);
            }
            // Behind, the rounds' other work (reloads, repeat windows, the
            // counters) still comes around every half second.
            let stepping = Instant::now();
            while self.step() && (stopping || stepping.elapsed() < PUBLISH_EVERY) {}
            if stopping {
                self.close_repeats(true);
            } else if repeats_due {
                self.close_repeats(false);
                last_repeats = Instant::now();
            }
            if last_publish.elapsed() >= PUBLISH_EVERY || stopping {
                self.publish();
                last_publish = Instant::now();
            }
            if last_clock.elapsed() >= Duration::from_secs(60) {
                self.enricher.resync_clock();
                self.roles.forget_all();
                refresh_class_dirs(&mut self.sensor, &self.recording.rules);
                last_clock = Instant::now();
            }
            if stopping {
                return Ok(self.publish());
            }
        }
    }

    /// Stores the record of every repeat window that has closed (every
    /// window, when `all`: at shutdown).
    fn close_repeats(&mut self, all: bool) {
        let mut emit = store(&self.recording.records, &mut self.counters.record_errors);
        if all {
            self.repeats.close_all(&mut emit);
        } else {
            self.repeats.close_due(crate::model::now_ns(), &mut emit);
        }
        self.unscanned
            .close_due(crate::enrich::mono_now_ns(), all, &mut emit);
        self.counters.repeats_uncounted = self.repeats.overflowed();
    }

    /// Handles up to one batch of records; true when the batch was full
    /// (more may be waiting).
    fn step(&mut self) -> bool {
        let Self {
            sensor,
            enricher,
            payload,
            sinks,
            roles,
            recording,
            counters,
            tls_blind,
            enforced,
            repeats,
            unscanned,
            intake,
            ..
        } = self;
        // Processes of enforcing roles to mark once the batch is read.
        let mut to_mark: Vec<(u32, Option<u64>)> = Vec::new();
        // Processes to look at for TLS once the batch is read (the sensor
        // is busy draining), and processes seen starting TLS in the clear.
        let mut discover: Vec<(u32, Seen)> = Vec::new();
        let mut hellos: Vec<(u32, Option<Arc<str>>)> = Vec::new();
        // One record: `batched` when it was copied out of the ring with
        // the batch's sends, which were inspected first; `inspected`, a
        // send's own inspection.
        let mut handle =
            |payload: &mut Shards, bytes: &[u8], batched: bool, inspected: Option<Inspected>| {
                counters.received += 1;
                match decode(bytes) {
                    Ok(record) => {
                        // A flood's send, not scanned: counted in its
                        // connection's open window, with no record made of
                        // it (nor, with no event stream to show it, an event).
                        let unscanned_send = unscanned_send(&record, inspected.as_ref());
                        let counted = unscanned_send.is_some_and(|(key, bytes)| {
                            unscanned.count(key, record.header.ktime_ns, bytes)
                        });
                        if counted && sinks.is_empty() {
                            counters.sends_not_inspected += 1;
                            return;
                        }
                        let mut event = enricher.enrich(&record);
                        let pid = event.process.pid;
                        let role = roles.role_of(&event.process, || enricher.ancestors(pid));
                        let tgid = record.header.tgid;
                        if !enforced.contains(&tgid)
                            && !recording.rules.policy.role(&role).enforce.is_empty()
                        {
                            let by_cgroup = recording.rules.roles.decided_by_cgroup(&role);
                            to_mark.push((tgid, by_cgroup.then_some(event.process.cgroup_id)));
                        }
                        event.process.role = Some(role);
                        let hello = match (inspected, &mut event.detail) {
                            (Some(done), Detail::Payload(info)) => {
                                counters.sends_not_inspected +=
                                    u64::from(!done.inspection.inspected);
                                done.inspection.fill(info)
                            }
                            _ => false,
                        };
                        if hello {
                            hellos.push((tgid, event.process.exe.clone()));
                        }
                        match record.body {
                            Body::Exec(_) => discover.push((tgid, Seen::Exec)),
                            Body::Net(_) => discover.push((tgid, Seen::Connection)),
                            Body::Exit(_) => {
                                roles.forget(pid);
                                discover.push((tgid, Seen::Exit));
                                // (A batch inspected by shards forgot it in order.)
                                if !batched {
                                    payload.forget_process(tgid)
                                }
                            }
                            _ => {}
                        }
                        let Recording {
                            rules,
                            judges,
                            host,
                            names,
                            ..
                        } = recording;
                        let rec = if counted {
                            None
                        } else {
                            assess(rules, judges, host, names.as_deref(), &event)
                        };
                        if let Some(rec) = rec {
                            let mut emit = store(&recording.records, &mut counters.record_errors);
                            match unscanned_send {
                                Some((key, _)) => {
                                    unscanned.open(key, event.mono_ns, &rec, &mut emit);
                                    emit(rec);
                                }
                                None => repeats.admit(rec, &mut emit),
                            }
                        }
                        if let (false, Some(d)) = (sinks.is_empty(), &recording.names) {
                            redact_event(d, &mut event);
                        }
                        for sink in sinks.iter_mut() {
                            if sink.handle(&event).is_err() {
                                counters.sink_errors += 1;
                            }
                        }
                    }
                    Err(e) => {
                        counters.decode_errors += 1;
                        tracing::warn!(error = %e, "dropped an undecodable record");
                    }
                }
            };
        // Read straight from the ring, records before the batch's first
        // send go on at once; from it on they are copied out of the ring,
        // so that the sends of the rest of the batch are inspected together
        // (each stream's scanned once, in its shard) before any record goes
        // on. Behind, the batch comes whole from the backlog.
        let mut n = 0;
        let Taken {
            batch,
            budget,
            more,
        } = intake.take(sensor, |bytes| {
            n += 1;
            handle(payload, bytes, false, None)
        });
        n += batch.len();
        if !batch.is_empty() {
            let records = batch.records();
            let steps = crate::payload::steps(&records);
            let mut inspected = payload
                .inspect_within(&steps, budget)
                .into_iter()
                .peekable();
            for (index, bytes) in records.iter().enumerate() {
                // A slow batch (a burst of findings to record and print)
                // must not let the ring fill behind it.
                if index % TOP_UP_EVERY == TOP_UP_EVERY - 1 {
                    intake.top_up(sensor);
                }
                let done = inspected.next_if(|i| i.index == index);
                handle(payload, bytes, true, done);
            }
        }
        intake.recycle(batch);
        counters.paths_unknown = enricher.paths_unknown();
        if enricher.take_forget_paths() {
            if let Err(e) = sensor.forget_paths() {
                tracing::warn!(error = %e, "the kernel's path cache could not be reset");
            }
        }
        for (tgid, cgroup) in to_mark {
            if enforced.insert(tgid) {
                sensor.enforce(tgid, cgroup, true);
            }
        }
        for (pid, what) in discover {
            match what {
                Seen::Exec => {
                    sensor.forget_pid(pid);
                    sensor.discover(pid);
                }
                Seen::Connection if !sensor.discovered(pid) => sensor.discover(pid),
                Seen::Connection => {}
                Seen::Exit => {
                    sensor.forget_pid(pid);
                    if enforced.remove(&pid) {
                        sensor.enforce(pid, None, false);
                    }
                }
            }
        }
        for (pid, exe) in hellos {
            let exe = exe.map_or_else(|| format!("pid {pid}"), |e| e.to_string());
            if !tls_blind.contains(&exe) && !sensor.tls_hooked_in(pid) {
                tracing::info!(exe = %exe, "TLS from a binary whose plaintext is not read");
                if tls_blind.len() < MAX_BLIND {
                    tls_blind.push(exe);
                }
            }
        }
        if n > 0 {
            for sink in sinks.iter_mut() {
                if let Err(e) = sink.flush() {
                    tracing::warn!(error = %e, "sink flush failed");
                }
            }
        }
        more
    }

    fn publish(&mut self) -> Counters {
        self.counters.streams_evicted = self.payload.evicted();
        self.counters.backlog_bytes = self.intake.backlog().bytes() as u64;
        self.counters.backlog_peak_bytes = self.intake.backlog().peak() as u64;
        let snapshot = Counters {
            kernel: self.sensor.kernel_counters(),
            pipeline: self.counters,
            processes_tracked: self.enricher.process_count(),
            tls_hooked: self.sensor.tls_attached(),
            tls_blind: self.tls_blind.clone(),
        };
        if let Ok(mut shared) = self.shared.lock() {
            *shared = snapshot.clone();
        }
        snapshot
    }
}

/// When `record` is a send `inspected` says was not scanned: its
/// connection, as [`UnscannedSends`] counts by, and its size.
fn unscanned_send(
    record: &crate::wire::Record<'_>,
    inspected: Option<&Inspected>,
) -> Option<(SendKey, i64)> {
    let (Some(done), Body::Payload(body)) = (inspected, &record.body) else {
        return None;
    };
    if done.inspection.inspected {
        return None;
    }
    let key = SendKey {
        tgid: record.header.tgid,
        conn_id: body.sock.conn_id,
        tls: body.flags & monitor_common::PAYLOAD_TLS != 0,
    };
    Some((key, body.size))
}

/// Hands the kernel the classified directories as they are on disk now.
fn refresh_class_dirs(sensor: &mut Sensor, rules: &RuleSet) {
    if let Err(e) = sensor.set_class_dirs(&crate::classify::class_dirs(&rules.classes)) {
        tracing::error!(error = %e, "cannot update the kernel's classified directories");
    }
}

/// Hands records to the record writer, counting each it cannot take
/// (dropped) in `errors`.
fn store<'a>(records: &'a RecordSender, errors: &'a mut u64) -> impl FnMut(Record) + 'a {
    move |rec| {
        if records.send(rec).is_err() {
            *errors += 1;
        }
    }
}

/// The per-record work after enrichment: classifies `event`, asks the
/// judge chain, and returns what the record keeps (accesses to classified
/// data, payloads with findings, and violations), or `None`. With `names`,
/// the record's names are masked ([`redact_record`]).
pub fn assess(
    rules: &RuleSet,
    judges: &mut Chain,
    host: &Arc<str>,
    names: Option<&monitor_pii::Detector>,
    event: &Event,
) -> Option<Record> {
    let access = classify(&rules.classes, event)?;
    let findings = match &event.detail {
        Detail::Payload(p) => p.findings.as_slice(),
        _ => &[],
    };
    let role = event.process.role.as_deref().unwrap_or(UNASSIGNED);
    let mut alerts = judges.judge(&Case {
        role,
        access: &access,
        findings,
        event,
    });
    if matches!(&event.detail, Detail::Payload(p) if !p.inspected) {
        alerts.push(Alert::new(
            Severity::High,
            NOT_INSPECTED_RULE,
            "a send recorded but not scanned for PII: the daemon was behind, and this \
             connection was among the busiest",
        ));
    }
    let alert = worst(alerts);
    // Outbound connections off the host are kept (the anomaly learner
    // learns each role's destinations from them); other unclassified
    // accesses only when they broke a rule.
    let egress = access.action == Action::Connect
        && access
            .remote
            .is_some_and(|(ip, _)| !ip.is_loopback() && !ip.is_unspecified());
    if access.class.is_none() && findings.is_empty() && alert.is_none() && !egress {
        return None;
    }
    let mut rec = Record::of_access(host, event, access, alert);
    if let Some(d) = names {
        redact_record(d, &mut rec);
    }
    Some(rec)
}

#[cfg(test)]
mod tests {
    //! The per-record function over synthetic events, through the judge
    //! chain: no kernel, no sensor.
    use super::*;
    use crate::judge::Judge;
    use crate::model::{Action, Alert, Outcome, Severity};
    use serde_json::json;

    fn event(role: &str, detail: serde_json::Value) -> Event {
        let mut v = json!({
            "time": "2026-12-04T03:00:00Z",
            "mono_ns": 1,
            "process": {
                "pid": 4242, "tid": 4242, "ppid": 1, "uid": 1500, "gid": 1500,
                "user": "alice", "comm": "python3", "exe": "/usr/bin/python3",
                "cgroup_id": 7, "role": role
            }
        });
        for (k, val) in detail.as_object().unwrap() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap()
    }

    fn open(role: &str, path: &str, flags: i32) -> Event {
        event(
            role,
            json!({"kind": "file", "op": "open", "path": path, "flags": flags, "result": 3}),
        )
    }

    fn send(role: &str, to: &str, kinds: &[&str]) -> Event {
        let findings: Vec<_> = kinds
            .iter()
            .map(|k| {
                json!({"type": k, "start": 0, "end": 16, "score": 1.0,
                       "masked": "411111******1111",
                       "fingerprint": "0123456789abcdef0123456789abcdef"})
            })
            .collect();
        event(
            role,
            json!({"kind": "payload", "op": "write", "direction": "out", "tls": true,
                   "fd": 5, "bytes": 120, "captured": 120, "remote_addr": to,
                   "remote_port": 443, "conn_id": 9, "stream_offset": 0,
                   "digest": "00", "findings": findings}),
        )
    }

    fn run(rules: &RuleSet, chain: &mut Chain, e: &Event) -> Option<Record> {
        assess(rules, chain, &Arc::from("host"), None, e)
    }

    #[test]
    fn classified_accesses_are_recorded_and_judged() {
        let rules = RuleSet::shipped();
        let mut chain = Chain::standard(&rules);
        let card = "/srv/cardholder/disputes.csv";

        let r = run(&rules, &mut chain, &open("billing-agent", card, 0)).unwrap();
        assert_eq!(
            (r.action, r.class.as_deref(), r.outcome, r.alert.as_ref()),
            (
                Action::Read,
                Some("cardholder-data"),
                Outcome::Allowed,
                None
            )
        );
        assert_eq!(
            (r.pid, &*r.role, r.object.as_str()),
            (4242, "billing-agent", card)
        );

        let r = run(&rules, &mut chain, &open("support-agent", card, 0)).unwrap();
        let a = r.alert.unwrap();
        assert_eq!(
            (a.rule.as_str(), a.severity),
            ("class-read", Severity::High)
        );
        assert_eq!(r.outcome, Outcome::Violation);

        let w = open("billing-agent", card, libc::O_WRONLY);
        let a = run(&rules, &mut chain, &w).unwrap().alert.unwrap();
        assert_eq!(a.rule, "class-write");

        let crm = open("support-agent", "/srv/crm/profile.json", 0);
        let r = run(&rules, &mut chain, &crm).unwrap();
        assert_eq!(
            (r.class.as_deref(), r.alert),
            (Some("customer-profile"), None)
        );
    }

    #[test]
    fn unclassified_and_lifecycle_events_leave_no_record() {
        let rules = RuleSet::shipped();
        let mut chain = Chain::standard(&rules);
        assert!(run(&rules, &mut chain, &open("chatbot", "/tmp/notes.txt", 0)).is_none());
        let exec = event(
            "chatbot",
            json!({"kind": "exec", "exe": "/bin/true", "filename": "/bin/true", "argv": ["true"]}),
        );
        assert!(run(&rules, &mut chain, &exec).is_none());
        // A payload without findings to an allowed destination: nothing to keep.
        assert!(run(&rules, &mut chain, &send("chatbot", "203.0.113.7", &[])).is_none());
    }

    #[test]
    fn a_send_not_scanned_is_recorded_with_its_alert() {
        let rules = RuleSet::shipped();
        let mut chain = Chain::standard(&rules);
        let mut e = send("chatbot", "203.0.113.7", &[]);
        let Detail::Payload(info) = &mut e.detail else {
            panic!("not a payload event")
        };
        info.inspected = false;
        let r = run(&rules, &mut chain, &e).expect("a record of the send not scanned");
        let alert = r.alert.expect("an alert");
        assert_eq!(
            (r.action, alert.rule.as_str(), alert.severity),
            (Action::Send, NOT_INSPECTED_RULE, Severity::High)
        );
        assert_eq!(r.object, "203.0.113.7:443");
        // The event says so; a scanned send's event does not carry the field.
        let shown = serde_json::to_value(&e).unwrap();
        assert_eq!(shown["inspected"], false);
        let scanned = serde_json::to_value(send("chatbot", "203.0.113.7", &[])).unwrap();
        assert!(scanned.get("inspected").is_none(), "{scanned}");
    }

    #[test]
    fn an_unscanned_sends_raw_record_gives_its_events_connection() {
        use monitor_common::{EventHeader, EventKind, PayloadBody, SockInfo, StrKind};
        // SAFETY: all-zero is a valid header (plain integers).
        let mut header: EventHeader = unsafe { std::mem::zeroed() };
        header.kind = EventKind::Payload as u32;
        (header.tgid, header.pid, header.ktime_ns) = (4242, 4242, 5_000);
        let none = crate::wire::RawStr {
            kind: StrKind::None,
            bytes: &[],
            cut: false,
        };
        let record = crate::wire::Record {
            header,
            body: Body::Payload(PayloadBody {
                op: 1,
                fd: 7,
                size: 200,
                captured: 200,
                flags: monitor_common::PAYLOAD_TLS,
                sock: SockInfo {
                    family: 2,
                    port: 443,
                    conn_id: 99,
                    ..SockInfo::default()
                },
            }),
            strs: [none; monitor_common::MAX_STRS],
            payload: &[b'x'; 200],
        };
        let done = |inspected| Inspected {
            index: 0,
            inspection: crate::payload::Inspection {
                stream_offset: 0,
                findings: Vec::new(),
                dest_host: None,
                digest: String::new(),
                hello: false,
                inspected,
            },
        };
        // The window is opened under the key the event's own fields give.
        let event = crate::enrich::Enricher::new(None).enrich(&record);
        let Detail::Payload(p) = &event.detail else {
            panic!("not a payload event")
        };
        let key = SendKey {
            tgid: event.process.pid,
            conn_id: p.conn_id,
            tls: p.tls,
        };
        let mut sends = UnscannedSends::new(Duration::from_secs(1), 8);
        let mut first = send("chatbot", "203.0.113.7", &[]);
        if let Detail::Payload(p) = &mut first.detail {
            p.inspected = false;
        }
        let rules = RuleSet::shipped();
        let first =
            run(&rules, &mut Chain::standard(&rules), &first).expect("the first send's record");
        assert_eq!(unscanned_send(&record, Some(&done(true))), None);
        assert_eq!(unscanned_send(&record, None), None);
        assert_eq!(
            unscanned_send(&record, Some(&done(false))),
            Some((key, 200))
        );
        assert!(!sends.count(key, record.header.ktime_ns, 200));
        sends.open(key, event.mono_ns, &first, &mut |_| ());
        assert!(sends.count(key, record.header.ktime_ns, 200));
        let mut out = Vec::new();
        sends.close_due(0, true, &mut |r| out.push(r));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].repeats.map(|c| c.count), Some(1));
        assert_eq!(out[0].bytes, Some(200));
    }

    #[test]
    fn payload_findings_take_the_class_and_severity_the_rules_give() {
        let rules = RuleSet::shipped();
        let mut chain = Chain::standard(&rules);
        let r = run(
            &rules,
            &mut chain,
            &send("chatbot", "203.0.113.7", &["CREDIT_CARD"]),
        )
        .unwrap();
        assert_eq!(
            (r.action, r.class.as_deref()),
            (Action::Send, Some("cardholder-data"))
        );
        let a = r.alert.unwrap();
        assert_eq!(
            (a.rule.as_str(), a.severity),
            ("pii-egress", Severity::High)
        );
        assert_eq!(r.findings[0].masked, "411111******1111");
        let r = run(
            &rules,
            &mut chain,
            &send("chatbot", "203.0.113.7", &["CVV"]),
        )
        .unwrap();
        assert_eq!(r.alert.unwrap().severity, Severity::Critical);
        // Allowed PII is still recorded (findings), without an alert.
        let r = run(
            &rules,
            &mut chain,
            &send("chatbot", "203.0.113.7", &["EMAIL_ADDRESS"]),
        );
        assert_eq!(r.unwrap().outcome, Outcome::Allowed);
    }

    #[test]
    fn severity_follows_a_renamed_class() {
        let dir = tempfile::tempdir().unwrap();
        let classes = "[[path]]\nglob = \"/srv/pan/**\"\nclass = \"pan\"\n\n\
                       [pii]\nCREDIT_CARD = \"pan\"\n\n[severity]\npan = \"critical\"\n";
        std::fs::write(dir.path().join("classes.toml"), classes).unwrap();
        std::fs::write(
            dir.path().join("policy.toml"),
            "[role.billing-agent]\nread = [\"pan\"]\n",
        )
        .unwrap();
        let rules = RuleSet::load(Some(dir.path())).unwrap();
        let mut chain = Chain::standard(&rules);
        let r = run(
            &rules,
            &mut chain,
            &open("support-agent", "/srv/pan/a.csv", 0),
        )
        .unwrap();
        let a = r.alert.unwrap();
        assert_eq!(
            (r.class.as_deref(), a.severity),
            (Some("pan"), Severity::Critical)
        );
        assert!(run(
            &rules,
            &mut chain,
            &open("billing-agent", "/srv/pan/a.csv", 0)
        )
        .unwrap()
        .alert
        .is_none());
    }

    /// A judge that flags every send, to show the chain asks each judge in turn.
    struct EverySend;
    impl Judge for EverySend {
        fn name(&self) -> &'static str {
            "every-send"
        }
        fn judge(&mut self, case: &Case<'_>) -> Vec<Alert> {
            if case.access.action != Action::Send {
                return vec![];
            }
            vec![Alert {
                explain: None,
                severity: Severity::Low,
                rule: "every-send".into(),
                message: format!("{} sent", case.role),
            }]
        }
        fn reload(&mut self, _: &RuleSet) {}
    }

    #[test]
    fn every_judge_in_the_chain_is_asked_and_the_worst_leads() {
        let rules = RuleSet::shipped();
        let mut chain = Chain::new(vec![
            Box::new(crate::judge::policy::PolicyJudge::new(&rules)),
            Box::new(EverySend),
        ]);
        assert_eq!(chain.names(), ["policy", "every-send"]);
        let e = send("chatbot", "203.0.113.7", &["CREDIT_CARD"]);
        let a = run(&rules, &mut chain, &e).unwrap().alert.unwrap();
        assert_eq!(
            (a.rule.as_str(), a.severity),
            ("pii-egress", Severity::High)
        );
        assert!(a.message.ends_with("; chatbot sent"), "{}", a.message);
        let e = send("chatbot", "203.0.113.7", &["EMAIL_ADDRESS"]);
        let a = run(&rules, &mut chain, &e).unwrap().alert.unwrap();
        assert_eq!(a.rule, "every-send");
    }
}
