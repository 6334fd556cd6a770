//! The profile report as sections: what it says and in which order is decided once
//! ([`Report::sections`]); the text and Markdown renderers only lay each section out.
use std::fmt::Write as _;

use super::{
    arches::ArchSection,
    dangerous::{ArgumentLine, Blocked},
    observed::{SyscallLine, markdown_table, text_table},
    profile::{CeilingLine, PhaseLine, Report, RunLine},
    render::{Render, fewer_or_more},
};
use crate::{
    scan::coverage::Coverage,
    session::{Exercised, ProbeReport, ProbeRequest, StoppedBy},
};

/// How much a report says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Everything, what changes from run to run included.
    Full,
    /// Without what changes from run to run (calls per syscall, first programs, what each
    /// run added): it changes only when the profile does, so it can be committed beside it.
    Summary,
}

/// One part of the profile report.
enum Section<'a> {
    /// Whose profile it is and how the recording ended.
    Title {
        status: String,
    },
    /// What the profile allows against Docker's default and the kernel's table.
    Size,
    /// How much was observed, the container runtime's calls before it handed over included
    /// (the text says it; Markdown's tables of syscalls do).
    Observed,
    /// The training runs, each (in full) or counted (in the summary).
    Runs {
        runs: &'a [RunLine],
        detail: Detail,
    },
    /// Whether the verification right after training passed, and what exercised it.
    Verified {
        ok: bool,
        by: Option<&'a Exercised>,
    },
    /// The programs the workload exec'd.
    Programs(&'a [String]),
    /// What training didn't see of the ceilings of the programs that ran (in full).
    Coverage(&'a Coverage),
    /// What `--ceiling` added.
    Ceiling(&'a CeilingLine),
    /// Dangerous syscalls Docker's default allows that this profile blocks.
    Blocked(&'a [Blocked]),
    /// Calls allowed without being observed (in full), or whether observed or not (in the
    /// summary, where what a run happened to make doesn't belong).
    AlsoAllowed {
        calls: &'a [Blocked],
        detail: Detail,
    },
    Probe {
        probe: &'a ProbeReport,
        phases: &'a [PhaseLine],
    },
    /// Dangerous syscalls this profile allows.
    Dangerous(&'a [Blocked]),
    ArgumentRules(&'a [ArgumentLine]),
    /// Observed calls the bound denies.
    NotLearned {
        bound: &'a str,
        names: &'a [String],
    },
    /// Observed calls Docker's default denies.
    BeyondDefault(&'a [String]),
    /// Each platform's side of a profile meant for several.
    Arches(&'a ArchSection),
    /// The least-privilege recipe, setting by setting.
    Hardening(&'a crate::hardening::Recipe),
    Warnings(&'a [String]),
    /// Calls per syscall and first programs (in full).
    Syscalls(&'a [SyscallLine]),
    /// The container runtime's calls before it handed over, per syscall (in full Markdown;
    /// the text names them with what was observed).
    RuntimeCalls(&'a [SyscallLine]),
    /// Where calls per syscall went (in the summary).
    PerRunLeftOut,
}

impl Report {
    /// What the report says, in order, with `detail`.
    fn sections(&self, detail: Detail) -> Vec<Section<'_>> {
        let mut out = vec![
            Section::Title {
                status: self.status(),
            },
            Section::Size,
        ];
        let observed = self.observed();
        if observed {
            out.push(Section::Observed);
        }
        if !self.runs.is_empty() {
            out.push(Section::Runs {
                runs: &self.runs,
                detail,
            });
        }
        // What exercised it (a probe's count of requests) varies from run to run.
        out.extend(self.verified.map(|ok| Section::Verified {
            ok,
            by: self.verified_by.as_ref().filter(|_| detail == Detail::Full),
        }));
        if !self.ran.programs.is_empty() {
            out.push(Section::Programs(&self.ran.programs));
        }
        if detail == Detail::Full {
            out.extend(self.ran.coverage.as_ref().map(Section::Coverage));
        }
        out.extend(self.ran.ceiling.as_ref().map(Section::Ceiling));
        if !self.blocked_dangerous.is_empty() {
            out.push(Section::Blocked(&self.blocked_dangerous));
        }
        let also = match detail {
            Detail::Full => &self.always_allowed,
            Detail::Summary => &self.allowed_at_any_time,
        };
        if observed && !also.is_empty() {
            out.push(Section::AlsoAllowed {
                calls: also,
                detail,
            });
        }
        if let Some(probe) = &self.probe {
            out.push(Section::Probe {
                probe,
                phases: &self.phases,
            });
        }
        if !self.allowed_dangerous.is_empty() {
            out.push(Section::Dangerous(&self.allowed_dangerous));
        }
        if !self.argument_rules.is_empty() {
            out.push(Section::ArgumentRules(&self.argument_rules));
        }
        if !self.not_learned.is_empty() {
            out.push(Section::NotLearned {
                bound: self.bound.as_deref().unwrap_or("the base"),
                names: &self.not_learned,
            });
        }
        if !self.denied_by_docker_default.is_empty() {
            out.push(Section::BeyondDefault(&self.denied_by_docker_default));
        }
        out.extend(self.arches.as_ref().map(Section::Arches));
        out.extend(self.hardening.as_ref().map(Section::Hardening));
        if !self.warnings.is_empty() {
            out.push(Section::Warnings(&self.warnings));
        }
        if observed {
            out.push(match detail {
                Detail::Full => Section::Syscalls(&self.syscalls),
                Detail::Summary => Section::PerRunLeftOut,
            });
        }
        if observed && detail == Detail::Full && !self.runtime_calls.is_empty() {
            out.push(Section::RuntimeCalls(&self.runtime_calls));
        }
        out
    }

    /// How the recording ended, in words.
    fn status(&self) -> String {
        if !self.observed() {
            return "a profile file; nothing observed".into();
        }
        let mut s = String::new();
        match (self.stopped_by, self.exit_code) {
            (Some(StoppedBy::Interrupted), _) => s.push_str("interrupted"),
            (Some(StoppedBy::Duration), _) => s.push_str("stopped when --duration elapsed"),
            (Some(StoppedBy::Exercise), _) => s.push_str("stopped when the exercise finished"),
            (Some(StoppedBy::DaemonLost), _) => s.push_str("the Docker daemon went away"),
            (Some(StoppedBy::Probe), _) => s.push_str("stopped when the HTTP probe finished"),
            (Some(other), _) => {
                let _ = write!(s, "stopped ({})", other.as_str());
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

    /// The Markdown report without what changes from run to run (see [`Detail::Summary`]).
    pub fn summary_markdown(&self) -> String {
        self.markdown_with(Detail::Summary)
    }

    fn markdown_with(&self, detail: Detail) -> String {
        let mut out = String::new();
        for section in self.sections(detail) {
            self.markdown_section(&mut out, section);
        }
        out
    }

    fn text_section(&self, out: &mut String, section: Section<'_>) {
        match section {
            Section::Title { status } => {
                let _ = writeln!(out, "profile for {} ({status})", self.target);
            }
            Section::Size => {
                let _ = writeln!(
                    out,
                    "  allows {} syscalls: {} than Docker's default ({}), {} than the kernel's table ({})",
                    self.allowed,
                    fewer_or_more(self.reduction_vs_docker_default_percent),
                    self.docker_default_allowed,
                    fewer_or_more(self.reduction_vs_kernel_percent),
                    self.kernel_syscalls
                );
            }
            Section::Observed => {
                let _ = writeln!(
                    out,
                    "  observed {} calls of {} syscalls in {:.1}s",
                    self.total_calls,
                    self.syscalls.len(),
                    self.duration_seconds
                );
                if !self.runtime_calls.is_empty() {
                    let names: Vec<&str> =
                        self.runtime_calls.iter().map(|s| s.name.as_str()).collect();
                    let _ = writeln!(
                        out,
                        "  the container runtime's calls, made under the filter before it handed over ({}, allowed so that the container starts): {}",
                        names.len(),
                        names.join(" ")
                    );
                }
            }
            Section::Runs { runs, .. } => {
                let _ = writeln!(out, "  runs (distinct syscalls, new ones):");
                for r in runs {
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
            Section::Verified { ok, by } => {
                let _ = writeln!(
                    out,
                    "  verified under enforcement: {}{}",
                    pass(ok),
                    verified_by(by)
                );
            }
            Section::Blocked(calls) => {
                let _ = writeln!(out, "  blocks, though Docker's default allows them:");
                text_reasons(out, calls);
            }
            Section::AlsoAllowed { calls, .. } => {
                for (names, reason) in by_reason(calls) {
                    let _ = writeln!(
                        out,
                        "  also allows {}, not observed: {reason}",
                        names.join(", ")
                    );
                }
            }
            Section::Probe { probe, phases } => {
                let _ = writeln!(out, "  HTTP probe: {} request(s)", probe.requests.len());
                for r in &probe.requests {
                    let (variant, status) = probe_words(r);
                    let _ = writeln!(out, "    {:<7} {}{variant}: {status}", r.method, r.url);
                }
                for s in &probe.skipped {
                    let _ = writeln!(out, "    skipped {s}");
                }
                for p in phases {
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
            }
            Section::Programs(paths) => {
                let _ = writeln!(out, "  programs run: {}", paths.join(" "));
            }
            Section::Coverage(c) => coverage_text(out, c),
            Section::Ceiling(c) => ceiling_text(out, c),
            Section::Dangerous(calls) => {
                let _ = writeln!(out, "  allows these dangerous syscalls:");
                text_reasons(out, calls);
            }
            Section::ArgumentRules(rules) => {
                for a in rules {
                    let _ = writeln!(out, "  {}", a.sentence(""));
                }
            }
            Section::NotLearned { bound, names } => {
                let _ = writeln!(
                    out,
                    "  observed, but denied by {bound} and so not allowed: {}",
                    names.join(", ")
                );
            }
            Section::BeyondDefault(names) => {
                let _ = writeln!(
                    out,
                    "  needs what Docker's default denies: {}",
                    names.join(", ")
                );
            }
            Section::Arches(arches) => arches.text(out),
            Section::Hardening(recipe) => super::hardening::text(out, recipe),
            Section::Warnings(warnings) => {
                for w in warnings {
                    let _ = writeln!(out, "  warning: {w}");
                }
            }
            Section::Syscalls(lines) => text_table(out, "syscall", lines),
            Section::RuntimeCalls(_) | Section::PerRunLeftOut => {}
        }
    }

    fn markdown_section(&self, out: &mut String, section: Section<'_>) {
        match section {
            Section::Title { status } => {
                let _ = writeln!(out, "# Seccomp profile for `{}`\n", self.target);
                let _ = writeln!(out, "Status: {status}.\n");
            }
            Section::Size => {
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
            }
            Section::Observed => {}
            Section::Runs {
                runs,
                detail: Detail::Summary,
            } => {
                let _ = writeln!(out, "Learned from {} runs.\n", runs.len());
            }
            Section::Runs { runs, .. } => {
                let _ = writeln!(out, "## Convergence\n");
                let _ = writeln!(out, "| run | distinct syscalls | new | new syscalls |");
                let _ = writeln!(out, "|---:|---:|---:|---|");
                for r in runs {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} |",
                        r.run,
                        r.distinct,
                        r.added,
                        code_list(&r.added_names, " ")
                    );
                }
                out.push('\n');
            }
            Section::Verified { ok, by } => {
                let _ = writeln!(
                    out,
                    "Verified under enforcement right after training: **{}**{}.\n",
                    pass(ok),
                    verified_by(by)
                );
            }
            Section::Blocked(calls) => {
                markdown_reasons(out, "Blocked here, allowed by Docker's default", calls)
            }
            Section::AlsoAllowed { calls, detail } => {
                let heading = match detail {
                    Detail::Full => "Allowed without being observed",
                    Detail::Summary => "Allowed whether observed or not",
                };
                markdown_reasons(out, heading, calls);
            }
            Section::Probe { probe, phases } => {
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
                for p in phases {
                    let _ = writeln!(
                        out,
                        "\nFirst seen in the {} phase: {}",
                        p.phase,
                        if p.added.is_empty() {
                            "nothing new".to_string()
                        } else {
                            code_list(&p.added, ", ")
                        }
                    );
                }
                out.push('\n');
            }
            Section::Programs(paths) => {
                let _ = writeln!(out, "## Programs run\n\n{}\n", code_list(paths, ", "));
            }
            Section::Coverage(c) => coverage_markdown(out, "Coverage", c),
            Section::Ceiling(c) => ceiling_markdown(out, "Ceiling", c),
            Section::Dangerous(calls) => {
                markdown_reasons(out, "Dangerous syscalls this profile allows", calls)
            }
            Section::ArgumentRules(rules) => {
                let _ = writeln!(out, "## Allowed only for some arguments\n");
                for a in rules {
                    let _ = writeln!(out, "{}\n", a.sentence("`"));
                }
            }
            Section::NotLearned { bound, names } => {
                let heading = format!("Observed, but denied by {bound}: not allowed");
                markdown_names(out, &heading, names);
            }
            Section::BeyondDefault(names) => {
                markdown_names(out, "Needed, but denied by Docker's default", names)
            }
            Section::Arches(arches) => arches.markdown(out),
            Section::Hardening(recipe) => super::hardening::markdown(out, recipe),
            Section::Warnings(warnings) => {
                let _ = writeln!(out, "## Warnings\n");
                for w in warnings {
                    let _ = writeln!(out, "- {w}");
                }
                out.push('\n');
            }
            Section::Syscalls(lines) => {
                let _ = writeln!(out, "## Observed syscalls\n");
                markdown_table(out, "syscall", lines);
            }
            Section::RuntimeCalls(lines) => {
                let _ = writeln!(
                    out,
                    "\n## The container runtime's calls under the filter\n\nMade under the filter by the runtime's init before the exec of the container's process; allowed so that the container starts, never counted as the workload's.\n"
                );
                markdown_table(out, "syscall", lines);
            }
            Section::PerRunLeftOut => {
                let _ = writeln!(
                    out,
                    "Calls per syscall, the first program to make each and what each run added are in the full report: they change from run to run."
                );
            }
        }
    }
}

impl Render for Report {
    fn text(&self) -> String {
        let mut out = String::new();
        for section in self.sections(Detail::Full) {
            self.text_section(&mut out, section);
        }
        out
    }

    fn markdown(&self) -> String {
        self.markdown_with(Detail::Full)
    }

    fn json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }
}

/// What exercised the verification after training, and so what its verdict covers.
fn verified_by(by: Option<&Exercised>) -> String {
    let Some(by) = by else {
        return String::new();
    };
    let own = match by.training_own {
        true => ", training's own",
        false => "",
    };
    format!(
        ", exercised by {}{own}: a path it never took may still be denied",
        by.by
    )
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// `names` quoted as code, joined by `sep`.
fn code_list(names: &[String], sep: &str) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(sep)
}

/// The coverage section, as the terminal shows it (indented under its report's line).
pub(super) fn coverage_text(out: &mut String, c: &Coverage) {
    let _ = writeln!(out, "  coverage: {}", bounded_words(c.bounded));
    let mut listed = false;
    for p in &c.programs {
        let line = match &p.no_bound {
            Some(_) => program_words(p, "", ""),
            None => {
                listed |= !p.unseen.is_empty();
                unseen_count(p)
            }
        };
        let _ = writeln!(out, "    {line}");
    }
    if listed {
        let _ = writeln!(
            out,
            "    (each call never observed is listed in the Markdown and JSON reports: --report F.md)"
        );
    }
}

/// How many dangerous calls the terminal names, of those a program's ceiling holds, training
/// never saw and the profile denies.
const DANGEROUS_NAMED: usize = 5;

/// One program's coverage as the terminal shows it: counts, and the dangerous calls a path
/// training missed could need and the profile denies.
fn unseen_count(p: &crate::scan::coverage::ProgramCoverage) -> String {
    let head = format!(
        "{}: {} of the {} calls in its ceiling observed",
        p.path, p.observed, p.ceiling
    );
    if p.unseen.is_empty() {
        return head;
    }
    let denied: Vec<_> = p.unseen.iter().filter(|u| !u.allowed).collect();
    if denied.is_empty() {
        return format!(
            "{head}; {} never, all of them allowed by the profile anyway",
            p.unseen.len()
        );
    }
    let dangerous: Vec<String> = denied
        .iter()
        .filter(|u| u.dangerous.is_some())
        .map(|u| match u.abi {
            crate::names::Abi::X86_64 => u.name.clone(),
            other => format!("{} ({})", u.name, other.seccomp_arch()),
        })
        .collect();
    let named = match dangerous.len() {
        0 => String::new(),
        n if n <= DANGEROUS_NAMED => format!(", dangerous among them: {}", dangerous.join(", ")),
        n => format!(
            ", dangerous among them: {}, … ({} more)",
            dangerous[..DANGEROUS_NAMED].join(", "),
            n - DANGEROUS_NAMED
        ),
    };
    format!(
        "{head}; {} never, {} of them denied by the profile{named}",
        p.unseen.len(),
        denied.len()
    )
}

/// The coverage section in Markdown, under `heading`.
pub(super) fn coverage_markdown(out: &mut String, heading: &str, c: &Coverage) {
    let _ = writeln!(
        out,
        "## {heading}\n\n{}.\n",
        capital(bounded_words(c.bounded))
    );
    for p in &c.programs {
        let _ = writeln!(out, "- {}", program_words(p, "`", " **(dangerous)**"));
    }
    out.push('\n');
}

/// What `--ceiling` added, as the terminal shows it.
pub(super) fn ceiling_text(out: &mut String, c: &CeilingLine) {
    let _ = writeln!(out, "  --ceiling: {}", ceiling_words(c, ""));
}

/// What `--ceiling` added in Markdown, under `heading`.
pub(super) fn ceiling_markdown(out: &mut String, heading: &str, c: &CeilingLine) {
    let _ = writeln!(
        out,
        "## {heading}\n\n{}.\n",
        capital(&ceiling_words(c, "`"))
    );
}

/// One program's line of the coverage section.
fn program_words(p: &crate::scan::coverage::ProgramCoverage, quote: &str, mark: &str) -> String {
    match &p.no_bound {
        Some(why) => format!("{quote}{}{quote}: no sound ceiling ({why})", p.path),
        None => format!(
            "{quote}{}{quote}: {} of the {} calls in its ceiling observed; never: {}",
            p.path,
            p.observed,
            p.ceiling,
            unseen_words(p, quote, mark)
        ),
    }
}

/// The calls of a program's ceiling training never saw: those the profile denies (the
/// dangerous ones marked), then those it allows anyway.
fn unseen_words(p: &crate::scan::coverage::ProgramCoverage, quote: &str, mark: &str) -> String {
    if p.unseen.is_empty() {
        return "none".into();
    }
    let words = |allowed: bool| -> Vec<String> {
        p.unseen
            .iter()
            .filter(|u| u.allowed == allowed)
            .map(|u| {
                let abi = match u.abi {
                    crate::names::Abi::X86_64 => String::new(),
                    other => format!(" ({})", other.seccomp_arch()),
                };
                let mark = if u.dangerous.is_some() { mark } else { "" };
                format!("{quote}{}{quote}{abi}{mark}", u.name)
            })
            .collect()
    };
    let (denied, allowed) = (words(false), words(true));
    match (denied.is_empty(), allowed.is_empty()) {
        (false, true) => format!("{} (denied by the profile)", denied.join(", ")),
        (true, false) => format!("{} (allowed by the profile anyway)", allowed.join(", ")),
        _ => format!(
            "{} (denied by the profile); {} (allowed by the profile anyway)",
            denied.join(", "),
            allowed.join(", ")
        ),
    }
}

/// Whether every program that ran has a sound ceiling, in words.
fn bounded_words(bounded: bool) -> &'static str {
    match bounded {
        true => "every program that ran has a sound ceiling",
        false => "not every program that ran has a sound ceiling",
    }
}

fn capital(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What `--ceiling` added, and whether the profile can still miss a path.
fn ceiling_words(c: &CeilingLine, quote: &str) -> String {
    let added = match c.added.is_empty() {
        true => "allows nothing beyond what training observed".to_string(),
        false => format!(
            "also allows {} call(s) training never observed, from the ceilings of the programs that ran: {}",
            c.added.len(),
            c.added
                .iter()
                .map(|n| format!("{quote}{n}{quote}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let complete = match c.complete {
        true => "every program that ran has a sound ceiling: the profile can't miss a rare path",
        false => {
            "not every program that ran has a sound ceiling: the profile can still miss a rare path"
        }
    };
    format!("{added}; {complete}")
}

/// Named calls with their reasons, aligned under a text lead line.
fn text_reasons(out: &mut String, calls: &[Blocked]) {
    for b in calls {
        let _ = writeln!(out, "    {:<18} {}", b.name, b.reason);
    }
}

/// A Markdown section of named calls with their reasons.
fn markdown_reasons(out: &mut String, heading: &str, calls: &[Blocked]) {
    let _ = writeln!(out, "## {heading}\n");
    for (names, reason) in by_reason(calls) {
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(out, "- {}: {reason}", names.join(", "));
    }
    out.push('\n');
}

/// The calls grouped by their reason (several share one: the vDSO's), in the order each
/// reason first appears.
fn by_reason(calls: &[Blocked]) -> Vec<(Vec<&'static str>, &'static str)> {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for b in calls {
        match groups.iter_mut().find(|(_, reason)| *reason == b.reason) {
            Some((names, _)) => names.push(b.name),
            None => groups.push((vec![b.name], b.reason)),
        }
    }
    groups
}

/// A Markdown section of syscall names.
fn markdown_names(out: &mut String, heading: &str, names: &[String]) {
    let _ = writeln!(out, "## {heading}\n");
    for n in names {
        let _ = writeln!(out, "- `{n}`");
    }
    out.push('\n');
}

/// A probe request's variant (` (range)`) and its status or error, for the report.
fn probe_words(r: &ProbeRequest) -> (String, String) {
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
