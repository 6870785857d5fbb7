//! Paths resolved in the kernel: the dentry walk from a file or a
//! directory up to the task's root, crossing mount points like `d_path`,
//! under `bpf_loop`.

use aya_ebpf::helpers::generated as raw;
use core::ptr::null;
use monitor_common::{
    ClassDirKey, RawEvent, StrKind, StrRef, COUNTER_MARK_UNRESOLVED, DATA_HALF, FLAG_TRUNCATED,
    MARK_UNRESOLVED, MAX_COMPONENTS, MAX_MARK_WALK, NAME_READ, STR_CUT,
};

use crate::emit::{count, kptr, kread, push_kernel_str, push_user_str, str_ref, Cursor, Root};
use crate::maps::{
    PathKey, PathSlot, AT_FDCWD, CLASS_DIRS, PATH_GEN, PATH_IDS, PATH_NEXT, SCRATCH,
};
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use monitor_common::{COUNTER_PATH_CACHED, PATH_GEN_DAEMON, PATH_GEN_KERNEL};

/// The task's root directory.
#[inline(always)]
pub(crate) fn task_root(task: *const u8) -> Root {
    let fs = kptr(task, offset!(task_fs));
    let (mnt, dentry) = read_path(fs, offset!(fs_root));
    Root { mnt, dentry }
}

/// The `(mnt, dentry)` of the `struct path` at `base + off`: one read of
/// both where they are the two adjacent words they have always been.
#[inline(always)]
pub(crate) fn read_path(base: *const u8, off: usize) -> (*const u8, *const u8) {
    let (m, d) = (offset!(path_mnt), offset!(path_dentry));
    if m == 0 && d == 8 {
        let w = kread::<[usize; 2]>(base, off);
        return (w[0] as *const u8, w[1] as *const u8);
    }
    (kptr(base, off + m), kptr(base, off + d))
}

/// A position in a path walk: a dentry on a mount, and where the walk stops.
#[repr(C)]
pub(crate) struct Pos {
    pub(crate) vfsmnt: *const u8,
    pub(crate) dentry: *const u8,
    pub(crate) mount: *const u8,
    pub(crate) root_mnt: *const u8,
    pub(crate) root_dentry: *const u8,
}

impl Pos {
    #[inline(always)]
    fn new(root: &Root, vfsmnt: *const u8, dentry: *const u8) -> Self {
        Pos {
            vfsmnt,
            dentry,
            mount: vfsmnt.wrapping_sub(offset!(mount_mnt)),
            root_mnt: root.mnt,
            root_dentry: root.dentry,
        }
    }
}

/// What one step up a path found.
pub(crate) enum Climb {
    /// The walk is over: the task's root (or the top of the tree) was reached.
    Top,
    /// The walk stopped on a broken link (a null pointer).
    Broken,
    /// Moved from a mount's root to its mount point: no component.
    Mount,
    /// Moved from a dentry to its parent; the dentry's name is a component.
    Component(*const u8),
}

/// One step up from `p`, crossing mount points the way the kernel's `d_path` does.
#[inline(always)]
fn climb(p: &mut Pos) -> Climb {
    if p.dentry.is_null() || p.vfsmnt.is_null() {
        return Climb::Broken;
    }
    if p.dentry == p.root_dentry && p.vfsmnt == p.root_mnt {
        return Climb::Top;
    }
    let mnt_root = kptr(p.vfsmnt, offset!(vfsmount_mnt_root));
    if p.dentry == mnt_root {
        let parent_mount = kptr(p.mount, offset!(mount_mnt_parent));
        if parent_mount == p.mount || parent_mount.is_null() {
            return Climb::Top;
        }
        p.dentry = kptr(p.mount, offset!(mount_mnt_mountpoint));
        p.mount = parent_mount;
        p.vfsmnt = parent_mount.wrapping_add(offset!(mount_mnt));
        return Climb::Mount;
    }
    let parent = kptr(p.dentry, offset!(dentry_d_parent));
    if parent == p.dentry {
        return Climb::Top;
    }
    let name = kptr(p.dentry, offset!(dentry_d_name_name));
    p.dentry = parent;
    Climb::Component(name)
}

/// State of one path walk, on the caller's stack, shared with [`walk_step`].
#[repr(C)]
pub(crate) struct Walk {
    pub(crate) pos: Pos,
    pub(crate) off: usize,
    pub(crate) complete: u64,
}

