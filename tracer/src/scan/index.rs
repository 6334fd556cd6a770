//! The first pass over a program's functions: their syscall sites, the direct transfers
//! between them, the data they write or take the address of, the pointers they publish in
//! globals, and which never return.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};

use super::{
    flow::{Function, State, UNKNOWN_ARGS_AREA},
    program::Program,
};
use crate::names::{Abi, SyscallId};

/// The kernel entry a site uses: `syscall` (x86_64, or x32 with bit 30 set) or the i386 ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    Syscall,
    I386,
}

impl Entry {
    pub fn id(self, nr: u64) -> SyscallId {
        const X32_BIT: u64 = 0x4000_0000;
        let nr32 = nr as u32;
        match self {
            Entry::I386 => SyscallId {
                abi: Abi::I386,
                nr: nr32,
            },
            Entry::Syscall if u64::from(nr32) & X32_BIT != 0 => SyscallId {
                abi: Abi::X32,
                nr: nr32 & !(X32_BIT as u32),
            },
            Entry::Syscall => SyscallId {
                abi: Abi::X86_64,
                nr: nr32,
            },
        }
    }
}

/// A direct transfer to a function's start: a call, a jump (tail call) or falling into it.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub caller: u64,
    pub at: u64,
    pub tail: bool,
}

/// What the first pass found in each function.
#[derive(Default)]
pub struct Index {
    pub sites: BTreeMap<u64, Vec<(u64, Entry)>>,
    pub callers: HashMap<u64, Vec<Edge>>,
    foreign_entries: HashMap<u64, Vec<u64>>,
    pub referenced: HashSet<u64>,
    /// Data the code writes directly: address and length.
    written: BTreeMap<u64, u64>,
    /// Data addresses the code takes (it may write through them).
    pub taken: BTreeSet<u64>,
    /// Direct 8-byte stores to globals: where, and from which register or immediate.
    pub stores: HashMap<u64, Vec<Store>>,
    /// Every other write to a global: address and length.
    other_writes: BTreeMap<u64, u64>,
    /// Functions that never return to their caller: no `ret`, no indirect jump, and every
    /// way out a jump to another such function.
    noreturn: HashSet<u64>,
}

/// The value of `size` bytes of a global at `addr` when it is a constant: nothing writes it,
/// directly or through an address taken of its object (or, without symbols, of anything
/// shortly before it).
pub fn global_constant(
    program: &Program<'_>,
    index: &Index,
    addr: u64,
    size: usize,
) -> Option<u64> {
    let end = addr + size as u64;
    let written = index
        .written
        .range(addr.saturating_sub(MAX_WRITE)..end)
        .any(|(at, len)| at + len > addr);
    let (lo, hi) = program
        .object_of(addr)
        .unwrap_or((addr.saturating_sub(TAKEN_REACH), end));
    if written || index.taken.range(lo..hi.max(end)).next().is_some() {
        return None;
    }
    program.constant(addr, size)
}

impl Index {
    /// Whether code elsewhere jumps into the middle of `function` (its callers are not all known).
    pub fn entered_inside(&self, function: u64) -> bool {
        self.foreign_entries.contains_key(&function)
    }

    /// Whether something other than the recorded stores writes the 8 bytes at `global`.
    pub fn written_otherwise(&self, global: u64) -> bool {
        self.other_writes
            .range(global.saturating_sub(MAX_WRITE)..global + 8)
            .any(|(at, len)| at + len > global)
    }
}

/// A direct store to a global.
#[derive(Clone, Copy, Debug)]
pub struct Store {
    pub function: u64,
    pub at: u64,
    pub source: Source,
}

/// What a store writes.
#[derive(Clone, Copy, Debug)]
pub enum Source {
    Reg(u8),
    Imm(u64),
}

/// How far before a global an address taken may still reach it, when no symbol says where
/// its object starts.
const TAKEN_REACH: u64 = 4096;
/// The longest direct write (an AVX-512 store is 64 bytes).
const MAX_WRITE: u64 = 64;

