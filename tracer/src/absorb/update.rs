//! The profile update: what the workload's logged calls add to its profile, within the bound,
//! and the proof that the result allows nothing the bound forbids.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    error::AbsorbError,
    tally::{CallTally, Tally},
};
use crate::{
    names::{Abi, AbiName, SyscallId},
    seccomp::{
        self, Action, ArgSpec, Bound, Context, Diff, EPERM, LearnArgs, NotWithin, Observation,
        Profile, Widening, compare::describe, merge::merge,
    },
};

/// What became of one logged syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Now allowed, with any arguments.
    Added,
    /// Allowed as the bound allows it: the record carries no arguments to narrow it by.
    BoundRule,
    /// The profile allowed it already, with any arguments.
    AlreadyAllowed,
    /// The bound denies it: not absorbed.
    DeniedByBound,
    /// The bound denies it, and `--allow-beyond-default` let it in.
    BeyondBound,
    /// The number has no name in its ABI's table: not absorbed.
    UnknownNumber,
}

impl Outcome {
    pub fn absorbed(self) -> bool {
        matches!(
            self,
            Outcome::Added | Outcome::BoundRule | Outcome::AlreadyAllowed | Outcome::BeyondBound
        )
    }
}

/// One logged syscall, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallLine {
    pub name: String,
    pub abi: Abi,
    pub count: u64,
    pub first_program: String,
    pub first_exe: String,
    pub first_pid: Option<u32>,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// Records whose process was found in the container, and those matched by program only.
    pub by_process: u64,
    pub by_program: u64,
    pub outcome: Outcome,
    /// Why, in words, where the outcome needs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The updated profile and what changed.
#[derive(Clone, Debug)]
pub struct Absorption {
    pub profile: Profile,
    pub calls: Vec<CallLine>,
    /// Allowed now, not before (`name` or `name (abi)`).
    pub added: Vec<String>,
    /// Allowed before for fewer arguments.
    pub widened: Vec<Widening>,
    pub notes: Vec<String>,
}

