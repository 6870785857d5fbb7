//! `cargo xtask setup`: everything the eBPF build needs, installed
//! idempotently. A second run only checks, in well under a second.
//!
//! 1. The nightly toolchain's `rust-src` (for `-Z build-std=core`).
//! 2. `bpf-linker` 0.13, built against the nightly toolchain's own LLVM
//!    (Debian ships no LLVM new enough). Its rpath points at a stable
//!    directory of links to that LLVM, which must stay.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_FEATURE: &str = "llvm-22";

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn cargo_bin() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cargo"))
        .join("bin")
}

/// `PATH` with cargo's bin directory in it (where bpf-linker is installed).
pub fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut dirs = vec![cargo_bin()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(dirs).expect("PATH entries are valid")
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run_cmd(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("setup: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Installs what is missing.
pub fn run() -> anyhow::Result<()> {
    let sysroot = match output(Command::new("rustc").args(["+nightly", "--print", "sysroot"])) {
        Ok(s) => PathBuf::from(s),
        Err(_) => {
            run_cmd(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]))?;
            PathBuf::from(output(
                Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
            )?)
        }
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    ensure_bpf_linker(&sysroot)
}

fn bpf_linker_ok() -> bool {
    Command::new(cargo_bin().join("bpf-linker"))
        .arg("--version")
        .output()
        .map(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
        })
        .unwrap_or(false)
}

fn ensure_bpf_linker(sysroot: &Path) -> anyhow::Result<()> {
    let prefix = home().join(".cache/monitor/llvm-rust");
    let lib = prefix.join("lib");
    let llvm = std::fs::read_dir(sysroot.join("lib"))
        .context("reading the nightly sysroot")?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.contains("-rust-"))
        })
        .context("the nightly toolchain carries no libLLVM.so.*-rust-*")?;
    // The links bpf-linker's rpath resolves through; refreshed when the nightly moves.
    std::fs::create_dir_all(&lib)?;
    for name in [
        "libLLVM.so".to_owned(),
        llvm.file_name().unwrap().to_string_lossy().into_owned(),
    ] {
        let link = lib.join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(llvm.as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&llvm, &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
    }
    if bpf_linker_ok() {
        return Ok(());
    }
    run_cmd(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                "--features",
                LLVM_FEATURE,
            ])
            .env("LLVM_PREFIX", &prefix),
    )?;
    if !bpf_linker_ok() {
        bail!("bpf-linker {BPF_LINKER_VERSION} was installed but does not run");
    }
    Ok(())
}
