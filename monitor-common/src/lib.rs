//! Types shared by the kernel programs (`monitor-ebpf`) and the daemon (`monitor`).
//!
//! Everything here is `#[repr(C)]`, `Copy`, and laid out with explicit padding
//! so that both sides agree byte for byte; `monitor/src/sensor/layout_tests.rs`
//! pins every size and offset. Flags are `u32`, never `bool`.
//!
//! One kernel record is a [`RawEvent`]: a fixed [`EventHeader`], a
//! kind-specific [`EventBody`], up to [`MAX_STRS`] [`StrRef`]s describing
//! strings, and a data area holding those strings. Only
//! `RAW_EVENT_FIXED_LEN + data_len` bytes cross the ring buffer.
#![no_std]

pub mod probes;
pub mod syscalls;

/// Declares a `#[repr(u32)]` enum and its `from_u32` decoder from one list
/// of variants, so that the two cannot drift apart.
macro_rules! u32_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Decodes a raw value; `None` for one no variant has.
            pub fn from_u32(v: u32) -> Option<Self> {
                match v {
                    $( $value => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

/// Length of a task's `comm`, including the terminating NUL.
pub const COMM_LEN: usize = 16;
/// Bytes read per path component (NAME_MAX + NUL).
pub const NAME_READ: usize = 256;
/// Strings start below this offset in the data area; one string read is at most this long.
pub const DATA_HALF: usize = 4096;
/// Size of the data area: twice [`DATA_HALF`] so that a read of up to
/// `DATA_HALF` bytes at any start offset below `DATA_HALF` stays inside it
/// (the shape the verifier can prove).
pub const DATA_CAP: usize = 2 * DATA_HALF;
/// Maximum number of path components walked for one path.
pub const MAX_COMPONENTS: u32 = 48;
/// Bytes of a new process's argument block read at exec.
pub const ARGV_READ: usize = 1024;
/// How many strings one event can carry.
pub const MAX_STRS: usize = 4;

u32_enum! {
    /// What a [`RawEvent`] reports; stored in [`EventHeader::kind`].
    pub enum EventKind {
        /// A file syscall; the body is [`FileBody`].
        File = 1,
        /// A socket connect or accept; the body is [`NetBody`].
        Net = 2,
        /// A successful exec; the body is [`ExecBody`].
        Exec = 3,
        /// A new process (not a thread); the body is [`ForkBody`].
        Fork = 4,
        /// A process exit; the body is [`ExitBody`].
        Exit = 5,
        /// Bytes a process sent or received on a socket, or through TLS: a
        /// [`PayloadEvent`], not a [`RawEvent`].
        Payload = 6,
    }
}

u32_enum! {
    /// Which file syscall a [`FileBody`] describes.
    pub enum FileOp {
        /// `openat(dfd, path, flags, mode)`.
        Openat = 1,
        /// `openat2(dfd, path, how, size)`.
        Openat2 = 2,
        /// `unlinkat(dfd, path, flags)`.
        Unlinkat = 3,
        /// `renameat2(olddfd, old, newdfd, new, flags)`.
        Renameat2 = 4,
        /// `truncate(path, length)`.
        Truncate = 5,
        /// `ftruncate(fd, length)`.
        Ftruncate = 6,
        /// `sendfile(out, in, offset, count)` from a file to a socket: `dfd`
        /// is the file's fd, `dfd2` the socket's, `ret` the bytes, `sock` the
        /// socket.
        Sendfile = 7,
        /// `splice(in, off, out, off, len, flags)`: into a pipe (`mode` is the
        /// pipe's id, `sock` empty), or out of a pipe a file was spliced into,
        /// to a socket (`mode` the pipe's id, `sock` the socket).
        Splice = 8,
    }
}

u32_enum! {
    /// Which socket syscall a [`NetBody`] describes.
    pub enum NetOp {
        /// `connect(fd, addr, len)`: `addr` is the remote end.
        Connect = 1,
        /// `accept`/`accept4(fd, addr, len)`: `addr` is the peer, `ret` the new fd.
        Accept = 2,
    }
}

/// [`EventHeader::flags`]: a string was cut short (path too deep or too long).
pub const FLAG_TRUNCATED: u32 = 1 << 0;
/// [`EventHeader::flags`]: the access was submitted through an io_uring
/// (its result is not known when it is reported).
pub const FLAG_IO_URING: u32 = 1 << 1;

/// Common fields of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// An [`EventKind`].
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns`).
    pub ktime_ns: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id (thread-group id).
    pub tgid: u32,
    /// Process id of the parent (`real_parent->tgid`).
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// Task name, NUL padded.
    pub comm: [u8; COMM_LEN],
}

/// Body of a file event ([`EventKind::File`]).
///
/// Strings: `strs[0]` is the first path's directory or (for a successful
/// open, `ftruncate`) the file itself, `strs[1]` the first path as the
/// caller passed it; `strs[2]`/`strs[3]` the same for the rename target.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileBody {
    /// A [`FileOp`].
    pub op: u32,
    /// The directory fd the path is relative to (`AT_FDCWD` = -100), or the fd for `ftruncate`.
    pub dfd: i32,
    /// Syscall result: an fd or 0, or a negative errno.
    pub ret: i64,
    /// Open flags, unlink flags or rename flags.
    pub flags: u64,
    /// Creation mode for opens; new length for truncates.
    pub mode: u64,
    /// The rename target's directory fd.
    pub dfd2: i32,
    /// When a path was cut short: the mark of its nearest ancestor that is a
    /// classified directory ([`CLASS_DIRS`](ClassDirKey)), found by walking
    /// the dentries to the root; 0 for none, [`MARK_UNRESOLVED`] when even
    /// that walk ran out. 0 for paths that were not cut.
    pub class_mark: u32,
    /// The socket a transfer (`Sendfile`, `Splice`) went to; empty otherwise.
    pub sock: SockInfo,
    /// For a successful open: the id the kernel's path cache gave the
    /// opened file's path (never 0). When `strs[0]` carries the path, the
    /// daemon learns it under this id; when `strs[0]` is empty, the path is
    /// the one learnt earlier (a cache hit: no walk, no path bytes). 0 for
    /// every other record.
    pub path_id: u64,
    /// 0 for one access. Otherwise this record stands for that many opens
    /// the kernel counted instead of sending (the same process, file and
    /// flags as a record sent before); the header's time is the first of
    /// them, [`FileBody::repeats_last_ns`] the last.
    pub repeats: u64,
    /// The time of the last counted open (`bpf_ktime_get_ns`).
    pub repeats_last_ns: u64,
}

/// Open flags never counted in the kernel: an open that creates, truncates
/// or makes a temporary file matters on its own (`O_CREAT | O_TRUNC |
/// O_TMPFILE`).
pub const REPEAT_NOT_COUNTED: u64 = 0o100 | 0o1000 | 0o20200000;
/// Repeat windows the kernel keeps open at once (per process, file, flags
/// and CPU); past it every open is sent.
pub const MAX_REPEAT_WINDOWS: u32 = 16384;

/// Index in the `PATH_GEN` array the kernel bumps whenever a path may have
/// changed its spelling (a rename or a mount change, at entry and at exit). A cached path is served only while both generations are
/// the ones it was resolved under.
pub const PATH_GEN_KERNEL: u32 = 0;
/// Index in the `PATH_GEN` array the daemon bumps when it forgets the paths
/// it learnt (its table of paths by id is full) or changes the classified
/// directories (a cached cut path carries their mark).
pub const PATH_GEN_DAEMON: u32 = 1;
/// Paths the kernel's path cache holds (least recently used go first).
pub const MAX_CACHED_PATHS: u32 = 32768;

/// A key of the kernel's map of classified directories (filled by the
/// daemon from the class globs): the directory's device, as the kernel
/// numbers it (`MAJOR << 20 | MINOR`), and inode number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClassDirKey {
    /// `super_block.s_dev`.
    pub dev: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// `inode.i_ino`.
    pub ino: u64,
}

/// [`FileBody::class_mark`]: the walk to the root did not finish.
pub const MARK_UNRESOLVED: u32 = u32::MAX;
/// Classified directories the kernel map holds at most.
pub const MAX_CLASS_DIRS: u32 = 4096;
/// Ancestors a cut path's mark walk visits at most.
pub const MAX_MARK_WALK: u32 = 8192;

/// Body of a socket event ([`EventKind::Net`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NetBody {
    /// A [`NetOp`].
    pub op: u32,
    /// The socket fd the call was made on.
    pub fd: i32,
    /// Syscall result: 0 or a new fd, or a negative errno.
    pub ret: i64,
    /// Address family (`AF_INET` = 2, `AF_INET6` = 10, others carry no address).
    pub family: u16,
    /// Port, host byte order.
    pub port: u16,
    /// Explicit padding.
    pub _pad: u32,
    /// IPv4 address in the first four bytes, or the IPv6 address.
    pub addr: [u8; 16],
    /// The connection's id, as payload records carry it (`SockInfo::conn_id`).
    pub conn_id: u64,
}

/// Body of an exec event ([`EventKind::Exec`]).
///
/// Strings: `strs[0]` the executable (`mm->exe_file`, resolved), `strs[1]` the
/// filename as passed to exec, `strs[2]` the argument block (NUL separated).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecBody {
    /// The thread id that called exec (differs from `tgid` for a non-leader thread).
    pub old_pid: u32,
    /// The audit login uid (`u32::MAX`: not set, or no audit in this kernel).
    pub loginuid: u32,
    /// The controlling terminal as `major << 20 | minor` (0: none).
    pub tty: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// [`ExecBody::tty`]'s encoding of a device number.
pub const fn tty_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | (minor & 0xf_ffff)
}

