//! What a function's registers and stack slots hold at a given instruction: a forward dataflow
//! over the function's blocks that knows constants, the function's own arguments and stack
//! addresses, and nothing else (everything it can't follow is `Unknown`).
use std::collections::BTreeMap;

use iced_x86::{
    FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

/// At most this many distinct constants are kept for one value; more is `Unknown`.
const MAX_CONSTS: usize = 64;
/// A function whose blocks don't settle within this many visits per block is given up on.
const MAX_VISITS_PER_BLOCK: usize = 64;
/// What a callee may write of its caller's frame when its argument area is not known: Go's
/// ABI0 functions write their results there, after their arguments.
pub const UNKNOWN_ARGS_AREA: i64 = 256;
/// The largest stack slot tracked (an instruction writing more forgets the stack).
const MAX_SLOT: i64 = 1024;

/// Where a function finds a value it was given: a register, or the stack at an offset from
/// the stack pointer at its entry (8 is the first slot above the return address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Loc {
    Reg(u8),
    Stack(i64),
}

impl Loc {
    pub fn describe(self) -> String {
        match self {
            Loc::Reg(r) => GPR_NAMES[r as usize].to_string(),
            Loc::Stack(k) => format!("stack+{k}"),
        }
    }
}

pub const RAX: u8 = 0;
const RSP: u8 = 4;
const RBP: u8 = 5;
const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// An abstract value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Unknown,
    /// One of these constants (sorted, deduplicated).
    Consts(Vec<u64>),
    /// What the function was given at this place when it was entered.
    Arg(Loc),
    /// The address `entry stack pointer + offset`.
    Frame(i64),
}

impl Value {
    fn join(&self, other: &Value) -> Value {
        match (self, other) {
            (a, b) if a == b => a.clone(),
            (Value::Consts(a), Value::Consts(b)) => {
                let mut all: Vec<u64> = a.iter().chain(b).copied().collect();
                all.sort_unstable();
                all.dedup();
                if all.len() > MAX_CONSTS {
                    Value::Unknown
                } else {
                    Value::Consts(all)
                }
            }
            _ => Value::Unknown,
        }
    }

    /// The value as read through `bytes` bytes of it.
    fn truncated(self, bytes: u32) -> Value {
        match (self, bytes) {
            (v, 8) => v,
            (Value::Consts(c), 1..=7) => {
                let mask = (1u64 << (bytes * 8)) - 1;
                let mut c: Vec<u64> = c.into_iter().map(|v| v & mask).collect();
                c.sort_unstable();
                c.dedup();
                Value::Consts(c)
            }
            // A syscall number is read as 32 bits: an argument passed on as such is still it.
            (Value::Arg(loc), 4) => Value::Arg(loc),
            _ => Value::Unknown,
        }
    }
}

/// One stack slot written by the function (or made unknown), at an entry-relative offset.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    size: i64,
    value: Value,
}

/// Registers and stack slots before an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    regs: [Value; 16],
    slots: BTreeMap<i64, Slot>,
    /// Whether slots the function never wrote may still hold its incoming arguments (false
    /// once the stack is lost track of: then an unwritten slot is `Unknown`).
    args_intact: bool,
}

impl State {
    /// At the function's entry.
    pub fn entry() -> State {
        let mut regs: [Value; 16] = std::array::from_fn(|r| Value::Arg(Loc::Reg(r as u8)));
        regs[RSP as usize] = Value::Frame(0);
        State {
            regs,
            slots: BTreeMap::new(),
            args_intact: true,
        }
    }

    /// Where nothing is known (a block reached from places the analysis can't see).
    pub fn unknown() -> State {
        State {
            regs: std::array::from_fn(|_| Value::Unknown),
            slots: BTreeMap::new(),
            args_intact: false,
        }
    }

