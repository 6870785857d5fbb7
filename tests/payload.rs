//! End-to-end tests of payload capture: real sockets, real TLS (OpenSSL's
//! s_server and clients linked to the system libssl), 127.0.0.1 only.
//! The daemon never prints payload bytes; exact capture is proven by the
//! keyed digest of the expected bytes.

mod common;

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

use common::{pid_of, python, root_or_skip, Daemon, TlsServer};
use serde_json::Value;

/// Accepts connections on a loopback port and reads everything sent.
fn drain_listener() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(false).unwrap();
        if let Ok((mut s, _)) = l.accept() {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
        }
    });
    (port, h)
}

fn run_python(script: &str) -> u64 {
    let mut child = Command::new(python()).args(["-c", script]).spawn().unwrap();
    assert!(child.wait().unwrap().success());
    child.id() as u64
}

fn payloads(daemon: &Daemon, pid: u64) -> Vec<Value> {
    daemon
        .events()
        .into_iter()
        .filter(|v| pid_of(v) == pid && v["kind"] == "payload")
        .collect()
}

#[test]
fn sendmsg_with_three_iovecs_is_one_payload() {
    if !root_or_skip("sendmsg_with_three_iovecs_is_one_payload") {
        return;
    }
    let daemon = Daemon::start();
    let (port, h) = drain_listener();
    let pid = run_python(&format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}))\ns.sendmsg([b'alpha-', b'bravo-', b'charlie'])\ns.close()"
    ));
    h.join().unwrap();
    let ev = daemon.wait_for("sendmsg payload", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["op"] == "sendmsg"
    });
    assert_eq!(ev["bytes"], 19);
    assert_eq!(ev["captured"], 19);
    assert_eq!(ev["tls"], false);
    assert_eq!(ev["remote_port"], port);
    assert_eq!(ev["digest"], daemon.digest(b"alpha-bravo-charlie"));
}

#[test]
fn large_send_is_truncated_at_the_limit_and_counted() {
    if !root_or_skip("large_send_is_truncated_at_the_limit_and_counted") {
        return;
    }
    let daemon = Daemon::start();
    let (port, h) = drain_listener();
    // 100 KiB of a pattern, so the digest proves which bytes were kept.
    let pid = run_python(&format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}))\ndata = bytes(i % 251 for i in range(102400))\nn = s.send(data)\ns.sendall(data[n:])\ns.close()"
    ));
    h.join().unwrap();
    let ev = daemon.wait_for("large payload", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["stream_offset"] == 0
    });
    assert_eq!(ev["captured"], 16384);
    assert_eq!(ev["truncated"], true);
    assert!(ev["bytes"].as_i64().unwrap() > 16384);
    let expected: Vec<u8> = (0..16384u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(ev["digest"], daemon.digest(&expected));
    // The kernel counted it, and `monitor status` shows it.
    daemon.wait_status("the truncation counted", 10, |s| {
        s["kernel"]["payload_truncated"].as_u64().unwrap_or(0) >= 1
    });
}

#[test]
fn value_split_across_two_writes_is_found_once_whole() {
    if !root_or_skip("value_split_across_two_writes_is_found_once_whole") {
        return;
    }
    let daemon = Daemon::start();
    let (port, h) = drain_listener();
    let pid = run_python(&format!(
        "import socket, time\ns = socket.create_connection(('127.0.0.1', {port}))\ns.send(b'pay with card 4111 1111 ')\ntime.sleep(0.05)\ns.send(b'1111 1111 thanks')\ns.close()"
    ));
    h.join().unwrap();
    daemon.wait_for("second write", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["stream_offset"] == 24
    });
    let found: Vec<Value> = payloads(&daemon, pid)
        .iter()
        .flat_map(|v| v["findings"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["type"], "CREDIT_CARD");
    assert_eq!(
        (found[0]["start"].as_u64(), found[0]["end"].as_u64()),
        (Some(14), Some(33))
    );
    assert_eq!(found[0]["masked"], "411111******1111");
    // No event carries the number itself.
    let all = serde_json::to_string(&daemon.events()).unwrap();
    assert!(!all.contains("4111 1111 1111 1111"));
}

