//! Sensor stage: loads the kernel programs, attaches them to their
//! tracepoints, and hands raw records from the ring buffer to the pipeline.
//!
//! The programs are embedded in this binary at build time (see `build.rs`).
//! Kernel struct offsets come from the kernel's BTF ([`crate::btf`]).

#[cfg(test)]
mod layout_tests;
pub mod tls;

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

/// Where distributions keep the system OpenSSL and GnuTLS.
const SYSTEM_TLS_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/aarch64-linux-gnu/libssl.so.3",
    "/usr/lib64/libssl.so.3",
    "/usr/lib/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libssl.so.1.1",
    "/usr/lib64/libssl.so.1.1",
    "/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
    "/usr/lib/aarch64-linux-gnu/libgnutls.so.30",
    "/usr/lib64/libgnutls.so.30",
];

/// What TLS capture cannot see, for `monitor status`.
pub const TLS_NOT_COVERED: &str = "TLS read only from OpenSSL/BoringSSL (libssl, or linked \
into a binary such as Node), GnuTLS, and Go's crypto/tls (outbound, binaries with symbols); \
rustls, Java, NSS and stripped Go binaries are seen only as ciphertext (see tls_blind)";

/// What in-kernel prevention does and does not do, for `monitor status`.
pub const PREVENTION: &str = "kill (deny is unavailable: a uprobe cannot change a call's \
result on this kernel); card numbers at SSL_write/SSL_write_ex/gnutls_record_send of \
processes in enforcing roles, stopped before encryption; at write/sendto on a plain socket \
the writer is killed but that syscall still completes (its bytes leave); not: writev and \
sendmsg, Go and rustls TLS, a number split across two writes, a process whose role is \
decided by executable before the daemon has seen it";

/// The ways data leaves a process that no probe sees yet, for `monitor status`.
pub const SIDE_DOORS_NOT_COVERED: &str = "io_uring requests other than opens and sends \
(connect, write/writev to a socket, registered buffers' bytes), vmsplice of user memory into \
a pipe spliced to a socket, copy_file_range (file to file only)";

/// The system's OpenSSL and GnuTLS libraries, one path per distinct file.
pub fn find_libssl() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for c in SYSTEM_TLS_CANDIDATES {
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
    /// Libraries or binaries to hook for TLS plaintext from the start
    /// (besides those discovery finds).
    pub tls_libraries: Vec<PathBuf>,
    /// Look at every process's binary and libraries (at start, on exec,
    /// on its first connection) and hook those that carry TLS.
    pub discover_tls: bool,
    /// Also capture what processes receive (off by default: reads are frequent).
    pub capture_inbound: bool,
    /// The kernel's repeat window (`repeats.rs`): zero sends every open.
    pub repeat_window: Duration,
}

impl Default for SensorSettings {
    fn default() -> Self {
        Self {
            ring_bytes: 32 << 20,
            self_tgid: std::process::id(),
            btf_path: PathBuf::from(crate::btf::VMLINUX_BTF),
            payload_limit: monitor_common::PAYLOAD_MAX as u32,
            tls_libraries: find_libssl(),
            discover_tls: true,
            capture_inbound: false,
            repeat_window: Duration::ZERO,
        }
    }
}

