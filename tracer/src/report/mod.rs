//! What `profile` tells people and machines: the profile report (what was observed, what the
//! profile allows against Docker's default, on each platform it is meant for), the
//! verification report, watch's index and the diff of two profiles, each rendered as text,
//! Markdown and JSON (a scan renders through the same [`Render`]).
mod arches;
mod dangerous;
mod diff;
mod hardening;
mod index;
mod observed;
mod profile;
mod render;
mod scan;
mod sections;
mod verification;

pub use crate::names::dangerous::DANGEROUS;
pub use arches::{ArchLine, ArchSection};
pub use dangerous::{ArgumentLine, Blocked};
pub use diff::DiffReport;
pub use index::{Index, IndexRow};
pub use observed::SyscallLine;
pub use profile::{CeilingLine, PhaseLine, ProgramsRun, Report, RunLine};
pub use render::{Render, ReportError, fewer_or_more, tenths, write};
pub use sections::Detail;
pub use verification::{DeniedArguments, Verification, VerificationStatus};
