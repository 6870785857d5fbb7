//! `cargo xtask fuzz`: every fuzz target for a fixed time each (cargo-fuzz,
//! libFuzzer, nightly). Seeds are kept in the repository (`fuzz/seeds/`);
//! what a run learns goes to `fuzz/corpus/` (not kept), crashes to
//! `fuzz/artifacts/`. The short default suits CI; `--seconds` runs longer.

use std::process::Command;

use anyhow::{bail, Context as _};

use crate::{setup, workspace_root};

/// (crate directory, target, what it holds to).
const TARGETS: [(&str, &str, &str); 4] = [
    (
        "monitor-pii/fuzz",
        "scan",
        "the detector: no panic, findings inside the input",
    ),
    (
        "monitor/fuzz",
        "rules",
        "the rules parsers: no panic, errors point inside the text",
    ),
    (
        "monitor/fuzz",
        "wire",
        "the kernel-record decoder: no panic, strings inside the record",
    ),
    (
        "monitor/fuzz",
        "request",
        "the analyst request parser: no panic, no traced value recorded",
    ),
];

/// Runs every target for `seconds` each.
pub fn run(seconds: u64) -> anyhow::Result<()> {
    setup::run()?;
    ensure_cargo_fuzz()?;
    let root = workspace_root();
    for (dir, target, what) in TARGETS {
        println!("fuzz {target} ({what}) for {seconds} s");
        let dir = root.join(dir);
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .arg(dir.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-max_len=4096")
            .current_dir(&dir)
            .env("PATH", setup::path_with_cargo_bin())
            .status()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed (see {}/artifacts)",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Installs cargo-fuzz once.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .env("PATH", setup::path_with_cargo_bin())
        .output()
        .is_ok_and(|o| o.status.success());
    if have {
        return Ok(());
    }
    crate::cargo(&["install", "cargo-fuzz", "--locked"])
}
