//! TLS plaintext: uprobes on OpenSSL's `SSL_write`/`SSL_read` (and `_ex`)
//! and GnuTLS's `gnutls_record_send`/`_recv` stash the buffer; the return
//! probes capture what the library took. Go's `crypto/tls` is read at the
//! call (Go moves stacks: a return probe would crash the program).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{uprobe, uretprobe},
    programs::{ProbeContext, RetProbeContext},
};
use monitor_common::{PayloadOp, SockInfo, PAYLOAD_FD_UNKNOWN, PAYLOAD_INBOUND, PAYLOAD_TLS};

use crate::emit::self_tgid;
use crate::maps::{SslArgs, SslPending, SOCKETS, SSL_ARGS, SSL_FD, SSL_PENDING};
use crate::net::sock_key;
use crate::payload::{emit_payload, Source};
use crate::prevent::prevent_card;

#[inline(always)]
pub(crate) fn ssl_enter(ctx: &ProbeContext, ex: bool) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 == self_tgid() {
        return 0;
    }
    ssl_stash(ctx, id, ex);
    0
}

/// Entry of a TLS write: for an enforcing process, stop a card number
/// before it is encrypted; otherwise stash the call like a read.
#[inline(always)]
fn ssl_write_enter(ctx: &ProbeContext, ex: bool) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    let ssl = ctx.arg::<u64>(0).unwrap_or(0);
    let buf = ctx.arg::<u64>(1).unwrap_or(0);
    let size = if ex {
        ctx.arg::<u64>(2).unwrap_or(0) as i64
    } else {
        ctx.arg::<u64>(2).unwrap_or(0) as i32 as i64
    };
    let (fd, sock, flags) = match ssl_socket(tgid, ssl) {
        Some((fd, sock)) => (fd, sock, 0),
        None => (-1, SockInfo::default(), PAYLOAD_FD_UNKNOWN),
    };
    let tls = flags | PAYLOAD_TLS;
    if prevent_card(PayloadOp::SslWrite, fd, sock, tls, Source::Buf(buf), size) {
        return 0;
    }
    ssl_stash(ctx, id, ex);
    0
}

#[inline(always)]
fn ssl_stash(ctx: &ProbeContext, id: u64, ex: bool) {
    let args = SslArgs {
        ssl: ctx.arg::<u64>(0).unwrap_or(0),
        buf: ctx.arg::<u64>(1).unwrap_or(0),
        written: if ex {
            ctx.arg::<u64>(3).unwrap_or(0)
        } else {
            0
        },
        ex: ex as u64,
    };
    let _ = SSL_ARGS.insert(&id, &args, 0);
}

/// The socket fd an `SSL*` (or GnuTLS session) writes to, once learnt, and
/// what the socket table knows of it.
#[inline(always)]
fn ssl_socket(tgid: u32, ssl: u64) -> Option<(i32, SockInfo)> {
    // SAFETY: map value pointer, copied out at once.
    let fd = unsafe { *SSL_FD.get_ptr(&ssl)? };
    let sock = SOCKETS
        .get_ptr(&sock_key(tgid, fd))
        // SAFETY: map value pointer, copied out at once.
        .map(|s| unsafe { *s })
        .unwrap_or_default();
    Some((fd, sock))
}

/// Marks the thread as owing `ssl` its socket: the next TLS record it
/// writes to a socket names it (see `learns_tls_socket`).
#[inline(always)]
fn expect_socket(id: u64, ssl: u64) {
    if SSL_FD.get_ptr(&ssl).is_none() {
        let pending = SslPending {
            ssl,
            // SAFETY: helper without preconditions.
            at: unsafe { bpf_ktime_get_ns() },
        };
        let _ = SSL_PENDING.insert(&id, &pending, 0);
    }
}

/// `int SSL_do_handshake(SSL *ssl)`, `int SSL_read(SSL *ssl, ...)` (which
/// drives the handshake in clients such as Node), `int
/// gnutls_handshake(gnutls_session_t)`: the handshake's first record names
/// the session's socket before any plaintext is written. Costs one map
/// lookup once the socket is known.
#[uprobe]
pub fn ssl_handshake(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if (id >> 32) as u32 != self_tgid() {
        expect_socket(id, ctx.arg::<u64>(0).unwrap_or(0));
    }
    0
}

