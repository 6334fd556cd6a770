//! The container runtime's tail: the calls its init makes after it has installed the
//! container's seccomp filter, which every profile must therefore allow for the container to
//! start — measured per runtime version, never guessed.
//!
//! runc installs the filter before its last steps (capabilities, user, working directory, the
//! exec fifo, the final execve), so those calls run under the filter. Some happen only
//! sometimes (`futex` when the init's thread meets another; `rt_sigreturn` when a signal lands
//! on it): a training that happened not to see one would write a profile that fails the next
//! start. `cargo xtask runtime-tail` measures the set: many starts at once under CPU
//! contention, a garbage collector that runs all the time, one or many Ps, and container
//! configurations that take runc's other paths; the kernel side tells the runtime's calls from
//! the workload's by the exec that hands over.

/// A container runtime as the engine reports it: the name the container runs with (`runc`,
/// containerd's `io.containerd.runc.v2`, a name from the engine's configuration) and, when the
/// engine reports it, its version (`1.1.5+ds1`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    pub name: String,
    pub version: Option<String>,
}

impl Runtime {
    pub fn new(name: &str, version: Option<&str>) -> Self {
        Runtime {
            name: name.to_string(),
            version: version.map(String::from),
        }
    }

    /// The measured family this runtime belongs to (`runc` for containerd's runc shims too).
    fn family(&self) -> Option<&'static str> {
        let name = self.name.rsplit('/').next().unwrap_or_default();
        (name == "runc"
            || name.starts_with("io.containerd.runc.")
            || name == "io.containerd.runtime.v1.linux")
            .then_some("runc")
    }

    /// `major.minor` of the version, as the measurements are keyed.
    fn minor(&self) -> Option<String> {
        let version = self.version.as_deref()?.trim_start_matches('v');
        let mut parts = version.split(['.', '+', '-', '~']);
        let (major, minor) = (parts.next()?, parts.next()?);
        (major.chars().all(|c| c.is_ascii_digit()) && minor.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{major}.{minor}"))
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{} {v}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

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
}

/// Every measurement, newest versions last.
pub const MEASURED: &[Measured] = &[RUNC_1_1];

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
};

// Why each call is in runc 1.1's set; the counts are of the measurement above.
const EVERY: &str = "made by runc 1.1's init after it installs the container's filter (the exec fifo, the final execve): seen in 899 of 899 containers measured";
const EARLY: &str = "made by runc 1.1's init after it installs the container's filter (capabilities, user, working directory, the executable's lookup): seen in 780 of 780 containers measured (not under no-new-privileges, where runc installs the filter later)";
const FUTEX: &str = "made by runc 1.1's init after it installs the container's filter, only when its thread meets another of runc's Go threads: seen in 897 of 899 containers measured; a profile without it fails every start (runc's runtime dies in futexwakeup)";
const SIGRETURN: &str = "made by runc 1.1's init after it installs the container's filter, when a signal (Go's preemption) lands on its thread: seen in 119 of 899 containers measured";
const FCHOWN: &str = "made by runc 1.1's init after it installs the container's filter, when the container runs as another user (it hands the standard streams over): seen in 120 of the 120 containers measured with a user";

/// The runtime's tail for a container: the calls to allow, with why, and a note when the
/// runtime was not measured as such.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub calls: Vec<(&'static str, &'static str)>,
    /// Set when the set is not the runtime version's own measurement.
    pub note: Option<String>,
}

/// Every measured runtime's tail together, for when no engine says which runtime runs.
pub fn union() -> Tail {
    Tail {
        calls: union_of(MEASURED.iter()),
        note: Some(
            "no container engine answered: the profile allows what every measured container runtime does after installing the filter".into(),
        ),
    }
}

/// The calls of `measured`, each once (its first reason), sorted.
fn union_of<'a>(measured: impl Iterator<Item = &'a Measured>) -> Vec<(&'static str, &'static str)> {
    let mut calls: Vec<(&'static str, &'static str)> = Vec::new();
    for m in measured {
        for call in m.calls {
            if !calls.iter().any(|(n, _)| n == &call.0) {
                calls.push(*call);
            }
        }
    }
    calls.sort();
    calls
}

/// The tail of `runtime`: its version's measurement; for a version or runtime never measured,
/// the union of every measurement (of its family, when it has one), with a note saying so.
pub fn tail(runtime: &Runtime) -> Tail {
    let family = runtime.family();
    let minor = runtime.minor();
    if let Some(m) = MEASURED
        .iter()
        .find(|m| Some(m.family) == family && Some(m.minor) == minor.as_deref())
    {
        return Tail {
            calls: m.calls.to_vec(),
            note: None,
        };
    }
    let pool: Vec<&Measured> = MEASURED
        .iter()
        .filter(|m| family.is_none_or(|f| m.family == f))
        .collect();
    let measured: Vec<String> = pool
        .iter()
        .map(|m| format!("{} {}", m.family, m.minor))
        .collect();
    Tail {
        calls: union_of(pool.into_iter()),
        note: Some(format!(
            "the container runtime {runtime} was not measured: the profile allows what {} do{} after installing the filter (`cargo xtask runtime-tail` measures a runtime); verify it with `profile verify`",
            measured.join(", "),
            if measured.len() == 1 { "es" } else { "" }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_families() {
        let runc = Runtime::new("runc", Some("1.1.5+ds1"));
        assert_eq!(runc.family(), Some("runc"));
        assert_eq!(runc.minor().as_deref(), Some("1.1"));
        assert_eq!(
            Runtime::new("io.containerd.runc.v2", Some("v1.1.12"))
                .minor()
                .as_deref(),
            Some("1.1")
        );
        assert_eq!(
            Runtime::new("io.containerd.runc.v2", None).family(),
            Some("runc")
        );
        assert_eq!(Runtime::new("crun", Some("1.8.1")).family(), None);
        assert_eq!(Runtime::new("runc", Some("dev")).minor(), None);
    }

    #[test]
    fn measured_versions_use_their_own_set() {
        let t = tail(&Runtime::new("runc", Some("1.1.5+ds1")));
        assert_eq!(t.note, None);
        assert_eq!(t.calls, RUNC_1_1.calls);
    }

    #[test]
    fn unmeasured_runtimes_get_the_union_and_a_note() {
        let t = tail(&Runtime::new("runc", Some("1.3.0")));
        let note = t.note.expect("a note");
        assert!(note.contains("runc 1.3.0 was not measured"), "{note}");
        for (name, _) in RUNC_1_1.calls {
            assert!(t.calls.iter().any(|(n, _)| n == name), "{name}");
        }
        let t = tail(&Runtime::new("crun", None));
        assert!(t.note.is_some());
    }

    /// Every measured call is a real x86_64 syscall, named once.
    #[test]
    fn measured_calls_are_known() {
        for m in MEASURED {
            let mut names: Vec<&str> = m.calls.iter().map(|(n, _)| *n).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), m.calls.len(), "{} {}", m.family, m.minor);
            for name in names {
                assert!(crate::names::Abi::X86_64.knows(name), "{name}");
            }
        }
    }
}
