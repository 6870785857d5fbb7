//! The monitor's kernel programs.
//!
//! They capture and filter for volume only; every decision is the daemon's.
//!
//! - File and socket syscalls are handled at exit alone: the one
//!   `sys_exit` program, attached to each of their exit tracepoints, reads
//!   the call's arguments from the task's saved registers, its result from
//!   the record, and builds the record. Payload syscalls' `sys_enter_*`
//!   programs decide at entry what to stash by thread id for
//!   `sys_exit_payload`. Reading user memory at exit is deliberate: the
//!   kernel has just faulted it in.
//! - `sched_process_exec`, `task_newtask` and `sched_process_exit` keep the
//!   daemon's process table current.
//! - Paths are resolved here, from the dentry and mount the kernel holds,
//!   so a process that has already exited is still attributed correctly.
//!   Struct offsets come from the kernel's BTF via the `OFFSETS` global.
//! - Records are built in a per-CPU scratch slot and only the used bytes
//!   are copied to the ring buffer. Every lost record is counted.
//!
//! One module per concern: [`maps`] (maps, globals, stashes), [`emit`]
//! (building records), [`paths`] (the dentry walk), [`file`], [`net`],
//! [`payload`], [`tls`], [`lifecycle`] (the programs). The probe table that
//! says what attaches where is `monitor_common::probes`, shared with the
//! daemon. An enforcement program (a check at the TLS write, against a
//! per-process map userspace fills) is one more module beside `tls`.
#![no_std]
#![no_main]

macro_rules! offset {
    ($field:ident) => {
        // SAFETY: reading a plain integer global; volatile so the loader's value is used.
        unsafe {
            core::ptr::read_volatile(core::ptr::addr_of!($crate::maps::OFFSETS.$field)) as usize
        }
    };
}

/// A `sys_enter_*` program that hands its context to `$handler`.
macro_rules! enter_probe {
    ($name:ident, $call:expr, $nargs:expr) => {
        enter_probe!($name, $call, $nargs, stash_args);
    };
    ($name:ident, $call:expr, $nargs:expr, $handler:ident) => {
        #[aya_ebpf::macros::tracepoint]
        pub fn $name(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $handler(&ctx, $call, $nargs);
            0
        }
    };
}

mod emit;
mod file;
mod iouring;
mod lifecycle;
mod maps;
mod net;
mod paths;
mod payload;
mod prevent;
mod repeats;
mod tls;
mod transfer;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
