//! What a profile does with each syscall, evaluated the way runc hands the rules to
//! libseccomp: rules that don't apply to the container are dropped, rules whose action is the
//! default action are skipped, the first rule without conditions decides a syscall outright
//! (libseccomp clears conditional rules before it and ignores those after it), and otherwise
//! the conditional rules' argument sets combine.
use std::collections::BTreeMap;

use super::{
    conditions::{Region, rule_region},
    model::{Action, Profile},
    resolve::Context,
};
use crate::names::Abi;

/// The argument values for which a syscall runs. Where libseccomp's answer depends on how it
/// orders overlapping conditional rules with different actions, `lower` is what surely runs
/// and `upper` what may run; elsewhere they are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub lower: Region,
    pub upper: Region,
    /// The action of a rule that decides the syscall outright (None: conditional rules or the
    /// default decide).
    pub outright: Option<Action>,
}

impl Decision {
    fn of(region: Region) -> Decision {
        Decision {
            lower: region.clone(),
            upper: region,
            outright: None,
        }
    }

    pub fn denied(&self) -> bool {
        self.upper.is_empty()
    }

    pub fn all(&self) -> bool {
        self.lower.is_all()
    }
}

/// How a profile treats one syscall name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed only for some argument values.
    AllowedWithArgs,
}

impl Profile {
    /// What the profile does with every name of `abi`'s table, for a container with `ctx` on
    /// `abi`'s platform (a call of an ABI enters only its own platform's kernel, so rules are
    /// kept or dropped for that platform's `includes.arches`). An ABI the profile doesn't
    /// cover denies everything (libseccomp's bad-arch action).
    pub fn decisions(&self, abi: Abi, ctx: &Context) -> BTreeMap<&'static str, Decision> {
        let ctx = &ctx.on(abi.arch());
        let table = abi.names();
        let covered = self.covers(abi);
        let default = self.default_act();
        let mut rules: BTreeMap<&'static str, Vec<(Action, bool, Region)>> = BTreeMap::new();
        if covered {
            for rule in self.syscalls.iter().filter(|r| r.applies(ctx)) {
                let action = rule.act();
                if action == default {
                    continue;
                }
                let region = rule_region(&rule.args);
                for name in rule.all_names() {
                    if let Ok(i) = table.binary_search(&name.as_str()) {
                        rules.entry(table[i]).or_default().push((
                            action,
                            rule.args.is_empty(),
                            region.clone(),
                        ));
                    }
                }
            }
        }
        table
            .iter()
            .map(|&name| {
                let decision = if !covered {
                    Decision::of(Region::empty())
                } else {
                    decide(rules.get(name).map(Vec::as_slice).unwrap_or(&[]), default)
                };
                (name, decision)
            })
            .collect()
    }

    /// Names of `abi`'s table this profile lets through (for some arguments, or all).
    pub fn allowed(&self, abi: Abi, ctx: &Context) -> BTreeMap<&'static str, Verdict> {
        self.decisions(abi, ctx)
            .into_iter()
            .filter(|(_, d)| !d.denied())
            .map(|(n, d)| {
                let v = if d.upper.is_all() {
                    Verdict::Allowed
                } else {
                    Verdict::AllowedWithArgs
                };
                (n, v)
            })
            .collect()
    }
}

