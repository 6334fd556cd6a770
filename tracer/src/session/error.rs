//! Why a recorded run could not go on.
use crate::{cgroup::CgroupError, docker::DockerError, recorder::RecorderError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),

    /// A signal came before anything was recorded.
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
    #[error("installing the {0} handler: {1}")]
    Signals(&'static str, #[source] std::io::Error),
    #[error("starting the exercise command with sh -c: {0}")]
    Exercise(#[source] std::io::Error),
}
