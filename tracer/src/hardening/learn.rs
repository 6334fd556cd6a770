//! Learning a recipe from what training saw: the capability checks the workload passed
//! (probes left out), what it wrote in its root filesystem, its privilege-gaining execs and the
//! user it ran as. Never more than the training had: a capability is kept only if the
//! container ran with it.
use std::collections::{BTreeMap, BTreeSet};

use super::{Capabilities, CapabilityUse, Evidence, Recipe, caps, render, rootfs::Rootfs};
use crate::{
    names::Abi,
    recorder::{CapCheck, CapOutcome, Snapshot},
};

/// The user a recipe proposes for a workload that needs root for nothing: `nobody`, by number
/// (Kubernetes' runAsNonRoot takes only numbers).
pub const NON_ROOT: &str = "65534:65534";

/// What a recipe is learned from.
#[derive(Clone, Debug)]
pub struct Learning<'a> {
    pub image: &'a str,
    /// Every run of the training together.
    pub snapshot: &'a Snapshot,
    /// What the runs wrote in their root filesystems (`None`: not known).
    pub rootfs: Option<&'a Rootfs>,
    /// The capabilities the training's container had (`CAP_` names).
    pub had: &'a BTreeSet<String>,
    /// The user it ran as (`None` or empty: the image's, which says root when it says nothing).
    pub user: Option<&'a str>,
    /// The seccomp profile the recipe goes with, as it is written.
    pub seccomp: Option<String>,
}

/// Whether a `docker run --user` value (or an image's USER) means root.
pub fn is_root(user: Option<&str>) -> bool {
    let user = user.unwrap_or("").trim();
    let name = user.split(':').next().unwrap_or("");
    name.is_empty() || name == "0" || name == "root"
}

/// The recipe `l` shows; unverified (see [`Recipe::verified`]).
pub fn learn(l: &Learning<'_>) -> Recipe {
    let checks = needs(l.snapshot);
    let mut used: BTreeMap<String, CapabilityUse> = BTreeMap::new();
    let mut wanted: BTreeMap<String, CapabilityUse> = BTreeMap::new();
    for (check, program, count) in &checks {
        let Some(name) = caps::name(check.cap) else {
            continue;
        };
        let into = match check.outcome {
            CapOutcome::Granted if l.had.contains(&format!("CAP_{name}")) => &mut used,
            CapOutcome::Denied if covered(check, &checks) => continue,
            CapOutcome::Denied => &mut wanted,
            _ => continue,
        };
        let entry = into
            .entry(name.to_string())
            .or_insert_with(|| CapabilityUse {
                name: name.to_string(),
                ..CapabilityUse::default()
            });
        entry.syscalls.push(syscall_name(check.nr));
        entry.programs.push(program.clone());
        entry.checks += count;
    }
    let low_ports: Vec<u16> = l
        .snapshot
        .capabilities
        .keys()
        .filter(|c| c.outcome == CapOutcome::LowPort)
        .map(|c| c.nr as u16)
        .collect();
    if !low_ports.is_empty() && l.had.contains("CAP_NET_BIND_SERVICE") {
        let entry = used
            .entry("NET_BIND_SERVICE".into())
            .or_insert_with(|| CapabilityUse {
                name: "NET_BIND_SERVICE".into(),
                ..CapabilityUse::default()
            });
        entry.syscalls.push("bind".into());
    }
    let tidy = |mut u: CapabilityUse| {
        u.syscalls.sort();
        u.syscalls.dedup();
        u.programs.sort();
        u.programs.dedup();
        u
    };
    let used: Vec<CapabilityUse> = used.into_values().map(tidy).collect();
    let wanted: Vec<CapabilityUse> = wanted
        .into_values()
        .filter(|w| !used.iter().any(|u| u.name == w.name))
        .map(tidy)
        .collect();
    let privileged_execs: Vec<String> = l
        .snapshot
        .privileged_execs
        .iter()
        .filter(|(_, e)| e.gained)
        .map(|(p, _)| p.clone())
        .collect();
    let (read_only, tmpfs, writes, writable_because) = match l.rootfs {
        Some(r) if r.read_only() => (true, r.tmpfs.clone(), r.writes.clone(), None),
        Some(r) => (
            false,
            Vec::new(),
            r.writes.clone(),
            Some(r.blockers.join("; ")),
        ),
        None => (
            false,
            Vec::new(),
            Vec::new(),
            Some("its writes to the root filesystem were not seen".into()),
        ),
    };
    let trained_as = l.user.unwrap_or("").to_string();
    let (user, user_because) = if !is_root(l.user) {
        (None, format!("it runs as {trained_as} already"))
    } else if !used.is_empty() {
        let names: Vec<&str> = used.iter().map(|u| u.name.as_str()).collect();
        (None, format!("it uses {} as root", names.join(", ")))
    } else {
        (
            Some(NON_ROOT.to_string()),
            "it used no capability as root".into(),
        )
    };
    let mut recipe = Recipe {
        image: l.image.to_string(),
        verified: false,
        capabilities: Capabilities {
            drop: vec!["ALL".into()],
            add: used.iter().map(|u| u.name.clone()).collect(),
        },
        read_only_rootfs: read_only,
        tmpfs,
        no_new_privileges: privileged_execs.is_empty(),
        user,
        seccomp: l.seccomp.clone(),
        docker_run_options: Vec::new(),
        evidence: Evidence {
            used,
            wanted,
            low_ports,
            writes,
            writable_because,
            privileged_execs,
            trained_as,
            user_because,
        },
    };
    recipe.docker_run_options = render::docker_run_options(&recipe);
    recipe
}

