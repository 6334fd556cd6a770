//! Denial floods while verifying: a call denied over and over, as a workload looping on it
//! makes it, is named while the run goes on.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use super::run::Notice;
use crate::{names::SyscallId, recorder::Snapshot};

/// How often denials are looked at for a flood, and how many of one call within that time make
/// one: far beyond what a workload that copes with a denial does (a retry or two), well within
/// what one looping on it does (busybox sh's `dup2`: over 100,000 a second).
pub const WINDOW: Duration = Duration::from_secs(2);
const CALLS: u64 = 10_000;

/// The denial counts seen at the last look, and the calls already said to flood.
#[derive(Default)]
pub struct Floods {
    last: BTreeMap<SyscallId, u64>,
    said: BTreeSet<SyscallId>,
}

impl Floods {
    /// A notice for each call denied [`CALLS`] times or more since the last look, once.
    pub fn check(&mut self, snap: &Snapshot) -> Vec<Notice<'static>> {
        let mut out = Vec::new();
        for (id, denied) in &snap.denied {
            let before = self.last.insert(*id, denied.count).unwrap_or(0);
            if denied.count.saturating_sub(before) >= CALLS && self.said.insert(*id) {
                out.push(Notice::DenialFlood {
                    syscall: id.name(),
                    program: denied
                        .first
                        .as_ref()
                        .map_or_else(|| "?".into(), |f| f.comm.clone()),
                    count: denied.count,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        names::Abi,
        recorder::{FirstProgram, Observed},
    };

    #[test]
    fn a_flood_is_said_once_when_a_call_is_denied_fast() {
        let getsid = SyscallId {
            abi: Abi::X86_64,
            nr: 124,
        };
        let denied = |count| {
            let mut snap = Snapshot::default();
            snap.denied.insert(
                getsid,
                Observed {
                    count,
                    first: Some(FirstProgram {
                        comm: "sh".into(),
                        pid: 1,
                    }),
                },
            );
            snap
        };
        let mut floods = Floods::default();
        assert!(floods.check(&denied(3)).is_empty(), "a retry is no flood");
        let said = floods.check(&denied(3 + CALLS));
        assert_eq!(said.len(), 1);
        assert_eq!(
            said[0].to_string(),
            "getsid is being denied over and over (10003 times so far, first to sh): the workload may be looping on it"
        );
        assert!(floods.check(&denied(3 + 3 * CALLS)).is_empty(), "said once");
    }
}
