//! Training: an image runs under its base, once or several times in fresh containers, every
//! syscall its processes make under the filter is recorded, and the smallest profile within
//! the bound is learned (with the container runtime's tail), derived for every platform asked
//! for, proved and reported; asked to, it is verified right away.
use std::path::PathBuf;

mod hardened;
mod verified;

pub use verified::VerifyWith;
use verified::mark_verification;

use crate::{
    docker::Pull,
    formats::Rendering,
    recorder::{Mode, Snapshot},
    report::{PhaseLine, Report, RunLine, Verification, tenths},
    runtime,
    scan::{
        coverage::{Ceilings, not_read, unknown},
        scan_image,
    },
    seccomp::{Base, Context, LearnArgs, Learned, NotWithin},
    session::{
        Interrupt, NotReady, Observer, Prepared, RecordedRun, RunOptions, Session, SessionError,
        Stop, unexercised, unexercised_words,
    },
    status::Status,
    verify::VerifyError,
};

/// What to train, and how.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// How the container runs and how its runs end.
    pub run: RunOptions,
    /// The profile the workload runs under and its learned profile replaces.
    pub base: Base,
    /// Under `allow-all`: let the learned profile allow what Docker's default forbids.
    pub allow_beyond_default: bool,
    /// The capabilities the container runs with.
    pub ctx: Context,
    pub learn_args: LearnArgs,
    /// Count every syscall in the cgroup, the runtime's own setup included.
    pub all_syscalls: bool,
    /// Runs in fresh containers, whose union is learned.
    pub runs: u32,
    /// Run once more under the learned profile, enforced.
    pub verify: bool,
    /// What exercises that run (`None`: the training's own exercise or probe).
    pub verify_with: Option<VerifyWith>,
    /// How the profile will be written: the platforms it must also hold on are derived, and
    /// the report says how it is written.
    pub rendering: Rendering,
    /// Where the profile will be written (`None`: stdout), for the report's words.
    pub output: Option<PathBuf>,
    /// Allow the sound ceilings of the programs that ran too (within the bound).
    pub ceiling: bool,
    /// Also learn the least-privilege recipe (capabilities, read-only root with tmpfs,
    /// no-new-privileges, user) and verify it with the profile, in place of `verify`'s run.
    pub hardening: bool,
}

/// Why a training could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    // Not transparent: the command line looks for the session's error in the chain.
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("writing a profile as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    NotWithin(#[from] NotWithin),
    /// The runtime's init ran under the base's filter and failed: the base may deny it a call.
    #[error(
        "the container could not start under the base profile {base}: {reason} (if the base denies something the runtime needs, `profile verify --profile {base}` names it)"
    )]
    StartDenied { base: String, reason: String },
    /// The engine or runtime refused the container for a reason of its own (a port in use, a
    /// command that doesn't exist), not the filter.
    #[error("the container could not start: {reason}")]
    StartFailed { reason: String },
    #[error(
        "nothing ran under a seccomp filter in container {container}: nothing was recorded and no profile was written (does the daemon run containers with seccomp enforced? see `docker info`)"
    )]
    NothingRecorded { container: String },
}

impl From<VerifyError> for TrainError {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::Session(err) => TrainError::Session(err),
            VerifyError::Json(err) => TrainError::Json(err),
            VerifyError::NotWithin(err) => TrainError::NotWithin(err),
        }
    }
}

/// What a training came to.
#[derive(Clone, Debug)]
pub enum Training {
    /// The container was never ready for the exercise: nothing was learned.
    NotReady(NotReady),
    /// A profile was learned (and verified, when asked).
    Learned(Box<Trained>),
}

/// A learned profile, its report and, when asked, its verification.
#[derive(Clone, Debug)]
pub struct Trained {
    pub learned: Learned,
    pub report: Report,
    pub verification: Option<Verification>,
    /// With [`TrainOptions::hardening`]: the recipe (`verified` says whether a run under it
    /// passed).
    pub recipe: Option<crate::hardening::Recipe>,
    pub status: Status,
    /// Why `status` is not success, in one line.
    pub why: Option<String>,
}

impl Training {
    pub fn status(&self) -> Status {
        match self {
            Training::NotReady(_) => Status::WorkloadFailed,
            Training::Learned(trained) => trained.status,
        }
    }
}