/// Writes the components of the path `(vfsmnt, dentry)`, leaf first, up to
/// the task's root. When they do not all fit ([`MAX_COMPONENTS`] or the data
/// area), the string is marked cut ([`STR_CUT`]) and `mark` is set to the
/// nearest classified ancestor's mark ([`class_mark`]), so that a deep path
/// is classified by what it is under, not by the part of it that was kept.
///
/// The walk runs under `bpf_loop`, so the verifier checks one step rather
/// than every unrolled iteration.
#[inline(always)]
pub(crate) fn push_components(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    vfsmnt: *const u8,
    dentry: *const u8,
    mark: &mut u32,
) -> StrRef {
    let start = cur.off;
    let mut walk = Walk {
        pos: Pos::new(root, vfsmnt, dentry),
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
    let mut s = str_ref(start, cur, StrKind::Components);
    if walk.complete == 0 {
        ev.header.flags |= FLAG_TRUNCATED;
        s.flags = STR_CUT;
        *mark = class_mark(root, vfsmnt, dentry);
    }
    s
}

/// One step of a path walk: 0 to go on, 1 to stop.
pub(crate) extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `Walk` passed to bpf_loop by `push_components`.
    let w = unsafe { &mut *(ctx as *mut Walk) };
    let Some(ev) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU slot, as in `begin`.
    let ev = unsafe { &mut *ev };
    match climb(&mut w.pos) {
        Climb::Top => {
            w.complete = 1;
            1
        }
        Climb::Broken => 1,
        Climb::Mount => 0,
        Climb::Component(name) => {
            let mut cur = Cursor { off: w.off };
            if !push_kernel_str(ev, &mut cur, name, NAME_READ as u32) {
                return 1;
            }
            w.off = cur.off;
            0
        }
    }
}

/// State of a walk for a classified ancestor, shared with [`mark_step`].
#[repr(C)]
pub(crate) struct MarkWalk {
    pub(crate) pos: Pos,
    pub(crate) mark: u32,
    pub(crate) done: u32,
}

/// The mark of the nearest directory at or above `(vfsmnt, dentry)` that is
/// in [`CLASS_DIRS`], 0 when none is, or [`MARK_UNRESOLVED`] (counted) when
/// the root is not reached within [`MAX_MARK_WALK`] steps. Only cut paths
/// pay for this walk: whole paths are classified by their text.
#[inline(always)]
pub(crate) fn class_mark(root: &Root, vfsmnt: *const u8, dentry: *const u8) -> u32 {
    let mut walk = MarkWalk {
        pos: Pos::new(root, vfsmnt, dentry),
        mark: 0,
        done: 0,
    };
    // SAFETY: as in `push_components`.
    unsafe {
        raw::bpf_loop(
            MAX_MARK_WALK,
            mark_step as *mut _,
            (&mut walk as *mut MarkWalk).cast(),
            0,
        )
    };
    if walk.done == 0 {
        count(COUNTER_MARK_UNRESOLVED);
        return MARK_UNRESOLVED;
    }
    walk.mark
}

/// One step of a mark walk: 0 to go on, 1 to stop.
pub(crate) extern "C" fn mark_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `MarkWalk` passed to bpf_loop by `class_mark`.
    let w = unsafe { &mut *(ctx as *mut MarkWalk) };
    let inode = kptr(w.pos.dentry, offset!(dentry_d_inode));
    if !inode.is_null() {
        let key = ClassDirKey {
            dev: kread::<u32>(kptr(inode, offset!(inode_i_sb)), offset!(super_block_s_dev)),
            _pad: 0,
            ino: kread::<u64>(inode, offset!(inode_i_ino)),
        };
        // SAFETY: the value is a plain u32, read at once.
        if let Some(m) = unsafe { CLASS_DIRS.get(&key) } {
            w.mark = *m;
            w.done = 1;
            return 1;
        }
    }
    match climb(&mut w.pos) {
        Climb::Top | Climb::Broken => {
            w.done = 1;
            1
        }
        Climb::Mount | Climb::Component(_) => 0,
    }
}

/// The `struct file` behind `fd` in the current task, or null.
#[inline(always)]
pub(crate) fn fd_file(task: *const u8, fd: i64) -> *const u8 {
    if fd < 0 {
        return null();
    }
    let files = kptr(task, offset!(task_files));
    let fdt = kptr(files, offset!(files_fdt));
    // `max_fds` then `fd`, as the kernel has long laid them out: one read.
    let (max, fds) = if offset!(fdt_max_fds) == 0 && offset!(fdt_fd) == 8 {
        let w = kread::<[usize; 2]>(fdt, 0);
        (w[0] as u32, w[1] as *const u8)
    } else {
        (
            kread::<u32>(fdt, offset!(fdt_max_fds)),
            kptr(fdt, offset!(fdt_fd)),
        )
    };
    if fd as u64 >= max as u64 {
        return null();
    }
    kptr(fds, (fd as usize) * 8)
}

/// Attached at entry and at exit of every syscall that can change how an
/// existing file's path is spelt (renames and mounts, the daemon's own
/// too): no path cached before it is served again. Changing the generation
/// at both ends means a walk that raced the change is not served after it.
///
/// The BPF target has no atomic add, so each change writes a value never
/// written before ([`unique`]) rather than adding one: two changes that
/// race may leave either value, but never one a cached walk was made under.
#[tracepoint]
pub fn path_moved(_ctx: TracePointContext) -> u32 {
    let value = unique();
    if let Some(p) = PATH_GEN.get_ptr_mut(PATH_GEN_KERNEL) {
        // SAFETY: an aligned u64 in an array map.
        unsafe { core::ptr::write_volatile(p, value) };
    }
    0
}

