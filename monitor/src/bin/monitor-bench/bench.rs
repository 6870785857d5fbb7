//! The benchmarks behind `cargo xtask bench` (sensor, payload, store).
//!
//! The parent loads the real sensor and runs the real decode and enrich
//! stages; a child process (this binary again, `sensor-child`) opens one file
//! `opens` times, as fast as it can or paced to `rate` per second. The report
//! says how many of the child's opens arrived as events, how fast, and what
//! the kernel counted as lost.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use monitor::enrich::Enricher;
use monitor::event::Detail;
use monitor::sensor::{Sensor, SensorSettings};
use monitor::wire::decode;

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct SensorBenchReport {
    /// Opens the child made.
    pub opens: u64,
    /// The pace asked for (0: as fast as possible).
    pub target_rate: u64,
    /// The pace the child achieved, opens per second.
    pub child_rate: f64,
    /// The child's open events received and enriched.
    pub received: u64,
    /// Received events per second, from the child's start to the last event.
    pub delivered_per_sec: f64,
    /// Opens that never arrived.
    pub missing: u64,
    /// Records the kernel could not queue during the run (ring buffer full).
    pub ringbuf_full: u64,
    /// Records decoded that were not the child's opens (other activity).
    pub other_events: u64,
}

/// Runs one benchmark round.
pub fn run_sensor_bench(opens: u64, rate: u64, ring_mib: u32) -> anyhow::Result<SensorBenchReport> {
    let target = std::env::temp_dir().join(format!("monitor-bench-{}", std::process::id()));
    std::fs::write(&target, b"x").context("creating the benchmark file")?;
    let target_str = target.to_string_lossy().into_owned();

    let mut sensor = Sensor::start(&SensorSettings {
        ring_bytes: ring_mib << 20,
        ..SensorSettings::default()
    })
    .context("starting the sensor")?;
    let mut enricher = Enricher::new(None);

    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "sensor-child",
            "--opens",
            &opens.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .arg(&target)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning the benchmark child")?;
    let child_pid = child.id();
    // Let the sensor drain the child's start-up before the measured run.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(300) {
        sensor.wait(Duration::from_millis(20))?;
        sensor.drain(usize::MAX, |_| {});
    }
    let before = sensor.kernel_counters();

    let start = Instant::now();
    child
        .stdin
        .take()
        .context("child stdin")?
        .write_all(b"go\n")?;
    let mut received = 0u64;
    let mut other = 0u64;
    let mut last_event = start;
    let mut exited_at: Option<Instant> = None;
    loop {
        sensor.wait(Duration::from_millis(50))?;
        let n = sensor.drain(usize::MAX, |bytes| {
            let Ok(rec) = decode(bytes) else { return };
            let ev = enricher.enrich(&rec);
            match &ev.detail {
                Detail::File(f) if ev.process.pid == child_pid && f.path == target_str => {
                    received += 1;
                }
                _ => other += 1,
            }
        });
        if n > 0 {
            last_event = Instant::now();
        }
        if exited_at.is_none() && child.try_wait()?.is_some() {
            exited_at = Some(Instant::now());
        }
        // Done when everything arrived, or nothing more came for a while after the child exited.
        if received >= opens
            || exited_at.is_some_and(|t| t.elapsed() > Duration::from_millis(500) && n == 0)
        {
            break;
        }
    }
    let after = sensor.kernel_counters();
    child.wait()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("child stdout")?).read_line(&mut line)?;
    let child_secs: f64 = line.trim().parse().context("child's elapsed time")?;
    std::fs::remove_file(&target).ok();

    let elapsed = last_event.duration_since(start).as_secs_f64().max(1e-9);
    Ok(SensorBenchReport {
        opens,
        target_rate: rate,
        child_rate: opens as f64 / child_secs.max(1e-9),
        received,
        delivered_per_sec: received as f64 / elapsed,
        missing: opens.saturating_sub(received),
        ringbuf_full: after.ringbuf_full - before.ringbuf_full,
        other_events: other,
    })
}

