//! `profile diff`: what a new profile allows that an old one didn't — the CI gate.
use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use crate::{
    cli::load_profile,
    seccomp::{Context, Diff},
};

/// Exit status when NEW allows more than OLD.
pub const EXIT_MORE: u8 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline profile (in any format profile writes; `docker-default` for Docker's
    /// default).
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The candidate profile.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: DiffFormat,
}

pub fn render_text(old: &str, new: &str, diff: &Diff) -> String {
    let mut out = String::new();
    let more = diff.added.len() + diff.widened.len();
    if more == 0 {
        let _ = writeln!(out, "{new} allows nothing {old} didn't");
    } else {
        let _ = writeln!(out, "{new} allows {more} syscall(s) {old} didn't");
    }
    for n in &diff.added {
        let _ = writeln!(out, "+ {n}");
    }
    for w in &diff.widened {
        let _ = writeln!(out, "+ {}: now also for {}", w.syscall, w.beyond);
    }
    for n in &diff.removed {
        let _ = writeln!(out, "- {n}");
    }
    for w in &diff.narrowed {
        let _ = writeln!(out, "- {}: no longer for {}", w.syscall, w.beyond);
    }
    out
}

pub async fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let old = load_profile(&args.old)?;
    let new = load_profile(&args.new)?;
    let diff = Diff::between(&old, &new, &Context::docker_default());
    let (o, n) = (
        args.old.display().to_string(),
        args.new.display().to_string(),
    );
    match args.format {
        DiffFormat::Text => crate::output::stdout(&render_text(&o, &n, &diff))?,
        DiffFormat::Json => {
            let value = serde_json::json!({
                "old": o,
                "new": n,
                "allows_more": diff.allows_more(),
                "added": diff.added,
                "removed": diff.removed,
                "widened": diff.widened,
                "narrowed": diff.narrowed,
            });
            crate::output::stdout(&crate::output::json(&value)?)?;
        }
    }
    Ok(if diff.allows_more() {
        ExitCode::from(EXIT_MORE)
    } else {
        ExitCode::SUCCESS
    })
}
