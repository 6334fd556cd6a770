//! Which seccomp audit records are the workload's: by where their process is (in a container's
//! cgroup, alive elsewhere, gone), by program, and by time.
use std::collections::BTreeSet;

use serde::Serialize;

use crate::audit::{Record, Stamp};

/// Records this long before a container's recorded start still count as its own: the runtime's
/// init runs under the filter a moment before the engine notes the start.
const START_SLACK_MS: u64 = 2_000;

/// A container whose records are picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub name: String,
    pub id: String,
    /// The programs (`exe`, as a path in the container) of its processes, for records whose
    /// process has exited; `None`: any program (narrowed by `--exe`/`--comm`).
    pub programs: Option<BTreeSet<String>>,
    /// Its (last) run: records outside it are not its own. Nothing of it runs before it is
    /// created.
    pub created: Option<Stamp>,
    pub started: Option<Stamp>,
    pub finished: Option<Stamp>,
}

impl Scope {
    fn ran_at(&self, stamp: Option<Stamp>) -> bool {
        let Some(s) = stamp else { return true };
        self.created.is_none_or(|created| s >= created)
            && self
                .started
                .is_none_or(|start| s.0.saturating_add(START_SLACK_MS) >= start.0)
            && self.finished.is_none_or(|end| s <= end)
    }
}

/// Where a record's process is now, as far as can be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// In the container `containers[i]`.
    In(usize),
    /// Alive, in another cgroup.
    Elsewhere,
    /// Exited (or never seen).
    Gone,
}

/// How a record was found to be the workload's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// Its process was one of the container's.
    Process,
    /// Its process had exited; its program is one the container runs.
    Program,
    /// No container named: `--exe`/`--comm`/`--since` alone pick it.
    Filter,
}

/// Which records are the workload's: all of the kinds given must match.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub since: Option<Stamp>,
    pub containers: Vec<Scope>,
    pub exes: BTreeSet<String>,
    pub comms: BTreeSet<String>,
}

/// What becomes of one record: picked as the workload's (and how), or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Take(Attribution),
    /// Stamped before `--since` (or not stamped while `--since` is given).
    Early,
    NotTheWorkload,
}

impl Selection {
    /// Whether `record` is the workload's; `whereabouts` says where a pid is now.
    pub fn judge(&self, record: &Record, whereabouts: &mut dyn FnMut(u32) -> Whereabouts) -> Pick {
        if let Some(since) = self.since
            && record.stamp.is_none_or(|s| s < since)
        {
            return Pick::Early;
        }
        let matches = |set: &BTreeSet<String>, value: &Option<String>| {
            set.is_empty() || value.as_ref().is_some_and(|v| set.contains(v))
        };
        if !matches(&self.exes, &record.exe) || !matches(&self.comms, &record.comm) {
            return Pick::NotTheWorkload;
        }
        if self.containers.is_empty() {
            return Pick::Take(Attribution::Filter);
        }
        match record.pid.map(&mut *whereabouts) {
            Some(Whereabouts::In(i)) => {
                if self
                    .containers
                    .get(i)
                    .is_some_and(|c| c.ran_at(record.stamp))
                {
                    Pick::Take(Attribution::Process)
                } else {
                    Pick::NotTheWorkload
                }
            }
            Some(Whereabouts::Elsewhere) => Pick::NotTheWorkload,
            Some(Whereabouts::Gone) | None => {
                let runs_it = |c: &Scope| {
                    c.ran_at(record.stamp)
                        && c.programs
                            .as_ref()
                            .is_none_or(|p| record.exe.as_ref().is_some_and(|exe| p.contains(exe)))
                };
                if self.containers.iter().any(runs_it) {
                    Pick::Take(Attribution::Program)
                } else {
                    Pick::NotTheWorkload
                }
            }
        }
    }
}
