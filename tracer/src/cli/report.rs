//! `profile report`: the reduction report of any profile file.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::args::ReportFormat;

use crate::{formats, output, report::Report};

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
    output::stdout(&args.format.render(&report)?)?;
    Ok(ExitCode::SUCCESS)
}
