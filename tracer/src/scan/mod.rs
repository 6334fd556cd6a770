//! `profile scan`: the syscall ceiling of executables — every syscall a static or Go binary
//! can make, read from its machine code — and of an image's filesystem.
//!
//! An executable is classified from its ELF headers (static x86-64 without `PT_INTERP`, Go
//! from its build info or pclntab, dynamic with a libc), then each `syscall`, `int 0x80` and
//! `sysenter` site is resolved to its number ([`resolve`]); what can't be resolved is counted
//! and named by function, and a ceiling with anything unresolved is not sound.
pub mod coverage;
mod flow;
pub mod gobin;
pub mod goruntime;
pub mod image;
mod index;
mod program;
mod resolve;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde::Serialize;

pub use gobin::GoInfo;
pub use goruntime::{GoRuntimeCalls, go_runtime_calls};
pub use image::scan_image;
use program::{Linking, Program};

use crate::names::{Abi, SyscallId};

/// Executables larger than this are listed, not scanned (each is read whole into memory).
pub const MAX_EXECUTABLE: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotExecutable(String),
    #[error("{0}: not an ELF file")]
    NotElf(PathBuf),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error("image {image}: {message}")]
    Archive { image: String, message: String },
}

/// What kind of executable a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Statically linked x86-64 (no `PT_INTERP`), not Go.
    Static,
    /// Built by Go, statically linked or not.
    Go,
    /// Loaded with a dynamic linker and its libraries (libc): no ceiling.
    Dynamic,
    /// An ELF file that is no x86-64 executable (a library, another architecture).
    Other,
}

/// One executable and its ceiling.
#[derive(Clone, Debug, Serialize)]
pub struct Binary {
    pub path: String,
    /// Other names of the same file (hard links).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    pub size: u64,
    pub kind: Kind,
    /// Whether it is linked statically (no `PT_INTERP`).
    #[serde(rename = "static")]
    pub is_static: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub go: Option<GoInfo>,
    /// Why it has no ceiling (dynamic, not x86-64, too large).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<Ceiling>,
}

/// The syscalls a binary can make, per ABI.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    /// True when every site was resolved and nothing else can enter the kernel for it.
    pub sound: bool,
    /// Why not, when it isn't.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_sound: Vec<String>,
    /// Every syscall in the ceiling, by ABI, sorted (names; `abi:nr` for unnamed numbers).
    pub syscalls: BTreeMap<Abi, Vec<String>>,
    /// Those among them the code doesn't name but the kernel or vDSO makes for it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub implied: BTreeMap<Abi, Vec<String>>,
    pub sites: Sites,
    /// Unresolved sites, by function.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresolved: Vec<Unresolved>,
    /// Functions that take the syscall number as an argument.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wrappers: Vec<Wrapper>,
    #[serde(skip)]
    pub ids: BTreeSet<SyscallId>,
}

impl Ceiling {
    /// Whether the ceiling holds a syscall.
    pub fn contains(&self, id: SyscallId) -> bool {
        self.ids.contains(&id)
    }

    /// How many syscalls it holds, all ABIs.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The share of sites resolved, 0..=1 (1 for a binary without sites).
    pub fn resolution(&self) -> f64 {
        let s = &self.sites;
        let total = s.instructions - s.from_argument + s.call_sites
            - s.call_sites_from_argument
            - s.replayed;
        let open = s.unresolved_instructions + s.unresolved_call_sites;
        if total == 0 {
            1.0
        } else {
            (total - open) as f64 / total as f64
        }
    }
}

/// How the sites of a binary were resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sites {
    /// `syscall`, `int 0x80` and `sysenter` instructions.
    pub instructions: u64,
    /// … with a constant number.
    pub constant: u64,
    /// … whose number is the function's argument (resolved at its call sites).
    pub from_argument: u64,
    pub unresolved_instructions: u64,
    /// Call sites of functions that take the number as an argument.
    pub call_sites: u64,
    pub call_sites_constant: u64,
    /// … passing on their own argument (resolved at their callers).
    pub call_sites_from_argument: u64,
    /// … in a function that replays a call made (and resolved) elsewhere.
    pub replayed: u64,
    pub unresolved_call_sites: u64,
}

/// Sites in one function whose number was not resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unresolved {
    /// The function's name, or its address when the binary has none.
    pub function: String,
    pub sites: u64,
    pub why: Vec<String>,
}

/// A function that takes the syscall number as an argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Wrapper {
    pub function: String,
    #[serde(skip)]
    pub address: u64,
    /// Where it takes the number: a register (`rdi`) or a stack slot (`stack+8`).
    pub argument: String,
    pub call_sites: u64,
    /// Its address is stored or taken: callers through a pointer are not seen.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub called_through_pointer: bool,
}