#[test]
fn tls_plaintext_with_destination_from_sni() {
    if !root_or_skip("tls_plaintext_with_destination_from_sni") {
        return;
    }
    let daemon = Daemon::start();
    let server = TlsServer::start();
    let port = server.port;
    let host = "llm-api.monitor-test.internal";
    let body =
        r#"{"model":"m","messages":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}"#;
    let request = format!(
        "POST /v1/chat HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Python's ssl module (SSL_write_ex), one write of the whole request.
    let script = format!(
        "import socket, ssl\nctx = ssl.create_default_context()\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\ns = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='{host}')\ns.sendall({request:?}.encode())\ns.close()"
    );
    let pid = run_python(&script);
    let ev = daemon.wait_for("TLS plaintext from python", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["tls"] == true
    });
    assert_eq!(ev["op"], "ssl_write");
    assert_eq!(
        ev["digest"],
        daemon.digest(request.as_bytes()),
        "captured plaintext is the request exactly"
    );
    assert_eq!(ev["remote_port"], port);
    assert_eq!(ev["remote_addr"], "127.0.0.1");
    assert_eq!(ev["dest_host"], host);
    let f = &ev["findings"][0];
    assert_eq!(f["type"], "CREDIT_CARD");
    assert_eq!(f["masked"], "411111******1111");
    let at = request.find("4111").unwrap() as u64;
    assert_eq!(f["start"], at);

    // curl (SSL_write) against the same server.
    let curl_host = "chat.monitor-test.internal";
    let mut curl = Command::new("curl")
        .args(["-sk", "--max-time", "3", "--resolve"])
        .arg(format!("{curl_host}:{port}:127.0.0.1"))
        .args(["-H", "Content-Type: application/json", "--data", body])
        .arg(format!("https://{curl_host}:{port}/v1/chat"))
        .stdout(Stdio::null())
        .spawn()
        .expect("curl is installed");
    let _ = curl.wait();
    let cpid = curl.id() as u64;
    let ev = daemon.wait_for("TLS plaintext from curl", |v| {
        pid_of(v) == cpid
            && v["kind"] == "payload"
            && v["tls"] == true
            && v["findings"].as_array().is_some_and(|f| !f.is_empty())
    });
    assert_eq!(ev["dest_host"], curl_host);
    assert_eq!(ev["remote_port"], port);
    assert_eq!(ev["findings"][0]["masked"], "411111******1111");
    daemon.wait_status("a TLS library in the status", 10, |s| {
        s["tls_libraries"].as_array().is_some_and(|l| !l.is_empty())
    });
}

