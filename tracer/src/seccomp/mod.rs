//! The seccomp profile: Docker's format, resolved per container, evaluated as runc does,
//! compared, merged, and learned from a recording within a bound.
pub mod arches;
pub mod bound;
pub mod compare;
pub mod conditions;
pub mod eval;
pub mod learn;
pub mod merge;
pub mod model;
pub mod resolve;
pub mod words;

use std::collections::{BTreeMap, BTreeSet};

pub use arches::{Derivation, Derived, VERIFY_ADVICE};
pub use bound::{Base, Bound, NotWithin};
pub use compare::{Diff, MergeConflict, Widening};
pub use eval::{Decision, Verdict};
pub use learn::{ALWAYS_ALLOWED, ArgSpec, ArgValues, LearnArgs, Learned, Observation, learn};
pub use model::{
    ACT_ALLOW, ACT_ERRNO, ACT_LOG, Action, Arg, ENOSYS, EPERM, Op, Profile, Rule, SyntaxError,
};
pub use resolve::{Context, DOCKER_DEFAULT_CAPS, running_kernel};

use crate::names::{Abi, AbiName};

/// More deny rules than this for one syscall's argument complement, and its argument
/// denials are not counted while verifying (the filter must stay well below 4096
/// instructions).
const MAX_COMPLEMENT_RULES: usize = 160;

impl Profile {
    /// This profile in complain mode: calls it doesn't list are allowed and logged by the
    /// kernel (SCMP_ACT_LOG) instead of failing.
    pub fn logging(mut self) -> Self {
        self.default_action = ACT_LOG.into();
        self.default_errno_ret = None;
        self
    }

    /// The profile `verify` enforces: calls the default action stops fail with `errno` (one no
    /// syscall returns by itself), so that the kernel can count every denial. Rules with their
    /// own actions and errnos are kept as they are. Returns notes where the meaning changes.
    ///
    /// Docker Engine 20.10 ignores `defaultErrnoRet`, so the denials are also made explicit:
    /// every name no applying rule mentions gets a deny rule with `errno`, and every name
    /// allowed only for some arguments gets deny rules with `errno` for the other arguments.
    pub fn for_verification(&self, errno: u32, ctx: &Context) -> (Profile, Vec<String>) {
        let mut notes = Vec::new();
        let mut p = self.resolve(ctx);
        if self.default_act().may_run() {
            notes.push(format!(
                "defaultAction {} lets unlisted calls through: only the profile's own deny rules can deny, and those are not counted",
                self.default_action
            ));
            return (p, notes);
        }
        if self.default_action != ACT_ERRNO {
            notes.push(format!(
                "defaultAction {} is verified as SCMP_ACT_ERRNO, so that every denial is counted instead of the first one ending the workload",
                self.default_action
            ));
        }
        let old_default = self.default_act();
        p.default_action = ACT_ERRNO.into();
        p.default_errno_ret = Some(errno);
        // Rules that had the default action were skipped by runc; they still are.
        p.syscalls.retain(|r| r.act() != old_default);
        let mentioned: BTreeSet<&str> = p
            .syscalls
            .iter()
            .flat_map(|r| r.all_names())
            .map(String::as_str)
            .collect();
        let unlisted: BTreeSet<String> = self
            .abis()
            .iter()
            .flat_map(|abi| abi.names())
            .filter(|n| !mentioned.contains(n))
            .map(|n| n.to_string())
            .collect();
        let mut extra = Vec::new();
        let deny = Action::Errno(errno);
        for (name, d) in self.decisions(Abi::X86_64, ctx) {
            if d.outright.is_some() || d.denied() || d.lower.is_all() {
                continue;
            }
            let Some(rest) = conditions::Region::all().minus(&d.upper) else {
                notes.push(format!("{name}: denials by argument are not counted"));
                continue;
            };
            let rules: Vec<Vec<Arg>> = rest.boxes().iter().flat_map(|b| b.to_rules()).collect();
            if rules.len() > MAX_COMPLEMENT_RULES {
                notes.push(format!(
                    "{name}: denials by argument are not counted (their conditions would need {} rules)",
                    rules.len()
                ));
                continue;
            }
            for args in rules {
                extra.push(Rule {
                    args,
                    ..Rule::with_action([name.to_string()], deny)
                });
            }
        }
        p.syscalls.extend(extra);
        if !unlisted.is_empty() {
            p.syscalls.push(Rule::with_action(unlisted, deny));
        }
        (p, notes)
    }

