//! Process lifecycle: exec, new processes (not threads) and exits keep the
//! daemon's process table current.

use aya_ebpf::{helpers::generated as raw, macros::tracepoint, programs::TracePointContext};
use monitor_common::{
    tty_dev, EventKind, ExecBody, ExitBody, ForkBody, StrKind, ARGV_READ, FLAG_TRUNCATED, NAME_READ,
};

use crate::emit::{begin, kptr, kread, push_kernel_str, self_tgid, slot, str_ref, submit, Cursor};
use crate::maps::CLONE_THREAD;
use crate::paths::{push_components, task_root};

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
    let loginuid = match offset!(task_loginuid) {
        0 => u32::MAX,
        off => kread::<u32>(task, off),
    };
    // The controlling terminal: signal->tty, its driver's major, and minor_start + index.
    let tty = kptr(kptr(task, offset!(task_signal)), offset!(signal_tty));
    let tty = if tty.is_null() {
        0
    } else {
        let driver = kptr(tty, offset!(tty_driver));
        let major = kread::<i32>(driver, offset!(tty_driver_major)) as u32;
        let minor = kread::<i32>(driver, offset!(tty_driver_minor_start))
            + kread::<i32>(tty, offset!(tty_index));
        tty_dev(major, minor as u32)
    };
    ev.body.exec = ExecBody {
        old_pid,
        loginuid,
        tty,
        _pad: 0,
    };
    let root = task_root(task);
    let mut cur = Cursor { off: 0 };

    let mm = kptr(task, offset!(task_mm));
    let exe = kptr(mm, offset!(mm_exe_file));
    let f_path = offset!(file_f_path);
    let mnt = kptr(exe, f_path + offset!(path_mnt));
    let dentry = kptr(exe, f_path + offset!(path_dentry));
    // An executable's class is not asked for: its mark is dropped.
    ev.strs[0] = push_components(ev, &mut cur, &root, mnt, dentry, &mut 0);

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
