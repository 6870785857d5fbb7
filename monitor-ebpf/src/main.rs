//! The monitor's kernel programs.
//!
//! They capture and filter for volume only; every decision is the daemon's.
//!
//! - `sys_enter_*` programs stash a syscall's arguments by thread id;
//!   the one `sys_exit` program, attached to every matching exit
//!   tracepoint, reads the result and builds the record. Reading user
//!   memory at exit is deliberate: the kernel has just faulted it in.
//! - `sched_process_exec`, `task_newtask` and `sched_process_exit` keep the
//!   daemon's process table current.
//! - Paths are resolved here, from the dentry and mount the kernel holds,
//!   so a process that has already exited is still attributed correctly.
//!   Struct offsets come from the kernel's BTF via the `OFFSETS` global.
//! - Records are built in a per-CPU scratch slot and only the used bytes
//!   are copied to the ring buffer. Every lost record is counted.
#![no_std]
#![no_main]

use core::ptr::{addr_of, null};

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        generated as raw,
    },
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};
use monitor_common::{
    EventHeader, EventKind, ExecBody, ExitBody, FileBody, FileOp, ForkBody, KernelOffsets, NetBody,
    NetOp, PayloadBody, PayloadEvent, PayloadOp, RawEvent, SensorConfig, SockInfo, StrKind, StrRef,
    ARGV_READ, COUNTER_ARGS_MISSING, COUNTER_COUNT, COUNTER_EMITTED, COUNTER_PAYLOAD_TRUNCATED,
    COUNTER_RINGBUF_FULL, COUNTER_TRUNCATED, DATA_CAP, DATA_HALF, FLAG_TRUNCATED, MAX_COMPONENTS,
    MAX_IOVECS, MAX_STRS, NAME_READ, PAYLOAD_FD_UNKNOWN, PAYLOAD_FIXED_LEN, PAYLOAD_INBOUND,
    PAYLOAD_MAX, PAYLOAD_TLS, PAYLOAD_TRUNCATED, RAW_EVENT_FIXED_LEN,
};

/// Kernel struct offsets, set by the daemon at load time.
#[no_mangle]
static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

/// Daemon settings, set at load time.
#[no_mangle]
static CONFIG: SensorConfig = unsafe { core::mem::zeroed() };

/// Records for the daemon. Its size is set by the daemon at load time.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 24, 0);

/// One record under construction per CPU.
#[map]
static SCRATCH: PerCpuArray<RawEvent> = PerCpuArray::with_max_entries(1, 0);

/// Syscall arguments between entry and exit, by thread.
#[map]
static ARGS: LruHashMap<u64, SyscallArgs> = LruHashMap::with_max_entries(16384, 0);

/// Sockets by `(tgid << 32) | fd`: payload capture looks here first, so
/// writes to files cost one lookup.
#[map]
static SOCKETS: LruHashMap<u64, SockInfo> = LruHashMap::with_max_entries(65536, 0);

/// Arguments of an `SSL_write` in progress, by thread. While present, the
/// thread's socket writes are ciphertext: they teach `SSL_FD` and are not captured.
#[map]
static SSL_ARGS: LruHashMap<u64, SslArgs> = LruHashMap::with_max_entries(16384, 0);

/// The socket fd behind an `SSL*`, learnt from the ciphertext write.
#[map]
static SSL_FD: LruHashMap<u64, i32> = LruHashMap::with_max_entries(65536, 0);

/// One payload record under construction per CPU (too large for a per-CPU
/// map); indexed by CPU id, sized by the daemon to the number of CPUs.
#[map]
static PAYLOAD_SCRATCH: Array<PayloadEvent> = Array::with_max_entries(1, 0);

/// `COUNTER_*` counts, per CPU.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

const AT_FDCWD: i32 = -100;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
/// Pending bytes at which a record wakes the reader.
const WAKEUP_BYTES: u64 = 64 * 1024;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const CLONE_THREAD: u64 = 0x0001_0000;

/// Which syscall a stash belongs to.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Call {
    Open = 1,
    Openat,
    Openat2,
    Unlink,
    Unlinkat,
    Rename,
    Renameat,
    Renameat2,
    Truncate,
    Ftruncate,
    Connect,
    Accept,
    Socket,
    Write,
    Writev,
    Sendto,
    Sendmsg,
    Read,
    Readv,
    Recvfrom,
    Recvmsg,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct SslArgs {
    ssl: u64,
    buf: u64,
    written: u64,
    ex: u64,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct SyscallArgs {
    call: u32,
    _pad: u32,
    args: [u64; 6],
}

/// Write position in the data area of the record under construction.
struct Cursor {
    off: usize,
}

/// The task's root directory: path walks stop there.
struct Root {
    mnt: *const u8,
    dentry: *const u8,
}

macro_rules! offset {
    ($field:ident) => {
        // SAFETY: reading a plain integer global; volatile so the loader's value is used.
        unsafe { core::ptr::read_volatile(addr_of!(OFFSETS.$field)) as usize }
    };
}

fn self_tgid() -> u32 {
    // SAFETY: as in `offset!`.
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.self_tgid)) }
}

