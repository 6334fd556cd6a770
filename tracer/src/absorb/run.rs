//! `profile absorb` from start to end: the records are picked, read from the kernel log, log
//! files or, following, the audit netlink group, and the profile is updated with what the
//! workload logged, within the bound.
use std::{collections::BTreeSet, path::PathBuf};

use super::{
    containers::{Selected, Wanted, select},
    error::AbsorbError,
    follow::{FollowNotice, follow},
    report::AbsorbReport,
    sources::{self, Processes},
    tally::Tally,
    update::Absorption,
};
use crate::{
    docker::Engine,
    names::Arch,
    runtime,
    seccomp::{Bound, Context, Profile},
};

/// What to absorb into which profile.
#[derive(Clone, Debug)]
pub struct AbsorbOptions {
    /// The profile the workload ran under (in complain mode or not).
    pub profile: Profile,
    /// How messages and the report name it.
    pub label: String,
    /// Logs to read; none: the kernel log buffer.
    pub logs: Vec<PathBuf>,
    /// Which records are the workload's.
    pub wanted: Wanted,
    /// What the result stays within.
    pub bound: Bound,
    /// The capabilities the workload runs with.
    pub ctx: Context,
    /// Keep reading the kernel's audit records as they happen until the containers exit or
    /// a signal says stop.
    pub follow: bool,
    /// Platforms the result must also hold on (empty: the host's alone).
    pub arches: BTreeSet<Arch>,
}

/// The updated profile and the report of how it came to be.
#[derive(Clone, Debug)]
pub struct Absorbed {
    pub absorption: Absorption,
    pub report: AbsorbReport,
}

/// Absorbs what the workload logged into `options.profile`. While following, each SIGUSR1
/// hands what was absorbed so far to `checkpoint`.
pub async fn absorb(
    options: &AbsorbOptions,
    notices: &(dyn Fn(FollowNotice<'_>) + Sync),
    checkpoint: &(dyn Fn(&Absorbed) + Sync),
) -> Result<Absorbed, AbsorbError> {
    let engine = match options.wanted.containers.is_empty() {
        true => None,
        false => Some(Engine::connect().await?),
    };
    let Selected {
        selection,
        cgroups,
        words,
    } = select(&options.wanted, engine.as_ref(), options.follow).await?;
    // What the container runtime calls after its filter is in place: the engine's, when one
    // answers; every measured runtime's otherwise.
    let tail = match &engine {
        Some(engine) => runtime::tail(&engine.runtime(None)),
        None => match Engine::connect().await {
            Ok(engine) => runtime::tail(&engine.runtime(None)),
            Err(_) => runtime::union(),
        },
    };
    let finish = |tally: &Tally| -> Result<Absorbed, AbsorbError> {
        let mut tally = tally.clone();
        tally.finish();
        let mut absorption = Absorption::new(
            &options.profile,
            &options.label,
            &tally,
            &options.bound,
            &options.ctx,
        )?;
        absorption.require(&tail.calls, &options.bound, &options.ctx)?;
        absorption.notes.extend(tail.note.iter().cloned());
        options
            .bound
            .derive(&mut absorption.profile, &options.arches, &options.ctx)?;
        let report = AbsorbReport::new(
            &options.label,
            &options.bound.label,
            words.clone(),
            &tally,
            &absorption,
            options.follow,
        );
        Ok(Absorbed { absorption, report })
    };
    let mut tally = Tally::default();
    if options.follow {
        let so_far = |tally: &Tally| match finish(tally) {
            Ok(absorbed) => checkpoint(&absorbed),
            Err(err) => notices(FollowNotice::CheckpointFailed(&err)),
        };
        follow(
            &mut tally,
            &selection,
            &cgroups,
            engine.as_ref(),
            notices,
            &so_far,
        )
        .await?;
    } else {
        let mut processes = Processes::new(&cgroups);
        let mut whereabouts = |pid| processes.whereabouts(pid, false);
        if options.logs.is_empty() {
            sources::read_kmsg(&mut tally, &selection, &mut whereabouts)?;
        }
        for path in &options.logs {
            sources::read_log(path, &mut tally, &selection, &mut whereabouts)?;
        }
    }
    finish(&tally)
}
