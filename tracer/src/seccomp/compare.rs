//! Profiles against each other: "allows within" (the never-weaker check), diff and merge, all
//! over the same per-syscall decisions, so they agree with each other and with runc.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    conditions::Region,
    eval::Decision,
    model::{Action, ArchMap, Profile, Rule},
    resolve::Context,
};
use crate::names::{Abi, AbiName};

/// A place where one profile allows what another doesn't.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Widening {
    /// `name`, or `name (abi)` off x86_64.
    pub syscall: String,
    /// What is allowed beyond the other profile, in words.
    pub beyond: String,
}

impl std::fmt::Display for Widening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.syscall, self.beyond)
    }
}

fn label(abi: Abi, name: &str) -> String {
    AbiName(abi, name).to_string()
}

/// Every ABI whose calls `p`'s rules decide on some platform (on any other, all are denied):
/// what "never weaker, on any architecture" has to check.
fn decided_abis(p: &Profile) -> impl Iterator<Item = Abi> + '_ {
    Abi::ALL.into_iter().filter(|abi| p.covers(*abi))
}

/// The argument values of `region` in words: `any arguments`, or the conditions of each case.
pub fn describe(region: &Region) -> String {
    if region.is_all() {
        return "any arguments".into();
    }
    let cases: Vec<String> = region
        .boxes()
        .iter()
        .take(8)
        .map(|b| {
            let args: Vec<String> =
                b.0.iter()
                    .enumerate()
                    .filter(|(_, s)| !s.is_all())
                    .map(|(i, s)| {
                        let cubes: Vec<String> =
                            s.cubes().iter().take(4).map(|c| c.to_string()).collect();
                        let more = if s.cubes().len() > 4 { ", ..." } else { "" };
                        format!("arg{i} in {{{}{more}}}", cubes.join(", "))
                    })
                    .collect();
            args.join(" and ")
        })
        .collect();
    let more = if region.boxes().len() > 8 {
        " or ..."
    } else {
        ""
    };
    format!("{}{more}", cases.join(" or "))
}

impl Profile {
    /// Every syscall and argument this profile allows that `base` doesn't, for a container
    /// with `ctx`; empty when this profile is within `base`.
    pub fn widenings(&self, base: &Profile, ctx: &Context) -> Vec<Widening> {
        let mut out = Vec::new();
        if self.default_act().may_run() && !base.default_act().runs() {
            out.push(Widening {
                syscall: "(unlisted syscalls)".into(),
                beyond: format!(
                    "defaultAction {} lets through calls {} stops",
                    self.default_action, base.default_action
                ),
            });
        }
        for abi in decided_abis(self) {
            let mine = self.decisions(abi, ctx);
            let theirs = base.decisions(abi, ctx);
            for (name, d) in &mine {
                if d.denied() {
                    continue;
                }
                let Some(b) = theirs.get(name) else { continue };
                if !d.upper.within(&b.lower) {
                    let beyond = d.upper.minus(&b.lower).unwrap_or_else(|| d.upper.clone());
                    out.push(Widening {
                        syscall: label(abi, name),
                        beyond: if b.denied() {
                            "denied outright by the other profile".into()
                        } else {
                            describe(&beyond)
                        },
                    });
                }
            }
        }
        out
    }
}

impl Profile {
    /// What this profile allows that none of `inputs` does (a merge must allow nothing more
    /// than their union).
    pub fn widenings_beyond_union(&self, inputs: &[&Profile], ctx: &Context) -> Vec<Widening> {
        let mut out = Vec::new();
        for abi in decided_abis(self) {
            let theirs: Vec<_> = inputs.iter().map(|p| p.decisions(abi, ctx)).collect();
            for (name, d) in self.decisions(abi, ctx) {
                if d.denied() {
                    continue;
                }
                let union = theirs
                    .iter()
                    .filter_map(|m| m.get(name))
                    .fold(Region::empty(), |acc, t| acc.union(&t.lower));
                if !d.upper.within(&union) {
                    out.push(Widening {
                        syscall: label(abi, name),
                        beyond: describe(&d.upper.minus(&union).unwrap_or(d.upper.clone())),
                    });
                }
            }
        }
        out
    }
}

