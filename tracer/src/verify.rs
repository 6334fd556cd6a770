//! Verifying a profile: the workload runs under it, enforced, and every call it denied is
//! named; asked to, the profile is fixed with what was denied, never beyond Docker's default.
use std::collections::BTreeSet;

use tracer_common::DENY_ERRNO;

use crate::{
    hardening::{self, Recipe},
    names::{Abi, AbiName, Arch},
    recorder::Mode,
    report::{Verification, tenths},
    runtime::{self, Tail},
    seccomp::{Base, Context, NotWithin, Profile},
    session::{
        Exercised, Interrupt, NotReady, Observer, Prepared, RecordedRun, RunOptions, Session,
        SessionError, Stop,
    },
    status::Status,
};

/// What to verify, and how.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// How the container runs and how its run ends.
    pub run: RunOptions,
    pub profile: Profile,
    /// How reports name the profile.
    pub label: String,
    /// The capabilities the container runs with.
    pub ctx: Context,
    /// The profile the verified one replaces (Docker's default unless told otherwise): its own
    /// denials don't fail a profile within it, and the fixed profile stays within its bound.
    pub base: Base,
    /// Also make the fixed profile: this one plus what it denied.
    pub fix: bool,
    /// Platforms the fixed profile must also hold on (empty: the host's alone).
    pub arches: BTreeSet<Arch>,
    /// Run under this least-privilege recipe too, and name what it denied.
    pub hardening: Option<Recipe>,
}

/// Why a verification could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    // Not transparent: the command line looks for the session's error in the chain.
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("writing the profile to verify as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    NotWithin(#[from] NotWithin),
}

/// A profile plus what was denied under it.
#[derive(Clone, Debug)]
pub struct Fixed {
    pub profile: Profile,
    /// What it allows that the verified profile did not (names, or names with arguments).
    pub added: Vec<String>,
    /// What was denied that the bound forbids for the container: not added.
    pub refused: Vec<String>,
    /// The bound, in words.
    pub bound: String,
}

impl Fixed {
    /// Whether there is anything to write: a fixed profile equal to the verified one isn't.
    pub fn changed(&self) -> bool {
        !self.added.is_empty()
    }
}

/// What a verification came to.
#[derive(Clone, Debug)]
pub struct Verified {
    pub verification: Verification,
    /// The container was never ready for the exercise: nothing is to be written.
    pub not_ready: Option<NotReady>,
    /// With [`VerifyOptions::fix`], when the container was ready.
    pub fixed: Option<Fixed>,
    pub status: Status,
    /// Why `status` is not success, in one line.
    pub why: Option<String>,
}

/// Runs the workload once under `options.profile`, enforced, and names what it denied.
pub async fn verify(options: &VerifyOptions, observer: &Observer) -> Result<Verified, VerifyError> {
    let mut interrupt = Interrupt::install()?;
    let mut run_options = options.run.clone();
    if let Some(recipe) = &options.hardening {
        run_options.container.harden(recipe);
    }
    let prepared = Prepared::new(&run_options, observer, &mut interrupt).await?;
    prepared.engine.runtime(None).prepare();
    if options.hardening.is_some() {
        prepared
            .recorder
            .record_capabilities()
            .map_err(SessionError::from)?;
    }
    let session = prepared.session(&run_options, Mode::Verify, "verifying");
    let (mut verification, run) = verify_once(
        &session,
        &options.run.target(),
        &options.profile,
        &options.ctx,
        &options.label,
        "",
        &mut interrupt,
    )
    .await?;
    let base = options.base.profile();
    let within = options.profile.widenings(&base, &options.ctx).is_empty();
    verification.weigh_against(&base, options.base.label(), &options.ctx, within);
    if let Some(recipe) = &options.hardening {
        verification.set_privileges_denied(hardening::verdict::denials(recipe, &run.snapshot));
    }
    let runtime = prepared.engine.runtime(None);
    let lacking = lacking(
        &runtime::tail(&runtime),
        &options.profile,
        &base,
        &options.ctx,
    );
    verification.set_runtime_lacking(&runtime.to_string(), lacking);
    if let Some(not_ready) = NotReady::of(&run, &run_options) {
        return Ok(Verified {
            verification,
            not_ready: Some(not_ready),
            fixed: None,
            status: Status::WorkloadFailed,
            why: None,
        });
    }
    let fixed = match options.fix {
        true => Some(fix(options, &verification)?),
        false => None,
    };
    let status = match run.stop {
        Stop::Interrupted(sig) => Status::Interrupted(sig),
        Stop::DaemonLost => Status::Incomplete,
        _ if verification.exercise_failed.is_some() => Status::WorkloadFailed,
        _ if !verification.passed => Status::Denied,
        // Nothing denied, yet the workload never got to its end.
        Stop::TimedOut => Status::WorkloadFailed,
        Stop::StartFailed => Status::Incomplete,
        _ if !verification.complete => Status::Incomplete,
        _ => Status::Success,
    };
    let why = match status {
        Status::Success => None,
        Status::Interrupted(_) | Status::Incomplete if verification.passed => Some(format!(
            "{}: the verification is PARTIAL",
            run.failure(false)
                .or_else(|| verification.notes.last().cloned())
                .unwrap_or_else(|| "not everything could be checked".into())
        )),
        Status::WorkloadFailed if run.stop == Stop::TimedOut && verification.passed => {
            run.failure(false)
        }
        _ => Some(verification.why_failed()),
    };
    Ok(Verified {
        verification,
        not_ready: None,
        fixed,
        status,
        why,
    })
}

