//! Shared harness for the end-to-end tests: starts the real daemon with its
//! real probes, collects its JSON event stream, and finds events in it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `monitor` binary under test.
pub fn monitor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_monitor")
}

/// True when running in CI, where a test that cannot load BPF must fail.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether root-only tests can run here. In CI, not being root is a failure.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    assert!(!in_ci(), "{test}: CI=true but not running as root");
    eprintln!("\n*** SKIPPED {test}: needs root to load BPF programs ***\n");
    false
}

/// A scratch directory removed on drop (its path canonical, so that it
/// compares with the kernel's resolved paths).
pub struct TempDir {
    path: PathBuf,
    _guard: Option<tempfile::TempDir>,
}

impl TempDir {
    /// A fresh directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        let guard = tempfile::Builder::new()
            .prefix(&format!("monitor-{tag}-"))
            .tempdir()
            .unwrap();
        Self {
            path: guard.path().canonicalize().unwrap(),
            _guard: Some(guard),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Nothing: what a daemon holds once its directory was handed on.
    fn taken() -> Self {
        Self {
            path: PathBuf::new(),
            _guard: None,
        }
    }
}

/// A running daemon and the events it has printed.
pub struct Daemon {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    warnings: Arc<Mutex<Vec<String>>>,
    pub dir: TempDir,
}

impl Daemon {
    /// Starts `monitor run --events-stdout` and waits until it reports ready
    /// (sd_notify READY=1). Panics, with the daemon's stderr, if it cannot
    /// load or attach its programs.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Daemon::start`], with extra `monitor run` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_in(TempDir::new("daemon"), extra)
    }

