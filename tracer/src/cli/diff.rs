//! `profile diff`: what a new profile allows that an old one didn't — the CI gate.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use super::args::load_profile;
use crate::{
    hardening::{
        Recipe,
        merge::{narrowings, widenings},
    },
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
    match (Recipe::sniff(&args.old), Recipe::sniff(&args.new)) {
        (true, true) => return diff_recipes(&args),
        (false, false) => {}
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

/// `diff` of two least-privilege recipes: what NEW grants that OLD did not fails (exit 1), as
/// a syscall more does.
fn diff_recipes(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let old = Recipe::read(&args.old)?;
    let new = Recipe::read(&args.new)?;
    let wider = widenings(&old, &new);
    let narrower = narrowings(&old, &new);
    let (old_name, new_name) = (args.old.display(), args.new.display());
    output::stdout(&match args.format {
        DiffFormat::Json => {
            let v = serde_json::json!({
                "old": old_name.to_string(),
                "new": new_name.to_string(),
                "allows_more": !wider.is_empty(),
                "widenings": wider,
                "narrowings": narrower,
            });
            format!("{}\n", serde_json::to_string_pretty(&v)?)
        }
        DiffFormat::Text => {
            let mut text = match wider.is_empty() {
                true => format!("{new_name} grants nothing {old_name} did not\n"),
                false => format!("{new_name} grants more than {old_name}:\n"),
            };
            for w in &wider {
                text += &format!("  + {w}\n");
            }
            for n in &narrower {
                text += &format!("  - {n}\n");
            }
            text
        }
    })?;
    Ok(match wider.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_MORE),
    })
}