/// The calls of the runtime's `tail` that `profile` denies whatever their arguments while
/// `base` allows them.
fn lacking(tail: &Tail, profile: &Profile, base: &Profile, ctx: &Context) -> Vec<String> {
    if !profile.covers(Abi::X86_64) {
        return Vec::new();
    }
    let allowed = profile.decisions(Abi::X86_64, ctx);
    let based = base.decisions(Abi::X86_64, ctx);
    tail.calls
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| allowed.get(name).is_none_or(|d| d.upper.is_empty()))
        .filter(|name| based.get(name).is_some_and(|d| !d.upper.is_empty()))
        .map(String::from)
        .collect()
}

/// `options.profile` plus what `verification` found denied, never wider than the base's bound
/// (Docker's default unless the base says otherwise) for the container, on every platform
/// asked for.
fn fix(options: &VerifyOptions, verification: &Verification) -> Result<Fixed, NotWithin> {
    let bound = options.base.bound(false);
    let missing = verification.missing();
    let (mut profile, refused) = options.profile.fixed_within(
        &missing,
        &verification.denied_values(),
        &bound.profile,
        &options.ctx,
    );
    let added = if profile == options.profile {
        Vec::new()
    } else {
        missing
            .iter()
            .flat_map(|(abi, names)| names.iter().map(move |n| AbiName(*abi, n).to_string()))
            .filter(|n| !refused.iter().any(|r| r == n))
            .collect()
    };
    bound.derive(&mut profile, &options.arches, &options.ctx)?;
    Ok(Fixed {
        profile,
        added,
        refused,
        bound: bound.label,
    })
}

/// Runs the workload once under `profile` with its default errno replaced by [`DENY_ERRNO`],
/// counting those exits per syscall in the kernel; `label` names the profile, `suffix` the
/// container (`-verify`).
///
/// Why 3797: the kernel's own errnos end below 600, so no syscall returns it by itself and a
/// workload's ordinary failures (ENOENT, EAGAIN, …) are never mistaken for denials; it is
/// still below 4096, so libc and the kernel treat the return as an error. The profile's
/// explicit deny rules (e.g. Docker's `clone3` → ENOSYS) keep their own errno and are not
/// counted: they are deliberate.
pub(crate) async fn verify_once(
    session: &Session<'_>,
    target: &str,
    profile: &Profile,
    ctx: &Context,
    label: &str,
    suffix: &str,
    interrupt: &mut Interrupt,
) -> Result<(Verification, RecordedRun), VerifyError> {
    let (enforced, notes) = profile.for_verification(DENY_ERRNO, ctx);
    let run = session.run(&enforced.to_json()?, suffix, interrupt).await?;
    let mut v = Verification::new(target, label, DENY_ERRNO, &run.snapshot);
    v.set_exit_code(run.exit_code.map(|c| c as i32));
    if run.stop == Stop::Exercise
        && let Some(code) = run.exercise_code.filter(|c| *c != 0)
    {
        v.set_exercise_failed(code);
    }
    v.stopped_by = run.stop.stopped_by();
    v.exercised = Some(Exercised::of(session.options, &run, session.exposed));
    v.duration_seconds = tenths(run.elapsed.as_secs_f64());
    v.notes.extend(notes);
    v.notes.extend(run.warnings.iter().cloned());
    v.notes.extend(run.not_ready.iter().cloned());
    if matches!(
        run.stop,
        Stop::Interrupted(_) | Stop::DaemonLost | Stop::NotReady
    ) {
        v.complete = false;
    }
    if run.snapshot.is_empty() && run.stop != Stop::StartFailed {
        v.notes.push(
            "nothing ran under a seccomp filter in the container: nothing could be checked".into(),
        );
        v.complete = false;
    }
    Ok((v, run))
}
