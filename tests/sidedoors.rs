//! The side doors: a classified file sent to a socket by the kernel
//! (`sendfile`, `splice` through a pipe) is a transfer record naming the
//! file, its class and the destination, and an alert unless the role may
//! transfer that class; `sendmmsg` payloads are inspected like `sendmsg`;
//! opens and sends submitted through an io_uring are seen like their
//! syscalls, marked `via: io_uring`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{pid_of, python_pid, root_or_skip, wait_record, Daemon, TempDir};

/// Compiles a C test program next to its source.
fn compile(src: &Path) -> std::path::PathBuf {
    let bin = src.with_extension("");
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(src)
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    bin
}

/// A classified directory holding one customer file, and the daemon.
fn start(name: &str) -> (Daemon, std::path::PathBuf) {
    let dir = TempDir::new(name);
    let cards = dir.path().join("cards");
    std::fs::create_dir_all(&cards).unwrap();
    std::fs::write(
        cards.join("export.csv"),
        "name,card\nJane Doe,4111 1111 1111 1111\n".repeat(200),
    )
    .unwrap();
    common::classify_dir(&dir.path().join("rules"), &cards);
    (Daemon::start_in(dir, &[]), cards)
}

/// Python sending `export.csv` to a loopback listener with `how`
/// (code using `f`, the file, and `s`, the connected socket).
fn send_file(cards: &Path, how: &str) -> (u32, u16) {
    let code = format!(
        "import socket\nl = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
         port = l.getsockname()[1]; print(port)\n\
         s = socket.create_connection(('127.0.0.1', port)); c, _ = l.accept()\n\
         f = open('export.csv', 'rb'); n = os.fstat(f.fileno()).st_size\n{how}\n\
         s.close(); c.close()"
    );
    let out = Command::new(common::python())
        .args(["-c", &format!("import os\nprint(os.getpid())\n{code}")])
        .current_dir(cards)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let pid = lines.next().unwrap().parse().unwrap();
    let port = lines.next().unwrap().parse().unwrap();
    (pid, port)
}

/// The file's size.
const SIZE: u64 = 200 * 39;