/// `func (c *tls.Conn) Write(b []byte) (int, error)`, Go's register ABI
/// (amd64, Go 1.17 and later): `c` in RAX, `b`'s pointer and length in RBX
/// and RCX. The plaintext is read at the call. The socket is
/// `c.conn.(*net.TCPConn).fd.pfd.Sysfd`: the interface's data word, the
/// `*netFD` at its start, `Sysfd` 16 bytes into it (after `fdMutex`).
#[uprobe]
pub fn go_tls_write(ctx: ProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let tgid = (id >> 32) as u32;
    if tgid == self_tgid() {
        return 0;
    }
    // SAFETY: the probe's register file, read in place.
    let (conn, buf, len) = match unsafe { ctx.regs.as_ref() } {
        Some(r) => (r.rax, r.rbx, r.rcx as i64),
        None => return 0,
    };
    if len <= 0 {
        return 0;
    }
    // SAFETY (all three): user memory read by helper.
    let data = unsafe { bpf_probe_read_user((conn + 8) as *const u64) }.unwrap_or(0);
    let netfd = unsafe { bpf_probe_read_user(data as *const u64) }.unwrap_or(0);
    let fd = unsafe { bpf_probe_read_user((netfd + 16) as *const i64) }.unwrap_or(-1) as i32;
    let (fd, sock, flags) = match SOCKETS.get_ptr(&sock_key(tgid, fd)) {
        // SAFETY: map value pointer, copied out at once.
        Some(s) => (fd, unsafe { *s }, PAYLOAD_TLS),
        None => (-1, SockInfo::default(), PAYLOAD_TLS | PAYLOAD_FD_UNKNOWN),
    };
    emit_payload(
        PayloadOp::GoTlsWrite,
        fd,
        len,
        flags,
        sock,
        Source::Buf(buf),
    );
    0
}

/// `int SSL_write(SSL *ssl, const void *buf, int num)`.
#[uprobe]
pub fn ssl_write(ctx: ProbeContext) -> u32 {
    ssl_write_enter(&ctx, false)
}

/// `int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written)`.
#[uprobe]
pub fn ssl_write_ex(ctx: ProbeContext) -> u32 {
    ssl_write_enter(&ctx, true)
}

/// `int SSL_read(SSL *ssl, void *buf, int num)`.
#[uprobe]
pub fn ssl_read(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, false)
}

/// `int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes)`.
#[uprobe]
pub fn ssl_read_ex(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, true)
}

/// Return of `SSL_write` and `SSL_write_ex`: the plaintext that was accepted.
#[uretprobe]
pub fn ssl_write_ret(ctx: RetProbeContext) -> u32 {
    ssl_return(&ctx, PayloadOp::SslWrite, PAYLOAD_TLS)
}

/// Return of `SSL_read` and `SSL_read_ex`: the plaintext now in the caller's buffer.
#[uretprobe]
pub fn ssl_read_ret(ctx: RetProbeContext) -> u32 {
    ssl_return(&ctx, PayloadOp::SslRead, PAYLOAD_TLS | PAYLOAD_INBOUND)
}

#[inline(always)]
pub(crate) fn ssl_return(ctx: &RetProbeContext, op: PayloadOp, flags: u32) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let args = match SSL_ARGS.get_ptr(&id) {
        // SAFETY: valid until removed below.
        Some(p) => unsafe { *p },
        None => return 0,
    };
    let _ = SSL_ARGS.remove(&id);
    let ret = ctx.ret::<i64>();
    let size = if args.ex != 0 {
        if ret != 1 {
            return 0;
        }
        // SAFETY: user memory read by helper.
        unsafe { bpf_probe_read_user(args.written as *const u64) }.unwrap_or(0) as i64
    } else {
        ret as i32 as i64
    };
    if size <= 0 {
        return 0;
    }
    let tgid = (id >> 32) as u32;
    let (fd, sock, flags) = match ssl_socket(tgid, args.ssl) {
        Some((fd, sock)) => (fd, sock, flags),
        None => {
            expect_socket(id, args.ssl);
            (-1, SockInfo::default(), flags | PAYLOAD_FD_UNKNOWN)
        }
    };
    emit_payload(op, fd, size, flags, sock, Source::Buf(args.buf));
    0
}
