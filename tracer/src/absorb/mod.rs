//! Absorbing complain-mode logs: which seccomp audit records belong to the workload
//! ([`selection`], from the engine's containers in [`containers`]), tallied per syscall
//! ([`tally`]) from the kernel log or log files ([`sources`]) or as they happen ([`follow`]),
//! then added to its profile within the bound ([`update`]) and reported ([`report`]).
pub mod containers;
mod error;
pub mod follow;
pub mod report;
mod run;
pub mod selection;
pub mod sources;
pub mod tally;
pub mod update;

pub use containers::Wanted;
pub use error::AbsorbError;
pub use follow::FollowNotice;
pub use report::AbsorbReport;
pub use run::{AbsorbOptions, Absorbed, absorb};
pub use selection::{Attribution, Pick, Scope, Selection, Whereabouts};
pub use tally::{CallTally, GarbledLine, SourceStats, Tally};
pub use update::{Absorption, Outcome};
