//! The least-privilege recipe of a training (`train --hardening`): learned from what its runs
//! did, then verified by a run under the whole of it, the learned profile included. A non-root
//! user is proposed only when that run passes as that user; otherwise the recipe keeps the
//! image's user and is verified again so.
use super::{TrainError, TrainOptions};
use crate::{
    hardening::{self, Learning, Recipe, Rootfs, learn::is_root},
    recorder::{Mode, Snapshot},
    report::Verification,
    seccomp::{Bound, Profile},
    session::{Interrupt, Prepared, RecordedRun},
};

/// What training's runs give the recipe: all they recorded, and what each wrote in its root
/// filesystem (`None` where that could not be read).
pub(super) struct Seen<'a> {
    pub total: &'a Snapshot,
    pub rootfs: &'a [Option<Rootfs>],
}

/// A recipe and the verification that decided it.
pub(super) struct Hardened {
    pub recipe: Recipe,
    pub verification: Verification,
    pub run: RecordedRun,
    /// What the tries before the last showed (the user that failed).
    pub notes: Vec<String>,
}

/// Learns the recipe and verifies it (see the module's documentation).
pub(super) async fn harden(
    prepared: &Prepared<'_>,
    options: &TrainOptions,
    seen: Seen<'_>,
    profile: &Profile,
    bound: &Bound,
    interrupt: &mut Interrupt,
) -> Result<Hardened, TrainError> {
    let spec = &options.run.container;
    let user = match &spec.user {
        Some(u) => u.clone(),
        None => prepared
            .engine
            .image_user(&spec.image)
            .await
            .map_err(|e| TrainError::Session(e.into()))?,
    };
    let rootfs = seen
        .rootfs
        .iter()
        .cloned()
        .collect::<Option<Vec<Rootfs>>>()
        .map(|runs| Rootfs::union(&runs));
    let mut recipe = hardening::learn(&Learning {
        image: &spec.image,
        snapshot: seen.total,
        rootfs: rootfs.as_ref(),
        had: &options.ctx.caps,
        user: Some(&user),
        seccomp: options.output.as_ref().map(|p| p.display().to_string()),
    });
    let mut notes = Vec::new();
    let (mut v, mut run) = verify(prepared, options, &recipe, profile, bound, interrupt).await?;
    if !v.passed && recipe.user.is_some() && !run.cut_short() && is_root(Some(&user)) {
        let as_user = recipe.user.clone().unwrap_or_default();
        notes.push(format!(
            "as {as_user} the workload did not pass ({}): it keeps the image's user",
            v.why_failed()
        ));
        recipe = recipe.as_image_user(format!(
            "a run as {as_user} did not pass ({})",
            v.why_failed()
        ));
        (v, run) = verify(prepared, options, &recipe, profile, bound, interrupt).await?;
    } else if v.passed && recipe.user.is_some() {
        recipe.evidence.user_because += "; a run as that user passed";
    }
    recipe.verified = v.passed && v.complete;
    Ok(Hardened {
        recipe,
        verification: v,
        run,
        notes,
    })
}

/// One run under the whole of `recipe` and `profile`, enforced, with what the recipe took
/// away named.
async fn verify(
    prepared: &Prepared<'_>,
    options: &TrainOptions,
    recipe: &Recipe,
    profile: &Profile,
    bound: &Bound,
    interrupt: &mut Interrupt,
) -> Result<(Verification, RecordedRun), TrainError> {
    let mut run_options = options.verify_run();
    run_options.container.harden(recipe);
    let session = prepared.session(&run_options, Mode::Verify, "verifying the recipe");
    let label = match &recipe.user {
        Some(user) => format!("the trained profile and least-privilege recipe, as {user}"),
        None => "the trained profile and least-privilege recipe".to_string(),
    };
    let (mut v, run) = super::verified::verify_learned(
        &session, options, profile, bound, &label, "-harden", interrupt,
    )
    .await?;
    v.set_privileges_denied(hardening::verdict::denials(recipe, &run.snapshot));
    Ok((v, run))
}
