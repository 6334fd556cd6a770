//! The reduction report: what was observed, what the profile allows, and how that compares with
//! Docker's default profile and the kernel's table. Its JSON is the machine-readable report;
//! [`super::sections`] lays it out as text and Markdown.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{
    arches::ArchSection,
    dangerous::{ArgumentLine, Blocked, argument_lines, dangerous},
    observed::SyscallLine,
    render::percent_less,
    verification::VerificationStatus,
};
use crate::{
    names::Abi,
    recorder::Snapshot,
    scan::coverage::Coverage,
    seccomp::{ALWAYS_ALLOWED, Action, Context, ENOSYS, Learned, Profile, Verdict},
    session::{Exercised, ProbeReport, StoppedBy},
};

/// The syscalls first seen in one phase of a probed run.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseLine {
    pub phase: String,
    pub added: Vec<String>,
}

/// One training run: how many distinct syscalls it made and how many of those were new.
#[derive(Clone, Debug, Serialize)]
pub struct RunLine {
    pub run: u32,
    pub distinct: usize,
    pub added: usize,
    /// The syscalls this run added (listed from the second run on).
    pub added_names: Vec<String>,
    pub exit_code: Option<i32>,
    pub stopped_by: Option<StoppedBy>,
}

/// What `--ceiling` added: the calls of the sound ceilings of the programs that ran that
/// training never observed and the bound allows.
#[derive(Clone, Debug, Serialize)]
pub struct CeilingLine {
    pub added: Vec<String>,
    /// True when every program that ran has a sound ceiling: the profile can't miss a path.
    pub complete: bool,
}

impl CeilingLine {
    /// What the ceilings added to `learned`, learned from `snap`: the calls it allows that
    /// were never observed and no other reason allows.
    pub fn of(snap: &Snapshot, learned: &Learned, ctx: &Context, complete: bool) -> Self {
        let mut observed: BTreeSet<String> = snap.syscalls.keys().map(|id| id.name()).collect();
        observed.extend(
            snap.runtime
                .keys()
                .filter_map(|nr| Abi::X86_64.name(*nr))
                .map(String::from),
        );
        let added = learned
            .profile
            .allowed(Abi::X86_64, ctx)
            .into_keys()
            .filter(|name| !observed.contains(*name))
            .filter(|name| !learned.required.iter().any(|(n, _)| n == name))
            .map(String::from)
            .collect();
        CeilingLine { added, complete }
    }
}

/// The programs a recording saw exec'd and what their ceilings say of it: in a training's
/// report and in each row of watch's index.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProgramsRun {
    /// The programs the workload exec'd, as the execs named them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// For each program that ran, the calls in its ceiling never observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// With `--ceiling`: what the ceilings of the programs that ran added to the profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<CeilingLine>,
}

/// Everything a person needs to judge a profile. Serialized as the JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub target: String,
    /// `under_filter` (what a profile governs), `all_syscalls` (everything in the cgroup), or
    /// `profile` (a report of a profile file: nothing observed).
    pub mode: &'static str,
    /// False when recording stopped early (interrupted, or the Docker daemon went away).
    pub complete: bool,
    pub exit_code: Option<i32>,
    /// Set when the workload did not end by itself: `duration`, `exercise`, `probe`,
    /// `interrupted`, `start_failed`, `not_ready` or `daemon_lost` (the Docker daemon went away).
    pub stopped_by: Option<StoppedBy>,
    pub duration_seconds: f64,
    pub syscalls: Vec<SyscallLine>,
    /// What the container runtime did under the filter before it handed over to the
    /// workload (its init's last steps): allowed so that the container starts, never the
    /// workload's.
    pub runtime_calls: Vec<SyscallLine>,
    pub total_calls: u64,
    /// Syscalls the profile allows.
    pub allowed: usize,
    /// Syscalls Docker's default allows on this arch with its default capabilities.
    pub docker_default_allowed: usize,
    /// Size of the kernel's syscall table for this arch.
    pub kernel_syscalls: usize,
    pub reduction_vs_docker_default_percent: f64,
    pub reduction_vs_kernel_percent: f64,
    pub blocked_dangerous: Vec<Blocked>,
    /// Dangerous syscalls this profile allows (outright or for some arguments).
    pub allowed_dangerous: Vec<Blocked>,
    /// Syscalls the profile allows though they were not observed, with why.
    pub always_allowed: Vec<Blocked>,
    /// The calls allowed at any time (signal returns, yields, the vDSO's clock, the runtime's
    /// tail) that the profile allows, whether or not a run happened to make them: the summary
    /// lists these, which don't vary by run.
    #[serde(skip)]
    pub allowed_at_any_time: Vec<Blocked>,
    /// Observed syscalls Docker's default would deny.
    pub denied_by_docker_default: Vec<String>,
    /// The profile the learned one stays within (`docker-default`, a file, or `allow-all`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    /// Observed syscalls the bound denies: not in the profile.
    pub not_learned: Vec<String>,
    /// Syscalls allowed only for some arguments, in words.
    pub argument_rules: Vec<ArgumentLine>,
    /// Training runs, when there were several (`train --runs`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunLine>,
    /// Whether the profile held when verified right after training (`train --verify`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// What exercised that verification: what its verdict covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<Exercised>,
    /// The built-in HTTP probe's requests, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
    /// With the probe: the syscalls first seen in each phase (start, probe, stop).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseLine>,
    /// How that verification went: `passed`, `failed`, `incomplete`, or why it did not finish
    /// (`interrupted`, `not_ready`, `daemon_lost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationStatus>,
    pub out_of_range_calls: u64,
    #[serde(flatten)]
    pub ran: ProgramsRun,
    /// For a profile meant for several platforms: each one's side, and what was derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arches: Option<ArchSection>,
    /// The least-privilege recipe learned beside the profile (`train --hardening`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardening: Option<crate::hardening::Recipe>,
    pub warnings: Vec<String>,
}

