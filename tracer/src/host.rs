//! Host commands, without a container runtime: `run` records one in a fresh cgroup the way a
//! container would be recorded (under an allow-all filter installed just before exec), `exec`
//! runs one under a profile, enforced.
use std::{os::unix::process::ExitStatusExt as _, path::PathBuf};

use crate::{
    cgroup::{CgroupError, OwnedCgroup},
    filter::{self, CompileError},
    formats::Rendering,
    launch::{self, LaunchError},
    names::Abi,
    privileges::{self, MissingPrivileges},
    recorder::{Mode, Recorder, RecorderError},
    report::{Report, tenths},
    seccomp::{Base, Context, LearnArgs, Learned, NotWithin, Profile},
    status::Status,
};

/// execve on x86_64: a profile that denies it lets no command start.
const EXECVE: u32 = syscalls::x86_64::Sysno::execve as u32;

/// What `run` records.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Count every syscall, not only those under the filter.
    pub all_syscalls: bool,
    pub learn_args: LearnArgs,
    /// Let the profile allow what Docker's default forbids.
    pub allow_beyond_default: bool,
    /// How the profile will be written: the platforms it must also hold on are derived, and
    /// the report says how it is written.
    pub rendering: Rendering,
    /// Where the profile will be written (`None`: stdout), for the report's words. When it
    /// goes to stdout, the command's standard output goes to stderr instead.
    pub output: Option<PathBuf>,
}

/// What `exec` runs.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    pub profile: Profile,
    /// How messages name the profile.
    pub label: String,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Why a host command could not be run or recorded.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The command did not start (`exit_code` says how the shell reports that). Not
    /// transparent: the command line looks for it in the chain.
    #[error("{0}")]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Privileges(#[from] MissingPrivileges),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    #[error(transparent)]
    NotWithin(#[from] NotWithin),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("{label} denies execve on x86_64{note}: no command can start under it")]
    DeniesExecve { label: String, note: String },
    #[error("waiting for the command: {0}")]
    Wait(#[source] std::io::Error),
}

/// A recorded host command: the profile learned from it, its report, and how it ended.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub learned: Learned,
    pub report: Report,
    /// The command's exit status.
    pub status: Status,
}

/// A host command that ran under a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The command's exit status.
    pub status: Status,
    /// The fault signal that ended it (`SIGSEGV`, `SIGSYS`, …), if one did: it may have
    /// needed a call the profile denies.
    pub fault: Option<&'static str>,
}

/// Runs `options.command` in a fresh cgroup v2 child under an allow-all filter, records it, and
/// learns its profile within Docker's default (unless `allow_beyond_default`).
pub async fn run(options: &RecordOptions) -> Result<Recorded, HostError> {
    // Everything missing is named at once, before anything is loaded or created.
    if let Some(creds) = privileges::Creds::current() {
        let mut missing = Recorder::missing_privileges(&creds);
        missing.extend(OwnedCgroup::missing_privileges(&creds)?);
        privileges::require(Some(creds), missing)?;
    }
    let recorder = Recorder::load()?;
    let cgroup = OwnedCgroup::for_run()?;
    let mode = match options.all_syscalls {
        true => Mode::AllSyscalls,
        false => Mode::UnderFilter,
    };
    let strict = options.learn_args == LearnArgs::Strict;
    let recording = recorder.watch_cgroup(cgroup.id(), mode, strict)?;
    let started = std::time::Instant::now();
    let procs = cgroup.procs_path();
    let to_stdout = crate::output::file(options.output.as_deref()).is_none();
    let child = launch::spawn(
        &options.command,
        Some(&procs),
        Some(launch::allow_all()),
        to_stdout,
    )?;
    let status = launch::wait_forwarding_signals(child)
        .await
        .map_err(HostError::Wait)?;
    let snap = recorder.finish(recording)?;
    drop(cgroup);
    let code = launch::exit_code(status);
    let bound = Base::AllowAll.bound(options.allow_beyond_default);
    let ctx = Context::docker_default();
    // No container runtime hands over here: no tail to allow.
    let mut learned = bound.learn(&snap.observation(), &ctx, options.learn_args)?;
    let derived = bound.derive(&mut learned.profile, &options.rendering.arches, &ctx)?;
    let mut report = Report::new(
        &options.command.join(" "),
        options.all_syscalls,
        &snap,
        &learned,
        &bound.label,
    );
    let written = options.rendering.written_as(options.output.as_deref());
    report.for_arches(&learned.profile, &derived, written);
    report.exit_code = Some(code);
    report.duration_seconds = tenths(started.elapsed().as_secs_f64());
    Ok(Recorded {
        learned,
        report,
        status: Status::Exited(code),
    })
}

