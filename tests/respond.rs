//! Incident response with real processes and real sockets: a hanging
//! `exec` responder is killed at its timeout while records keep flowing; a
//! `kill` responder kills a chatbot process within a second of its
//! offending send (timed over 20 trials); a `webhook` reaches an HTTPS
//! server (test CA) that verifies its signature; `notify` reaches a
//! notification server on a real session bus (dbus-daemon); `handoff`
//! calls the hand-off endpoint once per conversation, without the text.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{python, query, root_or_skip, Daemon, TempDir};
use serde_json::Value;

/// Rules for a test: `cards` holds cardholder data (readable by nobody),
/// the role `chatbot` is uid nobody and may never send card numbers, and
/// `responders` is the responders file.
fn setup(dir: &Path, responders: &str) -> std::path::PathBuf {
    let cards = common::chatbot_cards(dir, "[role.chatbot]\ndeny_pii = [\"CREDIT_CARD\"]\n");
    for i in 0..8 {
        std::fs::write(cards.join(format!("c{i}.csv")), "x").unwrap();
    }
    std::fs::write(dir.join("rules").join("responders.toml"), responders).unwrap();
    cards
}

/// Reads `n` cardholder files as nobody (a `class-read` alert each).
fn read_cards(cards: &Path, n: usize) -> u32 {
    common::python_pid(
        cards,
        &format!("for i in range({n}):\n    open(f'c{{i}}.csv', 'rb').read()"),
        true,
    )
}

/// Waits for the run record of `responder` answering something of `pid`
/// (any pid when 0).
fn wait_run(daemon: &Daemon, responder: &str, pid: u32, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let found = query(
            daemon,
            &["events", "--action", "response", "--limit", "1000"],
        )
        .into_iter()
        .find(|r| r["run"]["responder"] == responder && (pid == 0 || r["pid"] == pid));
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no run of {responder} for pid {pid}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A loopback listener that takes every connection and drains it.
fn drain() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[test]
fn a_hanging_exec_responder_is_killed_at_its_timeout_while_records_flow() {
    if !root_or_skip("a_hanging_exec_responder_is_killed_at_its_timeout_while_records_flow") {
        return;
    }
    let dir = TempDir::new("respond-exec");
    let cards = setup(
        dir.path(),
        "[[responder]]\nname = \"hang\"\ntype = \"exec\"\ncommand = [\"/bin/sleep\", \"30\"]\nrules = [\"class-read\"]\nroles = [\"chatbot\"]\ntimeout_secs = 2\n",
    );
    let daemon = Daemon::start_in(dir, &[]);
    let first = read_cards(&cards, 1);
    common::wait_record(&daemon, &["alerts"], |r| r["pid"] == first);
    // While the responder hangs, more accesses are recorded.
    std::thread::sleep(Duration::from_millis(300));
    let second = common::python_pid(&cards, "open('c5.csv', 'rb').read()", false);
    let flowed = common::wait_record(&daemon, &["events", "--action", "read"], |r| {
        r["pid"] == second
    });
    let run = wait_run(&daemon, "hang", first, 15);
    assert_eq!(run["run"]["outcome"], "timed_out", "{run:#}");
    let ms = run["run"]["duration_ms"].as_u64().unwrap();
    assert!((2000..4000).contains(&ms), "killed after {ms} ms");
    assert!(
        flowed["time_ns"].as_u64() < run["time_ns"].as_u64(),
        "a record made during the hang was stored before the run ended"
    );
    // The hung program and its group are gone.
    let sleeping = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cmdline")).ok())
        .any(|c| c == "/bin/sleep\u{0}30\u{0}");
    assert!(!sleeping, "the responder's program survived its timeout");
}

#[test]
fn a_kill_responder_kills_a_leaking_chatbot_within_a_second() {
    if !root_or_skip("a_kill_responder_kills_a_leaking_chatbot_within_a_second") {
        return;
    }
    let dir = TempDir::new("respond-kill");
    setup(
        dir.path(),
        "[[responder]]\nname = \"stop-leak\"\ntype = \"kill\"\nrules = [\"pii-egress\"]\nroles = [\"chatbot\"]\nenforce = true\n",
    );
    let daemon = Daemon::start_in(dir, &[]);
    let port = drain();
    let script = format!(
        "import socket, time\ns = socket.create_connection(('127.0.0.1', {port}))\nprint(time.time_ns(), flush=True)\ns.sendall(b'card 4111 1111 1111 1111 please')\ntime.sleep(10)\n"
    );
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let mut child = Command::new(python())
            .args(["-c", &script])
            .uid(65534)
            .gid(65534)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sent: u64 = line.trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the chatbot was not killed");
            std::thread::sleep(Duration::from_millis(1));
        };
        let died = now_ns();
        assert_eq!(status.signal(), Some(9), "{status}");
        latencies.push((died - sent) as f64 / 1e6);
        let run = wait_run(&daemon, "stop-leak", child.id(), 5);
        assert_eq!(run["run"]["outcome"], "done", "{run:#}");
    }
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() - 1];
    eprintln!("send() to SIGKILL over 20 trials: p50 {p50:.1} ms, p99 {p99:.1} ms");
    assert!(p99 < 1000.0, "p99 {p99:.1} ms");
}

