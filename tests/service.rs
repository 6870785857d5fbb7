//! The systemd unit (`packaging/monitor.service`): it verifies, its
//! sandbox's exposure is at most 4.0, and its `ExecStart`, run by hand
//! with exactly the unit's capability bounding set and no new privileges
//! (no systemd runs here), speaks the notify protocol: READY=1 only once
//! the probes are attached, WATCHDOG=1 at half the watchdog interval,
//! STATUS= with the rates, STOPPING=1 on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{monitor_bin, root_or_skip, TempDir};
use serde_json::Value;

const UNIT: &str = include_str!("../packaging/monitor.service");

/// The value of `key=` in the unit (the last one given).
fn unit_value(key: &str) -> String {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .next_back()
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .to_owned()
}

/// `systemd-analyze` with `args`; stdout and stderr together.
fn analyze(args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_unit_verifies_and_its_exposure_is_at_most_4() {
    let dir = TempDir::new("unit");
    // `verify` checks that ExecStart's program exists: point it at the build.
    let unit = dir.path().join("monitor.service");
    std::fs::write(
        &unit,
        UNIT.replace(
            "ExecStart=/usr/bin/monitor",
            &format!("ExecStart={}", monitor_bin()),
        ),
    )
    .unwrap();
    let unit = unit.to_str().unwrap();
    let (ok, text) = analyze(&["verify", unit]);
    assert!(ok, "systemd-analyze verify: {text}");
    let (_, text) = analyze(&["security", "--offline=true", unit]);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in: {text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    eprintln!("systemd-analyze security --offline=true: exposure {score}");
    assert!(score <= 4.0, "{line}");
}

/// `CapabilityBoundingSet=CAP_BPF CAP_PERFMON ...` as setpriv's
/// `-all,+bpf,+perfmon,...`.
fn bounding_set() -> String {
    let caps: Vec<String> = unit_value("CapabilityBoundingSet")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    format!("-all,{}", caps.join(","))
}

#[test]
fn exec_start_with_the_unit_s_capabilities_notifies_ready_watchdog_and_stopping() {
    if !root_or_skip("exec_start_with_the_unit_s_capabilities_notifies_ready_watchdog_and_stopping")
    {
        return;
    }
    assert_eq!(
        unit_value("ExecStart"),
        "/usr/bin/monitor run",
        "the test runs what the unit runs"
    );
    assert_eq!(unit_value("NoNewPrivileges"), "yes");
    let dir = TempDir::new("unit-run");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let got: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (got, stop) = (got.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = notify.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                    got.lock().unwrap().push((Instant::now(), msg));
                }
            }
        })
    };
    let p = |f: &str| dir.path().join(f);
    let status_file = p("status.json");
    let mut child = Command::new("setpriv")
        .args([
            "--no-new-privs",
            "--inh-caps",
            "-all",
            "--bounding-set",
            &bounding_set(),
            "--",
        ])
        .arg(monitor_bin())
        .args(["run", "--stats-interval", "1"])
        .arg("--status-file")
        .arg(&status_file)
        .arg("--key-file")
        .arg(p("fingerprint.key"))
        .arg("--state-dir")
        .arg(p("state"))
        .arg("--rules-dir")
        .arg(p("rules"))
        .arg("--socket")
        .arg(p("query.sock"))
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "500000")
        .spawn()
        .expect("setpriv (util-linux)");
    let has = |what: &str| {
        got.lock()
            .unwrap()
            .iter()
            .find(|(_, m)| m.contains(what))
            .map(|(t, _)| *t)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        if let Some(t) = has("READY=1") {
            break t;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "monitor exited before READY with the unit's capabilities"
        );
        assert!(Instant::now() < deadline, "no READY=1");
        std::thread::sleep(Duration::from_millis(20));
    };
    // READY came after the probes were attached: the status the daemon
    // wrote before it names them.
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&status_file).expect("status written before READY"))
            .unwrap();
    let attached = status["attached"].as_array().map_or(0, Vec::len);
    assert!(attached >= 20, "{status}");
    std::thread::sleep(Duration::from_millis(2600));
    let pings = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, m)| *t > ready && m.contains("WATCHDOG=1"))
        .count();
    assert!(
        (5..=16).contains(&pings),
        "{pings} watchdog pings in 2.6 s at a 0.5 s watchdog"
    );
    let status_line = got
        .lock()
        .unwrap()
        .iter()
        .find_map(|(_, m)| {
            m.lines()
                .find(|l| l.starts_with("STATUS="))
                .map(str::to_owned)
        })
        .expect("a STATUS= line");
    assert!(
        status_line.contains("events/s") && status_line.contains("probes"),
        "{status_line}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert!(exit.success(), "{exit}");
    assert!(has("STOPPING=1").is_some(), "no STOPPING=1");
}

