//! `profile absorb --follow`: the kernel log so far, then every audit record as it happens,
//! with the containers' processes followed through forks and execs, until they exit or a
//! signal says stop; SIGUSR1 writes what was absorbed so far.
use std::{collections::HashMap, time::Duration};

use futures_util::future::join_all;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use super::absorb::{cgroup_of, cgroup_pids, read_kmsg, within};
use crate::{
    absorb::{Selection, Tally, Whereabouts},
    audit::LogLine,
    cgroup,
    docker::Engine,
    netlink::{AuditRecords, ProcEvent, ProcEvents},
};

/// How long records are still awaited after the last container stopped: the kernel hands them
/// over asynchronously.
const DRAIN: Duration = Duration::from_millis(500);

/// Which processes are the containers', kept up to date from process events: a record's
/// process has often exited before the record is read.
struct Tracker {
    cgroups: Vec<String>,
    members: HashMap<u32, usize>,
}

impl Tracker {
    fn new(cgroups: &[String]) -> Self {
        let mut members = HashMap::new();
        let root = cgroup::unified_root().ok();
        for (i, rel) in cgroups.iter().enumerate() {
            if let (false, Some(root)) = (rel.is_empty(), &root) {
                for pid in cgroup_pids(&root.join(rel.trim_start_matches('/'))) {
                    members.insert(pid, i);
                }
            }
        }
        Tracker {
            cgroups: cgroups.to_vec(),
            members,
        }
    }

    fn container_of(&self, pid: u32) -> Option<Result<usize, ()>> {
        let rel = cgroup_of(pid)?;
        Some(self.cgroups.iter().position(|c| within(&rel, c)).ok_or(()))
    }

    fn event(&mut self, event: ProcEvent) {
        match event {
            ProcEvent::Fork { parent, child } => match self.members.get(&parent) {
                Some(&i) => {
                    self.members.insert(child, i);
                }
                // A pid reused outside the containers is not theirs any more.
                None => {
                    self.members.remove(&child);
                }
            },
            // `docker exec` processes join the cgroup, then execute the command.
            ProcEvent::Exec { pid } => {
                if !self.members.contains_key(&pid)
                    && let Some(Ok(i)) = self.container_of(pid)
                {
                    self.members.insert(pid, i);
                }
            }
        }
    }

    /// Where `pid` is. For a record made while following (`live`), a process neither followed
    /// nor alive in a container was never one of theirs: every fork in them was seen.
    fn whereabouts(&mut self, pid: u32, live: bool) -> Whereabouts {
        if let Some(&i) = self.members.get(&pid) {
            return Whereabouts::In(i);
        }
        match self.container_of(pid) {
            Some(Ok(i)) => {
                self.members.insert(pid, i);
                Whereabouts::In(i)
            }
            Some(Err(())) => Whereabouts::Elsewhere,
            None if live => Whereabouts::Elsewhere,
            None => Whereabouts::Gone,
        }
    }
}

/// Follows until the containers exit (or, without containers, until SIGINT/SIGTERM).
pub(super) async fn follow(
    tally: &mut Tally,
    selection: &Selection,
    cgroups: &[String],
    engine: Option<&Engine>,
    finish: &dyn Fn(&Tally) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    // Subscribed first, so that nothing falls between the kernel log read below and it; a
    // record in both is counted once (same stamp and serial).
    // SAFETY: AuditRecords owns its socket's descriptor (an OwnedFd nothing replaces) and
    // always returns that one, for as long as the AsyncFd holds it.
    let mut audit =
        unsafe { AsyncFd::register(AuditRecords::open()?) }.map_err(|e| e.into_parts().1)?;
    let mut procs = None;
    if !cgroups.is_empty() {
        let events = ProcEvents::open()?;
        // SAFETY: as for AuditRecords: ProcEvents owns its descriptor for its whole life.
        let fd = unsafe { AsyncFd::register(events) }.map_err(|e| e.into_parts().1)?;
        procs = Some(fd);
    }
    let mut tracker = Tracker::new(cgroups);
    read_kmsg(tally, selection, &mut |pid| tracker.whereabouts(pid, false))?;
    let src = tally.source("kernel audit records (as they happened)");
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let ids: Vec<String> = selection.containers.iter().map(|c| c.id.clone()).collect();
    let stopped = async {
        match engine {
            Some(engine) if !ids.is_empty() => {
                join_all(ids.iter().map(|id| engine.wait(id))).await;
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(stopped);
    eprintln!(
        "profile: following the kernel's audit records{}; SIGUSR1 writes what was absorbed so far, SIGINT or SIGTERM stops",
        if ids.is_empty() {
            String::new()
        } else {
            format!(" until {} exit(s)", names(selection))
        }
    );
    let mut number = 0u64;
    let mut drain = |tally: &mut Tally,
                     audit: &mut AsyncFd<AuditRecords>,
                     procs: &mut Option<AsyncFd<ProcEvents>>,
                     tracker: &mut Tracker|
     -> anyhow::Result<()> {
        // Forks first: a record of a new process comes after the fork that made it.
        if let Some(procs) = procs {
            loop {
                match procs.get_mut().recv() {
                    Ok(events) => events.into_iter().for_each(|e| tracker.event(e)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        tally.overflowed(src);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        loop {
            match audit.get_mut().recv() {
                Ok(lines) => {
                    for text in lines {
                        number += 1;
                        let line = LogLine { text, cut: false };
                        tally.line(src, number, &line, selection, &mut |pid| {
                            tracker.whereabouts(pid, true)
                        });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => tally.overflowed(src),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    };
    loop {
        tokio::select! {
            ready = audit.readable() => {
                ready?.clear_ready();
                drain(tally, &mut audit, &mut procs, &mut tracker)?;
            }
            ready = async {
                match &procs {
                    Some(p) => p.readable().await.map(|mut g| g.clear_ready()),
                    None => std::future::pending().await,
                }
            } => {
                ready?;
                drain(tally, &mut audit, &mut procs, &mut tracker)?;
            }
            _ = usr1.recv() => {
                drain(tally, &mut audit, &mut procs, &mut tracker)?;
                if let Err(err) = finish(tally) {
                    eprintln!("profile: error: {err:#}");
                }
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
            () = &mut stopped => {
                tokio::time::sleep(DRAIN).await;
                eprintln!("profile: {} stopped", names(selection));
                break;
            }
        }
    }
    drain(tally, &mut audit, &mut procs, &mut tracker)?;
    Ok(())
}

fn names(selection: &Selection) -> String {
    selection
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_of_members_are_members() {
        let mut t = Tracker {
            cgroups: vec!["/docker/none-such".into()],
            members: HashMap::from([(10, 0)]),
        };
        t.event(ProcEvent::Fork {
            parent: 10,
            child: 11,
        });
        assert_eq!(t.whereabouts(11, true), Whereabouts::In(0));
        t.event(ProcEvent::Fork {
            parent: 1,
            child: 11,
        });
        // Reused by an outsider; gone from /proc too (no such pid).
        assert_eq!(t.members.get(&11), None);
        assert_eq!(t.whereabouts(u32::MAX - 1, false), Whereabouts::Gone);
        assert_eq!(t.whereabouts(u32::MAX - 1, true), Whereabouts::Elsewhere);
        assert_eq!(t.whereabouts(1, false), Whereabouts::Elsewhere);
    }
}
