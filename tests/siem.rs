//! SIEM delivery end to end: the real daemon with its real probes, and a
//! real rsyslog on 127.0.0.1 as the receiver. rsyslog parses what arrives
//! itself (its RFC 5424 parser and `mmpstrucdata` for the structured data)
//! and writes each message as JSON, which the tests read back.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{python, root_or_skip, Daemon, TempDir};
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
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("classes.toml"),
        format!(
            "[[path]]\nglob = \"{}/**\"\nclass = \"cardholder-data\"\n\n{}",
            cards.display(),
            include_str!("../rules/classes.toml")
        ),
    )
    .unwrap();
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
    use std::os::unix::process::CommandExt as _;
    let list = files
        .iter()
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(python())
        .uid(65534)
        .gid(65534)
        .args([
            "-c",
            &format!("import os\nprint(os.getpid())\nfor f in [{list}]:\n    open(f, 'rb').read()"),
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
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
    let status: Value =
        serde_json::from_slice(&std::fs::read(daemon.status_file()).unwrap()).unwrap();
    let _ = status;
    let dir = daemon.stop_and_take();
    let daemon = Daemon::start_in(dir, &[]);
    syslog.resume(daemon.dir.path());

    let lines = syslog.wait_for("all 100 alerts", 30, |l| {
        l.iter()
            .filter(|v| sd(v, "pid") == pid.to_string().as_str())
            .count()
            >= 100
    });
    let seqs: Vec<u64> = lines
        .iter()
        .filter(|v| sd(v, "pid") == pid.to_string().as_str())
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

/// Makes a test CA and a certificate for 127.0.0.1 signed by it (openssl);
/// returns (CA certificate, server certificate, server key).
fn test_pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
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
    let verify = |head: &str| {
        Command::new(common::monitor_bin())
            .args(["verify", "--json", "--head", head, "--store"])
            .arg(dir.path().join("state").join("record"))
            .output()
            .unwrap()
    };
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

/// ECS: an alert caused by real probes lands in the ECS file as an ECS
/// alert document a log shipper can read.
#[test]
fn an_alert_lands_in_the_ecs_file() {
    if !root_or_skip("an_alert_lands_in_the_ecs_file") {
        return;
    }
    let dir = TempDir::new("siem-ecs");
    let cards = dir.path().join("cards");
    std::fs::create_dir(&cards).unwrap();
    open_to_all(&[dir.path(), &cards]);
    std::fs::write(cards.join("c.csv"), "x").unwrap();
    rules(dir.path(), &cards, free_port(), "rfc5424");
    let ecs = dir.path().join("ecs.jsonl");
    std::fs::write(
        dir.path().join("rules").join("sinks.toml"),
        format!(
            "[[sink]]\nname = \"elastic\"\ntype = \"ecs\"\npath = \"{}\"\n",
            ecs.display()
        ),
    )
    .unwrap();
    let _daemon = Daemon::start_in(dir, &[]);
    let pid = open_files(&cards, &["c.csv".into()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let doc = loop {
        let found = std::fs::read_to_string(&ecs)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["process"]["pid"] == pid);
        if let Some(v) = found {
            break v;
        }
        assert!(Instant::now() < deadline, "no ECS document for pid {pid}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["rule"]["id"], "class-read");
    assert_eq!(doc["user"]["roles"][0], "unassigned");
    assert_eq!(doc["file"]["path"], format!("{}/c.csv", cards.display()));
    assert_eq!(doc["labels"]["data_class"], "cardholder-data");
}