#[test]
fn inbound_capture_plain_and_tls() {
    if !root_or_skip("inbound_capture_plain_and_tls") {
        return;
    }
    let daemon = Daemon::start_with(&["--capture-inbound"]);

    // Plain TCP: this process sends, a python child receives.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut child = Command::new(python())
        .args(["-c", &format!(
            "import socket\ns = socket.create_connection(('127.0.0.1', {port}))\ngot = b''\nwhile b'\\n' not in got:\n    got += s.recv(100)\n"
        )])
        .spawn()
        .unwrap();
    let (mut conn, _) = l.accept().unwrap();
    std::io::Write::write_all(&mut conn, b"your ssn on file is 123-45-6789\n").unwrap();
    assert!(child.wait().unwrap().success());
    let pid = child.id() as u64;
    let ev = daemon.wait_for("inbound recv", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["direction"] == "in"
    });
    assert_eq!(ev["op"], "recvfrom");
    assert_eq!(ev["findings"][0]["type"], "US_SSN");
    assert_eq!(ev["findings"][0]["masked"], "***-**-6789");

    // TLS: s_server forwards its stdin to the client, which reads it with SSL_read_ex.
    let mut server = TlsServer::start();
    let port = server.port;
    let script = format!(
        "import socket, ssl\nctx = ssl.create_default_context()\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\ns = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='inbound.monitor-test.internal')\ns.sendall(b'hello\\n')\ns.settimeout(10)\ngot = b''\nwhile b'\\n' not in got:\n    got += s.recv(100)\n"
    );
    let mut client = Command::new(python())
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let cpid = client.id() as u64;
    daemon.wait_for("TLS client's hello", |v| {
        pid_of(v) == cpid && v["kind"] == "payload" && v["tls"] == true && v["direction"] == "out"
    });
    let stdin = server.child.stdin.as_mut().unwrap();
    std::io::Write::write_all(stdin, b"card 4111 1111 1111 1111 is on file\n").unwrap();
    assert!(client.wait().unwrap().success());
    let ev = daemon.wait_for("TLS plaintext read", |v| {
        pid_of(v) == cpid && v["kind"] == "payload" && v["op"] == "ssl_read"
    });
    assert_eq!(ev["tls"], true);
    assert_eq!(ev["direction"], "in");
    assert_eq!(ev["remote_port"], port);
    assert_eq!(ev["dest_host"], "inbound.monitor-test.internal");
    assert_eq!(ev["findings"][0]["masked"], "411111******1111");
}

#[test]
fn accept_without_an_address_buffer_is_still_tracked() {
    if !root_or_skip("accept_without_an_address_buffer_is_still_tracked") {
        return;
    }
    let daemon = Daemon::start();
    // A server that calls accept(fd, NULL, NULL), then sends on the accepted socket.
    let script = "import ctypes, os, socket, sys\nlibc = ctypes.CDLL(None, use_errno=True)\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen(1)\nprint(s.getsockname()[1], flush=True)\nfd = libc.accept(s.fileno(), None, None)\nassert fd >= 0\nos.write(fd, b'card 4111 1111 1111 1111 on file')\nos.close(fd)\n";
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let local = client.local_addr().unwrap().port();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert!(child.wait().unwrap().success());
    let pid = child.id() as u64;
    let accept = daemon.wait_for("accept with NULL address", |v| {
        pid_of(v) == pid && v["kind"] == "accept"
    });
    assert_eq!(accept["remote_addr"], "127.0.0.1");
    assert_eq!(accept["remote_port"], local);
    let sent = daemon.wait_for("payload on the accepted socket", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["op"] == "write"
    });
    assert_eq!(sent["remote_port"], local);
    assert_eq!(sent["conn_id"], accept["conn_id"]);
    assert_eq!(sent["findings"][0]["masked"], "411111******1111");
}

#[test]
fn udp_sendto_names_its_destination() {
    if !root_or_skip("udp_sendto_names_its_destination") {
        return;
    }
    let daemon = Daemon::start();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rx.local_addr().unwrap().port();
    let pid = run_python(&format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'ssn 123-45-6789', ('127.0.0.1', {port}))"
    ));
    let ev = daemon.wait_for("UDP sendto", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["op"] == "sendto"
    });
    assert_eq!(ev["remote_addr"], "127.0.0.1");
    assert_eq!(ev["remote_port"], port);
    assert_eq!(ev["findings"][0]["type"], "US_SSN");
}

/// Python that serves `srv`, a loopback listener whose connections are
/// read to their end on threads of their own.
const LOOPBACK_SINK: &str = r#"
import socket, threading
srv = socket.socket()
srv.bind(('127.0.0.1', 0))
srv.listen(16)
def drain():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=lambda c=c: [None for _ in iter(lambda: c.recv(1 << 20), b'')], daemon=True).start()
threading.Thread(target=drain, daemon=True).start()
"#;

