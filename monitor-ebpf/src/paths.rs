//! Paths resolved in the kernel: the dentry walk from a file or a
//! directory up to the task's root, crossing mount points like `d_path`,
//! under `bpf_loop`.

use aya_ebpf::helpers::generated as raw;
use core::ptr::null;
use monitor_common::{
    RawEvent, StrKind, StrRef, DATA_HALF, FLAG_TRUNCATED, MAX_COMPONENTS, NAME_READ,
};

use crate::emit::{kptr, kread, push_kernel_str, push_user_str, str_ref, Cursor, Root};
use crate::maps::{AT_FDCWD, SCRATCH};

/// The task's root directory.
#[inline(always)]
pub(crate) fn task_root(task: *const u8) -> Root {
    let fs = kptr(task, offset!(task_fs));
    Root {
        mnt: kptr(fs, offset!(fs_root) + offset!(path_mnt)),
        dentry: kptr(fs, offset!(fs_root) + offset!(path_dentry)),
    }
}

/// State of one path walk, on the caller's stack, shared with [`walk_step`].
#[repr(C)]
pub(crate) struct Walk {
    pub(crate) vfsmnt: *const u8,
    pub(crate) dentry: *const u8,
    pub(crate) mount: *const u8,
    pub(crate) root_mnt: *const u8,
    pub(crate) root_dentry: *const u8,
    pub(crate) off: usize,
    pub(crate) complete: u64,
}

/// Writes the components of the path `(vfsmnt, dentry)`, leaf first, up to
/// the task's root, crossing mount points the way the kernel's `d_path` does.
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
pub(crate) extern "C" fn walk_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
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
pub(crate) fn fd_file(task: *const u8, fd: i64) -> *const u8 {
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
pub(crate) fn push_fd_path(
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
pub(crate) fn push_dir_path(
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
pub(crate) fn push_path_arg(
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
