//! `profile exec`: run a host command with a profile enforced, to check a profile without Docker.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{filter, launch};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile to enforce (Docker JSON, as `profile run` writes it).
    #[arg(long, value_name = "PROFILE")]
    pub profile: PathBuf,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let profile = super::load_profile(&args.profile)?;
    let program = filter::compile(&profile)?;
    let child = match launch::spawn(&args.command, None, Some(program)) {
        Ok(child) => child,
        Err(err) => {
            eprintln!("profile: {err}");
            return Ok(ExitCode::from(err.exit_code() as u8));
        }
    };
    let status = super::run::wait_forwarding_signals(child).await?;
    Ok(ExitCode::from(
        super::run::exit_code(status).clamp(0, 255) as u8
    ))
}
