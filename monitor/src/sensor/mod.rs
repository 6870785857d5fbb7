//! Sensor stage: loads the kernel programs, attaches them to their
//! tracepoints, and hands raw records from the ring buffer to the pipeline.
//!
//! The programs are embedded in this binary at build time (see `build.rs`).
//! Kernel struct offsets come from the kernel's BTF ([`crate::btf`]).

#[cfg(test)]
mod layout_tests;

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::TracePoint;
use aya::{Ebpf, EbpfLoader};
use monitor_common::{
    SensorConfig, COUNTER_ARGS_MISSING, COUNTER_EMITTED, COUNTER_RINGBUF_FULL, COUNTER_TRUNCATED,
};

use monitor_common::probes::{Hook, Probe, When, PROBES};
use monitor_common::ClassDirKey;

use crate::btf::{Btf, BtfError};
use crate::status::KernelCounters;

/// The kernel programs, built from `monitor-ebpf` for the BPF target.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

/// Where distributions keep the system OpenSSL.
const LIBSSL_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib64/libssl.so.3",
    "/usr/lib/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/usr/lib64/libssl.so.1.1",
];

/// What TLS capture cannot see, for `monitor status`.
pub const TLS_NOT_COVERED: &str = "TLS not through a hooked libssl: statically linked TLS \
(Go crypto/tls, rustls, BoringSSL in browsers, Node's bundled OpenSSL) is seen only as ciphertext";

