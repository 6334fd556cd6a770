//! Why absorbing failed.
use std::path::PathBuf;

/// Why absorbing failed: a log or the kernel log can't be read, or the update would not stay
/// within its bound.
#[derive(Debug, thiserror::Error)]
pub enum AbsorbError {
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    NotWithin(#[from] crate::seccomp::NotWithin),
    #[error(transparent)]
    Merge(#[from] crate::seccomp::MergeConflict),
}
