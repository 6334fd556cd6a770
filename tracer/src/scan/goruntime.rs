//! The Go runtime's own calls in a Go executable: the syscalls whose number the runtime's code
//! gives (packages `runtime`, `runtime/internal/…`, `internal/runtime/…`). The runtime makes
//! them on whichever thread it runs, at moments the program doesn't choose — growing the heap
//! or a stack, scheduling, taking a signal, starting a thread, reporting a crash — so a
//! program that installs a seccomp filter on itself (a container runtime's init) can make any
//! of them under it. The program's own calls (the `syscall` and `x/sys/unix` packages) are
//! not among them: those happen where its code says, which measuring it finds.
//!
//! Left out are the calls only the runtime's start makes: a function reached, through every
//! chain of direct calls, from `runtime.rt0_go` alone (`osinit`'s CPU count, `sysargs`'
//! `mincore`) runs before any of the program's code, so before any filter. A function whose
//! address is taken, that something jumps into the middle of, or that nothing calls directly
//! may run at any time: its calls stay in.
//!
//! A Go program linked with the C library (cgo) hands some of that work to it: runtime/cgo
//! starts threads with `pthread_create`, and on x86_64 maps memory and sets signal handlers
//! through `mmap`, `munmap` and `sigaction`. What glibc makes for those is in [`THROUGH_LIBC`],
//! for the ones the executable imports.
use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{
    ScanError,
    gobin::GoInfo,
    index::Index,
    program::{Linking, Program},
    resolve::resolve_indexed,
};
use crate::names::{Abi, SyscallId};

/// Where a Go program starts: what only it reaches runs before the program's own code.
const START: &str = "runtime.rt0_go";

/// Calls the kernel makes itself when a signal interrupts one of these (the restart of an
/// interrupted sleep or wait goes through the filter as `restart_syscall`).
const RESTARTED: [&str; 3] = ["nanosleep", "clock_nanosleep", "futex"];

/// What the C library makes for each function runtime/cgo calls once the program runs, as
/// glibc does on x86_64: a new thread (its stack mapped with a guard page, signals blocked
/// around `clone3`, or `clone` where that answers ENOSYS; the thread registers its robust
/// list and rseq area, and unmaps or advises its stack away when it ends), the thread's start
/// record allocated and freed, a retry after EAGAIN, memory maps and signal handlers.
pub const THROUGH_LIBC: &[(&str, &[&str])] = &[
    (
        "pthread_create",
        &[
            "clone",
            "clone3",
            "exit",
            "futex",
            "madvise",
            "mmap",
            "mprotect",
            "munmap",
            "rseq",
            "rt_sigprocmask",
            "set_robust_list",
        ],
    ),
    ("pthread_sigmask", &["rt_sigprocmask"]),
    ("malloc", &["brk", "futex", "mmap", "mprotect", "munmap"]),
    ("free", &["brk", "futex", "madvise", "munmap"]),
    ("nanosleep", &["nanosleep"]),
    ("mmap", &["mmap"]),
    ("munmap", &["munmap"]),
    ("sigaction", &["rt_sigaction"]),
];

/// What a Go executable's runtime can call once its program runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoRuntimeCalls {
    pub go: GoInfo,
    /// Linked with libc (cgo): some of the runtime's work (memory maps, signal handlers,
    /// threads) goes through the C library, whose calls are not in this file.
    pub cgo: bool,
    /// Each call with the runtime functions that give its number.
    pub calls: BTreeMap<SyscallId, BTreeSet<String>>,
    /// Calls the kernel makes for the runtime, with the runtime's calls they follow:
    /// `restart_syscall` after a signal interrupted a sleep.
    pub implied: BTreeMap<SyscallId, Vec<&'static str>>,
    /// Calls the C library makes for the runtime (cgo), with the functions it makes them in
    /// ([`THROUGH_LIBC`]).
    pub through_libc: BTreeMap<SyscallId, BTreeSet<&'static str>>,
    /// Calls only the runtime's start makes, with their functions: left out.
    pub at_start: BTreeMap<SyscallId, BTreeSet<String>>,
    /// Runtime functions with a site whose number was not resolved: the set may lack calls.
    pub unresolved: Vec<String>,
}

/// Whether `function` belongs to the Go runtime.
pub fn in_go_runtime(function: &str) -> bool {
    function.starts_with("runtime.")
        || function.starts_with("runtime/internal/")
        || function.starts_with("internal/runtime/")
}

