//! What one instruction does to the registers and stack slots the dataflow follows.
use iced_x86::{
    FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

use super::{Base, RAX, RBP, RSP, State, Value, gpr};

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
    // Bytes that decode to nothing: the code is not what this decoding says it is.
    if ins.is_invalid() {
        *state = State::unknown();
        return;
    }
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
        // `cmp; sbb r, r` makes a mask: 0 or all ones.
        Mnemonic::Sbb
            if ins.op0_kind() == OpKind::Register
                && ins.op1_kind() == OpKind::Register
                && ins.op0_register() == ins.op1_register() =>
        {
            if let Some(r) = gpr(ins.op0_register())
                && let Some(mask) = width_mask(ins.op0_register())
            {
                state.regs[r as usize] = Value::Consts(vec![0, mask]);
                return;
            }
        }
        _ if arithmetic(state, ins) => return,
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

/// The bits a 32- or 64-bit register holds (a 32-bit write clears the upper half).
fn width_mask(reg: Register) -> Option<u64> {
    match reg.size() {
        4 => Some(0xffff_ffff),
        8 => Some(u64::MAX),
        _ => None,
    }
}

/// Arithmetic on constants, each constant of a set on its own (branchless selects compile to
/// `sbb`/`and`/`add`); false when it is not arithmetic on known constants.
fn arithmetic(state: &mut State, ins: &Instruction) -> bool {
    let m = ins.mnemonic();
    if ins.op0_kind() != OpKind::Register {
        return false;
    }
    let (Some(d), Some(mask)) = (gpr(ins.op0_register()), width_mask(ins.op0_register())) else {
        return false;
    };
    let Value::Consts(a) = state.regs[d as usize].clone() else {
        return false;
    };
    let b: Vec<u64> = match (ins.op_count(), m) {
        (1, Mnemonic::Neg | Mnemonic::Not | Mnemonic::Inc | Mnemonic::Dec) => vec![0],
        (2, _) => match ins.op1_kind() {
            OpKind::Register => match gpr(ins.op1_register()).map(|r| &state.regs[r as usize]) {
                Some(Value::Consts(b)) => b.clone(),
                _ => return false,
            },
            k if is_immediate(k) => vec![ins.immediate(1)],
            _ => return false,
        },
        _ => return false,
    };
    // The CPU masks shift counts to 5 bits for 32-bit operands, 6 for 64-bit ones.
    let count = |y: u64| (y as u32) & if mask == u64::MAX { 63 } else { 31 };
    let op = |x: u64, y: u64| -> Option<u64> {
        Some(match m {
            Mnemonic::Add => x.wrapping_add(y),
            Mnemonic::Sub => x.wrapping_sub(y),
            Mnemonic::And => x & y,
            Mnemonic::Or => x | y,
            Mnemonic::Xor => x ^ y,
            Mnemonic::Shl => x << count(y),
            Mnemonic::Shr => (x & mask) >> count(y),
            Mnemonic::Neg => x.wrapping_neg(),
            Mnemonic::Not => !x,
            Mnemonic::Inc => x.wrapping_add(1),
            Mnemonic::Dec => x.wrapping_sub(1),
            _ => return None,
        })
    };
    let mut out = Vec::new();
    for x in &a {
        for y in &b {
            match op(*x, *y) {
                Some(v) => out.push(v & mask),
                None => return false,
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    state.regs[d as usize] = if out.len() > super::MAX_CONSTS {
        Value::Unknown
    } else {
        Value::Consts(out)
    };
    true
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
                    let at = ins.ip_rel_memory_address();
                    match ((ctx.global)(at, width as usize), width) {
                        (Some(v), _) => Value::Consts(vec![v]),
                        (None, 8) => Value::Loaded(at),
                        _ => Value::Unknown,
                    }
                }
                // Through a pointer the function was given, or read from a global.
                (None, 4 | 8)
                    if ins.memory_index() == Register::None
                        && matches!(ins.memory_segment(), Register::DS | Register::SS) =>
                {
                    let disp = ins.memory_displacement64() as i64;
                    match gpr(ins.memory_base()).map(|b| &state.regs[b as usize]) {
                        Some(Value::Arg(loc)) => Value::Field(Base::Arg(*loc), disp),
                        Some(Value::Loaded(g)) => Value::Field(Base::Global(*g), disp),
                        _ => Value::Unknown,
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