/// SIGTERM in the middle of a burst: every open that returned before the
/// signal is in the record after the shutdown (most of them as counts the
/// kernel held until the daemon collected them on its way out), and the
/// daemon's stop record is the record's last.
#[test]
fn sigterm_during_a_burst_keeps_every_event_before_it_and_ends_with_stop() {
    use std::io::BufRead as _;
    if !root_or_skip("sigterm_during_a_burst_keeps_every_event_before_it_and_ends_with_stop") {
        return;
    }
    let dir = TempDir::new("unit-burst");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    for i in 0..64 {
        std::fs::write(cards.join(format!("c{i}.csv")), "x").unwrap();
    }
    common::classify_dir(&dir.path().join("rules"), &cards);
    let sink = dir.path().join("records.jsonl");
    let sink_arg = sink.to_str().unwrap().to_owned();
    let mut daemon =
        common::Daemon::start_in(dir, &["--sink-jsonl", &sink_arg, "--events-counted"]);
    // Opens in a loop, printing each one's number once it has returned.
    let mut child = Command::new(common::python())
        .args([
            "-c",
            "import sys\ni = 0\nwhile True:\n    open(f'c{i % 64}.csv', 'rb').close()\n    print(i, flush=True)\n    i += 1\n",
        ])
        .current_dir(&cards)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut returned = 0u64;
    while returned < 3000 {
        returned = lines.next().unwrap().unwrap().parse().unwrap();
    }
    // Everything up to `returned` completed before the signal.
    daemon.stop();
    let _ = child.kill();
    let _ = child.wait();
    let records: Vec<Value> = std::fs::read_to_string(&sink)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reads: u64 = records
        .iter()
        .filter(|r| r["pid"] == child.id() && r["action"] == "read")
        .map(common::accesses)
        .sum();
    assert!(
        reads > returned,
        "{reads} reads recorded of the {} that returned before SIGTERM",
        returned + 1
    );
    let last = records.last().unwrap();
    assert_eq!(last["action"], "stop", "{last}");
    let report = common::verify_store(&daemon.state_dir(), &[]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(
        report["last"], last["seq"],
        "the stop record is the record's last"
    );
    let counted = records
        .iter()
        .filter(|r| r["pid"] == child.id() && r["repeats"]["count"].as_u64() > Some(1))
        .count();
    assert!(counted > 0, "the burst was counted");
    eprintln!(
        "SIGTERM in a burst: {} opens returned before it, {reads} recorded in {} records",
        returned + 1,
        records.len()
    );
}

/// The Prometheus endpoint (`--metrics-addr`, loopback only) serves the
/// status's counters, per follower too; an address off loopback is refused.
#[test]
fn the_metrics_endpoint_serves_the_counters_on_loopback_only() {
    use std::io::{Read as _, Write as _};
    if !root_or_skip("the_metrics_endpoint_serves_the_counters_on_loopback_only") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = common::Daemon::start_with(&["--metrics-addr", &addr]);
    let scrape = || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let t = scrape();
        if t.contains("monitor_follower_lag{follower=\"anomaly\"}") {
            break t;
        }
        assert!(Instant::now() < deadline, "no follower metrics: {t}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert!(value("monitor_probes_attached") >= 20.0);
    assert!(
        value("monitor_records_stored_total") >= 1.0,
        "the start record"
    );
    value("monitor_kernel_ringbuf_full_total");
    drop(daemon);

    let dir = TempDir::new("metrics-refused");
    let out = Command::new(monitor_bin())
        .args(["run", "--metrics-addr", "0.0.0.0:9"])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--status-file")
        .arg(dir.path().join("status.json"))
        .arg("--key-file")
        .arg(dir.path().join("k"))
        .arg("--rules-dir")
        .arg(dir.path().join("rules"))
        .arg("--socket")
        .arg(dir.path().join("q.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ECS sink file's complete lines (a line being written has no newline yet).
fn ecs_pids(path: &std::path::Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["process"]["pid"].as_u64())
        .collect()
}

fn hup(daemon: &common::Daemon) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

/// SIGHUP replaces the sinks and the PII detector's rules without a
/// restart: a removed sink gets nothing more, a new one gets what follows,
/// a new custom detector finds its values. A sink that cannot be set up
/// refuses the whole reload (the detector stays as it was too), and the
/// refusal is a self-alert and the status's last reload error.
#[test]
fn a_reload_replaces_the_sinks_and_the_detector_or_refuses_whole() {
    if !root_or_skip("a_reload_replaces_the_sinks_and_the_detector_or_refuses_whole") {
        return;
    }
    let dir = TempDir::new("reload-sinks");
    let rules = dir.path().join("rules");
    let cards = dir.path().join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    std::fs::write(cards.join("c.csv"), b"id,card\n").unwrap();
    common::classify_dir(&rules, &cards);
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let sink = |name: &str, path: &std::path::Path| {
        format!(
            "[[sink]]\nname = \"{name}\"\ntype = \"ecs\"\npath = \"{}\"\nrecords = \"all\"\n",
            path.display()
        )
    };
    std::fs::write(rules.join("sinks.toml"), sink("a", &a)).unwrap();
    let daemon = common::Daemon::start_in(dir, &[]);
    let read = || common::python_pid(&cards, "open('c.csv').read()", false) as u64;
    let wait_in = |path: &std::path::Path, pid: u64| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ecs_pids(path).contains(&pid) {
            assert!(Instant::now() < deadline, "{pid} never reached {path:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = read();
    wait_in(&a, first);

    // A ticket id the shipped detector does not know, sent over loopback.
    let send_ticket = || {
        common::python_pid(
            &cards,
            "import socket\nl = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
             s = socket.create_connection(l.getsockname()); c, _ = l.accept()\n\
             s.sendall(b'ticket reference TKT-204816 for the customer'); c.recv(100)",
            false,
        ) as u64
    };
    let ticket_found = |daemon: &common::Daemon, pid: u64| {
        daemon.events().iter().any(|v| {
            v["process"]["pid"] == pid
                && v["findings"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["type"] == "TICKET_ID"))
        })
    };
    let pii = format!(
        "{}\n[[custom]]\nname = \"TICKET_ID\"\npattern = '\\bTKT-[0-9]{{6}}\\b'\nvalidator = \"none\"\nscore = 0.9\n",
        include_str!("../rules/pii.toml")
    );
    let rules = daemon.dir.path().join("rules");
    std::fs::write(rules.join("pii.toml"), &pii).unwrap();

    // Refused whole: sink b's file cannot be created.
    let bad = std::path::Path::new("/proc/no-such-dir/b.jsonl");
    std::fs::write(
        rules.join("sinks.toml"),
        sink("a", &a) + "\n" + &sink("b", bad),
    )
    .unwrap();
    hup(&daemon);
    let refused = common::wait_record(&daemon, &["alerts", "--action", "reload"], |r| {
        r["outcome"] == "failed"
    });
    assert_eq!(refused["alert"]["rule"], "rules-reload", "{refused}");
    daemon.wait_status("the refusal in the status", 10, |s| {
        s["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-dir"))
    });
    let pid = send_ticket();
    let second = read();
    wait_in(&a, second);
    assert!(
        !ticket_found(&daemon, pid),
        "the refused detector was applied"
    );

    // Applied: b replaces a, and the detector knows ticket ids.
    std::fs::write(rules.join("sinks.toml"), sink("b", &b)).unwrap();
    hup(&daemon);
    let applied = common::wait_record(&daemon, &["events", "--action", "reload"], |r| {
        r["outcome"] == "allowed"
    });
    let object = applied["object"].as_str().unwrap();
    assert!(object.ends_with(", sinks +b -a"), "{object}");
    let third = read();
    wait_in(&b, third);
    assert!(
        !ecs_pids(&a).contains(&third),
        "a removed sink still delivers"
    );
    let pid = send_ticket();
    daemon.wait_for("the new detector's finding", |v| {
        v["process"]["pid"] == pid
            && v["findings"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["type"] == "TICKET_ID"))
    });
    let status = daemon.wait_status("the reload error cleared", 10, |s| {
        s["reload_error"].is_null()
    });
    let names: Vec<&str> = status["followers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"b") && !names.contains(&"a"), "{names:?}");
}

/// Run by a user without the privileges to load probes, the daemon says
/// what it needs instead of failing on the first file it cannot open.
#[test]
fn an_unprivileged_start_says_it_needs_root() {
    if !root_or_skip("an_unprivileged_start_says_it_needs_root") {
        return;
    }
    use std::os::unix::process::CommandExt as _;
    let dir = TempDir::new("unprivileged");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new(monitor_bin())
        .args(["run", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--key-file")
        .arg(dir.path().join("fingerprint.key"))
        .arg("--socket")
        .arg(dir.path().join("query.sock"))
        .arg("--status-file")
        .arg(dir.path().join("status.json"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("needs root") && err.contains("CAP_BPF and CAP_PERFMON"),
        "{err}"
    );
    assert!(!dir.path().join("fingerprint.key").exists(), "nothing made");
}

/// `--log-format json`: every log line is a JSON object with a level and
/// a message.
#[test]
fn json_logs_are_one_object_a_line() {
    if !root_or_skip("json_logs_are_one_object_a_line") {
        return;
    }
    let dir = TempDir::new("json-logs");
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(monitor_bin())
        .args(["run", "--log-format", "json", "--stats-interval", "1"])
        .arg("--status-file")
        .arg(dir.path().join("status.json"))
        .arg("--key-file")
        .arg(dir.path().join("fingerprint.key"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(dir.path().join("query.sock"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"stats\"")
    {
        assert!(Instant::now() < deadline, "no stats line");
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        assert!(l["level"].is_string() && l["timestamp"].is_string(), "{l}");
    }
    assert!(lines
        .iter()
        .any(|l| l["message"] == "stats" && l["received"].is_u64()));
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
}

/// SIGHUP with a broken policy keeps the running one (a read it alerts on
/// still alerts) and records a self-alert; the fixed file applies without
/// a restart, and reads made across the reload are all recorded.
#[test]
fn a_broken_policy_reload_keeps_the_old_one_and_a_fixed_one_applies() {
    if !root_or_skip("a_broken_policy_reload_keeps_the_old_one_and_a_fixed_one_applies") {
        return;
    }
    let dir = TempDir::new("reload-policy");
    let cards = common::chatbot_cards(dir.path(), "[role.chatbot]\n");
    std::fs::write(cards.join("c.csv"), "x").unwrap();
    let rules = dir.path().join("rules");
    let daemon = common::Daemon::start_in(dir, &[]);
    let read = |n: usize| {
        common::python_pid(
            &cards,
            &format!("for i in range({n}):\n    open('c.csv').read()"),
            true,
        )
    };
    let alerted = |pid: u32| {
        common::wait_record(&daemon, &["events", "--action", "read"], |r| {
            r["pid"] == pid
        })["alert"]
            .is_object()
    };
    assert!(
        alerted(read(1)),
        "the first policy does not let the chatbot read"
    );

    std::fs::write(rules.join("policy.toml"), "[role.chatbot\n").unwrap();
    hup(&daemon);
    let refused = common::wait_record(&daemon, &["alerts", "--action", "reload"], |r| {
        r["outcome"] == "failed"
    });
    assert!(
        refused["reason"].as_str().unwrap().contains("policy.toml"),
        "{refused}"
    );
    // One log line says it all (journald and files read a line as an entry).
    let logged = daemon.warnings();
    assert!(
        logged
            .iter()
            .any(|l| l.contains("rules reload REFUSED") && l.contains("policy.toml")),
        "{logged:?}"
    );
    assert!(
        alerted(read(1)),
        "the broken reload dropped the running policy"
    );

    std::fs::write(
        rules.join("policy.toml"),
        "[role.chatbot]\nread = [\"cardholder-data\"]\n",
    )
    .unwrap();
    // Reads before, across and after the reload: each one is recorded.
    let before = read(10);
    hup(&daemon);
    let across = read(10);
    // The reload record is stored when the new rules are in force.
    common::wait_record(&daemon, &["events", "--action", "reload"], |r| {
        r["outcome"] == "allowed"
    });
    let after = read(1);
    let rec = common::wait_record(&daemon, &["events", "--action", "read"], |r| {
        r["pid"] == after
    });
    assert!(
        rec["alert"].is_null(),
        "the fixed policy did not apply: {rec}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reads = common::query(&daemon, &["events", "--action", "read", "--limit", "1000"]);
        let n = |pid: u32| -> u64 {
            reads
                .iter()
                .filter(|r| r["pid"] == pid)
                .map(common::accesses)
                .sum()
        };
        if n(before) == 10 && n(across) == 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} and {} of 10 reads recorded around the reload",
            n(before),
            n(across)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
