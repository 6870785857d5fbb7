//! The overhead benchmark behind `cargo xtask bench overhead`: what the
//! monitor costs the host it watches. A workload that stands for a busy
//! contact-center host (open/read/close of a few thousand customer-record
//! files, 200-byte loopback TCP sends over many connections, fork/exec) is
//! timed per phase with no collector, with the real daemon (`monitor run`,
//! store only), and, where `bpftrace` is installed, with a bpftrace program
//! that only counts the same tracepoints in the kernel: the floor any
//! eBPF collector pays. The setups run in interleaved rounds and the
//! medians are reported, with the daemon's events emitted, received and
//! dropped, and each kernel program's run time per call (from
//! `kernel.bpf_stats_enabled`).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use monitor_common::probes::{Hook, When, PROBES};
use serde::Serialize;

/// The workload's size.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Workload {
    /// Customer-record files the opens cycle through.
    pub files: u64,
    /// Open/read/close rounds.
    pub opens: u64,
    /// Loopback connections the sends are spread over.
    pub connections: u64,
    /// 200-byte sends.
    pub sends: u64,
    /// fork/exec/wait of `/bin/true`.
    pub execs: u64,
    /// The daemon's `--repeat-window-ms` (its default when `None`).
    pub repeat_window_ms: Option<u64>,
}

/// The workload's phases, in the order they run.
const PHASES: [&str; 3] = ["files", "sends", "execs"];

/// One setup's medians.
#[derive(Debug, Serialize)]
pub struct Setup {
    /// `none`, `monitor` or `floor (bpftrace count-only)`.
    pub name: String,
    /// Median seconds per phase, and `total`.
    pub seconds: BTreeMap<String, f64>,
    /// Median time over the no-collector time, per phase and `total`.
    pub ratio: BTreeMap<String, f64>,
}

/// The daemon's side of its rounds, summed over them.
#[derive(Debug, Default, Serialize)]
pub struct Accounting {
    /// Workload operations done while the daemon ran (opens, sends, execs).
    pub operations: u64,
    /// Records the kernel programs emitted.
    pub emitted: u64,
    /// Records the daemon read from the ring buffer.
    pub received: u64,
    /// Records lost to a full ring buffer.
    pub ringbuf_full: u64,
    /// Opens the kernel counted instead of sending (each is in a later
    /// record's count).
    pub counted: u64,
}

/// One kernel program's cost over the daemon's rounds.
#[derive(Debug, Serialize)]
pub struct ProbeCost {
    /// The program.
    pub program: String,
    /// Runs.
    pub calls: u64,
    /// Mean run time per call, ns.
    pub ns_per_call: f64,
}

/// What the benchmark measured.
#[derive(Debug, Serialize)]
pub struct OverheadReport {
    /// The workload.
    pub workload: Workload,
    /// Rounds per setup.
    pub rounds: u64,
    /// Per setup: medians and ratios.
    pub setups: Vec<Setup>,
    /// The monitor's total over the floor's (when there is a floor).
    pub monitor_over_floor: Option<f64>,
    /// Events accounted for.
    pub accounting: Accounting,
    /// Kernel run time per program, costliest first.
    pub probes: Vec<ProbeCost>,
}

/// A collector running for a round.
enum Running {
    None,
    Monitor(Child),
    Floor(Child),
}

/// Runs `rounds` interleaved rounds of every setup.
pub fn run(monitor: &Path, workload: Workload, rounds: u64) -> anyhow::Result<OverheadReport> {
    let scratch = crate::ScratchDir::new("overhead");
    let dir = scratch.path();
    let records = dir.join("customers");
    std::fs::create_dir_all(&records)?;
    for i in 0..workload.files {
        std::fs::write(
            records.join(format!("customer-{i:05}.json")),
            format!(
                "{{\"id\": {i}, \"name\": \"Customer {i}\", \"card\": \"4111 1111 1111 1111\", \"notes\": \"{}\"}}",
                "x".repeat(700)
            ),
        )?;
    }
    super::soak::classify(dir, &records)?;
    let stats = Path::new("/proc/sys/kernel/bpf_stats_enabled");
    let stats_before = std::fs::read_to_string(stats).unwrap_or_default();
    std::fs::write(stats, "1").context("enabling BPF run-time statistics")?;
    let result = rounds_of(monitor, dir, &records, workload, rounds);
    let _ = std::fs::write(stats, stats_before.trim());
    result
}

