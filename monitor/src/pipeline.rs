//! The pipeline: owns the stages and moves records through them, left to
//! right (sensor → decode → enrich → role → payload detection → classify →
//! policy → record, and the event sinks). No stage knows another; this is
//! the one place they are composed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::sync::mpsc::Receiver;

use crate::enrich::Enricher;
use crate::event::{Detail, Event};
use crate::output::EventSink;
use crate::payload::PayloadStage;
use crate::policy::worst;
use crate::record::writer::RecordSender;
use crate::record::Record;
use crate::roles::RoleResolver;
use crate::rules::RuleSet;
use crate::sensor::decode::{decode, Body};
use crate::sensor::{KernelCounters, Sensor, SensorError};
use crate::status::PipelineCounters;

/// How long one wait on the ring buffer lasts. The kernel wakes the reader
/// only once a batch is pending, so this bounds the delay of a lone event.
const WAIT: Duration = Duration::from_millis(20);
/// Records handled between sink flushes.
const BATCH: usize = 4096;
/// How often the shared counters are refreshed.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// Counters the pipeline publishes for the status report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Kernel-side counters.
    pub kernel: KernelCounters,
    /// Userspace counters.
    pub pipeline: PipelineCounters,
    /// Processes in the process table.
    pub processes_tracked: usize,
}

/// The stages after detection: roles, classes and policy from the rules,
/// and the record writer's queue.
pub struct Recording {
    /// The rules in force.
    pub rules: RuleSet,
    /// The record writer's queue.
    pub records: RecordSender,
    /// This host's name, stamped on every record.
    pub host: Arc<str>,
    /// New rule sets (validated) from reloads.
    pub reloads: Receiver<RuleSet>,
}

/// The stages, composed.
pub struct Pipeline {
    sensor: Sensor,
    enricher: Enricher,
    payload: PayloadStage,
    sinks: Vec<Box<dyn EventSink>>,
    roles: RoleResolver,
    recording: Recording,
    counters: PipelineCounters,
    shared: Arc<Mutex<Counters>>,
}

impl Pipeline {
    /// A pipeline over a started sensor.
    pub fn new(
        sensor: Sensor,
        enricher: Enricher,
        payload: PayloadStage,
        sinks: Vec<Box<dyn EventSink>>,
        recording: Recording,
    ) -> Self {
        Self {
            sensor,
            enricher,
            payload,
            sinks,
            roles: RoleResolver::new(recording.rules.roles.clone()),
            recording,
            counters: PipelineCounters::default(),
            shared: Arc::default(),
        }
    }

    /// The counters this pipeline publishes while it runs.
    pub fn counters(&self) -> Arc<Mutex<Counters>> {
        self.shared.clone()
    }

    /// Runs until `stop` is set, then drains what is left and flushes.
    pub fn run(mut self, stop: &AtomicBool) -> Result<Counters, SensorError> {
        let mut last_publish = Instant::now();
        let mut last_clock = Instant::now();
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            if !stopping {
                self.sensor.wait(WAIT)?;
            }
            while self.step() == BATCH {}
            if last_publish.elapsed() >= PUBLISH_EVERY || stopping {
                self.publish();
                last_publish = Instant::now();
            }
            if last_clock.elapsed() >= Duration::from_secs(60) {
                self.enricher.resync_clock();
                self.roles.forget_all();
                last_clock = Instant::now();
            }
            while let Ok(rules) = self.recording.reloads.try_recv() {
                self.roles.set_rules(rules.roles.clone());
                self.recording.rules = rules;
            }
            if stopping {
                return Ok(self.publish());
            }
        }
    }

    /// Handles up to one batch of records; returns how many.
    fn step(&mut self) -> usize {
        let Self {
            sensor,
            enricher,
            payload,
            sinks,
            roles,
            recording,
            counters,
            ..
        } = self;
        let n = sensor.drain(BATCH, |bytes| {
            counters.received += 1;
            match decode(bytes) {
                Ok(record) => {
                    let mut event = enricher.enrich(&record);
                    let pid = event.process.pid;
                    event.process.role =
                        Some(roles.role_of(&event.process, || enricher.ancestors(pid)));
                    match record.body {
                        Body::Payload(_) => payload.process(&record, &mut event),
                        Body::Exit(_) => {
                            roles.forget(pid);
                            if !payload.is_empty() {
                                payload.forget_process(record.header.tgid)
                            }
                        }
                        _ => {}
                    }
                    if let Some(rec) = judge(recording, &event) {
                        if recording.records.send(rec).is_err() {
                            counters.record_errors += 1;
                        }
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
        });
        if n > 0 {
            for sink in sinks.iter_mut() {
                if let Err(e) = sink.flush() {
                    tracing::warn!(error = %e, "sink flush failed");
                }
            }
        }
        n
    }

    fn publish(&mut self) -> Counters {
        self.counters.streams_evicted = self.payload.evicted();
        let snapshot = Counters {
            kernel: self.sensor.kernel_counters(),
            pipeline: self.counters,
            processes_tracked: self.enricher.process_count(),
        };
        if let Ok(mut shared) = self.shared.lock() {
            *shared = snapshot;
        }
        snapshot
    }
}

/// Classifies `event`, asks the policy, and returns what the record keeps:
/// accesses to classified data, payloads with findings, and violations.
fn judge(recording: &Recording, event: &Event) -> Option<Record> {
    let rules = &recording.rules;
    let access = rules.classes.classify(event)?;
    let findings = match &event.detail {
        Detail::Payload(p) => p.findings.as_slice(),
        _ => &[],
    };
    let role = event
        .process
        .role
        .as_deref()
        .unwrap_or(crate::roles::UNASSIGNED);
    let alert = worst(rules.policy.judge(role, &access, findings));
    if access.class.is_none() && findings.is_empty() && alert.is_none() {
        return None;
    }
    Some(Record::of_access(&recording.host, event, access, alert))
}
