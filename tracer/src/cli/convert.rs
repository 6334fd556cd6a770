//! `profile convert`: a profile in another format.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::args::{ProfileFormatArgs, load_profile};
use crate::output;

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The profile (in any format profile writes; `docker-default` for Docker's default, `-`
    /// for stdin).
    #[arg(value_name = "PROFILE")]
    pub profile: PathBuf,
    /// Where to write it (atomically) [default: stdout; `-`: stdout].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
}

pub async fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.output {
        output::check_writable(out)?;
    }
    let profile = load_profile(&args.profile)?;
    args.format
        .rendering()
        .write(args.output.as_deref(), &profile, None)?;
    Ok(ExitCode::SUCCESS)
}
