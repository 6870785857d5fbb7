//! A syscall at its exit: which call it is (the number in the exit
//! record), its result, and its arguments, read from the user registers
//! the kernel saved at its entry (`monitor_common::syscalls`). A syscall
//! leaves those registers as they were, so no program runs at the calls'
//! entry and no map carries their arguments across a call.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel, generated as raw},
    programs::TracePointContext,
};
use monitor_common::syscalls::{nr, ARG_REGS, ARG_REGS_OFFSET};
use monitor_common::COUNTER_ARGS_MISSING;

use crate::emit::{count, self_tgid};

/// Where a syscall tracepoint record holds the first argument (at entry)
/// or the result (at exit).
pub(crate) const RECORD_ARGS_OFFSET: usize = 16;
/// Where every syscall tracepoint record holds the syscall's number.
const RECORD_NR_OFFSET: usize = 8;

/// The syscalls the exit programs handle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Open,
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
    Sendfile,
    Splice,
    Sendmmsg,
}

impl Call {
    /// The call under syscall number `n`.
    #[inline(always)]
    fn of_syscall(n: i32) -> Option<Call> {
        Some(match n {
            nr::OPEN => Call::Open,
            nr::OPENAT => Call::Openat,
            nr::OPENAT2 => Call::Openat2,
            nr::UNLINK => Call::Unlink,
            nr::UNLINKAT => Call::Unlinkat,
            nr::RENAME => Call::Rename,
            nr::RENAMEAT => Call::Renameat,
            nr::RENAMEAT2 => Call::Renameat2,
            nr::TRUNCATE => Call::Truncate,
            nr::FTRUNCATE => Call::Ftruncate,
            nr::CONNECT => Call::Connect,
            nr::ACCEPT | nr::ACCEPT4 => Call::Accept,
            nr::SOCKET => Call::Socket,
            nr::WRITE => Call::Write,
            nr::WRITEV => Call::Writev,
            nr::SENDTO => Call::Sendto,
            nr::SENDMSG => Call::Sendmsg,
            nr::SENDMMSG => Call::Sendmmsg,
            nr::READ => Call::Read,
            nr::READV => Call::Readv,
            nr::RECVFROM => Call::Recvfrom,
            nr::RECVMSG => Call::Recvmsg,
            nr::SENDFILE => Call::Sendfile,
            nr::SPLICE => Call::Splice,
            _ => return None,
        })
    }
}

/// A syscall the current task is leaving.
#[derive(Clone, Copy)]
pub(crate) struct Exit {
    /// The task's `pid_tgid` (thread id low, process id high).
    pub(crate) id: u64,
    pub(crate) call: Call,
    /// The call's result.
    pub(crate) ret: i64,
    /// Its arguments, in order.
    pub(crate) args: [u64; 6],
}

/// The syscall the current task is leaving, when it is one the programs
/// handle and the task is not the daemon's. Registers that cannot be read
/// are counted (`args_missing`).
#[inline(always)]
pub(crate) fn exiting(ctx: &TracePointContext) -> Option<Exit> {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == self_tgid() {
        return None;
    }
    // SAFETY: every syscall exit record holds the number and the result here.
    let n = unsafe { ctx.read_at::<i32>(RECORD_NR_OFFSET) }.unwrap_or(-1);
    let call = Call::of_syscall(n)?;
    let ret = unsafe { ctx.read_at::<i64>(RECORD_ARGS_OFFSET) }.unwrap_or(0);
    // SAFETY: helpers without preconditions; the pointer they give is the
    // current task's saved registers, read by a helper that never faults.
    let regs = unsafe { raw::bpf_task_pt_regs(raw::bpf_get_current_task_btf()) } as usize;
    let Ok(words) = (unsafe { bpf_probe_read_kernel((regs + ARG_REGS_OFFSET) as *const [u64; 8]) })
    else {
        count(COUNTER_ARGS_MISSING);
        return None;
    };
    let mut args = [0u64; 6];
    let mut i = 0;
    while i < 6 {
        args[i] = words[ARG_REGS[i] & 7];
        i += 1;
    }
    Some(Exit {
        id,
        call,
        ret,
        args,
    })
}
