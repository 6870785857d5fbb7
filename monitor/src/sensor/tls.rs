//! TLS discovery: which binaries and libraries carry a TLS implementation
//! whose plaintext the sensor can read, found by their ELF symbols (OpenSSL
//! or BoringSSL exporting `SSL_write` and `SSL_read`, GnuTLS, Go's
//! `crypto/tls`). Each file is looked at once, by device and inode (and,
//! for executables, modification time: a binary rewritten in place is
//! looked at again); the decision is cached.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use monitor_common::probes::{Hook, TlsFlavour, PROBES};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// Files larger than this are not looked at (no TLS library is).
const MAX_FILE: u64 = 1 << 30;

/// A file found to carry TLS: where each probed function starts, as a file
/// offset (what a uprobe attaches to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The implementation.
    pub flavour: TlsFlavour,
    /// Each probed symbol of that flavour present in the file, and its file offset.
    pub offsets: Vec<(&'static str, u64)>,
}

/// Why a file could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// It could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not an ELF file the parser accepts.
    #[error("{path}: not a readable ELF file: {why}")]
    Elf {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// The symbols each flavour is recognised by: all must be defined.
fn signature(flavour: TlsFlavour) -> &'static [&'static str] {
    match flavour {
        TlsFlavour::OpenSsl => &["SSL_write", "SSL_read"],
        TlsFlavour::GnuTls => &["gnutls_record_send"],
        TlsFlavour::Go => &[monitor_common::probes::GO_TLS_WRITE],
    }
}

/// The implementations looked for, in order.
const FLAVOURS: [TlsFlavour; 3] = [TlsFlavour::OpenSsl, TlsFlavour::GnuTls, TlsFlavour::Go];

/// Every symbol some TLS probe attaches to.
fn probed_symbols() -> HashSet<&'static str> {
    PROBES
        .iter()
        .filter_map(|p| match p.hook {
            Hook::Tls { symbol, .. } => Some(symbol),
            Hook::Tracepoint { .. } | Hook::Daemon { .. } => None,
        })
        .collect()
}

/// Reads `path`'s dynamic and static symbol tables and says which TLS
/// implementations it defines (none for most files).
pub fn inspect(path: &Path) -> Result<Vec<Found>, InspectError> {
    let io = |source| InspectError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() > MAX_FILE {
        return Ok(Vec::new());
    }
    let cache = object::read::ReadCache::new(file);
    let elf = object::File::parse(&cache).map_err(|e| InspectError::Elf {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    let wanted = probed_symbols();
    let mut at: HashMap<&'static str, u64> = HashMap::new();
    // The exported symbols first: a library, or a binary exporting its
    // OpenSSL (Node), needs nothing else; the full table (Go, static
    // OpenSSL) can be a hundred times larger.
    collect(&elf, elf.dynamic_symbols(), &wanted, &mut at);
    if !FLAVOURS
        .iter()
        .any(|&f| signature(f).iter().all(|s| at.contains_key(s)))
    {
        collect(&elf, elf.symbols(), &wanted, &mut at);
    }
    let mut found = Vec::new();
    for flavour in FLAVOURS {
        if !signature(flavour).iter().all(|s| at.contains_key(s)) {
            continue;
        }
        let mut offsets: Vec<(&'static str, u64)> = PROBES
            .iter()
            .filter_map(|p| match p.hook {
                Hook::Tls { flavour: f, symbol } if f == flavour => {
                    at.get(symbol).map(|&o| (symbol, o))
                }
                _ => None,
            })
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        found.push(Found { flavour, offsets });
    }
    Ok(found)
}

/// Records where each wanted symbol of `symbols` starts, as a file offset.
fn collect<'d, R: object::ReadRef<'d> + 'd>(
    elf: &object::File<'d, R>,
    symbols: impl Iterator<Item = object::Symbol<'d, 'd, R>>,
    wanted: &HashSet<&'static str>,
    at: &mut HashMap<&'static str, u64>,
) {
    for sym in symbols {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        let Some(&name) = wanted.get(name) else {
            continue;
        };
        if at.contains_key(name) {
            continue;
        }
        let Some(section) = sym
            .section_index()
            .and_then(|i| elf.section_by_index(i).ok())
        else {
            continue;
        };
        let Some((file_offset, _)) = section.file_range() else {
            continue;
        };
        if let Some(off) = sym
            .address()
            .checked_sub(section.address())
            .and_then(|d| d.checked_add(file_offset))
        {
            at.insert(name, off);
        }
    }
}

/// A file as the kernel knows it: device and inode (and, for an
/// executable, its modification time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Modification time (ns), 0 when not looked at.
    pub mtime_ns: i64,
}

impl FileId {
    /// The id of the file at `path` (following links).
    pub fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path)?;
        Ok(Self {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        })
    }
}

/// One executable mapping of a process: the file's id and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The file.
    pub id: FileId,
    /// Its path as the process sees it.
    pub path: PathBuf,
}

/// The files `pid` has mapped executable (its binary and libraries), each
/// once, from `/proc/PID/maps`. Device and inode come from the maps line;
/// the modification time is not read.
pub fn executable_mappings(pid: u32) -> std::io::Result<Vec<Mapped>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut out: Vec<Mapped> = Vec::new();
    for line in text.lines() {
        // start-end perms offset major:minor inode path
        let mut f = line.split_ascii_whitespace();
        let (Some(_), Some(perms), Some(_), Some(dev), Some(ino)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.collect::<Vec<_>>().join(" ");
        if !perms.contains('x') || !path.starts_with('/') || path.ends_with(" (deleted)") {
            continue;
        }
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(major), Ok(minor), Ok(ino)) = (
            u64::from_str_radix(major, 16),
            u64::from_str_radix(minor, 16),
            ino.parse::<u64>(),
        ) else {
            continue;
        };
        if ino == 0 {
            continue;
        }
        let id = FileId {
            dev: libc::makedev(major as u32, minor as u32),
            ino,
            mtime_ns: 0,
        };
        if !out.iter().any(|m| m.id == id) {
            out.push(Mapped {
                id,
                path: PathBuf::from(path),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_libssl_is_openssl_with_every_probed_symbol() {
        let Some(lib) = crate::sensor::find_libssl().into_iter().next() else {
            panic!("no system libssl to look at");
        };
        let found = inspect(&lib).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].flavour, TlsFlavour::OpenSsl);
        let names: Vec<&str> = found[0].offsets.iter().map(|(s, _)| *s).collect();
        for s in [
            "SSL_do_handshake",
            "SSL_write",
            "SSL_write_ex",
            "SSL_read",
            "SSL_read_ex",
        ] {
            assert!(names.contains(&s), "{s} missing from {names:?}");
        }
    }

    #[test]
    fn a_program_that_imports_ssl_write_is_not_a_tls_library() {
        // curl calls SSL_write through libssl: undefined in its own symbols.
        let found = inspect(Path::new("/usr/bin/curl")).unwrap();
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_file_that_is_not_elf_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"\x7fELF\x02\x01\x01garbage").unwrap();
        assert!(matches!(inspect(&p), Err(InspectError::Elf { .. })));
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        assert!(matches!(inspect(&p), Err(InspectError::Elf { .. })));
    }

    #[test]
    fn this_process_maps_itself_and_libc() {
        let maps = executable_mappings(std::process::id()).unwrap();
        let me = FileId::of(Path::new("/proc/self/exe")).unwrap();
        assert!(maps
            .iter()
            .any(|m| m.id.dev == me.dev && m.id.ino == me.ino));
        assert!(maps
            .iter()
            .any(|m| m.path.to_string_lossy().contains("libc")));
    }
}
