//! The measurements of container runtimes' tails (`cargo xtask runtime-tail`), and what was
//! read from the binaries measured.
use super::binary::{FromBinary, Origin};

/// What one measurement of a runtime version found.
#[derive(Debug)]
pub struct Measured {
    pub family: &'static str,
    /// `major.minor` of the versions it stands for.
    pub minor: &'static str,
    /// What exactly was measured, how and when.
    pub source: &'static str,
    /// Each call, with why it is allowed (how often it was seen).
    pub calls: &'static [(&'static str, &'static str)],
    /// What was read from the measured binary, for when the runtime's own binary can't be.
    pub binary: Option<Stored>,
}

/// What was read from a measured runtime's binary ([`super::binary`]), kept with the
/// measurement: a check in the suite reads the binary again and compares.
#[derive(Debug)]
pub struct Stored {
    /// The binary, by package.
    pub binary: &'static str,
    pub go: &'static str,
    /// Each call with the runtime functions that give its number.
    pub calls: &'static [(&'static str, &'static [&'static str])],
    /// Calls the C library makes in these functions for the Go runtime (cgo).
    pub libc: &'static [(&'static str, &'static [&'static str])],
    /// Calls the kernel makes when a signal interrupts these.
    pub restarts: &'static [(&'static str, &'static [&'static str])],
}

impl Measured {
    /// What was read from the binary measured, as reading it now would say.
    pub fn read(&self) -> Option<FromBinary> {
        let stored = self.binary.as_ref()?;
        let functions = |fs: &[&str]| fs.iter().map(|f| f.to_string()).collect();
        let calls = stored
            .calls
            .iter()
            .map(|(name, fs)| (*name, Origin::GoRuntime(functions(fs))))
            .chain(
                stored
                    .libc
                    .iter()
                    .map(|(name, fs)| (*name, Origin::CLibrary(fs.to_vec()))),
            )
            .chain(
                stored
                    .restarts
                    .iter()
                    .map(|(name, after)| (*name, Origin::Restart(after.to_vec()))),
            )
            .collect();
        Some(FromBinary {
            path: stored.binary.to_string(),
            go: Some(stored.go.to_string()),
            calls,
            note: None,
        })
    }
}

/// Every measurement, newest versions last.
pub const MEASURED: &[Measured] = &[RUNC_1_1, CRUN_1_8];

/// runc 1.1, measured on 899 containers: 120 per condition, 60 starting at once (the
/// `docker exec` condition: 60 containers, each entered twice), under plain starts, CPU
/// contention, GOGC=1 with one or sixteen Ps, a user with a working directory and no
/// capabilities, and no_new_privs with a terminal and extra groups.
const RUNC_1_1: Measured = Measured {
    family: "runc",
    minor: "1.1",
    source: "runc 1.1.5+ds1 (Debian 12, go1.19.8, libseccomp 2.5.4) under Docker Engine 20.10.24 on Linux 6.18: \
             899 containers and 120 `docker exec` processes, 60 starting at once, under 8 conditions \
             (cargo xtask runtime-tail, 2026-12-02)",
    calls: &[
        ("capget", EARLY),
        ("capset", EARLY),
        ("chdir", EARLY),
        ("close", EVERY),
        ("epoll_ctl", EVERY),
        ("execve", EVERY),
        ("faccessat2", EARLY),
        ("fchown", FCHOWN),
        ("fcntl", EARLY),
        ("fstat", EARLY),
        ("fstatfs", EVERY),
        ("futex", FUTEX),
        ("getcwd", EARLY),
        ("getdents64", EVERY),
        ("getpid", EVERY),
        ("getppid", EARLY),
        ("newfstatat", EARLY),
        ("openat", EVERY),
        ("prctl", EARLY),
        ("read", EARLY),
        ("rt_sigreturn", SIGRETURN),
        ("setgid", EARLY),
        ("setgroups", EARLY),
        ("setuid", EARLY),
        ("write", EVERY),
    ],
    binary: Some(RUNC_1_1_5_BINARY),
};

