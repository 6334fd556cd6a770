//! `profile train`: learn an image's profile from recorded Docker runs.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{
    cli::{
        EXIT_ERROR, ProfileFormatArgs, RecordArgs,
        container::{ContainerArgs, show},
        learning::{Bases, LearnOptions, learn_checked},
        verify::{EXIT_DENIED, verify_once},
    },
    docker, output,
    recorder::{Mode, Snapshot},
    report::{Report, RunLine, Verification},
    seccomp::Learned,
    session::{Interrupt, Outcome, Prepared, Session, Stop},
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
    let output = Output::checked(&args)?;
    let ctx = args.container.context()?;
    let bases = args.learn.bases(&ctx)?;
    let mut interrupt = Interrupt::install()?;
    let options = args.container.options();
    let prepared = Prepared::new(&args.container.image, &show, &mut interrupt).await?;
    let mut session = prepared.session(&options, args.record.mode(), "training");
    session.strict_args = args.learn.learn_args == crate::seccomp::LearnArgs::Strict;

    let training = train_runs(&session, &args, &bases, &mut interrupt).await?;
    if let Some(reason) = &training.last.not_ready {
        return Ok(not_ready(reason, &args));
    }
    let tail = crate::runtime::tail(&prepared.engine.runtime(None));
    let mut learned = learn_checked(&training.total, &tail, &bases, &ctx, args.learn.learn_args)?;
    let derived =
        (args.format).derive(&mut learned.profile, &bases.bound, &bases.bound_label, &ctx)?;
    let mut report = training_report(&args, &training, &learned, &bases);
    report.warnings.extend(tail.note);
    let written = args.format.written_as(Some(&output.profile));
    report.for_arches(&learned.profile, &derived, written);
    let mut verification = None;
    if args.verify && matches!(training.last.stop, Stop::Interrupted(_) | Stop::DaemonLost) {
        report
            .warnings
            .push("the training run did not finish: not verified".into());
    } else if args.verify {
        let session = prepared.session(&options, Mode::Verify, "verifying");
        let target = args.container.target();
        let (v, outcome) = verify_once(
            &session,
            &target,
            &learned.profile,
            &ctx,
            "the trained profile",
            "-verify",
            &mut interrupt,
        )
        .await?;
        mark_verification(&mut report, &v, &outcome);
        verification = Some((v, outcome));
    }

    output.write(&args, &learned, &report)?;
    if let Some((v, _)) = &verification {
        eprint!("{}", v.to_text());
    }
    output.summary(&report);
    Ok(exit_status(&training, verification.as_ref()))
}

/// Where the profile and the report go, checked before any container is created.
struct Output {
    profile: PathBuf,
    to_stdout: bool,
}

impl Output {
    fn checked(args: &TrainArgs) -> anyhow::Result<Self> {
        let to_stdout = args.output.as_deref() == Some(std::path::Path::new("-"));
        let profile = args.output.clone().unwrap_or_else(|| {
            docker::default_profile_path(&args.container.image)
                .with_extension(args.format.extension())
        });
        if !to_stdout {
            output::check_writable(&profile)?;
        }
        output::check_distinct(&[
            ("-o", (!to_stdout).then_some(profile.as_path())),
            ("--report", args.record.report.as_deref()),
            ("--summary", args.record.summary.as_deref()),
        ])?;
        args.record.check_writable()?;
        Ok(Output { profile, to_stdout })
    }

    /// Writes the profile, then the report (to its file, or to the terminal).
    fn write(&self, args: &TrainArgs, learned: &Learned, report: &Report) -> anyhow::Result<()> {
        if args.record.report.is_some() {
            for warning in &report.warnings {
                log::warn!("{warning}");
            }
        }
        // A k8s manifest is named after the image, wherever it is written.
        let name = docker::default_profile_path(&args.container.image)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        args.format.write(
            (!self.to_stdout).then_some(&self.profile),
            &learned.profile,
            name.as_deref(),
        )?;
        args.record.write(report)?;
        match &args.record.report {
            Some(_) => {}
            None if self.to_stdout => eprint!("{}", report.to_text()),
            None => print!("{}", report.to_text()),
        }
        Ok(())
    }

    fn summary(&self, report: &Report) {
        eprintln!(
            "profile: {} syscalls allowed, {} than Docker's default ({}){}",
            report.allowed,
            crate::report::fewer_or_more(report.reduction_vs_docker_default_percent),
            report.docker_default_allowed,
            if self.to_stdout {
                String::new()
            } else {
                format!(" -> {}", self.profile.display())
            }
        );
    }
}

/// What the training runs saw together.
struct Training {
    total: Snapshot,
    runs: Vec<RunLine>,
    warnings: Vec<String>,
    /// The last run: it decides how the training ended.
    last: Outcome,
    /// Some run's workload or exercise failed.
    failed: bool,
    elapsed: f64,
}