/// A value no call returns twice: the CPU in the top bits, a per-CPU count
/// below.
#[inline(always)]
fn unique() -> u64 {
    // SAFETY: helper without preconditions.
    let cpu = unsafe { raw::bpf_get_smp_processor_id() } as u64;
    let mut seq = 0;
    if let Some(n) = PATH_NEXT.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe {
            *n += 1;
            seq = *n;
        }
    }
    ((cpu + 1) << 48) | (seq & ((1 << 48) - 1))
}

fn generation(index: u32) -> u64 {
    match PATH_GEN.get_ptr(index) {
        // SAFETY: an aligned u64 in an array map.
        Some(p) => unsafe { core::ptr::read_volatile(p) },
        None => 0,
    }
}

/// The file open at `fd`, as the path cache knows it.
#[inline(always)]
pub(crate) fn path_key(task: *const u8, fd: i64, root: &Root) -> PathKey {
    let file = fd_file(task, fd);
    let (mnt, dentry) = read_path(file, offset!(file_f_path));
    let inode = kptr(dentry, offset!(dentry_d_inode));
    PathKey {
        dentry: dentry as u64,
        mnt: mnt as u64,
        root_dentry: root.dentry as u64,
        root_mnt: root.mnt as u64,
        inode: inode as u64,
        generation: u64::from(kread::<u32>(inode, offset!(inode_i_generation))),
    }
}

/// The cached walk of `key`, when it was made under the current generations.
#[inline(always)]
pub(crate) fn cached_path(key: &PathKey) -> Option<PathSlot> {
    if key.dentry == 0 || key.mnt == 0 {
        return None;
    }
    // SAFETY: the slot is copied out at once.
    let slot = unsafe { *PATH_IDS.get(key)? };
    if slot.kernel_gen != generation(PATH_GEN_KERNEL)
        || slot.daemon_gen != generation(PATH_GEN_DAEMON)
    {
        return None;
    }
    count(COUNTER_PATH_CACHED);
    Some(slot)
}

/// A new walk about to be sent: its slot, with the generations read
/// before the walk, and a fresh id.
#[inline(always)]
pub(crate) fn new_path_slot() -> PathSlot {
    PathSlot {
        id: unique(),
        kernel_gen: generation(PATH_GEN_KERNEL),
        daemon_gen: generation(PATH_GEN_DAEMON),
        mark: 0,
        cut: 0,
    }
}

/// Caches a walk once its record is on the ring buffer (a hit refers to
/// the id, so the daemon must have the path first).
#[inline(always)]
pub(crate) fn remember_path(key: &PathKey, slot: &PathSlot) {
    if key.dentry != 0 && key.mnt != 0 {
        let _ = PATH_IDS.insert(key, slot, 0);
    }
}

/// Components of the file open at `fd`.
#[inline(always)]
pub(crate) fn push_fd_path(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    task: *const u8,
    fd: i64,
    mark: &mut u32,
) -> StrRef {
    let file = fd_file(task, fd);
    let f_path = offset!(file_f_path);
    let mnt = kptr(file, f_path + offset!(path_mnt));
    let dentry = kptr(file, f_path + offset!(path_dentry));
    push_components(ev, cur, root, mnt, dentry, mark)
}

/// Components of the directory a relative path is resolved against.
#[inline(always)]
pub(crate) fn push_dir_path(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    task: *const u8,
    dfd: i32,
    mark: &mut u32,
) -> StrRef {
    if dfd == AT_FDCWD {
        let fs = kptr(task, offset!(task_fs));
        let mnt = kptr(fs, offset!(fs_pwd) + offset!(path_mnt));
        let dentry = kptr(fs, offset!(fs_pwd) + offset!(path_dentry));
        push_components(ev, cur, root, mnt, dentry, mark)
    } else {
        push_fd_path(ev, cur, root, task, dfd as i64, mark)
    }
}

/// A user path as passed, plus (when it is relative) the directory it is relative to.
#[inline(always)]
pub(crate) fn push_path_arg(
    ev: &mut RawEvent,
    cur: &mut Cursor,
    root: &Root,
    task: *const u8,
    dfd: i32,
    user_path: u64,
    mark: &mut u32,
) -> (StrRef, StrRef) {
    let raw = push_user_str(ev, cur, user_path);
    let first = ev.data[raw.off as usize & (DATA_HALF - 1)];
    let dir = if raw.kind == StrKind::Raw as u16 && first != b'/' {
        push_dir_path(ev, cur, root, task, dfd, mark)
    } else {
        str_ref(cur.off, cur, StrKind::None)
    };
    (dir, raw)
}
