//! Recipes together: the union of several (what each needs, for one profile over several runs
//! or nodes), and what one grants that another doesn't (for `profile diff`).
use std::collections::BTreeSet;

use super::{CapabilityUse, Recipe, render};

/// One recipe that holds for everything `recipes` were learned from: capabilities, tmpfs and
/// writes united; a read-only root and no-new-privileges only where all agree; a user only
/// where all propose the same one; verified only if all were.
pub fn union(recipes: &[Recipe]) -> Option<Recipe> {
    let (first, rest) = recipes.split_first()?;
    let mut r = first.clone();
    for other in rest {
        r.capabilities.add = united(&r.capabilities.add, &other.capabilities.add);
        r.capabilities.drop = if r.capabilities.drop == other.capabilities.drop {
            r.capabilities.drop.clone()
        } else {
            // Dropping less of the two is what holds for both.
            r.capabilities
                .drop
                .iter()
                .filter(|c| other.capabilities.drop.contains(c))
                .cloned()
                .collect()
        };
        r.read_only_rootfs &= other.read_only_rootfs;
        r.tmpfs = united(&r.tmpfs, &other.tmpfs);
        r.no_new_privileges &= other.no_new_privileges;
        if r.user != other.user {
            r.user = None;
            r.evidence.user_because = "the recipes merged run as different users".into();
        }
        r.verified &= other.verified;
        if r.image != other.image {
            r.image = format!("{}, {}", r.image, other.image);
        }
        let e = &mut r.evidence;
        e.used = uses(&e.used, &other.evidence.used);
        e.wanted = uses(&e.wanted, &other.evidence.wanted);
        e.low_ports = united(&e.low_ports, &other.evidence.low_ports);
        e.writes = united(&e.writes, &other.evidence.writes);
        e.privileged_execs = united(&e.privileged_execs, &other.evidence.privileged_execs);
        if e.writable_because.is_none() {
            e.writable_because = other.evidence.writable_because.clone();
        }
    }
    if !r.read_only_rootfs {
        r.tmpfs.clear();
    }
    r.docker_run_options = render::docker_run_options(&r);
    Some(r)
}

fn united<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter()
        .chain(b)
        .cloned()
        .collect::<BTreeSet<T>>()
        .into_iter()
        .collect()
}

fn uses(a: &[CapabilityUse], b: &[CapabilityUse]) -> Vec<CapabilityUse> {
    let mut all: Vec<CapabilityUse> = a.to_vec();
    for u in b {
        match all.iter_mut().find(|x| x.name == u.name) {
            Some(x) => {
                x.syscalls = united(&x.syscalls, &u.syscalls);
                x.programs = united(&x.programs, &u.programs);
                x.checks += u.checks;
            }
            None => all.push(u.clone()),
        }
    }
    all.sort_by(|x, y| x.name.cmp(&y.name));
    all
}

/// What `new` grants that `old` did not, in words (empty: `new` is no wider): a capability
/// added, a read-only root or no-new-privileges given up, a tmpfs more, root instead of a user.
pub fn widenings(old: &Recipe, new: &Recipe) -> Vec<String> {
    let mut w: Vec<String> = new
        .capabilities
        .add
        .iter()
        .filter(|c| !old.capabilities.add.contains(c))
        .map(|c| format!("capability {c} added"))
        .collect();
    for c in &old.capabilities.drop {
        if !new.capabilities.drop.contains(c) {
            w.push(format!("capability {c} no longer dropped"));
        }
    }
    if old.read_only_rootfs && !new.read_only_rootfs {
        w.push("the root filesystem is writable again".into());
    }
    if old.read_only_rootfs && new.read_only_rootfs {
        for t in &new.tmpfs {
            if !old.tmpfs.contains(t) {
                w.push(format!("tmpfs {t} added"));
            }
        }
    }
    if old.no_new_privileges && !new.no_new_privileges {
        w.push("no-new-privileges given up".into());
    }
    if old.user.is_some() && new.user != old.user {
        w.push(match &new.user {
            Some(u) => format!(
                "runs as {u} instead of {}",
                old.user.as_deref().unwrap_or("")
            ),
            None => format!(
                "runs as the image's user instead of {}",
                old.user.as_deref().unwrap_or("")
            ),
        });
    }
    w
}

