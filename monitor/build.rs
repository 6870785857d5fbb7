//! Builds the kernel programs (`monitor-ebpf`) for the BPF target and leaves
//! the object in `OUT_DIR`, where `src/sensor/mod.rs` embeds it. A build
//! without the eBPF toolchain fails here, with the command that fixes it,
//! rather than producing a daemon without probes.

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
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
