//! The command line without the kernel: bad input gets a clear error.

mod common;

use std::process::Command;

use common::{monitor_bin, TempDir};

#[test]
fn status_without_a_daemon_says_so() {
    let dir = TempDir::new("cli");
    let out = Command::new(monitor_bin())
        .args(["status", "--status-file"])
        .arg(dir.path().join("absent.json"))
        .arg("--socket")
        .arg(dir.path().join("absent.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the daemon running?"), "{err}");
}

#[test]
fn stale_status_is_reported_as_not_running() {
    let dir = TempDir::new("cli");
    let path = dir.path().join("status.json");
    // A pid that cannot exist (above pid_max).
    std::fs::write(&path, r#"{"pid":4194305,"version":"0.1.0","started":"","updated":"","attached":[],"ring_bytes":0,"processes_tracked":0,"kernel":{"emitted":0,"ringbuf_full":0,"truncated":0,"args_missing":0},"pipeline":{"received":0,"decode_errors":0,"sink_errors":0}}"#).unwrap();
    let out = Command::new(monitor_bin())
        .args(["status", "--status-file"])
        .arg(&path)
        .arg("--socket")
        .arg(dir.path().join("absent.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT RUNNING"));
}

#[test]
fn ring_size_must_be_a_power_of_two() {
    let out = Command::new(monitor_bin())
        .args(["run", "--ring-mib", "3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("power of two"), "{err}");
}

/// Issue (hardening, item 10): `--json` said "one object" and printed an
/// array; the benchmarks sat in the user-facing command list.
#[test]
fn help_says_what_json_prints_and_hides_no_benchmarks() {
    let out = Command::new(monitor_bin())
        .args(["events", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("an array of records"), "{help}");
    let out = Command::new(monitor_bin()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("bench"), "{help}");
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = Command::new(monitor_bin())
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("commit: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        commit == "unknown" || commit.trim_end_matches("-dirty").len() == 12,
        "{text}"
    );
    let built = text
        .lines()
        .find_map(|l| l.strip_prefix("built: "))
        .unwrap();
    assert!(built.len() == 10 && built.starts_with("20"), "{text}");
}

#[test]
fn rules_show_prints_the_shipped_files_to_start_from() {
    let out = Command::new(monitor_bin())
        .args(["rules", "show", "policy.toml"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/policy.toml")).unwrap()
    );
    let out = Command::new(monitor_bin())
        .args(["rules", "show"])
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    for f in [
        "roles.toml",
        "classes.toml",
        "policy.toml",
        "pii.toml",
        "sinks.toml",
    ] {
        assert!(all.contains(&format!("# ==> {f} <==")), "{f}");
    }
    let out = Command::new(monitor_bin())
        .args(["rules", "show", "polcy.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no shipped rules file `polcy.toml`"));
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(monitor_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("who-accessed"),
            "{shell}: {text}"
        );
    }
    let out = Command::new(monitor_bin()).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && page.contains(".TH monitor 1"),
        "{page}"
    );
    assert!(page.contains("who\\-accessed"), "{page}");
}

/// `monitor scan DIR` as a sanitization check: every file walked (hidden
/// ones too, binary ones skipped), findings as `path:line:col`, and an
/// exit status a pipeline can gate on.
#[test]
fn scan_walks_a_directory_and_exits_like_grep() {
    let dir = std::env::temp_dir().join(format!("monitor-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store/.cache")).unwrap();
    std::fs::write(
        dir.join("store/chat.txt"),
        "hello\ncard 4111 1111 1111 1111 ok\n",
    )
    .unwrap();
    std::fs::write(dir.join("store/.cache/.env"), "x\nmail bob@example.com\n").unwrap();
    std::fs::write(dir.join("store/clean.txt"), "nothing to see\n").unwrap();
    std::fs::write(dir.join("store/blob.bin"), b"\0\x01 4111111111111111").unwrap();
    let key = dir.join("fingerprint.key");
    let scan = |args: &[&str]| {
        Command::new(monitor_bin())
            .arg("scan")
            .args(args)
            .arg("--key-file")
            .arg(&key)
            .output()
            .unwrap()
    };
    let store = dir.join("store");
    let out = scan(&[store.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{summary}");
    let card = format!("{}/chat.txt:2:6: ", store.display());
    let mail = format!("{}/.cache/.env:2:6: EMAIL_ADDRESS", store.display());
    assert!(text.contains(&card) && text.contains(&mail), "{text}");
    // The columns line up across files.
    let kind_at: Vec<usize> = text
        .lines()
        .map(|l| {
            l.find("CREDIT_CARD")
                .or_else(|| l.find("EMAIL_ADDRESS"))
                .unwrap()
        })
        .collect();
    assert_eq!(kind_at[0], kind_at[1], "{text}");
    assert!(
        text.contains("411111******1111") && !text.contains("4111 1111"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        2,
        "the binary file is skipped: {text}"
    );
    assert!(summary.contains("2 findings in 2 of 3 files"), "{summary}");

    let clean = scan(&[dir.join("store/clean.txt").to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0));
    let gated = scan(&[store.to_str().unwrap(), "--min-severity", "critical"]);
    assert_eq!(
        gated.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&gated.stdout)
    );
    let missing = scan(&[dir.join("nope").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn scan_shows_a_hostile_file_name_without_reaching_the_terminal_raw() {
    let dir = std::env::temp_dir().join(format!("monitor-scan-esc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("esc\x1b[2J\u{202e}name.txt"),
        "card 4111 1111 1111 1111\n",
    )
    .unwrap();
    let out = Command::new(monitor_bin())
        .arg("scan")
        .arg(&dir)
        .arg("--key-file")
        .arg(dir.join("fingerprint.key"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        !text.contains('\x1b') && !text.contains('\u{202e}') && text.contains("CREDIT_CARD"),
        "{text:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
