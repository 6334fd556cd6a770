//! What a run under a recipe shows it took away that the workload needed: a capability check
//! it failed, a write the read-only root refused, a setuid exec no-new-privileges stopped.
use super::{Recipe, caps, learn::syscall_name};
use crate::recorder::{CapOutcome, Snapshot};

/// Each denial the recipe caused in `snap` (a run under it), in words, sorted.
///
/// A failed capability check counts when Docker's default would have granted the capability
/// and the recipe took it away (or its user has none): one the container never had, or that
/// training saw denied too (its `wanted`), the workload copes without.
pub fn denials(recipe: &Recipe, snap: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (check, seen) in &snap.capabilities {
        if check.outcome != CapOutcome::Denied || seen.probe {
            continue;
        }
        let Some(name) = caps::name(check.cap) else {
            continue;
        };
        let wanted = recipe.evidence.wanted.iter().any(|w| w.name == name);
        let kept = recipe.capabilities.add.iter().any(|a| a == name) && recipe.user.is_none();
        if caps::docker_default(name) && !wanted && !kept {
            out.push(format!(
                "{name} denied to {} in {}{}",
                seen.program,
                syscall_name(check.nr),
                match &recipe.user {
                    Some(user) => format!(" (running as {user})"),
                    None => String::new(),
                }
            ));
        }
    }
    for (path, write) in &snap.read_only_writes {
        let what = match path.is_empty() {
            true => String::new(),
            false => format!(" {path}"),
        };
        out.push(format!(
            "EROFS writing{what} ({} by {}): the root filesystem is read-only there",
            syscall_name(write.nr),
            write.program
        ));
    }
    for (path, exec) in &snap.privileged_execs {
        if exec.setid_stopped {
            out.push(format!(
                "no-new-privileges stopped the setuid exec of {path}"
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        hardening::{Capabilities, CapabilityUse},
        recorder::{CapCheck, CapObserved, PrivilegedExec, RefusedWrite},
    };

    #[test]
    fn names_each_thing_the_recipe_took_away() {
        let recipe = Recipe {
            capabilities: Capabilities {
                drop: vec!["ALL".into()],
                add: vec!["SETUID".into()],
            },
            evidence: crate::hardening::Evidence {
                wanted: vec![CapabilityUse {
                    name: "NET_RAW".into(),
                    ..CapabilityUse::default()
                }],
                ..Default::default()
            },
            ..Recipe::default()
        };
        let mut snap = Snapshot::default();
        let mut deny = |cap, nr, probe| {
            snap.capabilities.insert(
                CapCheck {
                    cap,
                    outcome: CapOutcome::Denied,
                    nr,
                },
                CapObserved {
                    count: 1,
                    program: "nginx".into(),
                    probe,
                },
            );
        };
        deny(0, 93, false); // CHOWN in fchown: taken away
        deny(7, 105, false); // SETUID: kept, so not the recipe's doing
        deny(21, 9, true); // a probe
        deny(12, 54, false); // NET_ADMIN: never Docker's default
        deny(13, 41, false); // NET_RAW: denied in training too
        snap.read_only_writes.insert(
            "/var/cache/x".into(),
            RefusedWrite {
                count: 2,
                nr: 257,
                program: "nginx".into(),
            },
        );
        snap.privileged_execs.insert(
            "/bin/su".into(),
            PrivilegedExec {
                gained: false,
                setid_stopped: true,
            },
        );
        assert_eq!(
            denials(&recipe, &snap),
            [
                "CHOWN denied to nginx in fchown",
                "EROFS writing /var/cache/x (openat by nginx): the root filesystem is read-only there",
                "no-new-privileges stopped the setuid exec of /bin/su",
            ]
        );
    }
}
