//! `profile diff`: what a new profile allows that an old one didn't — the CI gate.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use crate::{
    cli::load_profile,
    report::{DiffReport, Render as _},
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

pub async fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let old = load_profile(&args.old)?;
    let new = load_profile(&args.new)?;
    let diff = Diff::between(&old, &new, &Context::docker_default());
    let report = DiffReport::new(
        &args.old.display().to_string(),
        &args.new.display().to_string(),
        diff,
    );
    let text = match args.format {
        DiffFormat::Text => report.text(),
        DiffFormat::Json => report.json()?,
    };
    crate::output::stdout(&text)?;
    Ok(if report.allows_more {
        ExitCode::from(EXIT_MORE)
    } else {
        ExitCode::SUCCESS
    })
}
