//! Start-up: rules, keys, the store and its writer, the followers, the
//! query server, the sensor, and the pipeline thread, in that order (so
//! the record is ready before the first event, and the daemon's own start
//! is its first record).

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Context as _;

use super::{now, Options};
use crate::enrich::Enricher;
use crate::judge::Chain;
use crate::model::{Action, Alert, Follower, Outcome, Record, Severity};
use crate::output::{EventSink, JsonLines};

use crate::pipeline::{Counters, Pipeline, Recording};
use crate::record::follow;
use crate::record::writer::{self, RecordSender, WriterCounters};
use crate::record::Store;
use crate::rules::RuleSet;
use crate::sensor::{Sensor, SensorError, SensorSettings};
use crate::server::{self, Server};
use crate::sinks::SinkSpec;
use crate::status::Status;

/// Everything the running daemon holds.
pub struct Daemon {
    /// The store (shared with the writer, the server and the followers).
    pub store: Arc<Store>,
    /// The record writer's queue.
    pub records: RecordSender,
    /// The record writer's thread.
    pub writer: JoinHandle<()>,
    /// What the writer has done.
    pub writer_counters: Arc<WriterCounters>,
    /// The daemon's own identity, stamped on its records.
    pub template: Record,
    /// The query server's task.
    pub server: tokio::task::JoinHandle<()>,
    /// Validated rule sets for the pipeline (reloads).
    pub reloads: Sender<crate::pipeline::Reload>,
    /// The pipeline's published counters.
    pub counters: Arc<Mutex<Counters>>,
    /// Set to stop the pipeline thread.
    pub stop: Arc<AtomicBool>,
    /// The pipeline thread.
    pub pipeline: JoinHandle<Result<Counters, SensorError>>,
    /// The daemon's own followers of the record (the anomaly learner, the
    /// responder runner).
    pub followers: Vec<follow::Running>,
    /// The sinks, each a follower, with the settings it runs with (a reload
    /// replaces those whose settings changed).
    pub sinks: Vec<(SinkSpec, follow::Running)>,
    /// Set to stop the followers (after the writer has stored the last record).
    pub followers_stop: Arc<AtomicBool>,
    /// The status report, rewritten on every tick.
    pub status: Status,
    /// The status as of the last tick: for the metrics endpoint and `monitor status` over the socket.
    pub published: Arc<std::sync::RwLock<Status>>,
    /// The metrics endpoint's task.
    pub metrics: Option<tokio::task::JoinHandle<()>>,
    /// The followers' settings, replaced by a reload.
    pub live: crate::rules::Live,
    /// Whether the rules override directory existed at start-up: if it
    /// did, a reload that finds it gone is refused, not taken as "no overrides".
    pub rules_dir_existed: bool,
}

/// The capabilities the kernel programs need to load and attach (bits in
/// `CapEff`): CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON.
const CAP_SYS_ADMIN: u32 = 21;
/// CAP_PERFMON.
const CAP_PERFMON: u32 = 38;
/// CAP_BPF.
const CAP_BPF: u32 = 39;

/// Refuses to start, saying why, without the privileges to load the
/// probes: better than whichever file or syscall happens to fail first.
fn check_privileges() -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |cap: u32| eff & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    anyhow::bail!(
        "refusing to start: `monitor run` loads kernel probes and needs root \
         (or CAP_BPF and CAP_PERFMON, with CAP_SYS_ADMIN on kernels before 5.8); \
         running as uid {euid} without them. Run it as the systemd service, or with sudo"
    )
}