/// The loaded and attached kernel programs and their ring buffer.
pub struct Sensor {
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    class_dirs: aya::maps::HashMap<MapData, ClassDirKey, u32>,
    path_gen: aya::maps::Array<MapData, u64>,
    enforce_tgid: aya::maps::HashMap<MapData, u32, u32>,
    enforce_cgroup: aya::maps::HashMap<MapData, u64, u32>,
    attached: Vec<String>,
    tls: TlsHooks,
    /// The kernel's count of counted opens at the last collection, and when.
    counted_at_flush: u64,
    last_flush: std::time::Instant,
    capture_inbound: bool,
    /// Records taken from the ring buffer so far.
    drained: u64,
    /// The room those records took in the ring buffer (each with the
    /// kernel's 8-byte header, rounded up to 8 bytes).
    drained_bytes: u64,
    /// The ring buffer's size.
    ring_bytes: u64,
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
            repeat_window_ns: u64::try_from(settings.repeat_window.as_nanos()).unwrap_or(u64::MAX),
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
        let wanted = |p: &&Probe| p.when == When::Always || settings.capture_inbound;
        for probe in PROBES.iter().filter(wanted) {
            match probe.hook {
                // io_uring is optional: a kernel without it (or whose BTF
                // lacks its request types) runs without the probe, and the
                // status does not list it.
                Hook::Tracepoint {
                    category: "io_uring",
                    name,
                } => {
                    let known = offsets.io_open_filename != 0;
                    let attached = known
                        && attach(&mut ebpf, probe.program, "io_uring", name)
                            .inspect_err(|e| tracing::warn!(error = %e, "io_uring requests will not be seen"))
                            .is_ok();
                    if !attached {
                        continue;
                    }
                }
                Hook::Tracepoint { category, name } => {
                    attach(&mut ebpf, probe.program, category, name)?;
                }
                Hook::Tls { .. } => load_uprobe(&mut ebpf, probe.program)?,
                Hook::Daemon { symbol } => {
                    let offset = own_offset(monitor_flush_repeats as *const () as usize)?;
                    attach_uprobe(
                        &mut ebpf,
                        probe.program,
                        symbol,
                        offset,
                        Path::new("/proc/self/exe"),
                    )?;
                }
            }
            if !probe.shown.is_empty() {
                attached.push(probe.shown.to_owned());
            }
        }