/// Read from Debian 12's runc 1.1.5+ds1 (`/usr/sbin/runc`, go1.19.8, with cgo).
const RUNC_1_1_5_BINARY: Stored = Stored {
    binary: "runc 1.1.5+ds1-1+deb12u1 (Debian 12)",
    go: "go1.19.8",
    calls: &[
        ("clock_gettime", &["runtime.nanotime1"]),
        ("clone", &["runtime.clone"]),
        ("epoll_create", &["runtime.epollcreate"]),
        ("epoll_create1", &["runtime.epollcreate1"]),
        ("epoll_ctl", &["runtime.epollctl"]),
        ("epoll_pwait", &["runtime.epollwait"]),
        ("exit", &["runtime.clone", "runtime.exitThread"]),
        ("exit_group", &["runtime.exit"]),
        ("fcntl", &["runtime.closeonexec"]),
        ("futex", &["runtime.futex"]),
        (
            "getpid",
            &["runtime.getpid", "runtime.raise", "runtime.raiseproc"],
        ),
        (
            "gettid",
            &["runtime.clone", "runtime.gettid", "runtime.raise"],
        ),
        ("kill", &["runtime.raiseproc"]),
        ("madvise", &["runtime.madvise"]),
        ("mmap", &["runtime.sysMmap"]),
        ("munmap", &["runtime.sysMunmap"]),
        ("nanosleep", &["runtime.usleep"]),
        ("pipe2", &["runtime.pipe2"]),
        ("read", &["runtime.read"]),
        ("rt_sigaction", &["runtime.rt_sigaction"]),
        ("rt_sigprocmask", &["runtime.rtsigprocmask"]),
        ("rt_sigreturn", &["runtime.sigreturn"]),
        ("sched_yield", &["runtime.osyield"]),
        ("sigaltstack", &["runtime.sigaltstack"]),
        ("tgkill", &["runtime.raise", "runtime.tgkill"]),
        ("timer_create", &["runtime.timer_create"]),
        ("timer_delete", &["runtime.timer_delete"]),
        ("timer_settime", &["runtime.timer_settime"]),
        ("write", &["runtime.write1"]),
    ],
    libc: &[
        ("brk", &["free", "malloc"]),
        ("clone3", &["pthread_create"]),
        ("mprotect", &["malloc", "pthread_create"]),
        ("rseq", &["pthread_create"]),
        ("set_robust_list", &["pthread_create"]),
    ],
    restarts: &[("restart_syscall", &["futex", "nanosleep"])],
};

// Why each call is in runc 1.1's set; the counts are of the measurement above.
const EVERY: &str = "made by runc 1.1's init after it installs the container's filter (the exec fifo, the final execve): seen in 899 of 899 containers measured";
const EARLY: &str = "made by runc 1.1's init after it installs the container's filter (capabilities, user, working directory, the executable's lookup): seen in 780 of 780 containers measured (not under no-new-privileges, where runc installs the filter later)";
const FUTEX: &str = "made by runc 1.1's init after it installs the container's filter, only when its thread meets another of runc's Go threads: seen in 897 of 899 containers measured; a profile without it fails every start (runc's runtime dies in futexwakeup)";
const SIGRETURN: &str = "made by runc 1.1's init after it installs the container's filter, when a signal (Go's preemption) lands on its thread: seen in 119 of 899 containers measured";
const FCHOWN: &str = "made by runc 1.1's init after it installs the container's filter, when the container runs as another user (it hands the standard streams over): seen in 120 of the 120 containers measured with a user";

/// crun 1.8 (a C program: no runtime of its own beside its code), measured on 856 containers
/// (60 of them entered with `docker exec`): 120 per condition, 60 starting at once, under plain starts,
/// CPU contention, a large environment with and without contention, a user with a working
/// directory and no capabilities, no_new_privs with a terminal and extra groups, `docker exec`,
/// and Podman's service running crun.
const CRUN_1_8: Measured = Measured {
    family: "crun",
    minor: "1.8",
    source: "crun 1.8.1 (Debian 12, libseccomp 2.5.4) under Docker Engine 20.10.24 and Podman 4.3.1 on Linux 6.18: \
             856 containers (60 of them entered with `docker exec`), 60 starting at once, under 8 conditions \
             (cargo xtask runtime-tail --runtime crun, 2026-12-07)",
    calls: &[
        ("capset", CRUN_EARLY),
        ("close", CRUN_EVERY),
        ("execve", CRUN_EVERY),
        ("fchown", CRUN_EXEC),
        ("ioctl", CRUN_EXEC),
        ("openat", CRUN_EXEC),
        ("prctl", CRUN_EARLY),
        ("pselect6", CRUN_EARLY),
        ("read", CRUN_EARLY),
        ("rt_sigaction", CRUN_EARLY),
        ("rt_sigprocmask", CRUN_EARLY),
        ("setgroups", CRUN_EXEC),
        ("setresgid", CRUN_EARLY),
        ("setresuid", CRUN_EARLY),
        ("statx", CRUN_EXEC),
        ("umask", CRUN_EXEC),
        ("write", CRUN_EARLY),
    ],
    binary: None,
};

// Why each call is in crun 1.8's set; the counts are of the measurement above.
const CRUN_EVERY: &str = "made by crun 1.8's init after it installs the container's filter (closing its descriptors, the final execve): seen in 856 of 856 containers measured";
const CRUN_EARLY: &str = "made by crun 1.8's init after it installs the container's filter (capabilities, user, waiting on its sync socket, signals reset): seen in 736 of 736 containers measured (not under no-new-privileges, where crun installs the filter later)";
const CRUN_EXEC: &str = "made by crun 1.8 after it installs the filter when it runs a process in a running container (docker exec: the terminal, the working directory's lookup, groups, umask): seen in 60 of the 60 containers entered with docker exec";