    fn join(&self, other: &State) -> State {
        let regs = std::array::from_fn(|r| self.regs[r].join(&other.regs[r]));
        let mut slots = BTreeMap::new();
        for (off, slot) in self.slots.iter().chain(other.slots.iter()) {
            if slots.contains_key(off) {
                continue;
            }
            let joined = match (self.slots.get(off), other.slots.get(off)) {
                (Some(a), Some(b)) if a.size == b.size => Slot {
                    size: a.size,
                    value: a.value.join(&b.value),
                },
                _ => Slot {
                    size: slot.size,
                    value: Value::Unknown,
                },
            };
            slots.insert(*off, joined);
        }
        State {
            regs,
            slots,
            args_intact: self.args_intact && other.args_intact,
        }
    }

    pub fn reg(&self, r: u8) -> &Value {
        &self.regs[r as usize]
    }

    fn rsp(&self) -> Option<i64> {
        match self.regs[RSP as usize] {
            Value::Frame(f) => Some(f),
            _ => None,
        }
    }

    /// The value the callee of a call (or a jump, `tail`) at this state finds at `loc`.
    pub fn passed(&self, loc: Loc, tail: bool) -> Value {
        match loc {
            Loc::Reg(r) => self.regs[r as usize].clone(),
            Loc::Stack(k) => match self.rsp() {
                Some(d) => self.load(if tail { d + k } else { d - 8 + k }, 8),
                None => Value::Unknown,
            },
        }
    }

    fn load(&self, off: i64, size: i64) -> Value {
        if let Some(slot) = self.slots.get(&off)
            && slot.size >= size
        {
            return slot.value.clone().truncated(size as u32);
        }
        if self.overlapping(off, size).next().is_some() {
            return Value::Unknown;
        }
        if self.args_intact && off >= 8 && (size == 8 || size == 4) {
            Value::Arg(Loc::Stack(off))
        } else {
            Value::Unknown
        }
    }

    fn overlapping(&self, off: i64, size: i64) -> impl Iterator<Item = i64> + '_ {
        self.slots
            .range(off.saturating_sub(MAX_SLOT)..off.saturating_add(size))
            .filter(move |(o, s)| **o + s.size > off)
            .map(|(o, _)| *o)
    }

    fn store(&mut self, off: i64, size: i64, value: Value) {
        self.forget(off, size);
        if size > MAX_SLOT {
            return;
        }
        self.slots.insert(off, Slot { size, value });
    }

    /// Makes `[off, off + size)` unknown.
    fn forget(&mut self, off: i64, size: i64) {
        if size > MAX_SLOT {
            self.forget_stack();
            return;
        }
        let hit: Vec<i64> = self.overlapping(off, size).collect();
        for o in hit {
            if let Some(slot) = self.slots.get_mut(&o) {
                slot.value = Value::Unknown;
            }
        }
        self.slots.entry(off).or_insert(Slot {
            size,
            value: Value::Unknown,
        });
    }

    /// Nothing on the stack is known any more.
    fn forget_stack(&mut self) {
        self.slots.clear();
        self.args_intact = false;
    }
}

/// The 0..16 index of a 64-bit general-purpose register, for any of its widths.
fn gpr(reg: Register) -> Option<u8> {
    if !reg.is_gpr() {
        return None;
    }
    let full = reg.full_register();
    Some((full as usize - Register::RAX as usize) as u8)
}

/// How a function treats its stack: whether addresses into its frame are handed elsewhere
/// (then any call or store through a pointer may change any slot).
#[derive(Clone, Copy, Debug)]
pub struct FrameUse {
    pub escapes: bool,
}

impl FrameUse {
    pub fn of(instructions: &[Instruction]) -> FrameUse {
        let escapes = instructions.iter().any(|i| {
            let frame_base = matches!(i.memory_base(), Register::RSP | Register::RBP);
            let dest = gpr(i.op0_register());
            match i.mnemonic() {
                Mnemonic::Lea => frame_base && !matches!(dest, Some(RSP | RBP)),
                Mnemonic::Mov => {
                    i.op_count() == 2
                        && i.op1_kind() == OpKind::Register
                        && gpr(i.op1_register()) == Some(RSP)
                        && !matches!(dest, Some(RSP | RBP))
                }
                _ => false,
            }
        });
        FrameUse { escapes }
    }
}