/// Runs `options.command` with `options.profile` enforced (x86_64, argument conditions
/// included, evaluated as runc would).
pub async fn exec(options: &ExecOptions) -> Result<Executed, HostError> {
    let program = filter::compile(&options.profile)?;
    if allows(&program, EXECVE) == Some(false) {
        return Err(HostError::DeniesExecve {
            label: options.label.clone(),
            note: arch_note(&options.profile),
        });
    }
    let child = launch::spawn(&options.command, None, Some(program), false)?;
    let status = launch::wait_forwarding_signals(child)
        .await
        .map_err(HostError::Wait)?;
    Ok(Executed {
        status: Status::Exited(launch::exit_code(status)),
        fault: fault(status),
    })
}

/// Whether `prog` lets x86_64 syscall `nr` (all arguments zero) through: allows or logs it;
/// `None` when `prog` has instructions [`filter::evaluate`] doesn't read.
fn allows(prog: &[libc::sock_filter], nr: u32) -> Option<bool> {
    let action = filter::evaluate(prog, filter::AUDIT_ARCH_X86_64, nr, [0; 6])?
        & libc::SECCOMP_RET_ACTION_FULL;
    Some(matches!(
        action,
        libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG
    ))
}

/// " (it names only …)" when the profile's architectures leave out x86_64.
fn arch_note(profile: &Profile) -> String {
    let x86_64 = Abi::X86_64.seccomp_arch();
    if profile.architectures.is_empty() || profile.architectures.iter().any(|a| a == x86_64) {
        return String::new();
    }
    format!(" (it names only {})", profile.architectures.join(", "))
}

/// The name of the fault signal that ended a process, if one did.
fn fault(status: std::process::ExitStatus) -> Option<&'static str> {
    Some(match status.signal()? {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(json: &str) -> Vec<libc::sock_filter> {
        let profile = Profile::parse(json, std::path::Path::new("p")).expect("parses");
        filter::compile(&profile).expect("compiles")
    }

    #[test]
    fn the_compiled_filter_is_read_as_the_kernel_runs_it() {
        let prog = compiled(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["execve","read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert_eq!(allows(&prog, EXECVE), Some(true));
        assert_eq!(allows(&prog, 0), Some(true));
        assert_eq!(allows(&prog, 1), Some(false), "write");
        assert_eq!(
            filter::evaluate(&prog, filter::AUDIT_ARCH_X86_64, 1, [0; 6]),
            Some(libc::SECCOMP_RET_ERRNO | 1)
        );
        // i386 calls get the default action.
        assert_eq!(
            filter::evaluate(&prog, 0x4000_0003, 0, [0; 6]),
            Some(libc::SECCOMP_RET_ERRNO | 1)
        );
        let deny_all = compiled(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#);
        assert_eq!(allows(&deny_all, EXECVE), Some(false));
        let log = compiled(r#"{"defaultAction":"SCMP_ACT_LOG"}"#);
        assert_eq!(allows(&log, EXECVE), Some(true));
        // An instruction it doesn't read (an indirect load): no verdict.
        let mut unknown = deny_all;
        unknown.insert(
            0,
            libc::sock_filter {
                code: (libc::BPF_LD | libc::BPF_W | libc::BPF_IND) as u16,
                jt: 0,
                jf: 0,
                k: 16,
            },
        );
        assert_eq!(allows(&unknown, EXECVE), None);
    }

    #[test]
    fn profiles_without_x86_64_are_named() {
        let arm = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_AARCH64"]}"#,
            std::path::Path::new("p"),
        )
        .expect("parses");
        assert_eq!(arch_note(&arm), " (it names only SCMP_ARCH_AARCH64)");
        assert_eq!(arch_note(&Profile::docker_default()), "");
    }
}