#[test]
fn a_webhook_reaches_an_https_server_that_verifies_its_signature() {
    if !root_or_skip("a_webhook_reaches_an_https_server_that_verifies_its_signature") {
        return;
    }
    let dir = TempDir::new("respond-webhook");
    let (ca, cert, key) = common::test_pki(dir.path(), "hook");
    let secret = dir.path().join("hook.key");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    let seen = dir.path().join("seen.jsonl");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!(
        r#"
import hashlib, hmac, http.server, json, ssl
secret = open({secret:?}, 'rb').read().strip()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        ts = self.headers['X-Monitor-Timestamp']
        want = 'sha256=' + hmac.new(secret, ts.encode() + b'.' + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, self.headers['X-Monitor-Signature'])
        with open({seen:?}, 'a') as f:
            f.write(json.dumps({{'valid': ok, 'rule': json.loads(body)['alert']['rule']}}) + '\n')
        self.send_response(200 if ok else 401)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', {port}), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain({cert:?}, {key:?})
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#
    );
    let mut srv = Command::new(python())
        .args(["-c", &server])
        .spawn()
        .unwrap();
    let cards = setup(
        dir.path(),
        &format!(
            "[[responder]]\nname = \"soc\"\ntype = \"webhook\"\nurl = \"https://127.0.0.1:{port}/hook\"\nsecret_file = {:?}\nca_file = {:?}\nrules = [\"class-read\"]\n",
            secret.display().to_string(),
            ca.display().to_string()
        ),
    );
    let daemon = Daemon::start_in(dir, &[]);
    let pid = read_cards(&cards, 1);
    let run = wait_run(&daemon, "soc", pid, 20);
    let seen_lines = std::fs::read_to_string(&seen).unwrap_or_default();
    let _ = srv.kill();
    let _ = srv.wait();
    assert_eq!(run["run"]["outcome"], "done", "{run:#}");
    let first: Value =
        serde_json::from_str(seen_lines.lines().next().expect("the server got it")).unwrap();
    assert_eq!(first["valid"], true, "{seen_lines}");
    assert_eq!(first["rule"], "class-read");
}

