//! The container runtime's tail: the calls its init makes after it has installed the
//! container's seccomp filter, which every profile must therefore allow for the container to
//! start — measured per runtime version and read from the runtime's binary, never guessed.
//!
//! runc installs the filter before its last steps (capabilities, user, working directory, the
//! exec fifo, the final execve), so those calls run under the filter. Some happen only
//! sometimes (`futex` when the init's thread meets another; `rt_sigreturn` when a signal lands
//! on it): a training that happened not to see one would write a profile that fails the next
//! start. `cargo xtask runtime-tail` measures the set: many starts at once under CPU
//! contention, a garbage collector that runs all the time, one or many Ps, and container
//! configurations that take runc's other paths; the kernel side tells the runtime's calls from
//! the workload's by the exec that hands over.
//!
//! What measurement finds is what happened. runc is a Go program, and its Go runtime makes
//! calls of its own whenever it likes (growing the heap, sleeping in the scheduler, taking a
//! signal): those are read from the binary the engine runs ([`binary`]), and the tail is both.
//! crun is a C program: its calls after the filter are its code's, and measured.
mod binary;
pub mod locate;
mod measured;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, OnceLock},
};

pub use binary::{FromBinary, Origin};
pub use locate::{Daemon, RuntimeBinary};
pub use measured::{MEASURED, Measured, Stored};

/// A container runtime as the engine reports it: the name the container runs with (`runc`,
/// containerd's `io.containerd.runc.v2`, a name from the engine's configuration), when the
/// engine reports it or the binary says, its version (`1.1.5+ds1`), and its executable when
/// it was found where the engine's daemon runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    pub name: String,
    pub version: Option<String>,
    pub binary: Option<RuntimeBinary>,
}

impl Runtime {
    pub fn new(name: &str, version: Option<&str>) -> Self {
        Runtime {
            name: name.to_string(),
            version: version.map(String::from),
            binary: None,
        }
    }

    /// The runtime run from `binary`; its version, when not known, is the binary's own.
    pub fn with_binary(mut self, binary: Option<RuntimeBinary>) -> Self {
        if self.version.is_none() {
            self.version = binary.as_ref().and_then(RuntimeBinary::version);
        }
        self.binary = binary;
        self
    }

    /// Starts reading its binary in the background: its tail needs it, and reading takes a
    /// moment that a recording can hide.
    pub fn prepare(&self) {
        if let Some(b) = &self.binary {
            binary::prepare(b);
        }
    }

    /// The measured family this runtime belongs to (`runc` for containerd's runc shims too).
    fn family(&self) -> Option<&'static str> {
        let name = self.name.rsplit('/').next().unwrap_or_default();
        let file = self.binary.as_ref().map(RuntimeBinary::file_name);
        if name == "runc"
            || name.starts_with("io.containerd.runc.")
            || name == "io.containerd.runtime.v1.linux"
            || file == Some("runc")
        {
            Some("runc")
        } else if name == "crun" || file == Some("crun") {
            Some("crun")
        } else {
            None
        }
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

/// The runtime's tail for a container: the calls to allow, with why, and a note when the
/// runtime was not measured as such or its binary could not be read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub calls: Vec<(&'static str, &'static str)>,
    /// Those its binary says its code can make after the filter (sorted).
    pub from_binary: Vec<&'static str>,
    /// Set when the set is not the runtime version's own measurement and binary.
    pub note: Option<String>,
}

impl Tail {
    /// Whether `name` is in it.
    pub fn contains(&self, name: &str) -> bool {
        self.calls.iter().any(|(n, _)| *n == name)
    }
}

/// Every measured runtime's tail together, for when no engine says which runtime runs.
pub fn union() -> Tail {
    static UNION: OnceLock<Tail> = OnceLock::new();
    UNION
        .get_or_init(|| {
            let stored: Vec<FromBinary> = MEASURED.iter().filter_map(Measured::read).collect();
            let stored: Vec<&FromBinary> = stored.iter().collect();
            Tail {
                calls: combine(MEASURED.iter(), &stored, "the runtime"),
                from_binary: read_names(&stored),
                note: Some(
                    "no container engine answered: the profile allows what every measured container runtime does after installing the filter".into(),
                ),
            }
        })
        .clone()
}

/// The tails of `runtimes` together (a profile whose containers ran with several).
pub fn tail_of(runtimes: &[&Runtime]) -> Tail {
    let mut out = Tail::default();
    let mut notes: Vec<String> = Vec::new();
    for runtime in runtimes {
        let t = tail(runtime);
        for call in t.calls {
            if !out.contains(call.0) {
                out.calls.push(call);
            }
        }
        out.from_binary.extend(t.from_binary);
        notes.extend(t.note.filter(|n| !notes.contains(n)));
    }
    out.calls.sort();
    out.from_binary.sort();
    out.from_binary.dedup();
    out.note = (!notes.is_empty()).then(|| notes.join("; "));
    out
}

