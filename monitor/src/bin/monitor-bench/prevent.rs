//! The prevention benchmark behind `cargo xtask bench prevent`: a TLS
//! request loop (Python's ssl, one write of the request, a short reply
//! read back) against a local TLS server, without the daemon, with it and
//! no enforcement, and with the client's role enforcing; and the kernel
//! run time per call of the `SSL_write_ex` program in each daemon round
//! (from the kernel's BPF run-time statistics), at 1 KiB and 16 KiB.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use serde::Serialize;

/// One round's numbers.
#[derive(Debug, Serialize)]
pub struct Round {
    /// `no daemon`, `daemon, not enforcing`, `daemon, enforcing`.
    pub setup: &'static str,
    /// Request size, bytes.
    pub size: usize,
    /// Microseconds per request (write plus reply).
    pub request_us: f64,
    /// Kernel run time of the write probe per call, ns (absent without the daemon).
    pub probe_ns: Option<f64>,
}

/// What the benchmark measured.
#[derive(Debug, Serialize)]
pub struct PreventReport {
    /// Requests per round.
    pub requests: u64,
    /// Every round.
    pub rounds: Vec<Round>,
}

const SERVER: &str = r#"import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(8)
print(l.getsockname()[1], flush=True)
while True:
    c, _ = l.accept()
    s = ctx.wrap_socket(c, server_side=True)
    size = int(s.recv(16).decode())
    s.sendall(b'go')
    try:
        while True:
            got = 0
            while got < size:
                d = s.recv(65536)
                if not d: raise EOFError
                got += len(d)
            s.sendall(b'ok')
    except Exception: pass
"#;

const CLIENT: &str = r#"import socket, ssl, sys, time
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port)), server_hostname='llm.bench.internal')
s.sendall(str(size).encode().ljust(16)); s.recv(2)
body = (b'{"content": "' + b'a' * size)[:size - 2] + b'"}'
t = time.perf_counter()
for i in range(n):
    s.sendall(body); s.recv(2)
print((time.perf_counter() - t) / n * 1e6)
"#;

fn server(dir: &Path) -> anyhow::Result<(Child, u16)> {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=llm.bench.internal", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()?;
    anyhow::ensure!(ok.success(), "openssl req failed");
    let mut child = Command::new("python3")
        .args(["-c", SERVER])
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
    Ok((child, line.trim().parse()?))
}

fn client(port: u16, n: u64, size: usize) -> anyhow::Result<f64> {
    let out = Command::new("python3")
        .args([
            "-c",
            CLIENT,
            &port.to_string(),
            &n.to_string(),
            &size.to_string(),
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn daemon(monitor: &Path, dir: &Path, enforce: bool) -> anyhow::Result<Child> {
    let rules = dir.join("rules");
    let _ = std::fs::remove_dir_all(&rules);
    std::fs::create_dir_all(&rules)?;
    let policy = if enforce {
        "[role.admin]\nenforce = [\"CREDIT_CARD\"]\n"
    } else {
        "[role.admin]\n"
    };
    std::fs::write(rules.join("policy.toml"), policy)?;
    let _ = std::fs::remove_dir_all(dir.join("state"));
    super::soak::start_daemon_with(monitor, dir, &[], Stdio::null())
}

/// Runs every round.
pub fn run(monitor: &Path, requests: u64) -> anyhow::Result<PreventReport> {
    let dir = std::env::temp_dir().join(format!("monitor-prevent-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let stats = Path::new("/proc/sys/kernel/bpf_stats_enabled");
    let stats_before = std::fs::read_to_string(stats).unwrap_or_default();
    std::fs::write(stats, "1").context("enabling BPF run-time statistics")?;
    let (mut srv, port) = server(&dir)?;
    let mut rounds = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for size in [1024usize, 16384] {
            client(port, requests / 10, size)?; // warm-up
            rounds.push(Round {
                setup: "no daemon",
                size,
                request_us: client(port, requests, size)?,
                probe_ns: None,
            });
        }
        for (setup, enforce) in [
            ("daemon, not enforcing", false),
            ("daemon, enforcing", true),
        ] {
            let mut d = daemon(monitor, &dir, enforce)?;
            for size in [1024usize, 16384] {
                // A new program per daemon; the statistics are per size
                // from the difference before and after the round.
                let before = probe_ns_total()?;
                let us = client(port, requests, size)?;
                let after = probe_ns_total()?;
                rounds.push(Round {
                    setup,
                    size,
                    request_us: us,
                    probe_ns: Some((after.0 - before.0) / (after.1 - before.1).max(1.0)),
                });
            }
            super::soak::stop_daemon(&mut d);
        }
        Ok(())
    })();
    let _ = srv.kill();
    let _ = srv.wait();
    let _ = std::fs::write(stats, stats_before.trim());
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    Ok(PreventReport { requests, rounds })
}

/// The write probe's total run time and run count so far (0 before it is loaded).
fn probe_ns_total() -> anyhow::Result<(f64, f64)> {
    let (calls, ns) = super::overhead::probe_stats()?
        .get("ssl_write_ex")
        .copied()
        .unwrap_or_default();
    Ok((ns as f64, calls as f64))
}
