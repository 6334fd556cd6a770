//! Compiles a profile into a classic-BPF seccomp program, so `profile exec` can enforce it on a
//! host command without a container runtime: rules by name on x86_64, argument conditions
//! included, evaluated as runc would hand them to libseccomp (the first rule without
//! conditions decides a syscall; otherwise the first conditional rule that matches).
use std::collections::BTreeMap;

use libc::{
    BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET,
    BPF_W, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_LOG,
    SECCOMP_RET_TRAP,
};
use tracer_common::X32_SYSCALL_BIT;

use crate::seccomp::{Action, Arg, Context, Op, Profile, model::action_fields};

/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (libc doesn't export it).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
// Offsets in struct seccomp_data.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;
/// The kernel's limit for one filter (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// Why a profile can't be compiled for `profile exec`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("action {0} is not supported by `profile exec`")]
    UnsupportedAction(&'static str),
    #[error("the profile is too large for `profile exec`: a jump spans more than 255 instructions")]
    JumpTooFar,
    #[error(
        "the profile compiles to {0} instructions, more than a seccomp filter may have ({MAX_INSNS})"
    )]
    TooLong(usize),
}

fn ret_of(action: Action) -> Result<u32, CompileError> {
    Ok(match action {
        Action::Allow => SECCOMP_RET_ALLOW,
        Action::Log => SECCOMP_RET_LOG,
        Action::Errno(e) => SECCOMP_RET_ERRNO | (e & 0xffff),
        Action::Kill | Action::KillProcess | Action::KillThread => SECCOMP_RET_KILL_PROCESS,
        Action::Trap => SECCOMP_RET_TRAP,
        other => return Err(CompileError::UnsupportedAction(action_fields(other).0)),
    })
}

/// An instruction whose jumps name labels; resolved into offsets at the end.
#[derive(Clone, Copy)]
enum Ins {
    Stmt(u32, u32),
    /// Conditional jump: code, k, where to go when true, when false.
    Jump(u32, u32, Label, Label),
    Label(usize),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Next,
    At(usize),
}

struct Asm {
    code: Vec<Ins>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    fn load(&mut self, offset: u32) {
        self.code.push(Ins::Stmt(BPF_LD | BPF_W | BPF_ABS, offset));
    }

    fn jump(&mut self, op: u32, k: u32, t: Label, f: Label) {
        self.code.push(Ins::Jump(BPF_JMP | op | BPF_K, k, t, f));
    }