/// Runs the workload `--runs` times under the base, each in a fresh container, merging what
/// was recorded; a run that can't go on ends the training.
async fn train_runs(
    session: &Session<'_>,
    args: &TrainArgs,
    bases: &Bases,
    interrupt: &mut Interrupt,
) -> anyhow::Result<Training> {
    let base_json = bases.run_under.to_json()?;
    let exercised = args.container.exercise.is_some();
    let mut total = Snapshot::default();
    let (mut runs, mut warnings) = (Vec::new(), Vec::new());
    let (mut failed, mut elapsed) = (false, 0.0);
    let mut last = None;
    for run in 1..=args.runs {
        let suffix = if args.runs > 1 {
            format!("-run{run}")
        } else {
            String::new()
        };
        let outcome = session.run(&base_json, &suffix, interrupt).await?;
        if outcome.stop == Stop::StartFailed {
            anyhow::bail!(
                "the container could not start under the base profile {}: {} (if the base denies something the runtime needs, `profile verify --profile {}` names it)",
                bases.label,
                outcome.warnings.join("; "),
                bases.label
            );
        }
        let snap = &outcome.snapshot;
        if snap.syscalls.is_empty() && snap.out_of_range == 0 && outcome.not_ready.is_none() {
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
        let run_failed = outcome.failed(exercised);
        if run_failed && outcome.stop == Stop::Exited {
            let which = if args.runs > 1 {
                format!("run {run}: ")
            } else {
                String::new()
            };
            warnings.push(format!(
                "{which}the workload exited {}: the profile covers only what ran until then",
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
        if matches!(
            stop,
            Stop::Interrupted(_) | Stop::DaemonLost | Stop::NotReady
        ) {
            break;
        }
    }
    let last = last.ok_or_else(|| anyhow::anyhow!("no run was made"))?;
    Ok(Training {
        total,
        runs,
        warnings,
        last,
        failed,
        elapsed,
    })
}

/// The container was never ready for the exercise: say why, write nothing, exit 1.
fn not_ready(reason: &str, args: &TrainArgs) -> ExitCode {
    eprintln!(
        "profile: error: {reason}; the exercise never ran and nothing was written ({})",
        if args.container.keep {
            "the container was kept; --ready-timeout waits longer, --no-wait starts the exercise at once"
        } else {
            "--ready-timeout waits longer, --no-wait starts the exercise at once"
        }
    );
    ExitCode::from(EXIT_WORKLOAD_FAILED)
}

/// The report of the training: what was learned and how the runs ended.
fn training_report(
    args: &TrainArgs,
    training: &Training,
    learned: &Learned,
    bases: &Bases,
) -> Report {
    let last = &training.last;
    let mut report = Report::new(
        &args.container.target(),
        args.record.all_syscalls,
        &training.total,
        learned,
        &bases.bound_label,
    );
    report.exit_code = last.exit_code.map(|c| c as i32);
    report.stopped_by = last.stop.label();
    report.probe = last.probe.clone();
    report.phases = last
        .phases
        .iter()
        .map(|(phase, added)| crate::report::PhaseLine {
            phase: phase.clone(),
            added: added.clone(),
        })
        .collect();
    report.duration_seconds = (training.elapsed * 10.0).round() / 10.0;
    report.warnings.extend(training.warnings.iter().cloned());
    if args.runs > 1 {
        report.runs = training.runs.clone();
    }
    match last.stop {
        Stop::Interrupted(_) => {
            report.complete = false;
            report
                .warnings
                .push("interrupted: the recording is PARTIAL".into());
        }
        Stop::DaemonLost => report.complete = false,
        _ => {}
    }
    report
}

/// Records in the training report how the verification of its profile went.
fn mark_verification(report: &mut Report, v: &Verification, outcome: &Outcome) {
    let verification = match outcome.stop {
        Stop::Interrupted(sig) => {
            report.warnings.push(format!(
                "verification interrupted (signal {sig}): the trained profile is written but was not verified"
            ));
            "interrupted"
        }
        Stop::DaemonLost => {
            report.warnings.push(
                "verification ended when the Docker daemon went away: the trained profile was not verified".into(),
            );
            "daemon_lost"
        }
        Stop::NotReady => {
            report.warnings.push(format!(
                "verification: {}; the trained profile was not verified",
                outcome
                    .not_ready
                    .as_deref()
                    .unwrap_or("the container was not ready")
            ));
            "not_ready"
        }
        _ if !v.passed => {
            report.warnings.push(format!(
                "verification FAILED: the trained profile {}",
                v.failures()
            ));
            "failed"
        }
        _ if !v.complete => "incomplete",
        _ => "passed",
    };
    if matches!(verification, "passed" | "failed" | "incomplete") {
        report.verified = Some(v.passed);
    }
    report.verification = Some(verification.into());
}

/// The exit status: how the training ended first, then how its verification did.
fn exit_status(training: &Training, verification: Option<&(Verification, Outcome)>) -> ExitCode {
    let code = match training.last.stop {
        Stop::Interrupted(sig) => 128 + sig as u8,
        Stop::DaemonLost => EXIT_ERROR,
        _ => match verification.map(|(v, outcome)| (v, outcome.stop)) {
            Some((_, Stop::Interrupted(sig))) => 128 + sig as u8,
            Some((_, Stop::DaemonLost)) => EXIT_ERROR,
            Some((_, Stop::NotReady)) => EXIT_WORKLOAD_FAILED,
            Some((v, _)) if !v.passed => EXIT_DENIED,
            Some((v, _)) if !v.complete => EXIT_ERROR,
            _ if training.failed => EXIT_WORKLOAD_FAILED,
            _ => 0,
        },
    };
    ExitCode::from(code)
}
