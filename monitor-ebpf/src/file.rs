//! File syscalls (open, unlink, rename, truncate): the one `sys_exit`
//! program shared with the socket syscalls, which reads each call's
//! arguments at its exit, and the file record.

use aya_ebpf::{helpers::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext};
use monitor_common::{EventKind, FileBody, FileOp, NetOp, SockInfo, FLAG_TRUNCATED, STR_CUT};

use crate::emit::{begin, current_task, submit, Cursor};
use crate::maps::AT_FDCWD;
use crate::net::on_net_exit;
use crate::paths::{
    cached_path, new_path_slot, path_key, push_fd_path, push_path_arg, remember_path, task_root,
};
use crate::repeats::{counted, open_window};
use crate::syscall::{exiting, Call, Exit};
use crate::transfer::on_transfer_exit;

/// Attached to the exit tracepoint of every file and socket syscall
/// (`syscall.rs` says which call it is and reads its arguments).
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let Some(e) = exiting(&ctx) else {
        return 0;
    };
    match e.call {
        Call::Connect => on_net_exit(&e, NetOp::Connect),
        Call::Accept => on_net_exit(&e, NetOp::Accept),
        Call::Sendfile | Call::Splice => on_transfer_exit(&e),
        _ => on_file_exit(&e),
    }
    0
}

/// An open's (op, dfd, path, flags, mode), or `None` for another call.
#[inline(always)]
fn open_args(e: &Exit) -> Option<(FileOp, i32, u64, u64, u64)> {
    let x = &e.args;
    match e.call {
        Call::Open => Some((FileOp::Openat, AT_FDCWD, x[0], x[1], x[2])),
        Call::Openat => Some((FileOp::Openat, x[0] as i32, x[1], x[2], x[3])),
        Call::Openat2 => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            // SAFETY: user memory read by helper; failure leaves zeros.
            let how = unsafe { bpf_probe_read_user(x[2] as *const [u64; 2]) }.unwrap_or([0, 0]);
            Some((FileOp::Openat2, x[0] as i32, x[1], how[0], how[1]))
        }
        _ => None,
    }
}

#[inline(always)]
pub(crate) fn on_file_exit(e: &Exit) {
    let ret = e.ret;
    let open = open_args(e);
    if let Some((op, dfd, _, flags, mode)) = open.filter(|_| ret >= 0) {
        return on_open_exit(op, dfd, flags, mode, ret);
    }
    let Some((ev, task)) = begin(EventKind::File) else {
        return;
    };
    let x = &e.args;
    // (op, dfd, path, dfd2, path2, flags, mode)
    let (op, dfd, path, dfd2, path2, flags, mode) = match (open, e.call) {
        (Some((op, dfd, path, flags, mode)), _) => (op, dfd, path, 0, 0, flags, mode),
        (None, Call::Unlink) => (FileOp::Unlinkat, AT_FDCWD, x[0], 0, 0, 0, 0),
        (None, Call::Unlinkat) => (FileOp::Unlinkat, x[0] as i32, x[1], 0, 0, x[2], 0),
        (None, Call::Rename) => (FileOp::Renameat2, AT_FDCWD, x[0], AT_FDCWD, x[1], 0, 0),
        (None, Call::Renameat) => (
            FileOp::Renameat2,
            x[0] as i32,
            x[1],
            x[2] as i32,
            x[3],
            0,
            0,
        ),
        (None, Call::Renameat2) => (
            FileOp::Renameat2,
            x[0] as i32,
            x[1],
            x[2] as i32,
            x[3],
            x[4],
            0,
        ),
        (None, Call::Truncate) => (FileOp::Truncate, AT_FDCWD, x[0], 0, 0, 0, x[1]),
        (None, Call::Ftruncate) => (FileOp::Ftruncate, x[0] as i32, 0, 0, 0, 0, x[1]),
        _ => return,
    };
    ev.body.file = file_body(op, dfd, ret, flags, mode);
    ev.body.file.dfd2 = dfd2;
    let root = task_root(task);
    let mut cur = Cursor { off: 0 };
    let mut mark = 0;
    if matches!(op, FileOp::Ftruncate) {
        ev.strs[0] = push_fd_path(ev, &mut cur, &root, task, dfd as i64, &mut mark);
    } else {
        let (d, p) = push_path_arg(ev, &mut cur, &root, task, dfd, path, &mut mark);
        ev.strs[0] = d;
        ev.strs[1] = p;
        if matches!(op, FileOp::Renameat2) {
            let mut mark2 = 0;
            let (d, p) = push_path_arg(ev, &mut cur, &root, task, dfd2, path2, &mut mark2);
            if mark == 0 {
                mark = mark2;
            }
            ev.strs[2] = d;
            ev.strs[3] = p;
        }
    }
    ev.body.file.class_mark = mark;
    submit(ev, &cur);
}

/// A file record's body: what every file record has, the rest zero.
#[inline(always)]
pub(crate) fn file_body(op: FileOp, dfd: i32, ret: i64, flags: u64, mode: u64) -> FileBody {
    FileBody {
        op: op as u32,
        dfd,
        ret,
        flags,
        mode,
        dfd2: 0,
        class_mark: 0,
        sock: SockInfo::default(),
        path_id: 0,
        repeats: 0,
        repeats_last_ns: 0,
    }
}

/// A successful open: the file actually opened, symlinks resolved (the
/// caller's spelling adds nothing). A file walked a moment ago is sent as
/// its path id; one this process opened with these flags within the
/// repeat window is only counted (`repeats.rs`).
#[inline(always)]
fn on_open_exit(op: FileOp, dfd: i32, flags: u64, mode: u64, fd: i64) {
    let task = current_task();
    let root = task_root(task);
    let key = path_key(task, fd, &root);
    let cached = cached_path(&key);
    if let Some(slot) = &cached {
        if counted(slot.id, flags) {
            return;
        }
    }
    let Some((ev, task)) = begin(EventKind::File) else {
        return;
    };
    ev.body.file = file_body(op, dfd, fd, flags, mode);
    let mut cur = Cursor { off: 0 };
    if let Some(slot) = cached {
        ev.body.file.path_id = slot.id;
        ev.body.file.class_mark = slot.mark;
        if slot.cut != 0 {
            ev.header.flags |= FLAG_TRUNCATED;
        }
        if submit(ev, &cur) {
            open_window(ev);
        }
        return;
    }
    let mut slot = new_path_slot();
    let mut mark = 0;
    ev.strs[0] = push_fd_path(ev, &mut cur, &root, task, fd, &mut mark);
    slot.mark = mark;
    slot.cut = u32::from(ev.strs[0].flags & STR_CUT != 0);
    ev.body.file.path_id = slot.id;
    ev.body.file.class_mark = mark;
    if submit(ev, &cur) {
        remember_path(&key, &slot);
        open_window(ev);
    }
}