/// What the training runs saw together.
struct Runs {
    total: Snapshot,
    /// What each run wrote in its root filesystem (with [`TrainOptions::hardening`]).
    rootfs: Vec<Option<crate::hardening::Rootfs>>,
    lines: Vec<RunLine>,
    warnings: Vec<String>,
    /// The last run: it decides how the training ended.
    last: RecordedRun,
    /// Why the first run whose workload or exercise failed did.
    failure: Option<String>,
    elapsed: f64,
}

/// Trains `options.run`'s image: records its runs under the base, learns the profile within
/// the bound and proves it, and verifies it when asked.
pub async fn train(options: &TrainOptions, observer: &Observer) -> Result<Training, TrainError> {
    let bound = options.base.bound(options.allow_beyond_default);
    let mut interrupt = Interrupt::install()?;
    let prepared = Prepared::new(&options.run, observer, &mut interrupt).await?;
    // Read while the workload runs: the runtime's tail needs its binary.
    let runtime = prepared.engine.runtime(None);
    runtime.prepare();
    let mode = match options.all_syscalls {
        true => Mode::AllSyscalls,
        false => Mode::UnderFilter,
    };
    if options.hardening {
        prepared
            .recorder
            .record_capabilities()
            .map_err(SessionError::from)?;
    }
    let run_options = RunOptions {
        observe_rootfs: options.hardening,
        ..options.run.clone()
    };
    let mut session = prepared.session(&run_options, mode, "training");
    session.strict_args = options.learn_args == LearnArgs::Strict;
    let runs = record_runs(&session, options, &mut interrupt).await?;
    if let Some(not_ready) = NotReady::of(&runs.last, &options.run) {
        return Ok(Training::NotReady(not_ready));
    }
    // The runtime's calls after its filter is in place: every start needs them.
    let tail = runtime::tail(&runtime);
    let mut obs = runs.total.observation();
    obs.required = tail.calls.clone();
    let (ceilings, scan_failed, scan_interrupted) =
        ceilings(&prepared, options, &runs, &mut interrupt).await;
    if options.ceiling
        && let Some(c) = &ceilings
    {
        obs.ceiling = c.sound.clone();
    }
    let mut learned = bound.learn(&obs, &options.ctx, options.learn_args)?;
    let derived = bound.derive(
        &mut learned.profile,
        &options.rendering.arches,
        &options.ctx,
    )?;
    let mut report = training_report(options, &runs, &learned, &bound.label);
    report.warnings.extend(tail.note);
    // An EXPOSEd port nothing reached: the profile lacks what serving it takes.
    report.warnings.extend(unexercised_words(&unexercised(
        &options.run,
        &prepared.exposed,
    )));
    report.warnings.extend(scan_failed);
    report.add_coverage(
        ceilings.map(|c| c.coverage),
        options.ceiling,
        &runs.total,
        &learned,
        &options.ctx,
    );
    let written = options.rendering.written_as(options.output.as_deref());
    report.for_arches(&learned.profile, &derived, written);
    let mut verification = None;
    let mut recipe = None;
    let verify = options.verify || options.hardening;
    if verify && scan_interrupted {
        report.warnings.push("interrupted: not verified".into());
    } else if verify && runs.last.cut_short() {
        report
            .warnings
            .push("the training run did not finish: not verified".into());
    } else if options.hardening {
        let seen = hardened::Seen {
            total: &runs.total,
            rootfs: &runs.rootfs,
        };
        let h = hardened::harden(
            &prepared,
            options,
            seen,
            &learned.profile,
            &bound,
            &mut interrupt,
        )
        .await?;
        report.warnings.extend(h.notes);
        mark_verification(&mut report, &h.verification, &h.run);
        report.hardening = Some(h.recipe.clone());
        recipe = Some(h.recipe);
        verification = Some((h.verification, h.run));
    } else if options.verify {
        let verify_run = options.verify_run();
        let session = prepared.session(&verify_run, Mode::Verify, "verifying");
        let (v, run) = verified::verify_learned(
            &session,
            options,
            &learned.profile,
            &bound,
            "the trained profile",
            "-verify",
            &mut interrupt,
        )
        .await?;
        mark_verification(&mut report, &v, &run);
        verification = Some((v, run));
    }
    let (status, why) = status(&runs, verification.as_ref());
    Ok(Training::Learned(Box::new(Trained {
        learned,
        report,
        verification: verification.map(|(v, _)| v),
        recipe,
        status,
        why,
    })))
}

