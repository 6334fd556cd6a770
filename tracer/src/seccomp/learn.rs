//! From what a workload did to the smallest profile within a bound: every observed call the
//! bound allows, for exactly the argument values observed where arguments are learned, and
//! the bound's own conditions everywhere else. Nothing the bound forbids is ever emitted.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    conditions::{ArgBox, Cube, Region, ValueSet},
    eval::Decision,
    model::{Action, EPERM, Profile, Rule},
    resolve::Context,
};
use crate::names::{Abi, SyscallId};

/// Calls every generated profile allows, observed or not, with why.
pub const ALWAYS_ALLOWED: &[(&str, &str)] = &[
    (
        "rt_sigreturn",
        "returns from a signal handler: denying it turns any handled signal into a crash, and the runtime's own code receives signals at random moments",
    ),
    (
        "sched_yield",
        "gives up the CPU: a Go runtime's scheduler (runc's init runs under the filter) and spinning locks call it only when threads happen to contend",
    ),
    (VDSO_CLOCK[0], VDSO_WHY),
    (VDSO_CLOCK[1], VDSO_WHY),
    (VDSO_CLOCK[2], VDSO_WHY),
    (VDSO_CLOCK[3], VDSO_WHY),
    (VDSO_CLOCK[4], VDSO_WHY),
];

/// The calls the vDSO answers in user space, so that training rarely sees them.
pub const VDSO_CLOCK: [&str; 5] = [
    "clock_getres",
    "clock_gettime",
    "getcpu",
    "gettimeofday",
    "time",
];

const VDSO_WHY: &str = "answered by the vDSO without entering the kernel, so training rarely sees such a call; where the vDSO can't read the clock (some hypervisors' clock sources, vdso=0, a clock source changed at run time) every clock read becomes a real syscall";

/// How many rules one syscall's learned argument values may become before the bound's rule
/// is used instead.
const MAX_RULES_PER_SYSCALL: usize = 64;

/// Which arguments are learned for a syscall: (argument index, mask applied to the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    pub name: &'static str,
    /// x86_64 number, as the kernel side matches it.
    pub nr: u32,
    pub args: &'static [(u32, u64)],
    /// Learned only with `--learn-args strict`.
    pub strict: bool,
}

pub use tracer_common::SOCK_TYPE_MASK;

impl ArgSpec {
    /// A learned value tuple in words: `AF_INET, SOCK_STREAM`.
    pub fn words(&self, values: [u64; 2]) -> String {
        self.args
            .iter()
            .enumerate()
            .map(|(slot, (index, mask))| {
                super::words::value_word(self.name, *index, values[slot] & mask)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The syscalls whose arguments can be learned, in the order of the kernel side's kinds
/// (`tracer_common::ARG_SOCKET` ...).
pub const ARG_SPECS: &[ArgSpec] = &[
    ArgSpec {
        name: "socket",
        nr: tracer_common::NR_SOCKET as u32,
        args: &[(0, u64::MAX), (1, SOCK_TYPE_MASK)],
        strict: false,
    },
    ArgSpec {
        name: "personality",
        nr: tracer_common::NR_PERSONALITY as u32,
        args: &[(0, u64::MAX)],
        strict: false,
    },
    ArgSpec {
        name: "ioctl",
        nr: tracer_common::NR_IOCTL as u32,
        args: &[(1, u64::MAX)],
        strict: true,
    },
    ArgSpec {
        name: "prctl",
        nr: tracer_common::NR_PRCTL as u32,
        args: &[(0, u64::MAX)],
        strict: true,
    },
];

impl ArgSpec {
    pub fn of(name: &str) -> Option<&'static ArgSpec> {
        ARG_SPECS.iter().find(|s| s.name == name)
    }

    pub fn syscall_id(&self) -> SyscallId {
        SyscallId {
            abi: Abi::X86_64,
            nr: self.nr,
        }
    }

    /// The box of one recorded value tuple.
    pub fn region(&self, values: [u64; 2]) -> ArgBox {
        let mut b = ArgBox::all();
        for (slot, (index, mask)) in self.args.iter().enumerate() {
            b.0[*index as usize] = ValueSet::of([Cube {
                mask: *mask,
                value: values[slot] & mask,
            }]);
        }
        b
    }
}

/// Which arguments a training learns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LearnArgs {
    /// Learn no arguments: the bound's argument rules are kept as they are.
    None,
    /// socket's family and type, personality's persona.
    #[default]
    Default,
    /// Also ioctl's request and prctl's option.
    Strict,
}

impl LearnArgs {
    pub fn learns(self, spec: &ArgSpec) -> bool {
        match self {
            LearnArgs::None => false,
            LearnArgs::Default => !spec.strict,
            LearnArgs::Strict => true,
        }
    }
}

/// The argument values recorded for one syscall.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArgValues {
    pub tuples: BTreeSet<[u64; 2]>,
    /// More distinct values than the kernel keeps: the set is incomplete.
    pub overflowed: bool,
}

/// What a workload did, as the profile is learned from it.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub calls: BTreeMap<SyscallId, u64>,
    pub args: BTreeMap<SyscallId, ArgValues>,
    /// x86_64 calls the profile must allow whether or not they were observed, with why: the
    /// container runtime's tail (see [`crate::runtime`]).
    pub required: Vec<(&'static str, &'static str)>,
    /// Calls to allow though not observed (the ceilings of the programs that ran), on the ABIs
    /// calls were observed on, each with what the bound allows of it.
    pub ceiling: BTreeSet<SyscallId>,
}

