//! `profile diff`: what a new profile allows that an old one didn't — the CI gate.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use super::args::load_profile;
use crate::{
    hardening::{Recipe, merge::RecipeDiff},
    output,
    report::{DiffReport, Render as _},
    seccomp::{Context, Diff},
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The baseline profile (in any format profile writes; `docker-default` for Docker's
    /// default), or least-privilege recipe (train --hardening): then a capability added, a
    /// read-only root, no-new-privileges or a user given up, or a tmpfs more is what NEW
    /// allows more.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The candidate profile.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: DiffFormat,
}

/// Exit status when NEW allows more than OLD.
const EXIT_MORE: u8 = 1;

pub async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    match (
        Recipe::read_if_recipe(&args.old)?,
        Recipe::read_if_recipe(&args.new)?,
    ) {
        (Some(old), Some(new)) => return diff_recipes(&args, &old, &new),
        (None, None) => {}
        _ => anyhow::bail!(
            "{} and {}: a least-privilege recipe compares only with a recipe",
            args.old.display(),
            args.new.display()
        ),
    }
    let old = load_profile(&args.old)?;
    let new = load_profile(&args.new)?;
    let report = DiffReport::new(
        &args.old.display().to_string(),
        &args.new.display().to_string(),
        Diff::between(&old, &new, &Context::docker_default()),
    );
    output::stdout(&match args.format {
        DiffFormat::Text => report.text(),
        DiffFormat::Json => report.json()?,
    })?;
    Ok(match report.allows_more {
        true => ExitCode::from(EXIT_MORE),
        false => ExitCode::SUCCESS,
    })
}

/// `diff` of two least-privilege recipes: exit 1 when NEW grants more.
fn diff_recipes(args: &DiffArgs, old: &Recipe, new: &Recipe) -> anyhow::Result<ExitCode> {
    let diff = RecipeDiff::new(
        &args.old.display().to_string(),
        &args.new.display().to_string(),
        old,
        new,
    );
    output::stdout(&match args.format {
        DiffFormat::Json => diff.json()?,
        DiffFormat::Text => diff.text(),
    })?;
    Ok(match diff.allows_more {
        true => ExitCode::from(EXIT_MORE),
        false => ExitCode::SUCCESS,
    })
}
