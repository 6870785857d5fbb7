//! Payload capture: the bytes a process writes to (or reads from) a
//! socket, for sockets in the socket table only; `close` empties the table.
//! Everything happens at the calls' exit (`syscall.rs` reads their
//! arguments), so a write to a file costs one lookup there.

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

use crate::emit::{count, current_task, fill_header, output};
use crate::maps::{
    AF_INET, AF_INET6, CONFIG, PAYLOAD_SCRATCH, SOCKETS, SSL_ARGS, SSL_FD, SSL_PENDING,
};
use crate::net::{sock_key, user_sockaddr};
use crate::prevent::prevent_card;
use crate::syscall::{exiting, Call, RECORD_ARGS_OFFSET};

/// `close(fd)`: the socket is gone.
#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the fd argument of sys_enter_close.
    let fd = unsafe { ctx.read_at::<u64>(RECORD_ARGS_OFFSET) }.unwrap_or(0);
    let key = sock_key((id >> 32) as u32, fd as i32);
    // A lookup takes no lock; most closes are not of sockets.
    if SOCKETS.get_ptr(&key).is_some() {
        let _ = SOCKETS.remove(&key);
    }
    0
}

/// Exit of `socket` and the payload syscalls. A call on a socket in the
/// table: inside an `SSL_write` it only teaches which socket the `SSL*`
/// writes to (its bytes are ciphertext); otherwise its bytes are sent, and
/// an enforcing process's `write` or `sendto` holding a card number is
/// stopped (`prevent.rs`).
#[tracepoint]
pub fn sys_exit_payload(ctx: TracePointContext) -> u32 {
    let Some(e) = exiting(&ctx) else {
        return 0;
    };
    let id = e.id;
    let tgid = (id >> 32) as u32;
    let (x, ret) = (&e.args, e.ret);
    if e.call == Call::Socket {
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
    let fd = x[0] as i32;
    let Some(sock) = SOCKETS.get_ptr(&sock_key(tgid, fd)) else {
        return 0;
    };
    // SAFETY: map value pointer, copied out at once.
    let mut sock = unsafe { *sock };
    if learns_tls_socket(id, e.call, x[1], fd) {
        return 0;
    }
    if ret <= 0 {
        return 0;
    }
    // An unconnected (UDP) socket names its destination per call.
    if e.call == Call::Sendto && x[4] != 0 {
        let (family, port, addr) = user_sockaddr(x[4]);
        if family == AF_INET || family == AF_INET6 {
            sock.family = family;
            sock.port = port;
            sock.addr = addr;
        }
    }
    let msg_iov = |msg: u64| {
        let (iov, count) = user_msg_iov(msg);
        Source::Iov(iov, count)
    };
    if e.call == Call::Sendmmsg {
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
    let (op, src, flags) = match e.call {
        Call::Write => (PayloadOp::Write, Source::Buf(x[1]), 0),
        Call::Sendto => (PayloadOp::Sendto, Source::Buf(x[1]), 0),
        Call::Writev => (PayloadOp::Writev, Source::Iov(x[1], x[2]), 0),
        Call::Sendmsg => (PayloadOp::Sendmsg, msg_iov(x[1]), 0),
        Call::Read => (PayloadOp::Read, Source::Buf(x[1]), PAYLOAD_INBOUND),
        Call::Recvfrom => (PayloadOp::Recvfrom, Source::Buf(x[1]), PAYLOAD_INBOUND),
        Call::Readv => (PayloadOp::Readv, Source::Iov(x[1], x[2]), PAYLOAD_INBOUND),
        Call::Recvmsg => (PayloadOp::Recvmsg, msg_iov(x[1]), PAYLOAD_INBOUND),
        _ => return 0,
    };
    // `write` and `sendto` only: the iovec walk and the scan together are
    // more than the verifier takes in one program.
    if matches!(e.call, Call::Write | Call::Sendto) && prevent_card(op, fd, sock, 0, src, ret) {
        return 0;
    }
    emit_payload(op, fd, ret, flags, sock, src);
    0
}

/// Whether a call on socket `fd` (its second argument `arg`) belongs to a
/// TLS library's write: inside an `SSL_write` it names the socket the
/// `SSL*` writes to; a session waiting for its socket (a memory-BIO
/// library, which writes its records outside its calls) is named by the
/// thread's next call that writes a TLS record.
#[inline(always)]
fn learns_tls_socket(id: u64, call: Call, arg: u64, fd: i32) -> bool {
    if let Some(ssl) = SSL_ARGS.get_ptr(&id) {
        // SAFETY: map value pointer.
        let ssl = unsafe { (*ssl).ssl };
        let _ = SSL_FD.insert(&ssl, &fd, 0);
        return true;
    }
    if let Some(p) = SSL_PENDING.get_ptr(&id) {
        // SAFETY: map value pointer, copied out at once.
        let p = unsafe { *p };
        // SAFETY: helper without preconditions.
        let stale = unsafe { bpf_ktime_get_ns() }.wrapping_sub(p.at) > SSL_PENDING_NS;
        if stale {
            let _ = SSL_PENDING.remove(&id);
        } else if starts_tls_record(call, arg) {
            let _ = SSL_FD.insert(&p.ssl, &fd, 0);
            let _ = SSL_PENDING.remove(&id);
        }
    }
    false
}

/// Where payload bytes are in user memory.
#[derive(Clone, Copy)]
pub(crate) enum Source {
    /// One buffer.
    Buf(u64),
    /// An iovec array and its length.
    Iov(u64, u64),
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

/// Whether an outbound call's first bytes (`arg` is its second argument)
/// are a TLS record header (content type 20 to 23, major version 3).
#[inline(always)]
fn starts_tls_record(call: Call, arg: u64) -> bool {
    let first_iov = |iov: u64| {
        // SAFETY: user memory read by helper.
        unsafe { bpf_probe_read_user(iov as *const u64) }.unwrap_or(0)
    };
    let buf = match call {
        Call::Write | Call::Sendto => arg,
        Call::Writev => first_iov(arg),
        Call::Sendmsg => first_iov(user_msg_iov(arg).0),
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