/// What the dataflow asks of the program around a function.
pub struct Context<'a> {
    /// What a direct callee at this address may write of its caller's frame above the call's
    /// stack pointer (its arguments and results).
    pub args_area: &'a dyn Fn(u64) -> i64,
    /// The value of a global variable no code changes (address, bytes), if it is one.
    pub global: &'a dyn Fn(u64, usize) -> Option<u64>,
    /// Whether a call to this address (`None`: through a pointer) keeps the registers the C
    /// ABI saves (rbx, rbp, r12-r15); Go's functions keep none but the stack and frame.
    pub keeps_callee_saved: &'a dyn Fn(Option<u64>) -> bool,
    /// Whether the function at this address can return to its caller.
    pub returns: &'a dyn Fn(u64) -> bool,
}

/// Applies one instruction to `state`.
pub fn step(
    state: &mut State,
    ins: &Instruction,
    info: &mut InstructionInfoFactory,
    frame: FrameUse,
    ctx: &Context<'_>,
) {
    match ins.mnemonic() {
        Mnemonic::Mov if ins.op_count() == 2 => {
            if mov(state, ins, ctx) {
                return;
            }
        }
        // A conditional move leaves either value.
        m if is_cmov(m) && ins.op0_kind() == OpKind::Register => {
            if let Some(d) = gpr(ins.op0_register())
                && ins.op0_register().size() >= 4
            {
                let width = ins.op0_register().size() as i64;
                let source = match ins.op1_kind() {
                    OpKind::Register => gpr(ins.op1_register())
                        .map_or(Value::Unknown, |r| state.regs[r as usize].clone()),
                    OpKind::Memory => match frame_address(state, ins) {
                        Some(off) => state.load(off, width),
                        None => Value::Unknown,
                    },
                    _ => Value::Unknown,
                };
                let joined = state.regs[d as usize]
                    .clone()
                    .truncated(width as u32)
                    .join(&source.truncated(width as u32));
                state.regs[d as usize] = joined;
                return;
            }
        }
        Mnemonic::Xor | Mnemonic::Sub
            if ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op0_register() == ins.op1_register() =>
        {
            if let Some(r) = gpr(ins.op0_register())
                && ins.op0_register().size() >= 4
            {
                state.regs[r as usize] = Value::Consts(vec![0]);
                return;
            }
        }
        Mnemonic::Lea if ins.op0_register().size() == 8 => {
            if let (Some(r), Some(addr)) = (gpr(ins.op0_register()), frame_address(state, ins)) {
                state.regs[r as usize] = Value::Frame(addr);
                return;
            }
        }
        Mnemonic::Add | Mnemonic::Sub
            if ins.op0_register() == Register::RSP && is_immediate(ins.op1_kind()) =>
        {
            let imm = ins.immediate(1) as i64;
            let imm = if ins.mnemonic() == Mnemonic::Sub {
                -imm
            } else {
                imm
            };
            state.regs[RSP as usize] = match state.rsp() {
                Some(d) => Value::Frame(d + imm),
                None => Value::Unknown,
            };
            return;
        }
        Mnemonic::Push if ins.op_count() == 1 => {
            let value = match ins.op0_kind() {
                OpKind::Register => gpr(ins.op0_register())
                    .filter(|_| ins.op0_register().size() == 8)
                    .map_or(Value::Unknown, |r| state.regs[r as usize].clone()),
                k if is_immediate(k) => Value::Consts(vec![ins.immediate(0)]),
                _ => Value::Unknown,
            };
            match state.rsp() {
                Some(d) => {
                    state.store(d - 8, 8, value);
                    state.regs[RSP as usize] = Value::Frame(d - 8);
                }
                None => state.regs[RSP as usize] = Value::Unknown,
            }
            return;
        }
        Mnemonic::Pop if ins.op0_kind() == OpKind::Register => {
            let d = state.rsp();
            let value = d.map_or(Value::Unknown, |d| state.load(d, 8));
            if let Some(r) = gpr(ins.op0_register()) {
                state.regs[r as usize] = value;
            }
            state.regs[RSP as usize] = d.map_or(Value::Unknown, |d| Value::Frame(d + 8));
            return;
        }
        Mnemonic::Leave => {
            match state.regs[RBP as usize].clone() {
                Value::Frame(f) => {
                    state.regs[RBP as usize] = state.load(f, 8);
                    state.regs[RSP as usize] = Value::Frame(f + 8);
                }
                _ => {
                    state.regs[RBP as usize] = Value::Unknown;
                    state.regs[RSP as usize] = Value::Unknown;
                }
            }
            return;
        }
        _ => {}
    }
    if is_kernel_entry(ins) {
        // The kernel returns in rax and clobbers rcx and r11 (syscall); int 0x80 zeroes r8-r11.
        let clobbered: &[u8] = match ins.mnemonic() {
            Mnemonic::Syscall => &[RAX, 1, 11],
            Mnemonic::Sysenter => &[RAX, 1, 2, 11],
            _ => &[RAX, 8, 9, 10, 11],
        };
        for r in clobbered {
            state.regs[*r as usize] = Value::Unknown;
        }
        return;
    }
    if matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    ) {
        call(state, ins, frame, ctx);
        return;
    }
    generic(state, ins, info, frame);
}