/// Holds a load generator to `rate` operations per second (0: no limit):
/// before operation `i`, spins until its due time.
fn pace(start: Instant, i: u64, rate: u64) {
    if rate > 0 && i.is_multiple_of(64) {
        let due = Duration::from_secs_f64(i as f64 / rate as f64);
        while start.elapsed() < due {
            std::hint::spin_loop();
        }
    }
}

/// The child's side: waits for a line on stdin, then opens `path` `opens`
/// times (paced to `rate` per second unless 0), then prints the seconds taken.
pub fn run_bench_child(opens: u64, rate: u64, path: &std::path::Path) -> anyhow::Result<()> {
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let start = Instant::now();
    for i in 0..opens {
        pace(start, i, rate);
        drop(std::fs::File::open(path)?);
    }
    println!("{}", start.elapsed().as_secs_f64());
    Ok(())
}

/// What one payload benchmark round measured.
#[derive(Debug, Serialize)]
pub struct PayloadBenchReport {
    /// Whether the sensor and pipeline ran during the round.
    pub with_sensor: bool,
    /// Threads inspecting a batch's sends (`monitor run --payload-threads`).
    pub threads: usize,
    /// Sends the child made.
    pub sends: u64,
    /// Bytes per send.
    pub size: usize,
    /// The pace asked for (0: as fast as possible).
    pub target_rate: u64,
    /// Seconds the child took.
    pub child_secs: f64,
    /// Sends per second the child achieved.
    pub child_rate: f64,
    /// The child's sends captured as payload events.
    pub captured: u64,
    /// Of those, the sends recorded but not scanned (the inspection was
    /// behind; the pipeline does the same).
    pub not_inspected: u64,
    /// PII findings the detector reported in them.
    pub findings: u64,
    /// Records the kernel could not queue during the round.
    pub ringbuf_full: u64,
    /// The backlog's bound (`monitor run --backlog-mib`), MiB.
    pub backlog_mib: f64,
    /// The most of it that was taken, MiB.
    pub backlog_peak_mib: f64,
    /// Seconds from the child's first send until its last send was
    /// handled (the backlog worked through).
    pub handled_secs: f64,
}

