//! Absorbing complain-mode logs: which seccomp audit records belong to the workload
//! ([`selection`]), tallied per syscall ([`tally`]) from the kernel log, log files or the audit
//! netlink group ([`sources`]), then added to its profile within the bound ([`update`]) and
//! reported ([`report`]).
mod error;
pub mod report;
pub mod selection;
pub mod sources;
pub mod tally;
pub mod update;

pub use error::AbsorbError;
pub use report::AbsorbReport;
pub use selection::{Attribution, Pick, Scope, Selection, Whereabouts};
pub use tally::{CallTally, GarbledLine, SourceStats, Tally};
pub use update::{Absorption, Outcome, absorb};