/// The system's OpenSSL libraries, one path per distinct file.
pub fn find_libssl() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for c in LIBSSL_CANDIDATES {
        if let Ok(real) = std::fs::canonicalize(c) {
            if !found.contains(&real) {
                found.push(real);
            }
        }
    }
    found
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Why the sensor could not start or read.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// Kernel offsets could not be read from BTF.
    #[error("reading kernel struct offsets from BTF")]
    Btf(#[source] BtfError),
    /// The eBPF object could not be loaded (permissions, verifier).
    #[error("loading the eBPF object (needs root and a kernel with BPF ring buffers)")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program could not be loaded or attached.
    #[error("program `{program}` on tracepoint {category}:{name}")]
    Attach {
        /// The program.
        program: String,
        /// The tracepoint category.
        category: String,
        /// The tracepoint name.
        name: String,
        /// The cause.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map the programs define is missing or of the wrong type.
    #[error("map `{name}`")]
    Map {
        /// The map.
        name: &'static str,
        /// The cause.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// tracefs is not mounted and could not be mounted.
    #[error("mounting tracefs at {TRACEFS}")]
    Tracefs(#[source] std::io::Error),
    /// Waiting on the ring buffer failed.
    #[error("polling the ring buffer")]
    Poll(#[source] std::io::Error),
}

/// What the sensor is started with.
#[derive(Debug, Clone)]
pub struct SensorSettings {
    /// Ring buffer size in bytes (a power of two, a multiple of the page size).
    pub ring_bytes: u32,
    /// A process whose activity is never reported (the daemon itself).
    pub self_tgid: u32,
    /// The kernel's BTF.
    pub btf_path: PathBuf,
    /// Most payload bytes captured per call (at most `PAYLOAD_MAX`).
    pub payload_limit: u32,
    /// OpenSSL libraries to hook for TLS plaintext.
    pub tls_libraries: Vec<PathBuf>,
    /// Also capture what processes receive (off by default: reads are frequent).
    pub capture_inbound: bool,
}

impl Default for SensorSettings {
    fn default() -> Self {
        Self {
            ring_bytes: 32 << 20,
            self_tgid: std::process::id(),
            btf_path: PathBuf::from(crate::btf::VMLINUX_BTF),
            payload_limit: monitor_common::PAYLOAD_MAX as u32,
            tls_libraries: find_libssl(),
            capture_inbound: false,
        }
    }
}

/// The loaded and attached kernel programs and their ring buffer.
pub struct Sensor {
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    class_dirs: aya::maps::HashMap<MapData, ClassDirKey, u32>,
    attached: Vec<String>,
    tls_attached: Vec<String>,
    // Dropping this detaches and unloads everything; it must outlive the maps above.
    _ebpf: Ebpf,
}

impl Sensor {
    /// Loads the programs, attaches every one, and returns once all are live.
    pub fn start(settings: &SensorSettings) -> Result<Self, SensorError> {
        ensure_tracefs()?;
        let offsets = Btf::from_file(&settings.btf_path)
            .and_then(|btf| btf.kernel_offsets())
            .map_err(SensorError::Btf)?;
        let config = SensorConfig {
            self_tgid: settings.self_tgid,
            payload_limit: settings
                .payload_limit
                .min(monitor_common::PAYLOAD_MAX as u32),
        };
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| SensorError::Tracefs(e))? as u32;
        let mut ebpf = EbpfLoader::new()
            .override_global("OFFSETS", &offsets, true)
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", settings.ring_bytes)
            .map_max_entries("PAYLOAD_SCRATCH", cpus)
            .load(EBPF_OBJECT)
            .map_err(|e| SensorError::Load(Box::new(e)))?;

        let mut attached = Vec::new();
        let mut tls_attached = Vec::new();
        let wanted = |p: &&Probe| p.when == When::Always || settings.capture_inbound;
        for probe in PROBES.iter().filter(wanted) {
            match probe.hook {
                Hook::Tracepoint { category, name } => {
                    attach(&mut ebpf, probe.program, category, name)?;
                }
                Hook::Tls { symbol } => {
                    for lib in &settings.tls_libraries {
                        attach_uprobe(&mut ebpf, probe.program, symbol, lib)?;
                    }
                }
            }
            if !probe.shown.is_empty() {
                attached.push(probe.shown.to_owned());
            }
        }
        for lib in &settings.tls_libraries {
            tls_attached.push(lib.display().to_string());
        }

        let ring = take_map(&mut ebpf, "EVENTS")
            .and_then(|m| RingBuf::try_from(m).map_err(|e| map_err("EVENTS", e)))?;
        let counters = take_map(&mut ebpf, "COUNTERS")
            .and_then(|m| PerCpuArray::try_from(m).map_err(|e| map_err("COUNTERS", e)))?;
        let class_dirs = take_map(&mut ebpf, "CLASS_DIRS")
            .and_then(|m| aya::maps::HashMap::try_from(m).map_err(|e| map_err("CLASS_DIRS", e)))?;
        Ok(Self {
            ring,
            counters,
            class_dirs,
            attached,
            tls_attached,
            _ebpf: ebpf,
        })
    }

    /// Replaces the classified directories the kernel looks for above a
    /// path it cuts short (at most `MAX_CLASS_DIRS`; the rest are logged).
    pub fn set_class_dirs(&mut self, dirs: &[(ClassDirKey, u32)]) -> Result<(), SensorError> {
        let stale: Vec<ClassDirKey> = self
            .class_dirs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !dirs.iter().any(|(d, _)| d == k))
            .collect();
        for k in stale {
            let _ = self.class_dirs.remove(&k);
        }
        let cap = monitor_common::MAX_CLASS_DIRS as usize;
        if dirs.len() > cap {
            tracing::warn!(
                dirs = dirs.len(),
                kept = cap,
                "too many classified directories for the kernel map"
            );
        }
        for (k, mark) in dirs.iter().take(cap) {
            self.class_dirs
                .insert(k, mark, 0)
                .map_err(|e| map_err("CLASS_DIRS", e))?;
        }
        Ok(())
    }

    /// The tracepoints the sensor is attached to.
    pub fn attached(&self) -> &[String] {
        &self.attached
    }

    /// The TLS libraries hooked.
    pub fn tls_attached(&self) -> &[String] {
        &self.tls_attached
    }

    /// Waits up to `timeout` for records; true when some are ready.
    pub fn wait(&self, timeout: Duration) -> Result<bool, SensorError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(self.ring.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(SensorError::Poll(e.into())),
        }
    }

    /// Hands every record now in the ring buffer to `f`, at most `max`; returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some(item) = self.ring.next() else { break };
            f(&item);
            n += 1;
        }
        n
    }

    /// The kernel's counters, summed over CPUs.
    pub fn kernel_counters(&self) -> KernelCounters {
        let read = |index: u32| -> u64 {
            self.counters
                .get(&index, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0)
        };
        KernelCounters {
            emitted: read(COUNTER_EMITTED),
            ringbuf_full: read(COUNTER_RINGBUF_FULL),
            truncated: read(COUNTER_TRUNCATED),
            args_missing: read(COUNTER_ARGS_MISSING),
            payload_truncated: read(monitor_common::COUNTER_PAYLOAD_TRUNCATED),
            mark_unresolved: read(monitor_common::COUNTER_MARK_UNRESOLVED),
        }
    }
}

