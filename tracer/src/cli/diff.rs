//! `profile diff`: what a new profile allows that an old one didn't — the CI gate.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use super::args::load_profile;
use crate::{
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

/// Exit status when NEW allows more than OLD.
const EXIT_MORE: u8 = 1;

pub async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
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
