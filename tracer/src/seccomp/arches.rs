//! One profile for several platforms: what an x86_64 profile needs on arm64 (the aarch64
//! calls the same operations make there), added in rules Docker keeps only on arm64, so the
//! amd64 side allows exactly what it did; and the one-platform profiles formats without
//! per-platform rules get.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    conditions::{ArgBox, Region},
    learn::bound_rules,
    model::{Profile, Rule},
    resolve::Context,
};
use crate::names::{
    Abi, Arch,
    counterparts::{self, OnAarch64},
};

/// What a profile gained for one platform it was not observed on, name by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Derivation {
    pub arch: Option<Arch>,
    /// aarch64 calls now allowed for x86_64 ones the profile allows.
    pub derived: Vec<Derived>,
    /// x86_64 calls the profile allows that have no counterpart there, with why.
    pub without_counterpart: Vec<Derived>,
    /// Counterparts the bound denies on that platform: not added.
    pub denied_by_bound: Vec<String>,
}

/// One x86_64 call and what it became on the other platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Derived {
    pub from: String,
    pub to: Vec<String>,
    pub why: String,
}

/// The words every report of a derived profile carries.
pub const VERIFY_ADVICE: &str = "derived, not observed: verify the profile on that architecture (profile verify works there unchanged) or soak it there in complain mode (--default-action log, then profile absorb) before enforcing it";

/// The comment on the rules Docker keeps only on arm64.
const DERIVED_COMMENT: &str =
    "arm64: what the x86_64 calls above become there (derived, not observed)";

impl Profile {
    /// This profile (learned on amd64) for every platform in `arches`: the amd64 side stays
    /// exactly as it is, and for arm64 the aarch64 counterparts of what it allows on x86_64
    /// are added in rules with `includes.arches: ["arm64"]`, within what `bound` allows there
    /// for a container with `ctx`. Arguments carry over where they mean the same, move where
    /// the counterpart takes them elsewhere (`open`'s flags are `openat`'s arg 2).
    pub fn for_arches(
        &self,
        arches: &BTreeSet<Arch>,
        bound: &Profile,
        ctx: &Context,
    ) -> (Profile, Vec<Derivation>) {
        let mut p = self.clone();
        let mut out = Vec::new();
        if arches.contains(&Arch::Arm64) {
            out.push(p.add_arm64(bound, ctx));
        }
        (p, out)
    }

    fn add_arm64(&mut self, bound: &Profile, ctx: &Context) -> Derivation {
        let mut why = Derivation {
            arch: Some(Arch::Arm64),
            ..Derivation::default()
        };
        let arch = Abi::Aarch64.seccomp_arch().to_string();
        if !self.architectures.is_empty() && !self.architectures.contains(&arch) {
            self.architectures.push(arch);
        }
        let x86 = self.decisions(Abi::X86_64, ctx);
        let mut want: BTreeMap<&'static str, Region> = BTreeMap::new();
        for (name, d) in x86.iter().filter(|(_, d)| !d.lower.is_empty()) {
            match counterparts::on_aarch64(name) {
                Some(OnAarch64::Replaced(row)) => {
                    for c in row.aarch64 {
                        widen(&mut want, c.name, moved(&d.lower, c.args));
                    }
                    let line = Derived {
                        from: name.to_string(),
                        to: row.aarch64.iter().map(|c| c.name.to_string()).collect(),
                        why: row.why.to_string(),
                    };
                    match row.aarch64 {
                        [] => why.without_counterpart.push(line),
                        _ => why.derived.push(line),
                    }
                }
                Some(OnAarch64::Moved(m)) if !stays(&d.lower, m.args) => {
                    // The shared rule would test other arguments on aarch64: amd64 keeps it.
                    self.keep_on_amd64(name);
                    widen(&mut want, name, moved(&d.lower, m.args));
                    why.derived.push(Derived {
                        from: name.to_string(),
                        to: vec![name.to_string()],
                        why: m.why.to_string(),
                    });
                }
                _ => {}
            }
        }
        let base = bound.decisions(Abi::Aarch64, ctx);
        let have = self.decisions(Abi::Aarch64, ctx);
        let resolved = bound.resolve(&ctx.on(Arch::Arm64));
        let mut plain: BTreeSet<String> = BTreeSet::new();
        let mut conditional: Vec<Rule> = Vec::new();
        for (name, region) in want {
            let lower = base
                .get(name)
                .map_or_else(Region::empty, |d| d.lower.clone());
            let cut = region.intersect(&lower);
            if cut.is_empty() {
                why.denied_by_bound.push(name.to_string());
                continue;
            }
            if have.get(name).is_some_and(|h| cut.within(&h.lower)) {
                continue;
            }
            if cut.is_all() {
                plain.insert(name.to_string());
            } else if region.is_all() {
                conditional.extend(bound_rules(name, &resolved, &cut));
            } else {
                for b in cut.boxes() {
                    conditional.extend(b.to_rules().into_iter().map(|args| Rule {
                        args,
                        ..Rule::allow([name.to_string()])
                    }));
                }
            }
        }
        let mut rules: Vec<Rule> = Vec::new();
        if !plain.is_empty() {
            rules.push(Rule::allow(plain));
        }
        rules.extend(conditional);
        if rules.is_empty() {
            return why;
        }
        for r in &mut rules {
            r.includes.arches = vec![Arch::Arm64.go_name().to_string()];
            r.comment = Some(DERIVED_COMMENT.into());
        }
        let allowed: BTreeSet<String> = rules.iter().flat_map(|r| r.names.clone()).collect();
        for name in &allowed {
            self.keep_denial_on_amd64(name);
        }
        // Allow rules go before deny rules: under runc the first unconditional rule decides.
        let at = self
            .syscalls
            .iter()
            .position(|r| !r.act().may_run())
            .unwrap_or(self.syscalls.len());
        self.syscalls.splice(at..at, rules);
        why
    }

