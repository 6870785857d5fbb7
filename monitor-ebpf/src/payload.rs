//! Payload capture: the bytes a process writes to (or reads from) a
//! socket, for sockets in the socket table only; `close` empties the table.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user, generated as raw},
    macros::tracepoint,
    programs::TracePointContext,
};
use core::ptr::addr_of;
use monitor_common::{
    EventKind, PayloadBody, PayloadEvent, PayloadOp, SockInfo, COUNTER_PAYLOAD_TRUNCATED,
    MAX_IOVECS, PAYLOAD_FIXED_LEN, PAYLOAD_INBOUND, PAYLOAD_MAX, PAYLOAD_TRUNCATED,
};

use crate::emit::{count, current_task, fill_header, output, self_tgid};
use crate::file::SYSCALL_ARGS_OFFSET;
use crate::maps::{
    Call, SyscallArgs, AF_INET, AF_INET6, ARGS, CONFIG, PAYLOAD_SCRATCH, SOCKETS, SSL_ARGS, SSL_FD,
    SSL_PENDING,
};
use crate::net::{sock_key, user_sockaddr};
use crate::prevent::{enforced, prevent_card};

enter_probe!(sys_enter_socket, Call::Socket, 1);

enter_probe!(sys_enter_write, Call::Write, 3, payload_enter);
enter_probe!(sys_enter_writev, Call::Writev, 3, payload_enter);
enter_probe!(sys_enter_sendto, Call::Sendto, 6, payload_enter);
enter_probe!(sys_enter_sendmsg, Call::Sendmsg, 2, payload_enter);
enter_probe!(sys_enter_sendmmsg, Call::Sendmmsg, 3, payload_enter);
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