    /// As [`Daemon::start_with`], with its state in `dir`: rule overrides
    /// are read from `dir/rules`, the record is kept in `dir/state`, the
    /// query socket is `dir/query.sock`.
    pub fn start_in(dir: TempDir, extra: &[&str]) -> Self {
        let notify_path = dir.path().join("notify.sock");
        // A daemon started before on this directory left its socket.
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut child = Command::new(monitor_bin())
            .args(["run", "--events-stdout", "--stats-interval", "1"])
            .arg("--status-file")
            .arg(dir.path().join("status.json"))
            .arg("--key-file")
            .arg(dir.path().join("fingerprint.key"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--rules-dir")
            .arg(dir.path().join("rules"))
            .arg("--socket")
            .arg(dir.path().join("query.sock"))
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monitor");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("daemon printed non-JSON {line:?}: {e}"));
                sink.lock().unwrap().push(v);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 256];
        loop {
            if let Ok(n) = notify.recv(&mut buf) {
                if buf[..n].windows(7).any(|w| w == b"READY=1") {
                    break;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read as _;
                child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!("monitor exited before attaching its probes ({status}):\n{err}");
            }
            assert!(Instant::now() < deadline, "monitor not ready after 60 s");
        }
        // Keep draining stderr so the daemon never blocks on it.
        let stderr = child.stderr.take().unwrap();
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let kept = warnings.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("monitor: {line}");
                    kept.lock().unwrap().push(line);
                }
            }
        });
        Self {
            child,
            events,
            warnings,
            dir,
        }
    }

    /// The warning and error lines the daemon has logged so far.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().unwrap().clone()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The analysts' query socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("query.sock")
    }

    /// The state directory (record and chain key).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Stops the daemon (SIGTERM) and waits for it; its directory stays.
    pub fn stop(&mut self) {
        let status = self.terminate(Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "monitor exited with {status:?} (None: still running 60 s after SIGTERM, killed)"
        );
    }

    /// SIGTERM, then up to `grace` for the daemon to exit; SIGKILL after
    /// that, so a daemon stuck in its shutdown never holds a test (and the
    /// events it prints never pile up in the harness). The exit status, or
    /// `None` if it had to be killed.
    fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        None
    }

    /// Kills the daemon with SIGKILL (no shutdown at all) and hands back its
    /// directory, to start another daemon on the same state.
    pub fn kill9(mut self) -> TempDir {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "monitor survived SIGKILL: {status}");
        std::mem::replace(&mut self.dir, TempDir::taken())
    }

    /// Stops the daemon (SIGTERM) and hands back its directory, to start
    /// another daemon on the same state.
    pub fn stop_and_take(mut self) -> TempDir {
        self.stop();
        std::mem::replace(&mut self.dir, TempDir::taken())
    }

    /// The status file the daemon writes.
    pub fn status_file(&self) -> PathBuf {
        self.dir.path().join("status.json")
    }

    /// The digest the daemon gives `bytes` (same host key).
    pub fn digest(&self, bytes: &[u8]) -> String {
        let key =
            monitor_pii::FingerprintKey::load_or_create(&self.dir.path().join("fingerprint.key"))
                .unwrap();
        key.fingerprint("PAYLOAD", bytes).to_string()
    }

    /// The status file as it is now (null while it cannot be read).
    pub fn status(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.status_file()).unwrap_or_default())
            .unwrap_or(Value::Null)
    }

    /// Waits (up to `secs`) for the status file, a snapshot rewritten every
    /// second, to satisfy `pred`.
    pub fn wait_status(&self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) for an event matching `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.events.lock().unwrap().iter().find(|v| pred(v)) {
                return v.clone();
            }
            if Instant::now() > deadline {
                let n = self.events.lock().unwrap().len();
                panic!("no event {what} among {n} events");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(Duration::from_secs(20));
        }
    }
}

/// The event's pid.
pub fn pid_of(v: &Value) -> u64 {
    v["process"]["pid"].as_u64().unwrap_or(0)
}

/// Debian's own Python (not a version-manager shim that would exec through a shell).
pub fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Runs `monitor ARGS --socket SOCK`.
pub fn cli(daemon: &Daemon, args: &[&str]) -> Output {
    Command::new(monitor_bin())
        .args(args)
        .arg("--socket")
        .arg(daemon.socket())
        .output()
        .unwrap()
}

/// Runs a CLI query with `--json` and parses the records.
pub fn query(daemon: &Daemon, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli(daemon, &all);
    assert!(
        out.status.success(),
        "monitor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// How many accesses a record stands for: a record of repeats carries
/// their count (`repeats.count`), any other record is one.
pub fn accesses(r: &Value) -> u64 {
    r["repeats"]["count"].as_u64().unwrap_or(1)
}

/// Polls a query until a record matches (records are written in batches).
pub fn wait_record(daemon: &Daemon, args: &[&str], pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = query(daemon, args).into_iter().find(&pred) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no matching record for monitor {args:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a CLI query with `--json`, `input` on its stdin, and parses the records.
pub fn query_stdin(daemon: &Daemon, args: &[&str], input: &str) -> Vec<Value> {
    use std::io::Write as _;
    let mut child = Command::new(monitor_bin())
        .args(args)
        .args(["--json", "--socket"])
        .arg(daemon.socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{input}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "monitor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs Debian's Python in `cwd` with `code` (as `nobody` when `nobody`),
/// waits for it, and returns its pid.
pub fn python_pid(cwd: &Path, code: &str, nobody: bool) -> u32 {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(python());
    cmd.args(["-c", &format!("import os\nprint(os.getpid())\n{code}")])
        .current_dir(cwd);
    if nobody {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Writes a `classes.toml` override that classifies everything under `dir`
/// as cardholder data, on top of the shipped classes.
pub fn classify_dir(rules: &Path, dir: &Path) {
    std::fs::create_dir_all(rules).unwrap();
    std::fs::write(
        rules.join("classes.toml"),
        format!(
            "[[path]]\nglob = \"{}/**\"\nclass = \"cardholder-data\"\n\n{}",
            dir.display(),
            include_str!("../../rules/classes.toml")
        ),
    )
    .unwrap();
}

/// A `cards` directory under `dir` that `nobody` can reach, classified as
/// cardholder data, with `nobody` in the `chatbot` role and `policy` as
/// the `policy.toml` override; returns the directory (empty).
pub fn chatbot_cards(dir: &Path, policy: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let cards = dir.join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    for d in [dir, cards.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let rules = dir.join("rules");
    classify_dir(&rules, &cards);
    std::fs::write(
        rules.join("roles.toml"),
        "[[role]]\nname = \"chatbot\"\nusers = [\"nobody\"]\n",
    )
    .unwrap();
    std::fs::write(rules.join("policy.toml"), policy).unwrap();
    cards
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Runs `monitor verify --json --store STATE/record` (with `extra` options)
/// on a stopped daemon's state directory.
pub fn verify_store(state: &Path, extra: &[&str]) -> Output {
    Command::new(monitor_bin())
        .args(["verify", "--json"])
        .args(extra)
        .arg("--store")
        .arg(state.join("record"))
        .output()
        .unwrap()
}

/// Makes a test CA and a certificate for 127.0.0.1 signed by it (openssl);
/// returns (CA certificate, server certificate, server key).
pub fn test_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |p: &PathBuf| p.to_str().unwrap().to_owned();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-keyout",
        &s(&p("ca.key")),
        "-out",
        &s(&p("ca.pem")),
        "-subj",
        "/CN=monitor test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &s(&p("server.key")),
        "-out",
        &s(&p("server.csr")),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &s(&p("server.csr")),
        "-CA",
        &s(&p("ca.pem")),
        "-CAkey",
        &s(&p("ca.key")),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &s(&p("server.pem")),
        "-extfile",
        &s(&p("ext.cnf")),
    ]);
    (p("ca.pem"), p("server.pem"), p("server.key"))
}

/// A TLS server on loopback (`openssl s_server`), killed on drop.
pub struct TlsServer {
    /// The server process (its stdin reaches the connected client).
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: TempDir,
}

impl TlsServer {
    /// `openssl s_server` on a free loopback port with a throwaway certificate.
    pub fn start() -> Self {
        let dir = TempDir::new("tls");
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed");
        assert!(ok.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
            ])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