fn count(index: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

/// Reads a `T` at `base + off` in kernel memory; zero on failure.
#[inline(always)]
fn kread<T: Copy + Default>(base: *const u8, off: usize) -> T {
    if base.is_null() {
        return T::default();
    }
    // SAFETY: bpf_probe_read_kernel never faults; a bad address yields an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off) as *const T) }.unwrap_or_default()
}

#[inline(always)]
fn kptr(base: *const u8, off: usize) -> *const u8 {
    kread::<usize>(base, off) as *const u8
}

/// A `sys_enter_*` program that hands its context to `$handler`.
macro_rules! enter_probe {
    ($name:ident, $call:expr, $nargs:expr) => {
        enter_probe!($name, $call, $nargs, stash_args);
    };
    ($name:ident, $call:expr, $nargs:expr, $handler:ident) => {
        #[tracepoint]
        pub fn $name(ctx: TracePointContext) -> u32 {
            $handler(&ctx, $call, $nargs);
            0
        }
    };
}

enter_probe!(sys_enter_open, Call::Open, 3);
enter_probe!(sys_enter_openat, Call::Openat, 4);
enter_probe!(sys_enter_openat2, Call::Openat2, 3);
enter_probe!(sys_enter_unlink, Call::Unlink, 1);
enter_probe!(sys_enter_unlinkat, Call::Unlinkat, 3);
enter_probe!(sys_enter_rename, Call::Rename, 2);
enter_probe!(sys_enter_renameat, Call::Renameat, 4);
enter_probe!(sys_enter_renameat2, Call::Renameat2, 5);
enter_probe!(sys_enter_truncate, Call::Truncate, 2);
enter_probe!(sys_enter_ftruncate, Call::Ftruncate, 2);
enter_probe!(sys_enter_connect, Call::Connect, 3);
enter_probe!(sys_enter_accept, Call::Accept, 3);
enter_probe!(sys_enter_accept4, Call::Accept, 3);

/// Syscall tracepoint records hold the arguments as 8-byte slots from offset 16.
const SYSCALL_ARGS_OFFSET: usize = 16;

#[inline(always)]
fn stash_args(ctx: &TracePointContext, call: Call, nargs: usize) {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == self_tgid() {
        return;
    }
    let mut stash = SyscallArgs {
        call: call as u32,
        _pad: 0,
        args: [0; 6],
    };
    let mut i = 0;
    while i < nargs && i < 6 {
        // SAFETY: the offset is inside the tracepoint record for `nargs` arguments.
        stash.args[i] = unsafe { ctx.read_at::<u64>(SYSCALL_ARGS_OFFSET + 8 * i) }.unwrap_or(0);
        i += 1;
    }
    let _ = ARGS.insert(&id, &stash, 0);
}

/// Attached to the exit tracepoint of every syscall that has an `enter_probe!`.
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == self_tgid() {
        return 0;
    }
    let stash = match ARGS.get_ptr(&id) {
        // SAFETY: the pointer is valid until the map entry is removed below.
        Some(p) => unsafe { *p },
        None => {
            count(COUNTER_ARGS_MISSING);
            return 0;
        }
    };
    let _ = ARGS.remove(&id);
    // SAFETY: `ret` sits at offset 16 in every sys_exit record.
    let ret = unsafe { ctx.read_at::<i64>(SYSCALL_ARGS_OFFSET) }.unwrap_or(0);
    match stash.call {
        c if c == Call::Connect as u32 => on_net_exit(&stash, ret, NetOp::Connect),
        c if c == Call::Accept as u32 => on_net_exit(&stash, ret, NetOp::Accept),
        _ => on_file_exit(&stash, ret),
    }
    0
}

/// Fills the fields every record has, for the current task.
#[inline(always)]
fn fill_header(h: &mut EventHeader, task: *const u8, kind: EventKind) {
    let id = bpf_get_current_pid_tgid();
    let ug = bpf_get_current_uid_gid();
    h.kind = kind as u32;
    h.flags = 0;
    // SAFETY: helpers without preconditions.
    h.ktime_ns = unsafe { bpf_ktime_get_ns() };
    h.pid = id as u32;
    h.tgid = (id >> 32) as u32;
    let parent = kptr(task, offset!(task_real_parent));
    h.ppid = kread::<u32>(parent, offset!(task_tgid));
    h.uid = ug as u32;
    h.gid = (ug >> 32) as u32;
    h._pad = 0;
    // SAFETY: as above.
    h.cgroup_id = unsafe { raw::bpf_get_current_cgroup_id() };
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
}

/// The current task.
#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// The per-CPU record, headed for `kind`.
#[inline(always)]
fn begin(kind: EventKind) -> Option<(&'static mut RawEvent, *const u8)> {
    let ev = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot; programs do not nest on one CPU for these hooks.
    let ev = unsafe { &mut *ev };
    let task = current_task();
    fill_header(&mut ev.header, task, kind);
    let mut i = 0;
    while i < MAX_STRS {
        ev.strs[i] = StrRef {
            off: 0,
            len: 0,
            kind: StrKind::None as u16,
            _pad: 0,
        };
        i += 1;
    }
    Some((ev, task))
}