impl Report {
    /// Adds the coverage of what ran against the ceilings of its programs (`None`: unknown)
    /// and, when they widened the profile (`--ceiling`), what they added to it.
    pub fn add_coverage(
        &mut self,
        coverage: Option<Coverage>,
        widened: bool,
        snap: &Snapshot,
        learned: &Learned,
        ctx: &Context,
    ) {
        if widened {
            let complete = coverage.as_ref().is_some_and(|c| c.bounded);
            self.ran.ceiling = Some(match coverage.is_some() {
                true => CeilingLine::of(snap, learned, ctx, complete),
                false => CeilingLine {
                    added: Vec::new(),
                    complete: false,
                },
            });
        }
        self.ran.coverage = coverage.map(|mut c| {
            mark_allowed(&mut c, &learned.profile, ctx);
            c
        });
    }

    /// The report of a recording: what `snap` saw and what `profile`, learned from it, allows.
    pub fn new(
        target: &str,
        all_syscalls: bool,
        snap: &Snapshot,
        learned: &Learned,
        bound: &str,
    ) -> Self {
        let mode = if all_syscalls {
            "all_syscalls"
        } else {
            "under_filter"
        };
        let mut r = Report::build(target, mode, snap, &learned.profile, Some(learned));
        r.bound = Some(bound.to_string());
        r.not_learned = learned.denied_by_bound.clone();
        for a in learned.args.iter().filter(|a| a.fell_back) {
            r.warnings.push(format!(
                "{}: more distinct argument values than the kernel keeps; the bound's rule for it was used instead",
                a.syscall
            ));
        }
        if snap.dropped_first > 0 {
            r.warnings.push(format!(
                "{} first-program record(s) did not fit; counts are unaffected",
                snap.dropped_first
            ));
        }
        if snap.programs_lost > 0 {
            r.warnings.push(format!(
                "{} exec(s) found no room in the kernel's table of executed programs: the programs listed miss some",
                snap.programs_lost
            ));
        }
        if snap.runtime_lost > 0 {
            r.warnings.push(format!(
                "{} task(s) of container runtimes could not be told from their workloads (the kernel's table of them was full): their calls may be counted as the workload's",
                snap.runtime_lost
            ));
        }
        if snap.out_of_range > 0 {
            r.warnings.push(format!(
                "{} call(s) with syscall numbers outside every table (e.g. syscall(-1))",
                snap.out_of_range
            ));
        }
        if snap.is_empty() {
            r.warnings.push(
                "nothing was recorded: no task of the watched cgroup ran under a seccomp filter (was the workload started with seccomp=unconfined?)".into(),
            );
        }
        r
    }

    /// The report of a profile file: what it allows, nothing observed.
    pub fn for_profile(target: &str, profile: &Profile) -> Self {
        let mut r = Report::build(target, "profile", &Snapshot::default(), profile, None);
        r.warnings.extend(profile.warnings());
        r
    }

