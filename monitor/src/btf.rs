//! Kernel struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! rustc emits no CO-RE relocations for eBPF, so the kernel programs cannot
//! have the loader patch field offsets. Instead the daemon reads the offsets
//! it needs here, at start-up, and hands them over as the `OFFSETS` global.
//! Only what that needs is parsed: type names, structs, unions, and the
//! modifiers that can sit between a member and its struct type.

use std::collections::HashMap;
use std::path::Path;

use monitor_common::KernelOffsets;

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why offsets could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not BTF this parser understands.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// A struct or member the programs rely on is absent.
    #[error("kernel BTF has no member `{member}` in `struct {strukt}`")]
    MissingMember {
        /// The struct searched.
        strukt: String,
        /// The dotted member path.
        member: String,
    },
    /// A struct the programs rely on is absent.
    #[error("kernel BTF has no `struct {0}`")]
    MissingStruct(String),
}

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: u32,
    type_id: u32,
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    name: u32,
    kind: u32,
    /// The referenced type for modifiers and typedefs.
    target: u32,
    members: Vec<Member>,
}

/// A parsed BTF blob: enough to find struct member offsets by name.
pub struct Btf {
    /// Index 0 is `void`.
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// Reads and parses a BTF file (little-endian, as on every host we run on).
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses a BTF blob.
    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        let magic = b
            .get(0..2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]))
            .ok_or(BtfError::Malformed("truncated header"))?;
        if magic != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let type_off = u32_at(b, 8)? as usize;
        let type_len = u32_at(b, 12)? as usize;
        let str_off = u32_at(b, 16)? as usize;
        let str_len = u32_at(b, 20)? as usize;
        let types_start = hdr_len + type_off;
        let type_bytes = b
            .get(types_start..types_start + type_len)
            .ok_or(BtfError::Malformed("type section out of range"))?;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of range"))?
            .to_vec();

        let mut types = vec![Type {
            name: 0,
            kind: 0,
            target: 0,
            members: Vec::new(),
        }];
        let mut pos = 0;
        while pos < type_bytes.len() {
            let name = u32_at(type_bytes, pos)?;
            let info = u32_at(type_bytes, pos + 4)?;
            let size_or_type = u32_at(type_bytes, pos + 8)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let raw = u32_at(type_bytes, m + 8)?;
                        members.push(Member {
                            name: u32_at(type_bytes, m)?,
                            type_id: u32_at(type_bytes, m + 4)?,
                            bit_offset: if kind_flag { raw & 0x00ff_ffff } else { raw },
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                _ => 0,
            };
            pos += extra;
            types.push(Type {
                name,
                kind,
                target: size_or_type,
                members,
            });
        }

        let mut btf = Btf {
            types,
            strings,
            structs_by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            // Keep the first complete definition of each name.
            if t.kind == KIND_STRUCT && t.name != 0 && !t.members.is_empty() {
                let name = btf.name(t.name).to_owned();
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let tail = self.strings.get(off as usize..).unwrap_or_default();
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.target
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `name` inside type `id`, looking through anonymous
    /// struct and union members; returns the member's type id too.
    fn find_member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return None;
        }
        for m in &t.members {
            let mname = self.name(m.name);
            if mname == name {
                return Some((m.bit_offset / 8, m.type_id));
            }
            if mname.is_empty() {
                if let Some((off, ty)) = self.find_member(m.type_id, name) {
                    return Some((m.bit_offset / 8 + off, ty));
                }
            }
        }
        None
    }

    /// Byte offset of a dotted member path (`"d_name.name"`) in `struct strukt`.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::MissingStruct(strukt.to_owned()))?;
        let mut total = 0;
        for part in path.split('.') {
            let (off, ty) = self
                .find_member(id, part)
                .ok_or_else(|| BtfError::MissingMember {
                    strukt: strukt.to_owned(),
                    member: path.to_owned(),
                })?;
            total += off;
            id = ty;
        }
        Ok(total)
    }

    /// Every offset the kernel programs need.
    pub fn kernel_offsets(&self) -> Result<KernelOffsets, BtfError> {
        Ok(KernelOffsets {
            task_real_parent: self.offset_of("task_struct", "real_parent")?,
            task_tgid: self.offset_of("task_struct", "tgid")?,
            task_fs: self.offset_of("task_struct", "fs")?,
            task_files: self.offset_of("task_struct", "files")?,
            task_mm: self.offset_of("task_struct", "mm")?,
            task_exit_code: self.offset_of("task_struct", "exit_code")?,
            fs_root: self.offset_of("fs_struct", "root")?,
            fs_pwd: self.offset_of("fs_struct", "pwd")?,
            path_mnt: self.offset_of("path", "mnt")?,
            path_dentry: self.offset_of("path", "dentry")?,
            files_fdt: self.offset_of("files_struct", "fdt")?,
            fdt_max_fds: self.offset_of("fdtable", "max_fds")?,
            fdt_fd: self.offset_of("fdtable", "fd")?,
            file_f_path: self.offset_of("file", "f_path")?,
            dentry_d_parent: self.offset_of("dentry", "d_parent")?,
            dentry_d_name_name: self.offset_of("dentry", "d_name.name")?,
            mount_mnt: self.offset_of("mount", "mnt")?,
            mount_mnt_parent: self.offset_of("mount", "mnt_parent")?,
            mount_mnt_mountpoint: self.offset_of("mount", "mnt_mountpoint")?,
            vfsmount_mnt_root: self.offset_of("vfsmount", "mnt_root")?,
            mm_arg_start: self.offset_of("mm_struct", "arg_start")?,
            mm_arg_end: self.offset_of("mm_struct", "arg_end")?,
            mm_exe_file: self.offset_of("mm_struct", "exe_file")?,
            file_private_data: self.offset_of("file", "private_data")?,
            socket_sk: self.offset_of("socket", "sk")?,
            sock_family: self.offset_of("sock", "__sk_common.skc_family")?,
            sock_dport: self.offset_of("sock", "__sk_common.skc_dport")?,
            sock_daddr: self.offset_of("sock", "__sk_common.skc_daddr")?,
            sock_v6_daddr: self.offset_of("sock", "__sk_common.skc_v6_daddr")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built blob: `struct outer { int a; union { int b; struct inner c; }; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0inner\0c\0x\0y\0";
        let s = |name: &str| -> u32 {
            let pat = format!("\0{name}\0");
            strings
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t = Vec::new();
        let mut ty = |name: u32, kind: u32, vlen: u32, size: u32, extra: &[u32]| {
            for v in [name, (kind << 24) | vlen, size].iter().chain(extra) {
                t.extend_from_slice(&v.to_le_bytes());
            }
        };
        ty(s("int"), KIND_INT, 0, 4, &[32]); // 1
        ty(
            s("inner"),
            KIND_STRUCT,
            2,
            8,
            &[s("x"), 1, 0, s("y"), 1, 32],
        ); // 2
        ty(0, KIND_UNION, 2, 8, &[s("b"), 1, 0, s("c"), 2, 0]); // 3
        ty(s("outer"), KIND_STRUCT, 2, 16, &[s("a"), 1, 0, 0, 3, 64]); // 4
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for v in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&t);
        b.extend_from_slice(strings);
        b
    }

    #[test]
    fn finds_members_through_anonymous_unions() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.offset_of("outer", "a").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "b").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "c.y").unwrap(), 12);
        assert!(matches!(
            btf.offset_of("outer", "nope"),
            Err(BtfError::MissingMember { .. })
        ));
        assert!(matches!(
            btf.offset_of("absent", "a"),
            Err(BtfError::MissingStruct(_))
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"nope").is_err());
        let mut b = sample();
        b.truncate(30);
        assert!(Btf::parse(&b).is_err());
    }

    #[test]
    fn running_kernel_has_every_offset() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{VMLINUX_BTF} missing in CI"
            );
            eprintln!("SKIP: {VMLINUX_BTF} not present");
            return;
        }
        let btf = Btf::from_file(path).unwrap();
        let off = btf.kernel_offsets().unwrap();
        // `qstr.name` follows the 8-byte hash/len union.
        assert_eq!(
            off.dentry_d_name_name,
            btf.offset_of("dentry", "d_name").unwrap() + 8
        );
        assert_ne!(off.task_fs, 0);
        assert!(off.mm_arg_end > off.mm_arg_start);
    }
}
