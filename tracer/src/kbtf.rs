//! Just enough of the kernel's BTF to find the fields the kernel side reads: in `struct
//! task_struct`, `seccomp.mode` (whether a task runs under a seccomp filter),
//! `thread_info.status` (its TS_COMPAT bit tells an i386 syscall, `int 0x80` from 64-bit code
//! included, from a native one), `pid` and `tgid`; the path from a task to its cgroup v2 id
//! (`cgroups->dfl_cgrp->kn->id`) and to its mount namespace (`nsproxy->mnt_ns->ns.inum`); and
//! for what a workload does with privileges, its credentials (`real_cred`, the bounding set,
//! the effective ids, no_new_privs in `atomic_flags`) and an exec's program
//! (`linux_binprm`'s file, name and secure-exec bit, the file's mode and owner).
//! Scanning the type section once is far lighter than parsing all of it.
use std::path::PathBuf;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;

/// What the scan found wrong with the kernel's BTF.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    #[error("not little-endian BTF")]
    NotBtf,
    #[error("truncated header")]
    TruncatedHeader,
    #[error("section out of bounds")]
    SectionOutOfBounds,
    #[error("truncated type")]
    TruncatedType,
    #[error("unknown BTF kind {0}")]
    UnknownKind(u32),
    #[error("struct {0} not found")]
    StructNotFound(String),
    #[error("{root}: member {path} not found")]
    MemberNotFound { root: String, path: String },
    #[error("{root}.{path} is not a {size}-byte integer")]
    NotInt {
        root: String,
        path: String,
        size: u32,
    },
    #[error("{root}.{path} is not a pointer")]
    NotPointer { root: String, path: String },
    #[error("{root}.{path} is not {size} bytes")]
    NotSized {
        root: String,
        path: String,
        size: u32,
    },
    #[error("{root}.{path} is not a one-bit field")]
    NotBit { root: String, path: String },
}

/// Why the kernel's BTF could not tell the offsets.
#[derive(Debug, thiserror::Error)]
pub enum KernelBtfError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel BTF {path}: {source} (a kernel with CONFIG_SECCOMP_FILTER and BTF is needed)")]
    Btf { path: PathBuf, source: BtfError },
}

/// Byte offsets of the kernel fields the kernel side reads, in the running kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.seccomp.mode`, an `int`.
    pub seccomp_mode: u32,
    /// `task_struct.thread_info.status`, a `u32` (x86_64 keeps thread_info inside task_struct).
    pub thread_status: u32,
    /// `task_struct.pid`, the thread id.
    pub pid: u32,
    /// `task_struct.tgid`, the process id.
    pub tgid: u32,
    /// `task_struct.cgroups`, the task's `struct css_set *`.
    pub cgroups: u32,
    /// `css_set.dfl_cgrp`, the `struct cgroup *` in the unified hierarchy.
    pub dfl_cgrp: u32,
    /// `cgroup.kn`, its `struct kernfs_node *`.
    pub kn: u32,
    /// `kernfs_node.id`, the `u64` cgroup v2 id.
    pub kn_id: u32,
    /// `task_struct.nsproxy`, the task's `struct nsproxy *`.
    pub nsproxy: u32,
    /// `nsproxy.mnt_ns`, its `struct mnt_namespace *`.
    pub mnt_ns: u32,
    /// `mnt_namespace.ns.inum`, the mount namespace's inode number.
    pub mnt_ns_inum: u32,
    /// `task_struct.real_cred`, the task's own `struct cred *` (what others act on it with).
    pub real_cred: u32,
    /// `task_struct.atomic_flags`, whose bit 0 is no_new_privs.
    pub atomic_flags: u32,
    /// `cred.cap_bset`, the 8-byte bounding set.
    pub cap_bset: u32,
    /// `cred.euid` and `cred.egid`, 4 bytes each.
    pub euid: u32,
    pub egid: u32,
    /// `linux_binprm.file`, `linux_binprm.filename` and the bit (from the struct's start) of
    /// `linux_binprm.secureexec`.
    pub bprm_file: u32,
    pub bprm_filename: u32,
    pub bprm_secureexec_bit: u32,
    /// `file.f_inode`; `inode.i_mode` (2 bytes), `inode.i_uid` and `inode.i_gid` (4 each).
    pub f_inode: u32,
    pub i_mode: u32,
    pub i_uid: u32,
    pub i_gid: u32,
}

