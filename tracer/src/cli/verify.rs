//! `profile verify`: run a workload under a profile, enforced, and name every call it denied.
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Args;
use tracer_common::DENY_ERRNO;

use crate::{
    cli::{
        EXIT_ERROR, ProfileFormatArgs,
        container::{ContainerArgs, show},
        load_profile,
    },
    output,
    recorder::Mode,
    report::Verification,
    seccomp::{Context, Profile},
    session::{Interrupt, Outcome, Prepared, Session, Stop},
};

/// Exit status when the profile denied something, or the container was never ready for the
/// exercise.
pub const EXIT_DENIED: u8 = 1;

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

/// Runs the workload once under `profile` with its default errno replaced by [`DENY_ERRNO`],
/// counting those exits per syscall in the kernel.
///
/// Why 3797: the kernel's own errnos end below 600, so no syscall returns it by itself and a
/// workload's ordinary failures (ENOENT, EAGAIN, …) are never mistaken for denials; it is
/// still below 4096, so libc and the kernel treat the return as an error. The profile's
/// explicit deny rules (e.g. Docker's `clone3` → ENOSYS) keep their own errno and are not
/// counted: they are deliberate.
pub async fn verify_once(
    session: &Session<'_>,
    target: &str,
    profile: &Profile,
    ctx: &Context,
    label: &str,
    suffix: &str,
    interrupt: &mut Interrupt,
) -> anyhow::Result<(Verification, Outcome)> {
    let (enforced, notes) = profile.for_verification(DENY_ERRNO, ctx);
    let outcome = session.run(&enforced.to_json()?, suffix, interrupt).await?;
    let mut v = Verification::new(target, label, DENY_ERRNO, &outcome.snapshot);
    v.set_exit_code(outcome.exit_code.map(|c| c as i32));
    v.stopped_by = outcome.stop.label();
    v.duration_seconds = crate::report::tenths(outcome.elapsed.as_secs_f64());
    v.notes.extend(notes);
    v.notes.extend(outcome.warnings.iter().cloned());
    v.notes.extend(outcome.not_ready.iter().cloned());
    if matches!(
        outcome.stop,
        Stop::Interrupted(_) | Stop::DaemonLost | Stop::NotReady
    ) {
        v.complete = false;
    }
    if outcome.snapshot.is_empty() && outcome.stop != Stop::StartFailed {
        v.notes.push(
            "nothing ran under a seccomp filter in the container: nothing could be checked".into(),
        );
        v.complete = false;
    }
    Ok((v, outcome))
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let profile = load_profile(&args.profile)?;
    let ctx = args.container.context()?;
    for path in args.output.iter().chain(args.report.iter()) {
        output::check_writable(path)?;
    }
    let mut interrupt = Interrupt::install()?;
    let options = args.container.options();
    let prepared = Prepared::new(&args.container.image, &show, &mut interrupt).await?;
    let session = prepared.session(&options, Mode::Verify, "verifying");
    let label = args.profile.display().to_string();
    let target = args.container.target();
    let (v, outcome) = verify_once(
        &session,
        &target,
        &profile,
        &ctx,
        &label,
        "",
        &mut interrupt,
    )
    .await?;
    if let Some(reason) = &outcome.not_ready {
        eprint!("{}", v.to_text());
        eprintln!(
            "profile: error: {reason}; the exercise never ran and nothing was written (--ready-timeout waits longer, --no-wait starts the exercise at once)"
        );
        return Ok(ExitCode::from(EXIT_DENIED));
    }
    match &args.report {
        Some(path) => {
            crate::cli::write_report(path, &v)?;
            eprint!("{}", v.to_text());
        }
        None => print!("{}", v.to_text()),
    }
    if let Some(out) = args.output.as_deref().filter(|_| args.fix) {
        // Never wider than Docker's default for this container, whatever was denied.
        let missing = v.missing();
        let (mut fixed, refused) = profile.fixed_within(
            &missing,
            &v.denied_values(),
            &Profile::docker_default(),
            &ctx,
        );
        (args.format).derive(
            &mut fixed,
            &Profile::docker_default(),
            "docker-default",
            &ctx,
        )?;
        args.format
            .write(Some(out), &fixed, None)
            .with_context(|| format!("writing the fixed profile to {}", out.display()))?;
        eprintln!(
            "profile: wrote {} with what the {} denied syscall(s) need",
            out.display(),
            missing.values().map(|s| s.len()).sum::<usize>()
        );
        if !refused.is_empty() {
            eprintln!(
                "profile: not added, Docker's default forbids them: {}",
                refused.join(", ")
            );
        }
    }
    Ok(match outcome.stop {
        Stop::Interrupted(sig) => ExitCode::from(128 + sig as u8),
        Stop::DaemonLost => ExitCode::from(EXIT_ERROR),
        _ if !v.passed => ExitCode::from(EXIT_DENIED),
        Stop::StartFailed => ExitCode::from(EXIT_ERROR),
        _ if !v.complete => ExitCode::from(EXIT_ERROR),
        _ => ExitCode::SUCCESS,
    })
}
