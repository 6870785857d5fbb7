//! Builds the kernel programs (`monitor-ebpf`) for the BPF target and leaves
//! the object in `OUT_DIR`, where `src/sensor/mod.rs` embeds it. A build
//! without the eBPF toolchain fails here, with the command that fixes it,
//! rather than producing a daemon without probes.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    version_stamp();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../monitor-ebpf");
    println!("cargo:rerun-if-changed=../monitor-common/src");
    // aya-build relays every line the nested cargo prints as a build warning; keep it to real ones.
    std::env::set_var("CARGO_TERM_QUIET", "true");
    if which_bpf_linker().is_none() {
        anyhow::bail!(
            "bpf-linker is not on PATH: run `cargo xtask setup` once to install the eBPF toolchain"
        );
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "monitor-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
    .context("building the kernel programs (`cargo xtask setup` installs what they need)")
}

fn which_bpf_linker() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("bpf-linker"))
        .find(|candidate| candidate.is_file())
}

/// `MONITOR_GIT_COMMIT` and `MONITOR_BUILD_DATE` for `monitor --version`:
/// the commit checked out (with `-dirty` for local changes), `unknown`
/// outside a git checkout; the date from `SOURCE_DATE_EPOCH` when set
/// (reproducible builds), else today.
fn version_stamp() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c)
            if git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()) =>
        {
            format!("{c}-dirty")
        }
        Some(c) => c,
        None => "unknown".into(),
    };
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let days = secs / 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    println!("cargo:rustc-env=MONITOR_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=MONITOR_BUILD_DATE={year:04}-{month:02}-{day:02}");
    // A new commit moves the branch's ref, not HEAD.
    let git_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../.git");
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for file in ["HEAD", "packed-refs"]
        .into_iter()
        .map(str::to_owned)
        .chain(branch)
    {
        let path = format!("{git_dir}/{file}");
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
