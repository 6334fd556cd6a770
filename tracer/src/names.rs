//! Syscall naming: the kernel's tables per ABI (x86_64, x32, i386, aarch64), the platforms
//! they belong to, and seccomp arch names.
pub mod counterparts;
pub mod dangerous;

use std::{fmt, sync::OnceLock};

use serde::Serialize;
use tracer_common::{ABI_IA32, ABI_NATIVE, ABI_X32, NR_PER_ABI, OUT_OF_RANGE};

/// The ABI a syscall entered the kernel through; each has its own numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Abi {
    X86_64,
    X32,
    I386,
    Aarch64,
}

/// A platform a container runs on, as Docker names it in `includes.arches` (Go's GOARCH):
/// its native ABI and the compat ABIs its kernel also takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// Go's name, which Docker's `includes.arches` and `--arch` use.
    pub fn go_name(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn from_go_name(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.go_name() == name)
    }

    /// The ABI libseccomp always adds to a filter built on this platform.
    pub fn native(self) -> Abi {
        match self {
            Arch::Amd64 => Abi::X86_64,
            Arch::Arm64 => Abi::Aarch64,
        }
    }

    /// The ABIs modelled on this platform (32-bit ARM compat tasks are not: profiles that
    /// don't list `SCMP_ARCH_ARM` deny them everything).
    pub fn abis(self) -> &'static [Abi] {
        match self {
            Arch::Amd64 => &[Abi::X86_64, Abi::X32, Abi::I386],
            Arch::Arm64 => &[Abi::Aarch64],
        }
    }

    /// The platform `profile` itself runs on.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Amd64
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.go_name())
    }
}

impl std::str::FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::from_go_name(s).ok_or_else(|| {
            format!("unknown architecture {s:?} (amd64, arm64: Go's names, as Docker's)")
        })
    }
}

impl Abi {
    pub const ALL: [Abi; 4] = [Abi::X86_64, Abi::X32, Abi::I386, Abi::Aarch64];

    /// The platform whose kernel takes this ABI's calls.
    pub fn arch(self) -> Arch {
        match self {
            Abi::X86_64 | Abi::X32 | Abi::I386 => Arch::Amd64,
            Abi::Aarch64 => Arch::Arm64,
        }
    }

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
            Abi::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }

    pub fn from_seccomp_arch(name: &str) -> Option<Abi> {
        Abi::ALL.into_iter().find(|a| a.seccomp_arch() == name)
    }

    /// The name the kernel's table gives `nr`, if any.
    pub fn name(self, nr: u32) -> Option<&'static str> {
        match self {
            Abi::X86_64 => syscalls::x86_64::Sysno::new(nr as usize).map(|s| plain(s.name())),
            Abi::I386 => syscalls::x86::Sysno::new(nr as usize).map(|s| plain(s.name())),
            Abi::X32 => x32_name(nr),
            Abi::Aarch64 => aarch64_name(nr),
        }
    }

    /// Every name in this ABI's table, sorted.
    pub fn names(self) -> Vec<&'static str> {
        self.table().to_vec()
    }

    /// This ABI's table, sorted, built once.
    fn table(self) -> &'static [&'static str] {
        static TABLES: [OnceLock<Vec<&'static str>>; 4] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        TABLES[self as usize].get_or_init(|| {
            // Walked by number up to and including the last entry: the `syscalls` crate's own
            // `Sysno::iter()` (0.8.1) stops one short of `Sysno::last()`, because `Sysno::next`
            // compares with `<` against the last id; on x86_64 and i386 that drops
            // `file_setattr` (469, Linux 6.17).
            let last = match self {
                Abi::X86_64 => syscalls::x86_64::Sysno::last().id() as u32,
                Abi::I386 => syscalls::x86::Sysno::last().id() as u32,
                Abi::X32 => NR_PER_ABI as u32 - 1,
                Abi::Aarch64 => syscalls::aarch64::Sysno::last().id() as u32,
            };
            let mut names: Vec<&'static str> = (0..=last).filter_map(|nr| self.name(nr)).collect();
            names.sort_unstable();
            names.dedup();
            names
        })
    }

    /// Whether libseccomp resolves `name` to something it filters on this ABI: a number of the
    /// kernel's table, or, on i386, a call multiplexed through `socketcall`/`ipc` (see
    /// [`Abi::multiplexed`]). Names it doesn't resolve are dropped from a profile silently.
    pub fn knows(self, name: &str) -> bool {
        self.table().binary_search(&name).is_ok() || self.multiplexed(name).is_some()
    }

    /// The multiplexer and call number (its first argument) through which libseccomp filters
    /// `name` on this ABI, if it does.
    ///
    /// On i386 (`SCMP_ARCH_X86`) libseccomp resolves the socket calls (`socket` … `sendmmsg`)
    /// and the System V IPC calls (`semop` … `shmctl`) to pseudo-syscall numbers
    /// (`__PNR_socket` = -101 …, `__PNR_semop` = -201 …) whatever their direct numbers, and
    /// adds a rule for `socketcall(2)` (102) with `arg0 == call`, where call is
    /// `-pnr % 100` (socket) or `-pnr % 200` (ipc), the `SYS_*` / `SEMOP`… numbers of
    /// `<linux/net.h>` and `<linux/ipc.h>`; where the kernel also has a direct number (i386
    /// gained most in Linux 4.3 and 5.1) a second rule covers it (libseccomp `src/syscalls.c`,
    /// `abi_syscall_resolve_name_munge` and `abi_rule_add`). So `recv`, `send`, `accept`,
    /// `semop` and `semtimedop`, which have no direct i386 number, still mean something there.
    /// Other x86 ABIs have no multiplexer.
    pub fn multiplexed(self, name: &str) -> Option<(&'static str, u64)> {
        if self != Abi::I386 {
            return None;
        }
        if let Some(i) = SOCKETCALLS.iter().position(|n| *n == name) {
            return Some(("socketcall", i as u64 + 1));
        }
        IPC_CALLS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, call)| ("ipc", call))
    }
}