    fn build(
        target: &str,
        mode: &'static str,
        snap: &Snapshot,
        profile: &Profile,
        learned: Option<&Learned>,
    ) -> Self {
        let ctx = Context::docker_default();
        let default = Profile::docker_default();
        let default_allowed = default.allowed(Abi::X86_64, &ctx);
        let allowed = profile.allowed(Abi::X86_64, &ctx);
        let kernel = Abi::X86_64.names().len();
        let syscalls = SyscallLine::all(&snap.syscalls);
        let observed: BTreeSet<&str> = syscalls
            .iter()
            .filter(|s| s.abi == Abi::X86_64)
            .map(|s| s.name.as_str())
            .collect();
        let blocked_dangerous =
            dangerous(|name| default_allowed.contains_key(name) && !allowed.contains_key(name));
        let allowed_dangerous = dangerous(|name| allowed.contains_key(name));
        let blocked = |list: &[(&'static str, &'static str)]| -> Vec<Blocked> {
            list.iter()
                .filter(|(name, _)| allowed.contains_key(name))
                .map(|&(name, reason)| Blocked { name, reason })
                .collect()
        };
        // What the learning allowed unobserved, when there was one; a profile file's are the
        // calls every learned profile allows.
        let (allowed_at_any_time, always_allowed) = match learned {
            Some(l) => (blocked(&l.required), blocked(&l.always_allowed)),
            None => {
                let any_time = blocked(ALWAYS_ALLOWED);
                let always = any_time
                    .iter()
                    .filter(|b| !observed.contains(b.name))
                    .cloned()
                    .collect();
                (any_time, always)
            }
        };
        let default_decisions = default.decisions(Abi::X86_64, &ctx);
        let mut warnings = Vec::new();
        let denied_by_docker_default = observed
            .iter()
            .filter(|n| {
                if matches!(
                    default_allowed.get(*n),
                    Some(Verdict::Allowed | Verdict::AllowedWithArgs)
                ) {
                    return false;
                }
                // Answered ENOSYS on purpose: callers fall back (glibc: clone3 → clone).
                if default_decisions.get(*n).and_then(|d| d.outright)
                    == Some(Action::Errno(ENOSYS))
                {
                    warnings.push(format!(
                        "{n} was observed; Docker's default answers it with ENOSYS so that callers fall back (glibc uses clone), and so does this profile"
                    ));
                    return false;
                }
                true
            })
            .map(|n| n.to_string())
            .collect();
        let argument_rules = argument_lines(profile, learned, &ctx);
        Report {
            target: target.to_string(),
            mode,
            complete: true,
            exit_code: None,
            stopped_by: None,
            duration_seconds: 0.0,
            total_calls: snap.total_calls(),
            allowed: allowed.len(),
            docker_default_allowed: default_allowed.len(),
            kernel_syscalls: kernel,
            reduction_vs_docker_default_percent: percent_less(allowed.len(), default_allowed.len()),
            reduction_vs_kernel_percent: percent_less(allowed.len(), kernel),
            blocked_dangerous,
            allowed_dangerous,
            always_allowed,
            allowed_at_any_time,
            denied_by_docker_default,
            bound: None,
            not_learned: Vec::new(),
            argument_rules,
            runs: Vec::new(),
            verified: None,
            verified_by: None,
            probe: None,
            phases: Vec::new(),
            verification: None,
            out_of_range_calls: snap.out_of_range,
            ran: ProgramsRun {
                programs: snap.programs.keys().cloned().collect(),
                ..ProgramsRun::default()
            },
            arches: ArchSection::of(profile, &[], &ctx),
            hardening: None,
            warnings,
            syscalls,
            runtime_calls: SyscallLine::runtime(&snap.runtime),
        }
    }

    /// Whether anything was observed: a report of a profile file observes nothing.
    pub fn observed(&self) -> bool {
        self.mode != "profile"
    }
}

