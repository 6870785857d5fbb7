//! The maps and globals the programs share. (An enforcement program's
//! per-process map, filled by userspace, belongs here too.)

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use monitor_common::{
    ClassDirKey, EventBody, EventHeader, KernelOffsets, PayloadEvent, RawEvent, SensorConfig,
    SockInfo, StrRef, COUNTER_COUNT, MAX_CACHED_PATHS, MAX_CLASS_DIRS, MAX_REPEAT_WINDOWS,
    MAX_STRS,
};

/// Kernel struct offsets, set by the daemon at load time.
#[no_mangle]
pub(crate) static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

/// Daemon settings, set at load time.
#[no_mangle]
pub(crate) static CONFIG: SensorConfig = unsafe { core::mem::zeroed() };

/// Records for the daemon. Its size is set by the daemon at load time.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 24, 0);

/// One record under construction per CPU.
#[map]
pub(crate) static SCRATCH: PerCpuArray<RawEvent> = PerCpuArray::with_max_entries(1, 0);

/// Classified directories by device and inode, with their marks: filled by
/// the daemon from the class globs, read only to classify a cut path.
#[map]
pub(crate) static CLASS_DIRS: HashMap<ClassDirKey, u32> =
    HashMap::with_max_entries(MAX_CLASS_DIRS, 0);

/// Sockets by `(tgid << 32) | fd`: payload capture looks here first, so
/// writes to files cost one lookup.
#[map]
pub(crate) static SOCKETS: LruHashMap<u64, SockInfo> = LruHashMap::with_max_entries(65536, 0);

/// Arguments of an `SSL_write` in progress, by thread. While present, the
/// thread's socket writes are ciphertext: they teach `SSL_FD` and are not captured.
#[map]
pub(crate) static SSL_ARGS: LruHashMap<u64, SslArgs> = LruHashMap::with_max_entries(16384, 0);

/// The socket fd behind an `SSL*`, learnt from the ciphertext write.
#[map]
pub(crate) static SSL_FD: LruHashMap<u64, i32> = LruHashMap::with_max_entries(65536, 0);

/// A TLS session whose socket is not known yet, by thread: set when the
/// thread enters the library's handshake, or a write whose socket was not
/// seen. The thread's next TLS record written to a socket names the socket
/// (libraries with memory BIOs, such as Node's, write outside their calls).
#[map]
pub(crate) static SSL_PENDING: LruHashMap<u64, SslPending> = LruHashMap::with_max_entries(16384, 0);

/// Pipes a file was spliced into, by pipe id (the pipe's dentry, shared by
/// both ends): splicing out of one to a socket is a transfer of that file.
#[map]
pub(crate) static PIPE_FED: LruHashMap<u64, u8> = LruHashMap::with_max_entries(4096, 0);

/// Processes (by tgid) of roles that enforce: their TLS writes are
/// checked for a card number before encryption (`prevent.rs`). Filled by
/// the daemon as roles are resolved; the value is the action.
#[map]
pub(crate) static ENFORCE_TGID: HashMap<u32, u32> = HashMap::with_max_entries(65536, 0);

/// Cgroups whose every process enforces (roles decided by cgroup or unit):
/// covered from a process's first instruction.
#[map]
pub(crate) static ENFORCE_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(4096, 0);

/// One payload record under construction per CPU (too large for a per-CPU
/// map); indexed by CPU id, sized by the daemon to the number of CPUs.
#[map]
pub(crate) static PAYLOAD_SCRATCH: Array<PayloadEvent> = Array::with_max_entries(1, 0);

/// The path cache: the id under which the path of `(dentry, mount)` seen
/// from a root was sent to the daemon, and the generations it was resolved
/// under (`paths.rs`).
#[map]
pub(crate) static PATH_IDS: LruHashMap<PathKey, PathSlot> =
    LruHashMap::with_max_entries(MAX_CACHED_PATHS, 0);