/// A flood of sends on one connection into a small ring buffer with no
/// backlog, read by a daemon that cannot keep up (a debug build printing
/// every event): the flood's sends are recorded unscanned, each one in an event that says so
/// and in a record with the `send-not-inspected` alert (counted, not a
/// record a send), and the status counts them. A card sent meanwhile on a
/// quiet connection is found, when its record reached the daemon at all.
#[test]
fn a_flood_is_recorded_unscanned_with_an_alert() {
    if !root_or_skip("a_flood_is_recorded_unscanned_with_an_alert") {
        return;
    }
    let daemon = Daemon::start_with(&["--ring-mib", "1", "--backlog-mib", "0"]);
    let script = format!(
        "{LOOPBACK_SINK}{}",
        r#"
flood = socket.create_connection(srv.getsockname())
quiet = socket.create_connection(srv.getsockname())
line = b'status ok ' * 18 + b'\n'
for i in range(40000):
    flood.send(line)
    if i == 20000:
        quiet.send(b'my card is 4111 1111 1111 1111 thanks')
flood.close()
quiet.close()
"#
    );
    let pid = run_python(&script);
    let status = daemon.wait_status("sends not inspected", 60, |s| {
        s["pipeline"]["sends_not_inspected"].as_u64().unwrap_or(0) > 0
    });
    // Every event the daemon printed of a send not scanned is in a record's count.
    let unscanned = |daemon: &Daemon| {
        payloads(daemon, pid)
            .iter()
            .filter(|v| v["inspected"] == false)
            .count() as u64
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (events, recorded) = loop {
        let events = unscanned(&daemon);
        let recorded: u64 = common::query(
            &daemon,
            &["alerts", "--action", "send", "--limit", "100000"],
        )
        .iter()
        .filter(|r| pid_of_record(r) == pid && r["alert"]["rule"] == "send-not-inspected")
        .map(|r| r["repeats"]["count"].as_u64().unwrap_or(1))
        .sum();
        if (events > 0 && events == recorded) || std::time::Instant::now() > deadline {
            break (events, recorded);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    assert!(events > 0, "{status}");
    assert_eq!(
        events, recorded,
        "events of sends not scanned against their records' counts"
    );
    let sends = payloads(&daemon, pid);
    for v in &sends {
        if v["inspected"] == false {
            assert!(v.get("findings").is_none(), "{v}");
            assert_eq!(v["digest"], "", "{v}");
        }
    }
    if let Some(card) = sends
        .iter()
        .find(|v| v["bytes"] == 37 && v["direction"] == "out")
    {
        assert!(
            card.get("inspected").is_none(),
            "the quiet connection is scanned: {card}"
        );
        assert_eq!(card["findings"][0]["type"], "CREDIT_CARD", "{card}");
    }
    eprintln!(
        "flood: {} send events, {events} not scanned, ring buffer full {}",
        sends.len(),
        daemon.status()["kernel"]["ringbuf_full"]
    );
}

/// A flood of sends with the daemon's backlog: the daemon (a debug build
/// printing every event) falls behind, takes the ring's records into its
/// own memory once a quarter of the ring waits, and scans every send from
/// there, in order. No record is lost, no send is passed over, the status
/// shows the backlog used, and both the quiet connection's card and the
/// flood's own number are found, once each. (The flood stays within the
/// ring, so that the test does not hang on the debug build's speed; `cargo
/// xtask bench payload` measures floods beyond it.)
#[test]
fn a_flood_is_scanned_from_the_backlog() {
    if !root_or_skip("a_flood_is_scanned_from_the_backlog") {
        return;
    }
    // 60,000 records of about 336 bytes: 20 MB, 60% of the default ring.
    const SENDS: usize = 60_000;
    let daemon = Daemon::start_with(&["--backlog-mib", "64"]);
    let script = format!(
        "{LOOPBACK_SINK}{}",
        format_args!(
            r#"
flood = socket.create_connection(srv.getsockname())
quiet = socket.create_connection(srv.getsockname())
line = b'status ok ' * 19 + b'\n'
for i in range({SENDS}):
    flood.send(b'ssn 123-45-6789 ' + line if i == {SENDS} - 1 else line)
    if i == {SENDS} // 2:
        quiet.send(b'my card is 4111 1111 1111 1111 thanks')
flood.close()
quiet.close()
"#
        )
    );
    let pid = run_python(&script);
    let status = daemon.wait_status("every send handled", 180, |s| {
        s["pipeline"]["received"].as_u64().unwrap_or(0) > SENDS as u64
            && s["pipeline"]["backlog_bytes"] == 0
    });
    let sends = payloads(&daemon, pid);
    assert_eq!(sends.len(), SENDS + 1, "{status}");
    assert_eq!(status["kernel"]["ringbuf_full"], 0, "{status}");
    assert_eq!(status["pipeline"]["sends_not_inspected"], 0, "{status}");
    let peak = status["pipeline"]["backlog_peak_bytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(peak > 0, "the backlog was used: {status}");
    assert!(
        sends.iter().all(|v| v.get("inspected").is_none()),
        "every send scanned"
    );
    let found = |kind: &str| {
        sends
            .iter()
            .filter(|v| {
                v["findings"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["type"] == kind))
            })
            .count()
    };
    assert_eq!(found("CREDIT_CARD"), 1, "the quiet connection's card");
    assert_eq!(found("US_SSN"), 1, "the flood's last send");
    eprintln!(
        "flood: {} sends, backlog at most {:.1} MiB",
        sends.len(),
        peak as f64 / f64::from(1 << 20)
    );
}

/// The pid of a record.
fn pid_of_record(r: &Value) -> u64 {
    r["pid"].as_u64().unwrap_or(0)
}

/// A burst of small sends on eight connections, with payload inspection on
/// one thread and on three (each connection's sends of a batch scanned
/// together): every send is an event, each connection's offsets run in
/// order, and each connection's split card numbers are found whole, once.
#[test]
fn a_burst_on_many_connections_is_inspected_in_order() {
    if !root_or_skip("a_burst_on_many_connections_is_inspected_in_order") {
        return;
    }
    for threads in ["1", "3"] {
        burst_on_many_connections(threads);
    }
}

fn burst_on_many_connections(threads: &str) {
    let daemon = Daemon::start_with(&["--payload-threads", threads]);
    let script = format!(
        "{LOOPBACK_SINK}{}",
        r#"
conns = [socket.create_connection(srv.getsockname()) for _ in range(8)]
for c in conns:
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
text = b'note: the card is 4111 1111 1111 1111, exp 09/28. ' * 2
for at in range(0, len(text), 5):
    for c in conns:
        c.send(text[at:at + 5])
for c in conns:
    c.close()
"#
    );
    let pid = run_python(&script);
    let sends_each = 100_u64.div_ceil(5);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let events = loop {
        let events: Vec<Value> = payloads(&daemon, pid)
            .into_iter()
            .filter(|v| v["direction"] == "out" && v["remote_port"] != 0)
            .collect();
        if events.len() as u64 >= 8 * sends_each || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut by_conn: std::collections::BTreeMap<u64, Vec<&Value>> = Default::default();
    for v in &events {
        by_conn
            .entry(v["conn_id"].as_u64().unwrap())
            .or_default()
            .push(v);
    }
    assert_eq!(
        by_conn.len(),
        8,
        "{threads} threads: {} events",
        events.len()
    );
    for (conn, sends) in by_conn {
        let offsets: Vec<u64> = sends
            .iter()
            .map(|v| v["stream_offset"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (0..sends_each).map(|i| i * 5).collect();
        assert_eq!(offsets, expected, "{threads} threads, connection {conn}");
        let cards: Vec<(u64, u64)> = sends
            .iter()
            .flat_map(|v| v["findings"].as_array().cloned().unwrap_or_default())
            .filter(|f| f["type"] == "CREDIT_CARD")
            .map(|f| (f["start"].as_u64().unwrap(), f["end"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            cards,
            [(18, 37), (68, 87)],
            "{threads} threads, connection {conn}"
        );
    }
}
