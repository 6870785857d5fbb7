//! The TLS discovery benchmark behind `cargo xtask bench tls-discovery`:
//! what looking at every new binary costs a process that execs (fork, exec
//! and wait of a small binary, without the daemon, with the daemon and
//! discovery off, with it on; once on one binary, once on fresh copies so
//! each exec is of a file never looked at), and how long a 100 MB binary
//! (a copy of node) waits from its exec to its TLS probes attached.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use serde::Serialize;

/// Exec latencies of one configuration, µs.
#[derive(Debug, Serialize)]
pub struct ExecLatency {
    /// The configuration.
    pub daemon: &'static str,
    /// p50 and p99 of fork+exec+wait of one binary, many times.
    pub same_binary_us: [f64; 2],
    /// p50 and p99 of fork+exec+wait of fresh copies (new inodes).
    pub fresh_binaries_us: [f64; 2],
}

/// What the benchmark measured.
#[derive(Debug, Serialize)]
pub struct TlsDiscoveryReport {
    /// Per configuration.
    pub exec: Vec<ExecLatency>,
    /// From the exec of a fresh copy of node to its probes attached, ms (each trial).
    pub node_exec_to_hooked_ms: Vec<f64>,
    /// The binary's size, MB.
    pub node_mb: f64,
}

fn percentiles(mut v: Vec<f64>) -> [f64; 2] {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    [at(0.5), at(0.99)]
}

fn exec_us(bin: &Path) -> anyhow::Result<f64> {
    let t = Instant::now();
    let ok = Command::new(bin).status()?;
    anyhow::ensure!(ok.success(), "{} failed", bin.display());
    Ok(t.elapsed().as_secs_f64() * 1e6)
}

fn measure(daemon: &'static str, dir: &Path, round: usize) -> anyhow::Result<ExecLatency> {
    let bin = Path::new("/bin/true");
    for _ in 0..50 {
        exec_us(bin)?;
    }
    let same = (0..2000)
        .map(|_| exec_us(bin))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let copies: Vec<PathBuf> = (0..300)
        .map(|i| {
            let p = dir.join(format!("true-{round}-{i}"));
            std::fs::copy(bin, &p).map(|_| p)
        })
        .collect::<Result<_, _>>()?;
    let fresh = copies
        .iter()
        .map(|p| exec_us(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ExecLatency {
        daemon,
        same_binary_us: percentiles(same),
        fresh_binaries_us: percentiles(fresh),
    })
}

fn start(monitor: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<(Child, PathBuf)> {
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let log = dir.join("daemon.log");
    let args = [&["--log-format", "json", "--stats-interval", "1"], extra].concat();
    let child = super::soak::start_daemon_with(
        monitor,
        dir,
        &args,
        Stdio::from(std::fs::File::create(&log)?),
    )?;
    Ok((child, log))
}

fn stop(mut child: Child) {
    super::soak::stop_daemon(&mut child);
}

/// When the daemon's log says `path` was hooked.
fn hooked_at(log: &Path, path: &Path, timeout: Duration) -> anyhow::Result<SystemTime> {
    let deadline = Instant::now() + timeout;
    let want = path.display().to_string();
    loop {
        let f = std::fs::File::open(log)?;
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "TLS hooked" && v["path"].as_str() == Some(want.as_str()) {
                let t = v["timestamp"].as_str().unwrap_or_default();
                return humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
                    .map_err(|e| anyhow::anyhow!("timestamp {t:?}: {e}"));
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "{want} was never hooked");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs every round.
pub fn run(monitor: &Path) -> anyhow::Result<TlsDiscoveryReport> {
    let dir = std::env::temp_dir().join(format!("monitor-tls-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut exec = vec![measure("none", &dir, 0)?];
    let (d, _) = start(monitor, &dir, &["--no-tls-discovery"])?;
    exec.push(measure("discovery off", &dir, 1)?);
    stop(d);
    let (d, log) = start(monitor, &dir, &[])?;
    exec.push(measure("discovery on", &dir, 2)?);

    let node = which("node")?;
    let node_mb = std::fs::metadata(&node)?.len() as f64 / 1e6;
    let mut node_exec_to_hooked_ms = Vec::new();
    for i in 0..5 {
        let copy = dir.join(format!("node-{i}"));
        std::fs::copy(&node, &copy)?;
        let t0 = SystemTime::now();
        let mut child = Command::new(&copy)
            .args(["-e", "setTimeout(() => {}, 3000)"])
            .spawn()?;
        let at = hooked_at(&log, &copy, Duration::from_secs(30))?;
        node_exec_to_hooked_ms.push(at.duration_since(t0).map_or(0.0, |d| d.as_secs_f64() * 1e3));
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&copy);
    }
    stop(d);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TlsDiscoveryReport {
        exec,
        node_exec_to_hooked_ms,
        node_mb,
    })
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found on PATH"))
}