/// Runs the workload `options.runs` times under the base, each in a fresh container, merging
/// what was recorded; a run that can't go on ends the training.
async fn record_runs(
    session: &Session<'_>,
    options: &TrainOptions,
    interrupt: &mut Interrupt,
) -> Result<Runs, TrainError> {
    let base_json = options.base.profile().resolve(&options.ctx).to_json()?;
    let exercised = options.run.exercise.is_some();
    let mut total = Snapshot::default();
    let mut rootfs = Vec::new();
    let (mut lines, mut warnings) = (Vec::new(), Vec::new());
    let (mut failure, mut elapsed) = (None, 0.0);
    let mut last = None;
    for run in 1..=options.runs {
        let suffix = match options.runs {
            1 => String::new(),
            _ => format!("-run{run}"),
        };
        let recorded = session.run(&base_json, &suffix, interrupt).await?;
        if recorded.stop == Stop::StartFailed {
            let reason = recorded.warnings.join("; ");
            return Err(match filter_may_be_why(&recorded.snapshot, &reason) {
                true => TrainError::StartDenied {
                    base: options.base.label().to_string(),
                    reason,
                },
                false => TrainError::StartFailed { reason },
            });
        }
        let snap = &recorded.snapshot;
        if snap.syscalls.is_empty() && snap.out_of_range == 0 && recorded.not_ready.is_none() {
            return Err(TrainError::NothingRecorded {
                container: recorded.container_name.clone(),
            });
        }
        let new: Vec<String> = snap
            .syscalls
            .keys()
            .filter(|id| !total.syscalls.contains_key(id))
            .map(|id| id.name())
            .collect();
        total.merge(snap);
        rootfs.push(recorded.rootfs.clone());
        let run_failure = recorded.failure(exercised);
        if run_failure.is_some() && recorded.stop == Stop::Exited {
            let which = match options.runs {
                1 => String::new(),
                _ => format!("run {run}: "),
            };
            warnings.push(format!(
                "{which}the workload exited {}: the profile covers only what ran until then",
                recorded.exit_code.unwrap_or(-1)
            ));
        }
        if failure.is_none()
            && let Some(why) = run_failure
        {
            failure = Some(match options.runs {
                1 => why,
                _ => format!("run {run}: {why}"),
            });
        }
        elapsed += recorded.elapsed.as_secs_f64();
        warnings.extend(recorded.warnings.iter().cloned());
        lines.push(RunLine {
            run,
            distinct: snap.syscalls.len(),
            added: new.len(),
            added_names: if run > 1 { new } else { Vec::new() },
            exit_code: recorded.exit_code.map(|c| c as i32),
            stopped_by: recorded.stop.stopped_by(),
        });
        let stop = recorded.stop;
        last = Some(recorded);
        if matches!(
            stop,
            Stop::Interrupted(_) | Stop::DaemonLost | Stop::NotReady
        ) {
            break;
        }
    }
    let last = last.ok_or(TrainError::NothingRecorded {
        container: options.run.target(),
    })?;
    Ok(Runs {
        total,
        rootfs,
        lines,
        warnings,
        last,
        failure,
        elapsed,
    })
}

/// What the ceilings of the image's programs say of what ran; or why the image could not be
/// scanned. Nothing when nothing was exec'd that the recorder saw.
async fn ceilings(
    prepared: &Prepared<'_>,
    options: &TrainOptions,
    runs: &Runs,
    interrupt: &mut Interrupt,
) -> (Option<Ceilings>, Option<String>, bool) {
    if runs.total.programs.is_empty() {
        return (None, None, false);
    }
    let image = &options.run.container.image;
    // A run a signal ended, or whose daemon went away, is written as it is, at once: the
    // image is not read from a daemon that may not answer.
    if runs.last.cut_short() {
        return (
            None,
            Some(not_read(image, "the training run did not finish")),
            false,
        );
    }
    // Training ran it: the image is present.
    let scan = match interrupt
        .guard(scan_image(&prepared.engine, image, Pull::Never))
        .await
    {
        Ok(Ok(scan)) => scan,
        Err(_) => return (None, Some(not_read(image, "interrupted")), true),
        Ok(Err(err)) => return (None, Some(unknown(image, err)), false),
    };
    (Ceilings::of(&scan, &runs.total), None, false)
}

