//! From code to syscall numbers: every `syscall`, `int 0x80` and `sysenter` site, the number
//! in `rax` there, and where the number is something the function was given — an argument
//! (libc's `syscall()`, Go's `syscall.Syscall6`, `internal/runtime/syscall.Syscall6`, x/sys/unix's
//! wrappers and the ABI wrappers between them), a field of a struct an argument points to, or
//! one a global points to (glibc's set*id broadcast) — the number at each place that gives
//! it, followed through as many functions as there are.
use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{
    Sites, Unresolved, Wrapper,
    flow::{Base, Loc, RAX, State, Value},
    index::{Entry, Index, Source, analyze, first_pass},
    program::Program,
};
use crate::names::SyscallId;

/// Functions that only repeat, on other threads, a call their program made with a number the
/// scan resolves where it was made: Go's `runtime.runPerThreadSyscall` replays the call of
/// `syscall.AllThreadsSyscall` (`runtime.syscall_runtime_doAllThreadsSyscall` makes it on its
/// own thread through `syscall.RawSyscall6` first, then publishes it in `perThreadSyscall`,
/// the only place the replay reads).
const REPLAYS: [&str; 1] = ["runtime.runPerThreadSyscall"];

/// What a function takes the number from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Param {
    /// An argument.
    Value(Loc),
    /// The 4 bytes at an offset of what an argument points to.
    Field(Loc, i64),
}

impl Param {
    fn describe(self) -> String {
        match self {
            Param::Value(loc) => loc.describe(),
            Param::Field(loc, off) => format!("[{}+{off}]", loc.describe()),
        }
    }
}

/// Where a number still has to be found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Demand {
    /// At every call of a function, as it passes the parameter.
    Callers(u64, Param, Entry),
    /// At every store of a pointer into a global, at an offset of what it points to; the
    /// function that read it names the sites that can't be resolved.
    Published(u64, i64, u64, Entry),
}

/// The numbers a program's code can pass to the kernel.
pub struct Resolution {
    pub calls: BTreeSet<SyscallId>,
    /// Each call with the functions that give its number (a site's own, or a wrapper's caller).
    pub origins: BTreeMap<SyscallId, BTreeSet<u64>>,
    pub sites: Sites,
    pub unresolved: Vec<Unresolved>,
    pub wrappers: Vec<Wrapper>,
}

struct Resolver<'p, 'a> {
    program: &'p Program<'a>,
    index: Index,
    calls: BTreeSet<SyscallId>,
    origins: BTreeMap<SyscallId, BTreeSet<u64>>,
    sites: Sites,
    unresolved: BTreeMap<String, (u64, BTreeSet<&'static str>)>,
    demands: Vec<Demand>,
    wrappers: Vec<Wrapper>,
}

pub fn resolve(program: &Program<'_>) -> Resolution {
    resolve_indexed(program).0
}

/// [`resolve`], with the index of the program's functions it was made from.
pub fn resolve_indexed(program: &Program<'_>) -> (Resolution, Index) {
    let mut r = Resolver {
        program,
        index: first_pass(program),
        calls: BTreeSet::new(),
        origins: BTreeMap::new(),
        sites: Sites::default(),
        unresolved: BTreeMap::new(),
        demands: Vec::new(),
        wrappers: Vec::new(),
    };
    let sites = std::mem::take(&mut r.index.sites);
    for (&function, list) in &sites {
        let at: Vec<u64> = list.iter().map(|(a, _)| *a).collect();
        let states = analyze(program, &r.index, function, &at);
        for &(addr, entry) in list {
            r.sites.instructions += 1;
            let value = states
                .as_ref()
                .and_then(|s| s.get(&addr))
                .map(|s| s.reg(RAX).clone());
            match r.follow(value, function, entry) {
                Some(true) => r.sites.constant += 1,
                Some(false) => r.sites.from_argument += 1,
                None => r.miss(function, "number not a constant"),
            }
        }
    }
    r.sites.unresolved_instructions =
        r.sites.instructions - r.sites.constant - r.sites.from_argument;
    let mut seen = HashSet::new();
    while let Some(demand) = r.demands.pop() {
        if seen.insert(demand) {
            match demand {
                Demand::Callers(function, param, entry) => r.callers(function, param, entry),
                Demand::Published(global, off, reader, entry) => {
                    r.published(global, off, reader, entry)
                }
            }
        }
    }
    r.sites.unresolved_call_sites = r.sites.call_sites
        - r.sites.call_sites_constant
        - r.sites.call_sites_from_argument
        - r.sites.replayed;
    r.wrappers
        .sort_by(|a, b| (&a.function, a.address).cmp(&(&b.function, b.address)));
    r.wrappers
        .dedup_by(|a, b| a.address == b.address && a.argument == b.argument);
    let unresolved = r
        .unresolved
        .into_iter()
        .map(|(function, (sites, why))| Unresolved {
            function,
            sites,
            why: why.into_iter().map(str::to_string).collect(),
        })
        .collect();
    let resolution = Resolution {
        calls: r.calls,
        origins: r.origins,
        sites: r.sites,
        unresolved,
        wrappers: r.wrappers,
    };
    (resolution, r.index)
}

impl Resolver<'_, '_> {
    /// Takes in a number found in `function`: `Some(true)` resolved there, `Some(false)` to be
    /// found where it comes from, `None` not resolvable.
    fn follow(&mut self, value: Option<Value>, function: u64, entry: Entry) -> Option<bool> {
        let demand = match value? {
            Value::Consts(numbers) => {
                for id in numbers.iter().map(|n| entry.id(*n)) {
                    self.calls.insert(id);
                    self.origins.entry(id).or_default().insert(function);
                }
                return Some(true);
            }
            Value::Arg(loc) => Demand::Callers(function, Param::Value(loc), entry),
            Value::Field(Base::Arg(loc), off) => {
                Demand::Callers(function, Param::Field(loc, off), entry)
            }
            Value::Field(Base::Global(g), off) => Demand::Published(g, off, function, entry),
            _ => return None,
        };
        self.demands.push(demand);
        Some(false)
    }

