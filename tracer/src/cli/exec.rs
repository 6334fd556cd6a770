//! `profile exec`: run a host command with a profile enforced, to check a profile without Docker.
use std::{path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{filter, launch, seccomp::Profile};

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile to enforce (in any format profile writes; `docker-default` for Docker's
    /// default).
    #[arg(long, value_name = "PROFILE")]
    pub profile: PathBuf,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let profile = super::load_profile(&args.profile)?;
    let program = filter::compile(&profile)?;
    if allows(&program, EXECVE) == Some(false) {
        anyhow::bail!(
            "{} denies execve on x86_64{}: no command can start under it",
            args.profile.display(),
            arch_note(&profile)
        );
    }
    let child = match launch::spawn(&args.command, None, Some(program)) {
        Ok(child) => child,
        Err(err) => {
            eprintln!("profile: {err}");
            return Ok(ExitCode::from(err.exit_code() as u8));
        }
    };
    let status = super::run::wait_forwarding_signals(child).await?;
    if let Some(name) = fault(status) {
        eprintln!(
            "profile: {}: killed by {name} under {}: it may need a call the profile denies (`profile run` records what it calls)",
            args.command[0],
            args.profile.display()
        );
    }
    Ok(ExitCode::from(
        crate::launch::exit_code(status).clamp(0, 255) as u8,
    ))
}

const EXECVE: u32 = 59;

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
    let x86_64 = crate::names::Abi::X86_64.seccomp_arch();
    if profile.architectures.is_empty() || profile.architectures.iter().any(|a| a == x86_64) {
        return String::new();
    }
    format!(" (it names only {})", profile.architectures.join(", "))
}

/// The name of the fault signal that ended a process, if one did.
fn fault(status: std::process::ExitStatus) -> Option<&'static str> {
    use std::os::unix::process::ExitStatusExt as _;
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
