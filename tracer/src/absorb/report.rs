//! The absorb report: what was read, what was absorbed and what was not, and why.
use std::fmt::Write as _;

use serde::Serialize;

use super::{
    tally::{GarbledLine, PRINTK_BURST, PRINTK_INTERVAL_MS, SourceStats, Tally},
    update::{Absorption, CallLine, Outcome},
};
use crate::{names::AbiName, report::Render, seccomp::Widening};

/// Programs whose records were not the workload's, at most this many listed.
const MAX_PROGRAMS_LISTED: usize = 20;

/// Records of one program (`comm`, `exe`) that were not the workload's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramLine {
    pub program: String,
    pub exe: String,
    pub count: u64,
}

/// Records of the workload the filter answered otherwise than SCMP_ACT_LOG.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnsweredLine {
    pub syscall: String,
    pub answer: String,
    pub count: u64,
}

/// Everything `absorb` read and did. Serialized as the JSON report.
#[derive(Clone, Debug, Serialize)]
pub struct AbsorbReport {
    /// The profile absorbed into.
    pub profile: String,
    /// The profile the result stays within.
    pub bound: String,
    /// Which records were picked, in words.
    pub selection: Vec<String>,
    pub sources: Vec<SourceStats>,
    /// Seccomp records read, and those absorbed.
    pub records: u64,
    pub absorbed_records: u64,
    /// The workload's logged calls that are in the profile now.
    pub absorbed: Vec<CallLine>,
    /// The workload's logged calls that are not (the bound denies them; unknown numbers).
    pub not_absorbed: Vec<CallLine>,
    /// Names allowed now that were not (`name (abi)` off x86_64).
    pub added: Vec<String>,
    /// Names allowed before for fewer arguments.
    pub widened: Vec<Widening>,
    /// The workload's records the filter answered otherwise (denied, killed): not absorbed.
    pub answered: Vec<AnsweredLine>,
    /// Records of other processes, per program.
    pub not_attributed: Vec<ProgramLine>,
    pub not_attributed_records: u64,
    /// Records stamped before --since.
    pub before_since: u64,
    /// Records of architectures without tables here, per `arch`.
    pub other_architectures: Vec<(String, u64)>,
    /// The same record read twice (same stamp and serial).
    pub duplicates: u64,
    pub garbled: u64,
    /// The first garbled lines, with why.
    pub garbled_lines: Vec<GarbledLine>,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

impl AbsorbReport {
    pub fn new(
        profile: &str,
        bound: &str,
        selection: Vec<String>,
        tally: &Tally,
        absorption: &Absorption,
        followed: bool,
    ) -> Self {
        let (absorbed, not_absorbed): (Vec<CallLine>, Vec<CallLine>) = absorption
            .calls
            .iter()
            .cloned()
            .partition(|c| c.outcome.absorbed());
        let mut not_attributed: Vec<ProgramLine> = tally
            .not_attributed
            .iter()
            .map(|((comm, exe), count)| ProgramLine {
                program: comm.clone(),
                exe: exe.clone(),
                count: *count,
            })
            .collect();
        not_attributed.sort_by(|a, b| b.count.cmp(&a.count).then(a.program.cmp(&b.program)));
        not_attributed.truncate(MAX_PROGRAMS_LISTED);
        let mut report = AbsorbReport {
            profile: profile.to_string(),
            bound: bound.to_string(),
            selection,
            sources: tally.sources.clone(),
            records: tally.sources.iter().map(|s| s.seccomp_records).sum(),
            absorbed_records: absorbed.iter().map(|c| c.count).sum(),
            absorbed,
            not_absorbed,
            added: absorption.added.clone(),
            widened: absorption.widened.clone(),
            answered: tally
                .answered
                .iter()
                .map(|((syscall, answer), count)| AnsweredLine {
                    syscall: syscall.clone(),
                    answer: answer.clone(),
                    count: *count,
                })
                .collect(),
            not_attributed,
            not_attributed_records: tally.not_attributed.values().sum(),
            before_since: tally.early,
            other_architectures: tally
                .other_arches
                .iter()
                .map(|(a, n)| (a.clone(), *n))
                .collect(),
            duplicates: tally.duplicates,
            garbled: tally.sources.iter().map(|s| s.garbled).sum(),
            garbled_lines: tally.garbled.clone(),
            notes: absorption.notes.clone(),
            warnings: Vec::new(),
        };
        report.warnings = report.warn(tally, followed);
        report
    }