/// The Go runtime's calls in `bytes`; `None` for an executable not built by Go.
pub fn go_runtime_calls(bytes: &[u8]) -> Result<Option<GoRuntimeCalls>, ScanError> {
    let program = Program::parse(bytes)?;
    let Some(go) = program.go.clone() else {
        return Ok(None);
    };
    let (resolution, index) = resolve_indexed(&program);
    let names: BTreeMap<u64, String> = resolution
        .origins
        .values()
        .flatten()
        .map(|f| (*f, program.name(*f)))
        .collect();
    let reach = Reach {
        program: &program,
        index: &index,
        start: program
            .functions
            .iter()
            .find(|(_, n)| n.as_deref() == Some(START))
            .map(|(a, _)| *a),
    };
    let mut calls: BTreeMap<SyscallId, BTreeSet<String>> = BTreeMap::new();
    let mut at_start: BTreeMap<SyscallId, BTreeSet<String>> = BTreeMap::new();
    for (id, functions) in &resolution.origins {
        for f in functions {
            let name = &names[f];
            if !in_go_runtime(name) {
                continue;
            }
            let into = match reach.after_start(*f) {
                true => &mut calls,
                false => &mut at_start,
            };
            into.entry(*id).or_default().insert(name.clone());
        }
    }
    at_start.retain(|id, _| !calls.contains_key(id));
    let restart = SyscallId {
        abi: Abi::X86_64,
        nr: syscalls::x86_64::Sysno::restart_syscall.id() as u32,
    };
    let restarted: Vec<&'static str> = calls
        .keys()
        .filter_map(|id| id.abi.name(id.nr))
        .filter(|n| RESTARTED.contains(n))
        .collect();
    let mut implied = BTreeMap::new();
    if !restarted.is_empty() && !calls.contains_key(&restart) {
        implied.insert(restart, restarted);
    }
    let unresolved = resolution
        .unresolved
        .iter()
        .filter(|u| in_go_runtime(&u.function))
        .map(|u| u.function.clone())
        .collect();
    let cgo = matches!(program.linking, Linking::Dynamic { .. });
    let mut through_libc: BTreeMap<SyscallId, BTreeSet<&'static str>> = BTreeMap::new();
    // Only a program that starts threads through the C library hands the runtime's work to it.
    if cgo && program.imports.contains("pthread_create") {
        for (function, names) in THROUGH_LIBC {
            if !program.imports.contains(*function) {
                continue;
            }
            for name in *names {
                if let Ok(sysno) = name.parse::<syscalls::x86_64::Sysno>() {
                    let id = SyscallId {
                        abi: Abi::X86_64,
                        nr: sysno.id() as u32,
                    };
                    through_libc.entry(id).or_default().insert(function);
                }
            }
        }
    }
    Ok(Some(GoRuntimeCalls {
        go,
        cgo,
        calls,
        through_libc,
        implied,
        at_start,
        unresolved,
    }))
}

/// Which functions run only while the runtime starts.
struct Reach<'p, 'a> {
    program: &'p Program<'a>,
    index: &'p Index,
    start: Option<u64>,
}

impl Reach<'_, '_> {
    /// Whether `function` can run once the program's own code runs: some chain of its callers
    /// leads elsewhere than the start (to a function called through a pointer, entered in its
    /// middle, or called by nothing the scan sees).
    fn after_start(&self, function: u64) -> bool {
        let Some(start) = self.start else {
            return true;
        };
        let mut seen = HashSet::from([function]);
        let mut todo = vec![function];
        while let Some(f) = todo.pop() {
            if f == start {
                continue;
            }
            let callers = self.index.callers.get(&f);
            if callers.is_none_or(Vec::is_empty)
                || self.index.referenced.contains(&f)
                || self.program.stored_addresses.contains(&f)
                || self.index.entered_inside(f)
            {
                return true;
            }
            for edge in callers.into_iter().flatten() {
                if seen.insert(edge.caller) {
                    todo.push(edge.caller);
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtimes_packages() {
        assert!(in_go_runtime("runtime.usleep"));
        assert!(in_go_runtime("runtime.(*mheap).grow"));
        assert!(in_go_runtime("runtime/internal/syscall.Syscall6"));
        assert!(in_go_runtime("internal/runtime/syscall.Syscall6"));
        assert!(!in_go_runtime("runtime/debug.SetGCPercent"));
        assert!(!in_go_runtime("syscall.Setuid"));
        assert!(!in_go_runtime("golang.org/x/sys/unix.Prctl"));
    }
}