/// The tail of `runtime`: its version's measurement (for a version or runtime never measured,
/// the union of every measurement of its family, or of all, with a note saying so) and what
/// its binary says its Go runtime can call. Each runtime's is made once per process.
pub fn tail(runtime: &Runtime) -> Tail {
    type Key = (String, Option<String>, Option<String>, usize);
    static TAILS: OnceLock<Mutex<HashMap<Key, Tail>>> = OnceLock::new();
    let derived = runtime.binary.as_ref().map(binary::derive);
    let key = (
        runtime.name.clone(),
        runtime.version.clone(),
        runtime.binary.as_ref().map(|b| b.path.clone()),
        derived.map_or(0, |d| d as *const FromBinary as usize),
    );
    // A poisoned lock only means another thread panicked mid-insert: the map is still whole.
    let mut tails = TAILS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    tails
        .entry(key)
        .or_insert_with(|| made(runtime, derived))
        .clone()
}

fn made(runtime: &Runtime, derived: Option<&'static FromBinary>) -> Tail {
    let family = runtime.family();
    let minor = runtime.minor();
    let own = MEASURED
        .iter()
        .find(|m| Some(m.family) == family && Some(m.minor) == minor.as_deref());
    let pool: Vec<&Measured> = match own {
        Some(m) => vec![m],
        None => MEASURED
            .iter()
            .filter(|m| family.is_none_or(|f| m.family == f))
            .collect(),
    };
    let mut notes = Vec::new();
    if own.is_none() {
        let measured: Vec<String> = pool
            .iter()
            .map(|m| format!("{} {}", m.family, m.minor))
            .collect();
        notes.push(format!(
            "the container runtime {runtime} was not measured: the profile allows what {} do{} after installing the filter (`cargo xtask runtime-tail` measures a runtime); verify it with `profile verify`",
            measured.join(", "),
            if measured.len() == 1 { "es" } else { "" }
        ));
    }
    // The binary the engine runs says what its own Go runtime can call; when it can't be read
    // here, what the measured binaries said stands in, with a note.
    let stored: Vec<FromBinary> = pool.iter().filter_map(|m| m.read()).collect();
    let read: Vec<&FromBinary> = match derived {
        Some(d) if d.note.is_none() || !d.calls.is_empty() => {
            notes.extend(d.note.clone());
            vec![d]
        }
        _ => {
            if !stored.is_empty() {
                notes.push(format!(
                    "{}: the calls its Go runtime can make are those read from {} when {} measured",
                    match derived.and_then(|d| d.note.as_deref()) {
                        Some(why) => why.to_string(),
                        None => format!(
                            "the binary of {runtime} was not found where its engine runs it"
                        ),
                    },
                    stored
                        .iter()
                        .map(|s| s.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if stored.len() == 1 {
                        "it was"
                    } else {
                        "they were"
                    },
                ));
            }
            stored.iter().collect()
        }
    };
    let who = family.unwrap_or(runtime.name.as_str());
    Tail {
        calls: combine(pool.into_iter(), &read, who),
        from_binary: read_names(&read),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

/// The calls of `measured` and of the binaries `read`, each once, sorted: a measured call
/// keeps its measurement's reason, with the binary's added when it says so too. `who` names
/// the runtime in the reasons (`runc`).
fn combine<'a>(
    measured: impl Iterator<Item = &'a Measured>,
    read: &[&FromBinary],
    who: &str,
) -> Vec<(&'static str, &'static str)> {
    let mut calls: BTreeMap<&'static str, (Option<&'static str>, Vec<String>)> = BTreeMap::new();
    for m in measured {
        for (name, why) in m.calls {
            calls.entry(name).or_default().0.get_or_insert(why);
        }
    }
    for b in read {
        for (name, origin) in &b.calls {
            calls
                .entry(name)
                .or_default()
                .1
                .push(from_binary(who, b, origin));
        }
    }
    calls
        .into_iter()
        .map(|(name, (measured, read))| {
            let why = match (measured, read.is_empty()) {
                (Some(m), true) => m,
                (Some(m), false) => leak(format!("{m}; and {}", read.join("; "))),
                (None, _) => leak(read.join("; ")),
            };
            (name, why)
        })
        .collect()
}

/// The calls of the binaries `read`, sorted, each once.
fn read_names(read: &[&FromBinary]) -> Vec<&'static str> {
    let names: std::collections::BTreeSet<&'static str> =
        read.iter().flat_map(|b| b.calls.keys().copied()).collect();
    names.into_iter().collect()
}

/// Why `b` lets its runtime make a call it was read to make.
fn from_binary(who: &str, b: &FromBinary, origin: &Origin) -> String {
    let go =
        b.go.as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default();
    match origin {
        Origin::GoRuntime(functions) => format!(
            "{who}'s Go runtime{go} can make it at any moment, after the filter too: its call site{} in {}, read from {}",
            if functions.len() == 1 { "" } else { "s" },
            functions.join(", "),
            b.path
        ),
        Origin::CLibrary(functions) => format!(
            "{who}'s Go runtime{go} starts threads, maps memory and sets signal handlers through the C library (cgo): glibc makes it in {}, which {} imports",
            functions.join(", "),
            b.path
        ),
        Origin::Restart(calls) => format!(
            "the kernel makes it when a signal interrupts {who}'s Go runtime{go} in {}, after the filter too (the interrupted call restarts), read from {}",
            calls.join(" or "),
            b.path
        ),
    }
}

/// Reasons live as long as the measured ones: each tail is made once per runtime (see
/// [`tail`]), so this keeps a bounded handful.
fn leak(s: String) -> &'static str {
    s.leak()
}

#[cfg(test)]
mod tests;