/// Starts every part of the daemon; the probes are attached when this returns.
pub async fn start(opts: &Options) -> anyhow::Result<Daemon> {
    check_privileges()?;
    let rules = RuleSet::load(Some(&opts.rules_dir))
        .map_err(|e| anyhow::anyhow!("refusing to start: invalid rules\n{e}"))?;
    let rules_in_force = rules.files_in_force();
    if !opts.rules_dir.is_dir() {
        tracing::warn!(
            "rules directory {} does not exist: running on the shipped rules only (`monitor rules show FILE` prints one to start an override from)",
            opts.rules_dir.display()
        );
    }
    if matches!(nix::unistd::Group::from_name(&opts.analyst_group), Ok(None)) {
        tracing::warn!(
            "analyst group `{}` does not exist: only root can query the record (create it with `groupadd {}` and add the analysts)",
            opts.analyst_group,
            opts.analyst_group
        );
    }
    let key = monitor_pii::FingerprintKey::load_or_create(&opts.key_file)
        .context("loading the fingerprint key")?;
    let detector = Arc::new(monitor_pii::Detector::new(rules.pii.clone(), key));
    // Everything the daemon creates from here on is its own: files 0600,
    // directories 0700 (the socket and status file set their modes).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    harden_state_dir(&opts.state_dir).context("securing the state directory")?;
    let store = Arc::new(
        Store::open_with_cache(
            &opts.state_dir.join("record"),
            &opts.state_dir.join("record.key"),
            opts.store_cache_mib.max(1) << 20,
        )
        .context("opening the access record")?,
    );
    let record_key = opts.state_dir.join("record.key");
    if same_file(&opts.key_file, &record_key) {
        anyhow::bail!(
            "the fingerprint key {} and the record key {} are the same file; they must be distinct",
            opts.key_file.display(),
            record_key.display()
        );
    }
    let host: Arc<str> = Arc::from(
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into()),
    );
    let template = own_identity(&host);
    let writer_counters = Arc::new(WriterCounters::default());
    let (records, writer) = writer::spawn(
        store.clone(),
        writer::Retention {
            keep: opts.retention(),
            hold: opts.follower_hold(),
        },
        writer_counters.clone(),
        template.clone(),
    )
    .context("starting the record writer")?;
    let previous = store.last().context("reading the record's last entry")?;
    let _ = records.send(Record {
        object: format!(
            "monitor {} rules {}",
            env!("CARGO_PKG_VERSION"),
            rules.describe()
        ),
        ..template.stamped()
    });
    if let Some(note) = previous.and_then(|last| unclean_stop(&last, &template)) {
        tracing::warn!("{}", note.object);
        let _ = records.send(note);
    }

    let followers_stop = Arc::new(AtomicBool::new(false));
    let mut followers = Vec::new();
    let live = crate::rules::Live::new(&rules);
    let learner =
        crate::anomaly::follower::Learner::new(live.clone(), store.clone(), records.clone())
            .context("starting the anomaly learner")?;
    // The runner runs with no responders too: a reload may add some.
    let own: [Box<dyn Follower>; 2] = [
        Box::new(learner),
        Box::new(crate::respond::Runner::new(live.clone(), records.clone())),
    ];
    for f in own {
        followers.push(
            follow::spawn(store.clone(), f, followers_stop.clone())
                .context("starting a follower")?,
        );
    }
    let mut sink_followers = Vec::new();
    for spec in SinkSpec::all(&rules.sinks, &opts.sink_jsonl) {
        let sink = spec.open()?;
        let running = follow::spawn(store.clone(), sink, followers_stop.clone())
            .context("starting a sink")?;
        sink_followers.push((spec, running));
    }

    // Filled in below, once the probes are attached; the server answers
    // `monitor status` from it.
    let published = Arc::new(std::sync::RwLock::new(Status::default()));
    let listener = server::bind(&opts.socket)
        .with_context(|| format!("binding the query socket {}", opts.socket.display()))?;
    let server = tokio::spawn(
        Arc::new(Server {
            store: store.clone(),
            records: records.clone(),
            detector: detector.clone(),
            status: published.clone(),
            classes: rules.classes.names().map(str::to_owned).collect(),
            analyst_group: opts.analyst_group.clone(),
            template: template.clone(),
            limits: Default::default(),
        })
        .serve(listener),
    );

    let mut settings = SensorSettings {
        ring_bytes: opts.ring_mib << 20,
        payload_limit: opts.payload_limit,
        capture_inbound: opts.capture_inbound,
        discover_tls: !opts.no_tls_discovery,
        // The stream shows every open unless asked to take counts.
        repeat_window: if opts.events_stdout && !opts.events_counted {
            std::time::Duration::ZERO
        } else {
            std::time::Duration::from_millis(opts.repeat_window_ms)
        },
        ..SensorSettings::default()
    };
    for lib in &opts.tls_libraries {
        let real =
            std::fs::canonicalize(lib).with_context(|| format!("--tls-lib {}", lib.display()))?;
        if !settings.tls_libraries.contains(&real) {
            settings.tls_libraries.push(real);
        }
    }
    let ring_bytes = settings.ring_bytes;
    let sensor = tokio::task::spawn_blocking(move || Sensor::start(&settings))
        .await?
        .context("starting the sensor")?;
    let attached = sensor.attached().to_vec();
    let tls_libraries = sensor.tls_attached();
    let scrubber = detector.clone();
    let enricher = tokio::task::spawn_blocking(move || Enricher::new(Some(scrubber))).await?;

    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if opts.events_stdout {
        sinks.push(Box::new(JsonLines::new(std::io::stdout())));
    }
    let (reloads, reloaded) = std::sync::mpsc::channel();
    // Only the event stream shows a payload's digest.
    let payload = crate::payload::Shards::new(
        detector.clone(),
        crate::payload::threads(opts.payload_threads),
    );
    let payload = if sinks.is_empty() {
        payload.without_digests()
    } else {
        payload
    };
    let pipeline = Pipeline::new(
        sensor,
        enricher,
        payload,
        sinks,
        Recording {
            judges: Chain::standard(&rules),
            rules,
            records: records.clone(),
            host,
            names: Some(detector.clone()),
            reloads: reloaded,
        },
    )
    .count_repeats(std::time::Duration::from_millis(opts.repeat_window_ms))
    .backlog((opts.backlog_mib << 20) as usize);
    let counters = pipeline.counters();
    let stop = Arc::new(AtomicBool::new(false));
    let pipeline = std::thread::Builder::new()
        .name("pipeline".into())
        .spawn({
            let stop = stop.clone();
            move || pipeline.run(&stop)
        })
        .context("starting the pipeline thread")?;

    let status = Status {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started: now(),
        updated: now(),
        attached,
        ring_bytes,
        tls_libraries,
        tls_not_covered: crate::sensor::TLS_NOT_COVERED.to_owned(),
        side_doors_not_covered: crate::sensor::SIDE_DOORS_NOT_COVERED.to_owned(),
        prevention: crate::sensor::PREVENTION.to_owned(),
        rules: rules_in_force,
        rules_loaded: now(),
        ..Status::default()
    };
    *published.write().expect("status lock") = status.clone();
    let metrics = match opts.metrics_addr {
        Some(addr) => Some(
            crate::metrics::serve(addr, published.clone())
                .await
                .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };
    Ok(Daemon {
        live,
        published,
        metrics,
        store,
        records,
        writer,
        writer_counters,
        template,
        server,
        reloads,
        counters,
        stop,
        pipeline,
        followers,
        sinks: sink_followers,
        followers_stop,
        status,
        rules_dir_existed: opts.rules_dir.is_dir(),
    })
}

