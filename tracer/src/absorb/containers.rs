//! Which records are the workload's, from what the engine says of the containers named: their
//! processes and programs while they run, their last run's times once they have stopped.
use std::{collections::BTreeSet, time::SystemTime};

use super::{
    error::AbsorbError,
    selection::{Scope, Selection},
    sources,
};
use crate::{audit::Stamp, cgroup, docker::Engine};

/// The records asked for.
#[derive(Clone, Debug, Default)]
pub struct Wanted {
    /// Only records from then on.
    pub since: Option<SystemTime>,
    /// Containers by name or id.
    pub containers: Vec<String>,
    /// Programs (`exe`, the path inside the container).
    pub exes: Vec<String>,
    /// Command names (`comm`).
    pub comms: Vec<String>,
}

/// A selection made: what picks the records, the containers' cgroups (relative to the unified
/// hierarchy, as /proc/PID/cgroup names them) and the selection in words for the report.
pub struct Selected {
    pub selection: Selection,
    pub cgroups: Vec<String>,
    pub words: Vec<String>,
}

/// The selection `wanted` describes; `engine` is asked about the containers it names. While
/// following (`follow`), a container created but not started yet is followed from its start:
/// its first records go nowhere else.
pub async fn select(
    wanted: &Wanted,
    engine: Option<&Engine>,
    follow: bool,
) -> Result<Selected, AbsorbError> {
    let mut words = Vec::new();
    let mut selection = Selection {
        since: wanted.since.and_then(Stamp::from_system_time),
        exes: wanted.exes.iter().cloned().collect(),
        comms: wanted.comms.iter().cloned().collect(),
        containers: Vec::new(),
    };
    let mut cgroups = Vec::new();
    for name in &wanted.containers {
        let Some(engine) = engine else { break };
        let info = engine.container(name).await?;
        let stamp = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(Stamp::from_system_time)
        };
        let short = &info.id[..info.id.len().min(12)];
        let mut scope = Scope {
            name: info.name.clone(),
            id: info.id.clone(),
            programs: None,
            created: stamp(&info.created),
            started: stamp(&info.started_at),
            finished: if info.running {
                None
            } else {
                stamp(&info.finished_at)
            },
        };
        match info.pid {
            Some(pid) => {
                let dir = cgroup::of_pid(pid).map_err(|source| AbsorbError::ContainerCgroup {
                    container: info.name.clone(),
                    source,
                })?;
                let rel = sources::relative_cgroup(&dir)?;
                let pids = sources::cgroup_pids(&dir);
                let programs: BTreeSet<String> =
                    pids.iter().filter_map(|p| sources::exe_of(*p)).collect();
                words.push(format!(
                    "container {} ({short}), running: {} process(es) in {}; programs {}",
                    info.name,
                    pids.len(),
                    rel,
                    programs.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                scope.programs = Some(programs);
                cgroups.push(rel);
            }
            None if follow && info.started_at.is_none() => {
                words.push(format!(
                    "container {} ({short}), created: followed from its start",
                    info.name
                ));
                // Its processes are found by its cgroup's name once it starts; none of its
                // programs ran before, so nothing is attributed by program.
                scope.programs = Some(BTreeSet::new());
                cgroups.push(sources::cgroup_of_id(&info.id));
            }
            None => {
                if wanted.exes.is_empty() && wanted.comms.is_empty() {
                    return Err(AbsorbError::NotRunning(info.name));
                }
                words.push(format!(
                    "container {} ({short}), not running: records of its last run ({} – {}) by --exe/--comm",
                    info.name,
                    info.started_at.as_deref().unwrap_or("?"),
                    info.finished_at.as_deref().unwrap_or("?")
                ));
                // No cgroup to find its processes in: an entry no process matches.
                cgroups.push(String::new());
            }
        }
        selection.containers.push(scope);
    }
    for exe in &wanted.exes {
        words.push(format!("exe {exe}"));
    }
    for comm in &wanted.comms {
        words.push(format!("comm {comm}"));
    }
    if let Some(since) = selection.since {
        words.push(format!("since {}", since.rfc3339()));
    }
    if wanted.containers.is_empty() && wanted.exes.is_empty() && wanted.comms.is_empty() {
        words.push("every process (no --container, --exe or --comm)".into());
    }
    Ok(Selected {
        selection,
        cgroups,
        words,
    })
}
