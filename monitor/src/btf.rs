//! Kernel struct member offsets from the kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! rustc emits no CO-RE relocations for eBPF, so the kernel programs cannot
//! have the loader patch field offsets. Instead the daemon reads the offsets
//! it needs here, at start-up, and hands them over as the `OFFSETS` global.
//! Parsing is `btf-rs`'s; this module only walks member paths (through
//! anonymous structs and unions, typedefs and modifiers) to byte offsets.

use std::path::Path;

use btf_rs::Type;

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
    /// The bytes are not BTF.
    #[error("malformed BTF: {0}")]
    Malformed(String),
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

/// The kernel's BTF, parsed by `btf-rs`: enough to find struct member
/// offsets by name.
pub struct Btf(btf_rs::Btf);

impl Btf {
    /// Reads and parses a BTF file.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses a BTF blob.
    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        btf_rs::Btf::from_bytes(b)
            .map(Self)
            .map_err(|e| BtfError::Malformed(e.to_string()))
    }

    /// The struct or union `ty` names, through typedefs and modifiers.
    fn aggregate(&self, mut ty: Type) -> Option<btf_rs::Struct> {
        for _ in 0..16 {
            ty = match ty {
                Type::Struct(s) | Type::Union(s) => return Some(s),
                Type::Typedef(t) => self.0.resolve_chained_type(&t).ok()?,
                Type::Const(t) => self.0.resolve_chained_type(&t).ok()?,
                Type::Volatile(t) => self.0.resolve_chained_type(&t).ok()?,
                Type::Restrict(t) => self.0.resolve_chained_type(&t).ok()?,
                Type::TypeTag(t) => self.0.resolve_chained_type(&t).ok()?,
                _ => return None,
            };
        }
        None
    }

    /// Byte offset of `name` inside `ty`, looking through anonymous struct
    /// and union members; returns the member's type too.
    fn find_member(&self, ty: Type, name: &str) -> Option<(u32, Type)> {
        let s = self.aggregate(ty)?;
        for m in &s.members {
            let mname = self.0.resolve_name(m).ok()?;
            let mty = self.0.resolve_chained_type(m).ok()?;
            if mname == name {
                return Some((m.bit_offset() / 8, mty));
            }
            if mname.is_empty() {
                if let Some((off, ty)) = self.find_member(mty, name) {
                    return Some((m.bit_offset() / 8 + off, ty));
                }
            }
        }
        None
    }

    /// Byte offset of a dotted member path (`"d_name.name"`) in `struct strukt`.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut ty = self
            .0
            .resolve_types_by_name(strukt)
            .unwrap_or_default()
            .into_iter()
            .find(|t| matches!(t, Type::Struct(_)))
            .ok_or_else(|| BtfError::MissingStruct(strukt.to_owned()))?;
        let mut total = 0;
        for part in path.split('.') {
            let (off, member) =
                self.find_member(ty, part)
                    .ok_or_else(|| BtfError::MissingMember {
                        strukt: strukt.to_owned(),
                        member: path.to_owned(),
                    })?;
            total += off;
            ty = member;
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
            dentry_d_inode: self.offset_of("dentry", "d_inode")?,
            inode_i_ino: self.offset_of("inode", "i_ino")?,
            inode_i_generation: self.offset_of("inode", "i_generation")?,
            inode_i_sb: self.offset_of("inode", "i_sb")?,
            super_block_s_dev: self.offset_of("super_block", "s_dev")?,
            task_signal: self.offset_of("task_struct", "signal")?,
            signal_tty: self.offset_of("signal_struct", "tty")?,
            tty_index: self.offset_of("tty_struct", "index")?,
            tty_driver: self.offset_of("tty_struct", "driver")?,
            tty_driver_major: self.offset_of("tty_driver", "major")?,
            tty_driver_minor_start: self.offset_of("tty_driver", "minor_start")?,
            // Only with audit: without it, 0 says so.
            task_loginuid: self.offset_of("task_struct", "loginuid").unwrap_or(0),
            ..self.io_uring_offsets().unwrap_or_default()
        })
    }

    /// Offsets into io_uring's requests; an error when this kernel has no
    /// io_uring (its probe is then not attached).
    fn io_uring_offsets(&self) -> Result<KernelOffsets, BtfError> {
        Ok(KernelOffsets {
            io_kiocb_cmd: self.offset_of("io_kiocb", "cmd")?,
            io_kiocb_flags: self.offset_of("io_kiocb", "flags")?,
            io_kiocb_cqe_fd: self.offset_of("io_kiocb", "cqe.fd")?,
            io_open_dfd: self.offset_of("io_open", "dfd")?,
            io_open_filename: self.offset_of("io_open", "filename")?,
            io_open_how: self.offset_of("io_open", "how")?,
            filename_uptr: self.offset_of("filename", "uptr")?,
            io_sr_msg_buf: self.offset_of("io_sr_msg", "buf")?,
            io_sr_msg_len: self.offset_of("io_sr_msg", "len")?,
            ..KernelOffsets::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: u16 = 0xeb9f;
    const KIND_INT: u32 = 1;
    const KIND_STRUCT: u32 = 4;
    const KIND_UNION: u32 = 5;

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
