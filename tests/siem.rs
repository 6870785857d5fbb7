//! SIEM delivery end to end: the real daemon with its real probes, and a
//! real rsyslog on 127.0.0.1 as the receiver. rsyslog parses what arrives
//! itself (its RFC 5424 parser and `mmpstrucdata` for the structured data)
//! and writes each message as JSON, which the tests read back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{python, root_or_skip, test_pki, Daemon, TempDir};
use serde_json::Value;

/// A private rsyslogd listening on one TCP port, writing JSON lines.
struct Rsyslog {
    child: Option<Child>,
    conf: PathBuf,
    out: PathBuf,
    port: u16,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, None)
    }

    /// As [`Rsyslog::start`]; with `tls` (CA, certificate, key), the port
    /// speaks TLS (rsyslog's gtls driver).
    fn start_with(dir: &Path, port: u16, tls: Option<(&Path, &Path, &Path)>) -> Self {
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("rsyslog-out.jsonl");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}" parser.escapeControlCharactersOnReceive="off"{tls_global})
module(load="imtcp"{tls_module})
module(load="mmpstrucdata")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="siem")
template(name="json" type="list") {{
  constant(value="{{\"msgid\":\"") property(name="msgid" format="json")
  constant(value="\",\"app\":\"") property(name="app-name" format="json")
  constant(value="\",\"pri\":\"") property(name="pri")
  constant(value="\",\"msg\":\"") property(name="msg" format="json")
  constant(value="\",\"sd\":") property(name="$!rfc5424-sd")
  constant(value="}}\n")
}}
ruleset(name="siem") {{
  action(type="mmpstrucdata")
  action(type="omfile" file="{out}" template="json")
}}
"#,
                work = work.display(),
                out = out.display(),
                tls_global = tls.map_or(String::new(), |(ca, cert, key)| format!(
                    " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    ca.display(), cert.display(), key.display()
                )),
                tls_module = if tls.is_some() {
                    " streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\""
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        let mut me = Self {
            child: None,
            conf,
            out,
            port,
        };
        me.resume(dir);
        me
    }

    /// Starts (again) the daemon on the same port and output.
    fn resume(&mut self, dir: &Path) {
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Every message rsyslog wrote so far.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let lines = self.lines();
            if pred(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "rsyslog never got {what}: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Lets `nobody` into the test's directories.
fn open_to_all(dirs: &[&Path]) {
    use std::os::unix::fs::PermissionsExt as _;
    for d in dirs {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// One structured-data parameter of a message rsyslog parsed.
fn sd<'a>(v: &'a Value, key: &str) -> &'a str {
    v["sd"]["monitor@32473"][key].as_str().unwrap_or("")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Rules for a test: `cards` holds cardholder data, and a TCP syslog sink.
fn rules(dir: &Path, cards: &Path, port: u16, format: &str) {
    let rules = dir.join("rules");
    common::classify_dir(&rules, cards);
    std::fs::write(
        rules.join("sinks.toml"),
        format!(
            "[[sink]]\nname = \"siem\"\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nformat = \"{format}\"\n"
        ),
    )
    .unwrap();
}

/// Opens `files` under `dir` from a child process running as `nobody`
/// (role unassigned, so every open of cardholder data is an alert); returns
/// its pid.
fn open_files(dir: &Path, files: &[String]) -> u32 {
    let list = files
        .iter()
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(",");
    common::python_pid(
        dir,
        &format!("for f in [{list}]:\n    open(f, 'rb').read()"),
        true,
    )
}

/// An alert caused by real probes arrives in rsyslog with its fields, and a
/// hostile path survives the trip byte for byte.
#[test]
fn an_alert_reaches_rsyslog_over_tcp_with_its_fields() {
    use std::os::unix::ffi::OsStrExt as _;
    if !root_or_skip("an_alert_reaches_rsyslog_over_tcp_with_its_fields") {
        return;
    }
    let dir = TempDir::new("siem");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    open_to_all(&[dir.path(), &cards]);
    let hostile: &[u8] = b"a|b=c\\d]e\"f\x1b[31mg\xffh.csv";
    std::fs::write(cards.join(std::ffi::OsStr::from_bytes(hostile)), "x").unwrap();
    std::fs::write(cards.join("plain.csv"), "x").unwrap();
    let port = free_port();
    let syslog = Rsyslog::start(dir.path(), port);
    rules(dir.path(), &cards, port, "rfc5424");
    let daemon = Daemon::start_in(dir, &[]);

    let pid = open_files(&cards, &["plain.csv".into()]);
    let lines = syslog.wait_for("the alert", 20, |l| {
        l.iter().any(|v| sd(v, "pid") == pid.to_string().as_str())
    });
    let v = lines
        .iter()
        .find(|v| sd(v, "pid") == pid.to_string().as_str())
        .unwrap();
    let sd = &v["sd"]["monitor@32473"];
    assert_eq!(v["app"], "monitor");
    assert_eq!(v["msgid"], "class-read");
    assert_eq!(v["pri"], "83", "authpriv.err for a high alert");
    assert_eq!(sd["class"], "cardholder-data");
    assert_eq!(sd["action"], "read");
    assert_eq!(sd["severity"], "high");
    assert_eq!(sd["object"], format!("{}/plain.csv", cards.display()));
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .contains("may not read cardholder-data"),
        "{v}"
    );

    // The hostile name: the record's form of it comes back unchanged.
    let opener = "import os\nfor n in os.listdir(b'.'):\n    open(n, 'rb').read()";
    let out = {
        use std::os::unix::process::CommandExt as _;
        Command::new(python())
            .args(["-c", opener])
            .current_dir(&cards)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = common::wait_record(&daemon, &["events", "--class", "cardholder-data"], |r| {
        r["object"].as_str().is_some_and(|o| o.contains("a|b=c"))
    });
    let object = rec["object"].as_str().unwrap().to_owned();
    let lines = syslog.wait_for("the hostile name", 20, |l| {
        l.iter()
            .any(|v| v["sd"]["monitor@32473"]["object"] == object.as_str())
    });
    assert!(lines
        .iter()
        .any(|v| v["sd"]["monitor@32473"]["object"] == object.as_str()));
}

/// Outage: rsyslog is down while 100 alerts happen and the daemon is
/// restarted; once rsyslog is back, all 100 arrive, in order. A batch may
/// be delivered twice at most; the test counts the repeats.
#[test]
fn alerts_made_while_rsyslog_is_down_all_arrive_in_order() {
    if !root_or_skip("alerts_made_while_rsyslog_is_down_all_arrive_in_order") {
        return;
    }
    let dir = TempDir::new("siem-outage");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    open_to_all(&[dir.path(), &cards]);
    let names: Vec<String> = (0..100).map(|i| format!("c{i:03}.csv")).collect();
    for n in &names {
        std::fs::write(cards.join(n), "x").unwrap();
    }
    let port = free_port();
    let mut syslog = Rsyslog::start(dir.path(), port);
    rules(dir.path(), &cards, port, "cef");
    let daemon = Daemon::start_in(dir, &[]);
    // The sink is connected and delivering.
    let first = open_files(&cards, &names[..1]);
    syslog.wait_for("the first alert", 20, |l| {
        l.iter().any(|v| sd(v, "pid") == first.to_string().as_str())
    });

    syslog.stop();
    let pid = open_files(&cards, &names);
    // The record has them; the sink cannot deliver them.
    common::wait_record(&daemon, &["alerts", "--limit", "1000"], |r| {
        r["pid"] == pid
            && r["object"]
                .as_str()
                .is_some_and(|o| o.ends_with("c099.csv"))
    });
    let dir = daemon.stop_and_take();
    let daemon = Daemon::start_in(dir, &[]);
    syslog.resume(daemon.dir.path());

    // The reads' own alerts (the bulk-access anomaly they also raise is
    // delivered too, and counted apart).
    let reads = |v: &&Value| sd(v, "pid") == pid.to_string().as_str() && sd(v, "action") == "read";
    let lines = syslog.wait_for("all 100 alerts", 30, |l| {
        l.iter().filter(reads).count() >= 100
    });
    let seqs: Vec<u64> = lines
        .iter()
        .filter(reads)
        .map(|v| {
            v["sd"]["monitor@32473"]["seq"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut distinct = seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 100, "{seqs:?}");
    let repeats = seqs.len() - distinct.len();
    eprintln!("outage: 100 alerts delivered after the restart, {repeats} repeated");
    assert!(repeats <= 1024);
    // In order: each first appearance follows the one before.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<u64> = seqs.iter().copied().filter(|s| seen.insert(*s)).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
    // The message was CEF, and names the file.
    let cef = lines
        .iter()
        .find(|v| sd(v, "pid") == pid.to_string().as_str())
        .unwrap()["msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(cef.starts_with("CEF:0|monitor|monitor|"), "{cef}");
    assert!(cef.contains("filePath="), "{cef}");
    drop(daemon);
}

/// TLS (RFC 5425): an alert reaches rsyslog's TLS listener when the sink
/// trusts the CA that signed its certificate; a sink that trusts another CA
/// delivers nothing and says why in `monitor status`.
#[test]
fn alerts_reach_rsyslog_over_tls_and_an_untrusted_receiver_gets_nothing() {
    if !root_or_skip("alerts_reach_rsyslog_over_tls_and_an_untrusted_receiver_gets_nothing") {
        return;
    }
    let dir = TempDir::new("siem-tls");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    open_to_all(&[dir.path(), &cards]);
    std::fs::write(cards.join("c.csv"), "x").unwrap();
    let (ca, cert, key) = test_pki(dir.path(), "good");
    let (other_ca, _, _) = test_pki(dir.path(), "other");
    let port = free_port();
    let syslog = Rsyslog::start_with(dir.path(), port, Some((&ca, &cert, &key)));
    rules(dir.path(), &cards, port, "rfc5424");
    let sink = |name: &str, ca: &Path| {
        format!(
            "[[sink]]\nname = \"{name}\"\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"127.0.0.1:{port}\"\nca_file = \"{}\"\n",
            ca.display()
        )
    };
    std::fs::write(
        dir.path().join("rules").join("sinks.toml"),
        format!(
            "{}\n{}",
            sink("siem-tls", &ca),
            sink("siem-untrusted", &other_ca)
        ),
    )
    .unwrap();
    let daemon = Daemon::start_in(dir, &[]);

    let pid = open_files(&cards, &["c.csv".into()]);
    let pid = pid.to_string();
    let lines = syslog.wait_for("the alert over TLS", 20, |l| {
        l.iter().any(|v| sd(v, "pid") == pid)
    });
    let got: Vec<&Value> = lines.iter().filter(|v| sd(v, "pid") == pid).collect();
    assert_eq!(got.len(), 1, "only the trusted sink delivers: {got:?}");
    assert_eq!(sd(got[0], "class"), "cardholder-data");
    // The untrusted sink is failing, and status says why.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status: Value =
            serde_json::from_slice(&std::fs::read(daemon.status_file()).unwrap()).unwrap();
        let f = status["followers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "siem-untrusted")
            .cloned()
            .unwrap_or(Value::Null);
        if f["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("certificate"))
        {
            assert!(f["lag"].as_u64().unwrap() > 0, "{f}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the failing sink: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Heartbeats: every sink delivers the chain's head at a fixed interval;
/// the head rsyslog received verifies against the record afterwards.
#[test]
fn heartbeats_carry_a_head_that_verifies_against_the_record() {
    if !root_or_skip("heartbeats_carry_a_head_that_verifies_against_the_record") {
        return;
    }
    let dir = TempDir::new("siem-head");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    let port = free_port();
    let syslog = Rsyslog::start(dir.path(), port);
    rules(dir.path(), &cards, port, "rfc5424");
    let daemon = Daemon::start_in(dir, &["--heartbeat-secs", "1"]);
    let lines = syslog.wait_for("a heartbeat", 20, |l| {
        l.iter().any(|v| v["msgid"] == "heartbeat")
    });
    let beat = lines.iter().find(|v| v["msgid"] == "heartbeat").unwrap();
    let head = sd(beat, "object").strip_prefix("head ").unwrap().to_owned();
    let dir = daemon.stop_and_take();
    let verify = |head: &str| common::verify_store(&dir.path().join("state"), &["--head", head]);
    let out = verify(&head);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A head the record never had fails.
    let (seq, _) = head.split_once(':').unwrap();
    let forged = format!("{seq}:{}", "0".repeat(64));
    let out = verify(&forged);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("rewritten"));
}

/// ECS and OCSF: an alert caused by real probes lands in the ECS file as an
/// ECS alert document, and in the OCSF file as its File System Activity
/// followed by the Detection Finding that names it, both valid against the
/// published OCSF schema.
#[test]
fn an_alert_lands_in_the_ecs_and_ocsf_files() {
    if !root_or_skip("an_alert_lands_in_the_ecs_and_ocsf_files") {
        return;
    }
    let dir = TempDir::new("siem-ecs");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    open_to_all(&[dir.path(), &cards]);
    std::fs::write(cards.join("c.csv"), "x").unwrap();
    rules(dir.path(), &cards, free_port(), "rfc5424");
    let ecs = dir.path().join("ecs.jsonl");
    let ocsf = dir.path().join("ocsf.jsonl");
    std::fs::write(
        dir.path().join("rules").join("sinks.toml"),
        format!(
            "[[sink]]\nname = \"elastic\"\ntype = \"ecs\"\npath = \"{}\"\n\n\
             [[sink]]\nname = \"lake\"\ntype = \"ocsf\"\npath = \"{}\"\n",
            ecs.display(),
            ocsf.display()
        ),
    )
    .unwrap();
    let _daemon = Daemon::start_in(dir, &[]);
    let pid = open_files(&cards, &["c.csv".into()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let docs_of = |path: &Path| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect()
    };
    let (doc, finding) = loop {
        let doc = docs_of(&ecs)
            .into_iter()
            .find(|v| v["process"]["pid"] == pid);
        let finding = docs_of(&ocsf)
            .into_iter()
            .find(|v| v["class_uid"] == 2004 && v["actor"]["process"]["pid"] == pid);
        if let (Some(d), Some(f)) = (doc, finding) {
            break (d, f);
        }
        assert!(
            Instant::now() < deadline,
            "no ECS and OCSF documents for pid {pid}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let path = format!("{}/c.csv", cards.display());
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["rule"]["id"], "class-read");
    assert_eq!(doc["user"]["roles"][0], "unassigned");
    assert_eq!(doc["file"]["path"], path);
    assert_eq!(doc["labels"]["data_class"], "cardholder-data");

    assert_eq!(finding["finding_info"]["analytic"]["uid"], "class-read");
    assert_eq!(finding["evidences"][0]["file"]["path"], path);
    assert_eq!(finding["unmapped"]["monitor"]["class"], "cardholder-data");
    let evidence_uid = &finding["finding_info"]["related_events"][0]["uid"];
    let activity = docs_of(&ocsf)
        .into_iter()
        .find(|v| &v["metadata"]["uid"] == evidence_uid)
        .expect("the finding's evidence is in the file");
    assert_eq!(
        (
            activity["class_uid"].as_u64(),
            activity["activity_id"].as_u64()
        ),
        (Some(1001), Some(2))
    );
    let valid = validate_ocsf(&std::fs::read_to_string(&ocsf).unwrap());
    assert!(
        valid.contains("class 2004:") && valid.contains("class 1001:"),
        "{valid}"
    );
}

/// Runs `tests/ocsf_validate.py` on OCSF JSON lines: every document checked
/// against the published OCSF schema. Its summary, or a failed assertion.
fn validate_ocsf(lines: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/ocsf_validate.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "OCSF validation failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A stand-in for Splunk's HTTP Event Collector. No Splunk can run here, so
/// this speaks the protocol as Splunk documents it: the `Splunk <token>`
/// check (401), the `X-Splunk-Request-Channel` header required with
/// indexer acknowledgment (400, code 10), a 503 "server is busy" for the
/// first batch, gzip bodies of concatenated events, an `ackId` per batch,
/// and acknowledgments that come late (false for the first two polls of
/// each id). Events count as indexed only once acknowledged.
mod hec_receiver {
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    pub const TOKEN: &str = "00000000-1111-2222-3333-444444444444";

    #[derive(Default)]
    pub struct State {
        pub busy_left: u32,
        pub refused_busy: u32,
        pub refused_token: u32,
        pub ack_polls: u32,
        pub channels: Vec<String>,
        next_ack: u64,
        pending: HashMap<u64, (Vec<Value>, u32)>,
        acked: Vec<u64>,
        pub indexed: Vec<Value>,
    }

    pub fn start() -> (u16, Arc<Mutex<State>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            busy_left: 1,
            ..State::default()
        }));
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        (port, state)
    }

    fn serve(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
        let mut r = BufReader::new(conn.try_clone()?);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut h = String::new();
                r.read_line(&mut h)?;
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            r.read_exact(&mut body)?;
            let (code, answer) = handle(&path, &headers, body, state);
            let text = answer.to_string();
            write!(
                &conn,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )?;
        }
    }

    fn handle(
        path: &str,
        headers: &HashMap<String, String>,
        body: Vec<u8>,
        state: &Mutex<State>,
    ) -> (u16, Value) {
        let mut s = state.lock().unwrap();
        if headers.get("authorization").map(String::as_str) != Some(&format!("Splunk {TOKEN}")) {
            s.refused_token += 1;
            return (401, json!({"text": "Invalid token", "code": 4}));
        }
        let Some(channel) = headers.get("x-splunk-request-channel").cloned() else {
            return (400, json!({"text": "Data channel is missing", "code": 10}));
        };
        if !s.channels.contains(&channel) {
            s.channels.push(channel);
        }
        if path.starts_with("/services/collector/ack") {
            s.ack_polls += 1;
            let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut acks = serde_json::Map::new();
            for id in asked["acks"].as_array().cloned().unwrap_or_default() {
                let id = id.as_u64().unwrap_or(u64::MAX);
                let done = match s.pending.get_mut(&id) {
                    Some((_, polls)) if *polls >= 2 => true,
                    Some((_, polls)) => {
                        *polls += 1;
                        false
                    }
                    None => s.acked.contains(&id),
                };
                if done {
                    if let Some((events, _)) = s.pending.remove(&id) {
                        s.indexed.extend(events);
                        s.acked.push(id);
                    }
                }
                acks.insert(id.to_string(), json!(done));
            }
            return (200, json!({ "acks": acks }));
        }
        if path != "/services/collector/event" {
            return (404, json!({"text": "Not found", "code": 404}));
        }
        if s.busy_left > 0 {
            s.busy_left -= 1;
            s.refused_busy += 1;
            return (503, json!({"text": "Server is busy", "code": 9}));
        }
        let raw = if headers.get("content-encoding").map(String::as_str) == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            body
        };
        let events: Vec<Value> = serde_json::Deserializer::from_slice(&raw)
            .into_iter::<Value>()
            .map(|e| e.unwrap())
            .collect();
        let id = s.next_ack;
        s.next_ack += 1;
        s.pending.insert(id, (events, 0));
        (200, json!({"text": "Success", "code": 0, "ackId": id}))
    }
}

/// Splunk HEC: an alert caused by real probes is indexed (acknowledged)
/// after a 503 and a late acknowledgment, sent gzipped on one channel.
#[test]
fn an_alert_is_indexed_by_hec_after_a_busy_server_and_a_late_ack() {
    if !root_or_skip("an_alert_is_indexed_by_hec_after_a_busy_server_and_a_late_ack") {
        return;
    }
    let (port, state) = hec_receiver::start();
    let dir = TempDir::new("siem-hec");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    open_to_all(&[dir.path(), &cards]);
    std::fs::write(cards.join("c.csv"), "x").unwrap();
    rules(dir.path(), &cards, free_port(), "rfc5424");
    std::fs::write(
        dir.path().join("rules").join("sinks.toml"),
        format!(
            "[[sink]]\nname = \"splunk\"\ntype = \"hec\"\nurl = \"http://127.0.0.1:{port}\"\ntoken = \"{}\"\nack = true\n",
            hec_receiver::TOKEN
        ),
    )
    .unwrap();
    let _daemon = Daemon::start_in(dir, &[]);
    let pid = open_files(&cards, &["c.csv".into()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let found = state
            .lock()
            .unwrap()
            .indexed
            .iter()
            .find(|e| e["event"]["pid"] == pid)
            .cloned();
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "the alert was never indexed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(event["sourcetype"], "monitor:record");
    assert_eq!(event["event"]["alert"]["rule"], "class-read");
    assert_eq!(
        event["event"]["object"],
        format!("{}/c.csv", cards.display())
    );
    let s = state.lock().unwrap();
    assert_eq!(
        s.refused_busy, 1,
        "the first batch met a busy server and was sent again"
    );
    assert_eq!(s.refused_token, 0);
    assert!(
        s.ack_polls >= 3,
        "acknowledgments were polled until they came"
    );
    assert_eq!(s.channels.len(), 1, "one channel per sink");
}
