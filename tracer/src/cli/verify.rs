//! `profile verify`: run a workload under a profile, enforced, and name every call it denied.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;

use super::{
    args::{ProfileFormatArgs, load_profile, write_report},
    container::{ContainerArgs, show},
    exit::exit_code,
};
use crate::{
    output,
    report::Render as _,
    verify::{VerifyOptions, verify},
};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub container: ContainerArgs,
    /// The profile to verify (in any format profile writes; `docker-default` for Docker's
    /// default).
    #[arg(long, value_name = "P")]
    pub profile: PathBuf,
    /// Write P plus every call it denied to --output (needs -o).
    #[arg(long, requires = "output")]
    pub fix: bool,
    /// Where --fix writes the fixed profile (atomically).
    #[arg(short, long, value_name = "OUT", requires = "fix")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    /// Write the verification report here: .json, .md, or text. Without it the result is
    /// printed on the terminal.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let options = VerifyOptions {
        profile: load_profile(&args.profile)?,
        ctx: args.container.context()?,
        run: args.container.options(),
        label: args.profile.display().to_string(),
        fix: args.fix,
        arches: args.format.rendering().arches,
    };
    for path in args.output.iter().chain(args.report.iter()) {
        output::check_writable(path)?;
    }
    let verified = verify(&options, &show).await?;
    let v = &verified.verification;
    if let Some(not_ready) = &verified.not_ready {
        eprint!("{}", v.text());
        eprintln!("profile: error: {not_ready}");
        return Ok(exit_code(verified.status));
    }
    match &args.report {
        Some(path) => {
            write_report(path, v)?;
            eprint!("{}", v.text());
        }
        None => print!("{}", v.text()),
    }
    if let (Some(out), Some(fixed)) = (args.output.as_deref(), &verified.fixed) {
        args.format
            .rendering()
            .write(Some(out), &fixed.profile, None)
            .with_context(|| format!("writing the fixed profile to {}", out.display()))?;
        eprintln!(
            "profile: wrote {} with what the {} denied syscall(s) need",
            out.display(),
            fixed.denied
        );
        if !fixed.refused.is_empty() {
            eprintln!(
                "profile: not added, Docker's default forbids them: {}",
                fixed.refused.join(", ")
            );
        }
    }
    Ok(exit_code(verified.status))
}
