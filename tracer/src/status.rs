//! How a command's work ended, as its exit status says it: the library decides, the command
//! line maps it to a number.

/// How a use case ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything went as asked.
    Success,
    /// The workload exited nonzero by itself, its exercise failed or was cut off, or the
    /// container was never ready for the exercise.
    WorkloadFailed,
    /// The profile denied something, or its filter killed the workload.
    Denied,
    /// Not everything could be done: the Docker daemon went away mid-run, or a verification
    /// could not check everything.
    Incomplete,
    /// A signal ended it.
    Interrupted(i32),
    /// A command run on the host ended with this status (the shell's: 128+N for signal N).
    Exited(i32),
}
