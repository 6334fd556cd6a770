//! `profile watch`'s index: one row per profile it wrote, with what the profile was learned
//! from and how it compares with Docker's default.
use std::fmt::Write as _;

use serde::Serialize;

use super::{
    profile::ProgramsRun,
    render::{Render, fewer_or_more},
    sections::{ceiling_markdown, ceiling_text, coverage_markdown, coverage_text},
};

/// One row of the index: a profile and what it was learned from.
#[derive(Clone, Debug, Serialize)]
pub struct IndexRow {
    /// The group: an image, a compose service or a container.
    pub profile: String,
    /// The profile's file, when one was written.
    pub file: Option<String>,
    pub images: Vec<String>,
    pub containers: Vec<String>,
    pub runs: u32,
    pub allowed: usize,
    pub docker_default_allowed: usize,
    pub reduction_vs_docker_default_percent: f64,
    pub complete: bool,
    /// The container runtimes its containers ran with (`runc 1.1.5+ds1`), sorted: the
    /// profile allows each one's tail.
    pub runtimes: Vec<String>,
    /// Calls the container runtime made under the filter before it handed over to the
    /// workload (all containers of the profile together).
    pub runtime_calls: Vec<String>,
    pub notes: Vec<String>,
    /// For a Kubernetes workload's container: the `securityContext` that runs it under this
    /// profile, as kubelet's `Localhost` profile under its seccomp root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<String>,
    /// The programs its containers exec'd and, read from the image through the Docker
    /// engine, their coverage.
    #[serde(flatten)]
    pub ran: ProgramsRun,
}

/// Every profile a watch wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Index {
    /// The Kubernetes node the containers ran on (a watch through the CRI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub profiles: Vec<IndexRow>,
}

impl IndexRow {
    /// The row's name, linked to its file when there is one.
    fn linked(&self) -> String {
        self.file
            .as_deref()
            .map(|f| format!("[{}]({f})", self.profile))
            .unwrap_or_else(|| self.profile.clone())
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl Index {
    /// Every row's notes, prefixed with the row's name.
    fn notes(&self) -> Vec<String> {
        self.profiles
            .iter()
            .flat_map(|r| r.notes.iter().map(move |n| format!("{}: {n}", r.profile)))
            .collect()
    }
}

impl Render for Index {
    fn text(&self) -> String {
        let mut out = String::new();
        for r in &self.profiles {
            let _ = writeln!(
                out,
                "{}: {} syscalls allowed ({} than Docker's default), {} container(s), {} run(s), complete: {}{}",
                r.profile,
                r.allowed,
                fewer_or_more(r.reduction_vs_docker_default_percent),
                r.containers.len(),
                r.runs,
                yes_no(r.complete),
                r.file
                    .as_deref()
                    .map(|f| format!(" -> {f}"))
                    .unwrap_or_default()
            );
            if let Some(c) = &r.ran.coverage {
                coverage_text(&mut out, c);
            }
            if let Some(c) = &r.ran.ceiling {
                ceiling_text(&mut out, c);
            }
        }
        for n in self.notes() {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::from("# Profiles learned by `profile watch`\n\n");
        if let Some(node) = &self.node {
            let _ = writeln!(out, "Node: `{node}`\n");
        }
        let _ = writeln!(
            out,
            "| profile | images | containers | runs | syscalls allowed | vs Docker's default | complete |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|");
        for r in &self.profiles {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.linked(),
                r.images.join(", "),
                r.containers.len(),
                r.runs,
                r.allowed,
                fewer_or_more(r.reduction_vs_docker_default_percent),
                yes_no(r.complete)
            );
        }
        let contexts: Vec<&IndexRow> = self
            .profiles
            .iter()
            .filter(|r| r.security_context.is_some())
            .collect();
        if !contexts.is_empty() {
            out.push_str(
                "\n## Running under these profiles\n\nCopy each profile into kubelet's seccomp root (`/var/lib/kubelet/seccomp/profile/`) on every node, then set in the container's spec:\n\n",
            );
            for r in contexts {
                let _ = writeln!(
                    out,
                    "- {}: `{}`",
                    r.profile,
                    r.security_context.as_deref().unwrap_or_default()
                );
            }
        }
        for r in &self.profiles {
            if (r.ran.coverage.is_some() || r.ran.ceiling.is_some()) && !out.ends_with("\n\n") {
                out.push('\n');
            }
            if let Some(c) = &r.ran.coverage {
                coverage_markdown(&mut out, &format!("Coverage of {}", r.profile), c);
            }
            if let Some(c) = &r.ran.ceiling {
                ceiling_markdown(&mut out, &format!("Ceiling of {}", r.profile), c);
            }
        }
        let notes = self.notes();
        if !notes.is_empty() {
            if !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str("## Notes\n\n");
            for n in notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }

    fn json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }
}
