//! What a function's registers and stack slots hold at a given instruction: a forward dataflow
//! over the function's blocks that knows constants, the function's own arguments and stack
//! addresses, and nothing else (everything it can't follow is `Unknown`).
use std::collections::BTreeMap;

use iced_x86::Register;

mod blocks;
mod step;

pub use blocks::Function;
pub use step::Context;

/// At most this many distinct constants are kept for one value; more is `Unknown`.
const MAX_CONSTS: usize = 64;
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
    /// The pointer a global variable held when it was read (one that code writes).
    Loaded(u64),
    /// What was read at an offset of the memory a pointer points to.
    Field(Base, i64),
}

/// Where the pointer a [`Value::Field`] was read through came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Base {
    /// The function's argument.
    Arg(Loc),
    /// A global variable that holds a pointer.
    Global(u64),
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
            (Value::Field(base, off), 4) => Value::Field(base, off),
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

/// How often each register and slot changed at one block's entry.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    regs: [u8; 16],
    slots: BTreeMap<i64, u8>,
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

    /// `next` (a join with this state), with what has changed `limit` times here unknown.
    fn widen(&self, next: &State, changes: &mut Changes, limit: u8) -> State {
        let mut out = next.clone();
        for (r, value) in out.regs.iter_mut().enumerate() {
            if *value != self.regs[r] {
                changes.regs[r] = changes.regs[r].saturating_add(1);
                if changes.regs[r] >= limit {
                    *value = Value::Unknown;
                }
            }
        }
        for (off, slot) in out.slots.iter_mut() {
            if self.slots.get(off) != Some(slot) {
                let n = changes.slots.entry(*off).or_default();
                *n = n.saturating_add(1);
                if *n >= limit {
                    slot.value = Value::Unknown;
                }
            }
        }
        out
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

    /// The value of the frame slot at `off` (entry-relative), `size` bytes of it.
    pub fn load(&self, off: i64, size: i64) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

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
    fn number_in_a_struct_handed_over_or_published() {
        // glibc's __nptl_setxid: mov rbx, rdi; mov eax, [rbx]; syscall
        assert_eq!(
            rax_at_syscall(&[0x48, 0x89, 0xfb, 0x8b, 0x03, 0x0f, 0x05]),
            Value::Field(Base::Arg(Loc::Reg(7)), 0)
        );
        // its signal handler: mov rax, [rip+0x100]; mov eax, [rax+8]; syscall
        assert_eq!(
            rax_at_syscall(&[0x48, 0x8b, 0x05, 0, 1, 0, 0, 0x8b, 0x40, 0x08, 0x0f, 0x05]),
            Value::Field(Base::Global(0x1107), 8)
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
    fn a_branchless_select_is_both_numbers() {
        // cmp eax,1; sbb r12,r12; and r12,-0x47; add r12,0x6e; mov rax,r12; syscall
        let code = [
            0x83, 0xf8, 0x01, 0x4d, 0x19, 0xe4, 0x49, 0x83, 0xe4, 0xb9, 0x49, 0x83, 0xc4, 0x6e,
            0x4c, 0x89, 0xe0, 0x0f, 0x05,
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
