//! `profile run`: record a host command the way a container would be recorded.
use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use crate::{cgroup::OwnedCgroup, launch, output, recorder::Recorder, report::Report};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Write the profile here (atomically) instead of to stdout (`-`: stdout).
    #[arg(short, long, value_name = "PROFILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub record: crate::cli::RecordArgs,
    #[command(flatten)]
    pub format: crate::cli::ProfileFormatArgs,
    /// Which syscall arguments are learned in the kernel (see `train --help`).
    #[arg(long, value_enum, default_value_t, value_name = "SET")]
    pub learn_args: crate::seccomp::LearnArgs,
    /// Let the profile allow what Docker's default forbids (by default it stays within it).
    #[arg(long)]
    pub allow_beyond_default: bool,
    /// The command and its arguments, after `--`.
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
        output::check_writable(path)?;
    }
    args.record.check_writable()?;
    // Everything missing is named at once, before anything is loaded or created.
    let creds = crate::privileges::Creds::current();
    if let Some(creds) = &creds {
        let mut missing = Recorder::missing_privileges(creds);
        missing.extend(OwnedCgroup::missing_privileges(creds)?);
        crate::privileges::require(Some(*creds), missing)?;
    }
    let recorder = Recorder::load()?;
    let cgroup = OwnedCgroup::for_run()?;
    let mode = args.record.mode();
    let strict = args.learn_args == crate::seccomp::LearnArgs::Strict;
    let recording = recorder.watch_cgroup(cgroup.id(), mode, strict)?;
    let started = Instant::now();
    let procs = cgroup.procs_path();
    let child = match launch::spawn(&args.command, Some(&procs), Some(launch::allow_all())) {
        Ok(child) => child,
        Err(err) => {
            eprintln!("profile: {err}");
            return Ok(ExitCode::from(err.exit_code() as u8));
        }
    };
    let status = wait_forwarding_signals(child).await?;
    let snap = recorder.finish(recording)?;
    drop(cgroup);
    let code = launch::exit_code(status);
    let ctx = crate::seccomp::Context::docker_default();
    let bases = crate::cli::learning::LearnOptions {
        base: "allow-all".into(),
        learn_args: args.learn_args,
        allow_beyond_default: args.allow_beyond_default,
    }
    .bases(&ctx)?;
    let mut learned = crate::cli::learning::learn_checked(
        &snap,
        &crate::runtime::Tail::default(),
        &bases,
        &ctx,
        args.learn_args,
    )?;
    let derived =
        (args.format).derive(&mut learned.profile, &bases.bound, &bases.bound_label, &ctx)?;
    let profile = learned.profile.clone();
    let mut report = Report::new(
        &args.command.join(" "),
        args.record.all_syscalls,
        &snap,
        &learned,
        &bases.bound_label,
    );
    let written = args.format.written_as(args.output.as_deref());
    report.for_arches(&profile, &derived, written);
    report.exit_code = Some(code);
    report.duration_seconds = crate::report::tenths(started.elapsed().as_secs_f64());
    for warning in &report.warnings {
        log::warn!("{warning}");
    }
    args.format.write(args.output.as_deref(), &profile, None)?;
    args.record.write(&report)?;
    eprintln!(
        "profile: {} syscalls allowed ({} calls recorded, {} than Docker's default){}",
        report.allowed,
        report.total_calls,
        crate::report::fewer_or_more(report.reduction_vs_docker_default_percent),
        output::file(args.output.as_deref())
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Waits for `child`; signals sent to `profile` alone are passed on to it (the terminal's reach
/// it directly).
pub async fn wait_forwarding_signals(
    mut child: std::process::Child,
) -> anyhow::Result<std::process::ExitStatus> {
    let pid = child.id() as i32;
    let waiter = tokio::task::spawn_blocking(move || child.wait());
    tokio::pin!(waiter);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            status = &mut waiter => return Ok(status.context("waiting for the command")??),
            _ = sigint.recv() => forward(pid, libc::SIGINT),
            _ = sigterm.recv() => forward(pid, libc::SIGTERM),
        }
    }
}

fn forward(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on the child's pid.
    unsafe { libc::kill(pid, sig) };
}
