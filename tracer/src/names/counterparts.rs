//! What an x86_64 call becomes on aarch64: the syscall(s) the same libc or runtime operation
//! makes there, with where its arguments go, and why. Built from the kernel's tables (the
//! x86_64 names aarch64 lacks, checked against both kernels' headers by a test) and from what
//! glibc, musl and Go call on arm64 in their place.
use super::Abi;

/// One aarch64 call an x86_64 one becomes, with its arguments' new places: (x86_64 index,
/// aarch64 index). Arguments not listed have no counterpart (a pointer to another struct, a
/// value folded into flags): conditions on them are not carried over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counterpart {
    pub name: &'static str,
    pub args: &'static [(u32, u32)],
}

/// An x86_64 call aarch64 lacks, and what takes its place there (nothing, for some).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replacement {
    pub x86_64: &'static str,
    pub aarch64: &'static [Counterpart],
    pub why: &'static str,
}

/// How an x86_64 call carries over to aarch64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnAarch64 {
    /// The same call, arguments in the same places.
    Same,
    /// The same call with some arguments elsewhere.
    Moved(&'static Moved),
    /// aarch64 lacks it; these calls (maybe none) do its work there.
    Replaced(&'static Replacement),
}

/// Where each argument of `f(path, …)` goes in `fat(AT_FDCWD, path, …)`.
const AT_1: &[(u32, u32)] = &[(0, 1)];
const AT_2: &[(u32, u32)] = &[(0, 1), (1, 2)];
const AT_3: &[(u32, u32)] = &[(0, 1), (1, 2), (2, 3)];
const SAME_1: &[(u32, u32)] = &[(0, 0)];
const SAME_2: &[(u32, u32)] = &[(0, 0), (1, 1)];
const SAME_3: &[(u32, u32)] = &[(0, 0), (1, 1), (2, 2)];
const SAME_4: &[(u32, u32)] = &[(0, 0), (1, 1), (2, 2), (3, 3)];
const NO_ARGS: &[(u32, u32)] = &[];

const fn to(name: &'static str, args: &'static [(u32, u32)]) -> Counterpart {
    Counterpart { name, args }
}

const fn row(
    x86_64: &'static str,
    aarch64: &'static [Counterpart],
    why: &'static str,
) -> Replacement {
    Replacement {
        x86_64,
        aarch64,
        why,
    }
}

/// Every x86_64 call aarch64 lacks, sorted by name.
pub const REPLACEMENTS: &[Replacement] = &[
    row(
        "_sysctl",
        &[],
        "removed from the kernel in 5.5 and from glibc; x86_64 keeps only the number (ENOSYS)",
    ),
    row(
        "access",
        &[to("faccessat", AT_2)],
        "glibc, musl and Go call faccessat(AT_FDCWD, path, mode)",
    ),
    row(
        "afs_syscall",
        &[],
        "never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "alarm",
        &[to("setitimer", NO_ARGS)],
        "glibc and musl arm an ITIMER_REAL with setitimer",
    ),
    row(
        "arch_prctl",
        &[],
        "x86 thread-pointer and CPU-feature setup; aarch64 sets TPIDR_EL0 from user space",
    ),
    row(
        "chmod",
        &[to("fchmodat", AT_2)],
        "glibc and musl call fchmodat(AT_FDCWD, path, mode)",
    ),
    row(
        "chown",
        &[to("fchownat", AT_3)],
        "glibc and musl call fchownat(AT_FDCWD, path, uid, gid, 0)",
    ),
    row(
        "creat",
        &[to("openat", &[(0, 1), (1, 3)])],
        "glibc and musl call openat(AT_FDCWD, path, O_CREAT|O_WRONLY|O_TRUNC, mode)",
    ),
    row(
        "create_module",
        &[],
        "removed in Linux 2.6; a reserved number (sys_ni_syscall)",
    ),
    row(
        "dup2",
        &[to("dup3", SAME_2), to("fcntl", SAME_1)],
        "glibc and musl call dup3(old, new, 0), and fcntl(old, F_GETFL/F_GETFD) when old == new",
    ),
    row(
        "epoll_create",
        &[to("epoll_create1", NO_ARGS)],
        "glibc and musl call epoll_create1(0) (the size argument is gone)",
    ),
    row(
        "epoll_ctl_old",
        &[],
        "never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "epoll_wait",
        &[to("epoll_pwait", SAME_4)],
        "glibc, musl and Go call epoll_pwait(epfd, events, max, timeout, NULL)",
    ),
    row(
        "epoll_wait_old",
        &[],
        "never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "eventfd",
        &[to("eventfd2", SAME_1)],
        "glibc and musl call eventfd2(count, 0)",
    ),
    row(
        "fork",
        &[to("clone", NO_ARGS)],
        "glibc, musl and Go create processes with clone(SIGCHLD, …)",
    ),
    row(
        "futimesat",
        &[to("utimensat", SAME_2)],
        "glibc calls utimensat(dirfd, path, times, 0) with the times as timespecs",
    ),
    row(
        "get_kernel_syms",
        &[],
        "removed in Linux 2.6; a reserved number (sys_ni_syscall)",
    ),
    row(
        "get_thread_area",
        &[],
        "x86 TLS descriptors in the GDT; aarch64 keeps the thread pointer in TPIDR_EL0",
    ),
    row(
        "getdents",
        &[to("getdents64", SAME_3)],
        "readdir reads getdents64 on aarch64 (glibc, musl, Go)",
    ),
    row(
        "getpgrp",
        &[to("getpgid", NO_ARGS)],
        "glibc and musl call getpgid(0)",
    ),
    row(
        "getpmsg",
        &[],
        "STREAMS, never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "inotify_init",
        &[to("inotify_init1", NO_ARGS)],
        "glibc and musl call inotify_init1(0)",
    ),
    row(
        "ioperm",
        &[],
        "x86 I/O-port permissions; aarch64 has no I/O ports",
    ),
    row(
        "iopl",
        &[],
        "x86 I/O privilege level; aarch64 has no I/O ports",
    ),
    row(
        "lchown",
        &[to("fchownat", AT_3)],
        "glibc and musl call fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW)",
    ),
    row(
        "link",
        &[to("linkat", &[(0, 1), (1, 3)])],
        "glibc and musl call linkat(AT_FDCWD, old, AT_FDCWD, new, 0)",
    ),
    row(
        "lstat",
        &[to("newfstatat", AT_2)],
        "glibc and musl call newfstatat(AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW)",
    ),
    row(
        "mkdir",
        &[to("mkdirat", AT_2)],
        "glibc, musl and Go call mkdirat(AT_FDCWD, path, mode)",
    ),
    row(
        "mknod",
        &[to("mknodat", AT_3)],
        "glibc and musl call mknodat(AT_FDCWD, path, mode, dev)",
    ),
    row(
        "modify_ldt",
        &[],
        "x86 local descriptor tables; aarch64 has no segments",
    ),
    row(
        "open",
        &[to("openat", AT_3)],
        "glibc, musl and Go call openat(AT_FDCWD, path, flags, mode)",
    ),
    row(
        "pause",
        &[to("ppoll", NO_ARGS)],
        "glibc and musl wait with ppoll(NULL, 0, NULL, NULL)",
    ),
    row(
        "pipe",
        &[to("pipe2", SAME_1)],
        "glibc, musl and Go call pipe2(fds, 0)",
    ),
    row(
        "poll",
        &[to("ppoll", SAME_2)],
        "glibc and musl call ppoll(fds, n, timeout as timespec, NULL)",
    ),
    row(
        "putpmsg",
        &[],
        "STREAMS, never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "query_module",
        &[],
        "removed in Linux 2.6; a reserved number (sys_ni_syscall)",
    ),
    row(
        "readlink",
        &[to("readlinkat", AT_3)],
        "glibc, musl and Go call readlinkat(AT_FDCWD, path, buf, size)",
    ),
    row(
        "rename",
        &[to("renameat", &[(0, 1), (1, 3)])],
        "glibc, musl and Go call renameat(AT_FDCWD, old, AT_FDCWD, new)",
    ),
    row(
        "rmdir",
        &[to("unlinkat", AT_1)],
        "glibc, musl and Go call unlinkat(AT_FDCWD, path, AT_REMOVEDIR)",
    ),
    row(
        "security",
        &[],
        "never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "select",
        &[to("pselect6", SAME_4)],
        "glibc and musl call pselect6(n, r, w, e, timeout as timespec, NULL)",
    ),
    row(
        "set_thread_area",
        &[],
        "x86 TLS descriptors in the GDT; aarch64 keeps the thread pointer in TPIDR_EL0",
    ),
    row(
        "signalfd",
        &[to("signalfd4", SAME_3)],
        "glibc and musl call signalfd4(fd, mask, size, 0)",
    ),
    row(
        "stat",
        &[to("newfstatat", AT_2)],
        "glibc and musl call newfstatat(AT_FDCWD, path, buf, 0)",
    ),
    row(
        "symlink",
        &[to("symlinkat", &[(0, 0), (1, 2)])],
        "glibc, musl and Go call symlinkat(target, AT_FDCWD, path)",
    ),
    row(
        "sysfs",
        &[],
        "obsolete filesystem-type query that asm-generic never had; /proc/filesystems replaces it",
    ),
    row(
        "time",
        &[to("clock_gettime", NO_ARGS)],
        "read through the vDSO; without it, clock_gettime(CLOCK_REALTIME)",
    ),
    row(
        "tuxcall",
        &[],
        "never implemented: a reserved number (sys_ni_syscall)",
    ),
    row(
        "unlink",
        &[to("unlinkat", AT_1)],
        "glibc, musl and Go call unlinkat(AT_FDCWD, path, 0)",
    ),
    row(
        "uprobe",
        &[],
        "x86 uprobe trampoline the kernel enters itself; arm64 uprobes use breakpoints",
    ),
    row(
        "uretprobe",
        &[],
        "x86 uretprobe trampoline the kernel enters itself; arm64 uprobes use breakpoints",
    ),
    row(
        "uselib",
        &[],
        "a.out shared libraries, an x86 legacy aarch64 never had",
    ),
    row(
        "ustat",
        &[],
        "deprecated (statfs replaces it); glibc has no wrapper since 2.28",
    ),
    row(
        "utime",
        &[to("utimensat", AT_1)],
        "glibc and musl call utimensat(AT_FDCWD, path, times, 0)",
    ),
    row(
        "utimes",
        &[to("utimensat", AT_1)],
        "glibc and musl call utimensat(AT_FDCWD, path, times, 0)",
    ),
    row(
        "vfork",
        &[to("clone", NO_ARGS)],
        "glibc and musl call clone(CLONE_VM|CLONE_VFORK|SIGCHLD, …)",
    ),
    row(
        "vserver",
        &[],
        "never implemented: a reserved number (sys_ni_syscall)",
    ),
];

/// A call both have whose arguments sit elsewhere on aarch64: (x86_64 index, aarch64 index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub name: &'static str,
    pub args: &'static [(u32, u32)],
    pub why: &'static str,
}

