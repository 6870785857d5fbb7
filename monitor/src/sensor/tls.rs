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

/// String tables up to this size are read whole, at their first name;
/// larger ones (none in a real binary) are read a name at a time.
const MAX_WHOLE_TABLE: u64 = 64 << 20;

/// A file as `object` reads it: through a [`object::read::ReadCache`],
/// except that a name in a registered string table is found in the whole
/// table, read once. Read a name at a time, each name costs a seek and a
/// read: node's 75,000 exported symbols took 70 ms.
struct SymbolFile {
    file: object::read::ReadCache<std::fs::File>,
    /// String tables read whole (file offset, size).
    tables: std::cell::RefCell<Vec<(u64, u64)>>,
}

impl SymbolFile {
    /// Reads the section `name` (a string table) whole at its first name.
    fn read_whole<'d, R: object::ReadRef<'d>>(&self, elf: &object::File<'d, R>, name: &str) {
        if let Some((offset, size)) = elf.section_by_name(name).and_then(|s| s.file_range()) {
            if size <= MAX_WHOLE_TABLE {
                self.tables.borrow_mut().push((offset, size));
            }
        }
    }
}

impl<'a> object::ReadRef<'a> for &'a SymbolFile {
    fn len(self) -> Result<u64, ()> {
        (&self.file).len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        (&self.file).read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(
        self,
        range: std::ops::Range<u64>,
        delimiter: u8,
    ) -> Result<&'a [u8], ()> {
        let table = self
            .tables
            .borrow()
            .iter()
            .copied()
            .find(|&(offset, size)| range.start >= offset && range.start < offset + size);
        let Some((offset, size)) = table else {
            return (&self.file).read_bytes_at_until(range, delimiter);
        };
        // The cache keeps the table it read, keyed by (offset, size). A
        // table that claims more than the file holds is read by name.
        let Ok(whole) = (&self.file).read_bytes_at(offset, size) else {
            return (&self.file).read_bytes_at_until(range, delimiter);
        };
        let end = range.end.min(offset + size);
        let rest = whole
            .get((range.start - offset) as usize..(end - offset) as usize)
            .ok_or(())?;
        let len = memchr::memchr(delimiter, rest).ok_or(())?;
        Ok(&rest[..len])
    }
}

/// Reads `path`'s dynamic and static symbol tables and says which TLS
/// implementations it defines (none for most files).
pub fn inspect(path: &Path) -> Result<Vec<Found>, InspectError> {
    inspect_reading(path, true)
}

/// [`inspect`], with the string tables read whole or (`whole` false, to
/// compare) a name at a time.
fn inspect_reading(path: &Path, whole: bool) -> Result<Vec<Found>, InspectError> {
    let io = |source| InspectError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() > MAX_FILE {
        return Ok(Vec::new());
    }
    let symbols = SymbolFile {
        file: object::read::ReadCache::new(file),
        tables: Default::default(),
    };
    let elf = object::File::parse(&symbols).map_err(|e| InspectError::Elf {
        path: path.to_owned(),
        why: e.to_string(),
    })?;
    if whole {
        symbols.read_whole(&elf, ".dynstr");
        symbols.read_whole(&elf, ".strtab");
    }
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
    // Most names (C++ and Go ones) are longer than any wanted one: they
    // are passed over before their UTF-8 check and hash.
    let longest = wanted.iter().map(|w| w.len()).max().unwrap_or(0);
    for sym in symbols {
        if sym.is_undefined() || sym.address() == 0 {
            continue;
        }
        let Ok(name) = sym.name_bytes() else { continue };
        if name.len() > longest {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
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
    fn string_tables_read_whole_give_what_names_read_one_by_one_give() {
        let mut files: Vec<PathBuf> = crate::sensor::find_libssl();
        files.push(std::env::current_exe().unwrap());
        files.extend(
            ["/usr/bin/node", "/usr/bin/curl"]
                .map(PathBuf::from)
                .into_iter()
                .filter(|p| p.exists()),
        );
        for f in files {
            let whole = inspect_reading(&f, true).unwrap();
            assert_eq!(
                whole,
                inspect_reading(&f, false).unwrap(),
                "{}",
                f.display()
            );
        }
    }

    #[test]
    fn a_string_table_claiming_more_than_the_file_holds_is_no_crash() {
        // The system libssl with its .dynstr's size (section header field
        // sh_size) rewritten: past the end of the file, and absurd. Its
        // names cannot be read either way, and nothing is allocated for the
        // absurd size.
        let lib = crate::sensor::find_libssl().into_iter().next().unwrap();
        let bytes = std::fs::read(&lib).unwrap();
        let (offset, header) = {
            let elf = object::File::parse(&*bytes).unwrap();
            let dynstr = elf.section_by_name(".dynstr").unwrap();
            let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap());
            let entsize = u16::from_le_bytes(bytes[0x3a..0x3c].try_into().unwrap()) as u64;
            (
                dynstr.file_range().unwrap().0,
                (shoff + entsize * dynstr.index().0 as u64) as usize,
            )
        };
        assert!(!inspect(&lib).unwrap().is_empty());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lying.so");
        for size in [bytes.len() as u64 - offset + 4096, 1 << 40] {
            let mut lying = bytes.clone();
            lying[header + 0x20..header + 0x28].copy_from_slice(&size.to_le_bytes());
            std::fs::write(&p, &lying).unwrap();
            let whole = inspect_reading(&p, true).unwrap();
            assert_eq!(whole, inspect_reading(&p, false).unwrap(), "sh_size {size}");
            assert!(whole.is_empty(), "sh_size {size}: {whole:?}");
        }
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