impl Absorption {
    /// Also allows what every profile must allow whether observed or not — the calls
    /// [`seccomp::ALWAYS_ALLOWED`] names and `required` (the container runtime's tail) — where
    /// the profile lacks them and the bound allows them for every argument; says which.
    pub fn require(
        &mut self,
        required: &[(&'static str, &'static str)],
        bound: &Bound,
        ctx: &Context,
    ) -> Result<(), AbsorbError> {
        let allowed = self.profile.decisions(Abi::X86_64, ctx);
        let bounds = bound.profile.decisions(Abi::X86_64, ctx);
        let missing: BTreeSet<String> = seccomp::ALWAYS_ALLOWED
            .iter()
            .chain(required)
            .map(|(name, _)| *name)
            .filter(|name| allowed.get(name).is_some_and(|d| d.upper.is_empty()))
            .filter(|name| bounds.get(name).is_some_and(|d| d.lower.is_all()))
            .map(String::from)
            .collect();
        if missing.is_empty() || !self.profile.covers(Abi::X86_64) {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().cloned().collect();
        let more = BTreeMap::from([(Abi::X86_64, missing)]);
        self.profile = self.profile.allowing_more(&more, &BTreeMap::new());
        if !bound.allow_beyond {
            bound.check("the updated profile", &self.profile, ctx)?;
        }
        self.notes.push(format!(
            "also allowed, as in every profile whether observed or not (the container runtime's calls after its filter is in place, the vDSO's): {}",
            names.join(", ")
        ));
        self.added.extend(names);
        self.added.sort();
        Ok(())
    }

    /// Adds the calls of `tally` to `input` (the profile the workload ran under, complain mode
    /// or not) within `bound`, for a container with `ctx`. The result is enforcing: calls
    /// nobody lists fail as under `input` (or the bound, when `input` was in complain mode).
    pub fn new(
        input: &Profile,
        input_label: &str,
        tally: &Tally,
        bound: &Bound,
        ctx: &Context,
    ) -> Result<Absorption, AbsorbError> {
        let mut notes = Vec::new();
        let mut before = input.clone();
        if before.default_act() == Action::Log {
            let (action, errno) = match bound.profile.default_act() {
                Action::Errno(_) | Action::Kill | Action::KillProcess | Action::KillThread => (
                    bound.profile.default_action.clone(),
                    bound.profile.default_errno_ret,
                ),
                _ => (seccomp::ACT_ERRNO.to_string(), Some(EPERM)),
            };
            notes.push(format!(
                "{input_label} is in complain mode (SCMP_ACT_LOG): the result enforces, calls it doesn't list get {action}{}",
                errno.map(|e| format!(" (errno {e})")).unwrap_or_default()
            ));
            before.default_action = action;
            before.default_errno_ret = errno;
        }
        let before_widens: BTreeSet<String> = before
            .widenings(&bound.profile, ctx)
            .into_iter()
            .map(|w| w.syscall)
            .collect();
        if !bound.allow_beyond {
            bound.check(
                &format!("{input_label} (before absorbing anything)"),
                &before,
                ctx,
            )?;
        }

        let obs = Observation {
            calls: tally.calls.iter().map(|(id, t)| (*id, t.count)).collect(),
            args: BTreeMap::new(),
            required: Vec::new(),
            ceiling: BTreeSet::new(),
        };
        // The records carry no arguments: every call gets the bound's rule for it.
        let learned = seccomp::learn(&obs, &bound.profile, ctx, LearnArgs::None);
        let mut absorbed = learned.profile;
        // Only allow rules: the input keeps its own answers for what it denies, and calls every
        // learned profile allows unobserved are not the logs' to add.
        let unobserved: BTreeSet<&str> = learned.always_allowed.iter().map(|(n, _)| *n).collect();
        absorbed.syscalls.retain(|r| r.act().may_run());
        for rule in &mut absorbed.syscalls {
            rule.names.retain(|n| !unobserved.contains(n.as_str()));
        }
        absorbed.syscalls.retain(|r| !r.names.is_empty());
        let denied: BTreeSet<&str> = learned.denied_by_bound.iter().map(String::as_str).collect();
        let mut beyond: BTreeMap<Abi, BTreeSet<String>> = BTreeMap::new();
        if bound.allow_beyond {
            for id in tally.calls.keys() {
                if let Some(name) = id.abi.name(id.nr)
                    && denied.contains(name)
                    && ArgSpec::of(name).is_none()
                {
                    beyond.entry(id.abi).or_default().insert(name.to_string());
                }
            }
            absorbed = absorbed.allowing_more(&beyond, &BTreeMap::new());
        }

        // The same default action and architectures as the profile absorbed into, so that the
        // merge means the union of the two.
        let abis: BTreeSet<Abi> = before
            .abis()
            .union(&tally.calls.keys().map(|id| id.abi).collect())
            .copied()
            .collect();
        if abis != before.abis() {
            let added: Vec<&str> = abis
                .difference(&before.abis())
                .map(|a| a.seccomp_arch())
                .collect();
            notes.push(format!(
                "architectures added for the absorbed calls: {}",
                added.join(", ")
            ));
            before.arch_map.clear();
            before.architectures = abis.iter().map(|a| a.seccomp_arch().to_string()).collect();
        }
        absorbed.default_action = before.default_action.clone();
        absorbed.default_errno_ret = before.default_errno_ret;
        absorbed.architectures = before.architectures.clone();
        absorbed.arch_map = before.arch_map.clone();
        // The proof: exactly the union of the two parts, and nothing beyond the bound but what
        // the input already allowed and what --allow-beyond-default let in.
        let parts = [
            (input_label.to_string(), before.clone()),
            ("the absorbed records".to_string(), absorbed),
        ];
        let merged = merge(&parts, false, &BTreeSet::new(), ctx)?.profile;
        // A name holds on every architecture of the profile, whichever ABI it was logged on.
        let let_in: BTreeSet<String> = beyond
            .values()
            .flatten()
            .flat_map(|name| {
                merged
                    .abis()
                    .into_iter()
                    .map(move |abi| AbiName(abi, name).to_string())
            })
            .collect();
        let widenings: Vec<Widening> = merged
            .widenings(&bound.profile, ctx)
            .into_iter()
            .filter(|w| !before_widens.contains(&w.syscall) && !let_in.contains(&w.syscall))
            .collect();
        if !widenings.is_empty() {
            return Err(NotWithin {
                what: "the absorbed profile".into(),
                bound: bound.label.to_string(),
                widenings,
            }
            .into());
        }

        let diff = Diff::between(&before, &merged, ctx);
        let calls = call_lines(tally, &before, bound, &denied, ctx);
        Ok(Absorption {
            profile: merged,
            calls,
            added: diff.added,
            widened: diff.widened,
            notes,
        })
    }
}

/// What became of each logged call, and why.
fn call_lines(
    tally: &Tally,
    before: &Profile,
    bound: &Bound,
    denied: &BTreeSet<&str>,
    ctx: &Context,
) -> Vec<CallLine> {
    let mut decisions = BTreeMap::new();
    let mut bound_decisions = BTreeMap::new();
    for abi in tally.calls.keys().map(|id| id.abi) {
        decisions
            .entry(abi)
            .or_insert_with(|| before.decisions(abi, ctx));
        bound_decisions
            .entry(abi)
            .or_insert_with(|| bound.profile.decisions(abi, ctx));
    }
    let mut lines: Vec<CallLine> = tally
        .calls
        .iter()
        .map(|(id, t)| {
            let (outcome, note) = match id.abi.name(id.nr) {
                None => (
                    Outcome::UnknownNumber,
                    Some(format!("{} has no syscall {}", id.abi, id.nr)),
                ),
                Some(name) => outcome(name, id.abi, &decisions, &bound_decisions, bound, denied),
            };
            line(id, t, outcome, note)
        })
        .collect();
    lines.sort_by(|a, b| (a.abi, &a.name).cmp(&(b.abi, &b.name)));
    lines
}

type Decisions = BTreeMap<Abi, BTreeMap<&'static str, seccomp::Decision>>;

fn outcome(
    name: &str,
    abi: Abi,
    before: &Decisions,
    bound_decisions: &Decisions,
    bound: &Bound,
    denied: &BTreeSet<&str>,
) -> (Outcome, Option<String>) {
    let no_args = "the record carries no arguments (audit doesn't log them)";
    if denied.contains(name) {
        return match (bound.allow_beyond, ArgSpec::of(name).is_some()) {
            (true, false) => (
                Outcome::BeyondBound,
                Some(format!(
                    "{} denies it; allowed by --allow-beyond-default",
                    bound.label
                )),
            ),
            (true, true) => (
                Outcome::DeniedByBound,
                Some(format!(
                    "{} denies it, and {no_args}: allow the values it needs by hand",
                    bound.label
                )),
            ),
            (false, _) => (
                Outcome::DeniedByBound,
                Some(format!("{} denies it", bound.label)),
            ),
        };
    }
    let had = before.get(&abi).and_then(|d| d.get(name));
    if had.is_some_and(|d| d.all()) {
        return (Outcome::AlreadyAllowed, None);
    }
    let rule = bound_decisions.get(&abi).and_then(|d| d.get(name));
    if let (Some(had), Some(rule)) = (had, rule)
        && !had.denied()
        && rule.lower.within(&had.lower)
    {
        return (
            Outcome::AlreadyAllowed,
            Some(format!(
                "{no_args}; allowed already for every argument {} allows",
                bound.label
            )),
        );
    }
    let conditional = rule.is_some_and(|d| !d.all());
    if ArgSpec::of(name).is_some() || conditional {
        let words = rule.map_or_else(|| "any arguments".into(), |d| describe(&d.lower));
        return (
            Outcome::BoundRule,
            Some(format!(
                "{no_args}: absorbed as {}'s rule for it ({words})",
                bound.label
            )),
        );
    }
    (Outcome::Added, None)
}

fn line(id: &SyscallId, t: &CallTally, outcome: Outcome, note: Option<String>) -> CallLine {
    let (comm, exe, pid) = t.first.clone().unwrap_or_default();
    CallLine {
        name: id.name(),
        abi: id.abi,
        count: t.count,
        first_program: comm,
        first_exe: exe,
        first_pid: pid,
        first_time: t.first_time.map(|s| s.rfc3339()),
        last_time: t.last_time.map(|s| s.rfc3339()),
        by_process: t.by_process,
        by_program: t.by_program,
        outcome,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::absorb::{
        selection::{Selection, Whereabouts},
        tally::tests::{ctx, mkdir_line},
    };
    use crate::audit::LogLine;

    fn tally(lines: &[String]) -> Tally {
        let mut t = Tally::default();
        let src = t.source("test");
        for (i, l) in lines.iter().enumerate() {
            let line = LogLine {
                text: l.clone(),
                cut: false,
            };
            t.line(src, i as u64 + 1, &line, &Selection::default(), &mut |_| {
                Whereabouts::Gone
            });
        }
        t.finish();
        t
    }

    /// A record of syscall `nr` (x86_64 unless `arch` says otherwise).
    fn call(serial: u64, arch: &str, nr: u64) -> String {
        mkdir_line(serial, 1, "app", "/app")
            .replace("c000003e", arch)
            .replace("syscall=83", &format!("syscall={nr}"))
    }

    fn default_bound() -> Bound {
        seccomp::Base::DockerDefault.bound(false)
    }

    /// Docker's default without `names`, as a complain-mode profile.
    fn lacking(names: &[&str]) -> Profile {
        let mut p = Profile::docker_default().logging();
        for rule in &mut p.syscalls {
            rule.names.retain(|n| !names.contains(&n.as_str()));
        }
        p
    }

    #[test]
    fn adds_exactly_the_logged_call() {
        let default = Profile::docker_default();
        let input = lacking(&["mkdir", "rmdir"]);
        let t = tally(&[call(1, "c000003e", 83), call(2, "c000003e", 83)]);
        let a = Absorption::new(&input, "in.json", &t, &default_bound(), &ctx()).unwrap();
        // Names hold for every architecture of the profile (Docker's default lists three).
        assert_eq!(a.added, ["mkdir", "mkdir (x32)", "mkdir (i386)"]);
        assert!(a.widened.is_empty());
        assert_eq!(a.calls.len(), 1);
        assert_eq!((a.calls[0].count, a.calls[0].outcome), (2, Outcome::Added));
        assert_eq!(a.profile.default_action, seccomp::ACT_ERRNO);
        assert!(a.notes[0].contains("complain mode"));
        let d = a.profile.decisions(Abi::X86_64, &ctx());
        assert!(d["mkdir"].all());
        assert!(d["rmdir"].denied(), "never logged, still denied");
        assert!(a.profile.widenings(&default, &ctx()).is_empty());
    }

    #[test]
    fn argument_calls_get_the_bounds_rule_never_more() {
        let default = Profile::docker_default();
        let mut input = lacking(&["socket", "personality", "ioctl"]);
        input.default_action = seccomp::ACT_ERRNO.into();
        let t = tally(&[
            call(1, "c000003e", 41),  // socket
            call(2, "c000003e", 135), // personality
            call(3, "c000003e", 16),  // ioctl
        ]);
        let a = Absorption::new(&input, "in.json", &t, &default_bound(), &ctx()).unwrap();
        let d = a.profile.decisions(Abi::X86_64, &ctx());
        let base = default.decisions(Abi::X86_64, &ctx());
        for name in ["socket", "personality", "ioctl"] {
            assert_eq!(d[name].lower, base[name].lower, "{name}");
            let line = a.calls.iter().find(|c| c.name == name).unwrap();
            assert_eq!(line.outcome, Outcome::BoundRule, "{name}");
            assert!(
                line.note
                    .as_deref()
                    .unwrap()
                    .contains("carries no arguments")
            );
        }
        assert!(!d["socket"].all() && !d["personality"].all());
        assert!(a.profile.widenings(&default, &ctx()).is_empty());
    }

    #[test]
    fn calls_the_bound_denies_stay_out_unless_allowed_beyond() {
        let input = lacking(&["mkdir"]);
        // unshare (272) and, with CAP_SYS_ADMIN only, mount (165); personality beyond too.
        let t = tally(&[call(1, "c000003e", 272), call(2, "c000003e", 83)]);
        let a = Absorption::new(&input, "in.json", &t, &default_bound(), &ctx()).unwrap();
        assert_eq!(a.added, ["mkdir", "mkdir (x32)", "mkdir (i386)"]);
        let unshare = a.calls.iter().find(|c| c.name == "unshare").unwrap();
        assert_eq!(unshare.outcome, Outcome::DeniedByBound);
        assert!(a.profile.decisions(Abi::X86_64, &ctx())["unshare"].denied());
        let beyond = Bound {
            allow_beyond: true,
            ..default_bound()
        };
        let a = Absorption::new(&input, "in.json", &t, &beyond, &ctx()).unwrap();
        assert!(a.added.contains(&"unshare".to_string()), "{:?}", a.added);
        let unshare = a.calls.iter().find(|c| c.name == "unshare").unwrap();
        assert_eq!(unshare.outcome, Outcome::BeyondBound);
    }

    #[test]
    fn other_abis_add_their_architecture() {
        let mut input = Profile::allowing(["read"], &BTreeSet::from([Abi::X86_64]));
        input.default_action = seccomp::ACT_LOG.into();
        input.default_errno_ret = None;
        // i386 mkdir (39); x32 mkdir (83 | 0x40000000).
        let t = tally(&[call(1, "40000003", 39), call(2, "c000003e", 0x4000_0053)]);
        let a = Absorption::new(&input, "in.json", &t, &default_bound(), &ctx()).unwrap();
        // A name holds for every architecture a profile lists: Docker's format has no other.
        assert_eq!(a.added, ["mkdir", "mkdir (x32)", "mkdir (i386)"]);
        assert!(
            a.notes
                .iter()
                .any(|n| n.contains("SCMP_ARCH_X32, SCMP_ARCH_X86"))
        );
        assert!(a.profile.abis().contains(&Abi::I386));
        assert!(a.profile.decisions(Abi::I386, &ctx())["mkdir"].all());
        let lines: Vec<_> = a.calls.iter().map(|c| (c.name.as_str(), c.abi)).collect();
        assert_eq!(lines, [("mkdir", Abi::X32), ("mkdir", Abi::I386)]);
    }

    #[test]
    fn an_input_wider_than_the_bound_is_refused() {
        let input = Profile::allowing(["read", "unshare"], &BTreeSet::from([Abi::X86_64]));
        let t = tally(&[call(1, "c000003e", 83)]);
        let err = Absorption::new(&input, "wide.json", &t, &default_bound(), &ctx()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("wide.json (before absorbing anything)"),
            "{text}"
        );
        assert!(text.contains("unshare"), "{text}");
    }

    #[test]
    fn known_calls_and_unknown_numbers() {
        let mut input = lacking(&[]);
        input.default_action = seccomp::ACT_ERRNO.into();
        let t = tally(&[call(1, "c000003e", 0), call(2, "c000003e", 1000)]);
        let a = Absorption::new(&input, "in.json", &t, &default_bound(), &ctx()).unwrap();
        assert!(a.added.is_empty());
        let outcomes: Vec<_> = a
            .calls
            .iter()
            .map(|c| (c.name.as_str(), c.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("read", Outcome::AlreadyAllowed),
                ("x86_64:1000", Outcome::UnknownNumber)
            ]
        );
        let d = Diff::between(&input, &a.profile, &ctx());
        assert!(!d.allows_more() && d.removed.is_empty() && d.narrowed.is_empty());
    }
}
