//! Merging profiles, proved: the result allows exactly the union of its inputs under runc —
//! nothing none of them allows and, unless forced, nothing less than any of them allows —
//! and holds on every platform asked for.
use std::collections::BTreeSet;

use super::{
    bound::{Base, NotWithin},
    compare::{MergeConflict, Widening},
    model::Profile,
    resolve::Context,
};
use crate::names::Arch;

/// Why profiles were not merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Conflict(#[from] MergeConflict),
    /// The merge would allow what none of its inputs does.
    #[error(transparent)]
    Beyond(#[from] NotWithin),
    /// The merge would deny what one of its inputs allows.
    #[error(
        "the merged profile would deny what {input} allows: {}; nothing was written",
        lost.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("; ")
    )]
    Loses { input: String, lost: Vec<Widening> },
}

/// A proved merge.
#[derive(Clone, Debug)]
pub struct Merged {
    pub profile: Profile,
    /// With `force` only: what the merge allows beyond its inputs as they were written (the
    /// first input's default action and architectures apply to every rule).
    pub beyond_inputs: Vec<Widening>,
}

/// The union of `inputs` (named for messages) as [`Profile::merge`] makes it, for a
/// container with `ctx`, proved to allow exactly what they allow together. With `force`,
/// inputs that differ in default action or architectures are merged anyway under the first
/// one's, and what that lets through beyond them is returned instead of refused. The union
/// then also holds on every platform of `arches`, derived within Docker's default there.
pub fn merge(
    inputs: &[(String, Profile)],
    force: bool,
    arches: &BTreeSet<Arch>,
    ctx: &Context,
) -> Result<Merged, MergeError> {
    let mut merged = union(inputs, force, ctx)?;
    Base::DockerDefault
        .bound(false)
        .derive(&mut merged.profile, arches, ctx)?;
    Ok(merged)
}

/// The union of `inputs`, proved (see [`merge`]).
fn union(inputs: &[(String, Profile)], force: bool, ctx: &Context) -> Result<Merged, MergeError> {
    let profile = Profile::merge(inputs, force)?;
    let parts: Vec<&Profile> = inputs.iter().map(|(_, p)| p).collect();
    let beyond = profile.widenings_beyond_union(&parts, ctx);
    if force {
        return Ok(Merged {
            profile,
            beyond_inputs: beyond,
        });
    }
    if !beyond.is_empty() {
        let names: Vec<&str> = inputs.iter().map(|(name, _)| name.as_str()).collect();
        return Err(NotWithin {
            what: "the merged profile".into(),
            bound: format!("the union of {}", names.join(" and ")),
            widenings: beyond,
        }
        .into());
    }
    for (name, input) in inputs {
        let lost = input.widenings(&profile, ctx);
        if !lost.is_empty() {
            return Err(MergeError::Loses {
                input: name.clone(),
                lost,
            });
        }
    }
    Ok(Merged {
        profile,
        beyond_inputs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::{names::Abi, seccomp::resolve::test_context as ctx};

    /// No platform beyond the host's.
    fn none() -> BTreeSet<Arch> {
        BTreeSet::new()
    }

    fn simple(names: &[&str]) -> Profile {
        Profile::allowing(names.iter().copied(), &BTreeSet::from([Abi::X86_64]))
    }

    #[test]
    fn a_merge_is_the_union_or_nothing() {
        let inputs = [
            ("a.json".to_string(), simple(&["read"])),
            ("b.json".to_string(), simple(&["write"])),
        ];
        let merged = merge(&inputs, false, &none(), &ctx()).expect("merged");
        assert_eq!(merged.profile, simple(&["read", "write"]));
        assert!(merged.beyond_inputs.is_empty());
        let logging = [
            ("a.json".to_string(), simple(&["read"])),
            ("b.json".to_string(), simple(&["write"]).logging()),
        ];
        let err = merge(&logging, false, &none(), &ctx()).expect_err("default actions differ");
        assert!(matches!(err, MergeError::Conflict(_)), "{err}");
        // Forced, the first input's default action applies: b's unlisted calls are no
        // longer logged, which is narrower, never wider.
        let forced = merge(&logging, true, &none(), &ctx()).expect("forced");
        assert!(forced.beyond_inputs.is_empty());
        // Forced, the first input's architectures apply to the second's rules too.
        let arches = [
            (
                "a.json".to_string(),
                Profile::allowing(["write"], &BTreeSet::from([Abi::X86_64, Abi::I386])),
            ),
            ("b.json".to_string(), simple(&["read"])),
        ];
        assert!(
            merge(&arches, false, &none(), &ctx()).is_err(),
            "architectures differ"
        );
        let forced = merge(&arches, true, &none(), &ctx()).expect("forced");
        let beyond: Vec<&str> = forced
            .beyond_inputs
            .iter()
            .map(|w| w.syscall.as_str())
            .collect();
        assert_eq!(beyond, ["read (i386)"]);
    }
}