/// The path cache's generations: `PATH_GEN_KERNEL`, bumped here whenever a
/// path may have changed its spelling, and `PATH_GEN_DAEMON`, bumped by the
/// daemon.
#[map]
pub(crate) static PATH_GEN: Array<u64> = Array::with_max_entries(2, 0);

/// The last path id handed out on each CPU.
#[map]
pub(crate) static PATH_NEXT: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Open repeat windows (`repeats.rs`). Not an LRU map: a window holding a
/// count is never evicted; allocated as used (and freed after readers are
/// done, so a program holding a removed window writes into no other).
#[map]
pub(crate) static REPEATS: HashMap<RepeatKey, RepeatWindow> =
    HashMap::with_max_entries(MAX_REPEAT_WINDOWS, BPF_F_NO_PREALLOC);

/// Per CPU: a window under construction (0) and a record of counts (1).
#[map]
pub(crate) static REPEAT_SCRATCH: PerCpuArray<RepeatWindow> = PerCpuArray::with_max_entries(2, 0);

/// `COUNTER_*` counts, per CPU.
#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

pub(crate) const AT_FDCWD: i32 = -100;
pub(crate) const BPF_F_NO_PREALLOC: u32 = 1;
pub(crate) const BPF_RB_NO_WAKEUP: u64 = 1;
pub(crate) const BPF_RB_FORCE_WAKEUP: u64 = 2;
pub(crate) const BPF_RB_AVAIL_DATA: u64 = 0;
/// Pending bytes at which a record wakes the reader.
pub(crate) const WAKEUP_BYTES: u64 = 64 * 1024;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
pub(crate) const CLONE_THREAD: u64 = 0x0001_0000;

#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct SslArgs {
    pub(crate) ssl: u64,
    pub(crate) buf: u64,
    pub(crate) written: u64,
    pub(crate) ex: u64,
}

#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct SslPending {
    pub(crate) ssl: u64,
    /// `bpf_ktime_get_ns` when it was set.
    pub(crate) at: u64,
}

/// A file as the path walk sees it: its dentry and mount, and the root the
/// walk stops at (a chrooted process spells the same file differently);
/// and its inode with the inode's generation, so that a dentry and an inode
/// freed by an unlink and reused for another file make another key.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct PathKey {
    pub(crate) dentry: u64,
    pub(crate) mnt: u64,
    pub(crate) root_dentry: u64,
    pub(crate) root_mnt: u64,
    pub(crate) inode: u64,
    pub(crate) generation: u64,
}

/// What the path cache keeps of a walk.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct PathSlot {
    /// The id the path was sent under.
    pub(crate) id: u64,
    /// `PATH_GEN` when the walk began.
    pub(crate) kernel_gen: u64,
    pub(crate) daemon_gen: u64,
    /// The walk's class mark (cut paths only).
    pub(crate) mark: u32,
    /// 1 when the path was cut short.
    pub(crate) cut: u32,
}

/// A repeat window's key: the path (by id), the open flags, the process,
/// and the CPU whose programs alone raise its count.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct RepeatKey {
    pub(crate) path_id: u64,
    pub(crate) flags: u64,
    pub(crate) tgid: u32,
    pub(crate) cpu: u32,
}

/// A repeat window: the record that opened it (laid out as a record's
/// fixed part, so a record of its count is sent from it), then its times
/// and counts.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct RepeatWindow {
    pub(crate) header: EventHeader,
    pub(crate) body: EventBody,
    pub(crate) strs: [StrRef; MAX_STRS],
    /// When its first open was sent.
    pub(crate) opened_ns: u64,
    /// The first open counted since the last collection.
    pub(crate) since_ns: u64,
    /// The last open counted.
    pub(crate) last_ns: u64,
    /// Opens counted (only ever raised, on the window's CPU).
    pub(crate) count: u64,
    /// Of `count`, how many were sent (written by the flush only).
    pub(crate) reported: u64,
}
