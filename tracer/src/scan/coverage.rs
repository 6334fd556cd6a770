//! What training didn't see: for each executable that ran and has a ceiling, the calls in
//! its ceiling that were never observed, the dangerous ones named.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Scan;
use crate::{names::SyscallId, recorder::Snapshot};

/// The coverage section of a training or watch report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Coverage {
    /// True when every executable that ran has a sound ceiling: then a profile that allows
    /// their ceilings can't miss a path.
    pub bounded: bool,
    pub programs: Vec<ProgramCoverage>,
}

/// One executable that ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramCoverage {
    pub path: String,
    /// Why it has no (sound) ceiling, when it hasn't.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_bound: Option<String>,
    /// Calls in its ceiling, and how many of them training observed.
    pub ceiling: usize,
    pub observed: usize,
    /// Calls in its ceiling training never observed, sorted by ABI and name.
    pub unseen: Vec<Unseen>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unseen {
    pub abi: crate::names::Abi,
    pub name: String,
    /// Why the call matters, for those on the dangerous list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dangerous: Option<&'static str>,
    /// Whether the profile allows it anyway (for some arguments at least): a path that makes
    /// it works; one that makes a call the profile denies does not.
    pub allowed: bool,
}

/// The coverage of `executed` (paths inside the image, as the recorder names them) against
/// their ceilings in `scan`, given what each of them was observed to call (`observed`, by
/// path; a path missing there observed nothing).
pub fn coverage(
    scan: &Scan,
    executed: &BTreeSet<String>,
    observed: &BTreeMap<String, BTreeSet<SyscallId>>,
) -> Coverage {
    let none = BTreeSet::new();
    let mut programs = Vec::new();
    for path in executed {
        let seen = observed.get(path).unwrap_or(&none);
        let binary = scan.binary(path);
        let ceiling = binary.and_then(|b| b.ceiling.as_ref());
        let no_bound = match (binary, ceiling) {
            (None, _) if path.starts_with("/proc/") => {
                Some("a program re-executing itself through /proc: not a file of the image".into())
            }
            (None, _) => Some("not an executable the scan found".to_string()),
            (Some(b), None) => Some(b.note.clone().unwrap_or_default()),
            (Some(_), Some(c)) if !c.sound => Some(c.not_sound.join("; ")),
            _ => None,
        };
        let unseen: Vec<Unseen> = ceiling
            .map(|c| {
                c.ids
                    .iter()
                    .filter(|id| !seen.contains(id))
                    .map(|id| {
                        let name = id.name();
                        let dangerous = crate::names::dangerous::why_dangerous(&name);
                        Unseen {
                            abi: id.abi,
                            name,
                            dangerous,
                            allowed: false,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        programs.push(ProgramCoverage {
            path: path.clone(),
            no_bound,
            ceiling: ceiling.map_or(0, |c| c.len()),
            observed: ceiling.map_or(0, |c| seen.iter().filter(|id| c.contains(**id)).count()),
            unseen,
        });
    }
    Coverage {
        bounded: !programs.is_empty() && programs.iter().all(|p| p.no_bound.is_none()),
        programs,
    }
}

/// The union of the ceilings of `executed`, to allow beside what training learned (cut to the
/// base by the caller, as every learned call is); `None` unless every one of them has a sound
/// ceiling, since a widened profile that can still miss a path would promise what it can't.
pub fn ceiling_of(scan: &Scan, executed: &BTreeSet<String>) -> Option<BTreeSet<SyscallId>> {
    let mut all = BTreeSet::new();
    for path in executed {
        let c = scan.binary(path)?.ceiling.as_ref()?;
        if !c.sound {
            return None;
        }
        all.extend(c.ids.iter().copied());
    }
    Some(all)
}

/// The union of the sound ceilings of `executed`, whether or not all of them have one: what
/// `train --ceiling` allows beside what training learned.
pub fn sound_ceilings(scan: &Scan, executed: &BTreeSet<String>) -> BTreeSet<SyscallId> {
    executed
        .iter()
        .filter_map(|path| scan.binary(path)?.ceiling.as_ref())
        .filter(|c| c.sound)
        .flat_map(|c| c.ids.iter().copied())
        .collect()
}

/// What the ceilings of an image's programs say of one recording.
#[derive(Clone, Debug)]
pub struct Ceilings {
    /// The coverage section of its report.
    pub coverage: Coverage,
    /// The union of the sound ceilings of the programs that ran: what `--ceiling` allows
    /// beside what was learned (the bound cuts it as every learned call).
    pub sound: BTreeSet<SyscallId>,
}

impl Ceilings {
    /// The ceilings of the programs `snap` saw exec'd, read in `scan`; `None` when none was.
    /// The recorder counts per container, not per program: each program is held against all
    /// that the recording observed.
    pub fn of(scan: &Scan, snap: &Snapshot) -> Option<Ceilings> {
        let executed: BTreeSet<String> = snap.programs.keys().cloned().collect();
        if executed.is_empty() {
            return None;
        }
        let seen: BTreeSet<SyscallId> = snap.syscalls.keys().copied().collect();
        let observed = executed.iter().map(|p| (p.clone(), seen.clone())).collect();
        Some(Ceilings {
            coverage: coverage(scan, &executed, &observed),
            sound: sound_ceilings(scan, &executed),
        })
    }
}

/// Why the ceilings of `image`'s programs are not known, as a report's warning says it.
pub fn unknown(image: &str, why: impl std::fmt::Display) -> String {
    format!("the ceilings of {image}'s programs are unknown: {why}")
}

/// Why the ceilings of `image`'s programs were not read, as a report's warning says it.
pub fn not_read(image: &str, why: impl std::fmt::Display) -> String {
    format!("the ceilings of {image}'s programs were not read: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        names::Abi,
        scan::{Binary, Ceiling, Kind, Sites},
    };

    fn id(nr: u32) -> SyscallId {
        SyscallId {
            abi: Abi::X86_64,
            nr,
        }
    }

    fn binary(path: &str, ids: &[u32], sound: bool) -> Binary {
        let ids: BTreeSet<SyscallId> = ids.iter().map(|n| id(*n)).collect();
        Binary {
            path: path.into(),
            aliases: vec![format!("{path}-link")],
            size: 1,
            kind: Kind::Static,
            is_static: true,
            interpreter: None,
            go: None,
            note: None,
            ceiling: Some(Ceiling {
                sound,
                not_sound: if sound { vec![] } else { vec!["1 site".into()] },
                syscalls: crate::scan::by_abi(&ids),
                implied: BTreeMap::new(),
                sites: Sites::default(),
                unresolved: vec![],
                wrappers: vec![],
                ids,
            }),
        }
    }

    #[test]
    fn unseen_calls_per_program_with_the_dangerous_named() {
        // read 0, write 1, ptrace 101, inotify_add_watch 254
        let scan = Scan::new(
            "img".into(),
            vec![
                binary("/bin/a", &[0, 1, 101, 254], true),
                binary("/bin/b", &[0], false),
            ],
        );
        let executed: BTreeSet<String> = ["/bin/a-link".to_string()].into();
        let observed =
            BTreeMap::from([("/bin/a-link".to_string(), BTreeSet::from([id(0), id(1)]))]);
        let c = coverage(&scan, &executed, &observed);
        assert!(c.bounded);
        let a = &c.programs[0];
        assert_eq!((a.ceiling, a.observed), (4, 2));
        let unseen: Vec<(&str, bool)> = a
            .unseen
            .iter()
            .map(|u| (u.name.as_str(), u.dangerous.is_some()))
            .collect();
        assert_eq!(unseen, [("ptrace", true), ("inotify_add_watch", false)]);
        assert_eq!(ceiling_of(&scan, &executed).map(|s| s.len()), Some(4));
        let both: BTreeSet<String> = ["/bin/a".to_string(), "/bin/b".to_string()].into();
        let c = coverage(&scan, &both, &BTreeMap::new());
        assert!(!c.bounded, "b's ceiling is not sound");
        assert_eq!(c.programs[1].no_bound.as_deref(), Some("1 site"));
        assert_eq!(ceiling_of(&scan, &both), None);
        assert_eq!(sound_ceilings(&scan, &both).len(), 4, "a's, without b's");
        let unknown: BTreeSet<String> = ["/bin/sh".to_string()].into();
        assert!(!coverage(&scan, &unknown, &BTreeMap::new()).bounded);
    }

    #[test]
    fn programs_are_found_through_symbolic_links() {
        let mut scan = Scan::new("img".into(), vec![binary("/usr/bin/a", &[0], true)]);
        scan.links = [
            ("/bin".to_string(), "usr/bin".to_string()),
            ("/usr/bin/sh".to_string(), "a".to_string()),
            ("/usr/bin/up".to_string(), "../bin/./sh".to_string()),
            ("/loop".to_string(), "/loop".to_string()),
        ]
        .into();
        assert_eq!(scan.resolve("/bin/sh"), "/usr/bin/a");
        assert_eq!(scan.resolve("/usr/bin/up"), "/usr/bin/a");
        for path in ["/bin/sh", "/bin/a", "/usr/bin/up"] {
            assert!(scan.binary(path).is_some(), "{path}");
        }
        assert!(scan.binary("/loop").is_none());
    }
}
