//! `profile run`: record a host command the way a container would be recorded.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use super::{
    args::{ProfileFormatArgs, RecordArgs},
    exit::ending,
};
use crate::{
    host::{self, RecordOptions},
    output,
    report::fewer_or_more,
    seccomp::LearnArgs,
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Write the profile here (atomically) instead of to stdout (`-`: stdout). While the
    /// profile goes to stdout, CMD's standard output goes to stderr, so that stdout holds
    /// nothing but the profile.
    #[arg(short, long, value_name = "PROFILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    /// Which syscall arguments are learned in the kernel (see `train --help`).
    #[arg(long, value_enum, default_value_t, value_name = "SET")]
    pub learn_args: LearnArgs,
    /// Let the profile allow what Docker's default forbids (by default it stays within it).
    #[arg(long)]
    pub allow_beyond_default: bool,
    /// The command and its arguments, after `--`. Its standard output goes to stderr when the
    /// profile goes to stdout (no -o, or -o -).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    output::check_distinct(&[
        ("-o", args.output.as_deref()),
        ("--report", args.record.report.as_deref()),
        ("--summary", args.record.summary.as_deref()),
    ])?;
    for path in args.output.iter() {
        args.record.mkdir.check(path)?;
    }
    args.record.check_writable()?;
    let options = RecordOptions {
        command: args.command.clone(),
        all_syscalls: args.record.all_syscalls,
        learn_args: args.learn_args,
        allow_beyond_default: args.allow_beyond_default,
        rendering: args.format.rendering(),
        output: args.output.clone(),
    };
    let recorded = host::run(&options).await?;
    let report = &recorded.report;
    for warning in &report.warnings {
        log::warn!("{warning}");
    }
    options
        .rendering
        .write(args.output.as_deref(), &recorded.learned.profile, None)?;
    args.record.write(report)?;
    eprintln!(
        "profile: {} syscalls allowed ({} calls recorded, {} than Docker's default){}",
        report.allowed,
        report.total_calls,
        fewer_or_more(report.reduction_vs_docker_default_percent),
        output::file(args.output.as_deref())
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ending(recorded.status, None))
}