/// The checks that were needs (not probes), with the first program and how often.
fn needs(snapshot: &Snapshot) -> Vec<(CapCheck, String, u64)> {
    snapshot
        .capabilities
        .iter()
        .filter(|(c, o)| !o.probe && c.outcome != CapOutcome::LowPort)
        .map(|(c, o)| (*c, o.program.clone(), o.count))
        .collect()
}

/// `CAP_DAC_READ_SEARCH` (2) and `CAP_DAC_OVERRIDE` (1): a read the first is denied is tried
/// with the second, so a denied DAC_READ_SEARCH in a syscall where DAC_OVERRIDE was granted is
/// one need, DAC_OVERRIDE's.
fn covered(check: &CapCheck, checks: &[(CapCheck, String, u64)]) -> bool {
    check.cap == 2
        && checks
            .iter()
            .any(|(c, _, _)| c.cap == 1 && c.outcome == CapOutcome::Granted && c.nr == check.nr)
}

/// A native syscall's name (`syscall N` where it has none).
pub(super) fn syscall_name(nr: u32) -> String {
    Abi::X86_64
        .name(nr)
        .map_or_else(|| format!("syscall {nr}"), String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::{CapObserved, PrivilegedExec};

    fn check(snap: &mut Snapshot, cap: u16, outcome: CapOutcome, nr: u32, probe: bool) {
        snap.capabilities.insert(
            CapCheck { cap, outcome, nr },
            CapObserved {
                count: 1,
                program: "app".into(),
                probe,
            },
        );
    }

    fn had(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| format!("CAP_{n}")).collect()
    }

    #[test]
    fn keeps_what_was_used_of_what_it_had_and_nothing_else() {
        let mut snap = Snapshot::default();
        check(&mut snap, 0, CapOutcome::Granted, 93, false); // CHOWN in fchown
        check(&mut snap, 6, CapOutcome::Granted, 106, false); // SETGID in setgid
        check(&mut snap, 7, CapOutcome::Granted, 105, false); // SETUID in setuid
        check(&mut snap, 21, CapOutcome::Granted, 9, true); // SYS_ADMIN probed in mmap
        check(&mut snap, 12, CapOutcome::Denied, 54, false); // NET_ADMIN wanted in setsockopt
        check(&mut snap, 2, CapOutcome::Denied, 257, false); // DAC_READ_SEARCH, then…
        check(&mut snap, 1, CapOutcome::Granted, 257, false); // …DAC_OVERRIDE in openat
        let l = Learning {
            image: "app",
            snapshot: &snap,
            rootfs: None,
            had: &had(&["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID", "NET_RAW"]),
            user: None,
            seccomp: Some("app.json".into()),
        };
        let r = learn(&l);
        assert_eq!(r.capabilities.drop, ["ALL"]);
        assert_eq!(
            r.capabilities.add,
            ["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"]
        );
        let wanted: Vec<&str> = r.evidence.wanted.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(wanted, ["NET_ADMIN"]);
        assert_eq!(r.evidence.used[0].syscalls, ["fchown"]);
        assert_eq!(r.user, None, "uses capabilities as root");
        assert!(!r.read_only_rootfs);
        assert!(r.no_new_privileges);
        // Granted is not enough: the container must have had it.
        let l = Learning {
            had: &had(&["SETGID", "SETUID"]),
            ..l
        };
        assert_eq!(learn(&l).capabilities.add, ["SETGID", "SETUID"]);
    }

    #[test]
    fn a_root_workload_without_capabilities_is_offered_a_user_and_setuid_execs_keep_privileges() {
        let mut snap = Snapshot::default();
        snap.privileged_execs.insert(
            "/bin/su".into(),
            PrivilegedExec {
                gained: true,
                setid_stopped: false,
            },
        );
        check(&mut snap, 10, CapOutcome::LowPort, 80, false);
        let rootfs = Rootfs {
            writes: vec!["/tmp/x".into()],
            tmpfs: vec!["/tmp".into()],
            blockers: vec![],
        };
        let had = had(&["NET_BIND_SERVICE"]);
        let l = Learning {
            image: "app",
            snapshot: &snap,
            rootfs: Some(&rootfs),
            had: &had,
            user: Some("root"),
            seccomp: None,
        };
        let r = learn(&l);
        assert_eq!(r.capabilities.add, ["NET_BIND_SERVICE"], "bound port 80");
        assert_eq!(r.evidence.low_ports, [80]);
        assert!(!r.no_new_privileges);
        assert_eq!(r.evidence.privileged_execs, ["/bin/su"]);
        assert!(r.read_only_rootfs);
        assert_eq!(r.tmpfs, ["/tmp"]);
        assert_eq!(r.user, None, "it uses NET_BIND_SERVICE");
        let none = BTreeSet::new();
        let r = learn(&Learning { had: &none, ..l });
        assert_eq!(r.user.as_deref(), Some(NON_ROOT));
        assert!(is_root(Some("0:0")) && is_root(Some("")) && !is_root(Some("1000")));
    }
}