    /// This profile plus what `verify` saw denied, within `bound` for a container with `ctx`
    /// (`--fix`): names the bound allows outright are allowed outright, learned arguments by
    /// the denied values the bound allows, other argument-checked names by the bound's own
    /// rules. Returns the fixed profile and what was not added because the bound forbids it.
    pub fn fixed_within(
        &self,
        names: &BTreeMap<Abi, BTreeSet<String>>,
        values: &BTreeMap<String, BTreeSet<[u64; 2]>>,
        bound: &Profile,
        ctx: &Context,
    ) -> (Profile, Vec<String>) {
        let resolved = bound.resolve(ctx);
        let mut keep_names: BTreeMap<Abi, BTreeSet<String>> = BTreeMap::new();
        let mut keep_values: BTreeMap<String, BTreeSet<[u64; 2]>> = BTreeMap::new();
        let mut bound_rules = Vec::new();
        let mut refused = Vec::new();
        for (abi, set) in names {
            let decisions = bound.decisions(*abi, ctx);
            for name in set {
                let Some(d) = decisions.get(name.as_str()) else {
                    continue;
                };
                let label = AbiName(*abi, name).to_string();
                if d.lower.is_empty() {
                    refused.push(label);
                    continue;
                }
                match (ArgSpec::of(name), values.get(name)) {
                    (Some(spec), Some(tuples)) if !tuples.is_empty() => {
                        let (ok, not): (BTreeSet<[u64; 2]>, BTreeSet<[u64; 2]>) =
                            tuples.iter().partition(|t| {
                                conditions::Region::of([spec.region(**t)]).within(&d.lower)
                            });
                        refused.extend(not.iter().map(|t| format!("{label}({})", spec.words(*t))));
                        if !ok.is_empty() {
                            keep_values.insert(name.clone(), ok);
                            keep_names.entry(*abi).or_default().insert(name.clone());
                        }
                    }
                    _ if d.lower.is_all() => {
                        keep_names.entry(*abi).or_default().insert(name.clone());
                    }
                    _ => bound_rules.extend(learn::bound_rules(name, &resolved, &d.lower)),
                }
            }
        }
        let mut fixed = self.allowing_more(&keep_names, &keep_values);
        fixed.syscalls.extend(bound_rules);
        (fixed, refused)
    }

