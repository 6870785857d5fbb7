//! The monitor's kernel programs.
//!
//! They capture and filter for volume only; every decision is the daemon's.
//!
//! - Syscalls are handled at their exit alone: `sys_exit` (files,
//!   connections, transfers) and `sys_exit_payload` (sockets and the bytes
//!   on them), each attached to the matching exit tracepoints, learn the
//!   call from the record's syscall number and read its arguments from the
//!   task's saved registers ([`syscall`]). Reading user memory at exit is
//!   deliberate: the kernel has just faulted it in.
//! - `sched_process_exec`, `task_newtask` and `sched_process_exit` keep the
//!   daemon's process table current.
//! - Paths are resolved here, from the dentry and mount the kernel holds,
//!   so a process that has already exited is still attributed correctly.
//!   Struct offsets come from the kernel's BTF via the `OFFSETS` global.
//! - Records are built in a per-CPU scratch slot and only the used bytes
//!   are copied to the ring buffer. Every lost record is counted.
//!
//! One module per concern: [`maps`] (maps and globals), [`syscall`] (a
//! call at its exit), [`emit`]
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
mod syscall;
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
