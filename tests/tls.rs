//! TLS plaintext from whatever a host runs, found on its own: Node's
//! bundled OpenSSL, Go's crypto/tls, and the blind spots named. Each
//! client is started after the daemon is ready (its binary is discovered
//! at its exec) and, like a service answering a request, sends its first
//! TLS bytes a moment after it starts.

mod common;

use std::path::Path;
use std::process::Command;

use common::{pid_of, root_or_skip, Daemon, TempDir, TlsServer};
use serde_json::Value;

const CARD_BODY: &str = r#"{"content": "my card is 4111 1111 1111 1111, please update it"}"#;

/// A Node.js `https` POST of `CARD_BODY` (the module the LLM SDKs use),
/// two seconds after start: the daemon looks at the 100 MB binary at its
/// exec (about 40 ms on an idle machine, `cargo xtask bench
/// tls-discovery`), and a loaded test machine takes several times that.
const NODE_CLIENT: &str = r#"
const https = require('https');
const [port, host, body] = process.argv.slice(2);
setTimeout(() => {
  const req = https.request({host: '127.0.0.1', port, servername: host, path: '/v1/chat',
    method: 'POST', rejectUnauthorized: false,
    headers: {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Host: host}},
    res => { res.resume(); res.on('end', () => process.exit(0)); });
  req.on('error', () => process.exit(0));
  req.end(body);
  setTimeout(() => process.exit(0), 2000);
}, 2000);
"#;

/// The same POST over Go's crypto/tls (net/http), one second after start.
const GO_CLIENT: &str = r#"package main

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"os"
	"time"
)

func main() {
	port, host, body := os.Args[1], os.Args[2], os.Args[3]
	time.Sleep(time.Second)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: host}}
	c := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	req, _ := http.NewRequest("POST", "https://127.0.0.1:"+port+"/v1/chat", bytes.NewReader([]byte(body)))
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
	}
}
"#;

/// Builds `GO_CLIENT` with the distribution's Go toolchain (`extra` go
/// build flags), into `dir`.
fn build_go(dir: &Path, extra: &[&str]) -> std::path::PathBuf {
    std::fs::write(dir.join("main.go"), GO_CLIENT).unwrap();
    let out = dir.join("llm-client");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .args(extra)
        .arg("main.go")
        .current_dir(dir)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GO111MODULE", "off")
        .output()
        .expect("the Go toolchain (golang-go) is installed");
    assert!(
        built.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    out
}

/// Runs a client to its end and returns its pid.
fn run(cmd: &mut Command) -> u64 {
    let mut child = cmd.spawn().unwrap();
    let pid = child.id() as u64;
    child.wait().unwrap();
    pid
}

/// The TLS plaintext events of `pid` with a card number in them.
fn card_sends(daemon: &Daemon, pid: u64) -> Vec<Value> {
    daemon
        .events()
        .into_iter()
        .filter(|v| {
            pid_of(v) == pid
                && v["kind"] == "payload"
                && v["tls"] == true
                && v["findings"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["type"] == "CREDIT_CARD"))
        })
        .collect()
}