/// A `mov`; false when it is one the generic rule handles.
fn mov(state: &mut State, ins: &Instruction, ctx: &Context<'_>) -> bool {
    let size = |r: Register| r.size() as i64;
    match (ins.op0_kind(), ins.op1_kind()) {
        (OpKind::Register, k) if is_immediate(k) => {
            let Some(r) = gpr(ins.op0_register()) else {
                return false;
            };
            state.regs[r as usize] = match size(ins.op0_register()) {
                // 32-bit writes clear the upper half; immediate() is already extended.
                4 => Value::Consts(vec![ins.immediate(1) & 0xffff_ffff]),
                8 => Value::Consts(vec![ins.immediate(1)]),
                _ => Value::Unknown,
            };
            true
        }
        (OpKind::Register, OpKind::Register) => {
            let (Some(d), Some(s)) = (gpr(ins.op0_register()), gpr(ins.op1_register())) else {
                return false;
            };
            let width = size(ins.op0_register());
            state.regs[d as usize] = match width {
                8 | 4 => state.regs[s as usize].clone().truncated(width as u32),
                _ => Value::Unknown,
            };
            true
        }
        (OpKind::Register, OpKind::Memory) => {
            let Some(d) = gpr(ins.op0_register()) else {
                return false;
            };
            let width = size(ins.op0_register());
            state.regs[d as usize] = match (frame_address(state, ins), width) {
                (Some(off), 4 | 8) => state.load(off, width),
                (None, 4 | 8) if ins.is_ip_rel_memory_operand() => {
                    match (ctx.global)(ins.ip_rel_memory_address(), width as usize) {
                        Some(v) => Value::Consts(vec![v]),
                        None => Value::Unknown,
                    }
                }
                _ => Value::Unknown,
            };
            true
        }
        (OpKind::Memory, src) => {
            let Some(off) = frame_address(state, ins) else {
                return false;
            };
            let width = ins.memory_size().size() as i64;
            let value = match src {
                OpKind::Register => gpr(ins.op1_register())
                    .map_or(Value::Unknown, |s| state.regs[s as usize].clone()),
                k if is_immediate(k) => Value::Consts(vec![ins.immediate(1)]),
                _ => Value::Unknown,
            };
            let value = match width {
                8 => value,
                4 => value.truncated(4),
                _ => Value::Unknown,
            };
            state.store(off, width, value);
            true
        }
        _ => false,
    }
}

/// A call: the callee may change every register but the stack and frame pointers, its own
/// argument area in this frame, and, when this frame's addresses escape, any slot.
fn call(state: &mut State, ins: &Instruction, frame: FrameUse, ctx: &Context<'_>) {
    let direct = ins.flow_control() == FlowControl::Call;
    let target = direct.then(|| ins.near_branch_target());
    let kept: &[u8] = if (ctx.keeps_callee_saved)(target) {
        &[3, RSP, RBP, 12, 13, 14, 15]
    } else {
        &[RSP, RBP]
    };
    for r in 0..16u8 {
        if !kept.contains(&r) {
            state.regs[r as usize] = Value::Unknown;
        }
    }
    if frame.escapes || ins.flow_control() == FlowControl::IndirectCall {
        state.forget_stack();
        return;
    }
    let area = (ctx.args_area)(ins.near_branch_target());
    match state.rsp() {
        Some(d) => state.forget(d, 8 + area),
        None => state.forget_stack(),
    }
}