/// One syscall whose arguments were learned, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LearnedArgs {
    pub syscall: String,
    /// Each allowed case in words (`AF_INET, SOCK_STREAM`).
    pub allowed: Vec<String>,
    /// Set when the values overflowed and the bound's rule was used instead.
    pub fell_back: bool,
}

/// A learned profile and what the report needs to say about how it was made.
#[derive(Clone, Debug)]
pub struct Learned {
    pub profile: Profile,
    /// Observed names the bound denies: not in the profile.
    pub denied_by_bound: Vec<String>,
    pub args: Vec<LearnedArgs>,
    /// Allowed though not observed, with why.
    pub always_allowed: Vec<(&'static str, &'static str)>,
    /// Every call allowed whether observed or not ([`ALWAYS_ALLOWED`] and the runtime's
    /// tail) that the profile allows, with why, sorted by name.
    pub required: Vec<(&'static str, &'static str)>,
}

impl Profile {
    /// The minimal profile allowing exactly `names` on the ABIs in `abis`; everything else EPERM.
    pub fn allowing<'a>(names: impl IntoIterator<Item = &'a str>, abis: &BTreeSet<Abi>) -> Self {
        let names: BTreeSet<&str> = names.into_iter().collect();
        let mut architectures: Vec<String> = abis.iter().map(|a| a.seccomp_arch().into()).collect();
        if architectures.is_empty() {
            architectures.push(Abi::X86_64.seccomp_arch().into());
        }
        Profile {
            default_action: super::model::ACT_ERRNO.into(),
            default_errno_ret: Some(EPERM),
            arch_map: Vec::new(),
            architectures,
            flags: Vec::new(),
            syscalls: if names.is_empty() {
                Vec::new()
            } else {
                vec![Rule::allow(names.into_iter().map(String::from))]
            },
        }
    }
}

