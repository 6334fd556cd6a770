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
    Merge(#[from] crate::seccomp::merge::MergeError),
    #[error(
        "reading the kernel log (run as root, or pass a log: `dmesg | profile absorb PROFILE --log -`): {path}: {source}"
    )]
    KernelLog {
        path: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error(transparent)]
    Netlink(#[from] crate::netlink::NetlinkError),
    #[error("the cgroup of container {container}: {source}")]
    ContainerCgroup {
        container: String,
        source: crate::cgroup::CgroupError,
    },
    #[error(
        "container {0} is not running: its processes can't be told from others' any more; name its programs with --exe PATH or --comm NAME (records are still limited to its last run)"
    )]
    NotRunning(String),
    #[error("following the kernel's records: {0}")]
    Follow(#[source] std::io::Error),
}