/// Every other instruction: what it writes becomes unknown.
fn generic(
    state: &mut State,
    ins: &Instruction,
    info: &mut InstructionInfoFactory,
    frame: FrameUse,
) {
    let info = info.info(ins);
    let writes = |a: OpAccess| {
        matches!(
            a,
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        )
    };
    for used in info.used_registers() {
        if writes(used.access())
            && let Some(r) = gpr(used.register())
        {
            state.regs[r as usize] = Value::Unknown;
        }
    }
    for mem in info.used_memory() {
        if !writes(mem.access()) {
            continue;
        }
        let base = gpr(mem.base()).map(|b| state.regs[b as usize].clone());
        match (base, mem.index()) {
            (Some(Value::Frame(f)), Register::None) => {
                let size = (mem.memory_size().size() as i64).max(1);
                state.forget(f.wrapping_add(mem.displacement() as i64), size);
            }
            // The stack, but where on it is not known.
            (Some(Value::Unknown), _) if mem.base() == Register::RSP => state.forget_stack(),
            _ if frame.escapes => state.forget_stack(),
            _ => {}
        }
    }
}

/// The entry-relative stack offset a memory operand addresses, when it is a frame slot.
fn frame_address(state: &State, ins: &Instruction) -> Option<i64> {
    if ins.memory_index() != Register::None || ins.is_ip_rel_memory_operand() {
        return None;
    }
    let base = gpr(ins.memory_base())?;
    match state.regs[base as usize] {
        Value::Frame(f) => Some(f.wrapping_add(ins.memory_displacement64() as i64)),
        _ => None,
    }
}

fn is_cmov(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmova
            | Mnemonic::Cmovae
            | Mnemonic::Cmovb
            | Mnemonic::Cmovbe
            | Mnemonic::Cmove
            | Mnemonic::Cmovg
            | Mnemonic::Cmovge
            | Mnemonic::Cmovl
            | Mnemonic::Cmovle
            | Mnemonic::Cmovne
            | Mnemonic::Cmovno
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovns
            | Mnemonic::Cmovo
            | Mnemonic::Cmovp
            | Mnemonic::Cmovs
    )
}

/// `syscall`, `sysenter` or `int 0x80`: enters the kernel and comes back.
pub fn is_kernel_entry(ins: &Instruction) -> bool {
    match ins.mnemonic() {
        Mnemonic::Syscall | Mnemonic::Sysenter => true,
        Mnemonic::Int => ins.immediate8() == 0x80,
        _ => false,
    }
}

fn is_immediate(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64
    )
}

/// A function's instructions cut into blocks, and the states at the instructions asked about.
pub struct Function<'a> {
    pub instructions: &'a [Instruction],
    /// Addresses inside the function that code elsewhere jumps to (their state is unknown).
    pub foreign_entries: &'a [u64],
}