/// Whether a start that failed with `reason` can be the filter's doing: the runtime's init ran
/// under it (a call it was denied fails with the base's errno), and the engine's message is not
/// one of those that name a cause of their own.
fn filter_may_be_why(snapshot: &Snapshot, reason: &str) -> bool {
    const ENGINE_CAUSES: [&str; 5] = [
        "port is already allocated",
        "address already in use",
        "no such file or directory",
        "executable file not found",
        "permission denied",
    ];
    let reason = reason.to_ascii_lowercase();
    !snapshot.runtime.is_empty() && !ENGINE_CAUSES.iter().any(|c| reason.contains(c))
}

/// The report of the training: what was learned and how the runs ended.
fn training_report(options: &TrainOptions, runs: &Runs, learned: &Learned, bound: &str) -> Report {
    let last = &runs.last;
    let mut report = Report::new(
        &options.run.target(),
        options.all_syscalls,
        &runs.total,
        learned,
        bound,
    );
    report.exit_code = last.exit_code.map(|c| c as i32);
    report.stopped_by = last.stop.stopped_by();
    report.probe = last.probe.clone();
    report.phases = last
        .phases
        .iter()
        .map(|(phase, added)| PhaseLine {
            phase: phase.clone(),
            added: added.clone(),
        })
        .collect();
    report.duration_seconds = tenths(runs.elapsed);
    report.warnings.extend(runs.warnings.iter().cloned());
    if options.runs > 1 {
        report.runs = runs.lines.clone();
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

/// How the training ended first, then how its verification did; and why, when not well.
fn status(
    runs: &Runs,
    verification: Option<&(Verification, RecordedRun)>,
) -> (Status, Option<String>) {
    let training = |why: &str| {
        Some(format!(
            "training: {why}; what was recorded is written, marked partial"
        ))
    };
    match runs.last.stop {
        Stop::Interrupted(sig) => (
            Status::Interrupted(sig),
            training(&format!("interrupted by signal {sig}")),
        ),
        Stop::DaemonLost => (
            Status::Incomplete,
            training("the Docker daemon went away during the run"),
        ),
        _ => match verification {
            Some((_, run))
                if matches!(
                    run.stop,
                    Stop::Interrupted(_) | Stop::DaemonLost | Stop::NotReady
                ) =>
            {
                let status = match run.stop {
                    Stop::Interrupted(sig) => Status::Interrupted(sig),
                    Stop::DaemonLost => Status::Incomplete,
                    _ => Status::WorkloadFailed,
                };
                let why = run.failure(true).unwrap_or_default();
                (
                    status,
                    Some(format!(
                        "verification: {why}; the trained profile was not verified"
                    )),
                )
            }
            Some((v, _)) if !v.passed => (
                Status::Denied,
                Some(format!(
                    "verification of the trained profile: {}",
                    v.why_failed()
                )),
            ),
            Some((v, _)) if !v.complete => (
                Status::Incomplete,
                Some(format!(
                    "verification incomplete: {}",
                    v.notes
                        .last()
                        .map_or("not everything could be checked", String::as_str)
                )),
            ),
            _ if runs.failure.is_some() => (
                Status::WorkloadFailed,
                runs.failure
                    .as_ref()
                    .map(|why| format!("{why} (the profile and report are written)")),
            ),
            _ => (Status::Success, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_start_the_filter_can_have_failed_blames_the_base() {
        let mut ran = Snapshot::default();
        ran.runtime.insert(
            0,
            crate::recorder::Observed {
                count: 1,
                first: None,
            },
        );
        let denied = "OCI runtime start failed: cannot start a stopped process: unknown";
        assert!(filter_may_be_why(&ran, denied));
        assert!(
            !filter_may_be_why(&Snapshot::default(), denied),
            "runc never ran under it"
        );
        for engine in [
            "driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:8080 failed: port is already allocated",
            r#"OCI runtime create failed: runc create failed: unable to start container process: exec: "/nosuch": stat /nosuch: no such file or directory: unknown"#,
            r#"exec: "nosuch": executable file not found in $PATH: unknown"#,
        ] {
            assert!(!filter_may_be_why(&ran, engine), "{engine}");
        }
    }
}