/// A transfer alert for `pid`'s file to `port`; every transfer record of
/// `pid` together moved the whole file.
fn assert_transfer(daemon: &Daemon, pid: u32, port: u16, cards: &Path) {
    let rec = wait_record(daemon, &["alerts", "--action", "transfer"], |r| {
        r["pid"] == pid
    });
    assert_eq!(
        rec["object"],
        cards.join("export.csv").display().to_string(),
        "{rec}"
    );
    assert_eq!(rec["class"], "cardholder-data", "{rec}");
    assert_eq!(rec["dest_host"], format!("127.0.0.1:{port}"), "{rec}");
    assert_eq!(rec["alert"]["rule"], "class-transfer", "{rec}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let moved: u64 = common::query(daemon, &["events", "--action", "transfer"])
            .iter()
            .filter(|r| r["pid"] == pid)
            .filter_map(|r| r["bytes"].as_u64())
            .sum();
        if moved == SIZE {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{moved} of {SIZE} bytes recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn sendfile_of_a_classified_file_is_a_transfer() {
    if !root_or_skip("sendfile_of_a_classified_file_is_a_transfer") {
        return;
    }
    let (daemon, cards) = start("sendfile");
    let (pid, port) = send_file(&cards, "os.sendfile(s.fileno(), f.fileno(), 0, n)");
    assert_transfer(&daemon, pid, port, &cards);
}

#[test]
fn splice_through_a_pipe_names_the_file() {
    if !root_or_skip("splice_through_a_pipe_names_the_file") {
        return;
    }
    let (daemon, cards) = start("splice");
    let (pid, port) = send_file(
        &cards,
        "r, w = os.pipe()\nleft = n\nwhile left:\n    k = os.splice(f.fileno(), w, min(left, 4096))\n    \
         left -= k\n    while k:\n        k -= os.splice(r, s.fileno(), k)",
    );
    // One transfer per splice out of the pipe; the first names the file.
    assert_transfer(&daemon, pid, port, &cards);
    // Bytes written into a pipe by the process and spliced out are not a
    // file leaving: no transfer record for them.
    let plain = python_pid(
        &cards,
        "import socket\nl = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
         s = socket.create_connection(l.getsockname()); c, _ = l.accept()\n\
         r, w = os.pipe(); os.write(w, b'hello'); os.splice(r, s.fileno(), 5)",
        false,
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let none: Vec<_> = common::query(&daemon, &["events", "--action", "transfer"])
        .into_iter()
        .filter(|r| r["pid"] == plain)
        .collect();
    assert!(none.is_empty(), "{none:?}");
}

/// `sendmmsg` of two messages, the second with a card number: each is a
/// payload, and the card is found in the second.
#[test]
fn sendmmsg_messages_are_inspected() {
    if !root_or_skip("sendmmsg_messages_are_inspected") {
        return;
    }
    let dir = TempDir::new("sendmmsg");
    let src = dir.path().join("mm.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int l = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    getsockname(l, (struct sockaddr *)&a, &al);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    connect(s, (struct sockaddr *)&a, sizeof a);
    char m1[] = "hello, how can I help?";
    char m2[] = "my card is 4111 1111 1111 1111 thanks";
    struct iovec v[2] = {{m1, strlen(m1)}, {m2, strlen(m2)}};
    struct mmsghdr mm[2];
    memset(mm, 0, sizeof mm);
    mm[0].msg_hdr.msg_iov = &v[0]; mm[0].msg_hdr.msg_iovlen = 1;
    mm[1].msg_hdr.msg_iov = &v[1]; mm[1].msg_hdr.msg_iovlen = 1;
    return sendmmsg(s, mm, 2, 0) == 2 ? 0 : 1;
}
"#,
    )
    .unwrap();
    let bin = compile(&src);
    let daemon = Daemon::start();
    let mut child = Command::new(&bin).spawn().unwrap();
    let pid = child.id() as u64;
    assert!(child.wait().unwrap().success());
    let card = daemon.wait_for("the second message's card", |v| {
        pid_of(v) == pid
            && v["op"] == "sendmmsg"
            && v["findings"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["type"] == "CREDIT_CARD"))
    });
    assert_eq!(card["bytes"], 37, "{card}");
    let first = daemon.wait_for("the first message", |v| {
        pid_of(v) == pid && v["op"] == "sendmmsg" && v["bytes"] == 22
    });
    assert!(first["findings"].as_array().is_none_or(|f| f.is_empty()));
}

/// A process opens a classified file through an io_uring, reads it and
/// sends it to a loopback listener through the ring: the open is an access
/// to the class and the send is inspected, both `via: io_uring`; for a role
/// that may not use io_uring (the chatbot), each is also an alert.
#[test]
fn io_uring_open_and_send_are_seen() {
    use std::os::unix::process::CommandExt as _;
    if !root_or_skip("io_uring_open_and_send_are_seen") {
        return;
    }
    let dir = TempDir::new("io-uring");
    let src = dir.path().join("io_uring_send.c");
    std::fs::write(&src, include_str!("programs/io_uring_send.c")).unwrap();
    let bin = compile(&src);
    let cards = common::chatbot_cards(
        dir.path(),
        "[role.chatbot]\ndeny_pii = [\"CREDIT_CARD\"]\ndeny_io_uring = true\n",
    );
    std::fs::write(
        cards.join("export.csv"),
        "name,card\nJane Doe,4111 1111 1111 1111\n",
    )
    .unwrap();
    let daemon = Daemon::start_in(dir, &[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut c, &mut got).unwrap();
        got.len()
    });
    let out = Command::new(&bin)
        .arg("export.csv")
        .arg(port.to_string())
        .current_dir(&cards)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reader.join().unwrap(), 39);

    let open = wait_record(&daemon, &["alerts", "--action", "read"], |r| {
        r["comm"] == "io_uring_send" && r["via"] == "io_uring"
    });
    assert_eq!(open["class"], "cardholder-data", "{open}");
    assert_eq!(
        open["object"],
        cards.join("export.csv").display().to_string(),
        "{open}"
    );
    assert_eq!(open["action"], "read", "{open}");
    assert_eq!(open["role"], "chatbot", "{open}");
    let send = wait_record(&daemon, &["alerts", "--action", "send"], |r| {
        r["comm"] == "io_uring_send" && r["via"] == "io_uring"
    });
    // The card (the name beside it is a finding too).
    let card = send["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["type"] == "CREDIT_CARD"))
        .unwrap_or_else(|| panic!("no card in {send}"));
    assert_eq!(card["masked"], "411111******1111", "{send}");
    // The chatbot may not use a ring: both alerts say so too.
    for r in [&open, &send] {
        let message = r["alert"]["message"].as_str().unwrap();
        assert!(message.contains("used an io_uring"), "{r}");
    }
}
