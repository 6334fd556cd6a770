//! The verification report: every call a profile denied while the workload ran under it,
//! enforced, and how the run ended.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
};

use serde::Serialize;

use super::{
    observed::{SyscallLine, markdown_table, table_name, text_table},
    render::Render,
};
use crate::{
    names::Abi,
    recorder::Snapshot,
    seccomp::{ArgSpec, Context, Profile, conditions::Region},
    session::{Exercised, StoppedBy, unexercised_words},
};

/// What a verification shows, and what it doesn't.
const SHOWS: &str =
    "what the workload did then works under the profile; a path it never took may still be denied";

/// What a verification with the training's own exercise says of it, and how to try others.
const TRAINING_OWN: (&str, &str) = (
    ", the one training ran",
    " (--verify-exercise CMD or --verify-probe verifies with another)",
);

/// The status a process killed by SIGSYS ends with, as the shell and Docker report it.
const EXIT_SIGSYS: i32 = 128 + libc::SIGSYS;

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
    /// Calls of the container runtime's tail the profile denies while the base allows them:
    /// the runtime can make each after installing the filter, failing the start when it does.
    pub runtime_lacking: Vec<String>,
    /// The runtime those are of (`runc 1.1.5+ds1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub denied_calls: u64,
    /// For syscalls whose arguments are learned: the argument values that were denied.
    pub denied_arguments: Vec<DeniedArguments>,
    pub exit_code: Option<i32>,
    /// The workload died of SIGSYS (status 159): the filter killed it, for a call no counter
    /// sees (from an architecture the profile doesn't list, or under a kill or trap rule).
    pub killed_by_sigsys: bool,
    pub stopped_by: Option<StoppedBy>,
    /// False when interrupted, or nothing could be checked.
    pub complete: bool,
    pub duration_seconds: f64,
    /// The profile the verified one replaces (`docker-default`, a file), when it was weighed
    /// against one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Denied syscalls the base denies too: the workload met them under the base in training
    /// and coped, so they don't fail the verification of a profile within that base.
    pub denied_by_base_too: Vec<String>,
    /// The exercise's exit status when it failed: the workload was not shown to work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exercise_failed: Option<i32>,
    /// What exercised the workload (`the HTTP probe (57 requests)`): the paths it took are
    /// shown to work under the profile, no others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exercised: Option<Exercised>,
    pub notes: Vec<String>,
    /// Under a least-privilege recipe: what it took away that the workload needed (a
    /// capability, a write the read-only root refused, a setuid exec no-new-privileges
    /// stopped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub privileges_denied: Vec<String>,
    /// Denied calls no table names; whether the verified profile is within its base.
    #[serde(skip)]
    out_of_range_denied: u64,
    #[serde(skip)]
    within_base: bool,
}

