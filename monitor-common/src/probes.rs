//! The probe table: every kernel program and where it attaches, in one
//! place both sides read. The kernel crate defines a program of each name
//! (a test in the daemon checks the built object against this table); the
//! daemon's sensor attaches exactly what is listed here.

/// Where a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A tracepoint `category:name`.
    Tracepoint {
        /// The tracepoint's category (`syscalls`, `sched`, ...).
        category: &'static str,
        /// The tracepoint's name.
        name: &'static str,
    },
    /// A uprobe (or uretprobe) on `symbol` of every binary or library
    /// found to carry this TLS implementation.
    Tls {
        /// The TLS implementation.
        flavour: TlsFlavour,
        /// The function.
        symbol: &'static str,
    },
    /// A uprobe on a function of the daemon's own binary: the daemon calls
    /// it to have the kernel do something in its place.
    Daemon {
        /// The function (`#[no_mangle]` in the daemon).
        symbol: &'static str,
    },
}

/// A TLS implementation the sensor reads plaintext from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsFlavour {
    /// OpenSSL or BoringSSL (`SSL_write`): libssl, or linked into a binary (Node).
    OpenSsl,
    /// GnuTLS (`gnutls_record_send`).
    GnuTls,
    /// Go's `crypto/tls`, in a Go binary with its symbol table.
    Go,
}

impl TlsFlavour {
    /// Its name in `monitor status`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::OpenSsl => "openssl",
            Self::GnuTls => "gnutls",
            Self::Go => "go",
        }
    }
}

/// When a probe is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    /// Always.
    Always,
    /// Only with inbound capture on (`monitor run --capture-inbound`).
    Inbound,
}

/// One attachment of one program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The program's name in the kernel object.
    pub program: &'static str,
    /// Where it attaches.
    pub hook: Hook,
    /// When.
    pub when: When,
    /// The name `monitor status` lists it under (the syscall for a
    /// syscall's pair of probes); empty for the second of a pair.
    pub shown: &'static str,
}

/// A syscall handled at its exit alone by the program `$exit`, which
/// reads the arguments from the task's saved registers (`syscalls`).
macro_rules! exit_only {
    ($name:literal, $exit:literal, $when:ident) => {
        [Probe {
            program: $exit,
            hook: Hook::Tracepoint {
                category: "syscalls",
                name: concat!("sys_exit_", $name),
            },
            when: When::$when,
            shown: concat!("syscalls:", $name),
        }]
    };
}

/// The path cache's invalidation at entry and exit of a syscall that can
/// change how an existing path is spelt (`path_moved`).
macro_rules! moves_paths {
    ($name:literal) => {
        [
            Probe {
                program: "path_moved",
                hook: Hook::Tracepoint {
                    category: "syscalls",
                    name: concat!("sys_enter_", $name),
                },
                when: When::Always,
                shown: concat!("path-cache:", $name),
            },
            Probe {
                program: "path_moved",
                hook: Hook::Tracepoint {
                    category: "syscalls",
                    name: concat!("sys_exit_", $name),
                },
                when: When::Always,
                shown: "",
            },
        ]
    };
}

const fn tracepoint(program: &'static str, category: &'static str, shown: &'static str) -> Probe {
    Probe {
        program,
        hook: Hook::Tracepoint {
            category,
            name: program,
        },
        when: When::Always,
        shown,
    }
}

const fn tls(
    program: &'static str,
    flavour: TlsFlavour,
    symbol: &'static str,
    when: When,
) -> Probe {
    Probe {
        program,
        hook: Hook::Tls { flavour, symbol },
        when,
        shown: "",
    }
}

/// Flattens the table's groups at compile time.
const fn flatten<const N: usize>(groups: &[&[Probe]]) -> [Probe; N] {
    let mut out = [tracepoint("", "", ""); N];
    let (mut g, mut n) = (0, 0);
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            out[n] = groups[g][i];
            n += 1;
            i += 1;
        }
        g += 1;
    }
    assert!(n == N, "PROBE_COUNT does not match the table");
    out
}

const OPENSSL: TlsFlavour = TlsFlavour::OpenSsl;
const GNUTLS: TlsFlavour = TlsFlavour::GnuTls;

/// The Go function whose calls carry outbound TLS plaintext.
pub const GO_TLS_WRITE: &str = "crypto/tls.(*Conn).Write";

/// The daemon's function whose calls collect the kernel's repeat counts.
pub const FLUSH_REPEATS: &str = "monitor_flush_repeats";

/// How many entries [`PROBES`] has.
pub const PROBE_COUNT: usize = 61;

