//! What a runtime's binary says it can call after installing the container's filter: for a
//! Go runtime (runc), its Go runtime's own raw call sites ([`crate::scan::goruntime`]), which
//! it makes whenever it likes. A binary is read once per process (it is 8 MiB of machine
//! code), in the background as soon as the command knows which runtime runs, and read again
//! only when the file changes.
use std::{
    collections::{BTreeMap, HashMap},
    os::unix::fs::MetadataExt as _,
    sync::{Arc, Mutex, OnceLock},
};

use super::locate::RuntimeBinary;
use crate::scan::{self, GoRuntimeCalls};

/// Why the binary lets its code make a call after the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Raw call sites in these functions of its Go runtime.
    GoRuntime(Vec<String>),
    /// The kernel makes it when a signal interrupts these calls of its Go runtime.
    Restart(Vec<&'static str>),
    /// The C library makes it in these functions, which its Go runtime calls (cgo).
    CLibrary(Vec<&'static str>),
}

/// What was read from one runtime binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromBinary {
    /// The binary, as its daemon runs it.
    pub path: String,
    /// The Go version it was built with, for a Go binary.
    pub go: Option<String>,
    /// Each x86_64 call its code can make after the filter, by name.
    pub calls: BTreeMap<&'static str, Origin>,
    /// Why nothing, or not everything, could be read from it.
    pub note: Option<String>,
}

/// A file's identity: a binary replaced in place is another one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

type Slot = Arc<OnceLock<&'static FromBinary>>;

/// Every binary read so far; each derivation lives as long as the process (a handful of
/// runtimes per command).
fn slots() -> &'static Mutex<HashMap<FileKey, Slot>> {
    static SLOTS: OnceLock<Mutex<HashMap<FileKey, Slot>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

fn slot(binary: &RuntimeBinary) -> Option<Slot> {
    let meta = std::fs::metadata(&binary.here).ok()?;
    let key = FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
    };
    // A poisoned lock only means another thread panicked mid-insert: the map is still whole.
    let mut slots = slots().lock().unwrap_or_else(|e| e.into_inner());
    Some(slots.entry(key).or_default().clone())
}

/// Starts reading `binary` on a thread of its own, so that [`derive`] finds it read.
pub fn prepare(binary: &RuntimeBinary) {
    let Some(slot) = slot(binary) else {
        return;
    };
    if slot.get().is_some() {
        return;
    }
    let binary = binary.clone();
    let _ = std::thread::Builder::new()
        .name("runtime-binary".into())
        .spawn(move || {
            slot.get_or_init(|| Box::leak(Box::new(read(&binary))));
        });
}

/// What `binary` says, read now unless it was (or is being) read already.
pub fn derive(binary: &RuntimeBinary) -> &'static FromBinary {
    match slot(binary) {
        Some(slot) => slot.get_or_init(|| Box::leak(Box::new(read(binary)))),
        None => Box::leak(Box::new(read(binary))),
    }
}

fn read(binary: &RuntimeBinary) -> FromBinary {
    let mut out = FromBinary {
        path: binary.path.clone(),
        go: None,
        calls: BTreeMap::new(),
        note: None,
    };
    let bytes = match std::fs::metadata(&binary.here) {
        Ok(m) if m.len() > scan::MAX_EXECUTABLE => {
            out.note = Some(format!("{} is too large to read", binary.path));
            return out;
        }
        Ok(_) => std::fs::read(&binary.here),
        Err(e) => Err(e),
    };
    let calls = bytes
        .map_err(|e| e.to_string())
        .and_then(|b| scan::go_runtime_calls(&b).map_err(|e| e.to_string()));
    match calls {
        Ok(Some(go)) => from_go(&mut out, &go),
        // A program in C has no runtime of its own making calls beside its code.
        Ok(None) => {}
        Err(e) => out.note = Some(format!("{} could not be read: {e}", binary.path)),
    }
    out
}

fn from_go(out: &mut FromBinary, go: &GoRuntimeCalls) {
    out.go = go.go.version.clone();
    for (id, functions) in &go.calls {
        if let Some(name) = id
            .abi
            .name(id.nr)
            .filter(|_| id.abi == crate::names::Abi::X86_64)
        {
            out.calls
                .insert(name, Origin::GoRuntime(functions.iter().cloned().collect()));
        }
    }
    for (id, functions) in &go.through_libc {
        if let Some(name) = id.abi.name(id.nr) {
            // The runtime's own site says more: where it makes the call itself.
            out.calls
                .entry(name)
                .or_insert_with(|| Origin::CLibrary(functions.iter().copied().collect()));
        }
    }
    for (id, interrupted) in &go.implied {
        if let Some(name) = id.abi.name(id.nr) {
            out.calls.insert(name, Origin::Restart(interrupted.clone()));
        }
    }
    if !go.unresolved.is_empty() {
        out.note = Some(format!(
            "{}: its Go runtime has call sites whose number was not resolved ({}): the calls read from it may be incomplete",
            out.path,
            go.unresolved.join(", ")
        ));
    }
}
