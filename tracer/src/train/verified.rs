//! The verification that follows a training: what exercises it (the training's own exercise,
//! or another one or the probe, to try a path training never took) and how the training
//! report records it.
use super::{TrainError, TrainOptions};
use crate::{
    report::{Report, Verification, VerificationStatus},
    seccomp::{Bound, Profile},
    session::{Interrupt, ProbeOptions, RecordedRun, RunOptions, Session, Stop},
    verify::verify_once,
};

/// What exercises the verification run of a training, when not the training's own: a path
/// training never took is tried there.
#[derive(Clone, Debug)]
pub enum VerifyWith {
    /// A host command, run as `--exercise` is.
    Exercise(String),
    /// The built-in HTTP probe.
    Probe(ProbeOptions),
}

impl TrainOptions {
    /// How the verification run goes: as training's runs, exercised as `verify_with` says.
    pub(super) fn verify_run(&self) -> RunOptions {
        let (exercise, probe) = match &self.verify_with {
            None => (self.run.exercise.clone(), self.run.probe.clone()),
            Some(VerifyWith::Exercise(cmd)) => (Some(cmd.clone()), None),
            Some(VerifyWith::Probe(probe)) => (None, Some(probe.clone())),
        };
        RunOptions {
            exercise,
            probe,
            ..self.run.clone()
        }
    }

    /// Whether the verification replays what exercised training (an exercise or the probe).
    pub(super) fn verify_replays_training(&self) -> bool {
        self.verify_with.is_none() && (self.run.exercise.is_some() || self.run.probe.is_some())
    }
}

/// One enforced run in `session` under the learned `profile` (`label` names what it runs
/// under, `suffix` the container), weighed against the bound: what the bound denies too
/// doesn't fail a profile learned within it.
pub(super) async fn verify_learned(
    session: &Session<'_>,
    options: &TrainOptions,
    profile: &Profile,
    bound: &Bound,
    label: &str,
    suffix: &str,
    interrupt: &mut Interrupt,
) -> Result<(Verification, RecordedRun), TrainError> {
    let (mut v, run) = verify_once(
        session,
        &options.run.target(),
        profile,
        &options.ctx,
        label,
        suffix,
        interrupt,
    )
    .await?;
    v.weigh_against(&bound.profile, &bound.label, &options.ctx, true);
    if let Some(exercised) = &mut v.exercised {
        exercised.training_own = options.verify_replays_training();
    }
    Ok((v, run))
}

/// Records in the training report how the verification of its profile went.
pub(super) fn mark_verification(report: &mut Report, v: &Verification, run: &RecordedRun) {
    let verification = match run.stop {
        Stop::Interrupted(sig) => {
            report.warnings.push(format!(
                "verification interrupted (signal {sig}): the trained profile is written but was not verified"
            ));
            VerificationStatus::Interrupted
        }
        Stop::DaemonLost => {
            report.warnings.push(
                "verification ended when the Docker daemon went away: the trained profile was not verified".into(),
            );
            VerificationStatus::DaemonLost
        }
        Stop::NotReady => {
            report.warnings.push(format!(
                "verification: {}; the trained profile was not verified",
                run.not_ready
                    .as_deref()
                    .unwrap_or("the container was not ready")
            ));
            VerificationStatus::NotReady
        }
        _ if !v.passed => {
            report.warnings.push(format!(
                "verification FAILED: the trained profile {}",
                v.failures()
            ));
            VerificationStatus::Failed
        }
        _ if !v.complete => VerificationStatus::Incomplete,
        _ => VerificationStatus::Passed,
    };
    if matches!(
        verification,
        VerificationStatus::Passed | VerificationStatus::Failed | VerificationStatus::Incomplete
    ) {
        report.verified = Some(v.passed);
        report.verified_by = v.exercised.clone();
    }
    report.verification = Some(verification);
}