/// Loopback sends of `size` bytes from a child, with or without the sensor and
/// the whole payload path (decode, enrich, PII streams) running.
pub fn run_payload_bench(
    sends: u64,
    size: usize,
    rate: u64,
    with_sensor: bool,
    threads: usize,
    backlog_bytes: usize,
) -> anyhow::Result<PayloadBenchReport> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let drain = std::thread::spawn(move || {
        use std::io::Read as _;
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = vec![0u8; 1 << 16];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let mut sensor = if with_sensor {
        Some(Sensor::start(&SensorSettings::default()).context("starting the sensor")?)
    } else {
        None
    };
    let detector = std::sync::Arc::new(monitor_pii::Detector::new(
        monitor_pii::PiiRules::defaults(),
        monitor_pii::FingerprintKey::from_bytes(&[1; 32]),
    ));
    let mut enricher = Enricher::new(None);
    // As in a daemon that only stores (no event stream to show digests),
    // with `threads` inspecting a busy batch as the pipeline does.
    let mut payloads = monitor::payload::Shards::new(detector, threads).without_digests();

    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "payload-child",
            "--port",
            &port.to_string(),
            "--sends",
            &sends.to_string(),
        ])
        .args(["--size", &size.to_string(), "--rate", &rate.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawning the payload child")?;
    let child_pid = child.id();
    let before = sensor
        .as_ref()
        .map(Sensor::kernel_counters)
        .unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    if let Some(s) = sensor.as_mut() {
        s.drain(usize::MAX, |_| {});
    }
    child
        .stdin
        .take()
        .context("child stdin")?
        .write_all(b"go\n")?;
    let (mut captured, mut findings, mut not_inspected) = (0u64, 0u64, 0u64);
    let mut intake = monitor::backlog::Intake::new(backlog_bytes);
    let go = Instant::now();
    let mut last_handled = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        let n = match sensor.as_mut() {
            Some(s) => {
                if intake.backlog().is_empty() {
                    s.wait(Duration::from_millis(20))?;
                }
                // As the pipeline takes its batches: behind, through the
                // backlog, and past that with the busiest connections
                // recorded unscanned.
                let taken = intake.take(s, |_| {});
                let records = taken.batch.records();
                let captured_before = captured;
                let inspected =
                    payloads.inspect_within(&monitor::payload::steps(&records), taken.budget);
                for done in inspected {
                    let Ok(rec) = decode(records[done.index]) else {
                        continue;
                    };
                    let ev = enricher.enrich(&rec);
                    let tls = matches!(&ev.detail, Detail::Payload(p) if p.tls);
                    if ev.process.pid == child_pid && !tls {
                        captured += 1;
                        findings += done.inspection.findings.len() as u64;
                        not_inspected += u64::from(!done.inspection.inspected);
                    }
                }
                if captured > captured_before {
                    last_handled = Some(Instant::now());
                }
                let n = records.len() + usize::from(taken.more);
                intake.recycle(taken.batch);
                n
            }
            None => {
                std::thread::sleep(Duration::from_millis(20));
                0
            }
        };
        if exited_at.is_none() && child.try_wait()?.is_some() {
            exited_at = Some(Instant::now());
        }
        if exited_at.is_some_and(|t| {
            (t.elapsed() > Duration::from_millis(300) && n == 0) || sensor.is_none()
        }) {
            break;
        }
    }
    let after = sensor
        .as_ref()
        .map(Sensor::kernel_counters)
        .unwrap_or_default();
    drop(sensor);
    child.wait()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("child stdout")?).read_line(&mut line)?;
    drain.join().ok();
    let child_secs: f64 = line.trim().parse().context("child's elapsed time")?;
    Ok(PayloadBenchReport {
        with_sensor,
        threads,
        sends,
        size,
        target_rate: rate,
        child_secs,
        child_rate: sends as f64 / child_secs.max(1e-9),
        captured,
        not_inspected,
        findings,
        ringbuf_full: after.ringbuf_full - before.ringbuf_full,
        backlog_mib: backlog_bytes as f64 / f64::from(1 << 20),
        backlog_peak_mib: intake.backlog().peak() as f64 / f64::from(1 << 20),
        handled_secs: last_handled.map_or(0.0, |t| (t - go).as_secs_f64()),
    })
}

/// The payload benchmark's sender: connects, waits for a line on stdin, then
/// sends `sends` slices of contact-center text of `size` bytes, paced to
/// `rate` per second unless 0; prints the seconds taken.
pub fn run_payload_child(port: u16, sends: u64, size: usize, rate: u64) -> anyhow::Result<()> {
    let text = monitor_pii::synth::corpus_text("contact", size * 256, 7).into_bytes();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port))?;
    sock.set_nodelay(true)?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;
    let chunks = text.len() / size;
    let start = Instant::now();
    for i in 0..sends {
        pace(start, i, rate);
        let k = (i as usize % chunks) * size;
        sock.write_all(&text[k..k + size])?;
    }
    println!("{}", start.elapsed().as_secs_f64());
    Ok(())
}

/// What the record benchmark measured.
#[derive(Debug, Serialize)]
pub struct StoreBenchReport {
    /// Records stored.
    pub records: u64,
    /// Records per append (one chain step and one flush each).
    pub batch: usize,
    /// Average stored record size (JSON), bytes.
    pub record_bytes: usize,
    /// Ingest rate, records per second, flushes included.
    pub ingest_per_sec: f64,
    /// Followers attached during ingest (a JSON-lines file sink each).
    pub followers: usize,
    /// Seconds after ingest until every follower had handled every record.
    pub follower_catch_up_secs: f64,
    /// Distinct paths in the record.
    pub paths: u64,
    /// `who-accessed PATH` (newest 100): median, 99th percentile and worst, ms.
    pub who_accessed_ms: [f64; 3],
    /// `who-accessed DIR/` over a directory holding 1/50 of the records (newest 100), ms.
    pub who_accessed_dir_ms: [f64; 3],
    /// `alerts` (newest 100), ms.
    pub alerts_ms: [f64; 3],
    /// `trace-pii` by fingerprint, ms.
    pub trace_ms: [f64; 3],
    /// `verify` of the whole chain, seconds.
    pub verify_secs: f64,
    /// Size of the store on disk, MiB.
    pub disk_mib: f64,
    /// The process's resident memory after each tenth of the ingest, MiB.
    pub rss_mib_during_ingest: Vec<f64>,
    /// Resident memory after `verify`, MiB.
    pub rss_mib_after_verify: f64,
}

