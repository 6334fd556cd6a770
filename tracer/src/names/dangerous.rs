//! The syscalls Docker's default may allow that a workload rarely needs, with why each one
//! matters: what reports mark, and what coverage names first.

/// Syscalls Docker's default may allow that a workload rarely needs, with why they matter.
pub const DANGEROUS: &[(&str, &str)] = &[
    (
        "add_key",
        "adds keys to the kernel keyring, which is not namespaced",
    ),
    ("bpf", "loads eBPF programs into the kernel"),
    (
        "chroot",
        "changes the root directory; a classic step in container escapes",
    ),
    (
        "clone3",
        "creates processes and namespaces with flags seccomp can't inspect",
    ),
    ("fanotify_init", "watches filesystem activity system-wide"),
    (
        "io_uring_enter",
        "drives io_uring, a second syscall interface seccomp can't see into",
    ),
    (
        "io_uring_register",
        "configures io_uring, a frequent source of kernel exploits",
    ),
    (
        "io_uring_setup",
        "creates io_uring instances that bypass per-syscall filtering",
    ),
    (
        "keyctl",
        "manipulates the kernel keyring, which is not namespaced",
    ),
    (
        "memfd_create",
        "creates anonymous executable files: fileless payload staging",
    ),
    ("mknod", "creates device nodes"),
    ("mknodat", "creates device nodes"),
    ("mount", "mounts filesystems"),
    (
        "name_to_handle_at",
        "obtains file handles, the first half of handle-based escapes",
    ),
    (
        "open_by_handle_at",
        "opens files by handle, bypassing the mount namespace (Shocker)",
    ),
    (
        "perf_event_open",
        "opens performance counters: kernel info leaks and side channels",
    ),
    (
        "personality",
        "changes the execution domain; can switch off ASLR",
    ),
    (
        "pidfd_getfd",
        "steals file descriptors from other processes",
    ),
    ("pivot_root", "changes the root mount"),
    ("process_vm_readv", "reads another process's memory"),
    ("process_vm_writev", "writes another process's memory"),
    ("ptrace", "traces and modifies other processes"),
    (
        "request_key",
        "requests keys from the kernel keyring, which is not namespaced",
    ),
    ("setns", "joins other namespaces"),
    ("umount2", "unmounts filesystems, exposing what mounts hid"),
    (
        "unshare",
        "creates namespaces: user namespaces open kernel attack surface",
    ),
    (
        "userfaultfd",
        "stalls page faults at will, a staple of kernel race exploits",
    ),
    (
        "vmsplice",
        "splices user pages into pipes, used in page-cache exploits (Dirty Pipe)",
    ),
];

/// Why `name` is dangerous, when it is.
pub fn why_dangerous(name: &str) -> Option<&'static str> {
    DANGEROUS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}