/// Stashes a syscall's arguments by thread until its exit (`sys_exit_payload`).
#[inline(always)]
pub(crate) fn stash_args(ctx: &TracePointContext, call: Call, nargs: usize) {
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
    if stash.call == Call::Sendmmsg as u32 {
        // `ret` messages went; each is a `struct mmsghdr { struct msghdr
        // msg_hdr; unsigned int msg_len; }` (64 bytes), `msg_len` at 56.
        let mut i = 0u64;
        while i < MAX_MMSG && i < ret as u64 {
            let m = x[1] + 64 * i;
            // SAFETY: user memory read by helper.
            let len = unsafe { bpf_probe_read_user((m + 56) as *const u32) }.unwrap_or(0);
            if len > 0 {
                emit_payload(PayloadOp::Sendmmsg, fd, len as i64, 0, sock, msg_iov(m));
            }
            i += 1;
        }
        return 0;
    }
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
pub(crate) enum Source {
    /// One buffer.
    Buf(u64),
    /// An iovec array and its length.
    Iov(u64, u64),
}

/// Stashes a payload syscall's arguments if `fd` is a socket; inside an
/// `SSL_write` it only learns which socket the `SSL*` writes to.
#[inline(always)]
pub(crate) fn payload_enter(ctx: &TracePointContext, call: Call, nargs: usize) {
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
    if let Some(p) = SSL_PENDING.get_ptr(&id) {
        // SAFETY: map value pointer, copied out at once.
        let p = unsafe { *p };
        // SAFETY: helper without preconditions.
        let stale = unsafe { bpf_ktime_get_ns() }.wrapping_sub(p.at) > SSL_PENDING_NS;
        if stale {
            let _ = SSL_PENDING.remove(&id);
        } else if starts_tls_record(ctx, call) {
            let _ = SSL_FD.insert(&p.ssl, &fd, 0);
            let _ = SSL_PENDING.remove(&id);
        }
    }
    if enforced() {
        if let Some((op, src, size)) = outbound(ctx, call) {
            let sock = SOCKETS
                .get_ptr(&sock_key(tgid, fd))
                // SAFETY: map value pointer, copied out at once.
                .map(|s| unsafe { *s })
                .unwrap_or_default();
            if prevent_card(op, fd, sock, 0, src, size) {
                return;
            }
        }
    }
    stash_args(ctx, call, nargs);
}

/// What an outbound payload syscall is about to send, read at its entry:
/// `write` and `sendto` only (the iovec walk and the scan together are more
/// than the verifier takes in one program, so `writev` and `sendmsg` are
/// not checked).
#[inline(always)]
fn outbound(ctx: &TracePointContext, call: Call) -> Option<(PayloadOp, Source, i64)> {
    // SAFETY: the second and third arguments of every payload syscall.
    let a1 = unsafe { ctx.read_at::<u64>(SYSCALL_ARGS_OFFSET + 8) }.unwrap_or(0);
    let a2 = unsafe { ctx.read_at::<u64>(SYSCALL_ARGS_OFFSET + 16) }.unwrap_or(0);
    match call {
        Call::Write => Some((PayloadOp::Write, Source::Buf(a1), a2 as i64)),
        Call::Sendto => Some((PayloadOp::Sendto, Source::Buf(a1), a2 as i64)),
        _ => None,
    }
}

/// The iovec array and its length of a user `struct msghdr` (16 bytes in).
#[inline(always)]
pub(crate) fn user_msg_iov(msg: u64) -> (u64, u64) {
    // SAFETY: user memory read by helper.
    let hdr = unsafe { bpf_probe_read_user((msg + 16) as *const [u64; 2]) }.unwrap_or([0, 0]);
    (hdr[0], hdr[1])
}

/// Bytes an iovec array holds (its first `MAX_IOVECS` entries).
#[inline(always)]
pub(crate) fn iov_total(iov: u64, count: u64) -> i64 {
    let mut total = 0i64;
    let mut i = 0u32;
    while i < MAX_IOVECS && (i as u64) < count {
        // SAFETY: user memory read by helper.
        let v =
            unsafe { bpf_probe_read_user((iov + 16 * i as u64 + 8) as *const u64) }.unwrap_or(0);
        total += (v & 0x7fff_ffff) as i64;
        i += 1;
    }
    total
}

/// Messages of one `sendmmsg` captured at most (the rest are not seen).
const MAX_MMSG: u64 = 8;

/// How long a session waits for its socket to be named (a memory-BIO
/// library writes its records within the same turn of its event loop).
const SSL_PENDING_NS: u64 = 100_000_000;

/// Whether an outbound call's first bytes are a TLS record header
/// (content type 20 to 23, major version 3).
#[inline(always)]
fn starts_tls_record(ctx: &TracePointContext, call: Call) -> bool {
    // SAFETY: the second argument of every payload syscall.
    let arg = unsafe { ctx.read_at::<u64>(SYSCALL_ARGS_OFFSET + 8) }.unwrap_or(0);
    let first_iov = |iov: u64| {
        // SAFETY: user memory read by helper.
        unsafe { bpf_probe_read_user(iov as *const u64) }.unwrap_or(0)
    };
    let buf = match call {
        Call::Write | Call::Sendto => arg,
        Call::Writev => first_iov(arg),
        // struct msghdr: the iovec array pointer is 16 bytes in.
        Call::Sendmsg => {
            // SAFETY: user memory read by helper.
            let iov = unsafe { bpf_probe_read_user((arg + 16) as *const u64) }.unwrap_or(0);
            first_iov(iov)
        }
        _ => return false,
    };
    // SAFETY: user memory read by helper.
    let head = unsafe { bpf_probe_read_user(buf as *const [u8; 2]) }.unwrap_or([0, 0]);
    (20..=23).contains(&head[0]) && head[1] == 3
}

/// Copies up to `want` bytes described by `src` into the payload slot; returns how many.
#[inline(always)]
pub(crate) fn copy_payload(ev: &mut PayloadEvent, src: Source, want: usize) -> usize {
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
pub(crate) fn emit_payload(
    op: PayloadOp,
    fd: i32,
    size: i64,
    flags: u32,
    sock: SockInfo,
    src: Source,
) {
    // SAFETY: helper without preconditions.
    let cpu = unsafe { raw::bpf_get_smp_processor_id() };
    let Some(ev) = PAYLOAD_SCRATCH.get_ptr_mut(cpu) else {
        return;
    };
    // SAFETY: this CPU's slot.
    let ev = unsafe { &mut *ev };
    fill_header(&mut ev.header, current_task(), EventKind::Payload);
    let captured = stage_payload(ev, src, size);
    send_payload(ev, op, fd, size, captured, flags, sock);
}

/// Copies into the payload slot what `src` holds of a call's `size` bytes,
/// up to the capture limit; returns how many bytes were copied.
#[inline(always)]
pub(crate) fn stage_payload(ev: &mut PayloadEvent, src: Source, size: i64) -> usize {
    // SAFETY: as in `offset!`.
    let limit = unsafe { core::ptr::read_volatile(addr_of!(CONFIG.payload_limit)) } as usize;
    let want = if (size as usize) < limit {
        size as usize
    } else {
        limit
    };
    copy_payload(ev, src, want)
}

/// Fills in the body of a staged payload record (flagging and counting a
/// cut) and sends it with its first `captured` bytes.
#[inline(always)]
pub(crate) fn send_payload(
    ev: &mut PayloadEvent,
    op: PayloadOp,
    fd: i32,
    size: i64,
    captured: usize,
    flags: u32,
    sock: SockInfo,
) {
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
