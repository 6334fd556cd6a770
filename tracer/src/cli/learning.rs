//! How a recording becomes a profile: the base the workload runs under, the bound the learned
//! profile stays within, which arguments are learned. Shared by `train` and `run`.
use std::path::Path;

use clap::Args;

use crate::{
    cli::load_profile,
    recorder::Snapshot,
    seccomp::{self, Context, LearnArgs, Learned, Profile},
};

#[derive(Clone, Debug, Args)]
pub struct LearnOptions {
    /// The profile the workload is trained under and the learned profile replaces: it is
    /// never allowed anything this one forbids. `docker-default` (Docker's default, resolved
    /// for the container's capabilities), a profile file, or `allow-all` (no filter rules:
    /// to explore what an application tries; the learned profile still stays within Docker's
    /// default unless --allow-beyond-default).
    #[arg(long, value_name = "PROFILE", default_value = "docker-default")]
    pub base: String,
    /// Which syscall arguments are learned in the kernel: none; default (socket's family and
    /// type, personality's persona); strict (also ioctl's request and prctl's option).
    #[arg(long, value_enum, default_value_t, value_name = "SET")]
    pub learn_args: LearnArgs,
    /// With --base allow-all: let the learned profile allow what Docker's default forbids.
    #[arg(long)]
    pub allow_beyond_default: bool,
}

/// The base a workload runs under and the bound its profile stays within.
pub struct Bases {
    /// What the container's runtime is handed: the base resolved for the container.
    pub run_under: Profile,
    pub label: String,
    pub bound: Profile,
    pub bound_label: String,
}

impl LearnOptions {
    /// Loads the base (checked before any container is created: a file that doesn't parse
    /// stops here with its line and column).
    pub fn bases(&self, ctx: &Context) -> crate::Result<Bases> {
        let (base, label) = match self.base.as_str() {
            "allow-all" => (seccomp::allow_all(), "allow-all".to_string()),
            other => (load_profile(Path::new(other))?, other.to_string()),
        };
        let (bound, bound_label) = if self.base == "allow-all" && !self.allow_beyond_default {
            (Profile::docker_default(), "docker-default".to_string())
        } else {
            (base.clone(), label.clone())
        };
        Ok(Bases {
            run_under: base.resolve(ctx),
            label,
            bound,
            bound_label,
        })
    }
}

/// Learns the profile of `snap` within the bound, allowing `tail` (the container runtime's
/// calls after its filter is in place) too, and proves it: a profile that would allow anything
/// the bound forbids is an error, never written.
pub fn learn_checked(
    snap: &Snapshot,
    tail: &crate::runtime::Tail,
    bases: &Bases,
    ctx: &Context,
    learn_args: LearnArgs,
) -> crate::Result<Learned> {
    let mut obs = snap.observation();
    obs.required = tail.calls.clone();
    seccomp::learn::learn_checked(&obs, &bases.bound, &bases.bound_label, ctx, learn_args)
}