fn rounds_of(
    monitor: &Path,
    dir: &Path,
    records: &Path,
    workload: Workload,
    rounds: u64,
) -> anyhow::Result<OverheadReport> {
    let floor = bpftrace_available();
    let mut setups = vec!["none", "monitor"];
    if floor {
        setups.push("floor");
    }
    let mut times: BTreeMap<&str, Vec<[f64; 3]>> = BTreeMap::new();
    let mut accounting = Accounting::default();
    let mut costs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // A warm-up round with no collector: page cache, binaries, sockets.
    phases(records, workload)?;
    for round in 0..rounds {
        // Rotated each round, so no setup always runs first.
        for k in 0..setups.len() {
            let setup = setups[(k + round as usize) % setups.len()];
            let running = start(setup, monitor, dir, workload.repeat_window_ms)?;
            // The daemon's counters and its programs' statistics, read
            // around its rounds only.
            let daemon = matches!(running, Running::Monitor(_));
            let before_status = super::soak::status(dir);
            let before_probes = if daemon {
                probe_stats()?
            } else {
                BTreeMap::new()
            };
            let t = phases(records, workload);
            let after_probes = if daemon {
                probe_stats()?
            } else {
                BTreeMap::new()
            };
            if daemon {
                let after = settled_status(dir);
                let delta = |a: &str, b: &str| {
                    after[a][b]
                        .as_u64()
                        .unwrap_or(0)
                        .saturating_sub(before_status[a][b].as_u64().unwrap_or(0))
                };
                accounting.operations += workload.opens + workload.sends + workload.execs;
                accounting.emitted += delta("kernel", "emitted");
                accounting.received += delta("pipeline", "received");
                accounting.ringbuf_full += delta("kernel", "ringbuf_full");
                accounting.counted += delta("kernel", "repeats_counted");
                for (name, (calls, ns)) in &after_probes {
                    let (c0, n0) = before_probes.get(name).copied().unwrap_or((0, 0));
                    let e = costs.entry(name.clone()).or_default();
                    e.0 += calls.saturating_sub(c0);
                    e.1 += ns.saturating_sub(n0);
                }
            }
            stop(running);
            let t = t?;
            eprintln!(
                "overhead: round {} {setup:>7}: files {:.2} s, sends {:.2} s, execs {:.2} s",
                round + 1,
                t[0],
                t[1],
                t[2]
            );
            times.entry(setup).or_default().push(t);
        }
    }
    let medians: BTreeMap<&str, BTreeMap<String, f64>> = times
        .iter()
        .map(|(&setup, rounds)| {
            let mut m = BTreeMap::new();
            for (p, phase) in PHASES.iter().enumerate() {
                m.insert(phase.to_string(), median(rounds.iter().map(|r| r[p])));
            }
            m.insert(
                "total".into(),
                median(rounds.iter().map(|r| r.iter().sum())),
            );
            (setup, m)
        })
        .collect();
    let base = &medians["none"];
    let setups: Vec<Setup> = setups
        .iter()
        .map(|&s| Setup {
            name: match s {
                "floor" => "floor (bpftrace count-only)".into(),
                other => other.into(),
            },
            seconds: medians[s].clone(),
            ratio: medians[s]
                .iter()
                .map(|(k, v)| (k.clone(), v / base[k].max(1e-9)))
                .collect(),
        })
        .collect();
    let monitor_over_floor = floor.then(|| medians["monitor"]["total"] / medians["floor"]["total"]);
    let mut probes: Vec<ProbeCost> = costs
        .into_iter()
        .filter(|(_, (calls, _))| *calls > 0)
        .map(|(program, (calls, ns))| ProbeCost {
            program,
            calls,
            ns_per_call: ns as f64 / calls as f64,
        })
        .collect();
    probes.sort_by(|a, b| {
        (b.ns_per_call * b.calls as f64).total_cmp(&(a.ns_per_call * a.calls as f64))
    });
    Ok(OverheadReport {
        workload,
        rounds,
        setups,
        monitor_over_floor,
        accounting,
        probes,
    })
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The workload, phase by phase: seconds each took.
fn phases(records: &Path, w: Workload) -> anyhow::Result<[f64; 3]> {
    let files: Vec<PathBuf> = (0..w.files)
        .map(|i| records.join(format!("customer-{i:05}.json")))
        .collect();
    let mut buf = Vec::with_capacity(4096);
    let t = Instant::now();
    for i in 0..w.opens {
        buf.clear();
        let mut f = std::fs::File::open(&files[(i % w.files) as usize])?;
        f.read_to_end(&mut buf)?;
    }
    let files_s = t.elapsed().as_secs_f64();

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let connections = w.connections.max(1);
    let sink = std::thread::spawn(move || -> u64 {
        // One reader thread drains every connection.
        let mut streams: Vec<std::net::TcpStream> = (0..connections)
            .filter_map(|_| listener.accept().ok().map(|(s, _)| s))
            .collect();
        for s in &streams {
            let _ = s.set_nonblocking(true);
        }
        let mut total = 0u64;
        let mut buf = [0u8; 65536];
        while !streams.is_empty() {
            let mut idle = true;
            streams.retain_mut(|s| match s.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    total += n as u64;
                    idle = false;
                    true
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Err(_) => false,
            });
            if idle {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        total
    });
    let mut conns: Vec<std::net::TcpStream> = (0..connections)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)))
        .collect::<Result<_, _>>()?;
    for c in &conns {
        c.set_nodelay(true)?;
    }
    let payload = [b'a'; 200];
    let t = Instant::now();
    for i in 0..w.sends {
        conns[(i % connections) as usize].write_all(&payload)?;
    }
    let sends_s = t.elapsed().as_secs_f64();
    conns.clear();
    let read = sink
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    anyhow::ensure!(read == w.sends * 200, "the reader got {read} bytes");

    let t = Instant::now();
    for _ in 0..w.execs {
        Command::new("/bin/true").status()?;
    }
    Ok([files_s, sends_s, t.elapsed().as_secs_f64()])
}

