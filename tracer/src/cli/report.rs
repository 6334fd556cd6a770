//! `profile report`: the reduction report of any profile file.
use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};

use crate::{
    formats, output,
    report::{Render as _, Report},
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    #[default]
    Text,
    /// Markdown, fit for a CI job summary.
    Md,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The profile: Docker's JSON, an OCI seccomp object or runtime config, or an SPO
    /// SeccompProfile manifest (YAML); `docker-default` for Docker's default, `-` for stdin.
    #[arg(value_name = "PROFILE")]
    pub profile: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    // The report carries the warnings about the profile itself: not printed twice.
    let profile = formats::read_profile(&args.profile)?;
    let target = formats::origin(&args.profile).display().to_string();
    let report = Report::for_profile(&target, &profile);
    output::stdout(&match args.format {
        ReportFormat::Text => report.text(),
        ReportFormat::Md => report.markdown(),
        ReportFormat::Json => report.json()?,
    })?;
    Ok(ExitCode::SUCCESS)
}