    /// This profile plus what `verify` saw denied: names allowed outright on each ABI, and for
    /// names whose arguments are learned, just the denied argument values.
    pub fn allowing_more(
        &self,
        names: &BTreeMap<Abi, BTreeSet<String>>,
        values: &BTreeMap<String, BTreeSet<[u64; 2]>>,
    ) -> Profile {
        let mut p = self.clone();
        if !p.architectures.is_empty() {
            for abi in names.keys() {
                let arch = abi.seccomp_arch().to_string();
                if !p.architectures.contains(&arch) {
                    p.architectures.push(arch);
                }
            }
        }
        let mut plain: BTreeSet<String> = BTreeSet::new();
        for name in names.values().flatten() {
            match (ArgSpec::of(name), values.get(name)) {
                (Some(spec), Some(tuples)) if !tuples.is_empty() => {
                    for t in tuples {
                        if let Some(args) = spec.region(*t).to_args() {
                            p.syscalls.push(Rule {
                                args,
                                ..Rule::allow([name.clone()])
                            });
                        }
                    }
                }
                _ => {
                    plain.insert(name.clone());
                }
            }
        }
        if plain.is_empty() {
            return p;
        }
        match p.syscalls.iter_mut().find(|r| r.is_plain_allow()) {
            Some(rule) => {
                let all: BTreeSet<String> = rule.names.drain(..).chain(plain).collect();
                rule.names = all.into_iter().collect();
            }
            None => p.syscalls.insert(0, Rule::allow(plain)),
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::seccomp::resolve::test_context as ctx;

    fn simple(names: &[&str]) -> Profile {
        Profile::allowing(names.iter().copied(), &BTreeSet::from([Abi::X86_64]))
    }

    #[test]
    fn minimal_profile_is_sorted_and_stable() {
        let p = simple(&["write", "exit_group", "read"]);
        let json = p.to_json().unwrap();
        assert_eq!(
            json,
            "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"defaultErrnoRet\": 1,\n  \"architectures\": [\n    \"SCMP_ARCH_X86_64\"\n  ],\n  \"syscalls\": [\n    {\n      \"names\": [\n        \"exit_group\",\n        \"read\",\n        \"write\"\n      ],\n      \"action\": \"SCMP_ACT_ALLOW\"\n    }\n  ]\n}\n"
        );
        let back = Profile::parse(&json, Path::new("p.json")).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.allowed(Abi::X86_64, &ctx()).len(), 3);
    }

    #[test]
    fn unknown_names_are_listed() {
        let abis = BTreeSet::from([Abi::X86_64]);
        let p = Profile::allowing(["read", "socketcall", "no_such_call"], &abis);
        assert_eq!(p.unknown_names(&abis), ["no_such_call", "socketcall"]);
    }

    #[test]
    fn verification_denies_every_unlisted_name_with_the_errno() {
        let p = simple(&["read", "write"]);
        let (v, notes) = p.for_verification(3797, &ctx());
        assert!(notes.is_empty());
        assert_eq!(v.default_errno_ret, Some(3797));
        let rule = v.syscalls.last().unwrap();
        assert_eq!(
            (rule.action.as_str(), rule.errno_ret),
            (ACT_ERRNO, Some(3797))
        );
        assert!(rule.names.contains(&"mkdir".to_string()));
        assert!(!rule.names.contains(&"read".to_string()));
        assert_eq!(rule.names.len(), Abi::X86_64.names().len() - 2);
        let (_, notes) = simple(&["read"]).logging().for_verification(3797, &ctx());
        assert!(notes[0].contains("lets unlisted calls through"));
        // Docker's default: calls only its capability-gated rules name are denied with the
        // errno too, since those rules are dropped for a container with the default caps.
        let (v, notes) = Profile::docker_default().for_verification(3797, &ctx());
        assert!(notes.is_empty(), "{notes:?}");
        let rule = v.syscalls.last().unwrap();
        assert_eq!(rule.errno_ret, Some(3797));
        for name in ["mount", "unshare", "bpf", "kexec_load"] {
            assert!(rule.names.contains(&name.to_string()), "{name}");
        }
        for name in ["read", "clone", "clone3", "personality"] {
            assert!(!rule.names.contains(&name.to_string()), "{name}");
        }
        // Argument denials get the errno too, and allow exactly what the profile allows.
        let d = v.decisions(Abi::X86_64, &ctx());
        let orig = Profile::docker_default().decisions(Abi::X86_64, &ctx());
        for name in ["socket", "personality", "clone"] {
            assert_eq!(d[name].lower, orig[name].lower, "{name}");
            assert!(
                v.syscalls
                    .iter()
                    .any(|r| r.errno_ret == Some(3797) && r.names == [name] && !r.args.is_empty()),
                "{name}"
            );
        }
        assert_eq!(d["clone3"].outright, Some(Action::Errno(38)));
    }

    #[test]
    fn fixes_stay_within_the_bound() {
        let p = simple(&["read"]);
        let missing = BTreeMap::from([(
            Abi::X86_64,
            BTreeSet::from(["mkdir", "unshare", "clone", "socket"].map(String::from)),
        )]);
        // AF_INET is allowed by the default, AF_VSOCK (40) is not.
        let values = BTreeMap::from([(
            "socket".to_string(),
            BTreeSet::from([[2u64, 1u64], [40, 1]]),
        )]);
        let default = Profile::docker_default();
        let (fixed, refused) = p.fixed_within(&missing, &values, &default, &ctx());
        assert_eq!(refused, ["socket(AF_VSOCK, SOCK_STREAM)", "unshare"]);
        assert!(fixed.widenings(&default, &ctx()).is_empty(), "{fixed:?}");
        let d = fixed.decisions(Abi::X86_64, &ctx());
        assert!(d["mkdir"].all() && d["unshare"].denied());
        assert!(
            !d["clone"].denied() && !d["clone"].all(),
            "the default's namespace mask"
        );
        assert!(!d["socket"].denied() && !d["socket"].all());
    }

    #[test]
    fn fixes_add_names_or_values() {
        let p = simple(&["read"]);
        let missing = BTreeMap::from([(Abi::X86_64, BTreeSet::from(["mkdir".to_string()]))]);
        let fixed = p.allowing_more(&missing, &BTreeMap::new());
        assert_eq!(fixed, simple(&["mkdir", "read"]));
        let d = Diff::between(&p, &fixed, &ctx());
        assert_eq!(d.added, ["mkdir"]);
        assert!(d.allows_more());
        let back = Diff::between(&fixed, &p, &ctx());
        assert_eq!(back.removed, ["mkdir"]);
        assert!(!back.allows_more());
        let sock = BTreeMap::from([(Abi::X86_64, BTreeSet::from(["socket".to_string()]))]);
        let values = BTreeMap::from([("socket".to_string(), BTreeSet::from([[2u64, 1u64]]))]);
        let with = p.allowing_more(&sock, &values);
        let d = with.decisions(Abi::X86_64, &ctx());
        assert!(!d["socket"].denied() && !d["socket"].upper.is_all());
        let i386 = fixed.allowing_more(
            &BTreeMap::from([(Abi::I386, BTreeSet::from(["write".to_string()]))]),
            &BTreeMap::new(),
        );
        assert!(i386.architectures.contains(&"SCMP_ARCH_X86".to_string()));
        assert!(
            Diff::between(&fixed, &i386, &ctx())
                .added
                .contains(&"write (i386)".to_string())
        );
    }
}
