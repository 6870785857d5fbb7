//! What the kernel programs read of a syscall at its exit, on x86-64: the
//! calls `sys_exit` and `sys_exit_payload` handle, by the number in the
//! exit record, and where the task's saved user registers hold their
//! arguments. No program runs at those calls' entry: a syscall leaves the
//! registers it was entered with as they were, so its exit reads its
//! arguments there.

/// Syscall numbers (x86-64) of the calls handled at exit.
pub mod nr {
    /// `open`.
    pub const OPEN: i32 = 2;
    /// `openat`.
    pub const OPENAT: i32 = 257;
    /// `openat2`.
    pub const OPENAT2: i32 = 437;
    /// `unlink`.
    pub const UNLINK: i32 = 87;
    /// `unlinkat`.
    pub const UNLINKAT: i32 = 263;
    /// `rename`.
    pub const RENAME: i32 = 82;
    /// `renameat`.
    pub const RENAMEAT: i32 = 264;
    /// `renameat2`.
    pub const RENAMEAT2: i32 = 316;
    /// `truncate`.
    pub const TRUNCATE: i32 = 76;
    /// `ftruncate`.
    pub const FTRUNCATE: i32 = 77;
    /// `connect`.
    pub const CONNECT: i32 = 42;
    /// `accept`.
    pub const ACCEPT: i32 = 43;
    /// `accept4`.
    pub const ACCEPT4: i32 = 288;
    /// `sendfile` (its tracepoints are `sys_*_sendfile64`).
    pub const SENDFILE: i32 = 40;
    /// `splice`.
    pub const SPLICE: i32 = 275;
    /// `socket`.
    pub const SOCKET: i32 = 41;
    /// `write`.
    pub const WRITE: i32 = 1;
    /// `writev`.
    pub const WRITEV: i32 = 20;
    /// `sendto`.
    pub const SENDTO: i32 = 44;
    /// `sendmsg`.
    pub const SENDMSG: i32 = 46;
    /// `sendmmsg`.
    pub const SENDMMSG: i32 = 307;
    /// `read`.
    pub const READ: i32 = 0;
    /// `readv`.
    pub const READV: i32 = 19;
    /// `recvfrom`.
    pub const RECVFROM: i32 = 45;
    /// `recvmsg`.
    pub const RECVMSG: i32 = 47;
}

/// Byte offset in `struct pt_regs` (x86-64) of the first of the eight
/// words that hold a syscall's arguments: `r10, r9, r8, ax, cx, dx, si, di`.
pub const ARG_REGS_OFFSET: usize = 7 * 8;

/// Indexes into those eight words of the arguments in order: `di, si, dx,
/// r10, r8, r9` (the x86-64 syscall convention).
pub const ARG_REGS: [usize; 6] = [7, 6, 5, 0, 2, 1];