    fn miss(&mut self, function: u64, why: &'static str) {
        let name = self.program.name(function);
        if REPLAYS.contains(&name.as_str()) {
            self.sites.replayed += 1;
            return;
        }
        let entry = self.unresolved.entry(name).or_default();
        entry.0 += 1;
        entry.1.insert(why);
    }

    /// One place that gives a number: counted, and followed.
    fn give(&mut self, value: Option<Value>, function: u64, entry: Entry) {
        self.sites.call_sites += 1;
        match self.follow(value, function, entry) {
            Some(true) => self.sites.call_sites_constant += 1,
            Some(false) => self.sites.call_sites_from_argument += 1,
            None => self.miss(function, "number passed is not a constant"),
        }
    }

    /// The number at every call of `function`.
    fn callers(&mut self, function: u64, param: Param, entry: Entry) {
        let callers = self
            .index
            .callers
            .get(&function)
            .cloned()
            .unwrap_or_default();
        let referenced = self.program.stored_addresses.contains(&function)
            || self.index.referenced.contains(&function);
        self.wrappers.push(Wrapper {
            function: self.program.name(function),
            address: function,
            argument: param.describe(),
            call_sites: callers.len() as u64,
            called_through_pointer: referenced,
        });
        if referenced {
            self.miss(function, "called through a pointer");
        }
        let mut by_caller: BTreeMap<u64, Vec<_>> = BTreeMap::new();
        for e in callers {
            by_caller.entry(e.caller).or_default().push(e);
        }
        for (caller, edges) in by_caller {
            let at: Vec<u64> = edges.iter().map(|e| e.at).collect();
            let states = analyze(self.program, &self.index, caller, &at);
            for e in edges {
                let value = states.as_ref().and_then(|s| s.get(&e.at)).map(|s| {
                    let tail = e.tail;
                    match param {
                        Param::Value(loc) => s.passed(loc, tail),
                        Param::Field(loc, off) => self.field(s, s.passed(loc, tail), off),
                    }
                });
                self.give(value, caller, entry);
            }
        }
    }

    /// The number at `off` of what every pointer stored in `global` points to. Only when
    /// nothing takes the global's address: then these stores are all that sets it.
    fn published(&mut self, global: u64, off: i64, reader: u64, entry: Entry) {
        if self.index.taken.contains(&global) || self.index.written_otherwise(global) {
            self.miss(
                reader,
                "number read through a pointer whose global is written elsewhere",
            );
            return;
        }
        let stores = self.index.stores.get(&global).cloned().unwrap_or_default();
        if let Some(initial) = self.program.constant(global, 8).filter(|p| *p != 0) {
            let value = self.constant_at(initial, off);
            self.give(value, reader, entry);
        }
        for store in stores {
            let states = analyze(self.program, &self.index, store.function, &[store.at]);
            let Some(state) = states.as_ref().and_then(|s| s.get(&store.at)) else {
                self.give(None, store.function, entry);
                continue;
            };
            let pointer = match store.source {
                Source::Reg(r) => state.reg(r).clone(),
                Source::Imm(v) => Value::Consts(vec![v]),
            };
            // Clearing the pointer publishes nothing to read.
            if pointer == Value::Consts(vec![0]) {
                continue;
            }
            let value = self.field(state, pointer, off);
            self.give(Some(value), store.function, entry);
        }
    }

    /// The 4 bytes at `off` of what `pointer` points to, as `state` knows them.
    fn field(&self, state: &State, pointer: Value, off: i64) -> Value {
        match pointer {
            Value::Frame(f) => state.load(f + off, 4),
            Value::Arg(loc) => Value::Field(Base::Arg(loc), off),
            Value::Loaded(g) => Value::Field(Base::Global(g), off),
            Value::Consts(p) if p.len() == 1 => {
                self.constant_at(p[0], off).unwrap_or(Value::Unknown)
            }
            _ => Value::Unknown,
        }
    }

    /// A constant field of a global object, when no code can change it.
    fn constant_at(&self, object: u64, off: i64) -> Option<Value> {
        let at = object.wrapping_add(off as u64);
        super::index::global_constant(self.program, &self.index, at, 4)
            .map(|v| Value::Consts(vec![v]))
    }
}