/// Sends the used part of `ev` to the ring buffer.
#[inline(always)]
fn submit(ev: &mut RawEvent, cur: &Cursor) {
    let mut used = cur.off;
    if used > DATA_CAP {
        used = DATA_CAP;
    }
    if ev.header.flags & FLAG_TRUNCATED != 0 {
        count(COUNTER_TRUNCATED);
    }
    // SAFETY: `RAW_EVENT_FIXED_LEN + used` is within the scratch slot.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            ev as *const RawEvent as *const u8,
            RAW_EVENT_FIXED_LEN + used,
        )
    };
    output(bytes);
}

/// Copies one record to the ring buffer, counting it as sent or lost.
#[inline(always)]
fn output(bytes: &[u8]) {
    match EVENTS.output::<[u8]>(bytes, wake_flags(bytes.len())) {
        Ok(()) => count(COUNTER_EMITTED),
        Err(_) => count(COUNTER_RINGBUF_FULL),
    }
}

/// Waking the reader costs more than building a record. Wake it only when
/// this record makes the pending data cross [`WAKEUP_BYTES`]: below that the
/// reader's short poll timeout collects it, above it the reader is already
/// busy draining (waking it per record then tripled the probe's cost).
#[inline(always)]
fn wake_flags(size: usize) -> u64 {
    let pending = EVENTS.query(BPF_RB_AVAIL_DATA);
    if pending < WAKEUP_BYTES && pending + size as u64 >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Where the next string goes, or `None` when the data area is full.
#[inline(always)]
fn slot(ev: &mut RawEvent, cur: &Cursor) -> Option<*mut u8> {
    if cur.off >= DATA_HALF {
        ev.header.flags |= FLAG_TRUNCATED;
        return None;
    }
    Some(ev.data.as_mut_ptr().wrapping_add(cur.off & (DATA_HALF - 1)))
}

/// Copies a NUL-terminated kernel string of at most `max` bytes; false if nothing was copied.
#[inline(always)]
fn push_kernel_str(ev: &mut RawEvent, cur: &mut Cursor, src: *const u8, max: u32) -> bool {
    let Some(dst) = slot(ev, cur) else {
        return false;
    };
    // SAFETY: `dst..dst + max` lies in the data area (see `DATA_CAP`).
    let n = unsafe { raw::bpf_probe_read_kernel_str(dst.cast(), max, src.cast()) };
    if n <= 0 {
        return false;
    }
    cur.off += n as usize;
    true
}

/// Copies a NUL-terminated user string into the data area.
#[inline(always)]
fn push_user_str(ev: &mut RawEvent, cur: &mut Cursor, src: u64) -> StrRef {
    let start = cur.off;
    let mut kind = StrKind::None;
    if let Some(dst) = slot(ev, cur) {
        // SAFETY: as in `push_kernel_str`.
        let n = unsafe { raw::bpf_probe_read_user_str(dst.cast(), DATA_HALF as u32, src as _) };
        if n > 0 {
            cur.off += n as usize;
            kind = StrKind::Raw;
            if n as usize == DATA_HALF {
                ev.header.flags |= FLAG_TRUNCATED;
            }
        }
    }
    str_ref(start, cur, kind)
}

#[inline(always)]
fn str_ref(start: usize, cur: &Cursor, kind: StrKind) -> StrRef {
    StrRef {
        off: start as u16,
        len: (cur.off - start) as u16,
        kind: kind as u16,
        _pad: 0,
    }
}

/// The task's root directory.
#[inline(always)]
fn task_root(task: *const u8) -> Root {
    let fs = kptr(task, offset!(task_fs));
    Root {
        mnt: kptr(fs, offset!(fs_root) + offset!(path_mnt)),
        dentry: kptr(fs, offset!(fs_root) + offset!(path_dentry)),
    }
}

/// State of one path walk, on the caller's stack, shared with [`walk_step`].
#[repr(C)]
struct Walk {
    vfsmnt: *const u8,
    dentry: *const u8,
    mount: *const u8,
    root_mnt: *const u8,
    root_dentry: *const u8,
    off: usize,
    complete: u64,
}

/// Writes the components of the path `(vfsmnt, dentry)`, leaf first, up to
/// the task's root, crossing mount points the way the kernel's `d_path` does.
///
/// The walk runs under `bpf_loop`, so the verifier checks one step rather
/// than every unrolled iteration.
#[inline(always)]
fn push_components(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    vfsmnt: *const u8,
    dentry: *const u8,
) -> StrRef {
    let start = cur.off;
    let mut walk = Walk {
        vfsmnt,
        dentry,
        mount: vfsmnt.wrapping_sub(offset!(mount_mnt)),
        root_mnt: root.mnt,
        root_dentry: root.dentry,
        off: cur.off,
        complete: 0,
    };
    // SAFETY: `walk_step` has the callback signature bpf_loop expects; `walk` outlives the call.
    unsafe {
        raw::bpf_loop(
            MAX_COMPONENTS,
            walk_step as *mut _,
            (&mut walk as *mut Walk).cast(),
            0,
        )
    };
    cur.off = walk.off;
    if walk.complete == 0 {
        ev.header.flags |= FLAG_TRUNCATED;
    }
    str_ref(start, cur, StrKind::Components)
}

/// One step of a path walk: 0 to go on, 1 to stop.
extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` passed to bpf_loop by `push_components`.
    let w = unsafe { &mut *(ctx as *mut Walk) };
    let Some(ev) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU slot, as in `begin`.
    let ev = unsafe { &mut *ev };
    if w.dentry.is_null() || w.vfsmnt.is_null() {
        return 1;
    }
    if w.dentry == w.root_dentry && w.vfsmnt == w.root_mnt {
        w.complete = 1;
        return 1;
    }
    let mnt_root = kptr(w.vfsmnt, offset!(vfsmount_mnt_root));
    if w.dentry == mnt_root {
        let parent_mount = kptr(w.mount, offset!(mount_mnt_parent));
        if parent_mount == w.mount || parent_mount.is_null() {
            w.complete = 1;
            return 1;
        }
        w.dentry = kptr(w.mount, offset!(mount_mnt_mountpoint));
        w.mount = parent_mount;
        w.vfsmnt = parent_mount.wrapping_add(offset!(mount_mnt));
        return 0;
    }
    let parent = kptr(w.dentry, offset!(dentry_d_parent));
    if parent == w.dentry {
        w.complete = 1;
        return 1;
    }
    let name = kptr(w.dentry, offset!(dentry_d_name_name));
    let mut cur = Cursor { off: w.off };
    if !push_kernel_str(ev, &mut cur, name, NAME_READ as u32) {
        return 1;
    }
    w.off = cur.off;
    w.dentry = parent;
    0
}

/// The `struct file` behind `fd` in the current task, or null.
#[inline(always)]
fn fd_file(task: *const u8, fd: i64) -> *const u8 {
    if fd < 0 {
        return null();
    }
    let files = kptr(task, offset!(task_files));
    let fdt = kptr(files, offset!(files_fdt));
    let max = kread::<u32>(fdt, offset!(fdt_max_fds));
    if fd as u64 >= max as u64 {
        return null();
    }
    let fds = kptr(fdt, offset!(fdt_fd));
    kptr(fds, (fd as usize) * 8)
}

/// Components of the file open at `fd`.
#[inline(always)]
fn push_fd_path(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    task: *const u8,
    fd: i64,
) -> StrRef {
    let file = fd_file(task, fd);
    let f_path = offset!(file_f_path);
    let mnt = kptr(file, f_path + offset!(path_mnt));
    let dentry = kptr(file, f_path + offset!(path_dentry));
    push_components(ev, cur, root, mnt, dentry)
}

/// Components of the directory a relative path is resolved against.
#[inline(always)]
fn push_dir_path(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    task: *const u8,
    dfd: i32,
) -> StrRef {
    if dfd == AT_FDCWD {
        let fs = kptr(task, offset!(task_fs));
        let mnt = kptr(fs, offset!(fs_pwd) + offset!(path_mnt));
        let dentry = kptr(fs, offset!(fs_pwd) + offset!(path_dentry));
        push_components(ev, cur, root, mnt, dentry)
    } else {
        push_fd_path(ev, cur, root, task, dfd as i64)
    }
}

/// A user path as passed, plus (when it is relative) the directory it is relative to.
#[inline(always)]
fn push_path_arg(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    task: *const u8,
    dfd: i32,
    user_path: u64,
) -> (StrRef, StrRef) {
    let raw = push_user_str(ev, cur, user_path);
    let first = ev.data[raw.off as usize & (DATA_HALF - 1)];
    let dir = if raw.kind == StrKind::Raw as u16 && first != b'/' {
        push_dir_path(ev, cur, root, task, dfd)
    } else {
        str_ref(cur.off, cur, StrKind::None)
    };
    (dir, raw)
}

#[inline(always)]
fn on_file_exit(a: &SyscallArgs, ret: i64) {
    let Some((ev, task)) = begin(EventKind::File) else {
        return;
    };
    let x = &a.args;
    // (op, dfd, path, dfd2, path2, flags, mode)
    let (op, dfd, path, dfd2, path2, mut flags, mut mode) = match a.call {
        c if c == Call::Open as u32 => (FileOp::Openat, AT_FDCWD, x[0], 0, 0, x[1], x[2]),
        c if c == Call::Openat as u32 => (FileOp::Openat, x[0] as i32, x[1], 0, 0, x[2], x[3]),
        c if c == Call::Openat2 as u32 => (FileOp::Openat2, x[0] as i32, x[1], 0, 0, 0, 0),
        c if c == Call::Unlink as u32 => (FileOp::Unlinkat, AT_FDCWD, x[0], 0, 0, 0, 0),
        c if c == Call::Unlinkat as u32 => (FileOp::Unlinkat, x[0] as i32, x[1], 0, 0, x[2], 0),
        c if c == Call::Rename as u32 => (FileOp::Renameat2, AT_FDCWD, x[0], AT_FDCWD, x[1], 0, 0),
        c if c == Call::Renameat as u32 => (
            FileOp::Renameat2,
            x[0] as i32,
            x[1],
            x[2] as i32,
            x[3],
            0,
            0,
        ),
        c if c == Call::Renameat2 as u32 => (
            FileOp::Renameat2,
            x[0] as i32,
            x[1],
            x[2] as i32,
            x[3],
            x[4],
            0,
        ),
        c if c == Call::Truncate as u32 => (FileOp::Truncate, AT_FDCWD, x[0], 0, 0, 0, x[1]),
        c if c == Call::Ftruncate as u32 => (FileOp::Ftruncate, x[0] as i32, 0, 0, 0, 0, x[1]),
        _ => return,
    };
    if a.call == Call::Openat2 as u32 {
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        // SAFETY: user memory read by helper; failure leaves zeros.
        let how = unsafe { bpf_probe_read_user(x[2] as *const [u64; 2]) }.unwrap_or([0, 0]);
        flags = how[0];
        mode = how[1];
    }
    ev.body.file = FileBody {
        op: op as u32,
        dfd,
        ret,
        flags,
        mode,
        dfd2,
        _pad: 0,
    };
    let root = task_root(task);
    let mut cur = Cursor { off: 0 };
    let opened = matches!(op, FileOp::Openat | FileOp::Openat2) && ret >= 0;
    if opened {
        // The file actually opened, symlinks resolved: the caller's spelling adds nothing.
        ev.strs[0] = push_fd_path(ev, &mut cur, &root, task, ret);
    } else if matches!(op, FileOp::Ftruncate) {
        ev.strs[0] = push_fd_path(ev, &mut cur, &root, task, dfd as i64);
    } else {
        let (d, p) = push_path_arg(ev, &mut cur, &root, task, dfd, path);
        ev.strs[0] = d;
        ev.strs[1] = p;
        if matches!(op, FileOp::Renameat2) {
            let (d, p) = push_path_arg(ev, &mut cur, &root, task, dfd2, path2);
            ev.strs[2] = d;
            ev.strs[3] = p;
        }
    }
    submit(ev, &cur);
}

#[inline(always)]
fn on_net_exit(a: &SyscallArgs, ret: i64, op: NetOp) {
    let addr_ptr = a.args[1];
    let accepted = matches!(op, NetOp::Accept) && ret >= 0;
    // The caller's sockaddr; an accept without one is answered from the socket itself.
    let (family, port, addr) = if addr_ptr != 0 {
        user_sockaddr(addr_ptr)
    } else if accepted {
        socket_peer(current_task(), ret)
    } else {
        return;
    };
    if family != AF_INET && family != AF_INET6 {
        return;
    }
    let Some((ev, _task)) = begin(EventKind::Net) else {
        return;
    };
    // SAFETY: helper without preconditions.
    let conn_id = unsafe { bpf_ktime_get_ns() };
    ev.body.net = NetBody {
        op: op as u32,
        fd: a.args[0] as i32,
        ret,
        family,
        port,
        _pad: 0,
        addr,
        conn_id,
    };
    let tgid = ev.header.tgid;
    submit(ev, &Cursor { off: 0 });
    // Remember the connection for payload capture: a connected (or connecting) fd, an accepted fd.
    let fd = match op {
        NetOp::Connect if ret == 0 || ret == -EINPROGRESS => a.args[0] as i64,
        NetOp::Accept if accepted => ret,
        _ => return,
    };
    let info = SockInfo {
        family,
        port,
        _pad: 0,
        addr,
        conn_id,
    };
    let _ = SOCKETS.insert(&sock_key(tgid, fd as i32), &info, 0);
}

/// (family, port, address) from a `sockaddr_in`/`sockaddr_in6` in user memory.
#[inline(always)]
fn user_sockaddr(ptr: u64) -> (u16, u16, [u8; 16]) {
    // sockaddr_in: family u16, port be16, addr [4]; sockaddr_in6: family, port, flowinfo u32, addr [16].
    // SAFETY (all reads): user memory read by helper; failures leave zeros.
    let family = unsafe { bpf_probe_read_user(ptr as *const u16) }.unwrap_or(0);
    let port = u16::from_be(unsafe { bpf_probe_read_user((ptr + 2) as *const u16) }.unwrap_or(0));
    let mut addr = [0u8; 16];
    if family == AF_INET {
        let v4 = unsafe { bpf_probe_read_user((ptr + 4) as *const [u8; 4]) }.unwrap_or([0; 4]);
        addr[..4].copy_from_slice(&v4);
    } else if family == AF_INET6 {
        addr = unsafe { bpf_probe_read_user((ptr + 8) as *const [u8; 16]) }.unwrap_or([0; 16]);
    }
    (family, port, addr)
}

/// (family, port, address) of the peer of the socket open at `fd`, read
/// from `file->private_data->sk->__sk_common`.
#[inline(always)]
fn socket_peer(task: *const u8, fd: i64) -> (u16, u16, [u8; 16]) {
    let socket = kptr(fd_file(task, fd), offset!(file_private_data));
    let sk = kptr(socket, offset!(socket_sk));
    let family = kread::<u16>(sk, offset!(sock_family));
    let port = u16::from_be(kread::<u16>(sk, offset!(sock_dport)));
    let mut addr = [0u8; 16];
    if family == AF_INET {
        addr[..4].copy_from_slice(&kread::<u32>(sk, offset!(sock_daddr)).to_ne_bytes());
    } else if family == AF_INET6 {
        let hi = kread::<u64>(sk, offset!(sock_v6_daddr));
        let lo = kread::<u64>(sk, offset!(sock_v6_daddr) + 8);
        addr[..8].copy_from_slice(&hi.to_ne_bytes());
        addr[8..].copy_from_slice(&lo.to_ne_bytes());
    }
    (family, port, addr)
}

const EINPROGRESS: i64 = 115;

#[inline(always)]
fn sock_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | (fd as u32 as u64)
}

enter_probe!(sys_enter_socket, Call::Socket, 1);

enter_probe!(sys_enter_write, Call::Write, 3, payload_enter);
enter_probe!(sys_enter_writev, Call::Writev, 3, payload_enter);
enter_probe!(sys_enter_sendto, Call::Sendto, 6, payload_enter);
enter_probe!(sys_enter_sendmsg, Call::Sendmsg, 2, payload_enter);
enter_probe!(sys_enter_read, Call::Read, 3, payload_enter);
enter_probe!(sys_enter_readv, Call::Readv, 3, payload_enter);
enter_probe!(sys_enter_recvfrom, Call::Recvfrom, 6, payload_enter);
enter_probe!(sys_enter_recvmsg, Call::Recvmsg, 2, payload_enter);

/// `close(fd)`: the socket is gone.
#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the fd argument of sys_enter_close.
    let fd = unsafe { ctx.read_at::<u64>(SYSCALL_ARGS_OFFSET) }.unwrap_or(0);
    let key = sock_key((id >> 32) as u32, fd as i32);
    // A lookup takes no lock; most closes are not of sockets.
    if SOCKETS.get_ptr(&key).is_some() {
        let _ = SOCKETS.remove(&key);
    }
    0
}

/// Exit of `socket` and the payload syscalls. Unlike `sys_exit`, a missing
/// stash is normal here (a write to a file was never stashed).
#[tracepoint]
pub fn sys_exit_payload(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let stash = match ARGS.get_ptr(&id) {
        // SAFETY: valid until removed below.
        Some(p) => unsafe { *p },
        None => return 0,
    };
    let _ = ARGS.remove(&id);
    // SAFETY: `ret` sits at offset 16 in every sys_exit record.
    let ret = unsafe { ctx.read_at::<i64>(SYSCALL_ARGS_OFFSET) }.unwrap_or(0);
    let tgid = (id >> 32) as u32;
    let x = &stash.args;
    if stash.call == Call::Socket as u32 {
        let family = x[0] as u16;
        if ret >= 0 && (family == AF_INET || family == AF_INET6) {
            let info = SockInfo {
                family,
                // SAFETY: helper without preconditions.
                conn_id: unsafe { bpf_ktime_get_ns() },
                ..SockInfo::default()
            };
            let _ = SOCKETS.insert(&sock_key(tgid, ret as i32), &info, 0);
        }
        return 0;
    }
    if ret <= 0 {
        return 0;
    }
    let fd = x[0] as i32;
    let Some(sock) = SOCKETS.get_ptr(&sock_key(tgid, fd)) else {
        return 0;
    };
    // SAFETY: map value pointer, copied out at once.
    let mut sock = unsafe { *sock };
    // An unconnected (UDP) socket names its destination per call.
    if stash.call == Call::Sendto as u32 && x[4] != 0 {
        let (family, port, addr) = user_sockaddr(x[4]);
        if family == AF_INET || family == AF_INET6 {
            sock.family = family;
            sock.port = port;
            sock.addr = addr;
        }
    }
    // struct msghdr { void *name; int namelen; struct iovec *iov; size_t iovlen; ... }
    let msg_iov = |msg: u64| {
        // SAFETY: user memory read by helper.
        let hdr = unsafe { bpf_probe_read_user((msg + 16) as *const [u64; 2]) }.unwrap_or([0, 0]);
        Source::Iov(hdr[0], hdr[1])
    };
    let (op, src, flags) = match stash.call {
        c if c == Call::Write as u32 => (PayloadOp::Write, Source::Buf(x[1]), 0),
        c if c == Call::Sendto as u32 => (PayloadOp::Sendto, Source::Buf(x[1]), 0),
        c if c == Call::Writev as u32 => (PayloadOp::Writev, Source::Iov(x[1], x[2]), 0),
        c if c == Call::Sendmsg as u32 => (PayloadOp::Sendmsg, msg_iov(x[1]), 0),
        c if c == Call::Read as u32 => (PayloadOp::Read, Source::Buf(x[1]), PAYLOAD_INBOUND),
        c if c == Call::Recvfrom as u32 => {
            (PayloadOp::Recvfrom, Source::Buf(x[1]), PAYLOAD_INBOUND)
        }
        c if c == Call::Readv as u32 => {
            (PayloadOp::Readv, Source::Iov(x[1], x[2]), PAYLOAD_INBOUND)
        }
        c if c == Call::Recvmsg as u32 => (PayloadOp::Recvmsg, msg_iov(x[1]), PAYLOAD_INBOUND),
        _ => return 0,
    };
    emit_payload(op, fd, ret, flags, sock, src);
    0
}

/// Where payload bytes are in user memory.
#[derive(Clone, Copy)]
enum Source {
    /// One buffer.
    Buf(u64),
    /// An iovec array and its length.
    Iov(u64, u64),
}

/// Stashes a payload syscall's arguments if `fd` is a socket; inside an
/// `SSL_write` it only learns which socket the `SSL*` writes to.
#[inline(always)]
fn payload_enter(ctx: &TracePointContext, call: Call, nargs: usize) {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == self_tgid() {
        return;
    }
    // SAFETY: the fd argument of every payload syscall.
    let fd = unsafe { ctx.read_at::<u64>(SYSCALL_ARGS_OFFSET) }.unwrap_or(0) as i32;
    if SOCKETS.get_ptr(&sock_key(tgid, fd)).is_none() {
        return;
    }
    if let Some(ssl) = SSL_ARGS.get_ptr(&id) {
        // SAFETY: map value pointer.
        let ssl = unsafe { (*ssl).ssl };
        let _ = SSL_FD.insert(&ssl, &fd, 0);
        return;
    }
    stash_args(ctx, call, nargs);
}

/// Copies up to `want` bytes described by `src` into the payload slot; returns how many.
#[inline(always)]
fn copy_payload(ev: &mut PayloadEvent, src: Source, want: usize) -> usize {
    match src {
        Source::Buf(buf) => {
            let mut n = core::hint::black_box(want);
            if n > PAYLOAD_MAX {
                n = PAYLOAD_MAX;
            }
            if n == 0 {
                return 0;
            }
            // SAFETY: `n <= PAYLOAD_MAX <= PAYLOAD_AREA` bytes into the data area.
            let r = unsafe {
                raw::bpf_probe_read_user(ev.data.as_mut_ptr().cast(), n as u32, buf as _)
            };
            if r == 0 {
                n
            } else {
                0
            }
        }
        Source::Iov(iov, count) => {
            let mut off = 0usize;
            let mut i = 0u32;
            while i < MAX_IOVECS && (i as u64) < count && off < want {
                // struct iovec { void *base; size_t len; }
                // SAFETY: user memory read by helper.
                let v = unsafe { bpf_probe_read_user((iov + 16 * i as u64) as *const [u64; 2]) }
                    .unwrap_or([0, 0]);
                i += 1;
                let mut take = core::hint::black_box(v[1] as usize);
                if take > want - off {
                    take = want - off;
                }
                if take > PAYLOAD_MAX {
                    take = PAYLOAD_MAX;
                }
                if take == 0 {
                    continue;
                }
                let at = off & (PAYLOAD_MAX - 1);
                // SAFETY: `at < PAYLOAD_MAX` and `take <= PAYLOAD_MAX`: inside the data area.
                let r = unsafe {
                    raw::bpf_probe_read_user(
                        ev.data.as_mut_ptr().wrapping_add(at).cast(),
                        take as u32,
                        v[0] as _,
                    )
                };
                if r != 0 {
                    break;
                }
                off += take;
            }
            off
        }
    }
}

/// Builds and sends one payload record.
#[inline(always)]
fn emit_payload(op: PayloadOp, fd: i32, size: i64, flags: u32, sock: SockInfo, src: Source) {
    // SAFETY: helper without preconditions.
    let cpu = unsafe { raw::bpf_get_smp_processor_id() };
    let Some(ev) = PAYLOAD_SCRATCH.get_ptr_mut(cpu) else {
        return;
    };
    // SAFETY: this CPU's slot.
    let ev = unsafe { &mut *ev };
    fill_header(&mut ev.header, current_task(), EventKind::Payload);
    // SAFETY: as in `offset!`.
    let limit = unsafe { core::ptr::read_volatile(addr_of!(CONFIG.payload_limit)) } as usize;
    let want = if (size as usize) < limit {
        size as usize
    } else {
        limit
    };
    let captured = copy_payload(ev, src, want);
    let mut flags = flags;
    if (captured as i64) < size {
        flags |= PAYLOAD_TRUNCATED;
        count(COUNTER_PAYLOAD_TRUNCATED);
    }
    ev.body = PayloadBody {
        op: op as u32,
        fd,
        size,
        captured: captured as u32,
        flags,
        sock,
    };
    let mut used = captured;
    if used > PAYLOAD_MAX {
        used = PAYLOAD_MAX;
    }
    // SAFETY: `PAYLOAD_FIXED_LEN + used` is within the slot.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            ev as *const PayloadEvent as *const u8,
            PAYLOAD_FIXED_LEN + used,
        )
    };
    output(bytes);
}

#[inline(always)]
fn ssl_enter(ctx: &ProbeContext, ex: bool) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == self_tgid() {
        return 0;
    }
    let args = SslArgs {
        ssl: ctx.arg::<u64>(0).unwrap_or(0),
        buf: ctx.arg::<u64>(1).unwrap_or(0),
        written: if ex {
            ctx.arg::<u64>(3).unwrap_or(0)
        } else {
            0
        },
        ex: ex as u64,
    };
    let _ = SSL_ARGS.insert(&id, &args, 0);
    0
}

/// `int SSL_write(SSL *ssl, const void *buf, int num)`.
#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, false)
}

/// `int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)`.
#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, true)
}

/// `int SSL_read(SSL *ssl, void *buf, int num)`.
#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, false)
}

/// `int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)`.
#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, true)
}

/// Return of `SSL_write` and `SSL_write_ex`: the plaintext that was accepted.
#[uretprobe]
pub fn ssl_write_ret(ctx: RetProbeContext) -> u32 {
    ssl_return(&ctx, PayloadOp::SslWrite, PAYLOAD_TLS)
}

/// Return of `SSL_read` and `SSL_read_ex`: the plaintext now in the caller's buffer.
#[uretprobe]
pub fn ssl_read_ret(ctx: RetProbeContext) -> u32 {
    ssl_return(&ctx, PayloadOp::SslRead, PAYLOAD_TLS | PAYLOAD_INBOUND)
}

#[inline(always)]
fn ssl_return(ctx: &RetProbeContext, op: PayloadOp, flags: u32) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let args = match SSL_ARGS.get_ptr(&id) {
        // SAFETY: valid until removed below.
        Some(p) => unsafe { *p },
        None => return 0,
    };
    let _ = SSL_ARGS.remove(&id);
    let ret = ctx.ret::<i64>();
    let size = if args.ex != 0 {
        if ret != 1 {
            return 0;
        }
        // SAFETY: user memory read by helper.
        unsafe { bpf_probe_read_user(args.written as *const u64) }.unwrap_or(0) as i64
    } else {
        ret as i32 as i64
    };
    if size <= 0 {
        return 0;
    }
    let tgid = (id >> 32) as u32;
    let (fd, sock, flags) = match SSL_FD.get_ptr(&args.ssl) {
        Some(fd) => {
            // SAFETY: map value pointer.
            let fd = unsafe { *fd };
            let sock = SOCKETS
                .get_ptr(&sock_key(tgid, fd))
                .map(|s| unsafe { *s })
                .unwrap_or_default();
            (fd, sock, flags)
        }
        None => (-1, SockInfo::default(), flags | PAYLOAD_FD_UNKNOWN),
    };
    emit_payload(op, fd, size, flags, sock, Source::Buf(args.buf));
    0
}

/// `sched_process_exec`: `__data_loc char[] filename` at 8, `old_pid` at 16.
#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some((ev, task)) = begin(EventKind::Exec) else {
        return 0;
    };
    if ev.header.tgid == self_tgid() {
        return 0;
    }
    // SAFETY: offsets from the tracepoint's format.
    let loc = unsafe { ctx.read_at::<u32>(8) }.unwrap_or(0);
    let old_pid = unsafe { ctx.read_at::<u32>(16) }.unwrap_or(0);
    ev.body.exec = ExecBody { old_pid, _pad: 0 };
    let root = task_root(task);
    let mut cur = Cursor { off: 0 };

    let mm = kptr(task, offset!(task_mm));
    let exe = kptr(mm, offset!(mm_exe_file));
    let f_path = offset!(file_f_path);
    let mnt = kptr(exe, f_path + offset!(path_mnt));
    let dentry = kptr(exe, f_path + offset!(path_dentry));
    ev.strs[0] = push_components(ev, &mut cur, &root, mnt, dentry);

    let start = cur.off;
    let filename = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    let kind = if push_kernel_str(ev, &mut cur, filename, NAME_READ as u32 * 4) {
        StrKind::Raw
    } else {
        StrKind::None
    };
    ev.strs[1] = str_ref(start, &cur, kind);

    let arg_start = kread::<u64>(mm, offset!(mm_arg_start));
    let arg_end = kread::<u64>(mm, offset!(mm_arg_end));
    let start = cur.off;
    let mut kind = StrKind::None;
    if arg_end > arg_start {
        let mut len = (arg_end - arg_start) as u32;
        if len > ARGV_READ as u32 {
            len = ARGV_READ as u32;
            ev.header.flags |= FLAG_TRUNCATED;
        }
        // The mask changes nothing (len <= ARGV_READ) but lets the verifier see the bound.
        // `black_box` stops LLVM from dropping the mask as redundant.
        let len = core::hint::black_box(len) & (2 * ARGV_READ as u32 - 1);
        if let Some(dst) = slot(ev, &cur) {
            // SAFETY: `len < 2 * ARGV_READ <= DATA_HALF`, so the write stays in the data area.
            let r = unsafe { raw::bpf_probe_read_user(dst.cast(), len, arg_start as _) };
            if r == 0 {
                cur.off += len as usize;
                kind = StrKind::List;
            }
        }
    }
    ev.strs[2] = str_ref(start, &cur, kind);
    submit(ev, &cur);
    0
}

use aya_ebpf::EbpfContext as _;

/// `task_newtask`: the new task's `pid` at 8, `clone_flags` at 32; the current task is the parent.
#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    // SAFETY: offsets from the tracepoint's format.
    let clone_flags = unsafe { ctx.read_at::<u64>(32) }.unwrap_or(0);
    if clone_flags & CLONE_THREAD != 0 {
        return 0;
    }
    let child_pid = unsafe { ctx.read_at::<u32>(8) }.unwrap_or(0);
    let Some((ev, _task)) = begin(EventKind::Fork) else {
        return 0;
    };
    if ev.header.tgid == self_tgid() {
        return 0;
    }
    ev.body.fork = ForkBody {
        child_pid,
        _pad: 0,
        clone_flags,
    };
    submit(ev, &Cursor { off: 0 });
    0
}

/// `sched_process_exit`: `group_dead` at 32; reported once per process.
#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: offset from the tracepoint's format.
    let group_dead = unsafe { ctx.read_at::<u8>(32) }.unwrap_or(1);
    if group_dead == 0 {
        return 0;
    }
    let Some((ev, task)) = begin(EventKind::Exit) else {
        return 0;
    };
    if ev.header.tgid == self_tgid() {
        return 0;
    }
    ev.body.exit = ExitBody {
        exit_code: kread::<u32>(task, offset!(task_exit_code)),
        _pad: 0,
    };
    submit(ev, &Cursor { off: 0 });
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