    /// Moves `name` out of every rule with argument conditions into a copy Docker keeps on
    /// amd64 only.
    fn keep_on_amd64(&mut self, name: &str) {
        self.split_off(name, |r| !r.args.is_empty());
    }

    /// Moves `name` out of every unconditional deny rule into a copy Docker keeps on amd64
    /// only, so that an arm64 allow rule for it is not overruled there.
    fn keep_denial_on_amd64(&mut self, name: &str) {
        self.split_off(name, |r| r.args.is_empty() && !r.act().may_run());
    }

    fn split_off(&mut self, name: &str, pick: impl Fn(&Rule) -> bool) {
        let mut out = Vec::with_capacity(self.syscalls.len());
        for mut rule in std::mem::take(&mut self.syscalls) {
            let everywhere = rule.includes.arches.is_empty() && rule.excludes.arches.is_empty();
            if !everywhere || !pick(&rule) || !rule.all_names().any(|n| n == name) {
                out.push(rule);
                continue;
            }
            let mut amd64 = rule.clone();
            amd64.name = None;
            amd64.names = vec![name.to_string()];
            amd64.includes.arches = vec![Arch::Amd64.go_name().to_string()];
            rule.names.retain(|n| n != name);
            if rule.name.as_deref() == Some(name) {
                rule.name = None;
            }
            if rule.all_names().next().is_some() {
                out.push(rule);
            }
            out.push(amd64);
        }
        self.syscalls = out;
    }

    /// This profile as the runtime on `arch` receives it: rules resolved for that platform,
    /// only its ABIs listed, and only names they know (libseccomp skips the others there);
    /// what formats without per-platform rules are written as, one file per platform.
    pub fn for_arch(&self, arch: Arch, ctx: &Context) -> Profile {
        let mut p = self.resolve(&ctx.on(arch));
        let abis: Vec<Abi> = arch
            .abis()
            .iter()
            .copied()
            .filter(|abi| self.covers(*abi))
            .collect();
        p.architectures = abis
            .iter()
            .map(|abi| abi.seccomp_arch().to_string())
            .collect();
        p.arch_map.clear();
        for rule in &mut p.syscalls {
            let names: Vec<String> = rule.all_names().cloned().collect();
            rule.name = None;
            rule.names = names
                .into_iter()
                .filter(|n| abis.iter().any(|abi| abi.knows(n)))
                .collect();
        }
        p.syscalls.retain(|r| !r.names.is_empty());
        p
    }

    /// One profile without per-platform rules for every platform this one is meant for:
    /// each platform's rules apply on all of them (x86_64 then allows what aarch64 needs).
    pub fn arch_union(&self, ctx: &Context) -> Profile {
        let arches = self.arches();
        let architectures: Vec<String> = arches
            .iter()
            .flat_map(|arch| arch.abis().iter())
            .filter(|abi| self.covers(**abi))
            .map(|abi| abi.seccomp_arch().to_string())
            .collect();
        let parts: Vec<(String, Profile)> = arches
            .iter()
            .map(|arch| {
                let mut p = self.for_arch(*arch, ctx);
                p.architectures = architectures.clone();
                (arch.to_string(), p)
            })
            .collect();
        // Same default action and architectures by construction: no conflict to refuse.
        Profile::merge(&parts, true).unwrap_or_else(|_| self.resolve(ctx))
    }
}

/// Adds `region` to what `name` should allow.
fn widen(want: &mut BTreeMap<&'static str, Region>, name: &'static str, region: Region) {
    let all = match want.remove(name) {
        Some(before) => before.union(&region),
        None => region,
    };
    want.insert(name, all);
}

