//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `setup`: install what the eBPF build needs (idempotent).
//! - `run`: set up, build, and run the daemon on its embedded defaults.
//! - `test`: set up, then format check, clippy, and the whole test suite.
//! - `fuzz`: every fuzz target for a short, fixed time.
//! - `bench sensor`: the sensor throughput and loss benchmark.
//! - `bench overhead`: what the daemon costs the host, against a count-only floor.
//! - `gen-pii-corpus`, `eval-pii`: the detector's labeled corpus and its scores.
//! - `eval-peers`: the detector on gitleaks' and Presidio's own test vectors.
//! - `eval-anomaly`: the anomaly detectors on a synthetic month.
//! - `package`, `install`: the .deb, and an install without dpkg.

mod bench;
mod fuzz;
mod package;
mod peers;
mod pii;
mod setup;

use std::process::Command;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Project tasks for monitor")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the eBPF toolchain pieces (nightly rust-src, bpf-linker). Idempotent.
    Setup,
    /// Set up, build (release), and run `monitor run` with the given arguments.
    Run {
        /// Arguments for `monitor run`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, then check formatting and lints and run every test.
    Test {
        /// Skip the format and clippy checks.
        #[arg(long)]
        no_lint: bool,
    },
    /// Regenerate the PII detector's labeled evaluation corpus.
    GenPiiCorpus,
    /// Precision, recall and F1 per PII type on the labeled corpus.
    EvalPii,
    /// The detector on gitleaks' rule vectors and Presidio's recognizer
    /// cases: recall and false flags per family, agreement per type.
    EvalPeers,
    /// The anomaly detectors on a synthetic month: recall per detector,
    /// false alerts per role-day, alerts per incident.
    EvalAnomaly,
    /// Build the .deb (cargo-deb); with --check, also install, check,
    /// remove and purge it on this host (CI).
    Package {
        /// Install, check, remove and purge it here.
        #[arg(long)]
        check: bool,
    },
    /// Install the release build without dpkg.
    Install {
        /// Where the binary (PREFIX/bin) and the unit go.
        #[arg(long, default_value = "/usr/local")]
        prefix: std::path::PathBuf,
    },
    /// Run every fuzz target for a short, fixed time each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Run a benchmark.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Run { args } => {
            setup::run()?;
            cargo(&["build", "--release", "-p", "monitor"])?;
            let status = Command::new(workspace_root().join("target/release/monitor"))
                .arg("run")
                .args(args)
                .status()
                .context("starting monitor")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Test { no_lint } => {
            setup::run()?;
            if !no_lint {
                cargo(&["fmt", "--all", "--", "--check"])?;
                cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
            }
            // Default members only: `monitor-ebpf` has no host build.
            cargo(&["test"])
        }
        Task::GenPiiCorpus => pii::generate(),
        Task::EvalPii => {
            setup::run()?;
            pii::evaluate()
        }
        Task::EvalPeers => {
            setup::run()?;
            peers::evaluate()
        }
        Task::EvalAnomaly => {
            setup::run()?;
            bench::eval_anomaly()
        }
        Task::Package { check } => {
            setup::run()?;
            let deb = package::build()?;
            if check {
                package::check(&deb)?;
            }
            Ok(())
        }
        Task::Install { prefix } => {
            setup::run()?;
            package::install(&prefix)
        }
        Task::Fuzz { seconds } => fuzz::run(seconds),
        Task::Bench { which } => {
            setup::run()?;
            bench::run(which)
        }
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs cargo in the workspace root with the bootstrap's PATH.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(env_or("CARGO", "cargo"))
        .args(args)
        .current_dir(workspace_root())
        .env("PATH", setup::path_with_cargo_bin())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok(())
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}