/// Learns the profile of `obs` within `bound` for a container with `ctx`.
pub fn learn(obs: &Observation, bound: &Profile, ctx: &Context, learn_args: LearnArgs) -> Learned {
    let abis: BTreeSet<Abi> = obs.calls.keys().map(|id| id.abi).collect();
    let mut profile = Profile::allowing([], &abis);
    if let Action::Errno(_) | Action::Kill | Action::KillProcess | Action::KillThread =
        bound.default_act()
    {
        // Calls nobody listed fail as they would under the bound.
        profile.default_action = bound.default_action.clone();
        profile.default_errno_ret = bound.default_errno_ret;
    }
    let resolved = bound.resolve(ctx);
    let mut names: BTreeMap<&'static str, BTreeSet<Abi>> = BTreeMap::new();
    for id in obs.calls.keys() {
        if let Some(name) = id.abi.name(id.nr) {
            names.entry(name).or_default().insert(id.abi);
        }
    }
    let observed: BTreeSet<&'static str> = names.keys().copied().collect();
    for id in obs.ceiling.iter().filter(|id| abis.contains(&id.abi)) {
        if let Some(name) = id.abi.name(id.nr) {
            names.entry(name).or_default().insert(id.abi);
        }
    }
    let mut always_allowed: Vec<(&'static str, &'static str)> = Vec::new();
    let mut required: Vec<(&'static str, &'static str)> = Vec::new();
    if !names.is_empty() {
        for (name, why) in ALWAYS_ALLOWED {
            if !names.contains_key(name) {
                always_allowed.push((*name, *why));
            }
            required.push((*name, *why));
            names.entry(name).or_default().extend(abis.iter().copied());
        }
        for (name, why) in obs.required.iter().filter(|_| abis.contains(&Abi::X86_64)) {
            if required.iter().any(|(n, _)| n == name) {
                continue;
            }
            if !names.contains_key(name) {
                always_allowed.push((*name, *why));
            }
            required.push((*name, *why));
            names.entry(name).or_default().insert(Abi::X86_64);
        }
    }
    let decisions: BTreeMap<Abi, BTreeMap<&'static str, Decision>> = abis
        .iter()
        .map(|abi| (*abi, bound.decisions(*abi, ctx)))
        .collect();
    let mut plain: BTreeSet<String> = BTreeSet::new();
    let mut conditional: Vec<Rule> = Vec::new();
    let mut denied_by_bound = Vec::new();
    let mut learned_args = Vec::new();
    for (name, on) in &names {
        // What the bound surely allows of this name on every ABI it was observed on.
        let mut lower = Region::all();
        for abi in on {
            if let Some(d) = decisions.get(abi).and_then(|m| m.get(name)) {
                lower = lower.intersect(&d.lower);
            }
        }
        if lower.is_empty() {
            if !observed.contains(name) {
                continue;
            }
            denied_by_bound.push(name.to_string());
            always_allowed.retain(|(n, _)| n != name);
            continue;
        }
        // A ceiling says which calls a program can make, not with which arguments: a call
        // in one gets the bound's rule, whatever arguments training happened to see.
        let in_ceiling = obs
            .ceiling
            .iter()
            .any(|id| id.abi.name(id.nr) == Some(*name));
        let spec = ArgSpec::of(name).filter(|s| learn_args.learns(s) && !in_ceiling);
        let values = spec.and_then(|s| {
            obs.args.get(&SyscallId {
                abi: Abi::X86_64,
                nr: s.nr,
            })
        });
        if let (Some(spec), Some(values)) = (spec, values)
            && on.iter().all(|a| *a == Abi::X86_64)
        {
            let rules = (!values.overflowed)
                .then(|| value_rules(spec, values, &lower))
                .flatten();
            learned_args.push(LearnedArgs {
                syscall: name.to_string(),
                allowed: values.tuples.iter().map(|t| spec.words(*t)).collect(),
                fell_back: rules.is_none(),
            });
            if let Some(rules) = rules {
                conditional.extend(rules);
                continue;
            }
        }
        if lower.is_all() {
            plain.insert(name.to_string());
        } else {
            conditional.extend(bound_rules(name, &resolved, &lower));
        }
    }
    if !plain.is_empty() {
        profile.syscalls.push(Rule::allow(plain.iter().cloned()));
    }
    conditional.sort_by(|a, b| (&a.names, &a.args).cmp(&(&b.names, &b.args)));
    profile.syscalls.extend(conditional);
    // The bound's explicit answers for calls it denies (clone3 → ENOSYS, so that glibc falls
    // back to clone) stay as they are, for names this profile doesn't allow.
    let allowed: BTreeSet<String> = profile
        .syscalls
        .iter()
        .flat_map(|r| r.all_names().cloned())
        .collect();
    let default = profile.default_act();
    for rule in &resolved.syscalls {
        let action = rule.act();
        if action.may_run() || action == default || !rule.args.is_empty() {
            continue;
        }
        let names: Vec<String> = rule
            .all_names()
            .filter(|n| !allowed.contains(*n) && abis.iter().any(|a| a.knows(n)))
            .cloned()
            .collect();
        if !names.is_empty() {
            profile.syscalls.push(Rule::with_action(names, action));
        }
    }
    required.retain(|(n, _)| !denied_by_bound.iter().any(|d| d == n));
    required.sort();
    always_allowed.sort();
    Learned {
        profile,
        denied_by_bound,
        args: learned_args,
        always_allowed,
        required,
    }
}

