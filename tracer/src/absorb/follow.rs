//! Following: the kernel log so far, then every audit record as it happens, with the
//! containers' processes followed through forks and execs, until they exit or a signal says
//! stop; on SIGUSR1 what was absorbed so far is handed over.
use std::time::Duration;

use futures_util::future::join_all;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use super::{
    error::AbsorbError,
    selection::Selection,
    sources::{Processes, read_kmsg},
    tally::Tally,
};
use crate::{
    audit::LogLine,
    docker::Engine,
    netlink::{AuditRecords, ProcEvents},
};

/// What following has to say while it goes on; the command line decides how to show it.
#[derive(Debug)]
pub enum FollowNotice<'a> {
    /// Following has begun, until these containers exit (none: until a signal).
    Following { until: &'a [String] },
    /// The containers followed have exited.
    Stopped { containers: &'a [String] },
    /// What was absorbed so far could not be made into a profile (SIGUSR1).
    CheckpointFailed(&'a AbsorbError),
}

/// A notice in words, as the terminal shows it.
impl std::fmt::Display for FollowNotice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FollowNotice::Following { until } => {
                f.write_str("following the kernel's audit records")?;
                if !until.is_empty() {
                    write!(f, " until {} exit(s)", until.join(", "))?;
                }
                f.write_str("; SIGUSR1 writes what was absorbed so far, SIGINT or SIGTERM stops")
            }
            FollowNotice::Stopped { containers } => write!(f, "{} stopped", containers.join(", ")),
            FollowNotice::CheckpointFailed(err) => write!(f, "error: {err}"),
        }
    }
}

/// How long records are still awaited after the last container stopped: the kernel hands them
/// over asynchronously.
const DRAIN: Duration = Duration::from_millis(500);

/// Follows until the containers exit (or, without containers, until SIGINT/SIGTERM).
pub(super) async fn follow(
    tally: &mut Tally,
    selection: &Selection,
    cgroups: &[String],
    engine: Option<&Engine>,
    notices: &(dyn Fn(FollowNotice<'_>) + Sync),
    checkpoint: &(dyn Fn(&Tally) + Sync),
) -> Result<(), AbsorbError> {
    // Subscribed first, so that nothing falls between the kernel log read below and it; a
    // record in both is counted once (same stamp and serial).
    // SAFETY: AuditRecords owns its socket's descriptor (an OwnedFd nothing replaces) and
    // always returns that one, for as long as the AsyncFd holds it.
    let mut audit = unsafe { AsyncFd::register(AuditRecords::open()?) }
        .map_err(|e| AbsorbError::Follow(e.into_parts().1))?;
    let mut procs = None;
    if !cgroups.is_empty() {
        let events = ProcEvents::open()?;
        // SAFETY: as for AuditRecords: ProcEvents owns its descriptor for its whole life.
        let fd = unsafe { AsyncFd::register(events) }
            .map_err(|e| AbsorbError::Follow(e.into_parts().1))?;
        procs = Some(fd);
    }
    let mut tracker = Processes::new(cgroups);
    read_kmsg(tally, selection, &mut |pid| tracker.whereabouts(pid, false))?;
    let src = tally.source("kernel audit records (as they happened)");
    let handler = |kind| signal(kind).map_err(AbsorbError::Follow);
    let mut usr1 = handler(SignalKind::user_defined1())?;
    let mut int = handler(SignalKind::interrupt())?;
    let mut term = handler(SignalKind::terminate())?;
    // A container not started yet is waited for through its next exit: it isn't running now.
    let ids: Vec<(String, bool)> = selection
        .containers
        .iter()
        .map(|c| (c.id.clone(), c.started.is_none()))
        .collect();
    let stopped = async {
        match engine {
            Some(engine) if !ids.is_empty() => {
                join_all(
                    ids.iter()
                        .map(|(id, created)| engine.wait_for_exit(id, *created)),
                )
                .await;
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(stopped);
    let names: Vec<String> = selection
        .containers
        .iter()
        .map(|c| c.name.clone())
        .collect();
    notices(FollowNotice::Following { until: &names });
    let mut number = 0u64;
    let mut drain = |tally: &mut Tally,
                     audit: &mut AsyncFd<AuditRecords>,
                     procs: &mut Option<AsyncFd<ProcEvents>>,
                     tracker: &mut Processes|
     -> Result<(), AbsorbError> {
        forks(tally, src, procs, tracker)?;
        loop {
            match audit.get_mut().recv() {
                Ok(lines) => {
                    // The kernel sends a fork's event as it forks, and an audit record later
                    // (through kauditd): every fork before these records is readable now,
                    // though it may have come after the forks read above.
                    forks(tally, src, procs, tracker)?;
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
                Err(e) => return Err(AbsorbError::Follow(e)),
            }
        }
        Ok(())
    };
    loop {
        tokio::select! {
            ready = audit.readable() => {
                ready.map_err(AbsorbError::Follow)?.clear_ready();
                drain(tally, &mut audit, &mut procs, &mut tracker)?;
            }
            ready = async {
                match &procs {
                    Some(p) => p.readable().await.map(|mut g| g.clear_ready()),
                    None => std::future::pending().await,
                }
            } => {
                ready.map_err(AbsorbError::Follow)?;
                drain(tally, &mut audit, &mut procs, &mut tracker)?;
            }
            _ = usr1.recv() => {
                drain(tally, &mut audit, &mut procs, &mut tracker)?;
                checkpoint(tally);
            }
            _ = int.recv() => break,
            _ = term.recv() => break,
            () = &mut stopped => {
                tokio::time::sleep(DRAIN).await;
                notices(FollowNotice::Stopped { containers: &names });
                break;
            }
        }
    }
    drain(tally, &mut audit, &mut procs, &mut tracker)?;
    Ok(())
}

/// Follows every fork and exec the kernel has reported so far: a record of a new process comes
/// after the fork that made it.
fn forks(
    tally: &mut Tally,
    src: usize,
    procs: &mut Option<AsyncFd<ProcEvents>>,
    tracker: &mut Processes,
) -> Result<(), AbsorbError> {
    let Some(procs) = procs else {
        return Ok(());
    };
    loop {
        match procs.get_mut().recv() {
            Ok(events) => events.into_iter().for_each(|e| tracker.event(e)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => tally.overflowed(src),
            Err(e) => return Err(AbsorbError::Follow(e)),
        }
    }
}
