//! The reduction report: what was observed, what the profile allows, and how that compares with
//! Docker's default profile and the kernel's table. Rendered as text, Markdown or JSON.
use std::{collections::BTreeSet, fmt::Write as _};

pub mod arches;

use serde::Serialize;

use crate::{
    names::{Abi, SyscallId},
    recorder::{Observed, Snapshot},
    seccomp::{
        Action, Arg, Context, Learned, Profile, Verdict, conditions::rule_region, learn::rule_words,
    },
};

/// Argument values worth naming when a profile allows or blocks them: (syscall, values of
/// arguments 0 and 1, words).
const PROBES: &[(&str, [Option<u64>; 2], &str)] = &[
    ("socket", [Some(1), Some(1)], "AF_UNIX SOCK_STREAM"),
    ("socket", [Some(2), Some(1)], "AF_INET SOCK_STREAM"),
    ("socket", [Some(2), Some(2)], "AF_INET SOCK_DGRAM"),
    ("socket", [Some(2), Some(3)], "AF_INET SOCK_RAW"),
    ("socket", [Some(10), Some(1)], "AF_INET6 SOCK_STREAM"),
    ("socket", [Some(10), Some(3)], "AF_INET6 SOCK_RAW"),
    ("socket", [Some(16), Some(3)], "AF_NETLINK"),
    ("socket", [Some(17), Some(3)], "AF_PACKET SOCK_RAW"),
    ("socket", [Some(38), Some(5)], "AF_ALG"),
    ("socket", [Some(40), Some(1)], "AF_VSOCK"),
    ("personality", [Some(0x40000), None], "ADDR_NO_RANDOMIZE"),
    ("personality", [Some(8), None], "PER_LINUX_32BIT"),
    ("clone", [Some(0x1000_0011), None], "CLONE_NEWUSER"),
    ("clone", [Some(0x4000_0011), None], "CLONE_NEWNET"),
    ("clone", [Some(0x2_0011), None], "CLONE_NEWNS"),
];

/// A probe request's variant (` (range)`) and its status or error, for the report.
fn probe_words(r: &crate::session::ProbeRequest) -> (String, String) {
    let status = r
        .status
        .map(|s| s.to_string())
        .or_else(|| r.error.clone())
        .unwrap_or_default();
    let variant = r
        .variant
        .as_deref()
        .map(|v| format!(" ({v})"))
        .unwrap_or_default();
    (variant, status)
}

/// The syscalls first seen in one phase of a probed run.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseLine {
    pub phase: String,
    pub added: Vec<String>,
}

/// A syscall the profile allows only for some arguments.
#[derive(Clone, Debug, Serialize)]
pub struct ArgumentLine {
    pub syscall: String,
    /// Each allowed case in words.
    pub allows: Vec<String>,
    /// Notable argument values this profile denies that Docker's default allows.
    pub blocks_beyond_default: Vec<String>,
    /// The learned values overflowed the kernel's bound: the base's rule was kept instead.
    pub fell_back: bool,
}

impl ArgumentLine {
    /// `socket: AF_INET, SOCK_STREAM; AF_UNIX, SOCK_STREAM; blocks AF_PACKET SOCK_RAW, ... that
    /// Docker's default allows`, with names quoted by `q`.
    pub fn sentence(&self, q: &str) -> String {
        let mut s = format!("{q}{}{q}: {}", self.syscall, self.allows.join("; "));
        if !self.blocks_beyond_default.is_empty() {
            let _ = write!(
                s,
                "; blocks {} that Docker's default allows",
                self.blocks_beyond_default.join(", ")
            );
        }
        if self.fell_back {
            s.push_str(" (too many values to learn: the base's rule)");
        }
        s
    }
}

