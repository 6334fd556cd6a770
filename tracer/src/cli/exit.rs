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

/// The exit status of `status`, after one line on stderr saying why it is not 0: `why`, or
/// what `status` says by itself.
pub fn ending(status: Status, why: Option<&str>) -> ExitCode {
    if let Some(line) = why_line(status, why) {
        eprintln!("profile: {line}");
    }
    exit_code(status)
}

fn why_line(status: Status, why: Option<&str>) -> Option<String> {
    let number = match status {
        Status::Success | Status::Exited(0) => return None,
        Status::WorkloadFailed | Status::Denied => 1,
        Status::Incomplete => EXIT_ERROR.into(),
        Status::Interrupted(sig) => 128 + sig,
        Status::Exited(code) => code,
    };
    let why = match (why, status) {
        (Some(why), _) => why.to_string(),
        (None, Status::Exited(code)) => format!("the command exited {code}"),
        (None, Status::Interrupted(sig)) => format!("interrupted by signal {sig}"),
        (None, Status::Denied) => "the profile denied a call".into(),
        (None, Status::Incomplete) => "not everything could be done".into(),
        (None, _) => "the workload failed".into(),
    };
    Some(format!("exit status {number}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_that_is_not_0_says_why() {
        assert_eq!(why_line(Status::Success, Some("x")), None);
        assert_eq!(why_line(Status::Exited(0), None), None);
        assert_eq!(
            why_line(Status::WorkloadFailed, Some("the workload exited 3")).as_deref(),
            Some("exit status 1: the workload exited 3")
        );
        assert_eq!(
            why_line(Status::Exited(3), None).as_deref(),
            Some("exit status 3: the command exited 3")
        );
        assert_eq!(
            why_line(Status::Interrupted(2), None).as_deref(),
            Some("exit status 130: interrupted by signal 2")
        );
    }
}