/// The vDSO functions whose names a binary may look up, and the syscall each falls back to
/// when the clock (or the random state) can't be read in user space.
const VDSO_FALLBACKS: [(&str, &str); 5] = [
    ("__vdso_clock_gettime", "clock_gettime"),
    ("__vdso_gettimeofday", "gettimeofday"),
    ("__vdso_clock_getres", "clock_getres"),
    ("__vdso_time", "time"),
    ("__vdso_getrandom", "getrandom"),
];

/// Calls whose interruption by a signal the kernel restarts with `restart_syscall`.
const RESTARTED: [&str; 4] = ["nanosleep", "clock_nanosleep", "poll", "futex"];

/// Scans one ELF file's bytes; `path` names it in the result.
pub fn scan_bytes(path: &str, bytes: &[u8]) -> Binary {
    let mut binary = Binary {
        path: path.to_string(),
        aliases: Vec::new(),
        size: bytes.len() as u64,
        kind: Kind::Other,
        is_static: false,
        interpreter: None,
        go: None,
        note: None,
        ceiling: None,
    };
    let program = match Program::parse(bytes) {
        Ok(p) => p,
        Err(e) => {
            binary.note = Some(e.to_string());
            return binary;
        }
    };
    binary.go = program.go.clone();
    match &program.linking {
        Linking::Static => binary.is_static = true,
        Linking::Dynamic { interpreter } => binary.interpreter = Some(interpreter.clone()),
    }
    binary.kind = match (&program.go, binary.is_static) {
        (Some(_), _) => Kind::Go,
        (None, true) => Kind::Static,
        (None, false) => Kind::Dynamic,
    };
    if binary.kind == Kind::Dynamic {
        binary.note = Some("no ceiling (dynamic, libc)".into());
        return binary;
    }
    binary.ceiling = Some(ceiling(&program, binary.is_static));
    binary
}

fn ceiling(program: &Program<'_>, is_static: bool) -> Ceiling {
    let resolution = resolve::resolve(program);
    let mut ids = resolution.calls.clone();
    let mut implied = BTreeSet::new();
    for (symbol, call) in VDSO_FALLBACKS {
        if memchr::memmem::find(program.bytes, symbol.as_bytes()).is_some() {
            implied.extend(named(Abi::X86_64, call));
        }
    }
    for abi in Abi::ALL {
        let restartable = RESTARTED
            .iter()
            .filter_map(|n| named(abi, n))
            .any(|id| ids.contains(&id));
        if restartable {
            implied.extend(named(abi, "restart_syscall"));
        }
    }
    implied.retain(|id| !ids.contains(id));
    ids.extend(implied.iter().copied());
    let mut not_sound = Vec::new();
    if !is_static {
        not_sound
            .push("links libc dynamically (cgo): the libraries' calls are not in this file".into());
    }
    if !resolution.unresolved.is_empty() {
        let n: u64 = resolution.unresolved.iter().map(|u| u.sites).sum();
        not_sound.push(format!(
            "{n} site(s) in {} function(s) with a number that was not resolved",
            resolution.unresolved.len()
        ));
    }
    Ceiling {
        sound: not_sound.is_empty(),
        not_sound,
        syscalls: by_abi(&ids),
        implied: by_abi(&implied),
        sites: resolution.sites,
        unresolved: resolution.unresolved,
        wrappers: resolution.wrappers,
        ids,
    }
}

/// The number of `name` on `abi`, when the table has it.
fn named(abi: Abi, name: &str) -> Option<SyscallId> {
    (0..1024u32)
        .find(|nr| abi.name(*nr) == Some(name))
        .map(|nr| SyscallId { abi, nr })
}

/// Names per ABI, sorted.
pub fn by_abi(ids: &BTreeSet<SyscallId>) -> BTreeMap<Abi, Vec<String>> {
    let mut out: BTreeMap<Abi, Vec<String>> = BTreeMap::new();
    for id in ids {
        out.entry(id.abi).or_default().push(id.name());
    }
    for names in out.values_mut() {
        names.sort();
        names.dedup();
    }
    out
}

/// Scans a host file (ELF or not: `None` for other files).
pub fn scan_file(path: &Path) -> Result<Option<Binary>, ScanError> {
    use std::io::Read as _;
    let io = |source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 4];
    if file.read_exact(&mut head).is_err() || !program::is_elf(&head) {
        return Ok(None);
    }
    let label = path.display().to_string();
    if size > MAX_EXECUTABLE {
        return Ok(Some(too_large(&label, size)));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    Ok(Some(scan_bytes(&label, &bytes)))
}

