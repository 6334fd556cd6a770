//! `profile exec`: run a host command with a profile enforced, to check a profile without Docker.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{args::load_profile, exit::exit_code};
use crate::host::{self, ExecOptions};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile to enforce (in any format profile writes; `docker-default` for Docker's
    /// default).
    #[arg(long, value_name = "PROFILE")]
    pub profile: PathBuf,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub async fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let options = ExecOptions {
        profile: load_profile(&args.profile)?,
        label: args.profile.display().to_string(),
        command: args.command,
    };
    let executed = host::exec(&options).await?;
    if let Some(name) = executed.fault {
        eprintln!(
            "profile: {}: killed by {name} under {}: it may need a call the profile denies (`profile run` records what it calls)",
            options.command[0], options.label
        );
    }
    Ok(exit_code(executed.status))
}