/// The socket calls libseccomp multiplexes through i386 `socketcall`, in call-number order
/// (`SYS_SOCKET` = 1 … `SYS_SENDMMSG` = 20).
const SOCKETCALLS: [&str; 20] = [
    "socket",
    "bind",
    "connect",
    "listen",
    "accept",
    "getsockname",
    "getpeername",
    "socketpair",
    "send",
    "recv",
    "sendto",
    "recvfrom",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "sendmsg",
    "recvmsg",
    "accept4",
    "recvmmsg",
    "sendmmsg",
];

/// The System V IPC calls libseccomp multiplexes through i386 `ipc`, with their call numbers.
const IPC_CALLS: [(&str, u64); 12] = [
    ("semop", 1),
    ("semget", 2),
    ("semctl", 3),
    ("semtimedop", 4),
    ("msgsnd", 11),
    ("msgrcv", 12),
    ("msgget", 13),
    ("msgctl", 14),
    ("shmat", 21),
    ("shmdt", 22),
    ("shmget", 23),
    ("shmctl", 24),
];

/// A table name as the kernel and libseccomp spell it: the `syscalls` crate writes i386's
/// `break` as the raw identifier `r#break`.
fn plain(name: &'static str) -> &'static str {
    name.strip_prefix("r#").unwrap_or(name)
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Abi::X86_64 => "x86_64",
            Abi::X32 => "x32",
            Abi::I386 => "i386",
            Abi::Aarch64 => "aarch64",
        })
    }
}

/// aarch64's table: the `syscalls` crate's (0.8.1), corrected where it departs from the
/// kernel's own (`asm-generic/unistd.h` with arm64's `asm/unistd.h`, checked by a test):
/// 79 is `newfstatat` on 64-bit kernels (the crate says `fstatat`), and 403..=423 are the
/// 32-bit `*_time64` calls, which a 64-bit kernel doesn't have.
fn aarch64_name(nr: u32) -> Option<&'static str> {
    match nr {
        79 => Some("newfstatat"),
        403..=423 => None,
        _ => syscalls::aarch64::Sysno::new(nr as usize).map(|s| plain(s.name())),
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
            let name = plain(syscalls::x86_64::Sysno::new(nr as usize)?.name());
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

/// How every report names a syscall: `name` on x86_64, `name (abi)` on the other ABIs, and
/// `<abi>:<nr>` for a number the table doesn't know.
impl fmt::Display for SyscallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.abi.name(self.nr) {
            Some(name) => AbiName(self.abi, name).fmt(f),
            None => write!(f, "{}:{}", self.abi, self.nr),
        }
    }
}

/// A syscall by name on an ABI, written as [`SyscallId`] writes it: `name (abi)` off x86_64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbiName<'a>(pub Abi, pub &'a str);

