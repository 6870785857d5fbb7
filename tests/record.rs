//! The access record end to end, as root, with the real probes: a billing
//! agent's read of cardholder data, a chatbot sending a card number, the
//! analyst CLI over the query socket, refusal of a non-analyst, and the MAC
//! chain catching a flipped byte.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{
    cli, files_under, monitor_bin, python, query, root_or_skip, wait_record, Daemon, TempDir,
};
use serde_json::Value;

const CARD: &str = "4111111111111111";
const CARD_SPACED: &str = "4111 1111 1111 1111";
const USER: &str = "montest-agent";
const GROUP: &str = "billing";

/// A system account in group `billing`, removed (with the group, if this
/// test created it) on drop.
struct TestUser {
    uid: u32,
    gid: u32,
    created_group: bool,
}

impl TestUser {
    fn create() -> Self {
        let created_group = nix::unistd::Group::from_name(GROUP).unwrap().is_none();
        if created_group {
            run_ok(Command::new("groupadd").args(["--system", GROUP]));
        }
        let _ = Command::new("userdel").arg(USER).output();
        run_ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--gid",
            GROUP,
            "--shell",
            "/usr/sbin/nologin",
            USER,
        ]));
        let user = nix::unistd::User::from_name(USER).unwrap().unwrap();
        Self {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            created_group,
        }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(USER).output();
        if self.created_group {
            let _ = Command::new("groupdel").arg(GROUP).output();
        }
    }
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rule overrides: the shipped files, with the cardholder-data path pointed
/// at `cards` and the chatbot recognised by its task name (no systemd unit here).
fn write_rules(dir: &Path, cards: &Path) {
    let rules = dir.join("rules");
    common::classify_dir(&rules, cards);
    let roles = include_str!("../rules/roles.toml").replace(
        "units = [\"chatbot.service\", \"chatbot@*.service\"]",
        "comm = [\"chatbot\"]",
    );
    assert!(roles.contains("comm = [\"chatbot\"]"));
    std::fs::write(rules.join("roles.toml"), roles).unwrap();
}