/// How the verification that follows a training went (the training report's
/// `verification`): its verdict, or why it did not finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationStatus {
    Passed,
    Failed,
    /// It ran to its end, but could not check everything.
    Incomplete,
    Interrupted,
    NotReady,
    DaemonLost,
}

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
                let spec = ArgSpec::of(name)?;
                Some(DeniedArguments {
                    syscall: name.to_string(),
                    values: values.tuples.iter().map(|t| spec.words(*t)).collect(),
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
        let mut v = Verification {
            target: target.to_string(),
            profile: profile.to_string(),
            errno,
            denied_arguments,
            passed: false,
            denied_calls: denied
                .iter()
                .chain(&runtime_denied)
                .map(|d| d.count)
                .sum::<u64>()
                + snap.out_of_range_denied,
            denied,
            runtime_denied,
            runtime_lacking: Vec::new(),
            runtime: None,
            exit_code: None,
            killed_by_sigsys: false,
            stopped_by: None,
            complete: true,
            duration_seconds: 0.0,
            base: None,
            denied_by_base_too: Vec::new(),
            exercise_failed: None,
            exercised: None,
            notes,
            privileges_denied: Vec::new(),
            out_of_range_denied: snap.out_of_range_denied,
            within_base: false,
        };
        v.judge();
        v
    }

    /// Decides `passed` from what was found: a denial (but one the base makes too, when the
    /// verified profile is within it), a denial of the runtime's, a death by SIGSYS, or an
    /// exercise that failed.
    fn judge(&mut self) {
        let forgive = self.within_base && self.coped();
        let failing = self
            .denied
            .iter()
            .filter(|d| !(forgive && self.denied_by_base_too.contains(&table_name(d))))
            .count();
        self.passed = failing == 0
            && self.runtime_denied.is_empty()
            && self.runtime_lacking.is_empty()
            && self.out_of_range_denied == 0
            && !self.killed_by_sigsys
            && self.exercise_failed.is_none()
            && self.privileges_denied.is_empty();
    }

    /// Records what a least-privilege recipe denied the workload (see
    /// [`Verification::privileges_denied`]): any of it fails the verification.
    pub fn set_privileges_denied(&mut self, denied: Vec<String>) {
        self.privileges_denied = denied;
        self.judge();
    }

    /// Names the denials `base` (named `label`) makes too, for the container's capabilities;
    /// when the verified profile allows nothing `base` forbids (`within`), they no longer fail
    /// the verification: the workload ran under the base in training and coped with them.
    pub fn weigh_against(&mut self, base: &Profile, label: &str, ctx: &Context, within: bool) {
        let values = self.denied_values();
        let mut too = Vec::new();
        for d in &self.denied {
            let decisions = base.decisions(d.abi, ctx);
            let Some(decision) = decisions.get(d.name.as_str()) else {
                continue;
            };
            let denied_too = match (ArgSpec::of(&d.name), values.get(&d.name)) {
                // Denied for some values: the base denies the call too if it denies each one.
                (Some(spec), Some(tuples)) if d.abi == Abi::X86_64 && !tuples.is_empty() => {
                    tuples.iter().all(|t| {
                        Region::of([spec.region(*t)])
                            .intersect(&decision.upper)
                            .is_empty()
                    })
                }
                _ => decision.upper.is_empty(),
            };
            if denied_too {
                too.push(table_name(d));
            }
        }
        self.base = Some(label.to_string());
        self.within_base = within;
        self.denied_by_base_too = too;
        self.judge();
        if !self.denied_by_base_too.is_empty() {
            self.notes.push(format!(
                "{label} denies {} too: {}",
                self.denied_by_base_too.join(", "),
                if !within {
                    "but the profile allows what it forbids, so that doesn't excuse the denial"
                } else if self.coped() {
                    "the workload copes with that under it, as it did in training, so it doesn't fail the verification"
                } else {
                    "but the workload did not get through its run, so that doesn't excuse the denial"
                }
            ));
        }
    }

    /// Records what the profile lacks of the tail of `runtime` (`lacking`: calls its init can
    /// make after installing the filter that the base allows): whether or not this run met
    /// one, a start fails whenever the runtime makes it.
    pub fn set_runtime_lacking(&mut self, runtime: &str, lacking: Vec<String>) {
        if !lacking.is_empty() {
            self.notes.push(format!(
                "the profile denies {}, which {runtime} can make after it installs the container's filter (`profile report` on a trained profile says why): a start fails whenever it does",
                lacking.join(", ")
            ));
        }
        self.runtime = Some(runtime.to_string());
        self.runtime_lacking = lacking;
        self.judge();
    }

    /// Records that the exercise exited `code`: whatever was denied, the workload was not shown
    /// to work.
    pub fn set_exercise_failed(&mut self, code: i32) {
        self.exercise_failed = Some(code);
        self.judge();
    }

    /// Records how the workload ended. Death by SIGSYS is how seccomp kills, so it fails the
    /// verification even when no denial was counted.
    pub fn set_exit_code(&mut self, code: Option<i32>) {
        self.exit_code = code;
        self.killed_by_sigsys = code == Some(EXIT_SIGSYS);
        self.judge();
        if self.killed_by_sigsys {
            self.notes.push(format!(
                "the workload was killed by SIGSYS (status {EXIT_SIGSYS}), as seccomp kills: the filter stopped a call no counter sees, one from an architecture the profile doesn't list (an i386 `int 0x80` call needs SCMP_ARCH_X86) or one under a kill or trap rule"
            ));
        }
    }

    /// What failed, in one line: what the container runtime was denied, the denied syscalls
    /// with counts and first programs, and a death by SIGSYS.
    pub fn failures(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for d in &self.runtime_denied {
            parts.push(format!(
                "denied {} to {} (the container runtime, before it handed over): the container could not start",
                d.name,
                d.first_program.as_deref().unwrap_or("?")
            ));
        }
        if !self.runtime_lacking.is_empty() {
            parts.push(format!(
                "lacks {}, which {} can make after installing the filter: a start fails whenever it does",
                self.runtime_lacking.join(", "),
                self.runtime.as_deref().unwrap_or("the container runtime")
            ));
        }
        if !self.denied.is_empty() {
            parts.push(format!(
                "denied {}",
                self.denied
                    .iter()
                    .map(|d| format!(
                        "{} ({}x, first by {})",
                        table_name(d),
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
        parts.extend(self.privileges_denied.iter().cloned());
        parts.join(" and ")
    }

    /// The denied argument values per syscall, for `--fix`.
    pub fn denied_values(&self) -> BTreeMap<String, BTreeSet<[u64; 2]>> {
        self.denied_arguments
            .iter()
            .map(|d| (d.syscall.clone(), d.raw.clone()))
            .collect()
    }

    /// Whether the workload got through its run: it ended by itself with status 0, or it was
    /// stopped as planned (duration, probe, an exercise that succeeded). Only then do the
    /// base's own denials not count: the workload coped with them.
    fn coped(&self) -> bool {
        match self.stopped_by {
            None => self.exit_code == Some(0),
            Some(StoppedBy::Duration | StoppedBy::Probe | StoppedBy::Exercise) => {
                self.exercise_failed.is_none()
            }
            Some(_) => false,
        }
    }

    /// How many denied syscalls the base's own denials excuse.
    fn forgiven(&self) -> usize {
        if self.within_base && self.coped() {
            self.denied_by_base_too.len()
        } else {
            0
        }
    }

    /// The names the profile would need (native ABI first) to let this run through.
    pub fn missing(&self) -> BTreeMap<Abi, BTreeSet<String>> {
        let mut out: BTreeMap<Abi, BTreeSet<String>> = BTreeMap::new();
        for d in self.denied.iter().chain(&self.runtime_denied) {
            if d.abi.knows(&d.name) {
                out.entry(d.abi).or_default().insert(d.name.clone());
            }
        }
        if !self.runtime_lacking.is_empty() {
            out.entry(Abi::X86_64)
                .or_default()
                .extend(self.runtime_lacking.iter().cloned());
        }
        out
    }

    /// Why it failed, in one line naming what was denied (the verdict, when nothing was).
    pub fn why_failed(&self) -> String {
        let failures = self.failures();
        let profile_failed =
            !self.denied.is_empty() || !self.runtime_denied.is_empty() || self.killed_by_sigsys;
        match self.exercise_failed.is_none() && profile_failed && !failures.is_empty() {
            // A death by SIGSYS is among the failures already.
            true if self.killed_by_sigsys => format!("FAIL: the profile {failures}"),
            true => format!("FAIL: the profile {failures}{}", self.ending()),
            false => self.verdict(),
        }
    }

    /// The verdict in one line, with how the run ended when that matters.
    fn verdict(&self) -> String {
        let mut s = if self.passed && !self.denied_by_base_too.is_empty() {
            format!(
                "PASS: the profile denied nothing {} allows (it denied {}, as {} does too)",
                self.base.as_deref().unwrap_or("the base"),
                self.denied_by_base_too.join(", "),
                self.base.as_deref().unwrap_or("the base")
            )
        } else if self.passed {
            "PASS: the profile denied nothing".to_string()
        } else if let Some(code) = self.exercise_failed {
            let denied = self.denied.len() - self.forgiven();
            format!(
                "FAIL: the exercise exited {code}: the workload was not shown to work under the profile{}",
                match denied {
                    0 => " (it denied nothing else)".to_string(),
                    n => format!(", which denied {n} syscall(s)"),
                }
            )
        } else if let Some(d) = self.runtime_denied.first() {
            let names: Vec<&str> = self
                .runtime_denied
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            format!(
                "FAIL: {} was denied {}: the container could not start",
                d.first_program
                    .as_deref()
                    .unwrap_or("the container runtime"),
                names.join(", ")
            )
        } else if !self.runtime_lacking.is_empty() && self.denied.is_empty() {
            format!(
                "FAIL: the profile lacks {}, which {} can make after installing the filter: a start fails whenever it does",
                self.runtime_lacking.join(", "),
                self.runtime.as_deref().unwrap_or("the container runtime")
            )
        } else if self.denied.is_empty() && !self.privileges_denied.is_empty() {
            format!(
                "FAIL: the least-privilege recipe took away what the workload needed: {}",
                self.privileges_denied.join("; ")
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
        s.push_str(&self.ending());
        s
    }

    /// How the run ended, when that matters to the verdict: `; the workload exited 1`.
    fn ending(&self) -> String {
        let mut s = String::new();
        match (self.stopped_by, self.exit_code) {
            (Some(StoppedBy::Interrupted), _) => s.push_str("; interrupted, PARTIAL"),
            // A denial of the runtime's says so already.
            (Some(StoppedBy::StartFailed), _) if self.runtime_denied.is_empty() => {
                s.push_str("; the container could not start")
            }
            (Some(StoppedBy::DaemonLost), _) => {
                s.push_str("; the Docker daemon went away, PARTIAL")
            }
            (Some(StoppedBy::Timeout), _) => {
                s.push_str("; the run did not end within --timeout and was stopped")
            }
            (Some(StoppedBy::NotReady), _) => {
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

    /// What the report says, in order.
    fn sections(&self) -> Vec<Section<'_>> {
        let mut out = vec![Section::Verdict(self.verdict())];
        if let Some(exercised) = &self.exercised {
            out.push(Section::Exercised(exercised));
            out.extend(unexercised_words(&exercised.unexercised).map(Section::NotExercised));
        }
        if !self.denied.is_empty() {
            out.push(Section::Denied(&self.denied));
        }
        if !self.denied_arguments.is_empty() {
            out.push(Section::DeniedArguments(&self.denied_arguments));
        }
        if !self.privileges_denied.is_empty() {
            out.push(Section::PrivilegesDenied(&self.privileges_denied));
        }
        if !self.notes.is_empty() {
            out.push(Section::Notes(&self.notes));
        }
        out
    }
}

/// One part of a verification report.
enum Section<'a> {
    /// The verdict, under the profile's and the workload's names.
    Verdict(String),
    /// What exercised the workload: what the verdict covers.
    Exercised(&'a Exercised),
    /// The ports the image EXPOSEs that nothing reached, in words.
    NotExercised(String),
    /// The denied syscalls with their counts and first programs.
    Denied(&'a [SyscallLine]),
    DeniedArguments(&'a [DeniedArguments]),
    /// What a least-privilege recipe took away that the workload needed.
    PrivilegesDenied(&'a [String]),
    Notes(&'a [String]),
}

impl Render for Verification {
    fn text(&self) -> String {
        let mut out = String::new();
        for section in self.sections() {
            match section {
                Section::Verdict(verdict) => {
                    let _ = writeln!(
                        out,
                        "verify {} under {}: {verdict}",
                        self.target, self.profile
                    );
                }
                Section::Exercised(e) => {
                    let (own, others) = own(e);
                    let _ = writeln!(out, "  exercised by {}{own}: {SHOWS}{others}", e.by);
                }
                Section::NotExercised(words) => {
                    let _ = writeln!(out, "  not exercised: {words}");
                }
                Section::Denied(denied) => text_table(&mut out, "denied", denied),
                Section::DeniedArguments(arguments) => {
                    for d in arguments {
                        let _ = writeln!(
                            out,
                            "  {} denied for arguments: {}",
                            d.syscall,
                            d.values.join("; ")
                        );
                    }
                }
                Section::PrivilegesDenied(denied) => {
                    for d in denied {
                        let _ = writeln!(out, "  least privilege: {d}");
                    }
                }
                Section::Notes(notes) => {
                    for n in notes {
                        let _ = writeln!(out, "  note: {n}");
                    }
                }
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        for section in self.sections() {
            match section {
                Section::Verdict(verdict) => {
                    let _ = writeln!(out, "# Verification of `{}`\n", self.profile);
                    let _ = writeln!(out, "Workload: `{}`\n", self.target);
                    let _ = writeln!(out, "**{verdict}**\n");
                }
                Section::Exercised(e) => {
                    let (own, others) = own(e);
                    let _ = writeln!(out, "Exercised by {}{own}: {SHOWS}{others}.\n", e.by);
                }
                Section::NotExercised(words) => {
                    let _ = writeln!(out, "Not exercised: {words}.\n");
                }
                Section::Denied(denied) => {
                    markdown_table(&mut out, "denied syscall", denied);
                    out.push('\n');
                }
                Section::DeniedArguments(arguments) => {
                    for d in arguments {
                        let _ = writeln!(
                            out,
                            "`{}` denied for arguments: {}\n",
                            d.syscall,
                            d.values.join("; ")
                        );
                    }
                }
                Section::PrivilegesDenied(denied) => {
                    for d in denied {
                        let _ = writeln!(out, "- least privilege: {d}");
                    }
                    out.push('\n');
                }
                Section::Notes(notes) => {
                    for n in notes {
                        let _ = writeln!(out, "- {n}");
                    }
                }
            }
        }
        out
    }

    fn json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }
}

/// What a verification with the training's own exercise says of it.
fn own(exercised: &Exercised) -> (&'static str, &'static str) {
    match exercised.training_own {
        true => TRAINING_OWN,
        false => ("", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn death_by_sigsys_fails_verification() {
        let mut v = Verification::new("img", "p.json", 3797, &Snapshot::default());
        v.set_exit_code(Some(1));
        assert!(v.passed, "a workload's own failure is not a denial");
        assert!(
            v.text()
                .contains("PASS: the profile denied nothing; the workload exited 1")
        );
        v.set_exit_code(Some(159));
        assert!(!v.passed && v.killed_by_sigsys);
        assert!(v.text().contains(
            "FAIL: the profile's filter killed the workload; the workload was killed by SIGSYS (159)"
        ));
        assert_eq!(v.failures(), "killed the workload (SIGSYS, status 159)");
    }
}