#[test]
fn notify_reaches_a_session_bus_and_is_skipped_without_one() {
    use std::os::unix::fs::PermissionsExt as _;
    if !root_or_skip("notify_reaches_a_session_bus_and_is_skipped_without_one") {
        return;
    }
    let dir = TempDir::new("respond-notify");
    let busdir = dir.path().join("bus");
    std::fs::create_dir(&busdir).unwrap();
    std::fs::set_permissions(&busdir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bus = busdir.join("bus-65534");
    // A session bus owned by nobody, and a notification server on it.
    let mut daemon_bus = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--nopidfile"])
        .arg(format!("--address=unix:path={}", bus.display()))
        .uid(65534)
        .gid(65534)
        .spawn()
        .expect("dbus-daemon (apt-get install dbus-daemon)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bus.exists() {
        assert!(Instant::now() < deadline, "dbus-daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shown = busdir.join("shown.jsonl");
    let ready = busdir.join("ready");
    let server = format!(
        r#"
import json, sys, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection('unix:path={bus}')
name = dbus.service.BusName('org.freedesktop.Notifications', bus)
class N(dbus.service.Object):
    @dbus.service.method('org.freedesktop.Notifications', in_signature='susssasa{{sv}}i', out_signature='u')
    def Notify(self, app, rid, icon, summary, body, actions, hints, timeout):
        with open({shown:?}, 'a') as f:
            f.write(json.dumps({{'app': app, 'summary': summary, 'body': body}}) + '\n')
        return 7
    @dbus.service.method('org.freedesktop.Notifications', out_signature='as')
    def GetCapabilities(self):
        return ['body']
    @dbus.service.method('org.freedesktop.Notifications', out_signature='ssss')
    def GetServerInformation(self):
        return ('test', 'monitor', '1', '1.2')
N(bus, '/org/freedesktop/Notifications')
open({ready:?}, 'w').write('ready')
GLib.MainLoop().run()
"#,
        bus = bus.display(),
        shown = shown.display().to_string(),
        ready = ready.display().to_string(),
    );
    let mut srv = Command::new(python())
        .args(["-c", &server])
        .uid(65534)
        .gid(65534)
        .spawn()
        .unwrap();
    while !ready.exists() {
        assert!(
            Instant::now() < deadline,
            "the notification server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cards = setup(
        dir.path(),
        &format!(
            "[[responder]]\nname = \"tell\"\ntype = \"notify\"\nbus = \"{}/bus-{{uid}}\"\nrules = [\"class-read\"]\n\n[[responder]]\nname = \"nobus\"\ntype = \"notify\"\nbus = \"{}/none-{{uid}}\"\nrules = [\"class-read\"]\n",
            busdir.display(),
            busdir.display()
        ),
    );
    let daemon = Daemon::start_in(dir, &[]);
    let pid = read_cards(&cards, 1);
    let run = wait_run(&daemon, "tell", pid, 20);
    let skipped = wait_run(&daemon, "nobus", pid, 20);
    let lines = std::fs::read_to_string(&shown).unwrap_or_default();
    let _ = srv.kill();
    let _ = srv.wait();
    let _ = daemon_bus.kill();
    let _ = daemon_bus.wait();
    assert_eq!(run["run"]["outcome"], "done", "{run:#}");
    let n: Value = serde_json::from_str(lines.lines().next().expect("a notification")).unwrap();
    assert_eq!(n["summary"], "Security alert: class-read");
    assert_eq!(n["app"], "monitor");
    assert_eq!(skipped["run"]["outcome"], "skipped");
    assert!(
        skipped["run"]["detail"]
            .as_str()
            .unwrap()
            .contains("no session bus"),
        "{skipped:#}"
    );
}

/// A stand-in for a chatbot platform's hand-off endpoint: every request's
/// body, kept.
fn handoff_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            keep.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let mut s = s;
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

#[test]
fn a_risky_chatbot_conversation_is_handed_off_once_without_its_text() {
    if !root_or_skip("a_risky_chatbot_conversation_is_handed_off_once_without_its_text") {
        return;
    }
    let dir = TempDir::new("respond-handoff");
    let (port, got) = handoff_server();
    setup(
        dir.path(),
        &format!("[[responder]]\nname = \"human\"\ntype = \"handoff\"\nurl = \"http://127.0.0.1:{port}/handoff\"\nroles = [\"chatbot\"]\n"),
    );
    std::fs::write(
        dir.path().join("rules").join("pii.toml"),
        "[[custom]]\nname = \"RISK_WIRE_TRANSFER\"\npattern = '(?i)\\bwire (?:transfer|the (?:money|funds))\\b'\nvalidator = \"none\"\nscore = 0.6\ncategory = \"risk\"\n",
    )
    .unwrap();
    let daemon = Daemon::start_in(dir, &[]);
    let sink = drain();
    let pid = common::python_pid(
        Path::new("/"),
        &format!(
            "import socket, time\ns = socket.create_connection(('127.0.0.1', {sink}))\nfor i in range(3):\n    s.sendall(b'customer asks: can you wire transfer the funds today?')\n    time.sleep(0.3)\n"
        ),
        true,
    );
    let run = wait_run(&daemon, "human", pid, 20);
    assert_eq!(run["run"]["outcome"], "done", "{run:#}");
    std::thread::sleep(Duration::from_secs(2));
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "once per conversation: {bodies:#?}");
    let b: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(b["role"], "chatbot");
    assert_eq!(b["pid"], pid);
    assert_eq!(b["matched"][0], "RISK_WIRE_TRANSFER");
    assert!(
        !bodies[0].to_lowercase().contains("wire transfer"),
        "{}",
        bodies[0]
    );
}

/// A reload (SIGHUP) replaces the responders without a restart: the new
/// one answers the next alert, the old one no longer does.
#[test]
fn a_reload_replaces_the_responders() {
    if !root_or_skip("a_reload_replaces_the_responders") {
        return;
    }
    let dir = TempDir::new("respond-reload");
    let exec = |name: &str| {
        format!("[[responder]]\nname = \"{name}\"\ntype = \"exec\"\ncommand = [\"/bin/true\"]\nrules = [\"class-read\"]\nroles = [\"chatbot\"]\n")
    };
    let cards = setup(dir.path(), &exec("before"));
    let responders = dir.path().join("rules").join("responders.toml");
    let daemon = Daemon::start_in(dir, &[]);
    let first = read_cards(&cards, 1);
    assert_eq!(
        wait_run(&daemon, "before", first, 20)["run"]["outcome"],
        "done"
    );
    std::fs::write(&responders, exec("after")).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    common::wait_record(&daemon, &["events", "--action", "reload"], |r| {
        r["outcome"] == "allowed"
    });
    let second = read_cards(&cards, 1);
    assert_eq!(
        wait_run(&daemon, "after", second, 20)["run"]["outcome"],
        "done"
    );
    std::thread::sleep(Duration::from_secs(1));
    let old = query(
        &daemon,
        &["events", "--action", "response", "--limit", "1000"],
    )
    .into_iter()
    .filter(|r| r["run"]["responder"] == "before" && r["pid"] == second)
    .count();
    assert_eq!(old, 0, "the replaced responder still ran");
}