fn start(setup: &str, monitor: &Path, dir: &Path, window: Option<u64>) -> anyhow::Result<Running> {
    Ok(match setup {
        "none" => Running::None,
        "monitor" => {
            let _ = std::fs::remove_dir_all(dir.join("state"));
            let mut args = vec!["--stats-interval".to_owned(), "1".to_owned()];
            if let Some(ms) = window {
                args.extend(["--repeat-window-ms".to_owned(), ms.to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let child = super::soak::start_daemon_with(monitor, dir, &args, Stdio::null())?;
            // The status file comes once every probe is attached.
            Running::Monitor(child)
        }
        _ => {
            let mut child = Command::new("bpftrace")
                .arg("-e")
                .arg(floor_program())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("starting bpftrace")?;
            // bpftrace prints `Attaching N probes...` once they are live.
            let mut out = child.stdout.take().context("bpftrace's output")?;
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut first = Vec::new();
                let mut byte = [0u8; 1];
                while !first.ends_with(b"\n") && matches!(out.read(&mut byte), Ok(1)) {
                    first.push(byte[0]);
                }
                let _ = tx.send(first);
                // Its map printout at exit goes nowhere.
                let _ = std::io::copy(&mut out, &mut std::io::sink());
            });
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(first) if first.ends_with(b"\n") => {}
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    anyhow::bail!("bpftrace did not attach: {other:?}");
                }
            }
            std::thread::sleep(Duration::from_millis(500));
            Running::Floor(child)
        }
    })
}

fn stop(running: Running) {
    match running {
        Running::None => {}
        Running::Monitor(mut child) => super::soak::stop_daemon(&mut child),
        Running::Floor(mut child) => {
            // SIGTERM, not SIGINT: a shell's background job ignores SIGINT,
            // and bpftrace inherits that.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The daemon's status once its counters stop moving (the ring buffer
/// drained), or after ten seconds.
fn settled_status(dir: &Path) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = super::soak::status(dir);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = super::soak::status(dir);
        let moved = now["pipeline"]["received"] != last["pipeline"]["received"];
        if !moved || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Whether `bpftrace` can be run.
fn bpftrace_available() -> bool {
    Command::new("bpftrace")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A bpftrace program that counts every tracepoint the daemon attaches
/// to by default (inbound capture off), and does nothing else.
pub fn floor_program() -> String {
    let mut tracepoints: Vec<String> = PROBES
        .iter()
        .filter(|p| p.when == When::Always)
        .filter_map(|p| match p.hook {
            Hook::Tracepoint { category, name } => Some(format!("tracepoint:{category}:{name}")),
            Hook::Tls { .. } | Hook::Daemon { .. } => None,
        })
        .collect();
    tracepoints.sort();
    tracepoints.dedup();
    format!("{} {{ @[probe] = count(); }}", tracepoints.join(",\n"))
}

/// Run count and total run time (ns) of every kernel program whose name
/// is one of the monitor's (the kernel keeps fifteen bytes of a name).
pub fn probe_stats() -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .context("bpftool (apt-get install bpftool)")?;
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut stats = BTreeMap::new();
    for p in progs.as_array().into_iter().flatten() {
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        // bpftool shows the whole name where BTF has it.
        let ours = PROBES.iter().any(|probe| {
            probe.program == name || probe.program.get(..15).unwrap_or(probe.program) == name
        });
        if !ours {
            continue;
        }
        let e: &mut (u64, u64) = stats.entry(name.to_owned()).or_default();
        e.0 += p["run_cnt"].as_u64().unwrap_or(0);
        e.1 += p["run_time_ns"].as_u64().unwrap_or(0);
    }
    Ok(stats)
}
