//! The bound policy: the profile a workload is trained under (its base), and the one every
//! profile learned from it must stay within (its bound), with the error that says it doesn't.
//! Every profile `profile` writes is checked against its bound before it is written.
use std::collections::BTreeSet;

use super::{
    arches::Derivation,
    compare::Widening,
    learn::{LearnArgs, Learned, Observation, learn},
    model::ACT_ALLOW,
    model::Profile,
    resolve::Context,
};
use crate::names::Arch;

/// The profile that allows everything but still installs a filter, so the runtime puts it
/// exactly where a real profile goes (all three x86 ABIs listed).
fn allow_all() -> Profile {
    Profile {
        default_action: ACT_ALLOW.into(),
        default_errno_ret: None,
        arch_map: Vec::new(),
        architectures: Arch::Amd64
            .abis()
            .iter()
            .map(|a| a.seccomp_arch().to_string())
            .collect(),
        flags: Vec::new(),
        syscalls: Vec::new(),
    }
}

/// A profile that would allow what its bound forbids: never written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} would allow what {bound} forbids: {}; nothing was written",
    widenings.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("; ")
)]
pub struct NotWithin {
    /// The profile, in words (`the learned profile`).
    pub what: String,
    /// The bound, in words (`docker-default`).
    pub bound: String,
    pub widenings: Vec<Widening>,
}

/// The name of Docker's default profile as a base.
pub const DOCKER_DEFAULT: &str = "docker-default";
/// The name of the base that allows everything.
pub const ALLOW_ALL: &str = "allow-all";

/// The profile a workload runs under while it is trained, and that its learned profile
/// replaces.
#[derive(Clone, Debug, PartialEq)]
pub enum Base {
    /// Docker's default, resolved for the container's capabilities.
    DockerDefault,
    /// No filter rules: everything allowed, to explore what an application tries.
    AllowAll,
    /// A profile of one's own, named `label` in messages.
    Profile {
        profile: Box<Profile>,
        label: String,
    },
}

impl Base {
    /// The base's profile, unresolved.
    pub fn profile(&self) -> Profile {
        match self {
            Base::DockerDefault => Profile::docker_default(),
            Base::AllowAll => allow_all(),
            Base::Profile { profile, .. } => (**profile).clone(),
        }
    }

    /// How messages and reports name the base.
    pub fn label(&self) -> &str {
        match self {
            Base::DockerDefault => DOCKER_DEFAULT,
            Base::AllowAll => ALLOW_ALL,
            Base::Profile { label, .. } => label,
        }
    }

    /// Whether a profile learned under this base may be let beyond Docker's default
    /// (`--allow-beyond-default`): only under `allow-all`, since any other base is its own
    /// bound.
    pub fn can_go_beyond_default(&self) -> bool {
        matches!(self, Base::AllowAll)
    }

    /// The bound a profile learned under this base stays within: the base itself, except
    /// that under `allow-all` it is Docker's default unless `allow_beyond_default`.
    pub fn bound(&self, allow_beyond_default: bool) -> Bound {
        let base = match self {
            Base::AllowAll if !allow_beyond_default => &Base::DockerDefault,
            other => other,
        };
        Bound {
            profile: base.profile(),
            label: base.label().to_string(),
            allow_beyond: allow_beyond_default,
        }
    }
}

/// What a learned or updated profile must stay within.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    pub profile: Profile,
    /// How messages and reports name it (`docker-default`, a file, `web's profile`).
    pub label: String,
    /// Calls the bound denies outright may be let in anyway (`--allow-beyond-default`; never
    /// those whose arguments are checked). Only updates from logs, which carry no arguments,
    /// ask.
    pub allow_beyond: bool,
}

impl Bound {
    /// The smallest profile of `obs` within this bound for a container with `ctx`, proved to
    /// allow nothing the bound forbids.
    pub fn learn(
        &self,
        obs: &Observation,
        ctx: &Context,
        learn_args: LearnArgs,
    ) -> Result<Learned, NotWithin> {
        let learned = learn(obs, &self.profile, ctx, learn_args);
        self.check("the learned profile", &learned.profile, ctx)?;
        Ok(learned)
    }

    /// Makes `profile` hold on every platform of `arches` too, within this bound there for a
    /// container with `ctx`, and proves it: an error naming what it would allow beyond the
    /// bound on any platform, and `profile` left as it was. Returns what was derived.
    pub fn derive(
        &self,
        profile: &mut Profile,
        arches: &BTreeSet<Arch>,
        ctx: &Context,
    ) -> Result<Vec<Derivation>, NotWithin> {
        if arches.is_empty() {
            return Ok(Vec::new());
        }
        let (multi, derived) = profile.for_arches(arches, &self.profile, ctx);
        self.check("the profile for every --arch platform", &multi, ctx)?;
        *profile = multi;
        Ok(derived)
    }

    /// Proves that `profile` (named `what`) allows nothing this bound forbids.
    pub fn check(&self, what: &str, profile: &Profile, ctx: &Context) -> Result<(), NotWithin> {
        let widenings = profile.widenings(&self.profile, ctx);
        if widenings.is_empty() {
            return Ok(());
        }
        Err(NotWithin {
            what: what.to_string(),
            bound: self.label.clone(),
            widenings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_all_is_bound_by_the_default_unless_asked_otherwise() {
        let bound = Base::AllowAll.bound(false);
        assert_eq!(bound.label, DOCKER_DEFAULT);
        assert_eq!(bound.profile, Profile::docker_default());
        let beyond = Base::AllowAll.bound(true);
        assert_eq!(
            (beyond.label.as_str(), beyond.allow_beyond),
            (ALLOW_ALL, true)
        );
        let own = Base::Profile {
            profile: Box::new(Profile::docker_default().logging()),
            label: "p.json".into(),
        };
        assert_eq!(own.bound(false).label, "p.json");
        assert_eq!(Base::DockerDefault.bound(true).label, DOCKER_DEFAULT);
    }
}
