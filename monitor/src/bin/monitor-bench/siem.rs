//! The SIEM benchmark behind `cargo xtask bench siem`: the release daemon
//! delivering to a real rsyslog over TCP (octet-counted RFC 5424). Two
//! rounds: classified opens paced at a fixed rate, each one's latency
//! measured from the open to its line in rsyslog's file; then opens as fast
//! as one thread makes them, with the rate delivered and whether the
//! sink's backlog stayed flat.

use std::io::{BufRead as _, BufReader, Seek as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use super::soak::{classify, start_daemon, status, stop_daemon};

/// What the SIEM benchmark measured.
#[derive(Debug, Serialize)]
pub struct SiemReport {
    /// The paced round's rate, opens per second.
    pub rate: u64,
    /// Opens in the paced round.
    pub paced: u64,
    /// Of them, lines that reached rsyslog.
    pub paced_delivered: u64,
    /// Latency from the open to its line in rsyslog's file: p50, p99, worst (ms).
    pub latency_ms: [f64; 3],
    /// The flat-out round: opens made per second.
    pub offered_per_sec: f64,
    /// Lines rsyslog wrote per second within the same time.
    pub delivered_per_sec: f64,
    /// The sink's backlog at the middle of the flat-out round and 6 s after it.
    pub backlog: [u64; 2],
}

fn rsyslog(dir: &Path, port: u16, out: &Path) -> anyhow::Result<Child> {
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work)?;
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{}\")\nmodule(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"siem\")\n\
             template(name=\"t\" type=\"string\" string=\"%structured-data%\\n\")\n\
             ruleset(name=\"siem\") {{ action(type=\"omfile\" file=\"{}\" template=\"t\" asyncWriting=\"off\" flushOnTXEnd=\"on\") }}\n",
            work.display(),
            out.display()
        ),
    )?;
    let child = Command::new("rsyslogd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting rsyslogd (apt-get install rsyslog)")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "rsyslogd did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn backlog(dir: &Path) -> u64 {
    status(dir)["followers"][0]["lag"].as_u64().unwrap_or(0)
}

/// Runs both rounds.
pub fn run(monitor: &Path, rate: u64, seconds: u64) -> anyhow::Result<SiemReport> {
    let dir = std::env::temp_dir().join(format!("monitor-siem-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cards = dir.join("cards");
    std::fs::create_dir_all(&cards)?;
    let n = (rate * seconds) as usize;
    for i in 0..n {
        std::fs::write(cards.join(format!("f{i}")), "x")?;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let out = dir.join("rsyslog-out.txt");
    let mut syslog = rsyslog(&dir, port, &out)?;
    classify(&dir, &cards)?;
    let rules = dir.join("rules");
    std::fs::write(
        rules.join("sinks.toml"),
        format!("[[sink]]\nname = \"siem\"\ntype = \"syslog\"\naddress = \"127.0.0.1:{port}\"\nrecords = \"all\"\n"),
    )?;
    let mut daemon = start_daemon(monitor, &dir)?;
    let result = rounds(&dir, &cards, &out, rate, n);
    stop_daemon(&mut daemon);
    let _ = syslog.kill();
    let _ = syslog.wait();
    std::fs::remove_dir_all(&dir).ok();
    result
}

fn rounds(dir: &Path, cards: &Path, out: &Path, rate: u64, n: usize) -> anyhow::Result<SiemReport> {
    // Round 1: paced opens, each file once; the watcher notes when each
    // file's line appears in rsyslog's file.
    let watcher = spawn_watcher(out.to_owned(), n);
    let start = Instant::now();
    let mut opened = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        opened.push(Instant::now());
        drop(std::fs::File::open(cards.join(format!("f{i}"))));
    }
    let seen = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))?;
    let mut lat: Vec<f64> = seen
        .iter()
        .zip(&opened)
        .filter_map(|(s, at)| s.map(|t| t.duration_since(*at).as_secs_f64() * 1e3))
        .collect();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let latency_ms = [q(0.5), q(0.99), lat.last().copied().unwrap_or(f64::NAN)];

    // Round 2: opens as fast as one thread makes them, for 10 s.
    let lines_before = count_lines(out);
    let t0 = Instant::now();
    let flat = Duration::from_secs(10);
    let mut opens = 0u64;
    let mut mid = None;
    while t0.elapsed() < flat {
        drop(std::fs::File::open(
            cards.join(format!("f{}", opens as usize % n)),
        ));
        opens += 1;
        if mid.is_none() && t0.elapsed() >= flat / 2 {
            mid = Some(backlog(dir));
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    // What reached rsyslog within the round: the sink's sustained rate when
    // the offered rate is above it.
    let lines = count_lines(out) - lines_before;
    // The status file is rewritten every few seconds: let it catch up.
    std::thread::sleep(Duration::from_secs(6));
    let end_backlog = backlog(dir);
    Ok(SiemReport {
        rate,
        paced: n as u64,
        paced_delivered: lat.len() as u64,
        latency_ms,
        offered_per_sec: opens as f64 / secs,
        delivered_per_sec: lines as f64 / secs,
        backlog: [mid.unwrap_or(0), end_backlog],
    })
}

fn count_lines(out: &Path) -> u64 {
    std::fs::read(out).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count() as u64)
}

/// Tails rsyslog's file until it has seen a line for each of the `n` files
/// (or 10 s pass without news); returns when each was first seen.
fn spawn_watcher(
    out: std::path::PathBuf,
    n: usize,
) -> std::thread::JoinHandle<Vec<Option<Instant>>> {
    std::thread::spawn(move || {
        let mut seen: Vec<Option<Instant>> = vec![None; n];
        let mut got = 0;
        let mut last_news = Instant::now();
        let mut pos = 0u64;
        let mut pending = String::new();
        while got < n && last_news.elapsed() < Duration::from_secs(10) {
            let Ok(mut f) = std::fs::File::open(&out) else {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let _ = f.seek(std::io::SeekFrom::Start(pos));
            let mut r = BufReader::new(f);
            let mut line = String::new();
            while let Ok(k) = r.read_line(&mut line) {
                if k == 0 {
                    break;
                }
                pos += k as u64;
                pending.push_str(&line);
                line.clear();
                if !pending.ends_with('\n') {
                    continue;
                }
                let now = Instant::now();
                if let Some(i) = pending
                    .split("/f")
                    .last()
                    .and_then(|t| t.split('"').next())
                    .and_then(|d| d.parse::<usize>().ok())
                {
                    if i < n && seen[i].is_none() {
                        seen[i] = Some(now);
                        got += 1;
                        last_news = now;
                    }
                }
                pending.clear();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    })
}