/// Every call both have whose arguments sit elsewhere on aarch64.
pub const MOVED: &[Moved] = &[Moved {
    name: "clone",
    args: &[(0, 0), (1, 1), (2, 2), (3, 4), (4, 3)],
    why: "arm64 has CONFIG_CLONE_BACKWARDS: tls comes before child_tid (flags stay in arg 0)",
}];

/// How the x86_64 call `name` carries over to aarch64; `None` for a name x86_64 doesn't have.
pub fn on_aarch64(name: &str) -> Option<OnAarch64> {
    if !Abi::X86_64.knows(name) {
        return None;
    }
    if let Ok(i) = REPLACEMENTS.binary_search_by(|r| r.x86_64.cmp(name)) {
        return Some(OnAarch64::Replaced(&REPLACEMENTS[i]));
    }
    if let Some(moved) = MOVED.iter().find(|m| m.name == name) {
        return Some(OnAarch64::Moved(moved));
    }
    Some(OnAarch64::Same)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_x86_64_name_carries_over_or_is_replaced() {
        let aarch64: BTreeSet<&str> = Abi::Aarch64.names().into_iter().collect();
        let lacking: Vec<&str> = Abi::X86_64
            .names()
            .into_iter()
            .filter(|n| !aarch64.contains(n))
            .collect();
        let rows: Vec<&str> = REPLACEMENTS.iter().map(|r| r.x86_64).collect();
        assert_eq!(
            rows, lacking,
            "one row per x86_64 name aarch64 lacks, sorted"
        );
        assert_eq!(rows.len(), 58);
        for r in REPLACEMENTS {
            assert!(!r.why.is_empty(), "{}", r.x86_64);
            for c in r.aarch64 {
                assert!(aarch64.contains(c.name), "{} → {}", r.x86_64, c.name);
                let mut seen = BTreeSet::new();
                assert!(
                    c.args
                        .iter()
                        .all(|(from, to)| *from < 6 && *to < 6 && seen.insert(*to)),
                    "{} → {}: {:?}",
                    r.x86_64,
                    c.name,
                    c.args
                );
            }
        }
        for m in MOVED {
            assert!(
                aarch64.contains(m.name) && Abi::X86_64.knows(m.name),
                "{}",
                m.name
            );
            assert!(m.args.iter().any(|(a, b)| a != b), "{}", m.name);
        }
        assert_eq!(on_aarch64("read"), Some(OnAarch64::Same));
        assert_eq!(on_aarch64("newfstatat"), Some(OnAarch64::Same));
        assert!(matches!(on_aarch64("clone"), Some(OnAarch64::Moved(_))));
        assert!(
            matches!(on_aarch64("open"), Some(OnAarch64::Replaced(r)) if r.aarch64[0].name == "openat")
        );
        assert!(
            matches!(on_aarch64("arch_prctl"), Some(OnAarch64::Replaced(r)) if r.aarch64.is_empty())
        );
        assert_eq!(on_aarch64("cacheflush"), None);
    }
}
