//! io_uring: requests a process submits through a ring instead of
//! syscalls. `io_uring:io_uring_submit_req` fires once the request is
//! prepared, in the submitter's context; its per-opcode data sits at the
//! start of `struct io_kiocb` (offsets from BTF). Opens are reported like
//! `openat` (path from the user's string, flagged `FLAG_IO_URING`, result
//! not yet known); sends to a socket are payloads like `sendto`/`sendmsg`,
//! flagged `PAYLOAD_IO_URING`. A send from a registered (fixed) file has no
//! fd to name its socket: it is reported with the fd unknown.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use monitor_common::{
    EventKind, FileOp, PayloadOp, SockInfo, FLAG_IO_URING, PAYLOAD_FD_UNKNOWN, PAYLOAD_IO_URING,
};

use crate::emit::{begin, kptr, kread, self_tgid, submit, Cursor};
use crate::file::file_body;
use crate::maps::SOCKETS;
use crate::net::sock_key;
use crate::paths::{push_path_arg, task_root};
use crate::payload::{emit_payload, Source};

const IORING_OP_SENDMSG: u8 = 9;
const IORING_OP_OPENAT: u8 = 18;
const IORING_OP_SEND: u8 = 26;
const IORING_OP_OPENAT2: u8 = 28;
/// `REQ_F_FIXED_FILE`: the SQE's fd is an index into the registered files.
const REQ_F_FIXED_FILE: u64 = 1;

/// `io_uring_submit_req(ctx, req, user_data, opcode, flags, sq_thread, op_str)`.
#[tracepoint]
pub fn io_uring_submit_req(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    // SAFETY: the record's `req` (offset 16) and `opcode` (offset 32) fields.
    let req = unsafe { ctx.read_at::<u64>(16) }.unwrap_or(0) as *const u8;
    let opcode = unsafe { ctx.read_at::<u8>(32) }.unwrap_or(0);
    if req.is_null() {
        return 0;
    }
    let cmd = req.wrapping_add(offset!(io_kiocb_cmd));
    match opcode {
        IORING_OP_OPENAT | IORING_OP_OPENAT2 => on_open(cmd),
        IORING_OP_SEND | IORING_OP_SENDMSG => on_send(tgid, req, cmd, opcode),
        _ => {}
    }
    0
}

#[inline(always)]
fn on_open(cmd: *const u8) {
    let Some((ev, task)) = begin(EventKind::File) else {
        return;
    };
    let dfd = kread::<i32>(cmd, offset!(io_open_dfd));
    let filename = kptr(cmd, offset!(io_open_filename));
    let uptr = kread::<u64>(filename, offset!(filename_uptr));
    let flags = kread::<u64>(cmd, offset!(io_open_how));
    let mode = kread::<u64>(cmd, offset!(io_open_how) + 8);
    ev.header.flags |= FLAG_IO_URING;
    ev.body.file = file_body(FileOp::Openat, dfd, 0, flags, mode);
    let root = task_root(task);
    let mut cur = Cursor { off: 0 };
    let mut mark = 0;
    let (d, p) = push_path_arg(ev, &mut cur, &root, task, dfd, uptr, &mut mark);
    ev.strs[0] = d;
    ev.strs[1] = p;
    ev.body.file.class_mark = mark;
    submit(ev, &cur);
}

#[inline(always)]
fn on_send(tgid: u32, req: *const u8, cmd: *const u8, opcode: u8) {
    let fixed = kread::<u64>(req, offset!(io_kiocb_flags)) & REQ_F_FIXED_FILE != 0;
    let fd = kread::<i32>(req, offset!(io_kiocb_cqe_fd));
    let (fd, sock, flags) = if fixed {
        (
            -1,
            SockInfo::default(),
            PAYLOAD_IO_URING | PAYLOAD_FD_UNKNOWN,
        )
    } else {
        match SOCKETS.get_ptr(&sock_key(tgid, fd)) {
            // SAFETY: map value pointer, copied out at once.
            Some(s) => (fd, unsafe { *s }, PAYLOAD_IO_URING),
            None => return,
        }
    };
    let buf = kread::<u64>(cmd, offset!(io_sr_msg_buf));
    let len = kread::<i32>(cmd, offset!(io_sr_msg_len));
    if opcode == IORING_OP_SEND {
        if len > 0 {
            emit_payload(
                PayloadOp::Sendto,
                fd,
                len as i64,
                flags,
                sock,
                Source::Buf(buf),
            );
        }
        return;
    }
    // SENDMSG: `buf` is the user's msghdr; its iovec array is 16 bytes in.
    let (iov, count) = crate::payload::user_msg_iov(buf);
    let total = crate::payload::iov_total(iov, count);
    if total > 0 {
        emit_payload(
            PayloadOp::Sendmsg,
            fd,
            total,
            flags,
            sock,
            Source::Iov(iov, count),
        );
    }
}
