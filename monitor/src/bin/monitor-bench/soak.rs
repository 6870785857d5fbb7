//! The soak benchmark behind `cargo xtask bench soak`: the real daemon
//! (`monitor run`, release build) under a mixed workload for a long time,
//! its resident memory sampled at a fixed interval. The workload: opens of
//! classified files, loopback sends carrying a card number, and a steady
//! storm of short-lived processes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

/// What the soak measured.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    /// Minutes run.
    pub minutes: u64,
    /// Seconds between samples.
    pub sample_secs: u64,
    /// The daemon's resident memory at each sample, MiB.
    pub rss_mib: Vec<f64>,
    /// Records the daemon stored, at each sample.
    pub stored: Vec<u64>,
    /// Classified opens, sends and processes the workload made.
    pub opens: u64,
    /// Sends with a card number.
    pub sends: u64,
    /// Processes started.
    pub forks: u64,
    /// The last sample over the first after warm-up (a fifth of the run).
    pub growth_after_warmup: f64,
}

/// Runs the soak for `minutes`, sampling every `sample_secs`.
pub fn run(monitor: &Path, minutes: u64, sample_secs: u64) -> anyhow::Result<SoakReport> {
    let scratch = crate::ScratchDir::new("soak");
    let dir = scratch.path();
    let cards = dir.join("cards");
    std::fs::create_dir_all(&cards)?;
    for i in 0..1000 {
        std::fs::write(cards.join(format!("customer-{i:04}.json")), "{}")?;
    }
    classify(dir, &cards)?;
    let mut daemon = start_daemon(monitor, dir)?;
    let result = soak(dir, &cards, daemon.id(), minutes, sample_secs);
    stop_daemon(&mut daemon);
    result
}

/// Starts `monitor run` with its state, rules and sockets in `dir`; returns
/// once its status file exists.
pub fn start_daemon(monitor: &Path, dir: &Path) -> anyhow::Result<Child> {
    start_daemon_with(monitor, dir, &["--stats-interval", "5"], Stdio::null())
}

/// As [`start_daemon`], with more options and its stderr going to `stderr`;
/// a status file left by an earlier daemon in `dir` is removed first.
pub fn start_daemon_with(
    monitor: &Path,
    dir: &Path,
    extra: &[&str],
    stderr: Stdio,
) -> anyhow::Result<Child> {
    let _ = std::fs::remove_file(dir.join("status.json"));
    let child = Command::new(monitor)
        .arg("run")
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--rules-dir")
        .arg(dir.join("rules"))
        .arg("--key-file")
        .arg(dir.join("fingerprint.key"))
        .arg("--status-file")
        .arg(dir.join("status.json"))
        .arg("--socket")
        .arg(dir.join("query.sock"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .context("starting monitor run")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("status.json").exists() {
        anyhow::ensure!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(child)
}

/// The resident memory of `pid`, MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes `DIR/rules/classes.toml`: everything under `cards` is cardholder
/// data, on top of the shipped classes.
pub fn classify(dir: &Path, cards: &Path) -> anyhow::Result<()> {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::write(
        rules.join("classes.toml"),
        format!(
            "[[path]]\nglob = \"{}/**\"\nclass = \"cardholder-data\"\n\n{}",
            cards.display(),
            include_str!("../../../../rules/classes.toml")
        ),
    )?;
    Ok(())
}

/// Stops a daemon [`start_daemon`] started (SIGTERM) and waits for it.
pub fn stop_daemon(daemon: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = daemon.wait();
}

/// The daemon's status file in `dir`, or `null` while there is none.
pub fn status(dir: &Path) -> serde_json::Value {
    std::fs::read(dir.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn stored(dir: &Path) -> u64 {
    status(dir)["record"]["stored"].as_u64().unwrap_or(0)
}

fn soak(
    dir: &Path,
    cards: &Path,
    pid: u32,
    minutes: u64,
    sample_secs: u64,
) -> anyhow::Result<SoakReport> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let mut workers = Vec::new();
    // Classified opens, about 2,000 a second.
    workers.push(spawn(&stop, &counts, 0, {
        let cards: PathBuf = cards.to_owned();
        move |i| {
            drop(std::fs::File::open(
                cards.join(format!("customer-{:04}.json", i % 1000)),
            ));
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }));
    // Sends carrying a card number, about 200 a second, on fresh connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::Read as _;
                let mut s = s;
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    workers.push(spawn(&stop, &counts, 1, move |_| {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"POST /v1/chat {\"content\": \"my card is 4111 1111 1111 1111\"}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }));
    // A storm of short-lived processes, about 50 a second.
    workers.push(spawn(&stop, &counts, 2, |_| {
        let _ = Command::new("/bin/true").status();
        std::thread::sleep(Duration::from_millis(20));
    }));

    let mut rss = Vec::new();
    let mut stored_at = Vec::new();
    let end = Instant::now() + Duration::from_secs(minutes * 60);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(sample_secs).min(end - Instant::now()));
        rss.push(rss_mib(pid));
        stored_at.push(stored(dir));
        eprintln!(
            "soak: {:.1} MiB resident, {} records stored",
            rss.last().unwrap(),
            stored_at.last().unwrap()
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let warm = rss.len() / 5;
    let growth = match (rss.get(warm), rss.last()) {
        (Some(&a), Some(&b)) if a > 0.0 => b / a,
        _ => 1.0,
    };
    Ok(SoakReport {
        minutes,
        sample_secs,
        rss_mib: rss,
        stored: stored_at,
        opens: counts[0].load(Ordering::Relaxed),
        sends: counts[1].load(Ordering::Relaxed),
        forks: counts[2].load(Ordering::Relaxed),
        growth_after_warmup: growth,
    })
}

fn spawn(
    stop: &Arc<AtomicBool>,
    counts: &Arc<[AtomicU64; 3]>,
    which: usize,
    mut step: impl FnMut(u64) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let (stop, counts) = (stop.clone(), counts.clone());
    std::thread::spawn(move || {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            step(i);
            i += 1;
            counts[which].fetch_add(1, Ordering::Relaxed);
        }
    })
}
