//! `profile convert`: a profile in another format.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::args::{MkdirArgs, ProfileFormatArgs, load_profile};
use crate::seccomp::{Base, Context};

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
    #[command(flatten)]
    pub mkdir: MkdirArgs,
}

pub async fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    if let Some(out) = &args.output {
        args.mkdir.check(out)?;
    }
    let mut profile = load_profile(&args.profile)?;
    let rendering = args.format.rendering();
    // The platforms asked for are derived as merge derives them: within Docker's default.
    Base::DockerDefault.bound(false).derive(
        &mut profile,
        &rendering.arches,
        &Context::docker_default(),
    )?;
    rendering.write(args.output.as_deref(), &profile, None)?;
    Ok(ExitCode::SUCCESS)
}