/// The record of an unclean stop, when `last` (the record's last entry at
/// start-up) is not a daemon's own stop record: the previous daemon was
/// killed, crashed or lost power, and whatever it had queued was lost.
fn unclean_stop(last: &Record, template: &Record) -> Option<Record> {
    if last.action == Action::Stop && &*last.role == "monitor" {
        return None;
    }
    Some(Record {
        action: Action::Outage,
        object: format!(
            "the previous daemon stopped without recording its stop (killed, crashed or \
             power lost): its last record is {} at {}; records it had not yet stored were lost",
            last.seq, last.time
        ),
        outcome: Outcome::Failed,
        alert: Some(Alert {
            explain: None,
            severity: Severity::High,
            rule: "unclean-stop".into(),
            message: format!(
                "monitoring was interrupted: nothing was recorded after {} until this start",
                last.time
            ),
        }),
        ..template.stamped()
    })
}

/// Whether `a` and `b` name the same file (device and inode).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Makes the state directory 0700 and everything in it owner-only (files
/// 0600, directories 0700), for stores made before the daemon set its umask.
fn harden_state_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// The daemon's own identity, for the records it makes about itself.
fn own_identity(host: &Arc<str>) -> Record {
    Record {
        seq: 0,
        time: String::new(),
        time_ns: 0,
        host: host.clone(),
        pid: std::process::id(),
        exe: std::env::current_exe()
            .ok()
            .map(|p| Arc::from(p.to_string_lossy().as_ref())),
        comm: "monitor".into(),
        uid: nix::unistd::getuid().as_raw(),
        user: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| Arc::from(u.name)),
        role: Arc::from("monitor"),
        action: Action::Start,
        object: String::new(),
        dest_host: None,
        class: None,
        bytes: None,
        findings: Vec::new(),
        outcome: Outcome::Allowed,
        errno: None,
        alert: None,
        truncated: false,
        tls: false,
        run: None,
        via: None,
        reason: None,
        context: None,
        repeats: None,
    }
}
