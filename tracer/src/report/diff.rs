//! `profile diff`'s report: what a new profile allows that an old one didn't, and what it
//! dropped — the CI gate's words.
use std::fmt::Write as _;

use serde::Serialize;

use super::render::Render;
use crate::seccomp::{Diff, Widening};

/// Two profiles compared: NEW against OLD.
#[derive(Clone, Debug, Serialize)]
pub struct DiffReport {
    pub old: String,
    pub new: String,
    /// Whether NEW allows anything OLD didn't (the gate fails then).
    pub allows_more: bool,
    /// Allowed by NEW, not by OLD (`name (abi)` off x86_64).
    pub added: Vec<String>,
    /// Allowed by OLD, not by NEW.
    pub removed: Vec<String>,
    /// Allowed by both, by NEW for arguments OLD denies.
    pub widened: Vec<Widening>,
    /// Allowed by both, by NEW for fewer arguments.
    pub narrowed: Vec<Widening>,
}

impl DiffReport {
    pub fn new(old: &str, new: &str, diff: Diff) -> Self {
        DiffReport {
            old: old.to_string(),
            new: new.to_string(),
            allows_more: diff.allows_more(),
            added: diff.added,
            removed: diff.removed,
            widened: diff.widened,
            narrowed: diff.narrowed,
        }
    }
}

impl Render for DiffReport {
    fn text(&self) -> String {
        let (old, new) = (&self.old, &self.new);
        let mut out = String::new();
        let more = self.added.len() + self.widened.len();
        if more == 0 {
            let _ = writeln!(out, "{new} allows nothing {old} didn't");
        } else {
            let _ = writeln!(out, "{new} allows {more} syscall(s) {old} didn't");
        }
        for n in &self.added {
            let _ = writeln!(out, "+ {n}");
        }
        for w in &self.widened {
            let _ = writeln!(out, "+ {}: now also for {}", w.syscall, w.beyond);
        }
        for n in &self.removed {
            let _ = writeln!(out, "- {n}");
        }
        for w in &self.narrowed {
            let _ = writeln!(out, "- {}: no longer for {}", w.syscall, w.beyond);
        }
        out
    }

    /// The text, as a fenced block: the lines read as a diff.
    fn markdown(&self) -> String {
        format!("```diff\n{}```\n", self.text())
    }

    fn json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }
}
