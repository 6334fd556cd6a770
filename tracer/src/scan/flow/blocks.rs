//! A function cut into blocks, and the dataflow over them to a fixed point.
use iced_x86::{FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpKind};

use super::{
    State,
    step::{Context, FrameUse, step},
};

/// A function whose blocks don't settle within this many visits per block is given up on.
const MAX_VISITS_PER_BLOCK: usize = 64;
/// A value that changed this many times at a block's entry becomes unknown there.
const WIDEN_AFTER: u8 = 8;

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
        let mut changes = vec![super::Changes::default(); starts.len()];
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
                    // A loop that keeps changing a value (a counter) has it unknown.
                    Some(old) => old.widen(&old.join(&state), &mut changes[s], WIDEN_AFTER),
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