/// One syscall's rules (action, without conditions, argument set), in order.
fn decide(rules: &[(Action, bool, Region)], default: Action) -> Decision {
    if let Some((action, _, _)) = rules.iter().find(|(_, outright, _)| *outright) {
        let upper = if action.may_run() {
            Region::all()
        } else {
            Region::empty()
        };
        let lower = if action.runs() {
            Region::all()
        } else {
            Region::empty()
        };
        return Decision {
            lower,
            upper,
            outright: Some(*action),
        };
    }
    let union = |pick: &dyn Fn(Action) -> bool| {
        rules
            .iter()
            .filter(|(a, _, _)| pick(*a))
            .fold(Region::empty(), |acc, (_, _, r)| acc.union(r))
    };
    let runs = union(&|a| a.runs());
    let may_run = union(&|a| a.may_run());
    let stops = union(&|a| !a.runs());
    if rules.is_empty() {
        return Decision::of(if default.runs() {
            Region::all()
        } else {
            Region::empty()
        });
    }
    let lower = if default.runs() {
        Region::all().minus(&stops)
    } else {
        runs.minus(&stops)
    };
    // Undecidable within the work budget: nothing is sure to run.
    let lower = lower.unwrap_or_else(Region::empty);
    let upper = if default.may_run() {
        Region::all()
    } else {
        may_run
    };
    Decision {
        lower,
        upper,
        outright: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::model::{Arg, Op, Rule};

    use crate::seccomp::resolve::test_context as ctx;

    #[test]
    fn docker_default_allows_309_on_x86_64() {
        let allowed = Profile::docker_default().allowed(Abi::X86_64, &ctx());
        let with_args: Vec<_> = allowed
            .iter()
            .filter(|(_, v)| **v == Verdict::AllowedWithArgs)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(with_args, ["clone", "personality", "socket"]);
        assert_eq!(allowed.len(), 309);
        for denied in ["mount", "clone3", "kexec_load", "bpf", "unshare", "setns"] {
            assert!(!allowed.contains_key(denied), "{denied}");
        }
        // ptrace is allowed from kernel 4.8 on (minKernel), as is chroot with CAP_SYS_CHROOT.
        for ok in ["read", "chroot", "openat", "execve", "arch_prctl", "ptrace"] {
            assert!(allowed.contains_key(ok), "{ok}");
        }
    }

    #[test]
    fn caps_widen_the_default() {
        let mut ctx = ctx();
        ctx.caps.insert("CAP_SYS_ADMIN".into());
        ctx.caps.insert("CAP_SYS_PTRACE".into());
        let allowed = Profile::docker_default().allowed(Abi::X86_64, &ctx);
        assert!(allowed.contains_key("mount"));
        assert!(allowed.contains_key("ptrace"));
        assert_eq!(allowed.get("clone"), Some(&Verdict::Allowed));
        assert_eq!(allowed.get("clone3"), Some(&Verdict::Allowed));
    }

    fn profile(rules: Vec<Rule>) -> Profile {
        Profile {
            default_action: "SCMP_ACT_ERRNO".into(),
            default_errno_ret: None,
            arch_map: Vec::new(),
            architectures: Vec::new(),
            flags: Vec::new(),
            syscalls: rules,
        }
    }

    #[test]
    fn the_first_unconditional_rule_decides() {
        // A deny before an allow: runc hands both to libseccomp, which keeps the first.
        let p = profile(vec![
            Rule::with_action(["ptrace".to_string()], Action::Errno(38)),
            Rule::allow(["ptrace".to_string()]),
        ]);
        let d = &p.decisions(Abi::X86_64, &ctx())["ptrace"];
        assert!(d.denied());
        assert_eq!(d.outright, Some(Action::Errno(38)));
        // An unconditional allow after conditional ones clears them.
        let p = profile(vec![
            Rule {
                args: vec![Arg::eq(0, 2)],
                ..Rule::allow(["socket".to_string()])
            },
            Rule::allow(["socket".to_string()]),
        ]);
        assert!(p.decisions(Abi::X86_64, &ctx())["socket"].all());
        // A rule with the default action is skipped, however it is written.
        let p = profile(vec![
            Rule::with_action(["read".to_string()], Action::Errno(1)),
            Rule::allow(["read".to_string()]),
        ]);
        assert!(p.decisions(Abi::X86_64, &ctx())["read"].all());
    }

    #[test]
    fn conditional_denials_narrow_an_allowing_default() {
        let mut p = profile(vec![Rule {
            args: vec![Arg {
                index: 0,
                value: 40,
                value_two: 0,
                op: Op::Eq,
            }],
            ..Rule::with_action(["socket".to_string()], Action::Errno(1))
        }]);
        p.default_action = "SCMP_ACT_ALLOW".into();
        let d = &p.decisions(Abi::X86_64, &ctx())["socket"];
        assert!(!d.lower.is_all() && !d.denied());
        assert!(Region::of(rule_region(&[Arg::eq(0, 2)]).boxes().to_vec()).within(&d.lower));
        assert!(!rule_region(&[Arg::eq(0, 40)]).within(&d.lower));
    }

    #[test]
    fn uncovered_abis_deny_everything() {
        let p = Profile::allowing(["read"], &[Abi::X86_64].into());
        assert!(p.decisions(Abi::I386, &ctx())["read"].denied());
        assert!(p.decisions(Abi::X86_64, &ctx())["read"].all());
    }
}