    fn warn(&self, tally: &Tally, followed: bool) -> Vec<String> {
        let mut w = Vec::new();
        // What gets every record: following from before the workload starts, or auditd.
        let remedy = match followed {
            true => {
                "start `profile absorb --follow` before the workload (its records as they happen are all there), or run auditd"
            }
            false => "`--follow` reads them all as they happen",
        };
        for s in &self.sources {
            if s.missing_records > 0 {
                w.push(format!(
                    "{}: {} audit record(s) are missing between the first and the last one read (holes in the kernel's serial numbers); they may have been the workload's. Without an audit daemon the kernel prints at most 10 audit records per 5 s (printk_ratelimit) and drops the rest: {remedy}",
                    s.name, s.missing_records
                ));
            } else if s.rate_limited {
                w.push(format!(
                    "{}: a burst of {PRINTK_BURST} audit records within {} s reached the kernel log's rate limit (printk_ratelimit): records after them may have been dropped without a trace; {remedy}",
                    s.name,
                    PRINTK_INTERVAL_MS / 1000
                ));
            }
            if s.overflowed > 0 {
                w.push(format!(
                    "{}: the kernel dropped records {} time(s) because they came faster than they were read; some of the workload's may be missing",
                    s.name, s.overflowed
                ));
            }
            if s.overwritten > 0 {
                w.push(format!(
                    "{}: {} kernel log record(s) were overwritten before they could be read",
                    s.name, s.overwritten
                ));
            }
        }
        let by_program = tally.by_program();
        if by_program > 0 {
            let better = match followed {
                true => {
                    "(from the kernel log, before following began): start `--follow` before the workload and every record is attributed by process"
                }
                false => "`--follow` attributes by process",
            };
            w.push(format!(
                "{by_program} record(s) were attributed by program only (their processes had exited): records of another container running the same program at the same time would be counted too; {better}"
            ));
        }
        if self.records == 0 {
            w.push("no seccomp records were found".into());
        } else if self.absorbed_records == 0 && self.not_absorbed.is_empty() {
            w.push("none of the seccomp records was the workload's".into());
        }
        w
    }

    fn summary(&self) -> String {
        let mut read = vec![format!("{} read", self.records)];
        if self.before_since > 0 {
            read.push(format!("{} before --since", self.before_since));
        }
        read.push(format!(
            "{} of other processes",
            self.not_attributed_records
        ));
        read.push(format!("{} garbled", self.garbled));
        format!(
            "absorbed {} record(s) of {} syscall(s) into {} ({})",
            self.absorbed_records,
            self.absorbed.len(),
            self.profile,
            read.join("; ")
        )
    }

    fn changes(&self) -> String {
        let mut s = String::new();
        if self.added.is_empty() && self.widened.is_empty() {
            s.push_str("the profile allows nothing new");
        }
        if !self.added.is_empty() {
            let _ = write!(s, "now allows {}", self.added.join(", "));
        }
        if !self.widened.is_empty() {
            if !s.is_empty() {
                s.push_str("; ");
            }
            let words: Vec<String> = self.widened.iter().map(|w| w.to_string()).collect();
            let _ = write!(s, "allows more arguments of {}", words.join("; "));
        }
        s
    }
}

impl Render for AbsorbReport {
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.summary());
        for s in &self.selection {
            let _ = writeln!(out, "  picked: {s}");
        }
        let _ = writeln!(out, "  {}", self.changes());
        let calls = self.absorbed.iter().chain(&self.not_absorbed);
        if !self.absorbed.is_empty() || !self.not_absorbed.is_empty() {
            let _ = writeln!(
                out,
                "  {:<24} {:>8}  {:<16} outcome",
                "syscall", "records", "first program"
            );
        }
        for c in calls {
            let _ = writeln!(
                out,
                "  {:<24} {:>8}  {:<16} {}{}",
                display(c),
                c.count,
                c.first_program,
                outcome_words(c),
                c.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            );
        }
        for a in &self.answered {
            let _ = writeln!(
                out,
                "  {} answered {} {} time(s): not absorbed (only SCMP_ACT_LOG records are)",
                a.syscall, a.answer, a.count
            );
        }
        if !self.not_attributed.is_empty() {
            let programs: Vec<String> = self
                .not_attributed
                .iter()
                .map(|p| format!("{} ({}) {}", p.program, p.exe, p.count))
                .collect();
            let _ = writeln!(out, "  not the workload's: {}", programs.join(", "));
        }
        for g in &self.garbled_lines {
            let _ = writeln!(out, "  garbled: {}:{}: {}", g.source, g.line, g.reason);
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Absorbed into `{}`\n", self.profile);
        let _ = writeln!(out, "{}; within `{}`.\n", self.summary(), self.bound);
        let _ = writeln!(out, "**{}**\n", self.changes());
        if !self.selection.is_empty() {
            for s in &self.selection {
                let _ = writeln!(out, "- picked: {s}");
            }
            out.push('\n');
        }
        if !self.absorbed.is_empty() || !self.not_absorbed.is_empty() {
            let _ = writeln!(
                out,
                "| syscall | records | first program | first | last | outcome |"
            );
            let _ = writeln!(out, "|---|---:|---|---|---|---|");
            for c in self.absorbed.iter().chain(&self.not_absorbed) {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {}{} |",
                    display(c),
                    c.count,
                    c.first_program,
                    c.first_time.as_deref().unwrap_or("?"),
                    c.last_time.as_deref().unwrap_or("?"),
                    outcome_words(c),
                    c.note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                );
            }
            out.push('\n');
        }
        for a in &self.answered {
            let _ = writeln!(
                out,
                "- `{}` answered {} {} time(s): not absorbed",
                a.syscall, a.answer, a.count
            );
        }
        for n in self.notes.iter().chain(&self.warnings) {
            let _ = writeln!(out, "- {n}");
        }
        out
    }

    fn json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }
}

