//! `profile train`: learn an image's profile from one recorded Docker run.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    cgroup,
    cli::container::{ContainerArgs, Interrupt, Session, Stop},
    docker::{self, Engine},
    output,
    recorder::Recorder,
    report::Report,
    seccomp::Profile,
};

/// Exit status when the workload or the exercise failed (the profile is still written).
pub const EXIT_WORKLOAD_FAILED: u8 = 1;

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub container: ContainerArgs,
    /// Where to write the profile (atomically); `-` for stdout.
    /// [default: profiles/<image>-<tag>.json]
    #[arg(short, long, value_name = "PROFILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub record: crate::cli::RecordArgs,
}

pub async fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let to_stdout = args.output.as_deref() == Some(std::path::Path::new("-"));
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| docker::default_profile_path(&args.container.image));
    if !to_stdout {
        output::check_writable(&output)?;
    }
    if let Some(report) = &args.record.report {
        output::check_writable(report)?;
    }
    cgroup::unified_root()?;
    let mut interrupt = Interrupt::install()?;
    let engine = Engine::connect().await?;
    let image = interrupt
        .guard(engine.ensure_image(&args.container.image))
        .await??;
    let recorder = Recorder::load()?;
    let mode = args.record.mode();
    let session = Session {
        engine: &engine,
        recorder: &recorder,
        image: &image,
        args: &args.container,
        mode,
        label: "training",
    };
    let outcome = session
        .run(docker::ALLOW_ALL_PROFILE, &mut interrupt)
        .await?;
    let snap = &outcome.snapshot;
    if snap.installs == 0 && !args.record.all_syscalls {
        anyhow::bail!(
            "no seccomp filter was installed in container {}: nothing was recorded and no profile was written (does the daemon run containers with seccomp enforced? see `docker info`)",
            outcome.container_name
        );
    }
    let profile = Profile::observed(snap);
    let mut report = Report::new(
        &args.container.target(),
        args.record.all_syscalls,
        snap,
        &profile,
    );
    report.exit_code = outcome.exit_code.map(|c| c as i32);
    report.stopped_by = outcome.stop.label();
    report.duration_seconds = (outcome.elapsed.as_secs_f64() * 10.0).round() / 10.0;
    report.warnings.extend(outcome.warnings.iter().cloned());
    let failed = outcome.failed(args.container.exercise.is_some());
    match outcome.stop {
        Stop::Interrupted(_) => {
            report.complete = false;
            report
                .warnings
                .push("interrupted: the recording is PARTIAL".into());
        }
        Stop::Exited if failed => report.warnings.push(format!(
            "the workload exited {}: the profile covers only what ran until then",
            outcome.exit_code.unwrap_or(-1)
        )),
        _ => {}
    }
    if args.record.report.is_some() {
        for warning in &report.warnings {
            log::warn!("{warning}");
        }
    }
    crate::cli::write_profile((!to_stdout).then_some(&output), &profile)?;
    match &args.record.report {
        Some(path) => crate::cli::write_report(path, &report)?,
        None if to_stdout => eprint!("{}", report.to_text()),
        None => print!("{}", report.to_text()),
    }
    eprintln!(
        "profile: {} syscalls allowed, {}% fewer than Docker's default ({}){}",
        report.allowed,
        report.reduction_vs_docker_default_percent,
        report.docker_default_allowed,
        if to_stdout {
            String::new()
        } else {
            format!(" -> {}", output.display())
        }
    );
    Ok(match outcome.stop {
        Stop::Interrupted(sig) => ExitCode::from(128 + sig as u8),
        _ if failed => ExitCode::from(EXIT_WORKLOAD_FAILED),
        _ => ExitCode::SUCCESS,
    })
}
