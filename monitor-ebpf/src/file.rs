//! File syscalls (open, unlink, rename, truncate): the one `sys_exit`
//! program shared with the socket syscalls, which reads each call's
//! arguments at its exit, and the file record.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user, generated as raw,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::syscalls;
use monitor_common::{
    EventKind, FileBody, FileOp, NetOp, SockInfo, COUNTER_ARGS_MISSING, FLAG_TRUNCATED, STR_CUT,
};

use crate::emit::{begin, count, current_task, self_tgid, submit, Cursor};
use crate::maps::{Call, SyscallArgs, AT_FDCWD};
use crate::net::on_net_exit;
use crate::paths::{
    cached_path, new_path_slot, path_key, push_fd_path, push_path_arg, remember_path, task_root,
};
use crate::repeats::{counted, open_window};
use crate::transfer::on_transfer_exit;

/// Syscall tracepoint records hold the arguments as 8-byte slots from
/// offset 16; an exit record holds the return value there.
pub(crate) const SYSCALL_ARGS_OFFSET: usize = 16;
/// Where every syscall tracepoint record holds the syscall's number.
const SYSCALL_NR_OFFSET: usize = 8;

/// The current task's syscall arguments, read at its exit from the user
/// registers the kernel saved at its entry (`monitor_common::syscalls`):
/// no program runs at entry and no map carries them across the call.
#[inline(always)]
fn exit_args(call: Call) -> Option<SyscallArgs> {
    // SAFETY: helpers without preconditions; the pointer they give is the
    // current task's saved registers, read by a helper that never faults.
    let regs = unsafe { raw::bpf_task_pt_regs(raw::bpf_get_current_task_btf()) } as usize;
    let words =
        unsafe { bpf_probe_read_kernel((regs + syscalls::ARG_REGS_OFFSET) as *const [u64; 8]) }
            .ok()?;
    let mut args = [0u64; 6];
    let mut i = 0;
    while i < 6 {
        args[i] = words[syscalls::ARG_REGS[i] & 7];
        i += 1;
    }
    Some(SyscallArgs {
        call: call as u32,
        _pad: 0,
        args,
    })
}

/// Attached to the exit tracepoint of every file and socket syscall that
/// is handled at exit alone: the record's syscall number says which call
/// it is, and [`exit_args`] reads its arguments.
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == self_tgid() {
        return 0;
    }
    // SAFETY: `__syscall_nr` and `ret` sit at these offsets in every sys_exit record.
    let nr = unsafe { ctx.read_at::<i32>(SYSCALL_NR_OFFSET) }.unwrap_or(-1);
    let Some(call) = Call::of_syscall(nr) else {
        return 0;
    };
    let Some(args) = exit_args(call) else {
        count(COUNTER_ARGS_MISSING);
        return 0;
    };
    let ret = unsafe { ctx.read_at::<i64>(SYSCALL_ARGS_OFFSET) }.unwrap_or(0);
    match call {
        Call::Connect => on_net_exit(&args, ret, NetOp::Connect),
        Call::Accept => on_net_exit(&args, ret, NetOp::Accept),
        Call::Sendfile | Call::Splice => on_transfer_exit(&args, ret),
        _ => on_file_exit(&args, ret),
    }
    0
}

/// An open's (op, dfd, path, flags, mode), or `None` for another call.
#[inline(always)]
fn open_args(a: &SyscallArgs) -> Option<(FileOp, i32, u64, u64, u64)> {
    let x = &a.args;
    match a.call {
        c if c == Call::Open as u32 => Some((FileOp::Openat, AT_FDCWD, x[0], x[1], x[2])),
        c if c == Call::Openat as u32 => Some((FileOp::Openat, x[0] as i32, x[1], x[2], x[3])),
        c if c == Call::Openat2 as u32 => {
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            // SAFETY: user memory read by helper; failure leaves zeros.
            let how = unsafe { bpf_probe_read_user(x[2] as *const [u64; 2]) }.unwrap_or([0, 0]);
            Some((FileOp::Openat2, x[0] as i32, x[1], how[0], how[1]))
        }
        _ => None,
    }
}

#[inline(always)]
pub(crate) fn on_file_exit(a: &SyscallArgs, ret: i64) {
    let open = open_args(a);
    if let Some((op, dfd, _, flags, mode)) = open.filter(|_| ret >= 0) {
        return on_open_exit(op, dfd, flags, mode, ret);
    }
    let Some((ev, task)) = begin(EventKind::File) else {
        return;
    };
    let x = &a.args;
    // (op, dfd, path, dfd2, path2, flags, mode)
    let (op, dfd, path, dfd2, path2, flags, mode) = match (open, a.call) {
        (Some((op, dfd, path, flags, mode)), _) => (op, dfd, path, 0, 0, flags, mode),
        (None, c) if c == Call::Unlink as u32 => (FileOp::Unlinkat, AT_FDCWD, x[0], 0, 0, 0, 0),
        (None, c) if c == Call::Unlinkat as u32 => {
            (FileOp::Unlinkat, x[0] as i32, x[1], 0, 0, x[2], 0)
        }
        (None, c) if c == Call::Rename as u32 => {
            (FileOp::Renameat2, AT_FDCWD, x[0], AT_FDCWD, x[1], 0, 0)
        }
        (None, c) if c == Call::Renameat as u32 => (
            FileOp::Renameat2,
            x[0] as i32,
            x[1],
            x[2] as i32,
            x[3],
            0,
            0,
        ),
        (None, c) if c == Call::Renameat2 as u32 => (
            FileOp::Renameat2,
            x[0] as i32,
            x[1],
            x[2] as i32,
            x[3],
            x[4],
            0,
        ),
        (None, c) if c == Call::Truncate as u32 => {
            (FileOp::Truncate, AT_FDCWD, x[0], 0, 0, 0, x[1])
        }
        (None, c) if c == Call::Ftruncate as u32 => {
            (FileOp::Ftruncate, x[0] as i32, 0, 0, 0, 0, x[1])
        }
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