        let ring = take_map(&mut ebpf, "EVENTS")
            .and_then(|m| RingBuf::try_from(m).map_err(|e| map_err("EVENTS", e)))?;
        let counters = take_map(&mut ebpf, "COUNTERS")
            .and_then(|m| PerCpuArray::try_from(m).map_err(|e| map_err("COUNTERS", e)))?;
        let class_dirs = take_map(&mut ebpf, "CLASS_DIRS")
            .and_then(|m| aya::maps::HashMap::try_from(m).map_err(|e| map_err("CLASS_DIRS", e)))?;
        let path_gen = take_map(&mut ebpf, "PATH_GEN")
            .and_then(|m| aya::maps::Array::try_from(m).map_err(|e| map_err("PATH_GEN", e)))?;
        let enforce_tgid = take_map(&mut ebpf, "ENFORCE_TGID").and_then(|m| {
            aya::maps::HashMap::try_from(m).map_err(|e| map_err("ENFORCE_TGID", e))
        })?;
        let enforce_cgroup = take_map(&mut ebpf, "ENFORCE_CGROUP").and_then(|m| {
            aya::maps::HashMap::try_from(m).map_err(|e| map_err("ENFORCE_CGROUP", e))
        })?;
        let mut sensor = Self {
            ring,
            counters,
            class_dirs,
            path_gen,
            enforce_tgid,
            enforce_cgroup,
            attached,
            tls: TlsHooks {
                discover: settings.discover_tls,
                ..TlsHooks::default()
            },
            counted_at_flush: 0,
            last_flush: std::time::Instant::now(),
            capture_inbound: settings.capture_inbound,
            drained: 0,
            drained_bytes: 0,
            ring_bytes: u64::from(settings.ring_bytes),
            _ebpf: ebpf,
        };
        for lib in &settings.tls_libraries {
            match tls::FileId::of(lib) {
                Ok(id) => {
                    if !sensor.hook_file(lib, lib, id)? {
                        tracing::warn!(path = %lib.display(), "no TLS library functions found in it");
                    }
                }
                Err(e) => tracing::warn!(path = %lib.display(), error = %e, "cannot hook TLS"),
            }
        }
        if settings.discover_tls {
            for pid in all_pids() {
                sensor.discover(pid);
            }
        }
        Ok(sensor)
    }

    /// Hooks TLS in `pid`'s binary and libraries not looked at yet (call at
    /// its exec, and again at its first connection: libraries are mapped
    /// after the exec). A process gone already is skipped.
    pub fn discover(&mut self, pid: u32) {
        if !self.tls.discover || pid == std::process::id() {
            return;
        }
        let Ok(maps) = tls::executable_mappings(pid) else {
            return;
        };
        for m in maps {
            // Through the process's root: the path is the process's own
            // (it may live in a container's filesystem).
            let path = PathBuf::from(format!("/proc/{pid}/root"))
                .join(m.path.strip_prefix("/").unwrap_or(&m.path));
            let Ok(id) = tls::FileId::of(&path) else {
                continue;
            };
            if id.dev != m.id.dev || id.ino != m.id.ino {
                continue; // replaced on disk since it was mapped
            }
            if let Err(e) = self.hook_file(&path, &m.path, id) {
                tracing::warn!(path = %m.path.display(), error = %e, "cannot hook TLS");
            }
        }
        self.tls.looked.insert(pid);
    }

    /// Whether `pid` was looked at since its exec.
    pub fn discovered(&self, pid: u32) -> bool {
        !self.tls.discover || self.tls.looked.contains(&pid)
    }

    /// Forgets what was looked at for `pid` (it exec'd or exited).
    pub fn forget_pid(&mut self, pid: u32) {
        self.tls.looked.remove(&pid);
    }

    /// Whether any file `pid` maps is hooked for TLS.
    pub fn tls_hooked_in(&self, pid: u32) -> bool {
        tls::executable_mappings(pid).is_ok_and(|maps| {
            maps.iter().any(|m| {
                self.tls
                    .files
                    .iter()
                    .any(|(id, f)| id.dev == m.id.dev && id.ino == m.id.ino && !f.links.is_empty())
            })
        })
    }

    /// Looks at one file (once per id) and attaches the probes of every
    /// TLS implementation it carries; true when it is hooked. A file whose
    /// contents changed in place (same inode, new modification time) loses
    /// its old probes first.
    fn hook_file(
        &mut self,
        path: &Path,
        shown: &Path,
        id: tls::FileId,
    ) -> Result<bool, SensorError> {
        if let Some(f) = self.tls.files.get(&id) {
            return Ok(!f.links.is_empty());
        }
        let stale: Vec<tls::FileId> = self
            .tls
            .files
            .keys()
            .filter(|k| k.dev == id.dev && k.ino == id.ino)
            .copied()
            .collect();
        for k in stale {
            if let Some(old) = self.tls.files.remove(&k) {
                for (program, link) in old.links {
                    if let Some(p) = self.uprobe(program) {
                        let _ = p.detach(link);
                    }
                }
            }
        }
        let found = match tls::inspect(path) {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "not looked at for TLS");
                Vec::new()
            }
        };
        let mut hooked = HookedFile {
            shown: shown.display().to_string(),
            flavours: found.iter().map(|f| f.flavour).collect(),
            links: Vec::new(),
        };
        for f in &found {
            for probe in PROBES.iter() {
                let Hook::Tls { flavour, symbol } = probe.hook else {
                    continue;
                };
                if flavour != f.flavour || (probe.when == When::Inbound && !self.capture_inbound) {
                    continue;
                }
                let Some(&(_, offset)) = f.offsets.iter().find(|(s, _)| *s == symbol) else {
                    continue;
                };
                let link = attach_uprobe(&mut self._ebpf, probe.program, symbol, offset, path)?;
                hooked.links.push((probe.program, link));
            }
        }
        if !hooked.links.is_empty() {
            tracing::info!(path = %hooked.shown, flavours = ?hooked.flavours, probes = hooked.links.len(), "TLS hooked");
        }
        let ok = !hooked.links.is_empty();
        self.tls.files.insert(id, hooked);
        Ok(ok)
    }

    fn uprobe(&mut self, program: &str) -> Option<&mut aya::programs::UProbe> {
        self._ebpf.program_mut(program)?.try_into().ok()
    }

    /// Marks `tgid` (and, when the role is decided by it, its `cgroup`)
    /// for the kernel's check at TLS writes; `None` unmarks the process.
    pub fn enforce(&mut self, tgid: u32, cgroup: Option<u64>, on: bool) {
        if on {
            let _ = self
                .enforce_tgid
                .insert(tgid, monitor_common::PREVENT_KILL, 0);
            if let Some(c) = cgroup {
                let _ = self
                    .enforce_cgroup
                    .insert(c, monitor_common::PREVENT_KILL, 0);
            }
        } else {
            let _ = self.enforce_tgid.remove(&tgid);
        }
    }

    /// Unmarks every process and cgroup (the policy was reloaded; they are
    /// marked again as their roles are resolved).
    pub fn enforce_none(&mut self) {
        let tgids: Vec<u32> = self.enforce_tgid.keys().filter_map(Result::ok).collect();
        for t in tgids {
            let _ = self.enforce_tgid.remove(&t);
        }
        let cgroups: Vec<u64> = self.enforce_cgroup.keys().filter_map(Result::ok).collect();
        for c in cgroups {
            let _ = self.enforce_cgroup.remove(&c);
        }
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
        let mut changed = !stale.is_empty();
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
            if self.class_dirs.get(k, 0).ok() == Some(*mark) {
                continue;
            }
            changed = true;
            self.class_dirs
                .insert(k, mark, 0)
                .map_err(|e| map_err("CLASS_DIRS", e))?;
        }
        // Cached cut paths carry the old directories' marks.
        if changed {
            self.forget_paths()?;
        }
        Ok(())
    }

    /// One `COUNTER_*` count, summed over the CPUs (0 when unreadable).
    fn counter(&self, index: u32) -> u64 {
        self.counters
            .get(&index, 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }

    /// Has the kernel send the repeat counts it holds (`repeats_flush`):
    /// one record per window, with the opens counted since the last call.
    /// Walking the windows costs about a millisecond, so it is done only
    /// when the kernel counted something since the last walk, when `force`
    /// (at shutdown), or once a second (to remove idle windows).
    pub fn flush_repeats(&mut self, force: bool) {
        let counted = self.counter(monitor_common::COUNTER_REPEATS_COUNTED);
        let idle_walk = self.last_flush.elapsed() >= Duration::from_secs(1);
        if force || counted != self.counted_at_flush || idle_walk {
            monitor_flush_repeats();
            self.counted_at_flush = counted;
            self.last_flush = std::time::Instant::now();
        }
    }

    /// Makes the kernel's path cache walk every path again: for when the
    /// daemon forgets the paths it learnt by id, or their marks change.
    /// Only the daemon writes its generation, so a plain update is enough.
    pub fn forget_paths(&mut self) -> Result<(), SensorError> {
        let index = monitor_common::PATH_GEN_DAEMON;
        let gen = self.path_gen.get(&index, 0).unwrap_or(0);
        self.path_gen
            .set(index, gen.wrapping_add(1), 0)
            .map_err(|e| map_err("PATH_GEN", e))
    }

    /// The tracepoints the sensor is attached to.
    pub fn attached(&self) -> &[String] {
        &self.attached
    }

    /// The binaries and libraries hooked for TLS, as `PATH (flavour)`.
    pub fn tls_attached(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tls
            .files
            .values()
            .filter(|f| !f.links.is_empty())
            .map(|f| {
                let names: Vec<&str> = f.flavours.iter().map(|x| x.name()).collect();
                format!("{} ({})", f.shown, names.join(", "))
            })
            .collect();
        out.sort();
        out.dedup();
        out
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
    pub fn drain(&mut self, max: usize, f: impl FnMut(&[u8])) -> usize {
        self.drain_bytes(max, usize::MAX, f).0
    }

    /// As [`Sensor::drain`], stopping also once records of `max_bytes` in
    /// all were handed over; returns how many, and their bytes.
    pub fn drain_bytes(
        &mut self,
        max: usize,
        max_bytes: usize,
        mut f: impl FnMut(&[u8]),
    ) -> (usize, usize) {
        let (mut n, mut bytes) = (0, 0);
        while n < max && bytes < max_bytes {
            let Some(item) = self.ring.next() else { break };
            f(&item);
            n += 1;
            bytes += item.len();
            self.drained_bytes += (item.len() as u64 + RING_HEADER).next_multiple_of(8);
        }
        self.drained += n as u64;
        (n, bytes)
    }

    /// Whether the reader is behind: the batch just taken (`taken` bytes)
    /// and the records still waiting in the ring buffer (those the kernel
    /// sent and were not taken yet, at the mean room of those taken) fill
    /// more than seven eighths of it. (The last eighth holds a few
    /// batches' worth of a flood while the reader catches up.) Costs a map
    /// read.
    pub fn behind(&self, taken: usize) -> bool {
        (taken as u64).saturating_add(self.waiting_bytes()) > self.ring_bytes / 8 * 7
    }

    /// The room the records still waiting in the ring buffer take, as
    /// estimated from the kernel's count of records sent against those
    /// taken, at the mean room of those taken. Costs a map read.
    pub fn waiting_bytes(&self) -> u64 {
        let waiting = self.counter(COUNTER_EMITTED).saturating_sub(self.drained);
        let mean = self.drained_bytes / self.drained.max(1);
        waiting.saturating_mul(mean)
    }

    /// The ring buffer's size in bytes.
    pub fn ring_bytes(&self) -> u64 {
        self.ring_bytes
    }

    /// The kernel's counters, summed over CPUs.
    pub fn kernel_counters(&self) -> KernelCounters {
        let read = |index: u32| self.counter(index);
        KernelCounters {
            emitted: read(COUNTER_EMITTED),
            ringbuf_full: read(COUNTER_RINGBUF_FULL),
            truncated: read(COUNTER_TRUNCATED),
            args_missing: read(COUNTER_ARGS_MISSING),
            payload_truncated: read(monitor_common::COUNTER_PAYLOAD_TRUNCATED),
            mark_unresolved: read(monitor_common::COUNTER_MARK_UNRESOLVED),
            prevented: read(monitor_common::COUNTER_PREVENTED),
            path_cached: read(monitor_common::COUNTER_PATH_CACHED),
            repeats_counted: read(monitor_common::COUNTER_REPEATS_COUNTED),
            repeats_uncounted: read(monitor_common::COUNTER_REPEATS_UNCOUNTED),
        }
    }
}

/// Bytes of the kernel's header before each ring buffer record
/// (`BPF_RINGBUF_HDR_SZ`).
const RING_HEADER: u64 = 8;

/// Calls of [`monitor_flush_repeats`].
static FLUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The function the kernel's `repeats_flush` is attached to: calling it
/// collects the repeat counts. It must stay a real call.
#[no_mangle]
#[inline(never)]
pub extern "C" fn monitor_flush_repeats() {
    std::hint::black_box(FLUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
}

/// The offset in its file of `addr`, an address in this process's own
/// executable code (from `/proc/self/maps`).
fn own_offset(addr: usize) -> Result<u64, SensorError> {
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| SensorError::Attach {
        program: "repeats_flush".to_owned(),
        category: "/proc/self/maps".to_owned(),
        name: monitor_common::probes::FLUSH_REPEATS.to_owned(),
        source: Box::new(aya::programs::ProgramError::IOError(e)),
    })?;
    let found = maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (start, end) = f.next()?.split_once('-')?;
        let (perms, offset) = (f.next()?, f.next()?);
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        let offset = u64::from_str_radix(offset, 16).ok()?;
        (perms.contains('x') && (start..end).contains(&addr))
            .then(|| (addr - start) as u64 + offset)
    });
    found.ok_or_else(|| SensorError::Attach {
        program: "repeats_flush".to_owned(),
        category: "/proc/self/exe".to_owned(),
        name: monitor_common::probes::FLUSH_REPEATS.to_owned(),
        source: Box::new(aya::programs::ProgramError::IOError(std::io::Error::other(
            "not in an executable mapping",
        ))),
    })
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