#[test]
fn roles_record_alerts_trace_and_verify() {
    if !root_or_skip("roles_record_alerts_trace_and_verify") {
        return;
    }
    let user = TestUser::create();
    let dir = TempDir::new("record");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cards = dir.path().join("cardholder");
    std::fs::create_dir_all(&cards).unwrap();
    std::fs::set_permissions(&cards, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = cards.join("disputes.csv");
    std::fs::write(&file, "dispute,amount\n1,20.00\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_rules(dir.path(), &cards);
    let mut daemon = Daemon::start_in(dir, &[]);
    let file_s = file.to_str().unwrap();

    // A billing agent reads cardholder data.
    let status = Command::new("cat")
        .arg(&file)
        .uid(user.uid)
        .gid(user.gid)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let rec = wait_record(&daemon, &["who-accessed", file_s], |r| r["user"] == USER);
    assert_eq!(rec["role"], "billing-agent", "{rec}");
    assert_eq!(rec["class"], "cardholder-data", "{rec}");
    assert_eq!(rec["action"], "read", "{rec}");
    assert_eq!(rec["outcome"], "allowed", "{rec}");
    assert_eq!(rec["comm"], "cat", "{rec}");
    // Where the process came from: its parent (this test) and command line.
    assert_eq!(rec["context"]["ppid"], std::process::id(), "{rec}");
    assert_eq!(rec["context"]["cmdline"], format!("cat {file_s}"), "{rec}");
    assert!(rec["time"].as_str().unwrap().starts_with("20"), "{rec}");
    let read_seq = rec["seq"].as_u64().unwrap();
    let table = cli(&daemon, &["who-accessed", file_s]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains(USER)
            && table.contains("billing-agent")
            && table.contains("cardholder-data"),
        "{table}"
    );
    // The test's own executable is the cat's parent, first in its ancestry.
    let me = std::env::current_exe().unwrap();
    assert_eq!(rec["context"]["ancestry"][0], me.to_str().unwrap(), "{rec}");

    // The same user, logged in, reads it again as root (`sudo`): the record
    // names the login, and `--user` finds it.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo {} > /proc/self/loginuid && exec cat {file_s}",
            user.uid
        ))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let rec = wait_record(&daemon, &["who-accessed", file_s, "--user", USER], |r| {
        r["uid"] == 0
    });
    assert_eq!(rec["context"]["login_uid"], user.uid, "{rec}");
    assert_eq!(rec["context"]["login_user"], USER, "{rec}");
    assert_eq!(rec["context"]["ancestry"][0], me.to_str().unwrap(), "{rec}");
    let table = cli(&daemon, &["who-accessed", file_s, "--user", USER]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains(&format!("root ({USER})")), "{table}");
    // On a terminal (`script` gives the cat a pseudo-terminal), the record names it.
    let status = Command::new("script")
        .args(["-qec", &format!("cat {file_s}"), "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let rec = wait_record(&daemon, &["who-accessed", file_s], |r| {
        r["context"]["tty"].is_string()
    });
    assert!(
        rec["context"]["tty"].as_str().unwrap().starts_with("pts/"),
        "{rec}"
    );

    // A chatbot sends a card number to a local listener.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got
    });
    let bot = daemon.dir.path().join("chatbot");
    std::fs::write(
        &bot,
        format!(
            "#!{}\nimport socket, sys\ns = socket.create_connection(('127.0.0.1', {port}))\n\
             s.sendall(sys.stdin.buffer.read())\ns.close()\n",
            python()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bot, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(&bot).stdin(Stdio::piped()).spawn().unwrap();
    let message = format!("customer asked to update their card {CARD_SPACED} exp 04/29");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(reader.join().unwrap(), message.as_bytes());
    let alert = wait_record(&daemon, &["alerts"], |r| {
        r["role"] == "chatbot" && r["alert"]["rule"] == "pii-egress"
    });
    assert_eq!(alert["action"], "send", "{alert}");
    assert_eq!(alert["outcome"], "violation", "{alert}");
    assert_eq!(alert["object"], format!("127.0.0.1:{port}"), "{alert}");
    assert_eq!(alert["class"], "cardholder-data", "{alert}");
    assert_eq!(alert["findings"][0]["type"], "CREDIT_CARD", "{alert}");
    assert_eq!(
        alert["findings"][0]["masked"], "411111******1111",
        "{alert}"
    );
    assert!(
        alert["alert"]["message"]
            .as_str()
            .unwrap()
            .contains("CREDIT_CARD"),
        "{alert}"
    );
    let table = cli(&daemon, &["alerts", "--severity", "high"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("pii-egress") && table.contains("411111******1111"),
        "{table}"
    );
    // Connecting outside the chatbot's egress list is itself an alert.
    wait_record(&daemon, &["alerts", "--role", "chatbot"], |r| {
        r["alert"]["rule"] == "egress"
    });

    // trace-pii finds the card from its value (read from stdin, sent to the
    // daemon, fingerprinted, never stored).
    let mut trace = Command::new(monitor_bin())
        .args(["trace-pii", "-", "--json", "--socket"])
        .arg(daemon.socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    trace
        .stdin
        .take()
        .unwrap()
        .write_all(CARD.as_bytes())
        .unwrap();
    let out = trace.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traced: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        traced.iter().any(|r| r["seq"] == alert["seq"]),
        "{traced:?}"
    );

    // "Did this card leave the host, where to, and by which process?" is
    // answered by the default table.
    let table = cli(&daemon, &["trace-pii", CARD, "--role", "chatbot"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table
        .lines()
        .find(|l| l.contains(" send "))
        .unwrap_or_else(|| panic!("no send in\n{table}"));
    assert!(
        row.contains(&format!("chatbot[{}]", alert["pid"]))
            && row.contains(&format!("127.0.0.1:{port}"))
            && row.contains("CREDIT_CARD 411111******1111")
            && row.contains("VIOLATION"),
        "{table}"
    );

    // A user outside the analyst group is refused, and the refusal is recorded.
    let refused = Command::new(monitor_bin())
        .args(["alerts", "--socket"])
        .arg(daemon.socket())
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("permission denied"), "{err}");
    let rec = wait_record(&daemon, &["events", "--action", "query_refused"], |r| {
        r["user"] == USER
    });
    assert_eq!(rec["outcome"], "refused", "{rec}");
    assert_eq!(rec["alert"]["rule"], "query-refused", "{rec}");
    // Analyst queries are recorded too (including the trace, by fingerprint only).
    let queries = query(&daemon, &["events", "--action", "query", "--limit", "0"]);
    assert!(queries.iter().any(|r| r["object"]
        .as_str()
        .unwrap()
        .starts_with("trace-pii CREDIT_CARD:")));
    assert!(queries
        .iter()
        .any(|r| r["object"].as_str().unwrap().starts_with("who-accessed ")));
    // --reverse: oldest first.
    let oldest_first = query(
        &daemon,
        &["events", "--action", "query", "--limit", "0", "--reverse"],
    );
    let seqs: Vec<u64> = oldest_first
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.len() > 1 && seqs.windows(2).all(|w| w[0] < w[1]),
        "{seqs:?}"
    );
    // `--action query` includes the refused ones.
    assert!(
        queries.iter().any(|r| r["action"] == "query_refused"),
        "{queries:?}"
    );
    // A cut answer says how many matched in all.
    let table = cli(&daemon, &["events", "--action", "query", "--limit", "1"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let count = table
        .lines()
        .last()
        .and_then(|l| l.strip_prefix("(showing the newest 1 of "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.replace(',', "").parse::<usize>().ok());
    assert!(
        count.is_some_and(|n| n >= queries.len()),
        "{table}\n{} queries before",
        queries.len()
    );

    // A filter naming what does not exist is an error, not "(0 records)".
    for (args, says) in [
        (
            &["events", "--role", "no-such-role"][..],
            "no record has role `no-such-role`",
        ),
        (
            &["events", "--user", "no-such-user"][..],
            "this host has no user `no-such-user`",
        ),
        (
            &["alerts", "--class", "no-such-class"][..],
            "no data class `no-such-class`",
        ),
        (
            &["trace-pii", "123", "--type", "NO_SUCH"][..],
            "no PII type `NO_SUCH`",
        ),
        (&["role", "no-such-role"][..], "no record has role"),
        (
            &["role", "billing-agent", "--role", "chatbot"][..],
            "name two roles",
        ),
        (
            &[
                "events",
                "--since",
                "2026-12-04T05:00:00Z",
                "--until",
                "2026-12-04T04:00:00+00:00",
            ][..],
            "is before --since",
        ),
    ] {
        let out = cli(&daemon, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
    // A known role nobody of it did anything in the window is a real empty answer.
    let out = cli(
        &daemon,
        &["events", "--role", "billing-agent", "--until", "2000-01-01"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The untouched chain verifies, through the daemon and offline.
    let out = cli(&daemon, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    daemon.stop();
    let store = daemon.state_dir().join("record");
    let verify = |store: &Path| {
        Command::new(monitor_bin())
            .args(["verify", "--store"])
            .arg(store)
            .output()
            .unwrap()
    };
    let out = verify(&store);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("record chain OK"),
        "{text}"
    );
    // Pointed at the wrong place (the state directory, a typo), the check
    // fails and creates nothing.
    for wrong in [daemon.state_dir(), daemon.state_dir().join("recrod")] {
        let before = std::fs::read_dir(daemon.state_dir()).unwrap().count();
        let out = verify(&wrong);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("is not a record store"),
            "{}: {err}",
            wrong.display()
        );
        assert_eq!(
            std::fs::read_dir(daemon.state_dir()).unwrap().count(),
            before
        );
        assert!(!daemon.state_dir().join("recrod").exists());
    }

    // Nowhere in the state directory is the raw card number.
    let mut files = Vec::new();
    files_under(&daemon.state_dir(), &mut files);
    assert!(!files.is_empty());
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for needle in [CARD, CARD_SPACED] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the raw card number",
                f.display()
            );
        }
    }

    // Flip one byte of the billing agent's read record: verify names it.
    {
        let db = sled::open(&store).unwrap();
        let records = db.open_tree("records").unwrap();
        // Records are stored in chunks keyed by their first seq.
        let (key, chunk) = records
            .range(..=read_seq.to_be_bytes())
            .next_back()
            .unwrap()
            .unwrap();
        let mut chunk = chunk.to_vec();
        let needle = format!("{{\"seq\":{read_seq},");
        let at = chunk
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .expect("the record's JSON in its chunk");
        chunk[at + needle.len() + 3] ^= 0x01;
        records.insert(key, chunk).unwrap();
        db.flush().unwrap();
    }
    let out = verify(&store);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("BROKEN at record {read_seq}")),
        "{text}"
    );
}

#[test]
fn invalid_rules_stop_the_daemon_with_a_position() {
    let dir = TempDir::new("rules");
    std::fs::write(
        dir.path().join("policy.toml"),
        "[role.chatbot]\ndeny_pii = [\"CARD\"]\n",
    )
    .unwrap();
    let out = Command::new(monitor_bin())
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!(
        "{}:2:13: unknown PII type `CARD`",
        dir.path().join("policy.toml").display()
    );
    assert!(err.contains(&want), "{err}");
    // A file name that is no rules file is refused rather than ignored.
    std::fs::remove_file(dir.path().join("policy.toml")).unwrap();
    std::fs::write(dir.path().join("role.toml"), "").unwrap();
    let out = Command::new(monitor_bin())
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown rules file"));
    // The daemon refuses to start on them (before it touches the kernel).
    let out = Command::new(monitor_bin())
        .args(["run", "--rules-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to start: invalid rules"));
}

/// A process reading one file again and again is stored as its first read
/// and records counting the rest: the exact number of reads, none lost,
/// counted in the kernel (`--events-counted` lets it count with the event
/// stream on) and, for what reaches the daemon, in its repeat windows.
#[test]
fn a_burst_of_reads_is_counted_exactly() {
    if !root_or_skip("a_burst_of_reads_is_counted_exactly") {
        return;
    }
    let dir = TempDir::new("repeats");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cards = dir.path().join("cardholder");
    std::fs::create_dir_all(&cards).unwrap();
    std::fs::set_permissions(&cards, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = cards.join("customer.json");
    std::fs::write(&file, "{\"card\": \"on file\"}").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    common::classify_dir(&dir.path().join("rules"), &cards);
    let daemon = Daemon::start_in(dir, &["--events-counted"]);
    let file_s = file.to_str().unwrap();

    const READS: u64 = 700;
    let pid = common::python_pid(
        &cards,
        &format!("for _ in range({READS}):\n    open({file_s:?}).read()"),
        false,
    );
    // The first read is stored at once; the count when its window closes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let records = loop {
        let records: Vec<Value> = query(&daemon, &["who-accessed", file_s, "--limit", "0"])
            .into_iter()
            .filter(|r| r["pid"] == pid)
            .collect();
        let total: u64 = records.iter().map(common::accesses).sum();
        if total >= READS {
            break records;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{total} of {READS} reads accounted for: {records:#?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let counts: Vec<u64> = records.iter().map(common::accesses).collect();
    assert_eq!(counts.iter().sum::<u64>(), READS, "{records:#?}");
    // A read of 700 in well under a second: a window or two per CPU the
    // reader ran on, each a first read and its count.
    assert!(records.len() <= 12, "{records:#?}");
    // The kernel did the counting: most reads never became a record.
    let status = daemon.wait_status("the kernel's counts", 10, |s| {
        s["kernel"]["repeats_counted"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(status["kernel"]["ringbuf_full"], 0);
    // The event stream, asked to take the kernel's counts, accounts for
    // every read too.
    let opens: Vec<Value> = daemon
        .events()
        .into_iter()
        .filter(|v| common::pid_of(v) == u64::from(pid) && v["path"] == file_s)
        .filter(|v| v["op"] == "open")
        .collect();
    let total: u64 = opens
        .iter()
        .map(|v| v["repeats"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(total, READS);
    assert!(
        opens.len() < READS as usize / 10,
        "the kernel sent {} events for {READS} reads",
        opens.len()
    );
    let counted = records.iter().find(|r| r["repeats"].is_object()).unwrap();
    assert!(counted["repeats"]["last_ns"].as_u64() >= counted["time_ns"].as_u64());
    let table = cli(&daemon, &["who-accessed", file_s]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains(" x"), "the table shows the count: {table}");
    // The chain holds with counted records in it.
    let out = cli(&daemon, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