/// The argument-conditioned syscalls of `profile`, with what they block beyond the default.
fn argument_lines(
    profile: &Profile,
    learned: Option<&Learned>,
    ctx: &Context,
) -> Vec<ArgumentLine> {
    let mine = profile.decisions(Abi::X86_64, ctx);
    let theirs = Profile::docker_default().decisions(Abi::X86_64, ctx);
    let mut out = Vec::new();
    for (name, d) in &mine {
        if d.denied() || d.lower.is_all() {
            continue;
        }
        let mut allows: Vec<String> = profile
            .syscalls
            .iter()
            .filter(|r| r.applies(ctx) && r.act().runs() && r.all_names().any(|n| n == name))
            .map(|r| rule_words(name, &r.args))
            .collect();
        allows.dedup();
        let blocks = PROBES
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter(|(_, values, _)| {
                let args: Vec<Arg> = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| Arg::eq(i as u32, v)))
                    .collect();
                let probe = rule_region(&args);
                theirs.get(name).is_some_and(|t| probe.within(&t.lower)) && !probe.within(&d.upper)
            })
            .map(|(_, _, words)| words.to_string())
            .collect();
        out.push(ArgumentLine {
            syscall: name.to_string(),
            allows,
            blocks_beyond_default: blocks,
            fell_back: learned
                .is_some_and(|l| l.args.iter().any(|a| a.syscall == *name && a.fell_back)),
        });
    }
    out
}

/// Syscalls Docker's default may allow that a workload rarely needs, with why they matter.
pub const DANGEROUS: &[(&str, &str)] = &[
    (
        "add_key",
        "adds keys to the kernel keyring, which is not namespaced",
    ),
    ("bpf", "loads eBPF programs into the kernel"),
    (
        "chroot",
        "changes the root directory; a classic step in container escapes",
    ),
    (
        "clone3",
        "creates processes and namespaces with flags seccomp can't inspect",
    ),
    ("fanotify_init", "watches filesystem activity system-wide"),
    (
        "io_uring_enter",
        "drives io_uring, a second syscall interface seccomp can't see into",
    ),
    (
        "io_uring_register",
        "configures io_uring, a frequent source of kernel exploits",
    ),
    (
        "io_uring_setup",
        "creates io_uring instances that bypass per-syscall filtering",
    ),
    (
        "keyctl",
        "manipulates the kernel keyring, which is not namespaced",
    ),
    (
        "memfd_create",
        "creates anonymous executable files: fileless payload staging",
    ),
    ("mknod", "creates device nodes"),
    ("mknodat", "creates device nodes"),
    ("mount", "mounts filesystems"),
    (
        "name_to_handle_at",
        "obtains file handles, the first half of handle-based escapes",
    ),
    (
        "open_by_handle_at",
        "opens files by handle, bypassing the mount namespace (Shocker)",
    ),
    (
        "perf_event_open",
        "opens performance counters: kernel info leaks and side channels",
    ),
    (
        "personality",
        "changes the execution domain; can switch off ASLR",
    ),
    (
        "pidfd_getfd",
        "steals file descriptors from other processes",
    ),
    ("pivot_root", "changes the root mount"),
    ("process_vm_readv", "reads another process's memory"),
    ("process_vm_writev", "writes another process's memory"),
    ("ptrace", "traces and modifies other processes"),
    (
        "request_key",
        "requests keys from the kernel keyring, which is not namespaced",
    ),
    ("setns", "joins other namespaces"),
    ("umount2", "unmounts filesystems, exposing what mounts hid"),
    (
        "unshare",
        "creates namespaces: user namespaces open kernel attack surface",
    ),
    (
        "userfaultfd",
        "stalls page faults at will, a staple of kernel race exploits",
    ),
    (
        "vmsplice",
        "splices user pages into pipes, used in page-cache exploits (Dirty Pipe)",
    ),
];

#[derive(Clone, Debug, Serialize)]
pub struct SyscallLine {
    pub name: String,
    pub abi: Abi,
    pub count: u64,
    pub first_program: Option<String>,
    pub first_pid: Option<u32>,
}

impl SyscallLine {
    /// One line per native call the container runtime made before it handed over.
    pub fn runtime(map: &std::collections::BTreeMap<u32, Observed>) -> Vec<SyscallLine> {
        let native: std::collections::BTreeMap<SyscallId, Observed> = map
            .iter()
            .map(|(nr, obs)| {
                (
                    SyscallId {
                        abi: Abi::X86_64,
                        nr: *nr,
                    },
                    obs.clone(),
                )
            })
            .collect();
        SyscallLine::all(&native)
    }