impl fmt::Display for AbiName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Abi::X86_64 => f.write_str(self.1),
            abi => write!(f, "{} ({abi})", self.1),
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

    /// Pinned for `syscalls` 0.8.1 (Linux 6.17 tables): a new crate version that adds calls
    /// changes these on purpose; one that loses the last entry fails here.
    #[test]
    fn table_sizes_per_abi() {
        assert_eq!(Abi::X86_64.names().len(), 383);
        assert_eq!(Abi::I386.names().len(), 459);
        assert_eq!(
            Abi::X32.names().len(),
            383,
            "the x86_64 names, some at 512 and up"
        );
        for abi in [Abi::X86_64, Abi::I386] {
            assert_eq!(abi.name(469), Some("file_setattr"), "{abi}");
            assert!(abi.knows("file_setattr"), "{abi}");
            assert!(abi.names().contains(&"file_setattr"), "{abi}");
        }
    }

    #[test]
    fn i386_names_as_libseccomp_reads_them() {
        assert_eq!(Abi::I386.name(17), Some("break"));
        assert!(Abi::I386.knows("break"));
        assert!(!Abi::I386.knows("r#break"));
        assert!(Abi::I386.names().iter().all(|n| !n.starts_with("r#")));
        for name in ["recv", "send", "accept", "semop", "semtimedop"] {
            assert!(Abi::I386.knows(name), "{name}");
            assert!(
                !Abi::I386.names().contains(&name),
                "{name}: no direct i386 number"
            );
        }
        assert_eq!(Abi::I386.multiplexed("socket"), Some(("socketcall", 1)));
        assert_eq!(Abi::I386.multiplexed("send"), Some(("socketcall", 9)));
        assert_eq!(Abi::I386.multiplexed("recv"), Some(("socketcall", 10)));
        assert_eq!(Abi::I386.multiplexed("sendmmsg"), Some(("socketcall", 20)));
        assert_eq!(Abi::I386.multiplexed("semop"), Some(("ipc", 1)));
        assert_eq!(Abi::I386.multiplexed("msgsnd"), Some(("ipc", 11)));
        assert_eq!(Abi::I386.multiplexed("shmctl"), Some(("ipc", 24)));
        assert_eq!(Abi::I386.multiplexed("read"), None);
        assert_eq!(Abi::X86_64.multiplexed("recv"), None);
        assert!(!Abi::X86_64.knows("recv"));
        assert!(!Abi::X32.knows("send"));
        assert!(!Abi::I386.knows("cacheflush"));
    }

    #[test]
    fn syscalls_are_named_with_their_abi() {
        let id = |abi, nr| SyscallId { abi, nr }.to_string();
        assert_eq!(id(Abi::X86_64, 83), "mkdir");
        assert_eq!(id(Abi::I386, 39), "mkdir (i386)");
        assert_eq!(id(Abi::X32, 512), "rt_sigaction (x32)");
        assert_eq!(id(Abi::X86_64, 1000), "x86_64:1000");
        assert_eq!(AbiName(Abi::X32, "read").to_string(), "read (x32)");
    }

    #[test]
    fn aarch64_as_the_kernel_names_it() {
        assert_eq!(Abi::Aarch64.name(56), Some("openat"));
        assert_eq!(Abi::Aarch64.name(79), Some("newfstatat"));
        assert_eq!(Abi::Aarch64.name(61), Some("getdents64"));
        assert_eq!(
            Abi::Aarch64.name(403),
            None,
            "clock_gettime64 is 32-bit only"
        );
        assert_eq!(Abi::Aarch64.name(424), Some("pidfd_send_signal"));
        assert!(!Abi::Aarch64.knows("open") && !Abi::Aarch64.knows("fstatat"));
        assert!(!Abi::Aarch64.knows("arch_prctl"));
        assert_eq!(Abi::Aarch64.names().len(), 325);
        assert_eq!(Abi::Aarch64.seccomp_arch(), "SCMP_ARCH_AARCH64");
        assert_eq!(
            Abi::from_seccomp_arch("SCMP_ARCH_AARCH64"),
            Some(Abi::Aarch64)
        );
        assert_eq!(Abi::Aarch64.arch(), Arch::Arm64);
        assert_eq!(Arch::Arm64.native(), Abi::Aarch64);
        assert_eq!("arm64".parse::<Arch>(), Ok(Arch::Arm64));
        assert!("aarch64".parse::<Arch>().is_err());
    }

    #[test]
    fn index_round_trip() {
        assert_eq!(Abi::from_index(110), Some((Abi::X86_64, 110)));
        assert_eq!(Abi::from_index(NR_PER_ABI + 1), Some((Abi::X32, 1)));
        assert_eq!(Abi::from_index(2 * NR_PER_ABI + 64), Some((Abi::I386, 64)));
        assert_eq!(Abi::from_index(OUT_OF_RANGE), None);
    }
}