/// Loads a uprobe program (attached later, per hooked file).
fn load_uprobe(ebpf: &mut Ebpf, program: &str) -> Result<(), SensorError> {
    let err = |source: aya::programs::ProgramError| SensorError::Attach {
        program: program.to_owned(),
        category: "uprobe".to_owned(),
        name: String::new(),
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
    Ok(())
}

fn attach_uprobe(
    ebpf: &mut Ebpf,
    program: &'static str,
    symbol: &str,
    offset: u64,
    file: &Path,
) -> Result<aya::programs::uprobe::UProbeLinkId, SensorError> {
    let err = |source: aya::programs::ProgramError| SensorError::Attach {
        program: program.to_owned(),
        category: file.display().to_string(),
        name: symbol.to_owned(),
        source: Box::new(source),
    };
    load_uprobe(ebpf, program)?;
    let prog: &mut aya::programs::UProbe = ebpf
        .program_mut(program)
        .ok_or_else(|| err(aya::programs::ProgramError::UnexpectedProgramType))?
        .try_into()
        .map_err(err)?;
    prog.attach(
        aya::programs::uprobe::UProbeAttachLocation::AbsoluteOffset(offset),
        file,
        aya::programs::uprobe::UProbeScope::AllProcesses,
    )
    .map_err(err)
}

/// Every process id in /proc.
fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// One file looked at for TLS: its probes' links (none when it carries no
/// TLS the sensor reads).
#[derive(Default)]
struct HookedFile {
    shown: String,
    flavours: Vec<monitor_common::probes::TlsFlavour>,
    links: Vec<(&'static str, aya::programs::uprobe::UProbeLinkId)>,
}

/// What TLS discovery has looked at and hooked.
#[derive(Default)]
struct TlsHooks {
    discover: bool,
    files: std::collections::HashMap<tls::FileId, HookedFile>,
    looked: std::collections::HashSet<u32>,
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

    /// The syscall numbers the exit programs tell their calls apart by are
    /// this machine's, and each call is attached at its exit alone.
    #[test]
    fn the_calls_handled_at_exit_have_this_machines_syscall_numbers() {
        use monitor_common::syscalls::nr;
        let calls = [
            ("open", nr::OPEN, libc::SYS_open),
            ("openat", nr::OPENAT, libc::SYS_openat),
            ("openat2", nr::OPENAT2, libc::SYS_openat2),
            ("unlink", nr::UNLINK, libc::SYS_unlink),
            ("unlinkat", nr::UNLINKAT, libc::SYS_unlinkat),
            ("rename", nr::RENAME, libc::SYS_rename),
            ("renameat", nr::RENAMEAT, libc::SYS_renameat),
            ("renameat2", nr::RENAMEAT2, libc::SYS_renameat2),
            ("truncate", nr::TRUNCATE, libc::SYS_truncate),
            ("ftruncate", nr::FTRUNCATE, libc::SYS_ftruncate),
            ("connect", nr::CONNECT, libc::SYS_connect),
            ("accept", nr::ACCEPT, libc::SYS_accept),
            ("accept4", nr::ACCEPT4, libc::SYS_accept4),
            ("sendfile64", nr::SENDFILE, libc::SYS_sendfile),
            ("splice", nr::SPLICE, libc::SYS_splice),
            ("socket", nr::SOCKET, libc::SYS_socket),
            ("write", nr::WRITE, libc::SYS_write),
            ("writev", nr::WRITEV, libc::SYS_writev),
            ("sendto", nr::SENDTO, libc::SYS_sendto),
            ("sendmsg", nr::SENDMSG, libc::SYS_sendmsg),
            ("sendmmsg", nr::SENDMMSG, libc::SYS_sendmmsg),
            ("read", nr::READ, libc::SYS_read),
            ("readv", nr::READV, libc::SYS_readv),
            ("recvfrom", nr::RECVFROM, libc::SYS_recvfrom),
            ("recvmsg", nr::RECVMSG, libc::SYS_recvmsg),
        ];
        for (name, ours, theirs) in calls {
            assert_eq!(i64::from(ours), theirs, "{name}");
        }
        let tracepoint = |p: &Probe| match p.hook {
            Hook::Tracepoint { name, .. } => Some(name),
            _ => None,
        };
        let at_exit: BTreeSet<&str> = PROBES
            .iter()
            .filter(|p| p.program.starts_with("sys_exit"))
            .filter_map(|p| tracepoint(p)?.strip_prefix("sys_exit_"))
            .collect();
        let named: BTreeSet<&str> = calls.iter().map(|c| c.0).collect();
        assert_eq!(at_exit, named);
        // None of them has a program at its entry but the path cache's
        // invalidation (at a rename's entry and exit).
        for p in PROBES.iter().filter(|p| p.program != "path_moved") {
            if let Some(call) = tracepoint(p).and_then(|n| n.strip_prefix("sys_enter_")) {
                assert!(!named.contains(call), "{p:?}");
            }
        }
    }
}