fn assert_card_read(daemon: &Daemon, pid: u64, host: &str, port: u16, op: &str) {
    daemon.wait_for("the card in TLS plaintext", |v| {
        pid_of(v) == pid && v["kind"] == "payload" && v["tls"] == true
    });
    let sends = card_sends(daemon, pid);
    // Once: a uprobe attached twice to one file would report it twice.
    assert_eq!(sends.len(), 1, "{sends:#?}");
    let ev = &sends[0];
    assert_eq!(ev["op"], op, "{ev}");
    assert_eq!(ev["dest_host"], host, "{ev}");
    assert_eq!(ev["remote_port"], port, "{ev}");
    let card = ev["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "CREDIT_CARD")
        .unwrap();
    assert_eq!(card["masked"], "411111******1111");
}

#[test]
fn node_https_post_is_read_on_the_defaults() {
    if !root_or_skip("node_https_post_is_read_on_the_defaults") {
        return;
    }
    let daemon = Daemon::start();
    let server = TlsServer::start();
    let dir = TempDir::new("node");
    std::fs::write(dir.path().join("client.js"), NODE_CLIENT).unwrap();
    let host = "api.llm-vendor.monitor-test.internal";
    let pid = run(Command::new("node")
        .arg(dir.path().join("client.js"))
        .args([&server.port.to_string(), host, CARD_BODY]));
    assert_card_read(&daemon, pid, host, server.port, "ssl_write");
    // A Node carrying its own OpenSSL is hooked itself (one linked to the
    // system's libssl is read through that).
    let which = Command::new("sh")
        .args(["-c", "command -v node"])
        .output()
        .unwrap();
    let node = std::fs::canonicalize(String::from_utf8_lossy(&which.stdout).trim()).unwrap();
    let bundled = !monitor::sensor::tls::inspect(&node).unwrap().is_empty();
    let shown = format!("{} (openssl)", node.display());
    let status = daemon.wait_status("node in the hooked list", 10, |s| {
        !bundled
            || s["tls_libraries"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(shown.as_str())))
    });
    // The system libssl is hooked once, as one file.
    let libssl = status["tls_libraries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x.as_str().unwrap().contains("libssl.so"))
        .count();
    assert_eq!(libssl, 1, "{status}");
}

#[test]
fn go_crypto_tls_post_is_read_on_the_defaults() {
    if !root_or_skip("go_crypto_tls_post_is_read_on_the_defaults") {
        return;
    }
    let dir = TempDir::new("go");
    let client = build_go(dir.path(), &[]);
    let daemon = Daemon::start();
    let server = TlsServer::start();
    let host = "api.llm-vendor.monitor-test.internal";
    let pid = run(Command::new(&client).args([&server.port.to_string(), host, CARD_BODY]));
    assert_card_read(&daemon, pid, host, server.port, "go_tls_write");
    daemon.wait_status("the Go binary in the hooked list", 10, |s| {
        s["tls_libraries"].as_array().is_some_and(|l| {
            l.iter()
                .any(|x| x.as_str().unwrap().contains("llm-client (go)"))
        })
    });
}

/// A Go binary built without its symbol table: its TLS cannot be read,
/// and `monitor status` names it as a blind spot.
#[test]
fn tls_that_cannot_be_read_is_named_in_the_status() {
    if !root_or_skip("tls_that_cannot_be_read_is_named_in_the_status") {
        return;
    }
    let dir = TempDir::new("go-stripped");
    let client = build_go(dir.path(), &["-ldflags=-s -w"]);
    let daemon = Daemon::start();
    let server = TlsServer::start();
    let pid = run(Command::new(&client).args([
        &server.port.to_string(),
        "blind.monitor-test.internal",
        CARD_BODY,
    ]));
    let shown = client.display().to_string();
    daemon.wait_status("the stripped binary as a blind spot", 15, |s| {
        s["tls_blind"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(shown.as_str())))
    });
    assert!(card_sends(&daemon, pid).is_empty());
    let human = Command::new(common::monitor_bin())
        .args(["status", "--status-file"])
        .arg(daemon.status_file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&shown), "{text}");
}

/// GnuTLS (`gnutls-cli`, which maps libgnutls): its `gnutls_record_send`
/// plaintext is read like OpenSSL's.
#[test]
fn gnutls_client_plaintext_is_read() {
    if !root_or_skip("gnutls_client_plaintext_is_read") {
        return;
    }
    let daemon = Daemon::start();
    let server = TlsServer::start();
    let host = "gnutls.monitor-test.internal";
    let request = format!(
        "POST /v1/chat HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{CARD_BODY}",
        CARD_BODY.len()
    );
    let mut child = Command::new("gnutls-cli")
        .args(["--insecure", "--sni-hostname", host, "-p"])
        .arg(server.port.to_string())
        .arg("127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("gnutls-cli (gnutls-bin) is installed");
    let pid = child.id() as u64;
    // The handshake first, then the request, then end of input.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(request.as_bytes()).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    assert_card_read(&daemon, pid, host, server.port, "ssl_write");
}