    /// One line per syscall, sorted by ABI and name.
    pub fn all(map: &std::collections::BTreeMap<SyscallId, Observed>) -> Vec<SyscallLine> {
        let mut lines: Vec<SyscallLine> = map
            .iter()
            .map(|(id, obs)| SyscallLine {
                name: id.name(),
                abi: id.abi,
                count: obs.count,
                first_program: obs.first.as_ref().map(|f| f.comm.clone()),
                first_pid: obs.first.as_ref().map(|f| f.pid),
            })
            .collect();
        lines.sort_by(|a, b| (a.abi, &a.name).cmp(&(b.abi, &b.name)));
        lines
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Blocked {
    pub name: &'static str,
    pub reason: &'static str,
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
    pub stopped_by: Option<String>,
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
    /// Set when the workload did not end by itself: `duration`, `exercise`, `interrupted` or
    /// `daemon_lost` (the Docker daemon went away).
    pub stopped_by: Option<String>,
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
    /// The calls allowed at any time (signal returns, yields) that the profile allows, whether
    /// or not a run happened to make them: the summary lists these, which don't vary by run.
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
    /// The built-in HTTP probe's requests, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::session::ProbeReport>,
    /// With the probe: the syscalls first seen in each phase (start, probe, stop).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseLine>,
    /// How that verification went: `passed`, `failed`, `incomplete`, or why it did not finish
    /// (`interrupted`, `not_ready`, `daemon_lost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    pub out_of_range_calls: u64,
    /// For a profile meant for several platforms: each one's side, and what was derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arches: Option<arches::ArchSection>,
    pub warnings: Vec<String>,
}

/// A reduction as words: `23.6% fewer`, or `23.6% more` when it is negative.
pub fn fewer_or_more(percent_less: f64) -> String {
    if percent_less < 0.0 {
        format!("{:.1}% more", -percent_less)
    } else {
        format!("{percent_less:.1}% fewer")
    }
}

fn percent_less(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    tenths(100.0 * (1.0 - part as f64 / whole as f64))
}

/// `x` rounded to one decimal, as reports show percentages and durations.
pub fn tenths(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl Report {
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
        r.warnings.extend(profile.unknown_names_warning());
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
        let blocked_dangerous = DANGEROUS
            .iter()
            .filter(|(name, _)| default_allowed.contains_key(name) && !allowed.contains_key(name))
            .map(|&(name, reason)| Blocked { name, reason })
            .collect();
        let allowed_dangerous = DANGEROUS
            .iter()
            .filter(|(name, _)| allowed.contains_key(name))
            .map(|&(name, reason)| Blocked { name, reason })
            .collect();
        let blocked = |list: &[(&'static str, &'static str)]| -> Vec<Blocked> {
            list.iter()
                .filter(|(name, _)| allowed.contains_key(name))
                .map(|&(name, reason)| Blocked { name, reason })
                .collect()
        };
        let (allowed_at_any_time, always_allowed) = match learned {
            Some(l) => (blocked(&l.required), blocked(&l.always_allowed)),
            None => {
                let any_time = blocked(crate::seccomp::ALWAYS_ALLOWED);
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
                    == Some(Action::Errno(crate::seccomp::ENOSYS))
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
            probe: None,
            phases: Vec::new(),
            verification: None,
            out_of_range_calls: snap.out_of_range,
            arches: arches::ArchSection::of(profile, &[], &ctx),
            warnings,
            syscalls,
            runtime_calls: SyscallLine::runtime(&snap.runtime),
        }
    }

    fn observed(&self) -> bool {
        self.mode != "profile"
    }

    pub fn to_json(&self) -> crate::Result<String> {
        crate::output::json(self)
    }

    fn status(&self) -> String {
        if !self.observed() {
            return "a profile file; nothing observed".into();
        }
        let mut s = String::new();
        match (self.stopped_by.as_deref(), self.exit_code) {
            (Some("interrupted"), _) => s.push_str("interrupted"),
            (Some("duration"), _) => s.push_str("stopped when --duration elapsed"),
            (Some("exercise"), _) => s.push_str("stopped when the exercise finished"),
            (Some("daemon_lost"), _) => s.push_str("the Docker daemon went away"),
            (Some(other), _) => {
                let _ = write!(s, "stopped ({other})");
            }
            (None, Some(code)) => {
                let _ = write!(s, "workload exited {code}");
            }
            (None, None) => s.push_str("workload did not finish"),
        }
        if !self.complete {
            s.push_str("; recording is PARTIAL");
        }
        s
    }

    /// Plain text for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "profile for {} ({})", self.target, self.status());
        let _ = writeln!(
            out,
            "  allows {} syscalls: {} than Docker's default ({}), {} than the kernel's table ({})",
            self.allowed,
            fewer_or_more(self.reduction_vs_docker_default_percent),
            self.docker_default_allowed,
            fewer_or_more(self.reduction_vs_kernel_percent),
            self.kernel_syscalls
        );
        if self.observed() {
            let _ = writeln!(
                out,
                "  observed {} calls of {} syscalls in {:.1}s",
                self.total_calls,
                self.syscalls.len(),
                self.duration_seconds
            );
        }
        if !self.runtime_calls.is_empty() {
            let _ = writeln!(
                out,
                "  the container runtime's calls before it handed over ({}, allowed so that the container starts): {}",
                self.runtime_calls.len(),
                self.runtime_calls
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        if !self.runs.is_empty() {
            let _ = writeln!(out, "  runs (distinct syscalls, new ones):");
            for r in &self.runs {
                let _ = writeln!(
                    out,
                    "    run {:<3} {:>4} {:>+4}  {}",
                    r.run,
                    r.distinct,
                    r.added,
                    r.added_names.join(" ")
                );
            }
        }
        if let Some(probe) = &self.probe {
            let _ = writeln!(out, "  HTTP probe: {} request(s)", probe.requests.len());
            for r in &probe.requests {
                let (variant, status) = probe_words(r);
                let _ = writeln!(out, "    {:<7} {}{variant}: {status}", r.method, r.url);
            }
            for s in &probe.skipped {
                let _ = writeln!(out, "    skipped {s}");
            }
        }
        for p in &self.phases {
            let _ = writeln!(
                out,
                "  first seen while {}: {}",
                match p.phase.as_str() {
                    "start" => "starting",
                    "probe" => "probed",
                    _ => "stopping",
                },
                if p.added.is_empty() {
                    "nothing new".to_string()
                } else {
                    p.added.join(" ")
                }
            );
        }
        if let Some(ok) = self.verified {
            let _ = writeln!(
                out,
                "  verified under enforcement: {}",
                if ok { "PASS" } else { "FAIL" }
            );
        }
        if !self.blocked_dangerous.is_empty() {
            let _ = writeln!(out, "  blocks, though Docker's default allows them:");
            for b in &self.blocked_dangerous {
                let _ = writeln!(out, "    {:<18} {}", b.name, b.reason);
            }
        }
        if self.observed() {
            for b in &self.always_allowed {
                let _ = writeln!(out, "  also allows {}, not observed: {}", b.name, b.reason);
            }
        }
        if !self.allowed_dangerous.is_empty() {
            let _ = writeln!(out, "  allows these dangerous syscalls:");
            for b in &self.allowed_dangerous {
                let _ = writeln!(out, "    {:<18} {}", b.name, b.reason);
            }
        }
        for a in &self.argument_rules {
            let _ = writeln!(out, "  {}", a.sentence(""));
        }
        if !self.not_learned.is_empty() {
            let _ = writeln!(
                out,
                "  observed, but denied by {} and so not allowed: {}",
                self.bound.as_deref().unwrap_or("the base"),
                self.not_learned.join(", ")
            );
        }
        if !self.denied_by_docker_default.is_empty() {
            let _ = writeln!(
                out,
                "  needs what Docker's default denies: {}",
                self.denied_by_docker_default.join(", ")
            );
        }
        if let Some(a) = &self.arches {
            out.push_str(&a.to_text());
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        if !self.observed() {
            return out;
        }
        let _ = writeln!(out, "  {:<24} {:>12}  first program", "syscall", "calls");
        for s in &self.syscalls {
            let _ = writeln!(
                out,
                "  {:<24} {:>12}  {}",
                display_name(s),
                s.count,
                s.first_program.as_deref().unwrap_or("?")
            );
        }
        out
    }

    /// Markdown, fit for a CI job summary or a review.
    pub fn to_markdown(&self) -> String {
        self.markdown(true)
    }

    /// Markdown without what changes from run to run (calls, first programs, what each run
    /// added), to commit beside the profile: it changes only when the profile does.
    pub fn to_summary_markdown(&self) -> String {
        self.markdown(false)
    }

    fn markdown(&self, per_run: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Seccomp profile for `{}`\n", self.target);
        let _ = writeln!(out, "Status: {}.\n", self.status());
        let _ = writeln!(out, "| | syscalls | this profile allows |");
        let _ = writeln!(out, "|---|---:|---:|");
        let _ = writeln!(out, "| this profile | {} | |", self.allowed);
        let _ = writeln!(
            out,
            "| Docker's default (x86_64, default capabilities) | {} | {} |",
            self.docker_default_allowed,
            fewer_or_more(self.reduction_vs_docker_default_percent)
        );
        let _ = writeln!(
            out,
            "| kernel's x86_64 table | {} | {} |\n",
            self.kernel_syscalls,
            fewer_or_more(self.reduction_vs_kernel_percent)
        );
        if !per_run && !self.runs.is_empty() {
            let _ = writeln!(out, "Learned from {} runs.\n", self.runs.len());
        }
        if per_run && !self.runs.is_empty() {
            let _ = writeln!(out, "## Convergence\n");
            let _ = writeln!(out, "| run | distinct syscalls | new | new syscalls |");
            let _ = writeln!(out, "|---:|---:|---:|---|");
            for r in &self.runs {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    r.run,
                    r.distinct,
                    r.added,
                    r.added_names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            out.push('\n');
        }
        if let Some(ok) = self.verified {
            let _ = writeln!(
                out,
                "Verified under enforcement right after training: **{}**.\n",
                if ok { "PASS" } else { "FAIL" }
            );
        }
        if !self.blocked_dangerous.is_empty() {
            let _ = writeln!(out, "## Blocked here, allowed by Docker's default\n");
            for b in &self.blocked_dangerous {
                let _ = writeln!(out, "- `{}`: {}", b.name, b.reason);
            }
            out.push('\n');
        }
        let (heading, always) = if per_run {
            ("Allowed without being observed", &self.always_allowed)
        } else {
            ("Allowed whether observed or not", &self.allowed_at_any_time)
        };
        if self.observed() && !always.is_empty() {
            let _ = writeln!(out, "## {heading}\n");
            for b in always {
                let _ = writeln!(out, "- `{}`: {}", b.name, b.reason);
            }
            out.push('\n');
        }
        if let Some(probe) = &self.probe {
            let _ = writeln!(out, "## HTTP probe\n");
            let _ = writeln!(out, "| request | status |");
            let _ = writeln!(out, "|---|---|");
            for r in &probe.requests {
                let (variant, status) = probe_words(r);
                let _ = writeln!(out, "| `{} {}`{variant} | {status} |", r.method, r.url);
            }
            for s in &probe.skipped {
                let _ = writeln!(out, "\nSkipped: {s}");
            }
            for p in &self.phases {
                let _ = writeln!(
                    out,
                    "\nFirst seen in the {} phase: {}",
                    p.phase,
                    if p.added.is_empty() {
                        "nothing new".to_string()
                    } else {
                        p.added
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                );
            }
            out.push('\n');
        }
        if !self.allowed_dangerous.is_empty() {
            let _ = writeln!(out, "## Dangerous syscalls this profile allows\n");
            for b in &self.allowed_dangerous {
                let _ = writeln!(out, "- `{}`: {}", b.name, b.reason);
            }
            out.push('\n');
        }
        if !self.argument_rules.is_empty() {
            let _ = writeln!(out, "## Allowed only for some arguments\n");
            for a in &self.argument_rules {
                let _ = writeln!(out, "{}\n", a.sentence("`"));
            }
        }
        if !self.not_learned.is_empty() {
            let _ = writeln!(
                out,
                "## Observed, but denied by {}: not allowed\n",
                self.bound.as_deref().unwrap_or("the base")
            );
            for n in &self.not_learned {
                let _ = writeln!(out, "- `{n}`");
            }
            out.push('\n');
        }
        if !self.denied_by_docker_default.is_empty() {
            let _ = writeln!(out, "## Needed, but denied by Docker's default\n");
            for n in &self.denied_by_docker_default {
                let _ = writeln!(out, "- `{n}`");
            }
            out.push('\n');
        }
        if let Some(a) = &self.arches {
            out.push_str(&a.to_markdown());
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "## Warnings\n");
            for w in &self.warnings {
                let _ = writeln!(out, "- {w}");
            }
            out.push('\n');
        }
        if !self.observed() {
            return out;
        }
        if !per_run {
            let _ = writeln!(
                out,
                "Calls per syscall, the first program to make each and what each run added are in the full report: they change from run to run."
            );
            return out;
        }
        let _ = writeln!(out, "## Observed syscalls\n");
        let _ = writeln!(out, "| syscall | calls | first program |");
        let _ = writeln!(out, "|---|---:|---|");
        for s in &self.syscalls {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                display_name(s),
                s.count,
                s.first_program.as_deref().unwrap_or("?")
            );
        }
        if !self.runtime_calls.is_empty() {
            let _ = writeln!(
                out,
                "\n## The container runtime's calls before it handed over\n\nMade under the filter by the runtime's init before the exec of the container's process; allowed so that the container starts, never counted as the workload's.\n"
            );
            let _ = writeln!(out, "| syscall | calls | first program |");
            let _ = writeln!(out, "|---|---:|---|");
            for s in &self.runtime_calls {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    s.name,
                    s.count,
                    s.first_program.as_deref().unwrap_or("?")
                );
            }
        }
        out
    }
}

/// A report that renders as text, Markdown and JSON.
pub trait Render {
    fn text(&self) -> String;
    fn markdown(&self) -> String;
    fn json(&self) -> crate::Result<String>;
}

/// Report types render through their own `to_text`, `to_markdown` and `to_json`.
macro_rules! render_with_inherent_methods {
    ($($t:ty),*) => {$(
        impl $crate::report::Render for $t {
            fn text(&self) -> String {
                self.to_text()
            }
            fn markdown(&self) -> String {
                self.to_markdown()
            }
            fn json(&self) -> crate::Result<String> {
                self.to_json()
            }
        }
    )*};
}

pub(crate) use render_with_inherent_methods;

render_with_inherent_methods!(Report, Verification);

/// Argument values a profile denied, for one syscall.
#[derive(Clone, Debug, Serialize)]
pub struct DeniedArguments {
    pub syscall: String,
    /// Each denied case in words (`AF_PACKET, SOCK_RAW`).
    pub values: Vec<String>,
    #[serde(skip)]
    pub raw: BTreeSet<[u64; 2]>,
}

/// The result of running a workload under a profile: every call the profile denied.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    pub target: String,
    pub profile: String,
    /// The errno denied calls returned during verification, in place of the profile's.
    pub errno: u32,
    pub passed: bool,
    /// The syscalls the profile denied, with counts and the first program denied.
    pub denied: Vec<SyscallLine>,
    /// What the profile denied the container runtime before it handed over to the workload:
    /// the container could not start.
    pub runtime_denied: Vec<SyscallLine>,
    pub denied_calls: u64,
    /// For syscalls whose arguments are learned: the argument values that were denied.
    pub denied_arguments: Vec<DeniedArguments>,
    pub exit_code: Option<i32>,
    /// The workload died of SIGSYS (status 159): the filter killed it, for a call no counter
    /// sees (from an architecture the profile doesn't list, or under a kill or trap rule).
    pub killed_by_sigsys: bool,
    pub stopped_by: Option<String>,
    /// False when interrupted, or nothing could be checked.
    pub complete: bool,
    pub duration_seconds: f64,
    pub notes: Vec<String>,
}

/// The status a process killed by SIGSYS ends with, as the shell and Docker report it.
const EXIT_SIGSYS: i32 = 128 + libc::SIGSYS;

impl Verification {
    pub fn new(target: &str, profile: &str, errno: u32, snap: &Snapshot) -> Self {
        let denied = SyscallLine::all(&snap.denied);
        let mut notes = Vec::new();
        if snap.out_of_range_denied > 0 {
            notes.push(format!(
                "{} denied call(s) with numbers outside every syscall table",
                snap.out_of_range_denied
            ));
        }
        let denied_arguments = snap
            .denied_args
            .iter()
            .filter_map(|(id, values)| {
                let name = id.abi.name(id.nr)?;
                let spec = crate::seccomp::ArgSpec::of(name)?;
                Some(DeniedArguments {
                    syscall: name.to_string(),
                    values: values
                        .tuples
                        .iter()
                        .map(|t| crate::seccomp::learn::spec_words(spec, *t))
                        .collect(),
                    raw: values.tuples.clone(),
                })
            })
            .collect();
        let runtime_denied = SyscallLine::runtime(&snap.runtime_denied);
        for d in &runtime_denied {
            notes.push(format!(
                "{} was denied {} before it handed over to the workload: the container could not start",
                d.first_program.as_deref().unwrap_or("the container runtime"),
                d.name
            ));
        }
        Verification {
            target: target.to_string(),
            profile: profile.to_string(),
            errno,
            denied_arguments,
            passed: denied.is_empty() && runtime_denied.is_empty() && snap.out_of_range_denied == 0,
            denied_calls: denied
                .iter()
                .chain(runtime_denied.iter())
                .map(|d| d.count)
                .sum::<u64>()
                + snap.out_of_range_denied,
            denied,
            runtime_denied,
            exit_code: None,
            killed_by_sigsys: false,
            stopped_by: None,
            complete: true,
            duration_seconds: 0.0,
            notes,
        }
    }

    /// Records how the workload ended. Death by SIGSYS is how seccomp kills, so it fails the
    /// verification even when no denial was counted.
    pub fn set_exit_code(&mut self, code: Option<i32>) {
        self.exit_code = code;
        self.killed_by_sigsys = code == Some(EXIT_SIGSYS);
        if self.killed_by_sigsys {
            self.passed = false;
            self.notes.push(format!(
                "the workload was killed by SIGSYS (status {EXIT_SIGSYS}), as seccomp kills: the filter stopped a call no counter sees, one from an architecture the profile doesn't list (an i386 `int 0x80` call needs SCMP_ARCH_X86) or one under a kill or trap rule"
            ));
        }
    }

    /// What failed, in one line: the denied syscalls with counts and first programs, and a
    /// death by SIGSYS.
    pub fn failures(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for d in &self.runtime_denied {
            parts.push(format!(
                "denied {} to {} (the container runtime, before it handed over): the container could not start",
                d.name,
                d.first_program.as_deref().unwrap_or("?")
            ));
        }
        if !self.denied.is_empty() {
            parts.push(format!(
                "denied {}",
                self.denied
                    .iter()
                    .map(|d| format!(
                        "{} ({}x, first by {})",
                        display_name(d),
                        d.count,
                        d.first_program.as_deref().unwrap_or("?")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.killed_by_sigsys {
            parts.push(format!(
                "killed the workload (SIGSYS, status {EXIT_SIGSYS})"
            ));
        }
        parts.join(" and ")
    }

    /// The denied argument values per syscall, for `--fix`.
    pub fn denied_values(&self) -> std::collections::BTreeMap<String, BTreeSet<[u64; 2]>> {
        self.denied_arguments
            .iter()
            .map(|d| (d.syscall.clone(), d.raw.clone()))
            .collect()
    }

    /// The names the profile would need (native ABI first) to let this run through.
    pub fn missing(&self) -> std::collections::BTreeMap<Abi, BTreeSet<String>> {
        let mut out: std::collections::BTreeMap<Abi, BTreeSet<String>> = Default::default();
        for d in self.denied.iter().chain(self.runtime_denied.iter()) {
            if d.abi.knows(&d.name) {
                out.entry(d.abi).or_default().insert(d.name.clone());
            }
        }
        out
    }

    pub fn to_json(&self) -> crate::Result<String> {
        crate::output::json(self)
    }

    fn verdict(&self) -> String {
        let mut s = if self.passed {
            "PASS: the profile denied nothing".to_string()
        } else if let Some(d) = self.runtime_denied.first() {
            format!(
                "FAIL: {} was denied {}: the container could not start",
                d.first_program
                    .as_deref()
                    .unwrap_or("the container runtime"),
                self.runtime_denied
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if self.denied.is_empty() && self.killed_by_sigsys {
            "FAIL: the profile's filter killed the workload".to_string()
        } else {
            format!(
                "FAIL: the profile denied {} call(s) of {} syscall(s)",
                self.denied_calls,
                self.denied.len()
            )
        };
        match (self.stopped_by.as_deref(), self.exit_code) {
            (Some("interrupted"), _) => s.push_str("; interrupted, PARTIAL"),
            (Some("start_failed"), _) if self.runtime_denied.is_empty() => {
                s.push_str("; the container could not start")
            }
            (Some("daemon_lost"), _) => s.push_str("; the Docker daemon went away, PARTIAL"),
            (Some("not_ready"), _) => {
                s.push_str("; the container was not ready for the exercise, PARTIAL")
            }
            _ if self.killed_by_sigsys => {
                let _ = write!(s, "; the workload was killed by SIGSYS ({EXIT_SIGSYS})");
            }
            (None, Some(code)) if code != 0 => {
                let _ = write!(s, "; the workload exited {code}");
            }
            _ => {}
        }
        s
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "verify {} under {}: {}",
            self.target,
            self.profile,
            self.verdict()
        );
        if !self.denied.is_empty() {
            let _ = writeln!(out, "  {:<24} {:>12}  first program", "denied", "calls");
            for d in &self.denied {
                let _ = writeln!(
                    out,
                    "  {:<24} {:>12}  {}",
                    display_name(d),
                    d.count,
                    d.first_program.as_deref().unwrap_or("?")
                );
            }
        }
        for d in &self.denied_arguments {
            let _ = writeln!(
                out,
                "  {} denied for arguments: {}",
                d.syscall,
                d.values.join("; ")
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Verification of `{}`
",
            self.profile
        );
        let _ = writeln!(
            out,
            "Workload: `{}`
",
            self.target
        );
        let _ = writeln!(
            out,
            "**{}**
",
            self.verdict()
        );
        if !self.denied.is_empty() {
            let _ = writeln!(out, "| denied syscall | calls | first program |");
            let _ = writeln!(out, "|---|---:|---|");
            for d in &self.denied {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    display_name(d),
                    d.count,
                    d.first_program.as_deref().unwrap_or("?")
                );
            }
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        out
    }
}

fn display_name(s: &SyscallLine) -> String {
    match s.abi {
        Abi::X86_64 => s.name.clone(),
        abi => format!("{} ({abi})", s.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        names::SyscallId,
        recorder::{FirstProgram, Observed},
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
    fn death_by_sigsys_fails_verification() {
        let mut v = Verification::new("img", "p.json", 3797, &Snapshot::default());
        v.set_exit_code(Some(1));
        assert!(v.passed, "a workload's own failure is not a denial");
        assert!(
            v.to_text()
                .contains("PASS: the profile denied nothing; the workload exited 1")
        );
        v.set_exit_code(Some(159));
        assert!(!v.passed && v.killed_by_sigsys);
        assert!(v.to_text().contains(
            "FAIL: the profile's filter killed the workload; the workload was killed by SIGSYS (159)"
        ));
        assert_eq!(v.failures(), "killed the workload (SIGSYS, status 159)");
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
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["syscalls"][0]["name"], "exit_group", "sorted by name");
        assert_eq!(json["syscalls"][0]["first_program"], "sh");
        // 4 of the 309 names Docker's default allows and of the pinned table's 383.
        assert_eq!(json["allowed"], 4);
        assert_eq!(json["docker_default_allowed"], 309);
        assert_eq!(json["kernel_syscalls"], 383);
        assert_eq!(json["reduction_vs_docker_default_percent"], 98.7);
        assert_eq!(json["reduction_vs_kernel_percent"], 99.0);
        let text = r.to_text();
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
        let md = r.to_markdown();
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
        assert!(r.to_text().contains(
            "socket: AF_UNIX, SOCK_STREAM; AF_INET, SOCK_STREAM; blocks AF_INET SOCK_DGRAM"
        ));
        // clone: the default's namespace mask, so nothing beyond it is blocked; it is listed.
        assert!(r.argument_rules.iter().all(|a| a.syscall != "clone"));
    }

    #[test]
    fn percentages() {
        assert_eq!(percent_less(31, 309), 90.0);
        assert_eq!(percent_less(0, 0), 0.0);
        assert_eq!(fewer_or_more(90.0), "90.0% fewer");
        assert_eq!(fewer_or_more(-23.6), "23.6% more");
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
        for text in [r.to_text(), r.to_markdown()] {
            assert!(text.contains("% more than Docker's default") || text.contains("% more |"));
            assert!(!text.contains("-2"), "{text}");
        }
    }
}