/// What changed between two profiles, name by name, on every platform either is meant for
/// (x86_64 names bare, every other ABI's as `name (abi)`: `ppoll (aarch64)`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Allowed by NEW, not by OLD.
    pub added: Vec<String>,
    /// Allowed by OLD, not by NEW.
    pub removed: Vec<String>,
    /// Allowed by both, by NEW for arguments OLD denies.
    pub widened: Vec<Widening>,
    /// Allowed by both, by NEW for fewer arguments.
    pub narrowed: Vec<Widening>,
}

impl Diff {
    /// Whether NEW allows anything OLD didn't.
    pub fn allows_more(&self) -> bool {
        !self.added.is_empty() || !self.widened.is_empty()
    }

    pub fn between(old: &Profile, new: &Profile, ctx: &Context) -> Diff {
        let mut diff = Diff::default();
        let abis: BTreeSet<Abi> = old.abis().union(&new.abis()).copied().collect();
        let change = |abi: Abi, name: &str, more: &Decision, less: &Decision| Widening {
            syscall: label(abi, name),
            beyond: beyond(more, less),
        };
        for abi in abis {
            let a = old.decisions(abi, ctx);
            let b = new.decisions(abi, ctx);
            for (name, nd) in &b {
                let od = &a[name];
                match (od.denied(), nd.denied()) {
                    (true, false) => diff.added.push(label(abi, name)),
                    (false, true) => diff.removed.push(label(abi, name)),
                    (true, true) => {}
                    (false, false) => {
                        if !nd.upper.within(&od.lower) {
                            diff.widened.push(change(abi, name, nd, od));
                        } else if !od.upper.within(&nd.lower) {
                            diff.narrowed.push(change(abi, name, od, nd));
                        }
                    }
                }
            }
        }
        if new.default_act().may_run() && !old.default_act().runs() {
            diff.added.push("(unlisted syscalls)".into());
        }
        diff
    }
}

/// What `more` allows that `less` doesn't, in words.
fn beyond(more: &Decision, less: &Decision) -> String {
    let beyond = more
        .upper
        .minus(&less.lower)
        .unwrap_or_else(|| more.upper.clone());
    describe(&beyond)
}

/// Why profiles can't be merged without `--force`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{first} and {other} differ in {what} ({a} vs {b}); merging would change what one of them means (use --force to merge anyway, keeping the first's)"
)]
pub struct MergeConflict {
    pub first: String,
    pub other: String,
    pub what: &'static str,
    pub a: String,
    pub b: String,
}