/// Body of a fork event ([`EventKind::Fork`]); the header describes the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkBody {
    /// Process id of the new process.
    pub child_pid: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// `clone` flags.
    pub clone_flags: u64,
}

/// Body of an exit event ([`EventKind::Exit`]).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitBody {
    /// `task->exit_code`: exit status in bits 8..16, signal in bits 0..7.
    pub exit_code: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// Kind-specific fields; [`EventHeader::kind`] says which one is set.
#[repr(C)]
#[derive(Clone, Copy)]
pub union EventBody {
    /// For [`EventKind::File`].
    pub file: FileBody,
    /// For [`EventKind::Net`].
    pub net: NetBody,
    /// For [`EventKind::Exec`].
    pub exec: ExecBody,
    /// For [`EventKind::Fork`].
    pub fork: ForkBody,
    /// For [`EventKind::Exit`].
    pub exit: ExitBody,
    /// Pins the union's size.
    pub raw: [u64; 6],
}

/// How the bytes a [`StrRef`] points at are to be read.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrKind {
    /// No string.
    None = 0,
    /// Bytes as read, one NUL-terminated string.
    Raw = 1,
    /// Path components walked up from a dentry: NUL-terminated names, leaf first.
    /// An empty list means the root directory.
    Components = 2,
    /// Several NUL-terminated strings (an argument vector).
    List = 3,
}

