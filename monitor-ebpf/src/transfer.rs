//! Transfers the kernel makes without the bytes crossing user memory:
//! `sendfile` of a file to a socket, and `splice` of a file into a pipe and
//! out of it to a socket. The record names the file (its path walked from
//! the fd, like an open) and the socket; the bytes themselves cannot be
//! inspected.

use monitor_common::{EventKind, FileBody, FileOp, SockInfo};

use crate::emit::{begin, kptr, submit, Cursor};
use crate::maps::{PIPE_FED, SOCKETS};
use crate::net::sock_key;
use crate::paths::{fd_file, push_fd_path, task_root};
use crate::syscall::{Call, Exit};

/// The id of the pipe (or any file) open at `fd`: its dentry's address.
#[inline(always)]
fn file_id(task: *const u8, fd: i64) -> u64 {
    let file = fd_file(task, fd);
    if file.is_null() {
        return 0;
    }
    kptr(file, offset!(file_f_path) + offset!(path_dentry)) as u64
}

/// Exit of `sendfile` and `splice` (from `sys_exit`).
#[inline(always)]
pub(crate) fn on_transfer_exit(a: &Exit) {
    let ret = a.ret;
    if ret <= 0 {
        return;
    }
    let tgid = (a.id >> 32) as u32;
    let x = &a.args;
    let splice = a.call == Call::Splice;
    // sendfile(out, in, ...); splice(in, off_in, out, off_out, ...)
    let (out_fd, in_fd) = if splice {
        (x[2] as i32, x[0] as i32)
    } else {
        (x[0] as i32, x[1] as i32)
    };
    if SOCKETS.get_ptr(&sock_key(tgid, in_fd)).is_some() {
        return; // socket to pipe: a proxy's splice, not a file leaving
    }
    let sock = SOCKETS
        .get_ptr(&sock_key(tgid, out_fd))
        // SAFETY: map value pointer, copied out at once.
        .map(|s| unsafe { *s });
    let Some((ev, task)) = begin(EventKind::File) else {
        return;
    };
    let mut pipe = 0u64;
    match (sock, splice) {
        // A file (or a fed pipe) sent to a socket.
        (Some(_), false) => {}
        (Some(_), true) => {
            pipe = file_id(task, in_fd as i64);
            if PIPE_FED.get_ptr(&pipe).is_none() {
                return; // bytes written into the pipe by the process: not a file
            }
        }
        // Sendfile from file to file: a copy, its open already recorded.
        (None, false) => return,
        // A file spliced into a pipe (or file): remember the pipe.
        (None, true) => {
            pipe = file_id(task, out_fd as i64);
            let _ = PIPE_FED.insert(&pipe, &1, 0);
        }
    }
    // Built in place, not through `file::file_body`: the copy that takes
    // puts `sys_exit` over the verifier's 512-byte combined stack.
    ev.body.file = FileBody {
        op: if splice {
            FileOp::Splice as u32
        } else {
            FileOp::Sendfile as u32
        },
        dfd: in_fd,
        ret,
        flags: 0,
        mode: pipe,
        dfd2: out_fd,
        class_mark: 0,
        sock: sock.unwrap_or(SockInfo::default()),
        path_id: 0,
        repeats: 0,
        repeats_last_ns: 0,
    };
    let root = task_root(task);
    let mut cur = Cursor { off: 0 };
    let mut mark = 0;
    ev.strs[0] = push_fd_path(ev, &mut cur, &root, task, in_fd as i64, &mut mark);
    ev.body.file.class_mark = mark;
    submit(ev, &cur);
}
