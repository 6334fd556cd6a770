//! Syscall naming: the kernel's tables per ABI (x86_64, x32, i386) and seccomp arch names.
use std::fmt;

use serde::Serialize;
use tracer_common::{ABI_IA32, ABI_NATIVE, ABI_X32, NR_PER_ABI, OUT_OF_RANGE};

/// The ABI a syscall entered the kernel through; each has its own numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    X86_64,
    X32,
    I386,
}

impl Abi {
    pub const ALL: [Abi; 3] = [Abi::X86_64, Abi::X32, Abi::I386];

    pub(crate) fn from_index(index: usize) -> Option<(Abi, u32)> {
        if index >= OUT_OF_RANGE {
            return None;
        }
        let abi = match index / NR_PER_ABI {
            ABI_NATIVE => Abi::X86_64,
            ABI_X32 => Abi::X32,
            ABI_IA32 => Abi::I386,
            _ => return None,
        };
        Some((abi, (index % NR_PER_ABI) as u32))
    }

    /// The libseccomp / Docker name of this ABI's architecture.
    pub fn seccomp_arch(self) -> &'static str {
        match self {
            Abi::X86_64 => "SCMP_ARCH_X86_64",
            Abi::X32 => "SCMP_ARCH_X32",
            Abi::I386 => "SCMP_ARCH_X86",
        }
    }

    pub fn from_seccomp_arch(name: &str) -> Option<Abi> {
        Abi::ALL.into_iter().find(|a| a.seccomp_arch() == name)
    }

    /// The name the kernel's table gives `nr`, if any.
    pub fn name(self, nr: u32) -> Option<&'static str> {
        match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::new(nr as usize).map(|s| s.name()),
            Abi::I386 => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
            Abi::X32 => x32_name(nr),
        }
    }

    /// Every name in this ABI's table, sorted.
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::iter().map(|s| s.name()).collect(),
            Abi::I386 => syscalls::x86::Sysno::iter().map(|s| s.name()).collect(),
            Abi::X32 => (0..NR_PER_ABI as u32).filter_map(x32_name).collect(),
        };
        names.sort_unstable();
        names.dedup();
        names
    }

    pub fn knows(self, name: &str) -> bool {
        match self {
            Abi::X86_64 => name.parse::<syscalls::x86_64::Sysno>().is_ok(),
            Abi::I386 => name.parse::<syscalls::x86::Sysno>().is_ok(),
            Abi::X32 => (0..NR_PER_ABI as u32).any(|nr| x32_name(nr) == Some(name)),
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Abi::X86_64 => "x86_64",
            Abi::X32 => "x32",
            Abi::I386 => "i386",
        })
    }
}

/// x32 uses the x86_64 numbers for what both share, and 512..=547 for its compat entry points.
fn x32_name(nr: u32) -> Option<&'static str> {
    const COMPAT: [&str; 36] = [
        "rt_sigaction",
        "rt_sigreturn",
        "ioctl",
        "readv",
        "writev",
        "recvfrom",
        "sendmsg",
        "recvmsg",
        "execve",
        "ptrace",
        "rt_sigpending",
        "rt_sigtimedwait",
        "rt_sigqueueinfo",
        "sigaltstack",
        "timer_create",
        "mq_notify",
        "kexec_load",
        "waitid",
        "set_robust_list",
        "get_robust_list",
        "vmsplice",
        "move_pages",
        "preadv",
        "pwritev",
        "rt_tgsigqueueinfo",
        "recvmmsg",
        "sendmmsg",
        "process_vm_readv",
        "process_vm_writev",
        "setsockopt",
        "getsockopt",
        "io_setup",
        "io_submit",
        "execveat",
        "preadv2",
        "pwritev2",
    ];
    match nr {
        512..=547 => COMPAT.get((nr - 512) as usize).copied(),
        // Entries 512 and up are x32's; the 64-bit-only ones below it have an x32 twin above.
        _ if nr < 512 => {
            let name = syscalls::x86_64::Sysno::new(nr as usize)?.name();
            (!COMPAT.contains(&name)).then_some(name)
        }
        _ => None,
    }
}

/// A syscall as the recorder saw it: ABI and number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyscallId {
    pub abi: Abi,
    pub nr: u32,
}

impl SyscallId {
    /// The table name, or `<abi>:<nr>` for numbers the table doesn't know.
    pub fn name(&self) -> String {
        match self.abi.name(self.nr) {
            Some(name) => name.to_string(),
            None => format!("{}:{}", self.abi, self.nr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_abi() {
        assert_eq!(Abi::X86_64.name(39), Some("getpid"));
        assert_eq!(Abi::X86_64.name(110), Some("getppid"));
        assert_eq!(Abi::I386.name(20), Some("getpid"));
        assert_eq!(Abi::I386.name(64), Some("getppid"));
        assert_eq!(Abi::X32.name(0), Some("read"));
        assert_eq!(Abi::X32.name(13), None, "x32 takes rt_sigaction at 512");
        assert_eq!(Abi::X32.name(512), Some("rt_sigaction"));
        assert_eq!(Abi::X32.name(547), Some("pwritev2"));
        assert_eq!(Abi::X86_64.name(1000), None);
    }

    #[test]
    fn tables_are_sorted_and_sized() {
        let names = Abi::X86_64.names();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!((370..450).contains(&names.len()), "{}", names.len());
        assert!(Abi::X86_64.knows("openat"));
        assert!(!Abi::X86_64.knows("socketcall"));
        assert!(Abi::I386.knows("socketcall"));
    }

    #[test]
    fn index_round_trip() {
        assert_eq!(Abi::from_index(110), Some((Abi::X86_64, 110)));
        assert_eq!(Abi::from_index(NR_PER_ABI + 1), Some((Abi::X32, 1)));
        assert_eq!(Abi::from_index(2 * NR_PER_ABI + 64), Some((Abi::I386, 64)));
        assert_eq!(Abi::from_index(OUT_OF_RANGE), None);
    }
}