/// One string in the data area of a [`RawEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StrRef {
    /// Start offset in [`RawEvent::data`].
    pub off: u16,
    /// Length in bytes, NULs included.
    pub len: u16,
    /// A [`StrKind`].
    pub kind: u16,
    /// [`STR_CUT`] when the string was cut short.
    pub flags: u16,
}

/// [`StrRef::flags`]: the string is cut short (a path's leaf-most
/// components only, or a prefix of a user string).
pub const STR_CUT: u16 = 1;

/// One record as the kernel builds it (in a per-CPU scratch slot).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RawEvent {
    /// Common fields.
    pub header: EventHeader,
    /// Kind-specific fields.
    pub body: EventBody,
    /// Strings in `data`.
    pub strs: [StrRef; MAX_STRS],
    /// String bytes.
    pub data: [u8; DATA_CAP],
}

// Every string read is at most DATA_HALF bytes at a start offset below
// DATA_HALF; the data area must hold the largest such read.
const _: () = assert!(DATA_HALF - 1 + DATA_HALF <= DATA_CAP);
const _: () = assert!(ARGV_READ * 2 <= DATA_HALF && NAME_READ <= DATA_HALF);
// String offsets and lengths are u16.
const _: () = assert!(DATA_CAP <= u16::MAX as usize);

/// Bytes of a [`RawEvent`] before its data area; a record on the ring is this
/// many bytes plus the used part of `data`.
pub const RAW_EVENT_FIXED_LEN: usize = core::mem::size_of::<RawEvent>() - DATA_CAP;

/// Most bytes captured from one call; the daemon's limit can only lower it.
pub const PAYLOAD_MAX: usize = 16384;
/// Size of a payload record's data area: twice [`PAYLOAD_MAX`] so that a copy
/// of up to `PAYLOAD_MAX` bytes at any offset below `PAYLOAD_MAX` fits.
pub const PAYLOAD_AREA: usize = 2 * PAYLOAD_MAX;
/// Most iovecs walked for one `writev`/`sendmsg`.
pub const MAX_IOVECS: u32 = 16;

