//! The report's section on a profile meant for several platforms: per platform what it
//! allows against Docker's default there, what was observed and what was derived for a
//! platform it was not observed on (name by name), and how it was written.
use std::{collections::BTreeSet, fmt::Write as _};

use serde::Serialize;

use crate::{
    names::{Abi, AbiName, Arch},
    seccomp::{Context, Derivation, Derived, Profile, VERIFY_ADVICE},
};

/// One platform's side of a profile.
#[derive(Clone, Debug, Serialize)]
pub struct ArchLine {
    pub arch: Arch,
    pub abi: Abi,
    pub allowed: usize,
    pub docker_default_allowed: usize,
    pub kernel_syscalls: usize,
}

/// What a multi-platform profile holds, per platform.
#[derive(Clone, Debug, Serialize)]
pub struct ArchSection {
    pub arches: Vec<ArchLine>,
    /// Calls allowed on a platform only because they were derived for it (not observed).
    pub derived_names: Vec<String>,
    /// Where each derived call comes from (when the profile was derived in this run).
    pub derived: Vec<Derived>,
    /// Calls allowed on x86_64 that have no counterpart on the other platform.
    pub without_counterpart: Vec<Derived>,
    /// Counterparts the bound denies on their platform: not allowed.
    pub denied_by_bound: Vec<String>,
    /// How the profile was written: rules per platform in one Docker profile, one file per
    /// platform, or their union.
    pub written_as: String,
    /// Set when something was derived: verify or soak it on that platform first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<&'static str>,
}

impl super::Report {
    /// Makes this report one of `profile`, derived for more platforms than it was observed
    /// on (`derivations`) and written as `written_as`.
    pub fn for_arches(
        &mut self,
        profile: &Profile,
        derivations: &[Derivation],
        written_as: String,
    ) {
        let ctx = Context::docker_default();
        self.arches =
            ArchSection::of(profile, derivations, &ctx).map(|a| ArchSection { written_as, ..a });
    }
}

impl ArchSection {
    /// The section of `profile`, with `derivations` when it was derived in this run; `None`
    /// for a profile meant for one platform.
    pub fn of(profile: &Profile, derivations: &[Derivation], ctx: &Context) -> Option<Self> {
        let arches = profile.arches();
        if arches.len() < 2 {
            return None;
        }
        let default = Profile::docker_default();
        let lines = arches
            .iter()
            .map(|arch| {
                let abi = arch.native();
                ArchLine {
                    arch: *arch,
                    abi,
                    allowed: profile.allowed(abi, ctx).len(),
                    docker_default_allowed: default.allowed(abi, ctx).len(),
                    kernel_syscalls: abi.names().len(),
                }
            })
            .collect();
        // Derived: allowed on aarch64 only through the rules Docker keeps on arm64 alone.
        let mut shared = profile.clone();
        shared
            .syscalls
            .retain(|r| r.includes.arches.iter().all(|a| a != Arch::Arm64.go_name()));
        let with: BTreeSet<&str> = profile.allowed(Abi::Aarch64, ctx).into_keys().collect();
        let without: BTreeSet<&str> = shared.allowed(Abi::Aarch64, ctx).into_keys().collect();
        let derived_names: Vec<String> = with
            .difference(&without)
            .map(|n| AbiName(Abi::Aarch64, n).to_string())
            .collect();
        let advice = (!derived_names.is_empty()).then_some(VERIFY_ADVICE);
        Some(ArchSection {
            arches: lines,
            derived_names,
            derived: derivations.iter().flat_map(|d| d.derived.clone()).collect(),
            without_counterpart: derivations
                .iter()
                .flat_map(|d| d.without_counterpart.clone())
                .collect(),
            denied_by_bound: derivations
                .iter()
                .flat_map(|d| d.denied_by_bound.clone())
                .collect(),
            written_as:
                "one Docker profile; rules Docker keeps on one platform only carry includes.arches"
                    .into(),
            advice,
        })
    }

    /// The section as the text report lays it out.
    pub(super) fn text(&self, out: &mut String) {
        for a in &self.arches {
            let _ = writeln!(
                out,
                "  on {} ({}): allows {} syscalls; Docker's default {}, the kernel's table {}",
                a.arch, a.abi, a.allowed, a.docker_default_allowed, a.kernel_syscalls
            );
        }
        for d in &self.derived {
            let _ = writeln!(
                out,
                "  derived for arm64: {} → {} ({})",
                d.from,
                d.to.join(", "),
                d.why
            );
        }
        if self.derived.is_empty() && !self.derived_names.is_empty() {
            let _ = writeln!(
                out,
                "  derived, not observed: {}",
                self.derived_names.join(", ")
            );
        }
        for d in &self.without_counterpart {
            let _ = writeln!(out, "  no aarch64 counterpart: {} ({})", d.from, d.why);
        }
        if !self.denied_by_bound.is_empty() {
            let _ = writeln!(
                out,
                "  counterparts the bound denies on arm64, not allowed: {}",
                self.denied_by_bound.join(", ")
            );
        }
        let _ = writeln!(out, "  written as {}", self.written_as);
        if let Some(advice) = self.advice {
            let _ = writeln!(out, "  note: {advice}");
        }
    }

    /// The section as the Markdown report lays it out.
    pub(super) fn markdown(&self, out: &mut String) {
        out.push_str("## Architectures\n\n");
        let _ = writeln!(
            out,
            "| platform | ABI | this profile allows | Docker's default | kernel |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|");
        for a in &self.arches {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                a.arch, a.abi, a.allowed, a.docker_default_allowed, a.kernel_syscalls
            );
        }
        out.push('\n');
        if !self.derived.is_empty() {
            let _ = writeln!(out, "Derived for arm64, not observed:\n");
            let _ = writeln!(out, "| x86_64 call | on aarch64 | why |");
            let _ = writeln!(out, "|---|---|---|");
            for d in &self.derived {
                let to: Vec<String> = d.to.iter().map(|n| format!("`{n}`")).collect();
                let _ = writeln!(out, "| `{}` | {} | {} |", d.from, to.join(", "), d.why);
            }
            for d in &self.without_counterpart {
                let _ = writeln!(out, "| `{}` | none | {} |", d.from, d.why);
            }
            out.push('\n');
        } else if !self.derived_names.is_empty() {
            let names: Vec<String> = self
                .derived_names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect();
            let _ = writeln!(out, "Derived, not observed: {}.\n", names.join(", "));
        }
        let _ = writeln!(out, "Written as {}.\n", self.written_as);
        if let Some(advice) = self.advice {
            let _ = writeln!(out, "**Note:** {advice}.\n");
        }
    }
}