/// Reads [`TaskOffsets`] from the kernel's BTF, each field checked to be of the size it is
/// read as.
pub fn task_offsets() -> Result<TaskOffsets, KernelBtfError> {
    let data = std::fs::read(VMLINUX).map_err(|source| KernelBtfError::Read {
        path: VMLINUX.into(),
        source,
    })?;
    let btf_error = |source| KernelBtfError::Btf {
        path: VMLINUX.into(),
        source,
    };
    let btf = Btf::parse(&data).map_err(btf_error)?;
    let offsets = || -> std::result::Result<TaskOffsets, BtfError> {
        Ok(TaskOffsets {
            seccomp_mode: btf.int_offset("task_struct", &["seccomp", "mode"], 4)?,
            thread_status: btf.int_offset("task_struct", &["thread_info", "status"], 4)?,
            pid: btf.int_offset("task_struct", &["pid"], 4)?,
            tgid: btf.int_offset("task_struct", &["tgid"], 4)?,
            cgroups: btf.pointer_offset("task_struct", &["cgroups"])?,
            dfl_cgrp: btf.pointer_offset("css_set", &["dfl_cgrp"])?,
            kn: btf.pointer_offset("cgroup", &["kn"])?,
            kn_id: btf.int_offset("kernfs_node", &["id"], 8)?,
            nsproxy: btf.pointer_offset("task_struct", &["nsproxy"])?,
            mnt_ns: btf.pointer_offset("nsproxy", &["mnt_ns"])?,
            mnt_ns_inum: btf.int_offset("mnt_namespace", &["ns", "inum"], 4)?,
            real_cred: btf.pointer_offset("task_struct", &["real_cred"])?,
            atomic_flags: btf.int_offset("task_struct", &["atomic_flags"], 8)?,
            cap_bset: btf.sized_offset("cred", &["cap_bset"], 8)?,
            euid: btf.sized_offset("cred", &["euid"], 4)?,
            egid: btf.sized_offset("cred", &["egid"], 4)?,
            bprm_file: btf.pointer_offset("linux_binprm", &["file"])?,
            bprm_filename: btf.pointer_offset("linux_binprm", &["filename"])?,
            bprm_secureexec_bit: btf.bit_offset("linux_binprm", "secureexec")?,
            f_inode: btf.pointer_offset("file", &["f_inode"])?,
            i_mode: btf.int_offset("inode", &["i_mode"], 2)?,
            i_uid: btf.sized_offset("inode", &["i_uid"], 4)?,
            i_gid: btf.sized_offset("inode", &["i_gid"], 4)?,
        })
    };
    offsets().map_err(btf_error)
}

struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Byte offset in `types` of each type, by id (id 0 is void).
    offsets: Vec<u32>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> std::result::Result<Self, BtfError> {
        let magic = data.get(0..2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if magic != Some(MAGIC) {
            return Err(BtfError::NotBtf);
        }
        let field = |at| u32_at(data, at).ok_or(BtfError::TruncatedHeader);
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |off: usize, len: usize| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or(BtfError::SectionOutOfBounds)
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;
        let mut offsets = vec![0];
        let mut at = 0usize;
        while at < types.len() {
            offsets.push(at as u32);
            let info = u32_at(types, at + 4).ok_or(BtfError::TruncatedType)?;
            let vlen = (info & 0xffff) as usize;
            let extra = match (info >> 24) & 0x1f {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                2 | 7..=12 | 16 | 18 => 0,
                kind => return Err(BtfError::UnknownKind(kind)),
            };
            at += 12 + extra;
        }
        Ok(Btf {
            types,
            strings,
            offsets,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    fn header(&self, id: u32) -> Option<(u32, u32, u32, usize)> {
        let at = *self.offsets.get(id as usize)? as usize;
        let name = u32_at(self.types, at)?;
        let info = u32_at(self.types, at + 4)?;
        let size_or_type = u32_at(self.types, at + 8)?;
        Some((name, info, size_or_type, at))
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let (_, info, target, _) = self.header(id)?;
            match (info >> 24) & 0x1f {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = target
                }
                _ => return Some(id),
            }
        }
        None
    }

    /// Byte offset and type of member `name` of the struct or union `id`.
    fn member(&self, id: u32, name: &str) -> Option<(u32, u32)> {
        let (_, info, _, at) = self.header(id)?;
        let kind = (info >> 24) & 0x1f;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        let bitfields = info >> 31 == 1;
        for i in 0..(info & 0xffff) as usize {
            let m = at + 12 + 12 * i;
            let (m_name, m_type, m_off) = (
                u32_at(self.types, m)?,
                u32_at(self.types, m + 4)?,
                u32_at(self.types, m + 8)?,
            );
            let bits = if bitfields { m_off & 0xff_ffff } else { m_off };
            if self.name(m_name) == name.as_bytes() {
                return (bits % 8 == 0).then_some((bits / 8, m_type));
            }
            // Anonymous struct or union members hold further members.
            if m_name == 0
                && let Some(inner) = self.resolve(m_type)
                && let Some((off, ty)) = self.member(inner, name)
            {
                return Some((bits / 8 + off, ty));
            }
        }
        None
    }

    /// Byte offset of `path` (member names, outermost first) inside struct `root`, which must
    /// name an integer of `size` bytes.
    fn int_offset(
        &self,
        root: &str,
        path: &[&str],
        size: u32,
    ) -> std::result::Result<u32, BtfError> {
        let (offset, ty) = self.member_path(root, path)?;
        match self.resolve(ty).and_then(|t| self.header(t)) {
            Some((_, info, s, _)) if s == size && (info >> 24) & 0x1f == KIND_INT => Ok(offset),
            _ => Err(BtfError::NotInt {
                root: root.into(),
                path: path.join("."),
                size,
            }),
        }
    }

    /// Byte offset of `path` inside struct `root`, which must name an integer or a struct of
    /// `size` bytes (`kuid_t`, `kernel_cap_t`).
    fn sized_offset(
        &self,
        root: &str,
        path: &[&str],
        size: u32,
    ) -> std::result::Result<u32, BtfError> {
        let (offset, ty) = self.member_path(root, path)?;
        match self.resolve(ty).and_then(|t| self.header(t)) {
            Some((_, info, s, _))
                if s == size && matches!((info >> 24) & 0x1f, KIND_INT | KIND_STRUCT) =>
            {
                Ok(offset)
            }
            _ => Err(BtfError::NotSized {
                root: root.into(),
                path: path.join("."),
                size,
            }),
        }
    }

    /// Bit offset, from the start of struct `root`, of its one-bit field `name` (a direct
    /// member, or one of an anonymous struct or union in it).
    fn bit_offset(&self, root: &str, name: &str) -> std::result::Result<u32, BtfError> {
        let not_bit = || BtfError::NotBit {
            root: root.into(),
            path: name.into(),
        };
        let (_, id) = self.member_path(root, &[])?;
        self.member_bits(id, name, 0).ok_or_else(not_bit)
    }

    fn member_bits(&self, id: u32, name: &str, base: u32) -> Option<u32> {
        let (_, info, _, at) = self.header(self.resolve(id)?)?;
        let kind = (info >> 24) & 0x1f;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        let bitfields = info >> 31 == 1;
        for i in 0..(info & 0xffff) as usize {
            let m = at + 12 + 12 * i;
            let (m_name, m_type, m_off) = (
                u32_at(self.types, m)?,
                u32_at(self.types, m + 4)?,
                u32_at(self.types, m + 8)?,
            );
            let (bits, width) = if bitfields {
                (m_off & 0xff_ffff, m_off >> 24)
            } else {
                (m_off, 0)
            };
            if self.name(m_name) == name.as_bytes() {
                return (width == 1).then_some(base + bits);
            }
            if m_name == 0
                && let Some(found) = self.member_bits(m_type, name, base + bits)
            {
                return Some(found);
            }
        }
        None
    }

    /// Byte offset of `path` inside struct `root`, which must name a pointer.
    fn pointer_offset(&self, root: &str, path: &[&str]) -> std::result::Result<u32, BtfError> {
        let (offset, ty) = self.member_path(root, path)?;
        match self.resolve(ty).and_then(|t| self.header(t)) {
            Some((_, info, _, _)) if (info >> 24) & 0x1f == KIND_PTR => Ok(offset),
            _ => Err(BtfError::NotPointer {
                root: root.into(),
                path: path.join("."),
            }),
        }
    }

    /// Byte offset and type of `path` (member names, outermost first) inside struct `root`.
    fn member_path(&self, root: &str, path: &[&str]) -> std::result::Result<(u32, u32), BtfError> {
        let id = (1..self.offsets.len() as u32)
            .find(|&id| {
                self.header(id).is_some_and(|(name, info, _, _)| {
                    (info >> 24) & 0x1f == KIND_STRUCT
                        && info & 0xffff > 0
                        && self.name(name) == root.as_bytes()
                })
            })
            .ok_or_else(|| BtfError::StructNotFound(root.into()))?;
        let mut ty = id;
        let mut offset = 0;
        for member in path {
            let (off, next) = self
                .resolve(ty)
                .and_then(|t| self.member(t, member))
                .ok_or_else(|| BtfError::MemberNotFound {
                    root: root.into(),
                    path: path.join("."),
                })?;
            offset += off;
            ty = next;
        }
        Ok((offset, ty))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob: `struct seccomp { int pad; int mode; }` inside
    /// `struct task_struct { long a; struct { int b; struct seccomp seccomp; }; }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0seccomp\0pad\0mode\0task_struct\0a\0b\0".to_vec();
        let s = |name: &str| {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int
        push(&[s("int"), 1 << 24, 4, 32]);
        // 2: struct seccomp { int pad; int mode; }
        push(&[s("seccomp"), 4 << 24 | 2, 8]);
        push(&[s("pad"), 1, 0, s("mode"), 1, 32]);
        // 3: anonymous struct { int b; struct seccomp seccomp; }
        push(&[0, 4 << 24 | 2, 12]);
        push(&[s("b"), 1, 0, s("seccomp"), 2, 32]);
        // 4: typedef to it, 5: task_struct { int a; <anon> at byte 8 }
        push(&[0, KIND_TYPEDEF << 24, 3]);
        push(&[s("task_struct"), 4 << 24 | 2, 24]);
        push(&[s("a"), 1, 0, 0, 4, 64]);
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(&strings);
        data
    }

    #[test]
    fn finds_nested_members() {
        let data = blob();
        let btf = Btf::parse(&data).unwrap();
        // task_struct: anon at 8, seccomp at 4 in it, mode at 4 in seccomp.
        assert_eq!(
            btf.int_offset("task_struct", &["seccomp", "mode"], 4),
            Ok(16)
        );
        assert_eq!(
            btf.int_offset("task_struct", &["seccomp"], 4),
            Err(BtfError::NotInt {
                root: "task_struct".into(),
                path: "seccomp".into(),
                size: 4
            })
        );
        assert_eq!(
            btf.int_offset("task_struct", &["seccomp", "mode"], 8),
            Err(BtfError::NotInt {
                root: "task_struct".into(),
                path: "seccomp.mode".into(),
                size: 8
            })
        );
        assert_eq!(
            btf.pointer_offset("task_struct", &["a"]),
            Err(BtfError::NotPointer {
                root: "task_struct".into(),
                path: "a".into()
            })
        );
        assert_eq!(
            btf.int_offset("task_struct", &["nope"], 4),
            Err(BtfError::MemberNotFound {
                root: "task_struct".into(),
                path: "nope".into()
            })
        );
        assert_eq!(
            btf.int_offset("inode", &["mode"], 4),
            Err(BtfError::StructNotFound("inode".into()))
        );
        assert!(matches!(
            Btf::parse(&data[..10]),
            Err(BtfError::TruncatedHeader)
        ));
    }

    /// The offset the kernel side reads: an `int` inside `task_struct`, 4-byte aligned.
    #[test]
    fn running_kernel_has_the_field() {
        if !std::path::Path::new(VMLINUX).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "no {VMLINUX}, and CI must not skip running_kernel_has_the_field"
            );
            eprintln!("SKIPPED running_kernel_has_the_field: no {VMLINUX}");
            return;
        }
        let offsets = task_offsets().unwrap();
        let offset = offsets.seccomp_mode;
        // thread_info opens task_struct: flags and syscall_work come before status.
        assert!(
            offsets.thread_status > 0 && offsets.thread_status < 64,
            "{offsets:?}"
        );
        let data = std::fs::read(VMLINUX).unwrap();
        let btf = Btf::parse(&data).unwrap();
        let task = (1..btf.offsets.len() as u32)
            .filter_map(|id| btf.header(id))
            .find(|&(name, info, _, _)| {
                (info >> 24) & 0x1f == KIND_STRUCT
                    && info & 0xffff > 0
                    && btf.name(name) == b"task_struct"
            })
            .expect("task_struct");
        let (seccomp, _) = btf.member_path("task_struct", &["seccomp"]).unwrap();
        assert_eq!(offset % 4, 0, "{offset}");
        assert!(
            offset + 4 <= task.2,
            "{offset} beyond task_struct's {} bytes",
            task.2
        );
        // mode is the first member of struct seccomp on every kernel that has BTF.
        assert_eq!(offset, seccomp, "{offset}");
    }
}