/// Scans the files named (each must be an ELF file), and the executables under the
/// directories named.
pub fn scan_files(paths: &[PathBuf]) -> Result<Scan, ScanError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut binaries = Vec::new();
    let mut pending: Vec<(PathBuf, bool)> = paths.iter().map(|p| (p.clone(), true)).collect();
    while let Some((path, named)) = pending.pop() {
        let io = |source| ScanError::Io {
            path: path.clone(),
            source,
        };
        let meta = std::fs::symlink_metadata(&path).map_err(io)?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            pending.extend(children.into_iter().map(|c| (c, false)));
            continue;
        }
        // Inside directories only executables count; a file named is scanned whatever it is.
        let executable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
        if !named && !executable {
            continue;
        }
        match scan_file(&path)? {
            Some(binary) => binaries.push(binary),
            None if named => return Err(ScanError::NotElf(path)),
            None => {}
        }
    }
    let target = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Scan::new(target, binaries))
}

fn too_large(path: &str, size: u64) -> Binary {
    Binary {
        path: path.to_string(),
        aliases: Vec::new(),
        size,
        kind: Kind::Other,
        is_static: false,
        interpreter: None,
        go: None,
        note: Some(format!(
            "larger than {} MiB: not scanned",
            MAX_EXECUTABLE >> 20
        )),
        ceiling: None,
    }
}

/// Everything a scan found: the executables of an image or of the files named.
#[derive(Clone, Debug, Serialize)]
pub struct Scan {
    /// The image, or the files named.
    pub target: String,
    pub binaries: Vec<Binary>,
    /// The union of the static and Go binaries' ceilings, and whether it covers the target.
    pub union: Union,
    /// An image's symbolic links (`/path` → target as written), to find a program by the
    /// name it was exec'd with.
    #[serde(skip)]
    pub links: BTreeMap<String, String>,
    /// The image was pulled before it was read (it was not present, or `--pull always`).
    #[serde(skip)]
    pub pulled: bool,
}

/// The ceiling of a whole image: the union of its executables' ceilings.
#[derive(Clone, Debug, Serialize)]
pub struct Union {
    /// True when every executable has a sound ceiling: then nothing in the target can call
    /// outside `syscalls`.
    pub sound: bool,
    pub syscalls: BTreeMap<Abi, Vec<String>>,
    /// Executables with a ceiling that is not sound.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_sound: Vec<String>,
    /// Executables without a ceiling, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub no_ceiling: Vec<NoCeiling>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NoCeiling {
    pub path: String,
    pub why: String,
}

impl Scan {
    /// What a scan that pulled its image says of it (`pulled IMG before scanning it`).
    pub fn pulled_notice(&self) -> Option<String> {
        self.pulled
            .then(|| format!("pulled {} before scanning it", self.target))
    }

    /// Collects `binaries` (sorted by path) under `target` and computes their union.
    pub fn new(target: String, mut binaries: Vec<Binary>) -> Scan {
        binaries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut ids = BTreeSet::new();
        let mut not_sound = Vec::new();
        let mut no_ceiling = Vec::new();
        for b in &binaries {
            match &b.ceiling {
                Some(c) => {
                    ids.extend(c.ids.iter().copied());
                    if !c.sound {
                        not_sound.push(b.path.clone());
                    }
                }
                None => no_ceiling.push(NoCeiling {
                    path: b.path.clone(),
                    why: b.note.clone().unwrap_or_default(),
                }),
            }
        }
        let union = Union {
            sound: not_sound.is_empty() && no_ceiling.is_empty(),
            syscalls: by_abi(&ids),
            not_sound,
            no_ceiling,
        };
        Scan {
            target,
            binaries,
            union,
            links: BTreeMap::new(),
            pulled: false,
        }
    }

    /// The executable at `path` (by its path or one of its aliases), following symbolic links.
    pub fn binary(&self, path: &str) -> Option<&Binary> {
        let named = |path: &str| {
            self.binaries
                .iter()
                .find(|b| b.path == path || b.aliases.iter().any(|a| a == path))
        };
        named(path).or_else(|| named(&self.resolve(path)))
    }

    /// `path` with the symbolic links in it followed, as the kernel would (at most 40).
    pub fn resolve(&self, path: &str) -> String {
        let mut todo: Vec<String> = path.split('/').rev().map(String::from).collect();
        let mut at: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    at.pop();
                    continue;
                }
                _ => at.push(part),
            }
            let here = format!("/{}", at.join("/"));
            if let Some(target) = self.links.get(&here) {
                hops += 1;
                if hops > 40 {
                    break;
                }
                at.pop();
                if target.starts_with('/') {
                    at.clear();
                }
                todo.extend(target.split('/').rev().map(String::from));
            }
        }
        format!("/{}", at.join("/"))
    }
}