impl Profile {
    /// The union of what `inputs` (named for messages) allow, with rules in an order that
    /// means the union under runc: allow rules first, then the deny rules of names no input
    /// allows in any form (a deny kept before an allow would win). Inputs must agree on the
    /// default action and the architectures unless `force`; then the first one's are kept.
    pub fn merge(inputs: &[(String, Profile)], force: bool) -> Result<Profile, MergeConflict> {
        let Some((first_name, first)) = inputs.first() else {
            return Ok(Profile::allowing([], &BTreeSet::new()));
        };
        if !force {
            for (name, p) in &inputs[1..] {
                let conflict = |what, a: String, b: String| MergeConflict {
                    first: first_name.clone(),
                    other: name.clone(),
                    what,
                    a,
                    b,
                };
                // An absent defaultErrnoRet is EPERM to runc: the same as 1.
                if p.default_act() != first.default_act() {
                    let show = |p: &Profile| match p.default_act() {
                        Action::Errno(e) => format!("{} errno {e}", p.default_action),
                        _ => p.default_action.clone(),
                    };
                    return Err(conflict("default action", show(first), show(p)));
                }
                // What the filters check on any host, not how they name it (an arm64 host
                // covers aarch64 whether a profile lists it or not).
                let covered = |p: &Profile| decided_abis(p).collect::<Vec<_>>();
                if covered(p) != covered(first) {
                    let show = |p: &Profile| {
                        covered(p)
                            .iter()
                            .map(|a| a.seccomp_arch())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    return Err(conflict("architectures", show(first), show(p)));
                }
            }
        }
        let mut out = first.clone();
        out.syscalls.clear();
        if force {
            // The first input's architectures, named one way (moby refuses both).
            if !out.architectures.is_empty() {
                out.architectures = out.abis().iter().map(|a| a.seccomp_arch().into()).collect();
                out.arch_map.clear();
            }
        } else {
            merge_arches(&mut out, inputs);
        }
        let default = first.default_act();
        let mut plain: BTreeSet<String> = BTreeSet::new();
        let mut allows: Vec<Rule> = Vec::new();
        let mut denies: Vec<Rule> = Vec::new();
        for (_, p) in inputs {
            for flag in &p.flags {
                if !out.flags.contains(flag) {
                    out.flags.push(flag.clone());
                }
            }
            for rule in &p.syscalls {
                let action = rule.act();
                if action == default {
                    continue;
                }
                if rule.is_plain_allow() {
                    plain.extend(rule.all_names().cloned());
                } else if action.may_run() {
                    if !allows.contains(rule) {
                        allows.push(rule.clone());
                    }
                } else if !denies.contains(rule) {
                    denies.push(rule.clone());
                }
            }
        }
        let keep = |rule: &mut Rule, drop: &dyn Fn(&str) -> bool| {
            let mut names: Vec<String> = rule.all_names().cloned().collect();
            names.retain(|n| !drop(n));
            rule.name = None;
            rule.names = names;
            !rule.names.is_empty()
        };
        // A deny rule gives up the names an allow rule can apply together with it.
        denies.retain_mut(|d| {
            let overlapping: BTreeSet<String> = d
                .all_names()
                .filter(|n| {
                    plain.contains(*n)
                        || allows
                            .iter()
                            .any(|a| !exclusive(a, d) && a.all_names().any(|m| m == *n))
                })
                .cloned()
                .collect();
            keep(d, &|n: &str| overlapping.contains(n))
        });
        allows.retain_mut(|r| keep(r, &|n: &str| plain.contains(n)));
        if !plain.is_empty() {
            out.syscalls.push(Rule::allow(plain));
        }
        out.syscalls.extend(allows);
        out.syscalls.extend(denies);
        Ok(out)
    }
}

/// Whether no container can have both rules applied (one includes what the other excludes).
fn exclusive(a: &Rule, b: &Rule) -> bool {
    let one_way = |x: &Rule, y: &Rule| {
        x.includes.caps.iter().any(|c| y.excludes.caps.contains(c))
            || x.includes
                .arches
                .iter()
                .any(|c| y.excludes.arches.contains(c))
            || (x.includes.min_kernel.is_some() && x.includes.min_kernel == y.excludes.min_kernel)
    };
    one_way(a, b) || one_way(b, a)
}

/// One way of naming the architectures: moby refuses a profile with both `archMap` and
/// `architectures`. Arch maps merge entry by entry; when any input lists architectures, the
/// maps are expanded as Docker does on this (x86_64) host.
fn merge_arches(out: &mut Profile, inputs: &[(String, Profile)]) {
    let any_list = inputs.iter().any(|(_, p)| !p.architectures.is_empty());
    let all_maps = inputs.iter().all(|(_, p)| !p.arch_map.is_empty());
    if all_maps && !any_list {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for (_, p) in inputs {
            for e in &p.arch_map {
                if !map.contains_key(&e.architecture) {
                    order.push(e.architecture.clone());
                }
                let subs = map.entry(e.architecture.clone()).or_default();
                for s in &e.sub_architectures {
                    if !subs.contains(s) {
                        subs.push(s.clone());
                    }
                }
            }
        }
        out.architectures.clear();
        out.arch_map = order
            .into_iter()
            .map(|a| ArchMap {
                sub_architectures: map.remove(&a).unwrap_or_default(),
                architecture: a,
            })
            .collect();
        return;
    }
    let abis: BTreeSet<Abi> = inputs.iter().flat_map(|(_, p)| p.abis()).collect();
    out.arch_map.clear();
    out.architectures = abis.iter().map(|a| a.seccomp_arch().to_string()).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::model::{Arg, Op};
    use std::path::Path;

    use crate::seccomp::resolve::test_context as ctx;

    fn fixture(name: &str) -> Profile {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        Profile::parse(&text, &path).unwrap()
    }

    fn simple(names: &[&str]) -> Profile {
        Profile::allowing(names.iter().copied(), &BTreeSet::from([Abi::X86_64]))
    }

    #[test]
    fn within_is_exact_on_arguments() {
        let default = Profile::docker_default();
        assert!(default.widenings(&default, &ctx()).is_empty());
        let wide = fixture("socket-all-but-vsock.json");
        let w = wide.widenings(&default, &ctx());
        // On an arm64 host too: the native ABI is always covered, and named as x86_64's is.
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].syscall, "socket");
        assert_eq!(w[1].syscall, "socket (aarch64)");
        assert!(w[0].beyond.contains("0x26"), "{}", w[0].beyond); // AF_ALG
        // Learned rules inside the default's are within it.
        let mut learned = simple(&["read"]);
        learned.syscalls.push(Rule {
            args: vec![
                Arg::eq(0, 2),
                Arg {
                    index: 1,
                    value: 0xf,
                    value_two: 1,
                    op: Op::MaskedEq,
                },
            ],
            ..Rule::allow(["socket".to_string()])
        });
        assert!(learned.widenings(&default, &ctx()).is_empty());
        // clone3, unconditionally allowed, is wider than the default's ENOSYS.
        let clone3 = simple(&["clone3", "read"]);
        let w = clone3.widenings(&default, &ctx());
        assert_eq!(w[0].syscall, "clone3");
        // ... and within for a container with CAP_SYS_ADMIN.
        let admin = Context::with_caps(&["SYS_ADMIN".into()], &[]).unwrap();
        assert!(clone3.widenings(&default, &admin).is_empty());
    }

    #[test]
    fn diff_sees_argument_changes() {
        let default = Profile::docker_default();
        let wide = fixture("socket-all-but-vsock.json");
        let d = Diff::between(&default, &wide, &ctx());
        assert!(d.allows_more());
        // Docker's default is meant for arm64 too: both sides compared there, each named.
        let widened: Vec<&str> = d.widened.iter().map(|w| w.syscall.as_str()).collect();
        assert_eq!(widened, ["socket", "socket (aarch64)"]);
        // The old clone mask lets CLONE_NEWCGROUP through.
        let mut old_clone = default.clone();
        for r in &mut old_clone.syscalls {
            for a in &mut r.args {
                if a.value == 0x7E02_0000 {
                    a.value = 0x7C02_0000;
                }
            }
        }
        let d = Diff::between(&default, &old_clone, &ctx());
        // On each of the four ABIs the default covers.
        assert_eq!(d.widened.len(), 4, "{d:?}");
        assert_eq!(d.widened[0].syscall, "clone");
        assert!(d.widened[0].beyond.contains("0x2000000"), "{d:?}");
        let back = Diff::between(&old_clone, &default, &ctx());
        assert!(!back.allows_more());
        assert_eq!(back.narrowed[0].syscall, "clone");
        // Two x86_64 profiles: compared on amd64 alone.
        let d = Diff::between(&simple(&["read"]), &simple(&["read", "mkdir"]), &ctx());
        assert_eq!(d.added, ["mkdir"]);
    }

    #[test]
    fn merge_orders_rules_for_the_union() {
        let deny = ("d".to_string(), fixture("deny-ptrace-enosys.json"));
        let allow = ("a".to_string(), fixture("allow-ptrace-minkernel.json"));
        let m = Profile::merge(&[deny.clone(), allow.clone()], false).unwrap();
        assert!(
            m.allowed(Abi::X86_64, &ctx()).contains_key("ptrace"),
            "{m:?}"
        );
        for (_, p) in [&deny, &allow] {
            assert!(p.widenings(&m, &ctx()).is_empty());
        }
        assert!(
            m.widenings_beyond_union(&[&deny.1, &allow.1], &ctx())
                .is_empty()
        );
        assert!(
            !simple(&["mkdir"])
                .widenings_beyond_union(&[&deny.1], &ctx())
                .is_empty()
        );
        let m = Profile::merge(&[allow, deny], false).unwrap();
        assert!(m.allowed(Abi::X86_64, &ctx()).contains_key("ptrace"));
    }

    #[test]
    fn merge_unions_learned_values() {
        let mut a = simple(&["read"]);
        let mut b = simple(&["read"]);
        for (p, family) in [(&mut a, 2), (&mut b, 10)] {
            p.syscalls.push(Rule {
                args: vec![Arg::eq(0, family)],
                ..Rule::allow(["socket".to_string()])
            });
        }
        let m = Profile::merge(&[("a".into(), a.clone()), ("b".into(), b.clone())], false).unwrap();
        let d = &m.decisions(Abi::X86_64, &ctx())["socket"];
        for family in [2, 10] {
            assert!(super::super::conditions::rule_region(&[Arg::eq(0, family)]).within(&d.lower));
        }
        assert!(!super::super::conditions::rule_region(&[Arg::eq(0, 17)]).within(&d.upper));
        assert!(m.widenings_beyond_union(&[&a, &b], &ctx()).is_empty());
        let diff = Diff::between(&a, &m, &ctx());
        assert_eq!(diff.widened.len(), 1);
        assert_eq!(diff.widened[0].beyond, "arg0 in {0xa}");
    }

    #[test]
    fn merge_keeps_one_way_of_naming_arches() {
        let a = ("a".to_string(), fixture("archmap-only.json"));
        let b = ("b".to_string(), fixture("architectures-only.json"));
        let m = Profile::merge(&[a.clone(), b], true).unwrap();
        assert!(m.arch_map.is_empty() != m.architectures.is_empty(), "{m:?}");
        let m = Profile::merge(&[a.clone(), a], false).unwrap();
        assert!(m.architectures.is_empty() && !m.arch_map.is_empty());
    }

    #[test]
    fn an_absent_default_errno_is_eperm() {
        let mut a = simple(&["read"]);
        a.default_errno_ret = None;
        let b = simple(&["write"]);
        let m = Profile::merge(&[("a".into(), a), ("b".into(), b)], false).unwrap();
        assert_eq!(m.allowed(Abi::X86_64, &ctx()).len(), 2);
    }

    #[test]
    fn merge_is_a_union_and_refuses_mismatches() {
        let a = ("a".to_string(), simple(&["read", "write"]));
        let b = ("b".to_string(), simple(&["write", "mkdir"]));
        let m = Profile::merge(&[a.clone(), b.clone()], false).unwrap();
        assert_eq!(m, simple(&["mkdir", "read", "write"]));
        let log = ("log".to_string(), simple(&["read"]).logging());
        let err = Profile::merge(&[a.clone(), log.clone()], false).unwrap_err();
        assert_eq!(err.what, "default action");
        assert!(err.to_string().contains("--force"), "{err}");
        let forced = Profile::merge(&[a.clone(), log], true).unwrap();
        assert_eq!(forced.default_action, "SCMP_ACT_ERRNO");
        let i386 = (
            "i386".to_string(),
            Profile::allowing(["read"], &BTreeSet::from([Abi::X86_64, Abi::I386])),
        );
        assert_eq!(
            Profile::merge(&[a, i386], false).unwrap_err().what,
            "architectures"
        );
    }

    #[test]
    fn docker_default_merged_with_itself_is_itself_under_any_caps() {
        let d = ("d".to_string(), Profile::docker_default());
        let twice = Profile::merge(&[d.clone(), d], false).unwrap();
        let all = Context::with_caps(&["ALL".into()], &[]).unwrap();
        for ctx in [ctx(), all] {
            for abi in Abi::ALL {
                assert_eq!(
                    twice.decisions(abi, &ctx),
                    Profile::docker_default().decisions(abi, &ctx),
                    "{abi}"
                );
            }
        }
    }
}