/// Whether conditions on `region` test only arguments that stay in place under `args`.
fn stays(region: &Region, args: &[(u32, u32)]) -> bool {
    region.boxes().iter().all(|b| {
        b.0.iter().enumerate().all(|(i, set)| {
            set.is_all()
                || args
                    .iter()
                    .any(|(from, to)| *from == i as u32 && from == to)
        })
    })
}

/// `region` with each argument moved to its place under `args`; conditions on arguments
/// without a place are dropped (the bound still cuts what is allowed).
fn moved(region: &Region, args: &[(u32, u32)]) -> Region {
    Region::of(region.boxes().iter().map(|b| {
        let mut out = ArgBox::all();
        for (from, to) in args {
            if let (Some(set), Some(slot)) = (b.0.get(*from as usize), out.0.get_mut(*to as usize))
            {
                *slot = set.clone();
            }
        }
        out
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::SyscallId;
    use crate::seccomp::{
        Action, LearnArgs, Observation, conditions::rule_region, learn, model::Arg,
        resolve::test_context as ctx,
    };

    const BOTH: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    /// What a busybox-like workload learns on x86_64 under Docker's default.
    fn learned() -> Profile {
        let mut o = Observation::default();
        for name in [
            "arch_prctl",
            "clone",
            "clone3",
            "execve",
            "exit_group",
            "getdents64",
            "open",
            "poll",
            "read",
            "readlink",
            "socket",
            "stat",
            "write",
            "lstat",
        ] {
            let nr = name.parse::<syscalls::x86_64::Sysno>().unwrap().id() as u32;
            o.calls.insert(
                SyscallId {
                    abi: Abi::X86_64,
                    nr,
                },
                1,
            );
        }
        o.args.insert(
            SyscallId {
                abi: Abi::X86_64,
                nr: 41,
            },
            learn::ArgValues {
                tuples: [[2u64, 1u64]].into(),
                overflowed: false,
            },
        );
        learn::learn(&o, &Profile::docker_default(), &ctx(), LearnArgs::Default).profile
    }

    fn within(args: &[Arg], region: &Region) -> bool {
        rule_region(args).within(region)
    }

    #[test]
    fn arm64_gets_the_counterparts_and_amd64_stays_as_it_was() {
        let default = Profile::docker_default();
        let single = learned();
        let (multi, why) = single.for_arches(&BOTH.into(), &default, &ctx());
        for abi in [Abi::X86_64, Abi::X32, Abi::I386] {
            assert_eq!(
                multi.decisions(abi, &ctx()),
                single.decisions(abi, &ctx()),
                "{abi}"
            );
        }
        assert!(multi.widenings(&default, &ctx()).is_empty(), "{multi:#?}");
        assert_eq!(multi.arches(), BOTH.into());
        let arm = multi.decisions(Abi::Aarch64, &ctx());
        for name in [
            "openat",
            "newfstatat",
            "getdents64",
            "ppoll",
            "readlinkat",
            "read",
        ] {
            assert!(arm[name].all(), "{name}");
        }
        for name in ["mkdirat", "unlinkat", "pselect6", "clone3", "unshare"] {
            assert!(arm[name].denied(), "{name}");
        }
        assert!(!arm.contains_key("arch_prctl"));
        assert_eq!(arm["clone3"].outright, Some(Action::Errno(38)));
        // The learned socket rule and the bound's clone mask hold there too.
        assert!(within(
            &[Arg::eq(0, 2), Arg::eq(1, 1)],
            &arm["socket"].lower
        ));
        assert!(!within(&[Arg::eq(0, 16)], &arm["socket"].upper));
        assert!(!within(&[Arg::eq(0, 0x1000_0011)], &arm["clone"].upper));
        // Without arm64 asked for, x86_64 alone: nothing changes.
        let (same, none) = single.for_arches(&[Arch::Amd64].into(), &default, &ctx());
        assert_eq!((same, none.len()), (single.clone(), 0));
        let d = &why[0];
        let from: Vec<(&str, Vec<&str>)> = d
            .derived
            .iter()
            .map(|l| (l.from.as_str(), l.to.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            from,
            [
                ("lstat", vec!["newfstatat"]),
                ("open", vec!["openat"]),
                ("poll", vec!["ppoll"]),
                ("readlink", vec!["readlinkat"]),
                ("stat", vec!["newfstatat"]),
                // Allowed whether observed or not (the vDSO's).
                ("time", vec!["clock_gettime"]),
            ]
        );
        assert_eq!(d.without_counterpart[0].from, "arch_prctl");
        assert!(d.denied_by_bound.is_empty());
    }

    #[test]
    fn derived_names_are_kept_by_docker_on_arm64_only() {
        let (multi, _) = learned().for_arches(&BOTH.into(), &Profile::docker_default(), &ctx());
        let json = multi.to_json().unwrap();
        assert!(json.contains("\"SCMP_ARCH_AARCH64\""), "{json}");
        let arm: Vec<&Rule> = multi
            .syscalls
            .iter()
            .filter(|r| r.includes.arches == ["arm64"])
            .collect();
        assert_eq!(arm.len(), 1, "{arm:#?}");
        assert_eq!(
            arm[0].names,
            ["newfstatat", "openat", "ppoll", "readlinkat"]
        );
        // Before the deny rules, so that no unconditional deny overrules them.
        let first_deny = multi
            .syscalls
            .iter()
            .position(|r| !r.act().may_run())
            .unwrap();
        let arm_at = multi
            .syscalls
            .iter()
            .position(|r| !r.includes.arches.is_empty())
            .unwrap();
        assert!(arm_at < first_deny);
        // ppoll is an x86_64 call too: on amd64 it stays denied.
        assert!(multi.decisions(Abi::X86_64, &ctx())["ppoll"].denied());
    }

    #[test]
    fn arguments_move_with_their_counterparts() {
        let all: Profile = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let mut single = Profile::allowing(["read"], &[Abi::X86_64].into());
        // open for O_RDONLY only; clone with a condition on child_tid, arg 4 on aarch64.
        single.syscalls.push(Rule {
            args: vec![Arg::eq(1, 0)],
            ..Rule::allow(["open".into()])
        });
        single.syscalls.push(Rule {
            args: vec![Arg::eq(3, 0)],
            ..Rule::allow(["clone".into()])
        });
        let (multi, why) = single.for_arches(&BOTH.into(), &all, &ctx());
        let arm = multi.decisions(Abi::Aarch64, &ctx());
        assert!(within(&[Arg::eq(2, 0)], &arm["openat"].lower));
        assert!(!within(&[Arg::eq(2, 1)], &arm["openat"].upper));
        assert!(within(&[Arg::eq(4, 0)], &arm["clone"].lower));
        assert!(!within(
            &[Arg::eq(3, 0), Arg::eq(4, 1)],
            &arm["clone"].upper
        ));
        for abi in [Abi::X86_64, Abi::X32, Abi::I386] {
            assert_eq!(
                multi.decisions(abi, &ctx()),
                single.decisions(abi, &ctx()),
                "{abi}"
            );
        }
        assert!(
            why[0]
                .derived
                .iter()
                .any(|d| d.from == "clone" && d.why.contains("BACKWARDS"))
        );
    }

    #[test]
    fn an_x86_denial_does_not_overrule_an_arm64_counterpart() {
        let all: Profile = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let mut single = Profile::allowing(["poll"], &[Abi::X86_64].into());
        single.syscalls.push(Rule::with_action(
            ["ppoll".into(), "read".into()],
            Action::Errno(38),
        ));
        let (multi, _) = single.for_arches(&BOTH.into(), &all, &ctx());
        assert!(multi.decisions(Abi::Aarch64, &ctx())["ppoll"].all());
        assert!(multi.decisions(Abi::Aarch64, &ctx())["read"].denied());
        assert_eq!(
            multi.decisions(Abi::X86_64, &ctx()),
            single.decisions(Abi::X86_64, &ctx())
        );
    }

    #[test]
    fn one_platform_each_or_their_union() {
        let default = Profile::docker_default();
        let (multi, _) = learned().for_arches(&BOTH.into(), &default, &ctx());
        let arm = multi.for_arch(Arch::Arm64, &ctx());
        assert_eq!(arm.architectures, ["SCMP_ARCH_AARCH64"]);
        assert!(arm.syscalls.iter().all(|r| r.is_unconditional()));
        assert_eq!(arm.arches(), [Arch::Arm64].into());
        assert!(arm.unknown_names(&arm.abis()).is_empty(), "{arm:#?}");
        assert_eq!(
            arm.decisions(Abi::Aarch64, &ctx()),
            multi.decisions(Abi::Aarch64, &ctx())
        );
        let amd = multi.for_arch(Arch::Amd64, &ctx());
        assert_eq!(amd.architectures, ["SCMP_ARCH_X86_64"]);
        assert_eq!(
            amd.decisions(Abi::X86_64, &ctx()),
            learned().decisions(Abi::X86_64, &ctx())
        );
        // The union allows each platform's calls on both: ppoll on x86_64 too.
        let union = multi.arch_union(&ctx());
        assert_eq!(
            union.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
        );
        assert!(union.decisions(Abi::X86_64, &ctx())["ppoll"].all());
        assert!(union.decisions(Abi::Aarch64, &ctx())["ppoll"].all());
        assert!(union.widenings(&default, &ctx()).is_empty());
    }
}