/// Median, 99th percentile and worst of `samples` (ms).
fn spread(mut samples: Vec<f64>) -> [f64; 3] {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.99), at(1.0)]
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64() * 1e3)
}

/// Fills a fresh store with `records` synthetic records (the daemon's
/// writer batch size), then times the analyst queries over it.
pub fn run_store_bench(
    records: u64,
    paths: u64,
    followers: usize,
) -> anyhow::Result<StoreBenchReport> {
    use monitor::event::PiiFinding;
    use monitor::model::Action;
    use monitor::model::{Alert, Severity};
    use monitor::model::{Outcome, Record};
    use monitor::record::query::Filter;
    use monitor::record::writer::BATCH;
    use monitor::record::Store;
    use std::sync::Arc;

    let scratch = crate::ScratchDir::new("store-bench");
    let dir = scratch.path();
    let store = Arc::new(Store::open(&dir.join("record"), &dir.join("record.key"))?);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut running = Vec::new();
    for n in 0..followers {
        let sink = monitor::sinks::jsonl::JsonlFile::open(&dir.join(format!("sink-{n}.jsonl")))?;
        running.push(monitor::record::follow::spawn(
            store.clone(),
            Box::new(sink),
            stop.clone(),
        )?);
    }
    let host: Arc<str> = Arc::from("bench-host");
    let roles: Vec<Arc<str>> = [
        "billing-agent",
        "support-agent",
        "chatbot",
        "ai-assistant",
        "crm-service",
        "admin",
    ]
    .into_iter()
    .map(Arc::from)
    .collect();
    let users: Vec<Arc<str>> = (0..200)
        .map(|i| Arc::from(format!("agent{i:03}")))
        .collect();
    let classes: Vec<Arc<str>> = ["cardholder-data", "customer-profile", "call-recording"]
        .into_iter()
        .map(Arc::from)
        .collect();
    let path = |i: u64| {
        format!(
            "/srv/cardholder/dept{:02}/customer-{i:06}.json",
            (i / 1000) % 50
        )
    };
    let fingerprint = |i: u64| -> monitor_pii::Fingerprint {
        format!("{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .parse()
            .expect("32 hex digits")
    };
    let exe: Arc<str> = Arc::from("/usr/bin/python3.11");
    let base = 1_700_000_000_000_000_000u64;
    let make = |i: u64| {
        let send = i.is_multiple_of(10);
        Record {
            seq: 0,
            time: humantime::format_rfc3339_nanos(
                std::time::UNIX_EPOCH + Duration::from_nanos(base + i * 1000),
            )
            .to_string(),
            time_ns: base + i * 1000,
            host: host.clone(),
            pid: 1000 + (i % 30_000) as u32,
            exe: Some(exe.clone()),
            comm: "python3".into(),
            uid: 2000 + (i % 200) as u32,
            user: Some(users[(i % 200) as usize].clone()),
            role: roles[(i % 6) as usize].clone(),
            action: if send { Action::Send } else { Action::Read },
            object: if send {
                "203.0.113.9:443".into()
            } else {
                path((i * 7919) % paths)
            },
            dest_host: send.then(|| "api.model.example".into()),
            class: Some(classes[(i % 3) as usize].clone()),
            bytes: send.then_some(512),
            findings: if send {
                vec![PiiFinding {
                    kind: "CREDIT_CARD".into(),
                    start: 40,
                    end: 59,
                    score: 1.0,
                    masked: "411111******1111".into(),
                    fingerprint: fingerprint(i / 10),
                    field: None,
                }]
            } else {
                Vec::new()
            },
            outcome: if i.is_multiple_of(50) {
                Outcome::Violation
            } else {
                Outcome::Allowed
            },
            errno: None,
            alert: i.is_multiple_of(50).then(|| Alert {
                explain: None,
                severity: Severity::High,
                rule: "pii-egress".into(),
                message: "role chatbot sent CREDIT_CARD to 203.0.113.9:443".into(),
            }),
            truncated: false,
            tls: false,
            run: None,
            via: None,
            reason: None,
            context: None,
            repeats: None,
        }
    };
    let sample_bytes =
        serde_json::to_vec(&make(10))?.len() + serde_json::to_vec(&make(11))?.len() * 9;

    let start = Instant::now();
    let mut i = 0;
    let mut rss = Vec::new();
    let tenth = (records / 10).max(1);
    while i < records {
        let n = (records - i).min(BATCH as u64);
        let mut batch: Vec<Record> = (i..i + n).map(make).collect();
        store.append(&mut batch)?;
        if i / tenth != (i + n) / tenth {
            rss.push(crate::soak::rss_mib(std::process::id()));
        }
        i += n;
    }
    let ingest = start.elapsed().as_secs_f64();
    let head = store.head();
    while running.iter().any(|f| f.status(head).lag > 0) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let catch_up = start.elapsed().as_secs_f64() - ingest;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in &mut running {
        f.join();
    }

    let all = Filter {
        limit: 100,
        ..Filter::default()
    };
    let mut who = Vec::new();
    let mut who_dir = Vec::new();
    let mut alerts = Vec::new();
    let mut trace = Vec::new();
    for q in 0..200u64 {
        // A path that read records have (sends go to the network).
        let i = q * 37 + 1 + u64::from((q * 37 + 1) % 10 == 0);
        let p = path((i * 7919) % paths);
        let (hits, ms) = timed(|| store.who_accessed(&p, &all));
        anyhow::ensure!(!hits?.records.is_empty(), "no records for {p}");
        who.push(ms);
        let (hits, ms) = timed(|| store.events(&all, true));
        anyhow::ensure!(hits?.records.len() == 100, "alerts query came back short");
        alerts.push(ms);
        let fp = fingerprint((q * 7) % (records / 10).max(1));
        let (hits, ms) = timed(|| store.trace(&fp, &all));
        anyhow::ensure!(!hits?.records.is_empty(), "no records for a fingerprint");
        trace.push(ms);
    }
    for q in 0..10u64 {
        let d = format!("/srv/cardholder/dept{:02}/", q * 5);
        let (hits, ms) = timed(|| store.who_accessed(&d, &all));
        let hits = hits?.records;
        anyhow::ensure!(
            hits.len() == 100,
            "directory query {d} came back with {}",
            hits.len()
        );
        who_dir.push(ms);
    }
    let (report, verify_ms) = timed(|| store.verify());
    anyhow::ensure!(report?.ok(), "the benchmark's chain does not verify");
    let rss_after_verify = crate::soak::rss_mib(std::process::id());
    drop(running);
    drop(store);
    let disk = dir_size(dir);
    Ok(StoreBenchReport {
        records,
        batch: BATCH,
        record_bytes: sample_bytes / 10,
        ingest_per_sec: records as f64 / ingest,
        followers,
        follower_catch_up_secs: catch_up,
        paths,
        who_accessed_ms: spread(who),
        who_accessed_dir_ms: spread(who_dir),
        alerts_ms: spread(alerts),
        trace_ms: spread(trace),
        verify_secs: verify_ms / 1e3,
        disk_mib: disk as f64 / (1 << 20) as f64,
        rss_mib_during_ingest: rss,
        rss_mib_after_verify: rss_after_verify,
    })
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
