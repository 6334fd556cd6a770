//! The library's error type: one enum, each variant saying what failed and how to fix it.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Privileges(#[from] crate::privileges::MissingPrivileges),
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and could not be mounted ({source}); fix it with: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    Tracefs { source: std::io::Error },
    #[error("kernel BTF {path}: {source} (a kernel with CONFIG_SECCOMP_FILTER and BTF is needed)")]
    KernelBtf {
        path: PathBuf,
        source: crate::kbtf::BtfError,
    },
    #[error("tracepoint {name}: {reason}")]
    TracepointFormat { name: String, reason: String },
    #[error("loading the eBPF recorder failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program {program}")]
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("eBPF program {program} is not in the embedded object")]
    ProgramMissing { program: &'static str },
    #[error("eBPF map {map}: {source}")]
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("cgroup name {name:?} must be at least {min} bytes, without '/'")]
    CgroupName { name: String, min: usize },
    #[error("all {0} recording slots are in use")]
    SlotsExhausted(u32),
    #[error(
        "no cgroup v2 (unified) hierarchy is mounted: looked for a cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified"
    )]
    NoUnifiedHierarchy,
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    ProfileSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}: not a regular file ({kind}); profiles are read from files, or from stdin as `-`"
    )]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path}: not a regular file ({kind}); logs are read from files, or from stdin as `-`")]
    NotALog { path: PathBuf, kind: &'static str },
    #[error("{path}: larger than {limit_mib} MiB, too large for a profile")]
    TooLarge { path: PathBuf, limit_mib: u64 },
    #[error("stdin (`-`) can be read only once")]
    StdinTwice,
    #[error("{target}: {dir} is not a directory")]
    NotADirectory { target: PathBuf, dir: PathBuf },
    #[error("{path}: can't be written: {dir} accepts no new files")]
    NoNewFiles { path: PathBuf, dir: PathBuf },
    #[error("{first} and {second} name the same file ({path}): one would replace the other")]
    SameOutput {
        path: PathBuf,
        first: &'static str,
        second: &'static str,
    },
    #[error("writing to stdout: {source}")]
    Stdout { source: std::io::Error },
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error("writing JSON: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("writing YAML: {0}")]
    SerializeYaml(#[source] serde_saphyr::SerializeError),
    #[error(
        "{what} would allow what {base} forbids: {}; nothing was written",
        widenings.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("; ")
    )]
    NotWithin {
        what: String,
        base: String,
        widenings: Vec<crate::seccomp::Widening>,
    },
    #[error("opening {what}: {source}")]
    Netlink {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Merge(#[from] crate::seccomp::MergeConflict),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
