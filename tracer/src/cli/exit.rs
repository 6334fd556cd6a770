//! Exit statuses: how a use case's ending becomes the number the shell sees.
use std::process::ExitCode;

use crate::status::Status;

/// Exit status for errors of the tool itself (not of the workload).
pub const EXIT_ERROR: u8 = 2;

/// The exit status of `status`: 0 success; 1 the workload failed or the profile denied
/// something; 2 not everything could be done; 128+N signal N; a host command's own status.
pub fn exit_code(status: Status) -> ExitCode {
    ExitCode::from(match status {
        Status::Success => 0,
        Status::WorkloadFailed | Status::Denied => 1,
        Status::Incomplete => EXIT_ERROR,
        Status::Interrupted(sig) => (128 + sig).clamp(0, 255) as u8,
        Status::Exited(code) => code.clamp(0, 255) as u8,
    })
}
