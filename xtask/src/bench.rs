//! `cargo xtask bench …`: benchmarks that print measured numbers against the goals.

use std::process::Command;

use anyhow::{bail, Context as _};
use clap::Subcommand;

use serde::Deserialize;

use crate::{cargo, workspace_root};

/// The fields of `monitor-bench sensor`'s report this task prints.
#[derive(Deserialize)]
struct Report {
    opens: u64,
    child_rate: f64,
    received: u64,
    delivered_per_sec: f64,
    missing: u64,
    ringbuf_full: u64,
}

/// Which benchmark.
#[derive(Subcommand)]
pub enum Which {
    /// Sensor throughput: a child opens a file as fast as it can, then at a
    /// fixed pace; prints events/s delivered and records lost.
    Sensor {
        /// Opens in the as-fast-as-possible round.
        #[arg(long, default_value_t = 2_000_000)]
        opens: u64,
        /// The fixed pace of the second round, opens per second.
        #[arg(long, default_value_t = 100_000)]
        rate: u64,
        /// Seconds the paced round lasts.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Payload capture: 200-byte loopback sends with and without the daemon,
    /// then paced; prints the sender's slowdown and captured/sent.
    Payload {
        /// Sends in the max-rate rounds.
        #[arg(long, default_value_t = 500_000)]
        sends: u64,
        /// The pace of the last round, sends per second (it lasts 5 s).
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        /// Threads inspecting a batch's sends (`monitor run
        /// --payload-threads`; its default on this machine when not given).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// The access record: ingest rate (batched, flushed) into a fresh store,
    /// then analyst query latency over it.
    Store {
        /// Records stored.
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        /// Distinct file paths among them.
        #[arg(long, default_value_t = 50_000)]
        paths: u64,
    },
    /// SIEM delivery into a real rsyslog over TCP: latency from a classified
    /// open to its line in rsyslog's file at a paced rate (goal p99 < 100
    /// ms at 1,000/s), then the rate delivered flat out (goal >= 20,000/s
    /// with the backlog not growing).
    Siem {
        /// The paced round's rate, per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// The paced round's length, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// TLS discovery: fork+exec+wait of a small binary without the daemon,
    /// with discovery off and on (one binary, and fresh copies each looked
    /// at anew), and the time from the exec of a 100 MB binary (a copy of
    /// node) to its TLS probes attached.
    TlsDiscovery,
    /// Prevention: a TLS request loop (1 KiB and 16 KiB requests) without
    /// the daemon, with it not enforcing, and enforcing (goal: at most 10%
    /// slower than not enforcing at 1 KiB); the write probe's kernel run
    /// time per call.
    Prevent {
        /// Requests per round.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
    },
    /// The side doors' probes (sendfile, splice, sendmmsg, io_uring): per
    /// call cost of a plain send (never uses them), sendfile of a
    /// classified file and sendmmsg, without and with the daemon.
    SideDoors {
        /// Calls per workload and round.
        #[arg(long, default_value_t = 100_000)]
        calls: u64,
    },
    /// What the daemon costs the host it watches: a contact-center
    /// workload (file opens, loopback sends, fork/exec) in interleaved
    /// rounds with no collector, with the release daemon, and with a
    /// count-only bpftrace program (the floor, where bpftrace is
    /// installed); prints ratios per phase, events accounted for, and each
    /// kernel program's run time per call. Goal: the daemon within 1.10x
    /// of the floor, with zero drops.
    Overhead {
        /// Interleaved rounds per setup.
        #[arg(long, default_value_t = 3)]
        rounds: u64,
        /// Open/read/close rounds per round.
        #[arg(long, default_value_t = 300_000)]
        opens: u64,
        /// 200-byte sends per round.
        #[arg(long, default_value_t = 200_000)]
        sends: u64,
        /// fork/exec per round.
        #[arg(long, default_value_t = 2000)]
        execs: u64,
        /// The daemon's repeat window, ms (0: every open stored on its own).
        #[arg(long)]
        repeat_window_ms: Option<u64>,
    },
    /// `monitor scan --jsonl` end to end, on one core and on all: JSON records in,
    /// findings out. Two inputs: the generated evaluation records (several
    /// kinds, up to three values each) and contact-center text one short
    /// line a record. Prints MB/s of text (goal >= 100 MB/s per core).
    ScanJsonl {
        /// MB of text in each input.
        #[arg(long, default_value_t = 64)]
        mb: usize,
        /// Write the inputs here and keep them (to profile the scan on them).
        #[arg(long)]
        keep_inputs: Option<std::path::PathBuf>,
    },
    /// The daemon under a mixed workload (classified opens, sends with a
    /// card number, a process storm), its memory sampled; goal: flat after
    /// warm-up (within 10%).
    Soak {
        /// Minutes to run.
        #[arg(long, default_value_t = 30)]
        minutes: u64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 60)]
        sample_secs: u64,
    },
}

/// Runs a benchmark.
pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Sensor {
            opens,
            rate,
            seconds,
        } => sensor(opens, rate, seconds),
        Which::Payload {
            sends,
            rate,
            threads,
        } => payload(sends, rate, threads),
        Which::Store { records, paths } => store(records, paths),
        Which::Siem { rate, seconds } => siem(rate, seconds),
        Which::TlsDiscovery => tls_discovery(),
        Which::SideDoors { calls } => side_doors(calls),
        Which::Prevent { requests } => prevent(requests),
        Which::ScanJsonl { mb, keep_inputs } => scan_jsonl(mb, keep_inputs),
        Which::Soak {
            minutes,
            sample_secs,
        } => soak(minutes, sample_secs),
        Which::Overhead {
            rounds,
            opens,
            sends,
            execs,
            repeat_window_ms,
        } => overhead(rounds, opens, sends, execs, repeat_window_ms),
    }
}