    /// Checks one condition; falls through when it holds, jumps to `fail` when not.
    fn condition(&mut self, arg: &Arg, fail: usize) {
        let lo = DATA_ARGS + 8 * arg.index;
        let hi = lo + 4;
        let fail = Label::At(fail);
        let pass = self.label();
        let (v_hi, v_lo) = ((arg.value >> 32) as u32, arg.value as u32);
        match arg.op {
            Op::Eq | Op::Ne => {
                let (t, f) = if arg.op == Op::Eq {
                    (Label::Next, fail)
                } else {
                    (fail, Label::Next)
                };
                self.load(hi);
                let hi_differs = if arg.op == Op::Eq {
                    fail
                } else {
                    Label::At(pass)
                };
                self.jump(BPF_JEQ, v_hi, Label::Next, hi_differs);
                self.load(lo);
                self.jump(BPF_JEQ, v_lo, t, f);
            }
            Op::MaskedEq => {
                let (d_hi, d_lo) = ((arg.value_two >> 32) as u32, arg.value_two as u32);
                self.load(hi);
                self.code.push(Ins::Stmt(BPF_ALU | BPF_AND | BPF_K, v_hi));
                self.jump(BPF_JEQ, d_hi, Label::Next, fail);
                self.load(lo);
                self.code.push(Ins::Stmt(BPF_ALU | BPF_AND | BPF_K, v_lo));
                self.jump(BPF_JEQ, d_lo, Label::Next, fail);
            }
            Op::Gt | Op::Ge => {
                self.load(hi);
                self.jump(BPF_JGT, v_hi, Label::At(pass), Label::Next);
                self.jump(BPF_JEQ, v_hi, Label::Next, fail);
                self.load(lo);
                let op = if arg.op == Op::Gt { BPF_JGT } else { BPF_JGE };
                self.jump(op, v_lo, Label::Next, fail);
            }
            Op::Lt | Op::Le => {
                self.load(hi);
                self.jump(BPF_JGT, v_hi, fail, Label::Next);
                self.jump(BPF_JEQ, v_hi, Label::Next, Label::At(pass));
                self.load(lo);
                let op = if arg.op == Op::Lt { BPF_JGE } else { BPF_JGT };
                self.jump(op, v_lo, fail, Label::Next);
            }
        }
        self.code.push(Ins::Label(pass));
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>, CompileError> {
        let mut at = vec![0usize; self.labels];
        let mut pc = 0;
        for ins in &self.code {
            match ins {
                Ins::Label(l) => at[*l] = pc,
                _ => pc += 1,
            }
        }
        let mut out = Vec::with_capacity(pc);
        for ins in &self.code {
            let here = out.len();
            let offset = |l: Label| -> Result<u8, CompileError> {
                let target = match l {
                    Label::Next => here + 1,
                    Label::At(l) => at[l],
                };
                u8::try_from(target - here - 1).map_err(|_| CompileError::JumpTooFar)
            };
            match *ins {
                Ins::Label(_) => {}
                Ins::Stmt(code, k) => out.push(libc::sock_filter {
                    code: code as u16,
                    jt: 0,
                    jf: 0,
                    k,
                }),
                Ins::Jump(code, k, t, f) => out.push(libc::sock_filter {
                    code: code as u16,
                    jt: offset(t)?,
                    jf: offset(f)?,
                    k,
                }),
            }
        }
        if out.len() > MAX_INSNS {
            return Err(CompileError::TooLong(out.len()));
        }
        Ok(out)
    }
}

/// What classic-BPF seccomp program `prog` returns for syscall `nr` on `arch` with `args`, for
/// the instructions [`compile`] emits (word loads of `seccomp_data`, AND, jumps on constants,
/// returns of constants); `None` for anything else or a jump out of the program.
pub fn evaluate(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> Option<u32> {
    let word = |offset: u32| -> u32 {
        match offset {
            DATA_NR => nr,
            DATA_ARCH => arch,
            o if (DATA_ARGS..DATA_ARGS + 48).contains(&o) && o.is_multiple_of(4) => {
                let arg = args[((o - DATA_ARGS) / 8) as usize];
                // Little-endian: the low half first.
                if (o - DATA_ARGS).is_multiple_of(8) {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            _ => 0,
        }
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = prog.get(pc)?;
        pc += 1;
        let jump = |taken: bool| pc + usize::from(if taken { ins.jt } else { ins.jf });
        match u32::from(ins.code) {
            c if c == BPF_LD | BPF_W | BPF_ABS => acc = word(ins.k),
            c if c == BPF_ALU | BPF_AND | BPF_K => acc &= ins.k,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc = jump(acc == ins.k),
            c if c == BPF_JMP | BPF_JGE | BPF_K => pc = jump(acc >= ins.k),
            c if c == BPF_JMP | BPF_JGT | BPF_K => pc = jump(acc > ins.k),
            c if c == BPF_JMP | BPF_JA => pc += ins.k as usize,
            c if c == BPF_RET | BPF_K => return Some(ins.k),
            _ => return None,
        }
    }
}

/// The filter for `profile` on x86_64, for a container with Docker's default capabilities.
/// Calls through other ABIs get the default action.
pub fn compile(profile: &Profile) -> Result<Vec<libc::sock_filter>, CompileError> {
    let ctx = Context::docker_default();
    let default = profile.default_act();
    let default_ret = ret_of(default)?;
    // Per syscall number: its rules in order, as (action, conditions).
    let mut rules: BTreeMap<u32, Vec<(Action, Vec<Arg>)>> = BTreeMap::new();
    for rule in profile.syscalls.iter().filter(|r| r.applies(&ctx)) {
        let action = rule.act();
        if action == default {
            continue;
        }
        ret_of(action)?;
        for name in rule.all_names() {
            match name.parse::<syscalls::x86_64::Sysno>() {
                Ok(sysno) => rules
                    .entry(sysno.id() as u32)
                    .or_default()
                    .push((action, rule.args.clone())),
                Err(_) => log::debug!("{name} is not an x86_64 syscall; ignored"),
            }
        }
    }
    let mut asm = Asm {
        code: Vec::new(),
        labels: 0,
    };
    // Every return is inline: cBPF jumps reach at most 255 instructions ahead.
    let not_native = asm.label();
    let native = asm.label();
    asm.load(DATA_ARCH);
    asm.jump(
        BPF_JEQ,
        AUDIT_ARCH_X86_64,
        Label::Next,
        Label::At(not_native),
    );
    asm.load(DATA_NR);
    asm.jump(
        BPF_JGE,
        X32_SYSCALL_BIT as u32,
        Label::At(not_native),
        Label::At(native),
    );
    asm.code.push(Ins::Label(not_native));
    asm.code.push(Ins::Stmt(BPF_RET | BPF_K, default_ret));
    asm.code.push(Ins::Label(native));
    for (nr, list) in &rules {
        let next_nr = asm.label();
        asm.load(DATA_NR);
        asm.jump(BPF_JEQ, *nr, Label::Next, Label::At(next_nr));
        let decisive = list.iter().position(|(_, args)| args.is_empty());
        let chosen: Vec<&(Action, Vec<Arg>)> = match decisive {
            Some(i) => vec![&list[i]],
            None => list.iter().collect(),
        };
        for (action, args) in chosen {
            let next_rule = asm.label();
            for arg in args {
                asm.condition(arg, next_rule);
            }
            asm.code.push(Ins::Stmt(BPF_RET | BPF_K, ret_of(*action)?));
            asm.code.push(Ins::Label(next_rule));
        }
        asm.code.push(Ins::Stmt(BPF_RET | BPF_K, default_ret));
        asm.code.push(Ins::Label(next_nr));
    }
    asm.code.push(Ins::Stmt(BPF_RET | BPF_K, default_ret));
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Abi;
    use std::collections::BTreeSet;

    #[test]
    fn unsupported_actions_are_named() {
        let p = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#,
            std::path::Path::new("p"),
        )
        .expect("parses");
        let err = compile(&p).unwrap_err();
        assert_eq!(err, CompileError::UnsupportedAction("SCMP_ACT_NOTIFY"));
        assert_eq!(
            err.to_string(),
            "action SCMP_ACT_NOTIFY is not supported by `profile exec`"
        );
    }

    /// Runs the program on a syscall, as the kernel would.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        evaluate(prog, arch, nr, args).expect("only instructions compile emits")
    }

    #[test]
    fn allow_lists_and_the_default() {
        let p = Profile::allowing(["read", "write"], &BTreeSet::from([Abi::X86_64]));
        let prog = compile(&p).unwrap();
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(run(&prog, x, 0, [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, x, 1, [0; 6]), SECCOMP_RET_ALLOW);
        assert_eq!(run(&prog, x, 2, [0; 6]), SECCOMP_RET_ERRNO | 1);
        assert_eq!(run(&prog, x, 0x4000_0000, [0; 6]), SECCOMP_RET_ERRNO | 1);
        assert_eq!(run(&prog, 0x4000_0003, 0, [0; 6]), SECCOMP_RET_ERRNO | 1);
    }

    #[test]
    fn argument_conditions_as_docker_default_writes_them() {
        let prog = compile(&Profile::docker_default()).unwrap();
        let x = AUDIT_ARCH_X86_64;
        let socket = |f: u64| run(&prog, x, 41, [f, 1, 0, 0, 0, 0]);
        assert_eq!(socket(2), SECCOMP_RET_ALLOW);
        assert_eq!(socket(37), SECCOMP_RET_ALLOW);
        assert_eq!(socket(38), SECCOMP_RET_ERRNO | 1);
        assert_eq!(socket(39), SECCOMP_RET_ALLOW);
        assert_eq!(socket(40), SECCOMP_RET_ERRNO | 1);
        assert_eq!(socket(41), SECCOMP_RET_ALLOW);
        assert_eq!(socket(1 << 40), SECCOMP_RET_ALLOW);
        let clone = |f: u64| run(&prog, x, 56, [f, 0, 0, 0, 0, 0]);
        assert_eq!(clone(0x11), SECCOMP_RET_ALLOW);
        assert_eq!(clone(0x1000_0011), SECCOMP_RET_ERRNO | 1);
        let pers = |v: u64| run(&prog, x, 135, [v, 0, 0, 0, 0, 0]);
        assert_eq!(pers(0xffff_ffff), SECCOMP_RET_ALLOW);
        assert_eq!(pers(0x40000), SECCOMP_RET_ERRNO | 1);
        assert_eq!(run(&prog, x, 435, [0; 6]), SECCOMP_RET_ERRNO | 38); // clone3
        assert_eq!(run(&prog, x, 165, [0; 6]), SECCOMP_RET_ERRNO | 1); // mount
    }

    #[test]
    fn ordered_comparisons_on_64_bits() {
        for (op, v) in [
            (Op::Lt, 5u64),
            (Op::Le, 5),
            (Op::Gt, 5),
            (Op::Ge, 5),
            (Op::Ne, 1 << 33),
        ] {
            let mut p = Profile::allowing([], &BTreeSet::from([Abi::X86_64]));
            p.syscalls.push(crate::seccomp::Rule {
                args: vec![Arg {
                    index: 2,
                    value: v,
                    value_two: 0,
                    op,
                }],
                ..crate::seccomp::Rule::allow(["read".to_string()])
            });
            let prog = compile(&p).unwrap();
            for x in [0u64, 4, 5, 6, 1 << 32, 1 << 33, u64::MAX] {
                let want = match op {
                    Op::Lt => x < v,
                    Op::Le => x <= v,
                    Op::Gt => x > v,
                    Op::Ge => x >= v,
                    Op::Ne => x != v,
                    _ => unreachable!(),
                };
                let got = run(&prog, AUDIT_ARCH_X86_64, 0, [0, 0, x, 0, 0, 0]);
                assert_eq!(got == SECCOMP_RET_ALLOW, want, "{op:?} {v} on {x}");
            }
        }
    }
}
