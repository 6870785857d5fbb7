//! `cargo xtask package [--check]` (the .deb, built with cargo-deb) and
//! `cargo xtask install [--prefix DIR]` (for hosts without dpkg).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::{cargo, setup, workspace_root};

/// The cargo-deb release the package is built with.
const CARGO_DEB: &str = "3.8.0";

/// Builds the .deb; returns its path.
pub fn build() -> anyhow::Result<PathBuf> {
    let have = Command::new("cargo")
        .args(["deb", "--version"])
        .env("PATH", setup::path_with_cargo_bin())
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        cargo(&["install", "cargo-deb", "--locked", "--version", CARGO_DEB])?;
    }
    cargo(&["deb", "-p", "monitor"])?;
    let dir = workspace_root().join("target/debian");
    let deb = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .context("cargo deb made no .deb")?;
    println!("{}", deb.display());
    Ok(deb)
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{cmd} {}: {}\n{text}", args.join(" "), out.status);
    }
    Ok(text)
}

/// Installs the .deb, checks it, removes it (the record stays), purges it
/// (the record goes). Changes the host: meant for CI.
pub fn check(deb: &Path) -> anyhow::Result<()> {
    let deb = deb.to_str().context("a UTF-8 path")?;
    run("dpkg", &["-i", deb])?;
    run(
        "/usr/bin/monitor",
        &["rules", "check", "/etc/monitor/rules.d"],
    )
    .context("the installed rules do not check")?;
    for f in [
        "/lib/systemd/system/monitor.service",
        "/etc/monitor/rules.d/policy.toml",
    ] {
        if !Path::new(f).exists() {
            bail!("the package did not install {f}");
        }
    }
    run("getent", &["group", "monitor-analysts"]).context("no monitor-analysts group")?;
    let conffiles = run(
        "dpkg-query",
        &["--showformat=${Conffiles}", "--show", "monitor"],
    )?;
    if !conffiles.contains("/etc/monitor/rules.d/policy.toml")
        || !conffiles.contains("/etc/monitor/monitor.toml")
    {
        bail!("the rules and settings are not conffiles: {conffiles}");
    }
    // Something of a record, to see what removal keeps.
    std::fs::write("/var/lib/monitor/kept", "x")?;
    run("dpkg", &["-r", "monitor"])?;
    if Path::new("/usr/bin/monitor").exists() || !Path::new("/var/lib/monitor/kept").exists() {
        bail!("dpkg -r must remove the binary and keep the record");
    }
    run("dpkg", &["--purge", "monitor"])?;
    if Path::new("/var/lib/monitor").exists() {
        bail!("dpkg --purge must remove the record");
    }
    println!(
        "package check: installed, rules checked, removed (record kept), purged (record gone)"
    );
    Ok(())
}

/// Installs the release build under `prefix` (binary in PREFIX/bin, the
/// unit in PREFIX/lib/systemd/system), the rules in /etc/monitor/rules.d
/// (files already there are kept), and the state directory.
pub fn install(prefix: &Path) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "monitor"])?;
    let root = workspace_root();
    let put = |from: &Path, to: &Path, mode: u32, keep: bool| -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        if keep && to.exists() {
            println!("kept {}", to.display());
            return Ok(());
        }
        std::fs::create_dir_all(to.parent().context("a parent")?)?;
        std::fs::copy(from, to)
            .with_context(|| format!("{} -> {}", from.display(), to.display()))?;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
        println!("installed {}", to.display());
        Ok(())
    };
    put(
        &root.join("target/release/monitor"),
        &prefix.join("bin/monitor"),
        0o755,
        false,
    )?;
    let unit = std::fs::read_to_string(root.join("packaging/monitor.service"))?.replace(
        "/usr/bin/monitor",
        &prefix.join("bin/monitor").display().to_string(),
    );
    let unit_path = prefix.join("lib/systemd/system/monitor.service");
    std::fs::create_dir_all(unit_path.parent().context("a parent")?)?;
    std::fs::write(&unit_path, unit)?;
    println!("installed {}", unit_path.display());
    put(
        &root.join("packaging/monitor.toml"),
        Path::new("/etc/monitor/monitor.toml"),
        0o644,
        true,
    )?;
    for e in std::fs::read_dir(root.join("rules"))?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            let name = p.file_name().context("a name")?;
            put(
                &p,
                &Path::new("/etc/monitor/rules.d").join(name),
                0o644,
                true,
            )?;
        }
    }
    std::fs::create_dir_all("/var/lib/monitor")?;
    println!("then: systemctl daemon-reload && systemctl enable --now monitor");
    Ok(())
}
