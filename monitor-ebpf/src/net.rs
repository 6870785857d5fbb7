//! Socket connect and accept: the peer's address from the call's
//! `sockaddr` or the socket itself, and the socket table payload capture reads.

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_user};
use monitor_common::{EventKind, NetBody, NetOp, SockInfo};

use crate::emit::{begin, current_task, kptr, kread, submit, Cursor};
use crate::maps::{AF_INET, AF_INET6, SOCKETS};
use crate::paths::fd_file;
use crate::syscall::Exit;

#[inline(always)]
pub(crate) fn on_net_exit(a: &Exit, op: NetOp) {
    let ret = a.ret;
    let addr_ptr = a.args[1];
    let accepted = matches!(op, NetOp::Accept) && ret >= 0;
    // The caller's sockaddr; an accept without one is answered from the socket itself.
    let (family, port, addr) = if addr_ptr != 0 {
        user_sockaddr(addr_ptr)
    } else if accepted {
        socket_peer(current_task(), ret)
    } else {
        return;
    };
    if family != AF_INET && family != AF_INET6 {
        return;
    }
    let Some((ev, _task)) = begin(EventKind::Net) else {
        return;
    };
    // SAFETY: helper without preconditions.
    let conn_id = unsafe { bpf_ktime_get_ns() };
    ev.body.net = NetBody {
        op: op as u32,
        fd: a.args[0] as i32,
        ret,
        family,
        port,
        _pad: 0,
        addr,
        conn_id,
    };
    let tgid = ev.header.tgid;
    submit(ev, &Cursor { off: 0 });
    // Remember the connection for payload capture: a connected (or connecting) fd, an accepted fd.
    let fd = match op {
        NetOp::Connect if ret == 0 || ret == -EINPROGRESS => a.args[0] as i64,
        NetOp::Accept if accepted => ret,
        _ => return,
    };
    let info = SockInfo {
        family,
        port,
        _pad: 0,
        addr,
        conn_id,
    };
    let _ = SOCKETS.insert(&sock_key(tgid, fd as i32), &info, 0);
}

/// (family, port, address) from a `sockaddr_in`/`sockaddr_in6` in user memory.
#[inline(always)]
pub(crate) fn user_sockaddr(ptr: u64) -> (u16, u16, [u8; 16]) {
    // sockaddr_in: family u16, port be16, addr [4]; sockaddr_in6: family, port, flowinfo u32, addr [16].
    // SAFETY (all reads): user memory read by helper; failures leave zeros.
    let family = unsafe { bpf_probe_read_user(ptr as *const u16) }.unwrap_or(0);
    let port = u16::from_be(unsafe { bpf_probe_read_user((ptr + 2) as *const u16) }.unwrap_or(0));
    let mut addr = [0u8; 16];
    if family == AF_INET {
        let v4 = unsafe { bpf_probe_read_user((ptr + 4) as *const [u8; 4]) }.unwrap_or([0; 4]);
        addr[..4].copy_from_slice(&v4);
    } else if family == AF_INET6 {
        addr = unsafe { bpf_probe_read_user((ptr + 8) as *const [u8; 16]) }.unwrap_or([0; 16]);
    }
    (family, port, addr)
}

/// (family, port, address) of the peer of the socket open at `fd`, read
/// from `file->private_data->sk->__sk_common`.
#[inline(always)]
pub(crate) fn socket_peer(task: *const u8, fd: i64) -> (u16, u16, [u8; 16]) {
    let socket = kptr(fd_file(task, fd), offset!(file_private_data));
    let sk = kptr(socket, offset!(socket_sk));
    let family = kread::<u16>(sk, offset!(sock_family));
    let port = u16::from_be(kread::<u16>(sk, offset!(sock_dport)));
    let mut addr = [0u8; 16];
    if family == AF_INET {
        addr[..4].copy_from_slice(&kread::<u32>(sk, offset!(sock_daddr)).to_ne_bytes());
    } else if family == AF_INET6 {
        let hi = kread::<u64>(sk, offset!(sock_v6_daddr));
        let lo = kread::<u64>(sk, offset!(sock_v6_daddr) + 8);
        addr[..8].copy_from_slice(&hi.to_ne_bytes());
        addr[8..].copy_from_slice(&lo.to_ne_bytes());
    }
    (family, port, addr)
}

pub(crate) const EINPROGRESS: i64 = 115;

#[inline(always)]
pub(crate) fn sock_key(tgid: u32, fd: i32) -> u64 {
    ((tgid as u64) << 32) | (fd as u32 as u64)
}