/// What `new` takes away that `old` granted (capabilities dropped, read-only gained, …), in
/// words: narrowings, which a CI gate reports but never fails on.
pub fn narrowings(old: &Recipe, new: &Recipe) -> Vec<String> {
    widenings(new, old)
        .into_iter()
        .map(|w| format!("no longer: {w}"))
        .collect()
}

/// What `profile diff` says of two recipes: what NEW grants that OLD did not fails, as a
/// syscall more does.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecipeDiff {
    pub old: String,
    pub new: String,
    pub allows_more: bool,
    pub widenings: Vec<String>,
    pub narrowings: Vec<String>,
}

impl RecipeDiff {
    pub fn new(old_name: &str, new_name: &str, old: &Recipe, new: &Recipe) -> RecipeDiff {
        let widenings = widenings(old, new);
        RecipeDiff {
            old: old_name.into(),
            new: new_name.into(),
            allows_more: !widenings.is_empty(),
            widenings,
            narrowings: narrowings(old, new),
        }
    }

    pub fn text(&self) -> String {
        let (old, new) = (&self.old, &self.new);
        let mut text = match self.allows_more {
            false => format!("{new} grants nothing {old} did not\n"),
            true => format!("{new} grants more than {old}:\n"),
        };
        for w in &self.widenings {
            text += &format!("  + {w}\n");
        }
        for n in &self.narrowings {
            text += &format!("  - {n}\n");
        }
        text
    }

    pub fn json(&self) -> Result<String, super::HardeningError> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|e| super::HardeningError::Render(e.to_string()))
    }
}

/// One line on a recipe `merge` made of `inputs` recipes.
pub fn merged_words(merged: &Recipe, inputs: usize) -> String {
    format!(
        "merged {inputs} recipes: capabilities {}{}{}",
        match merged.capabilities.add.is_empty() {
            true => "none".to_string(),
            false => merged.capabilities.add.join(", "),
        },
        match merged.read_only_rootfs {
            true => ", read-only root",
            false => ", writable root",
        },
        match merged.no_new_privileges {
            true => ", no-new-privileges",
            false => "",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardening::Capabilities;

    fn recipe(add: &[&str], ro: bool, tmpfs: &[&str], nnp: bool, user: Option<&str>) -> Recipe {
        Recipe {
            image: "app".into(),
            verified: true,
            capabilities: Capabilities {
                drop: vec!["ALL".into()],
                add: add.iter().map(|s| s.to_string()).collect(),
            },
            read_only_rootfs: ro,
            tmpfs: tmpfs.iter().map(|s| s.to_string()).collect(),
            no_new_privileges: nnp,
            user: user.map(String::from),
            ..Recipe::default()
        }
    }

    #[test]
    fn a_union_holds_for_both_and_says_so() {
        let a = recipe(&["CHOWN"], true, &["/run"], true, Some("65534:65534"));
        let b = recipe(&["SETUID"], true, &["/tmp"], false, Some("65534:65534"));
        let u = union(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(u.capabilities.add, ["CHOWN", "SETUID"]);
        assert!(u.read_only_rootfs);
        assert_eq!(u.tmpfs, ["/run", "/tmp"]);
        assert!(!u.no_new_privileges, "b execs a setuid program");
        assert_eq!(u.user.as_deref(), Some("65534:65534"));
        let c = recipe(&[], false, &[], true, None);
        let u = union(&[a.clone(), c]).unwrap();
        assert!(!u.read_only_rootfs && u.tmpfs.is_empty() && u.user.is_none());
        assert!(union(&[]).is_none());
        assert!(widenings(&a, &union(&[a.clone(), b.clone()]).unwrap()).len() >= 2);
    }

    #[test]
    fn widening_is_a_capability_more_or_a_protection_less() {
        let old = recipe(&["CHOWN"], true, &["/run"], true, Some("65534:65534"));
        assert!(widenings(&old, &old).is_empty());
        let new = recipe(&["CHOWN", "NET_RAW"], false, &[], false, None);
        assert_eq!(
            widenings(&old, &new),
            [
                "capability NET_RAW added",
                "the root filesystem is writable again",
                "no-new-privileges given up",
                "runs as the image's user instead of 65534:65534"
            ]
        );
        let narrower = recipe(&[], true, &["/run"], true, Some("65534:65534"));
        assert!(widenings(&old, &narrower).is_empty());
        assert_eq!(
            narrowings(&old, &narrower),
            ["no longer: capability CHOWN added"]
        );
    }
}