/// One rule per observed value tuple, each within `lower`; None when they would be too many.
fn value_rules(spec: &ArgSpec, values: &ArgValues, lower: &Region) -> Option<Vec<Rule>> {
    let mut rules = Vec::new();
    for tuple in &values.tuples {
        let learned = Region::of([spec.region(*tuple)]);
        let inside = if learned.within(lower) {
            learned
        } else {
            // Trained beyond the bound (e.g. under allow-all): keep only what it allows.
            learned.intersect(lower)
        };
        for args in inside.boxes().iter().flat_map(|b| b.to_rules()) {
            rules.push(Rule {
                args,
                ..Rule::allow([spec.name.to_string()])
            });
        }
        if rules.len() > MAX_RULES_PER_SYSCALL {
            return None;
        }
    }
    rules.dedup();
    Some(rules)
}

/// The bound's allow rules for `name`, each cut to what the bound surely allows.
pub(super) fn bound_rules(name: &str, resolved: &Profile, lower: &Region) -> Vec<Rule> {
    let mut out = Vec::new();
    for rule in &resolved.syscalls {
        if !rule.act().runs() || !rule.all_names().any(|n| n == name) {
            continue;
        }
        let region = super::conditions::rule_region(&rule.args);
        if region.within(lower) {
            out.push(Rule {
                args: rule.args.clone(),
                ..Rule::allow([name.to_string()])
            });
            continue;
        }
        for b in region.intersect(lower).boxes() {
            for args in b.to_rules() {
                out.push(Rule {
                    args,
                    ..Rule::allow([name.to_string()])
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::model::Arg;

    use crate::seccomp::resolve::test_context as ctx;

    fn obs(names: &[&str]) -> Observation {
        let mut o = Observation::default();
        for n in names {
            let nr = n.parse::<syscalls::x86_64::Sysno>().unwrap().id() as u32;
            o.calls.insert(
                SyscallId {
                    abi: Abi::X86_64,
                    nr,
                },
                1,
            );
        }
        o
    }

    fn args(o: &mut Observation, spec: &str, tuples: &[[u64; 2]], overflowed: bool) {
        let s = ArgSpec::of(spec).unwrap();
        o.args.insert(
            SyscallId {
                abi: Abi::X86_64,
                nr: s.nr,
            },
            ArgValues {
                tuples: tuples.iter().copied().collect(),
                overflowed,
            },
        );
    }

    #[test]
    fn learned_profiles_stay_within_docker_default() {
        let default = Profile::docker_default();
        let mut o = obs(&[
            "read",
            "clone",
            "clone3",
            "socket",
            "personality",
            "unshare",
            "mount",
        ]);
        args(&mut o, "socket", &[[2, 0x80001], [10, 2], [1, 1]], false);
        args(&mut o, "personality", &[[0xffff_ffff, 0]], false);
        let l = learn(&o, &default, &ctx(), LearnArgs::Default);
        let p = &l.profile;
        assert!(p.widenings(&default, &ctx()).is_empty(), "{p:#?}");
        assert_eq!(l.denied_by_bound, ["clone3", "mount", "unshare"]);
        let d = p.decisions(Abi::X86_64, &ctx());
        // clone keeps the namespace mask; clone3 gets ENOSYS (glibc falls back to clone).
        assert!(!d["clone"].all() && !d["clone"].denied());
        assert_eq!(d["clone3"].outright, Some(Action::Errno(38)));
        // socket: exactly the three families, any flags on the type.
        let sock = &d["socket"].lower;
        assert!(rule_region_of(&[Arg::eq(0, 2), Arg::eq(1, 1 | 0x80000)]).within(sock));
        assert!(!rule_region_of(&[Arg::eq(0, 17), Arg::eq(1, 3)]).within(sock)); // AF_PACKET
        assert!(!rule_region_of(&[Arg::eq(0, 2), Arg::eq(1, 3)]).within(sock)); // SOCK_RAW
        assert!(!rule_region_of(&[Arg::eq(0, 40)]).within(sock));
        // personality: only the query.
        assert!(!rule_region_of(&[Arg::eq(0, 0x0040000)]).within(&d["personality"].upper));
        assert!(d["rt_sigreturn"].all() && d["sched_yield"].all());
        assert_eq!(l.args.len(), 2);
        assert_eq!(l.args[0].allowed, ["query (0xffffffff)"]);
        assert_eq!(
            l.args[1].allowed,
            [
                "AF_UNIX, SOCK_STREAM",
                "AF_INET, SOCK_STREAM",
                "AF_INET6, SOCK_DGRAM"
            ]
        );
    }

    fn rule_region_of(args: &[Arg]) -> Region {
        super::super::conditions::rule_region(args)
    }

    #[test]
    fn overflow_and_untrained_arguments_fall_back_to_the_bound() {
        let default = Profile::docker_default();
        let mut o = obs(&["socket", "personality"]);
        args(&mut o, "socket", &[[2, 1]], true);
        let l = learn(&o, &default, &ctx(), LearnArgs::Default);
        assert!(l.args[0].fell_back);
        let d = l.profile.decisions(Abi::X86_64, &ctx());
        let base = default.decisions(Abi::X86_64, &ctx());
        for name in ["socket", "personality"] {
            assert!(d[name].lower.within(&base[name].lower), "{name}");
            assert!(base[name].lower.within(&d[name].lower), "{name}");
        }
        assert!(l.profile.widenings(&default, &ctx()).is_empty());
    }

    #[test]
    fn allow_all_training_is_cut_to_the_bound() {
        let default = Profile::docker_default();
        let mut o = obs(&["socket"]);
        args(&mut o, "socket", &[[2, 1], [40, 1]], false); // AF_VSOCK beyond the default
        let l = learn(&o, &default, &ctx(), LearnArgs::Default);
        let d = l.profile.decisions(Abi::X86_64, &ctx());
        assert!(
            !rule_region_of(&[Arg::eq(0, 40)]).within(&d["socket"].upper)
                || d["socket"].upper.is_empty()
        );
        assert!(l.profile.widenings(&default, &ctx()).is_empty());
        // Without a bound (allow-all), what was seen is allowed.
        let all: Profile = serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let l = learn(&obs(&["unshare"]), &all, &ctx(), LearnArgs::Default);
        assert!(
            l.profile
                .allowed(Abi::X86_64, &ctx())
                .contains_key("unshare")
        );
    }

    #[test]
    fn capabilities_move_the_bound() {
        let default = Profile::docker_default();
        let admin = Context::with_caps(&["SYS_ADMIN".into()], &[]).unwrap();
        let l = learn(&obs(&["unshare"]), &default, &admin, LearnArgs::Default);
        assert!(l.denied_by_bound.is_empty());
        assert!(
            l.profile
                .allowed(Abi::X86_64, &admin)
                .contains_key("unshare")
        );
        let l = learn(&obs(&["unshare"]), &default, &ctx(), LearnArgs::Default);
        assert_eq!(l.denied_by_bound, ["unshare"]);
    }

    #[test]
    fn argument_specs_match_the_kernel_side_and_the_table() {
        let kinds = [
            tracer_common::ARG_SOCKET,
            tracer_common::ARG_PERSONALITY,
            tracer_common::ARG_IOCTL,
            tracer_common::ARG_PRCTL,
        ];
        for (i, spec) in ARG_SPECS.iter().enumerate() {
            assert_eq!(kinds[i] as usize, i, "{}", spec.name);
            assert_eq!(Abi::X86_64.name(spec.nr), Some(spec.name));
        }
    }
}