fn map_err(name: &'static str, e: aya::maps::MapError) -> SensorError {
    SensorError::Map {
        name,
        source: Box::new(e),
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, SensorError> {
    ebpf.take_map(name)
        .ok_or_else(|| map_err(name, aya::maps::MapError::InvalidName { name: name.into() }))
}

fn attach(ebpf: &mut Ebpf, program: &str, category: &str, name: &str) -> Result<(), SensorError> {
    let err = |source: aya::programs::ProgramError| SensorError::Attach {
        program: program.to_owned(),
        category: category.to_owned(),
        name: name.to_owned(),
        source: Box::new(source),
    };
    let prog: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or_else(|| err(aya::programs::ProgramError::UnexpectedProgramType))?
        .try_into()
        .map_err(err)?;
    if prog.fd().is_err() {
        tracing::debug!(program, "loading");
        prog.load().map_err(err)?;
    }
    prog.attach(category, name).map_err(err)?;
    Ok(())
}

fn attach_uprobe(
    ebpf: &mut Ebpf,
    program: &str,
    symbol: &str,
    lib: &Path,
) -> Result<(), SensorError> {
    let err = |source: aya::programs::ProgramError| SensorError::Attach {
        program: program.to_owned(),
        category: lib.display().to_string(),
        name: symbol.to_owned(),
        source: Box::new(source),
    };
    let prog: &mut aya::programs::UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| err(aya::programs::ProgramError::UnexpectedProgramType))?
        .try_into()
        .map_err(err)?;
    if prog.fd().is_err() {
        prog.load().map_err(err)?;
    }
    prog.attach(
        symbol,
        lib,
        aya::programs::uprobe::UProbeScope::AllProcesses,
    )
    .map_err(err)?;
    Ok(())
}

/// aya finds tracepoint ids under tracefs; mount it if the host has not.
fn ensure_tracefs() -> Result<(), SensorError> {
    let tracefs = Path::new(TRACEFS);
    if tracefs.join("events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        return Ok(());
    }
    nix::mount::mount(
        Some("nodev"),
        tracefs,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| SensorError::Tracefs(e.into()))
}

#[cfg(test)]
mod probe_table_tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The kernel crate and the shared table agree: every program the table
    /// attaches is in the built object, and no program in the object is left
    /// unattached.
    #[test]
    fn the_probe_table_and_the_kernel_object_name_the_same_programs() {
        let obj = aya_obj::Object::parse(EBPF_OBJECT).expect("the embedded object parses");
        let in_object: BTreeSet<&str> = obj.programs.keys().map(String::as_str).collect();
        let in_table: BTreeSet<&str> = PROBES.iter().map(|p| p.program).collect();
        assert_eq!(in_object, in_table);
        // Every probe names itself or follows one that does (the exit of a pair).
        for (i, p) in PROBES.iter().enumerate() {
            assert!(
                !p.shown.is_empty()
                    || i > 0 && !PROBES[i - 1].shown.is_empty()
                    || matches!(p.hook, Hook::Tls { .. }),
                "{p:?} is shown nowhere"
            );
        }
    }
}