impl Function<'_> {
    /// The state before each instruction at `at` (ascending addresses; those that are no
    /// instruction's are left out), or `None` when the function's blocks don't settle.
    pub fn states_at(&self, at: &[u64], ctx: &Context<'_>) -> Option<Vec<(u64, State)>> {
        let ins = self.instructions;
        if ins.is_empty() {
            return Some(Vec::new());
        }
        let start = ins[0].ip();
        let end = ins[ins.len() - 1].next_ip();
        let index_of = |addr: u64| ins.binary_search_by_key(&addr, |i| i.ip()).ok();
        // Leaders: the entry, jump targets, what follows a jump, foreign entries.
        let mut leader = vec![false; ins.len()];
        leader[0] = true;
        for (k, i) in ins.iter().enumerate() {
            if ends_block(i) {
                if let Some(next) = leader.get_mut(k + 1) {
                    *next = true;
                }
                if let Some(t) = local_target(i, start, end).and_then(index_of) {
                    leader[t] = true;
                }
            }
        }
        for e in self.foreign_entries {
            if let Some(t) = index_of(*e) {
                leader[t] = true;
            }
        }
        let starts: Vec<usize> = (0..ins.len()).filter(|k| leader[*k]).collect();
        let block_of = |k: usize| starts.partition_point(|s| *s <= k) - 1;
        let block_end = |b: usize| starts.get(b + 1).copied().unwrap_or(ins.len());
        let mut has_pred = vec![false; starts.len()];
        let succs: Vec<Vec<usize>> = (0..starts.len())
            .map(|b| {
                let last = &ins[block_end(b) - 1];
                let mut s = Vec::new();
                if let Some(t) = local_target(last, start, end).and_then(index_of) {
                    s.push(block_of(t));
                }
                if falls_through(last) && block_end(b) < ins.len() {
                    s.push(b + 1);
                }
                s
            })
            .collect();
        for s in succs.iter().flatten() {
            has_pred[*s] = true;
        }
        let mut input: Vec<Option<State>> = vec![None; starts.len()];
        input[0] = Some(State::entry());
        for b in 1..starts.len() {
            let foreign = self.foreign_entries.contains(&ins[starts[b]].ip());
            // Alignment padding after a jump is never run: it reaches nothing.
            let padding = ins[starts[b]..block_end(b)]
                .iter()
                .all(|i| matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3));
            if (!has_pred[b] && !padding) || foreign {
                input[b] = Some(State::unknown());
            }
        }
        let mut factory = InstructionInfoFactory::new();
        let frame = FrameUse::of(ins);
        let mut work: Vec<usize> = (0..starts.len())
            .rev()
            .filter(|b| input[*b].is_some())
            .collect();
        let mut visits = vec![0usize; starts.len()];
        while let Some(b) = work.pop() {
            visits[b] += 1;
            if visits[b] > MAX_VISITS_PER_BLOCK {
                return None;
            }
            let Some(mut state) = input[b].clone() else {
                continue;
            };
            let mut returns = true;
            for i in &ins[starts[b]..block_end(b)] {
                step(&mut state, i, &mut factory, frame, ctx);
                // Nothing after a call that never returns runs on from here.
                if i.flow_control() == FlowControl::Call && !(ctx.returns)(i.near_branch_target()) {
                    returns = false;
                    break;
                }
            }
            if !returns {
                continue;
            }
            for &s in &succs[b] {
                let next = match &input[s] {
                    Some(old) => old.join(&state),
                    None => state.clone(),
                };
                if input[s].as_ref() != Some(&next) {
                    input[s] = Some(next);
                    if !work.contains(&s) {
                        work.push(s);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for &addr in at {
            // The function's end: after its last instruction.
            let k = match index_of(addr) {
                Some(k) => k,
                None if addr == end => ins.len(),
                None => continue,
            };
            let b = block_of(k.min(ins.len() - 1));
            let mut state = input[b].clone().unwrap_or_else(State::unknown);
            for i in &ins[starts[b]..k] {
                step(&mut state, i, &mut factory, frame, ctx);
            }
            out.push((addr, state));
        }
        Some(out)
    }
}

fn ends_block(i: &Instruction) -> bool {
    !matches!(
        i.flow_control(),
        FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall
    )
}

fn falls_through(i: &Instruction) -> bool {
    matches!(
        i.flow_control(),
        FlowControl::Next
            | FlowControl::Call
            | FlowControl::IndirectCall
            | FlowControl::ConditionalBranch
            | FlowControl::Interrupt
            | FlowControl::XbeginXabortXend
    ) || (i.flow_control() == FlowControl::Exception && i.mnemonic() != Mnemonic::Ud2)
}

/// The target of a direct jump that stays inside `[start, end)`.
fn local_target(i: &Instruction, start: u64, end: u64) -> Option<u64> {
    match i.flow_control() {
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
            if matches!(
                i.op0_kind(),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            ) =>
        {
            let t = i.near_branch_target();
            (start..end).contains(&t).then_some(t)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn decode(code: &[u8]) -> Vec<Instruction> {
        Decoder::with_ip(64, code, 0x1000, DecoderOptions::NONE)
            .into_iter()
            .collect()
    }

    fn rax_at_syscall(code: &[u8]) -> Value {
        let ins = decode(code);
        let at: Vec<u64> = ins
            .iter()
            .filter(|i| i.mnemonic() == Mnemonic::Syscall)
            .map(|i| i.ip())
            .collect();
        let f = Function {
            instructions: &ins,
            foreign_entries: &[],
        };
        let ctx = Context {
            args_area: &|_| 0,
            global: &|_, _| None,
            keeps_callee_saved: &|_| true,
            returns: &|_| true,
        };
        let states = f.states_at(&at, &ctx).expect("settles");
        states[0].1.reg(RAX).clone()
    }

    #[test]
    fn constant_before_syscall() {
        // mov eax, 0x27; syscall
        assert_eq!(
            rax_at_syscall(&[0xb8, 0x27, 0, 0, 0, 0x0f, 0x05]),
            Value::Consts(vec![0x27])
        );
        // xor eax, eax; syscall
        assert_eq!(
            rax_at_syscall(&[0x31, 0xc0, 0x0f, 0x05]),
            Value::Consts(vec![0])
        );
    }

    #[test]
    fn number_from_an_argument() {
        // glibc's syscall(): mov rax, rdi; mov rdi, rsi; syscall
        assert_eq!(
            rax_at_syscall(&[0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x0f, 0x05]),
            Value::Arg(Loc::Reg(7))
        );
        // Go ABI0: mov rax, [rsp+8]; syscall
        assert_eq!(
            rax_at_syscall(&[0x48, 0x8b, 0x44, 0x24, 0x08, 0x0f, 0x05]),
            Value::Arg(Loc::Stack(8))
        );
    }

    #[test]
    fn spilled_across_a_call() {
        // sub rsp,0x68; mov [rsp+0x40],rax; call +0; mov rax,[rsp+0x40]; syscall
        let code = [
            0x48, 0x83, 0xec, 0x68, 0x48, 0x89, 0x44, 0x24, 0x40, 0xe8, 0, 0, 0, 0, 0x48, 0x8b,
            0x44, 0x24, 0x40, 0x0f, 0x05,
        ];
        assert_eq!(rax_at_syscall(&code), Value::Arg(Loc::Reg(RAX)));
    }

    #[test]
    fn both_branches_give_their_numbers() {
        // test edi,edi; je L; mov eax,1; jmp S; L: mov eax,2; S: syscall
        let code = [
            0x85, 0xff, 0x74, 0x07, 0xb8, 1, 0, 0, 0, 0xeb, 0x05, 0xb8, 2, 0, 0, 0, 0x0f, 0x05,
        ];
        assert_eq!(rax_at_syscall(&code), Value::Consts(vec![1, 2]));
    }

    #[test]
    fn a_conditional_move_leaves_either() {
        // mov eax,0x6e; mov ecx,0x27; test edi,edi; cmove eax,ecx; syscall
        let code = [
            0xb8, 0x6e, 0, 0, 0, 0xb9, 0x27, 0, 0, 0, 0x85, 0xff, 0x0f, 0x44, 0xc1, 0x0f, 0x05,
        ];
        assert_eq!(rax_at_syscall(&code), Value::Consts(vec![0x27, 0x6e]));
    }

    #[test]
    fn what_a_call_or_a_load_sets_is_unknown() {
        // call +0; syscall
        assert_eq!(
            rax_at_syscall(&[0xe8, 0, 0, 0, 0, 0x0f, 0x05]),
            Value::Unknown
        );
        // mov eax, [rip+0]; syscall
        assert_eq!(
            rax_at_syscall(&[0x8b, 0x05, 0, 0, 0, 0, 0x0f, 0x05]),
            Value::Unknown
        );
        // mov al, 3; syscall: the upper bits are whatever they were
        assert_eq!(rax_at_syscall(&[0xb0, 0x03, 0x0f, 0x05]), Value::Unknown);
    }
}