/// Marks the calls of each program's ceiling that `profile` allows although training never
/// saw them: only the others can fail a path training missed.
fn mark_allowed(coverage: &mut Coverage, profile: &Profile, ctx: &Context) {
    let mut decisions = BTreeMap::new();
    for unseen in coverage
        .programs
        .iter_mut()
        .flat_map(|p| p.unseen.iter_mut())
    {
        let of_abi = decisions
            .entry(unseen.abi)
            .or_insert_with(|| profile.decisions(unseen.abi, ctx));
        unseen.allowed = of_abi
            .get(unseen.name.as_str())
            .is_some_and(|d| !d.denied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        names::SyscallId,
        recorder::{FirstProgram, Observed},
        report::Render as _,
    };

    fn snapshot(names: &[(u32, u64)]) -> Snapshot {
        let mut snap = Snapshot {
            ..Default::default()
        };
        for &(nr, count) in names {
            snap.syscalls.insert(
                SyscallId {
                    abi: Abi::X86_64,
                    nr,
                },
                Observed {
                    count,
                    first: Some(FirstProgram {
                        comm: "sh".into(),
                        pid: 7,
                    }),
                },
            );
        }
        snap
    }

    #[test]
    fn reduction_and_dangerous() {
        // read, write, exit_group, unshare(272)
        let snap = snapshot(&[(0, 5), (1, 3), (231, 1), (272, 1)]);
        let abis = BTreeSet::from([Abi::X86_64]);
        let profile = Profile::allowing(["read", "write", "exit_group", "unshare"], &abis);
        let learned = Learned {
            profile,
            denied_by_bound: Vec::new(),
            args: Vec::new(),
            always_allowed: Vec::new(),
            required: Vec::new(),
        };
        let r = Report::new("img:tag", false, &snap, &learned, "allow-all");
        assert_eq!(r.allowed, 4);
        assert_eq!(r.total_calls, 10);
        assert_eq!(r.denied_by_docker_default, ["unshare"]);
        let blocked: Vec<_> = r.blocked_dangerous.iter().map(|b| b.name).collect();
        for name in [
            "chroot",
            "personality",
            "ptrace",
            "memfd_create",
            "vmsplice",
        ] {
            assert!(blocked.contains(&name), "{name}");
        }
        assert!(!blocked.contains(&"mount"), "the default denies it already");
        assert!(!blocked.contains(&"unshare"), "allowed here");
        let json: serde_json::Value = serde_json::from_str(&r.json().unwrap()).unwrap();
        assert_eq!(json["syscalls"][0]["name"], "exit_group", "sorted by name");
        assert_eq!(json["syscalls"][0]["first_program"], "sh");
        // 4 of the 309 names Docker's default allows and of the pinned table's 383.
        assert_eq!(json["allowed"], 4);
        assert_eq!(json["docker_default_allowed"], 309);
        assert_eq!(json["kernel_syscalls"], 383);
        assert_eq!(json["reduction_vs_docker_default_percent"], 98.7);
        assert_eq!(json["reduction_vs_kernel_percent"], 99.0);
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "profile for img:tag (workload did not finish)",
                "  allows 4 syscalls: 98.7% fewer than Docker's default (309), 99.0% fewer than the kernel's table (383)",
                "  observed 10 calls of 4 syscalls in 0.0s",
            ]
        );
        assert!(lines.contains(&"  needs what Docker's default denies: unshare"));
        assert!(lines.contains(&"  unshare                             1  sh"));
        let md = r.markdown();
        for line in [
            "| this profile | 4 | |",
            "| Docker's default (x86_64, default capabilities) | 309 | 98.7% fewer |",
            "| kernel's x86_64 table | 383 | 99.0% fewer |",
            "| `unshare` | 1 | sh |",
        ] {
            assert!(md.lines().any(|l| l == line), "{line}\n{md}");
        }
    }

    #[test]
    fn argument_rules_in_words() {
        use crate::seccomp::{LearnArgs, Observation, learn};
        let mut obs = Observation::default();
        for nr in [0u32, 41, 57] {
            obs.calls.insert(
                SyscallId {
                    abi: Abi::X86_64,
                    nr,
                },
                1,
            );
        }
        obs.args.insert(
            SyscallId {
                abi: Abi::X86_64,
                nr: 41,
            },
            crate::seccomp::ArgValues {
                tuples: [[2, 1], [1, 1]].into_iter().collect(),
                overflowed: false,
            },
        );
        let ctx = Context::docker_default();
        let learned = learn(&obs, &Profile::docker_default(), &ctx, LearnArgs::Default);
        let r = Report::new(
            "img",
            false,
            &Snapshot::default(),
            &learned,
            "docker-default",
        );
        let socket = &r.argument_rules[0];
        assert_eq!(socket.syscall, "socket");
        assert_eq!(
            socket.allows,
            ["AF_UNIX, SOCK_STREAM", "AF_INET, SOCK_STREAM"]
        );
        assert_eq!(
            socket.blocks_beyond_default,
            [
                "AF_INET SOCK_DGRAM",
                "AF_INET SOCK_RAW",
                "AF_INET6 SOCK_STREAM",
                "AF_INET6 SOCK_RAW",
                "AF_NETLINK",
                "AF_PACKET SOCK_RAW"
            ]
        );
        assert!(r.text().contains(
            "socket: AF_UNIX, SOCK_STREAM; AF_INET, SOCK_STREAM; blocks AF_INET SOCK_DGRAM"
        ));
        // clone: the default's namespace mask, so nothing beyond it is blocked; it is listed.
        assert!(r.argument_rules.iter().all(|a| a.syscall != "clone"));
    }

    #[test]
    fn a_wider_profile_says_more() {
        let wide = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#,
            std::path::Path::new("w"),
        )
        .expect("parses");
        let r = Report::for_profile("w", &wide);
        assert!(r.reduction_vs_docker_default_percent < 0.0);
        for text in [r.text(), r.markdown()] {
            assert!(text.contains("% more than Docker's default") || text.contains("% more |"));
            assert!(!text.contains("-2"), "{text}");
        }
    }
}