/// Every probe, in attach order.
pub const PROBES: [Probe; PROBE_COUNT] = flatten(&[
    // File and socket syscalls: the exit alone builds the record
    // (`sys_exit`), reading the arguments from the saved registers.
    &exit_only!("open", "sys_exit", Always),
    &exit_only!("openat", "sys_exit", Always),
    &exit_only!("openat2", "sys_exit", Always),
    &exit_only!("unlink", "sys_exit", Always),
    &exit_only!("unlinkat", "sys_exit", Always),
    &exit_only!("rename", "sys_exit", Always),
    &exit_only!("renameat", "sys_exit", Always),
    &exit_only!("renameat2", "sys_exit", Always),
    &exit_only!("truncate", "sys_exit", Always),
    &exit_only!("ftruncate", "sys_exit", Always),
    &exit_only!("connect", "sys_exit", Always),
    &exit_only!("accept", "sys_exit", Always),
    &exit_only!("accept4", "sys_exit", Always),
    // Sockets and the bytes sent on them (`sys_exit_payload`).
    &exit_only!("socket", "sys_exit_payload", Always),
    &exit_only!("write", "sys_exit_payload", Always),
    &exit_only!("writev", "sys_exit_payload", Always),
    &exit_only!("sendto", "sys_exit_payload", Always),
    &exit_only!("sendmsg", "sys_exit_payload", Always),
    &exit_only!("sendmmsg", "sys_exit_payload", Always),
    // Files sent to sockets by the kernel (`sys_exit`, `transfer.rs`).
    &exit_only!("sendfile64", "sys_exit", Always),
    &exit_only!("splice", "sys_exit", Always),
    // Bytes received, with inbound capture only.
    &exit_only!("read", "sys_exit_payload", Inbound),
    &exit_only!("readv", "sys_exit_payload", Inbound),
    &exit_only!("recvfrom", "sys_exit_payload", Inbound),
    &exit_only!("recvmsg", "sys_exit_payload", Inbound),
    // Renames and mount changes make cached paths stale. (An unlinked
    // file's cached path cannot be served to another file: the cache's key
    // holds the inode and its generation.)
    &moves_paths!("rename"),
    &moves_paths!("renameat"),
    &moves_paths!("renameat2"),
    &moves_paths!("mount"),
    &moves_paths!("umount"),
    &moves_paths!("move_mount"),
    &moves_paths!("pivot_root"),
    &[
        tracepoint("sys_enter_close", "syscalls", "syscalls:close"),
        // Process lifecycle.
        tracepoint("sched_process_exec", "sched", "sched:sched_process_exec"),
        tracepoint("task_newtask", "task", "task:task_newtask"),
        tracepoint("sched_process_exit", "sched", "sched:sched_process_exit"),
        // Requests submitted through an io_uring (opens, sends).
        tracepoint(
            "io_uring_submit_req",
            "io_uring",
            "io_uring:io_uring_submit_req",
        ),
        // TLS plaintext, on every binary and library found to carry it.
        tls("ssl_handshake", OPENSSL, "SSL_do_handshake", When::Always),
        // A client may drive its handshake through SSL_read (Node does).
        tls("ssl_handshake", OPENSSL, "SSL_read", When::Always),
        tls("ssl_write", OPENSSL, "SSL_write", When::Always),
        tls("ssl_write_ex", OPENSSL, "SSL_write_ex", When::Always),
        tls("ssl_write_ret", OPENSSL, "SSL_write", When::Always),
        tls("ssl_write_ret", OPENSSL, "SSL_write_ex", When::Always),
        tls("ssl_read", OPENSSL, "SSL_read", When::Inbound),
        tls("ssl_read_ex", OPENSSL, "SSL_read_ex", When::Inbound),
        tls("ssl_read_ret", OPENSSL, "SSL_read", When::Inbound),
        tls("ssl_read_ret", OPENSSL, "SSL_read_ex", When::Inbound),
        // GnuTLS's calls have SSL_write's and SSL_read's shape.
        tls("ssl_handshake", GNUTLS, "gnutls_handshake", When::Always),
        tls("ssl_write", GNUTLS, "gnutls_record_send", When::Always),
        tls("ssl_write_ret", GNUTLS, "gnutls_record_send", When::Always),
        tls("ssl_read", GNUTLS, "gnutls_record_recv", When::Inbound),
        tls("ssl_read_ret", GNUTLS, "gnutls_record_recv", When::Inbound),
        // Go: at the call only; inbound Go TLS is not read.
        tls("go_tls_write", TlsFlavour::Go, GO_TLS_WRITE, When::Always),
        // The kernel's repeat counts, collected when the daemon asks.
        Probe {
            program: "repeats_flush",
            hook: Hook::Daemon {
                symbol: FLUSH_REPEATS,
            },
            when: When::Always,
            shown: "daemon:monitor_flush_repeats",
        },
    ],
]);