u32_enum! {
    /// Which call a [`PayloadBody`] describes.
    pub enum PayloadOp {
        /// `write(fd, buf, n)` on a socket.
        Write = 1,
        /// `writev(fd, iov, n)` on a socket.
        Writev = 2,
        /// `sendto(fd, buf, n, flags, addr, len)`.
        Sendto = 3,
        /// `sendmsg(fd, msg, flags)`.
        Sendmsg = 4,
        /// OpenSSL `SSL_write` / `SSL_write_ex`, GnuTLS `gnutls_record_send` (plaintext).
        SslWrite = 5,
        /// `read(fd, buf, n)` on a socket (inbound).
        Read = 6,
        /// `readv(fd, iov, n)` on a socket (inbound).
        Readv = 7,
        /// `recvfrom(fd, buf, n, flags, addr, len)` (inbound).
        Recvfrom = 8,
        /// `recvmsg(fd, msg, flags)` (inbound).
        Recvmsg = 9,
        /// OpenSSL `SSL_read` / `SSL_read_ex` (plaintext, inbound).
        SslRead = 10,
        /// Go `crypto/tls.(*Conn).Write` (plaintext, taken at the call).
        GoTlsWrite = 11,
        /// One message of `sendmmsg(fd, msgvec, vlen, flags)`.
        Sendmmsg = 12,
    }
}

/// [`PayloadBody::flags`]: plaintext taken from the TLS library.
pub const PAYLOAD_TLS: u32 = 1 << 0;
/// [`PayloadBody::flags`]: fewer bytes captured than the call moved.
pub const PAYLOAD_TRUNCATED: u32 = 1 << 1;
/// [`PayloadBody::flags`]: the socket behind a TLS connection is not known yet.
pub const PAYLOAD_FD_UNKNOWN: u32 = 1 << 2;
/// [`PayloadBody::flags`]: bytes the process received, not sent.
pub const PAYLOAD_INBOUND: u32 = 1 << 3;
/// [`PayloadBody::flags`]: sent through an io_uring (taken at submission).
pub const PAYLOAD_IO_URING: u32 = 1 << 4;
/// [`PayloadBody::flags`]: the write was stopped before the library
/// encrypted it (a card number, an enforcing role): the caller was killed.
pub const PAYLOAD_PREVENTED: u32 = 1 << 5;
/// Value of the enforcement maps: kill the caller.
pub const PREVENT_KILL: u32 = 1;

/// What the kernel knows of a socket, by `(tgid << 32) | fd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockInfo {
    /// Address family (`AF_INET`, `AF_INET6`).
    pub family: u16,
    /// Remote port, host byte order (0 until connected).
    pub port: u16,
    /// Explicit padding.
    pub _pad: u32,
    /// Remote address.
    pub addr: [u8; 16],
    /// Distinguishes connections that reuse an fd number (`bpf_ktime_get_ns` at creation).
    pub conn_id: u64,
}

/// Body of a payload record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PayloadBody {
    /// A [`PayloadOp`].
    pub op: u32,
    /// The socket fd (-1 when unknown).
    pub fd: i32,
    /// Bytes the call moved.
    pub size: i64,
    /// Bytes captured in the data area.
    pub captured: u32,
    /// `PAYLOAD_*` bits.
    pub flags: u32,
    /// The socket's remote end.
    pub sock: SockInfo,
}

/// A payload record: header, body, then `captured` bytes of data.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PayloadEvent {
    /// Common fields; `kind` is [`EventKind::Payload`].
    pub header: EventHeader,
    /// Payload fields.
    pub body: PayloadBody,
    /// The bytes.
    pub data: [u8; PAYLOAD_AREA],
}

/// Bytes of a [`PayloadEvent`] before its data.
pub const PAYLOAD_FIXED_LEN: usize = core::mem::size_of::<PayloadEvent>() - PAYLOAD_AREA;

/// Index in the `COUNTERS` per-CPU array: records sent to the ring buffer.
pub const COUNTER_EMITTED: u32 = 0;
/// Records lost because the ring buffer was full.
pub const COUNTER_RINGBUF_FULL: u32 = 1;
/// Records sent with [`FLAG_TRUNCATED`].
pub const COUNTER_TRUNCATED: u32 = 2;
/// Syscall exits whose arguments could not be read from the task's saved
/// registers (`syscalls`).
pub const COUNTER_ARGS_MISSING: u32 = 3;
/// Payload records whose bytes were cut at the capture limit.
pub const COUNTER_PAYLOAD_TRUNCATED: u32 = 4;
/// Cut paths whose classified-ancestor walk ran out
/// ([`MARK_UNRESOLVED`]).
pub const COUNTER_MARK_UNRESOLVED: u32 = 5;
/// TLS writes stopped in the kernel (a card number from an enforcing role).
pub const COUNTER_PREVENTED: u32 = 6;
/// Successful opens whose path came from the kernel's path cache (no walk).
pub const COUNTER_PATH_CACHED: u32 = 7;
/// Opens counted in the kernel instead of sent (each one is reported in a
/// later record's [`FileBody::repeats`]).
pub const COUNTER_REPEATS_COUNTED: u32 = 8;
/// Opens sent one by one because every kernel repeat window was taken.
pub const COUNTER_REPEATS_UNCOUNTED: u32 = 9;
/// Number of counters.
pub const COUNTER_COUNT: u32 = 10;

