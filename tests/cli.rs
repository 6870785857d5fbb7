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
