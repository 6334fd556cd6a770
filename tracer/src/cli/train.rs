//! `profile train`: learn an image's profile from recorded Docker runs.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    cli::{
        EXIT_ERROR, ProfileFormatArgs, RecordArgs,
        container::{ContainerArgs, Interrupt, Prepared, Stop},
        learning::{LearnOptions, learn_checked},
        verify::{EXIT_DENIED, verify_once},
    },
    docker, output,
    recorder::{Mode, Snapshot},
    report::{Report, RunLine},
};

/// Exit status when the workload or the exercise failed (the profile is still written).
pub const EXIT_WORKLOAD_FAILED: u8 = 1;

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub container: ContainerArgs,
    /// Where to write the profile (atomically); `-` for stdout.
    /// [default: profiles/<image>-<tag>.json, or .yaml for --format k8s]
    #[arg(short, long, value_name = "PROFILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub learn: LearnOptions,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    /// Run the workload N times (a fresh container each time) and learn the union; the report
    /// shows how many syscalls each run added, to see whether training has converged.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// After training, run the workload once more under the fresh profile, enforced, and fail
    /// (exit 1) if it denied anything.
    #[arg(long, conflicts_with = "all_syscalls")]
    pub verify: bool,
}

pub async fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let to_stdout = args.output.as_deref() == Some(std::path::Path::new("-"));
    let output = args.output.clone().unwrap_or_else(|| {
        docker::default_profile_path(&args.container.image).with_extension(args.format.extension())
    });
    if !to_stdout {
        output::check_writable(&output)?;
    }
    output::check_distinct(&[
        ("-o", (!to_stdout).then_some(output.as_path())),
        ("--report", args.record.report.as_deref()),
        ("--summary", args.record.summary.as_deref()),
    ])?;
    args.record.check_writable()?;
    let ctx = args.container.context()?;
    let bases = args.learn.bases(&ctx)?;
    let base_json = bases.run_under.to_json()?;
    let mut interrupt = Interrupt::install()?;
    let prepared = Prepared::new(&args.container, &mut interrupt).await?;
    let mut session = prepared.session(&args.container, args.record.mode(), "training");
    session.strict_args = args.learn.learn_args == crate::seccomp::LearnArgs::Strict;

    let mut total = Snapshot::default();
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    let mut last = None;
    let mut failed = false;
    let mut elapsed = 0.0;
    for run in 1..=args.runs {
        let suffix = if args.runs > 1 {
            format!("-run{run}")
        } else {
            String::new()
        };
        let outcome = session.run(&base_json, &suffix, &mut interrupt).await?;
        if outcome.stop == Stop::StartFailed {
            anyhow::bail!(
                "the container could not start under the base profile {} (does it deny something the runtime needs? `profile verify --profile {}` names it): {}",
                bases.label,
                bases.label,
                outcome.warnings.join("; ")
            );
        }
        let snap = &outcome.snapshot;
        if snap.syscalls.is_empty() && snap.out_of_range == 0 {
            anyhow::bail!(
                "nothing ran under a seccomp filter in container {}: nothing was recorded and no profile was written (does the daemon run containers with seccomp enforced? see `docker info`)",
                outcome.container_name
            );
        }
        let new: Vec<String> = snap
            .syscalls
            .keys()
            .filter(|id| !total.syscalls.contains_key(id))
            .map(|id| id.name())
            .collect();
        total.merge(snap);
        let run_failed = outcome.failed(args.container.exercise.is_some());
        if run_failed && outcome.stop == Stop::Exited {
            warnings.push(format!(
                "{}the workload exited {}: the profile covers only what ran until then",
                if args.runs > 1 {
                    format!("run {run}: ")
                } else {
                    String::new()
                },
                outcome.exit_code.unwrap_or(-1)
            ));
        }
        failed |= run_failed;
        elapsed += outcome.elapsed.as_secs_f64();
        warnings.extend(outcome.warnings.iter().cloned());
        runs.push(RunLine {
            run,
            distinct: snap.syscalls.len(),
            added: new.len(),
            added_names: if run > 1 { new } else { Vec::new() },
            exit_code: outcome.exit_code.map(|c| c as i32),
            stopped_by: outcome.stop.label(),
        });
        let stop = outcome.stop;
        last = Some(outcome);
        if matches!(stop, Stop::Interrupted(_)) {
            break;
        }
    }
    let Some(last) = last else {
        anyhow::bail!("no run was made");
    };

    let learned = learn_checked(&total, &bases, &ctx, args.learn.learn_args)?;
    let profile = learned.profile.clone();
    let mut report = Report::new(
        &args.container.target(),
        args.record.all_syscalls,
        &total,
        &learned,
        &bases.bound_label,
    );
    report.exit_code = last.exit_code.map(|c| c as i32);
    report.stopped_by = last.stop.label();
    report.duration_seconds = (elapsed * 10.0).round() / 10.0;
    report.warnings.extend(warnings);
    if args.runs > 1 {
        report.runs = runs;
    }
    if let Stop::Interrupted(_) = last.stop {
        report.complete = false;
        report
            .warnings
            .push("interrupted: the recording is PARTIAL".into());
    }

    let mut verification = None;
    if args.verify && !matches!(last.stop, Stop::Interrupted(_)) {
        let session = prepared.session(&args.container, Mode::Verify, "verifying");
        let (v, outcome) = verify_once(
            &session,
            &profile,
            &ctx,
            "the trained profile",
            "-verify",
            &mut interrupt,
        )
        .await?;
        if let Stop::Interrupted(sig) = outcome.stop {
            eprint!("{}", v.to_text());
            return Ok(ExitCode::from(128 + sig as u8));
        }
        report.verified = Some(v.passed);
        if !v.passed {
            report.warnings.push(format!(
                "verification FAILED: the trained profile {}",
                v.failures()
            ));
        }
        verification = Some(v);
    }

    if args.record.report.is_some() {
        for warning in &report.warnings {
            log::warn!("{warning}");
        }
    }
    // A k8s manifest is named after the image, wherever it is written.
    let name = docker::default_profile_path(&args.container.image)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned());
    args.format
        .write((!to_stdout).then_some(&output), &profile, name.as_deref())?;
    args.record.write(&report)?;
    match &args.record.report {
        Some(_) => {}
        None if to_stdout => eprint!("{}", report.to_text()),
        None => print!("{}", report.to_text()),
    }
    if let Some(v) = &verification {
        eprint!("{}", v.to_text());
    }
    eprintln!(
        "profile: {} syscalls allowed, {} than Docker's default ({}){}",
        report.allowed,
        crate::report::fewer_or_more(report.reduction_vs_docker_default_percent),
        report.docker_default_allowed,
        if to_stdout {
            String::new()
        } else {
            format!(" -> {}", output.display())
        }
    );
    Ok(match last.stop {
        Stop::Interrupted(sig) => ExitCode::from(128 + sig as u8),
        _ if verification.as_ref().is_some_and(|v| !v.passed) => ExitCode::from(EXIT_DENIED),
        _ if verification.as_ref().is_some_and(|v| !v.complete) => ExitCode::from(EXIT_ERROR),
        _ if failed => ExitCode::from(EXIT_WORKLOAD_FAILED),
        _ => ExitCode::SUCCESS,
    })
}