/// The states before `at` in the function starting at `start` (keyed by address; the
/// function's end means after its last instruction), or `None` when it doesn't settle.
pub fn analyze(
    program: &Program<'_>,
    index: &Index,
    start: u64,
    at: &[u64],
) -> Option<HashMap<u64, State>> {
    let instructions = decode(program, start);
    let foreign = index
        .foreign_entries
        .get(&start)
        .map_or(&[][..], Vec::as_slice);
    let unknown_area = if program.go.is_some() {
        UNKNOWN_ARGS_AREA
    } else {
        0
    };
    let area = |target: u64| {
        program
            .args_area
            .get(&target)
            .copied()
            .unwrap_or(unknown_area)
    };
    let global = |addr: u64, size: usize| global_constant(program, index, addr, size);
    // Go's functions keep no register for their caller; without Go's function table every
    // function of a Go binary is taken for one.
    let keeps = |target: Option<u64>| match target {
        _ if program.go.is_some() && program.go_functions.is_empty() => false,
        Some(t) => !program.go_functions.contains(&t),
        None => program.go.is_none(),
    };
    let returns = |target: u64| !index.noreturn.contains(&target);
    let ctx = super::flow::Context {
        args_area: &area,
        global: &global,
        keeps_callee_saved: &keeps,
        returns: &returns,
    };
    let f = Function {
        instructions: &instructions,
        foreign_entries: foreign,
    };
    let mut sorted = at.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    Some(f.states_at(&sorted, &ctx)?.into_iter().collect())
}

fn decode(program: &Program<'_>, start: u64) -> Vec<Instruction> {
    match program.function_code(start) {
        Some((ip, bytes)) => Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE)
            .into_iter()
            .collect(),
        None => Vec::new(),
    }
}

