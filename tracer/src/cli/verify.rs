//! `profile verify`: run a workload under a profile, enforced, and name every call it denied.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Args;

use super::{
    args::{MkdirArgs, ProfileFormatArgs, load_base, load_profile, parse_duration, write_report},
    container::{ContainerArgs, show},
    exit::{ending, exit_code},
};
use crate::{
    hardening::Recipe,
    report::Render as _,
    session::RunOptions,
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
    /// The profile P replaces: `docker-default` (Docker's default, resolved for the
    /// container's capabilities), a profile file, or `allow-all`. Calls it denies too don't
    /// fail a P that is within it (the workload ran under it in training and coped); they are
    /// listed. --fix stays within it (Docker's default for allow-all).
    #[arg(long, value_name = "BASE", default_value = "docker-default")]
    pub base: String,
    /// Write P plus every call it denied to --output (needs -o).
    #[arg(long, requires = "output")]
    pub fix: bool,
    /// Where --fix writes the fixed profile (atomically).
    #[arg(short, long, value_name = "OUT", requires = "fix")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    #[command(flatten)]
    pub mkdir: MkdirArgs,
    /// End the run after this long, as failed, with what was denied by then: a workload that
    /// never ends (one looping on a denied call) does not run forever.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// Write the verification report here: .json, .md, or text. Without it the result is
    /// printed on the terminal.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also run under this least-privilege recipe (as train --hardening writes it): its
    /// capabilities (all others dropped), read-only root and tmpfs, no-new-privileges and
    /// user; each thing it stopped is named (CHOWN denied to nginx in fchown, EROFS writing
    /// /var/cache/x, no-new-privileges stopped the setuid exec of /bin/su).
    #[arg(long, value_name = "RECIPE")]
    pub hardening: Option<PathBuf>,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    args.container.check()?;
    let options = VerifyOptions {
        profile: load_profile(&args.profile)?,
        ctx: args.container.context()?,
        run: RunOptions {
            timeout: Some(args.timeout),
            ..args.container.options()
        },
        label: args.profile.display().to_string(),
        base: load_base(&args.base)?,
        fix: args.fix,
        arches: args.format.rendering().arches,
        hardening: args.hardening.as_deref().map(Recipe::read).transpose()?,
    };
    for path in args.output.iter().chain(args.report.iter()) {
        args.mkdir.check(path)?;
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
        if !fixed.refused.is_empty() {
            eprintln!(
                "profile: not added, {} forbids them: {}",
                fixed.bound,
                fixed.refused.join(", ")
            );
        }
        if fixed.changed() {
            args.format
                .rendering()
                .write(Some(out), &fixed.profile, None)
                .with_context(|| format!("writing the fixed profile to {}", out.display()))?;
            eprintln!(
                "profile: wrote {}: {} plus {}",
                out.display(),
                args.profile.display(),
                fixed.added.join(", ")
            );
        } else {
            eprintln!(
                "profile: nothing to add to {}, so {} was not written",
                args.profile.display(),
                out.display()
            );
        }
    }
    Ok(ending(verified.status, verified.why.as_deref()))
}