/// Byte offsets of kernel struct members, read from the kernel's BTF at start-up
/// and handed to the programs as a global. rustc emits no CO-RE relocations,
/// so this is how the programs walk `task_struct`, `dentry` and `mount`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.fs`
    pub task_fs: u32,
    /// `task_struct.files`
    pub task_files: u32,
    /// `task_struct.mm`
    pub task_mm: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `fs_struct.root`
    pub fs_root: u32,
    /// `fs_struct.pwd`
    pub fs_pwd: u32,
    /// `path.mnt`
    pub path_mnt: u32,
    /// `path.dentry`
    pub path_dentry: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdt_max_fds: u32,
    /// `fdtable.fd`
    pub fdt_fd: u32,
    /// `file.f_path`
    pub file_f_path: u32,
    /// `dentry.d_parent`
    pub dentry_d_parent: u32,
    /// `dentry.d_name` + `qstr.name`
    pub dentry_d_name_name: u32,
    /// `mount.mnt` (the embedded `vfsmount`)
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_mnt_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mnt_mountpoint: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_mnt_root: u32,
    /// `mm_struct.arg_start`
    pub mm_arg_start: u32,
    /// `mm_struct.arg_end`
    pub mm_arg_end: u32,
    /// `mm_struct.exe_file`
    pub mm_exe_file: u32,
    /// `file.private_data` (the `struct socket` of a socket file)
    pub file_private_data: u32,
    /// `socket.sk`
    pub socket_sk: u32,
    /// `sock.__sk_common.skc_family`
    pub sock_family: u32,
    /// `sock.__sk_common.skc_dport`
    pub sock_dport: u32,
    /// `sock.__sk_common.skc_daddr`
    pub sock_daddr: u32,
    /// `sock.__sk_common.skc_v6_daddr`
    pub sock_v6_daddr: u32,
    /// `dentry.d_inode`
    pub dentry_d_inode: u32,
    /// `inode.i_ino`
    pub inode_i_ino: u32,
    /// `inode.i_sb`
    pub inode_i_sb: u32,
    /// `super_block.s_dev`
    pub super_block_s_dev: u32,
    /// `io_kiocb.cmd` (the request's per-opcode data; 0 without io_uring)
    pub io_kiocb_cmd: u32,
    /// `io_kiocb.flags` (`REQ_F_FIXED_FILE` is bit 0)
    pub io_kiocb_flags: u32,
    /// `io_kiocb.cqe.fd` (the SQE's fd)
    pub io_kiocb_cqe_fd: u32,
    /// `io_open.dfd`
    pub io_open_dfd: u32,
    /// `io_open.filename`
    pub io_open_filename: u32,
    /// `io_open.how` (`open_how.flags`, then `mode`)
    pub io_open_how: u32,
    /// `filename.uptr` (the user's string)
    pub filename_uptr: u32,
    /// `io_sr_msg.buf` (also `umsg` for sendmsg)
    pub io_sr_msg_buf: u32,
    /// `io_sr_msg.len`
    pub io_sr_msg_len: u32,
    /// `task_struct.loginuid` (0 without audit)
    pub task_loginuid: u32,
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `signal_struct.tty`
    pub signal_tty: u32,
    /// `tty_struct.index`
    pub tty_index: u32,
    /// `tty_struct.driver`
    pub tty_driver: u32,
    /// `tty_driver.major`
    pub tty_driver_major: u32,
    /// `tty_driver.minor_start`
    pub tty_driver_minor_start: u32,
    /// `inode.i_generation`
    pub inode_i_generation: u32,
}

/// Settings the daemon hands the programs as a global at load time.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SensorConfig {
    /// The daemon's own process id; its activity is never reported.
    pub self_tgid: u32,
    /// Most payload bytes captured per call (at most [`PAYLOAD_MAX`]).
    pub payload_limit: u32,
    /// The kernel's repeat window, ns: a successful open of a file the same
    /// process opened with the same flags less than this long before (and
    /// sent a record for) is counted, not sent; 0 sends every open.
    pub repeat_window_ns: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `#[repr(C)]` integers with explicit padding; every bit pattern is valid.
    unsafe impl aya::Pod for super::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SensorConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClassDirKey {}
}