fn display(c: &CallLine) -> String {
    AbiName(c.abi, &c.name).to_string()
}

fn outcome_words(c: &CallLine) -> &'static str {
    use Outcome::*;
    match c.outcome {
        Added => "added",
        BoundRule => "added with the bound's rule",
        AlreadyAllowed => "allowed already",
        DeniedByBound => "NOT absorbed",
        BeyondBound => "added beyond the bound",
        UnknownNumber => "NOT absorbed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        absorb::{
            Selection, Whereabouts,
            tally::tests::{ctx, mkdir_line},
        },
        audit::LogLine,
        seccomp::{Base, Profile},
    };

    #[test]
    fn report_says_what_was_absorbed_and_what_not() {
        let mut t = Tally::default();
        let src = t.source("kernel log");
        let lines = [
            mkdir_line(1, 5, "mkdir", "/bin/busybox"),
            mkdir_line(2, 6, "mkdir", "/bin/busybox"),
            mkdir_line(3, 7, "sh", "/bin/busybox").replace("syscall=83", "syscall=272"),
            mkdir_line(9, 8, "other", "/other"),
            "audit: type=1326 audit(1795910689.168:10): pid=1 arch=c000003e".into(),
        ];
        let sel = Selection {
            comms: ["mkdir".to_string(), "sh".to_string()].into(),
            ..Default::default()
        };
        for (i, l) in lines.iter().enumerate() {
            let line = LogLine {
                text: l.clone(),
                cut: false,
            };
            t.line(src, i as u64 + 1, &line, &sel, &mut |_| Whereabouts::Gone);
        }
        t.finish();
        let default = Profile::docker_default();
        let mut input = default.clone().logging();
        for r in &mut input.syscalls {
            r.names.retain(|n| n != "mkdir");
        }
        let bound = Base::DockerDefault.bound(false);
        let a = Absorption::new(&input, "p.json", &t, &bound, &ctx()).unwrap();
        let r = AbsorbReport::new("p.json", "docker-default", vec![], &t, &a, false);
        assert_eq!((r.records, r.absorbed_records, r.garbled), (4, 2, 1));
        assert_eq!(r.absorbed[0].name, "mkdir");
        assert_eq!(r.absorbed[0].first_program, "mkdir");
        assert_eq!(r.not_absorbed[0].name, "unshare");
        assert_eq!(r.not_attributed_records, 1);
        assert!(r.warnings[0].contains("5 audit record(s) are missing"));
        let json: serde_json::Value = serde_json::from_str(&r.json().unwrap()).unwrap();
        assert_eq!(json["absorbed"][0]["count"], 2);
        assert_eq!(json["absorbed"][0]["outcome"], "added");
        assert_eq!(json["not_absorbed"][0]["outcome"], "denied_by_bound");
        assert_eq!(
            json["absorbed"][0]["first_time"],
            "2026-11-29T00:04:49.168Z"
        );
        let text = r.text();
        assert!(text.contains("now allows mkdir"), "{text}");
        assert!(text.contains("unshare"), "{text}");
        assert!(
            text.contains("garbled: kernel log:5: no syscall= field"),
            "{text}"
        );
        assert!(r.markdown().contains("| `mkdir` | 2 | mkdir |"));
    }

    /// The warnings of a report on `n` kernel log records of mkdir, serials 1..=n, all within
    /// one millisecond.
    fn burst_warnings(n: u64, followed: bool) -> Vec<String> {
        let mut t = Tally::default();
        let src = t.source("kernel log");
        let sel = Selection::default();
        for i in 1..=n {
            let line = LogLine {
                text: mkdir_line(i, 5, "mkdir", "/bin/busybox"),
                cut: false,
            };
            t.line(src, i, &line, &sel, &mut |_| Whereabouts::Gone);
        }
        t.finish();
        let bound = Base::DockerDefault.bound(false);
        let input = Profile::docker_default().logging();
        let a = Absorption::new(&input, "p.json", &t, &bound, &ctx()).unwrap();
        AbsorbReport::new("p.json", "docker-default", vec![], &t, &a, followed).warnings
    }

    #[test]
    fn a_burst_at_the_kernel_logs_rate_limit_is_warned_of_without_a_hole() {
        let warnings = burst_warnings(10, false);
        assert!(
            warnings.iter().any(|w| w.starts_with(
                "kernel log: a burst of 10 audit records within 5 s reached the kernel log's rate limit"
            )),
            "{warnings:?}"
        );
        assert!(burst_warnings(9, false).is_empty());
        // Following, the advice is to start it earlier, not to use it.
        let followed = burst_warnings(10, true).join("\n");
        assert!(
            !followed.contains("`--follow` reads them all"),
            "{followed}"
        );
        assert!(followed.contains("before the workload"), "{followed}");
    }
}