/// One pass over every function: its syscall sites, the direct transfers to other functions'
/// starts (and into their middles), and function addresses its code takes.
pub fn first_pass(program: &Program<'_>) -> Index {
    let mut index = Index::default();
    let starts: Vec<u64> = program.functions.keys().copied().collect();
    // For each function that may not return: the functions it leaves to by jumping.
    let mut exits: HashMap<u64, Vec<u64>> = HashMap::new();
    for &start in &starts {
        let instructions = decode(program, start);
        let Some(last) = instructions.last() else {
            continue;
        };
        let end = last.next_ip();
        let mut leaves = Some(Vec::new());
        for i in &instructions {
            let entry = match i.mnemonic() {
                Mnemonic::Syscall => Some(Entry::Syscall),
                Mnemonic::Int if i.immediate8() == 0x80 => Some(Entry::I386),
                Mnemonic::Sysenter => Some(Entry::I386),
                _ => None,
            };
            if let Some(entry) = entry {
                index.sites.entry(start).or_default().push((i.ip(), entry));
            }
            let direct = matches!(
                i.op0_kind(),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            );
            match i.flow_control() {
                FlowControl::Call if direct => {
                    push_edge(
                        &mut index,
                        program,
                        i.near_branch_target(),
                        start,
                        i.ip(),
                        false,
                    );
                }
                FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch if direct => {
                    let t = i.near_branch_target();
                    if !(start..end).contains(&t) {
                        push_edge(&mut index, program, t, start, i.ip(), true);
                        if let Some(l) = leaves.as_mut() {
                            l.push(t);
                        }
                    }
                }
                FlowControl::Return | FlowControl::IndirectBranch => leaves = None,
                _ => {}
            }
            if i.is_ip_rel_memory_operand() {
                let read_only = matches!(
                    i.mnemonic(),
                    Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd
                ) && i.op0_kind() == OpKind::Register
                    || matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test);
                let at = i.ip_rel_memory_address();
                if i.mnemonic() == Mnemonic::Mov
                    && i.op0_kind() == OpKind::Memory
                    && i.memory_size().size() == 8
                {
                    let source = match i.op1_kind() {
                        OpKind::Register => {
                            Some(Source::Reg(i.op1_register().number() as u8 & 0xf))
                        }
                        OpKind::Immediate32to64 => Some(Source::Imm(i.immediate(1))),
                        _ => None,
                    };
                    if let Some(source) = source {
                        index.stores.entry(at).or_default().push(Store {
                            function: start,
                            at: i.ip(),
                            source,
                        });
                    }
                }
                let stored = index
                    .stores
                    .get(&at)
                    .is_some_and(|s| s.last().is_some_and(|s| s.at == i.ip()));
                if !read_only && !stored && i.mnemonic() != Mnemonic::Lea {
                    let len = (i.memory_size().size() as u64).clamp(1, MAX_WRITE);
                    index.other_writes.insert(at, len);
                }
                match i.mnemonic() {
                    _ if read_only => {}
                    Mnemonic::Lea => {
                        index.taken.insert(at);
                    }
                    _ => {
                        let len = (i.memory_size().size() as u64).clamp(1, MAX_WRITE);
                        let slot = index.written.entry(at).or_default();
                        *slot = (*slot).max(len);
                    }
                }
            }
            for k in 0..i.op_count() {
                let addr = match i.op_kind(k) {
                    OpKind::Memory if i.is_ip_rel_memory_operand() => i.ip_rel_memory_address(),
                    // An absolute address: in data, it may be written through.
                    OpKind::Memory
                        if i.memory_base() == iced_x86::Register::None
                            && i.memory_index() == iced_x86::Register::None =>
                    {
                        index.taken.insert(i.memory_displacement64());
                        continue;
                    }
                    OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64 => {
                        let addr = i.immediate(k);
                        if program.constant(addr, 1).is_some() {
                            index.taken.insert(addr);
                        }
                        addr
                    }
                    _ => continue,
                };
                if program.functions.contains_key(&addr) {
                    index.referenced.insert(addr);
                }
            }
        }
        // Code that runs on past its function's end enters the next one.
        let last_real = instructions
            .iter()
            .rev()
            .find(|i| !matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3));
        if let Some(i) = last_real
            && runs_on(i)
        {
            if program.functions.contains_key(&end) {
                index.callers.entry(end).or_default().push(Edge {
                    caller: start,
                    at: end,
                    tail: true,
                });
            }
            leaves = None;
        }
        if let Some(l) = leaves {
            exits.insert(start, l);
        }
    }
    // Those whose every exit leads to another that never returns, until nothing changes.
    let mut noreturn: HashSet<u64> = exits
        .iter()
        .filter(|(_, l)| l.is_empty())
        .map(|(f, _)| *f)
        .collect();
    loop {
        let more: Vec<u64> = exits
            .iter()
            .filter(|(f, l)| !noreturn.contains(*f) && l.iter().all(|t| noreturn.contains(t)))
            .map(|(f, _)| *f)
            .collect();
        if more.is_empty() {
            break;
        }
        noreturn.extend(more);
    }
    index.noreturn = noreturn;
    index
}

fn push_edge(
    index: &mut Index,
    program: &Program<'_>,
    target: u64,
    caller: u64,
    at: u64,
    tail: bool,
) {
    if program.functions.contains_key(&target) {
        index
            .callers
            .entry(target)
            .or_default()
            .push(Edge { caller, at, tail });
    } else if let Some(f) = program.function_of(target)
        && f != caller
    {
        index.foreign_entries.entry(f).or_default().push(target);
    }
}

/// Whether code runs on past `i`, the last instruction of a function (a call there is one
/// that doesn't return: `__stack_chk_fail`, `abort`).
fn runs_on(i: &Instruction) -> bool {
    !matches!(
        i.flow_control(),
        FlowControl::Call
            | FlowControl::IndirectCall
            | FlowControl::Return
            | FlowControl::UnconditionalBranch
            | FlowControl::IndirectBranch
            | FlowControl::Exception
    ) && !matches!(i.mnemonic(), Mnemonic::Hlt | Mnemonic::Ud2)
}
