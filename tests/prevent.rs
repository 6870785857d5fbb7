//! Prevention: a role that enforces has a TLS write carrying a card number
//! stopped in the kernel before the library encrypts it (the client is
//! killed; the server receives none of the request), recorded as a
//! critical alert with the masked card. Other roles, and numbers that fail
//! the Luhn check, pass.

mod common;

use std::io::{BufRead as _, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{root_or_skip, wait_record, Daemon, TempDir};

/// A Python TLS server that writes what each connection sent to `conn-N`.
struct Server {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=llm.monitor-test.internal", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        let out = dir.join("received");
        std::fs::create_dir_all(&out).unwrap();
        let code = format!(
            "import socket, ssl\n\
             ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain({cert:?}, {key:?})\n\
             l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(8)\n\
             print(l.getsockname()[1], flush=True)\n\
             n = 0\n\
             while True:\n\
             \x20   c, _ = l.accept(); data = b''\n\
             \x20   try:\n\
             \x20       s = ctx.wrap_socket(c, server_side=True)\n\
             \x20       while True:\n\
             \x20           d = s.recv(65536)\n\
             \x20           if not d: break\n\
             \x20           data += d\n\
             \x20   except Exception: pass\n\
             \x20   open('{}/conn-%d' % n, 'wb').write(data); n += 1\n",
            out.display()
        );
        let mut child = Command::new(common::python())
            .args(["-c", &code])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Self {
            child,
            port: line.trim().parse().unwrap(),
            out,
        }
    }

    /// What the `n`th connection sent, once it has ended.
    fn received(&self, n: usize) -> Vec<u8> {
        let path = self.out.join(format!("conn-{n}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(Instant::now() < deadline, "connection {n} never ended");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read(path).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts `body` over TLS (Python's ssl: `SSL_write_ex`) as `nobody` (the
/// chatbot) or root (admin), once the daemon has seen the client start (a
/// process is marked for the check when its role is first resolved).
/// Returns its pid and how it ended.
fn post(daemon: &Daemon, port: u16, body: &str, chatbot: bool) -> (u32, std::process::ExitStatus) {
    let request = format!(
        "POST /v1/chat HTTP/1.1\r\nHost: llm.monitor-test.internal\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let code = format!(
        "import socket, ssl, sys\n\
         ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
         s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='llm.monitor-test.internal')\n\
         sys.stdin.readline()\n\
         s.sendall({request:?}.encode())\n\
         s.close()\n"
    );
    let mut child = spawn_as(&code, chatbot);
    let pid = child.id();
    wait_seen(daemon, pid);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    (pid, child.wait().unwrap())
}

/// Starts Python with `code`, its stdin piped, as `nobody` or root.
fn spawn_as(code: &str, nobody: bool) -> Child {
    let mut cmd = Command::new(common::python());
    cmd.args(["-c", code])
        .current_dir("/")
        .stdin(Stdio::piped());
    if nobody {
        cmd.uid(65534).gid(65534);
    }
    cmd.spawn().unwrap()
}

/// Waits until the daemon has handled `pid`'s exec (and so resolved its
/// role), plus a moment for the batch to end.
fn wait_seen(daemon: &Daemon, pid: u32) {
    daemon.wait_for("the client's exec", |v| {
        common::pid_of(v) == pid as u64 && v["kind"] == "exec"
    });
    std::thread::sleep(Duration::from_millis(200));
}

#[test]
fn a_card_in_a_chatbot_s_tls_write_is_stopped_before_encryption() {
    if !root_or_skip("a_card_in_a_chatbot_s_tls_write_is_stopped_before_encryption") {
        return;
    }
    let dir = TempDir::new("prevent");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("roles.toml"),
        "[[role]]\nname = \"chatbot\"\nusers = [\"nobody\"]\n\n[[role]]\nname = \"admin\"\nusers = [\"root\"]\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("policy.toml"),
        "[role.chatbot]\nenforce = [\"CREDIT_CARD\"]\nenforce_action = \"kill\"\n\n[role.admin]\n",
    )
    .unwrap();
    let server = Server::start(dir.path());
    let daemon = Daemon::start_in(dir, &[]);
    let card = r#"{"content": "my card is 4111 1111 1111 1111, charge it"}"#;

    // The chatbot: killed before the library encrypted a byte of it.
    let (pid, how) = post(&daemon, server.port, card, true);
    assert_eq!(how.signal(), Some(9), "{how}");
    let got = server.received(0);
    assert!(
        !String::from_utf8_lossy(&got).contains("4111"),
        "the server received the card"
    );
    assert!(got.is_empty(), "{} bytes of the request arrived", got.len());
    let rec = wait_record(&daemon, &["alerts", "--action", "send"], |r| {
        r["pid"] == pid
    });
    assert_eq!(rec["alert"]["rule"], "pii-prevented", "{rec}");
    assert_eq!(rec["alert"]["severity"], "critical", "{rec}");
    assert_eq!(rec["role"], "chatbot", "{rec}");
    assert_eq!(rec["findings"][0]["masked"], "411111******1111", "{rec}");

    // Another role is untouched.
    let (_, how) = post(&daemon, server.port, card, false);
    assert!(how.success(), "{how}");
    assert!(String::from_utf8_lossy(&server.received(1)).contains("4111 1111 1111 1111"));

    // A number that fails Luhn passes, even for the chatbot.
    let (_, how) = post(
        &daemon,
        server.port,
        r#"{"content": "ref 4111 1111 1111 1112"}"#,
        true,
    );
    assert!(how.success(), "{how}");
    assert!(String::from_utf8_lossy(&server.received(2)).contains("4111 1111 1111 1112"));

    // Dashes do not hide one.
    let (_, how) = post(
        &daemon,
        server.port,
        r#"{"content": "card 5500-0000-0000-0004"}"#,
        true,
    );
    assert_eq!(how.signal(), Some(9), "{how}");
    assert!(server.received(3).is_empty());

    // A plain socket: the check at the syscall's entry kills the writer,
    // but the kernel completes the syscall before the signal lands, so the
    // bytes of that write still leave (measured here, and said in `monitor
    // status`); its later writes never happen.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut c, &mut got);
        got
    });
    let code = format!(
        "import socket, sys, time\ns = socket.create_connection(('127.0.0.1', {plain}))\n\
         sys.stdin.readline()\ns.sendall(b'my card is 4111 1111 1111 1111')\n\
         time.sleep(0.2)\ns.sendall(b'and a second write')\n"
    );
    let mut child = spawn_as(&code, true);
    wait_seen(&daemon, child.id());
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let how = child.wait().unwrap();
    assert_eq!(how.signal(), Some(9), "{how}");
    let got = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(
        got.contains("4111 1111 1111 1111"),
        "the syscall completed: {got:?}"
    );
    assert!(!got.contains("second write"), "{got:?}");
    let rec = wait_record(&daemon, &["alerts", "--action", "send"], |r| {
        r["alert"]["rule"] == "pii-prevented"
            && r["alert"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("socket write"))
    });
    assert_eq!(rec["findings"][0]["masked"], "411111******1111", "{rec}");

    let status = daemon.wait_status("prevented writes counted", 10, |s| {
        s["kernel"]["prevented"].as_u64() == Some(3)
    });
    assert_eq!(status["kernel"]["prevented"], 3);
}