/// Builds the release daemon, runs `monitor-bench ARGS --monitor` with it
/// (progress on stderr), and returns the JSON report it prints.
fn monitor_bench(args: &[&str]) -> anyhow::Result<serde_json::Value> {
    cargo(&["build", "--release", "-p", "monitor"])?;
    let out = Command::new(bench_bin())
        .args(args)
        .arg("--monitor")
        .arg(workspace_root().join("target/release/monitor"))
        // `cargo xtask` runs with cargo's LD_LIBRARY_PATH: every program a
        // bench starts would search it first (about 90 failed opens per
        // exec), which no host does.
        .env_remove("LD_LIBRARY_PATH")
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running monitor-bench {}", args[0]))?;
    if !out.status.success() {
        bail!("monitor-bench {} failed", args[0]);
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("parsing the {} report", args[0]))
}

fn overhead(
    rounds: u64,
    opens: u64,
    sends: u64,
    execs: u64,
    window: Option<u64>,
) -> anyhow::Result<()> {
    let mut args: Vec<String> = [
        ("--rounds", rounds),
        ("--opens", opens),
        ("--sends", sends),
        ("--execs", execs),
    ]
    .iter()
    .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
    .collect();
    if let Some(ms) = window {
        args.extend(["--repeat-window-ms".to_owned(), ms.to_string()]);
    }
    let args: Vec<&str> = std::iter::once("overhead")
        .chain(args.iter().map(String::as_str))
        .collect();
    let r = monitor_bench(&args)?;
    let w = &r["workload"];
    println!(
        "Overhead: the release daemon, real probes; rounds: {}, each {} opens of {} files, {} sends over {} connections, {} execs; medians\n",
        r["rounds"], w["opens"], w["files"], w["sends"], w["connections"], w["execs"]
    );
    println!(
        "{:<30} {:>8} {:>8} {:>8} {:>8}",
        "setup (time vs none)", "files", "sends", "execs", "total"
    );
    for s in r["setups"].as_array().into_iter().flatten() {
        let x = |k: &str| s["ratio"][k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<30} {:>7.2}x {:>7.2}x {:>7.2}x {:>7.2}x",
            s["name"].as_str().unwrap_or("?"),
            x("files"),
            x("sends"),
            x("execs"),
            x("total")
        );
    }
    match r["monitor_over_floor"].as_f64() {
        Some(m) => println!(
            "\nmonitor over the floor: {m:.2}x (goal <= 1.10x: {})",
            if m <= 1.10 { "met" } else { "NOT met" }
        ),
        None => println!("\nno floor: bpftrace is not installed (apt-get install bpftrace)"),
    }
    let a = &r["accounting"];
    println!(
        "events: {} workload operations; {} emitted by the kernel, {} received, {} opens counted in the kernel (each in a later record's count), {} lost to a full ring buffer (goal 0: {})",
        a["operations"],
        a["emitted"],
        a["received"],
        a["counted"],
        a["ringbuf_full"],
        if a["ringbuf_full"] == 0 { "met" } else { "NOT met" }
    );
    println!("\nkernel run time per call, over the daemon's rounds (costliest in total first):");
    for p in r["probes"].as_array().into_iter().flatten() {
        println!(
            "  {:<18} {:>12} calls {:>8.0} ns",
            p["program"].as_str().unwrap_or("?"),
            p["calls"],
            p["ns_per_call"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn siem(rate: u64, seconds: u64) -> anyhow::Result<()> {
    let r = monitor_bench(&[
        "siem",
        "--rate",
        &rate.to_string(),
        "--seconds",
        &seconds.to_string(),
    ])?;
    let l = |i: usize| r["latency_ms"][i].as_f64().unwrap_or(f64::NAN);
    println!("SIEM delivery: the release daemon, real probes, rsyslog over TCP on 127.0.0.1\n");
    println!(
        "paced at {rate}/s: {} of {} delivered; latency open -> rsyslog file: p50 {:.1} ms, p99 {:.1} ms, worst {:.1} ms (goal p99 < 100 ms)",
        r["paced_delivered"], r["paced"], l(0), l(1), l(2)
    );
    println!(
        "flat out: {:.0} opens/s offered, {:.0} lines/s delivered (goal >= 20000/s); sink backlog {} at mid-run, {} six seconds after (the rate delivered while the backlog grew is the sink's ceiling)",
        r["offered_per_sec"].as_f64().unwrap_or(0.0),
        r["delivered_per_sec"].as_f64().unwrap_or(0.0),
        r["backlog"][0],
        r["backlog"][1]
    );
    Ok(())
}

fn prevent(requests: u64) -> anyhow::Result<()> {
    let r = monitor_bench(&["prevent", "--requests", &requests.to_string()])?;
    println!(
        "prevention: the release daemon, real probes, Python ssl request loop, {requests} requests a round\n"
    );
    println!(
        "{:<24} {:>8} {:>14} {:>22}",
        "setup", "size", "us/request", "SSL_write_ex ns/call"
    );
    let rounds = r["rounds"].as_array().cloned().unwrap_or_default();
    let us = |setup: &str, size: u64| {
        rounds
            .iter()
            .find(|x| x["setup"] == setup && x["size"] == size)
            .and_then(|x| x["request_us"].as_f64())
            .unwrap_or(f64::NAN)
    };
    for x in &rounds {
        println!(
            "{:<24} {:>8} {:>14.1} {:>22}",
            x["setup"].as_str().unwrap_or("?"),
            x["size"],
            x["request_us"].as_f64().unwrap_or(f64::NAN),
            x["probe_ns"]
                .as_f64()
                .map_or("-".to_owned(), |v| format!("{v:.0}"))
        );
    }
    for size in [1024, 16384] {
        println!(
            "{size} B: enforcing is {:.1}% slower than not enforcing (goal at 1 KiB: <= 10%)",
            (us("daemon, enforcing", size) / us("daemon, not enforcing", size) - 1.0) * 100.0
        );
    }
    Ok(())
}

fn side_doors(calls: u64) -> anyhow::Result<()> {
    let r = monitor_bench(&["side-doors", "--calls", &calls.to_string()])?;
    println!("side doors: the release daemon, real probes, {calls} calls per workload\n");
    println!(
        "{:<38} {:>12} {:>12} {:>8}",
        "workload", "without ns", "with ns", "ratio"
    );
    for w in r["workloads"].as_array().cloned().unwrap_or_default() {
        let (a, b) = (
            w["without_ns"].as_f64().unwrap_or(f64::NAN),
            w["with_ns"].as_f64().unwrap_or(f64::NAN),
        );
        println!(
            "{:<38} {:>12.0} {:>12.0} {:>7.2}x",
            w["name"].as_str().unwrap_or("?"),
            a,
            b,
            b / a
        );
    }
    Ok(())
}

fn tls_discovery() -> anyhow::Result<()> {
    let r = monitor_bench(&["tls-discovery"])?;
    println!("TLS discovery: the release daemon, real probes\n");
    println!(
        "{:<15} {:>22} {:>26}",
        "daemon", "same binary p50/p99 us", "fresh binaries p50/p99 us"
    );
    let none = r["exec"][0]["same_binary_us"][0]
        .as_f64()
        .unwrap_or(f64::NAN);
    for e in r["exec"].as_array().cloned().unwrap_or_default() {
        let f = |k: &str, i: usize| e[k][i].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<15} {:>12.0} / {:<9.0} {:>14.0} / {:<9.0} (same-binary p50 {:.2}x no daemon)",
            e["daemon"].as_str().unwrap_or("?"),
            f("same_binary_us", 0),
            f("same_binary_us", 1),
            f("fresh_binaries_us", 0),
            f("fresh_binaries_us", 1),
            f("same_binary_us", 0) / none
        );
    }
    println!(
        "\nexec of a fresh {:.0} MB node copy -> its TLS probes attached: {} ms",
        r["node_mb"].as_f64().unwrap_or(0.0),
        whole_numbers(&r["node_exec_to_hooked_ms"])
    );
    Ok(())
}

fn soak(minutes: u64, sample_secs: u64) -> anyhow::Result<()> {
    println!("soak: the daemon for {minutes} min under classified opens, sends with a card number and a process storm; RSS every {sample_secs} s\n");
    let r = monitor_bench(&[
        "soak",
        "--minutes",
        &minutes.to_string(),
        "--sample-secs",
        &sample_secs.to_string(),
    ])?;
    println!("{:>8} {:>12} {:>14}", "sample", "RSS MiB", "records stored");
    let rss = r["rss_mib"].as_array().cloned().unwrap_or_default();
    let stored = r["stored"].as_array().cloned().unwrap_or_default();
    for (i, (m, s)) in rss.iter().zip(&stored).enumerate() {
        println!("{:>8} {:>12.1} {:>14}", i + 1, m.as_f64().unwrap_or(0.0), s);
    }
    let growth = r["growth_after_warmup"].as_f64().unwrap_or(0.0);
    println!(
        "\nworkload: {} opens, {} sends, {} processes",
        r["opens"], r["sends"], r["forks"]
    );
    println!(
        "goal: RSS flat after warm-up (within 10%): last/first-after-warm-up = {growth:.3} ({})",
        if growth <= 1.10 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// The fields of `monitor-bench payload`'s report this task prints.
#[derive(Deserialize)]
struct PayloadReport {
    threads: usize,
    sends: u64,
    child_secs: f64,
    child_rate: f64,
    captured: u64,
    #[serde(default)]
    not_inspected: u64,
    findings: u64,
    ringbuf_full: u64,
    #[serde(default)]
    backlog_peak_mib: f64,
    #[serde(default)]
    handled_secs: f64,
}

fn payload_round(
    sends: u64,
    rate: u64,
    baseline: bool,
    threads: usize,
) -> anyhow::Result<PayloadReport> {
    let mut cmd = Command::new(bench_bin());
    cmd.args([
        "payload",
        "--sends",
        &sends.to_string(),
        "--rate",
        &rate.to_string(),
        "--threads",
        &threads.to_string(),
    ]);
    if baseline {
        cmd.arg("--baseline");
    }
    let out = cmd.output().context("running monitor-bench payload")?;
    if !out.status.success() {
        bail!(
            "monitor-bench payload failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the payload bench report")
}

fn payload(sends: u64, rate: u64, threads: Option<usize>) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "monitor"])?;
    // 0: the daemon's default.
    let threads = threads.unwrap_or(0);
    let base = payload_round(sends, 0, true, threads)?;
    let with = payload_round(sends, 0, false, threads)?;
    let paced = payload_round(rate * 5, rate, false, threads)?;
    println!("payload benchmark: 200-byte loopback sends from one child, real probes, detector on every stream, {} inspection thread(s)\n", with.threads);
    println!(
        "{:<34} {:>9} {:>10} {:>12} {:>9} {:>9} {:>9} {:>13} {:>12}",
        "round",
        "sends",
        "seconds",
        "sends/s",
        "captured",
        "unscanned",
        "findings",
        "ringbuf_full",
        "backlog MiB"
    );
    for (name, r) in [
        ("without the daemon, max rate", &base),
        ("with the daemon, max rate", &with),
        ("with the daemon, paced", &paced),
    ] {
        println!(
            "{:<34} {:>9} {:>10.3} {:>12.0} {:>9} {:>9} {:>9} {:>13} {:>12.1}",
            name,
            r.sends,
            r.child_secs,
            r.child_rate,
            r.captured,
            r.not_inspected,
            r.findings,
            r.ringbuf_full,
            r.backlog_peak_mib
        );
    }
    println!();
    println!(
        "slowdown of the sender at max rate: {:.1}% (goal < 10%)",
        (with.child_secs / base.child_secs - 1.0) * 100.0
    );
    println!(
        "goal: every send captured at {rate} sends/s: {} of {} captured (child paced at {:.0}/s)",
        paced.captured, paced.sends, paced.child_rate
    );
    println!(
        "at max rate: {} of {} sends recorded, {} of them unscanned (the inspection was behind), {} lost to a full ring buffer",
        with.captured, with.sends, with.not_inspected, with.ringbuf_full
    );
    println!(
        "at max rate: the last send handled {:.2} s after the first was sent ({:.2} s after the sender finished; at most {:.1} MiB waited in the backlog)",
        with.handled_secs,
        with.handled_secs - with.child_secs,
        with.backlog_peak_mib
    );
    Ok(())
}

fn sensor_round(opens: u64, rate: u64) -> anyhow::Result<Report> {
    let out = Command::new(bench_bin())
        .args([
            "sensor",
            "--opens",
            &opens.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .output()
        .context("running monitor-bench sensor")?;
    if !out.status.success() {
        bail!(
            "monitor-bench sensor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the bench report")
}

fn sensor(opens: u64, rate: u64, seconds: u64) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "monitor"])?;
    println!("sensor benchmark: open() events from one child process, real probes, 2 cores\n");
    let max = sensor_round(opens, 0)?;
    let paced = sensor_round(rate * seconds, rate)?;
    println!(
        "{:<22} {:>10} {:>12} {:>10} {:>14} {:>9} {:>13}",
        "round", "opens", "child op/s", "received", "delivered ev/s", "missing", "ringbuf_full"
    );
    for (name, r) in [("as fast as possible", &max), ("paced", &paced)] {
        println!(
            "{:<22} {:>10} {:>12.0} {:>10} {:>14.0} {:>9} {:>13}",
            name, r.opens, r.child_rate, r.received, r.delivered_per_sec, r.missing, r.ringbuf_full
        );
    }
    println!();
    println!(
        "goal: >= 300000 events/s delivered: measured {:.0} ({:.2}x the goal)",
        max.delivered_per_sec,
        max.delivered_per_sec / 300_000.0
    );
    println!(
        "goal: zero drops at {rate} events/s: measured {} missing, {} ring-buffer drops (child paced at {:.0}/s)",
        paced.missing, paced.ringbuf_full, paced.child_rate
    );
    Ok(())
}

/// A JSON array of numbers, rounded and joined with commas.
fn whole_numbers(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|n| format!("{:.0}", n.as_f64().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn store_round(records: u64, paths: u64, followers: usize) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(bench_bin())
        .args([
            "store",
            "--records",
            &records.to_string(),
            "--paths",
            &paths.to_string(),
            "--followers",
            &followers.to_string(),
        ])
        .output()
        .context("running monitor-bench store")?;
    if !out.status.success() {
        bail!(
            "monitor-bench store failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing the store bench report")
}

fn store(records: u64, paths: u64) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "monitor"])?;
    let followed = store_round(records, paths, 1)?;
    let r = store_round(records, paths, 0)?;
    let ms = |k: &str| {
        let v = &r[k];
        format!(
            "median {:.2} ms, p99 {:.2} ms, worst {:.2} ms",
            v[0].as_f64().unwrap_or(0.0),
            v[1].as_f64().unwrap_or(0.0),
            v[2].as_f64().unwrap_or(0.0)
        )
    };
    println!(
        "record benchmark: {} records (~{} B of JSON each) over {} paths, batches of {}",
        r["records"], r["record_bytes"], r["paths"], r["batch"]
    );
    println!(
        "ingest:                 {:.0} records/s (goal >= 100000)",
        r["ingest_per_sec"].as_f64().unwrap_or(0.0)
    );
    println!(
        "ingest, 1 follower:     {:.0} records/s (goal >= 100000); the follower (a JSON-lines file) caught up {:.2} s after the last append",
        followed["ingest_per_sec"].as_f64().unwrap_or(0.0),
        followed["follower_catch_up_secs"].as_f64().unwrap_or(0.0)
    );
    println!(
        "who-accessed PATH:      {} (goal <= 100 ms)",
        ms("who_accessed_ms")
    );
    println!("who-accessed DIR/:      {}", ms("who_accessed_dir_ms"));
    println!("alerts:                 {}", ms("alerts_ms"));
    println!("trace-pii:              {}", ms("trace_ms"));
    println!(
        "verify (whole chain):   {:.2} s",
        r["verify_secs"].as_f64().unwrap_or(0.0)
    );
    println!(
        "store on disk:          {:.0} MiB",
        r["disk_mib"].as_f64().unwrap_or(0.0)
    );
    println!(
        "RSS per tenth of ingest: {} MiB",
        whole_numbers(&r["rss_mib_during_ingest"])
    );
    println!(
        "RSS after verify:        {:.0} MiB (goal: memory does not follow the store's size)",
        r["rss_mib_after_verify"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

/// The benchmark binary (built with `-p monitor`).
/// `cargo xtask eval-anomaly`: runs `monitor-bench eval-anomaly` and prints
/// its scores against the goals (recall >= 0.9 for every detector, at most
/// 0.5 false alerts per role-day, exactly one alert per incident).
pub fn eval_anomaly() -> anyhow::Result<()> {
    cargo(&[
        "build",
        "--release",
        "-p",
        "monitor",
        "--bin",
        "monitor-bench",
    ])?;
    let out = Command::new(bench_bin())
        .arg("eval-anomaly")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running monitor-bench eval-anomaly")?;
    if !out.status.success() {
        bail!("monitor-bench eval-anomaly failed");
    }
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing the evaluation")?;
    println!("Anomaly detectors on a synthetic month (the daemon's engine, replayed)\n");
    let mut ok = true;
    for (name, run) in [
        ("tuning seed", &r["tuning"]),
        ("held-out seed", &r["held_out"]),
    ] {
        println!(
            "{name} {}: {} records, {} incidents, {} alerts",
            run["seed"], run["records"], run["incidents"], run["alerts"]
        );
        println!("  {:<26} {:>6} {:>8}", "detector", "recall", "caught");
        for (det, v) in run["recall"].as_object().into_iter().flatten() {
            let (hit, all) = (v[0].as_f64().unwrap_or(0.0), v[1].as_f64().unwrap_or(1.0));
            ok &= hit / all >= 0.9;
            println!("  {det:<26} {:>6.2} {:>5}/{}", hit / all, hit, all);
        }
        let fpd = run["false_per_role_day"].as_f64().unwrap_or(f64::NAN);
        ok &= fpd <= 0.5;
        let per = &run["alerts_per_incident"];
        let exactly_one = per.as_object().is_some_and(|m| m.keys().all(|k| k == "1"));
        ok &= exactly_one;
        println!(
            "  false alerts per role-day {fpd:.3} (goal <= 0.5; by rule {}); alerts per incident {per} (goal: all 1)",
            run["false_by_rule"]
        );
        if let Some(m) = run["missed"].as_array().filter(|m| !m.is_empty()) {
            println!("  missed: {m:?}");
        }
    }
    println!("\ngoals {}", if ok { "met" } else { "NOT met" });
    Ok(())
}

fn bench_bin() -> std::path::PathBuf {
    workspace_root().join("target/release/monitor-bench")
}

/// `{"id":N,"text":…}` lines holding at least `mb` MB of text; returns the
/// lines and the text bytes.
fn jsonl_input(kind: &str, mb: usize) -> (Vec<u8>, usize) {
    let texts: Vec<String> = if kind == "records" {
        monitor_pii::synth::eval_corpus(4000, 7)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("generated JSON");
                v["text"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    } else {
        monitor_pii::synth::corpus_text("contact", 4 << 20, 42)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (mut out, mut text_bytes, mut id) = (Vec::new(), 0, 0u64);
    while text_bytes < mb << 20 {
        for t in &texts {
            serde_json::to_writer(&mut out, &serde_json::json!({ "id": id, "text": t }))
                .expect("writing to a Vec");
            out.push(b'\n');
            text_bytes += t.len();
            id += 1;
        }
    }
    (out, text_bytes)
}

fn scan_jsonl(mb: usize, keep_inputs: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use std::io::Write as _;
    cargo(&["build", "--release", "-p", "monitor"])?;
    let dir = keep_inputs.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("monitor-scan-jsonl-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    // Created on the first run, mode 0600, as the daemon's would be.
    let key = dir.join("key");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("monitor scan --jsonl: the release binary, input from a file, output to /dev/null\n");
    println!(
        "{:<40} {:>8} {:>8} {:>10} {:>10} {:>9} {:>10}",
        "input", "threads", "records", "text MB", "seconds", "MB/s", "bytes/rec"
    );
    let mut result = Ok(());
    for kind in ["records", "contact"] {
        let (input, text_bytes) = jsonl_input(kind, mb);
        let file = dir.join(format!("{kind}.jsonl"));
        std::fs::File::create(&file)?.write_all(&input)?;
        let records = input.iter().filter(|&&b| b == b'\n').count();
        for threads in [1, cores] {
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let start = std::time::Instant::now();
                let status = Command::new(workspace_root().join("target/release/monitor"))
                    .args([
                        "scan",
                        "--jsonl",
                        "--threads",
                        &threads.to_string(),
                        "--key-file",
                    ])
                    .arg(&key)
                    .stdin(std::fs::File::open(&file)?)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .context("running monitor scan --jsonl")?;
                if !status.success() {
                    result = Err(anyhow::anyhow!("monitor scan --jsonl failed: {status}"));
                }
                best = best.min(start.elapsed().as_secs_f64());
            }
            let mbs = text_bytes as f64 / 1e6 / best;
            println!(
                "{:<40} {:>8} {:>8} {:>10.1} {:>10.3} {:>9.1} {:>10}",
                if kind == "records" {
                    "generated records (several kinds)"
                } else {
                    "contact-center text, a line a record"
                },
                threads,
                records,
                text_bytes as f64 / 1e6,
                best,
                mbs,
                text_bytes / records.max(1)
            );
            if cores == 1 {
                break;
            }
        }
    }
    println!("\nbest of 3 runs each; goal >= 100 MB/s of text per core (the one-thread rows)");
    if keep_inputs.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    result
}
