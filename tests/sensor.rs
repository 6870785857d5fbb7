//! End-to-end tests of the sensor: the real daemon, real kernel probes, real
//! short-lived processes. They need root; with `CI=true` they fail rather
//! than skip when BPF cannot be loaded.

mod common;

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::{pid_of, python, root_or_skip, Daemon, TempDir};
use serde_json::Value;

fn file_event<'a>(events: &'a [Value], pid: u32, op: &str, path: &str) -> Option<&'a Value> {
    events.iter().find(|v| {
        pid_of(v) == pid as u64 && v["kind"] == "file" && v["op"] == op && v["path"] == path
    })
}

/// Waits for the daemon to report the exit of this test's child `pid`
/// (other tests run python children of this process at the same time).
fn exited_child(daemon: &Daemon, pid: u32) {
    daemon.wait_for("exit of the python child", |v| {
        v["kind"] == "exit"
            && pid_of(v) == u64::from(pid)
            && v["process"]["ppid"] == std::process::id()
            && v["process"]["comm"] == "python3"
    });
}

#[test]
fn file_events_of_a_short_lived_child() {
    if !root_or_skip("file_events_of_a_short_lived_child") {
        return;
    }
    let daemon = Daemon::start();
    let work = TempDir::new("files");
    let dir = work.path();
    std::fs::write(dir.join("existing.txt"), b"card data").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();

    // Relative paths only: the child's working directory is the test directory.
    let script = r#"
import os
os.close(os.open("existing.txt", os.O_RDONLY))
os.close(os.open("created.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
os.rename("created.txt", "renamed.txt")
os.truncate("renamed.txt", 7)
os.unlink("renamed.txt")
try:
    os.open("missing.txt", os.O_RDONLY)
except FileNotFoundError:
    pass
d = os.open("sub", os.O_RDONLY | os.O_DIRECTORY)
try:
    os.open("inner.txt", os.O_RDONLY, dir_fd=d)
except FileNotFoundError:
    pass
"#;
    let mut child = Command::new(python())
        .args(["-c", script])
        .current_dir(dir)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    // The child has exited; everything below is attributed after the fact.
    exited_child(&daemon, pid);
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    daemon.wait_for("unlink of renamed.txt", |v| {
        pid_of(v) == pid as u64 && v["op"] == "unlink"
    });
    let events = daemon.events();

    let open = file_event(&events, pid, "open", &p("existing.txt")).expect("open existing.txt");
    assert!(open["result"].as_i64().unwrap() >= 0);
    assert_eq!(open["flag_names"][0], "O_RDONLY");
    assert_eq!(open["process"]["ppid"], std::process::id());
    assert_eq!(open["process"]["user"], "root");
    assert!(open["process"]["exe"].as_str().unwrap().contains("python3"));
    assert!(open["time"].as_str().unwrap().ends_with('Z'));

    let created = file_event(&events, pid, "open", &p("created.txt")).expect("create created.txt");
    let flags: Vec<&str> = created["flag_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(flags.contains(&"O_WRONLY") && flags.contains(&"O_CREAT") && flags.contains(&"O_EXCL"));
    assert_eq!(created["mode"], 0o600);

    let renamed = file_event(&events, pid, "rename", &p("created.txt")).expect("rename");
    assert_eq!(renamed["new_path"], p("renamed.txt"));
    assert_eq!(renamed["result"], 0);

    let truncated = file_event(&events, pid, "truncate", &p("renamed.txt")).expect("truncate");
    assert_eq!(truncated["length"], 7);

    let unlinked = file_event(&events, pid, "unlink", &p("renamed.txt")).expect("unlink");
    assert_eq!(unlinked["result"], 0);

    let missing = file_event(&events, pid, "open", &p("missing.txt")).expect("open missing.txt");
    assert_eq!(missing["result"], -2);
    assert_eq!(missing["errno"], "ENOENT");

    // Relative to a directory fd rather than the working directory.
    let inner = file_event(&events, pid, "open", &p("sub/inner.txt")).expect("openat(dirfd)");
    assert_eq!(inner["errno"], "ENOENT");
}

#[test]
fn connect_and_accept_carry_addresses_ipv4_and_ipv6() {
    if !root_or_skip("connect_and_accept_carry_addresses_ipv4_and_ipv6") {
        return;
    }
    let daemon = Daemon::start();
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind("[::1]:0").expect("IPv6 loopback");
    let (p4, p6) = (
        v4.local_addr().unwrap().port(),
        v6.local_addr().unwrap().port(),
    );
    let script = format!(
        r#"
import socket
a = socket.create_connection(("127.0.0.1", {p4}))
b = socket.create_connection(("::1", {p6}))
print(a.getsockname()[1], b.getsockname()[1], flush=True)
"#
    );
    let mut child = Command::new(python())
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (s4, peer4) = v4.accept().unwrap();
    let (s6, peer6) = v6.accept().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(child.wait().unwrap().success());
    drop((s4, s6));
    let pid = child.id() as u64;

    let c4 = daemon.wait_for("IPv4 connect", |v| {
        pid_of(v) == pid && v["kind"] == "connect" && v["remote_port"] == p4
    });
    assert_eq!(c4["family"], "ipv4");
    assert_eq!(c4["remote_addr"], "127.0.0.1");
    assert_eq!(c4["result"], 0);
    let c6 = daemon.wait_for("IPv6 connect", |v| {
        pid_of(v) == pid && v["kind"] == "connect" && v["remote_port"] == p6
    });
    assert_eq!(c6["family"], "ipv6");
    assert_eq!(c6["remote_addr"], "::1");

    let me = std::process::id() as u64;
    let a4 = daemon.wait_for("IPv4 accept", |v| {
        pid_of(v) == me && v["kind"] == "accept" && v["remote_port"] == peer4.port()
    });
    assert_eq!(a4["remote_addr"], "127.0.0.1");
    assert!(
        a4["result"].as_i64().unwrap() >= 0,
        "accept returns the new fd"
    );
    let a6 = daemon.wait_for("IPv6 accept", |v| {
        pid_of(v) == me && v["kind"] == "accept" && v["remote_port"] == peer6.port()
    });
    assert_eq!(a6["remote_addr"], "::1");
    // The child reported the same local ports the listener saw as peers.
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ports, vec![peer4.port(), peer6.port()]);
}

#[test]
fn refused_connect_reports_errno() {
    if !root_or_skip("refused_connect_reports_errno") {
        return;
    }
    let daemon = Daemon::start();
    // A port nothing listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(python())
        .args([
            "-c",
            &format!(
                "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}))\nexcept ConnectionRefusedError:\n    pass"
            ),
        ])
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let pid = child.id() as u64;
    let refused = daemon.wait_for("refused connect", |v| {
        pid_of(v) == pid && v["kind"] == "connect" && v["remote_port"] == port
    });
    assert_eq!(refused["errno"], "ECONNREFUSED");
    assert_eq!(refused["result"], -111);
}

#[test]
fn exec_fork_and_exit_of_a_child() {
    if !root_or_skip("exec_fork_and_exit_of_a_child") {
        return;
    }
    let daemon = Daemon::start();
    let mut child = Command::new("/bin/echo")
        .args(["monitor-exec-test", "two words"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let pid = child.id() as u64;
    let me = std::process::id() as u64;

    let exec = daemon.wait_for("exec of echo", |v| pid_of(v) == pid && v["kind"] == "exec");
    assert_eq!(exec["process"]["ppid"], me);
    let real = std::fs::canonicalize("/bin/echo").unwrap();
    assert_eq!(exec["exe"], real.to_string_lossy().as_ref());
    assert_eq!(exec["filename"], "/bin/echo");
    assert_eq!(
        exec["argv"],
        serde_json::json!(["/bin/echo", "monitor-exec-test", "two words"])
    );
    // The process table already knows the new program for the same event.
    assert_eq!(exec["process"]["exe"], exec["exe"]);

    let fork = daemon.wait_for("fork of the child", |v| {
        pid_of(v) == me && v["kind"] == "fork" && v["child_pid"] == pid
    });
    assert_eq!(fork["process"]["pid"], me);
    let exit = daemon.wait_for("exit of echo", |v| pid_of(v) == pid && v["kind"] == "exit");
    assert_eq!(exit["exit_status"], 0);
    assert_eq!(exit["process"]["exe"], exec["exe"]);
}

/// The kernel sends a file's path once and then its id. A rename of the
/// file or of its directory, an unlink and a new file, a second name (hard
/// link) and a bind mount must each show the path as it is spelt now,
/// never the one cached before; and the cache must actually serve.
#[test]
fn a_renamed_or_recreated_file_is_never_reported_under_its_old_path() {
    if !root_or_skip("a_renamed_or_recreated_file_is_never_reported_under_its_old_path") {
        return;
    }
    let daemon = Daemon::start();
    let cached = |s: &Value| s["kernel"]["path_cached"].as_u64().unwrap_or(0);
    let before = cached(&daemon.wait_status("the sensor running", 10, |s| {
        s["kernel"]["emitted"].as_u64().unwrap_or(0) > 0
    }));
    let work = TempDir::new("moved");
    let dir = work.path();
    const OPENS: usize = 4;
    let script = format!(
        r#"
import os, subprocess
def opens(path):
    for _ in range({OPENS}):
        os.close(os.open(path, os.O_RDONLY))
def create(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
os.mkdir("d1")
create("d1/a.txt")
opens("d1/a.txt")
os.rename("d1/a.txt", "d1/b.txt")
opens("d1/b.txt")
os.rename("d1", "d2")
opens("d2/b.txt")
os.unlink("d2/b.txt")
create("d2/c.txt")
opens("d2/c.txt")
create("d2/b.txt")
opens("d2/b.txt")
os.link("d2/c.txt", "d2/e.txt")
opens("d2/e.txt")
opens("d2/c.txt")
os.mkdir("m")
subprocess.run(["mount", "--bind", "d2", "m"], check=True)
try:
    opens("m/c.txt")
finally:
    subprocess.run(["umount", "m"], check=True)
opens("d2/c.txt")
"#
    );
    // Its own pid: other tests of this binary run python children too.
    let mut child = Command::new(python())
        .args(["-c", &script])
        .current_dir(dir)
        .spawn()
        .unwrap();
    let pid = u64::from(child.id());
    assert!(child.wait().unwrap().success());
    let expected: Vec<String> = [
        "d1/a.txt", "d1/b.txt", "d2/b.txt", "d2/c.txt", "d2/b.txt", "d2/e.txt", "d2/c.txt",
        "m/c.txt", "d2/c.txt",
    ]
    .iter()
    .flat_map(|p| std::iter::repeat_n(dir.join(p).to_string_lossy().into_owned(), OPENS))
    .collect();
    let prefix = format!("{}/", dir.display());
    let reads = || -> Vec<String> {
        daemon
            .events()
            .iter()
            .filter(|v| pid_of(v) == pid && v["kind"] == "file" && v["op"] == "open")
            .filter(|v| v["flag_names"][0] == "O_RDONLY")
            .filter_map(|v| v["path"].as_str().map(str::to_owned))
            .filter(|p| p.starts_with(&prefix))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reads().len() < expected.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(reads(), expected);
    // Every name after the first open of it came from the cache.
    let served = (OPENS - 1) * 9;
    let status = daemon.wait_status("the path cache serving", 10, |s| {
        cached(s) >= before + served as u64
    });
    assert_eq!(status["pipeline"]["paths_unknown"], 0);
}

#[test]
fn daemon_never_reports_itself_and_publishes_status() {
    if !root_or_skip("daemon_never_reports_itself_and_publishes_status") {
        return;
    }
    let daemon = Daemon::start();
    // The daemon rewrites its status file every second: its own opens and
    // renames would show up here if it were not filtered in the kernel.
    let marker = TempDir::new("self");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    std::fs::write(marker.path().join("tick"), b"x").unwrap();
    let me = std::process::id() as u64;
    daemon.wait_for("the test's own write", |v| {
        pid_of(v) == me && v["path"].as_str().is_some_and(|p| p.ends_with("/tick"))
    });
    let own = daemon.pid() as u64;
    assert!(
        daemon.events().iter().all(|v| pid_of(v) != own),
        "the daemon reported its own activity"
    );

    // The file on disk may predate the write just seen.
    let status = daemon.wait_status("events counted", 10, |s| {
        s["kernel"]["emitted"].as_u64().unwrap_or(0) > 0
            && s["pipeline"]["received"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(status["pid"], own);
    let attached: Vec<&str> = status["attached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for probe in [
        "syscalls:openat",
        "syscalls:renameat2",
        "syscalls:connect",
        "syscalls:sendmsg",
        "syscalls:close",
        "sched:sched_process_exec",
        "task:task_newtask",
    ] {
        assert!(attached.contains(&probe), "{probe} not in {attached:?}");
    }
    assert!(status["kernel"]["emitted"].as_u64().unwrap() > 0);
    assert!(status["pipeline"]["received"].as_u64().unwrap() > 0);
    assert_eq!(status["kernel"]["ringbuf_full"], 0);

    // Through the socket, the daemon answers with its status as it stands
    // (the file is not read: it is given as one that does not exist).
    let asked = Command::new(common::monitor_bin())
        .args([
            "status",
            "--json",
            "--status-file",
            "/nonexistent/status.json",
            "--socket",
        ])
        .arg(daemon.socket())
        .output()
        .unwrap();
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let live: Value = serde_json::from_slice(&asked.stdout).unwrap();
    assert_eq!(live["pid"], own);
    assert!(live["kernel"]["emitted"].as_u64().unwrap() > 0, "{live}");
    // The rules in force, each with where it came from and its digest.
    let rules: Vec<&str> = live["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.starts_with("classes.toml=") && r.contains("@sha256:")),
        "{live}"
    );
    assert!(
        live["rules_loaded"].as_str().unwrap().starts_with("20"),
        "{live}"
    );

    let human = Command::new(common::monitor_bin())
        .args(["status", "--status-file"])
        .arg(daemon.status_file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("running")
            && text.contains("DROPPED total:")
            && text.contains("[RULES]")
            && text.contains("(up "),
        "{text}"
    );
}
