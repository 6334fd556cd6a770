//! Starts a command the way a container runtime would: in a given cgroup, under a seccomp
//! filter installed just before exec (here one that allows everything).
use std::{
    fs::OpenOptions,
    io,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::Path,
    process::{Child, Command},
};

use crate::error::{Error, Result};

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{program}: permission denied")]
    PermissionDenied { program: String },
    #[error("{program}: {source}")]
    Other { program: String, source: io::Error },
    #[error(transparent)]
    Setup(#[from] Error),
}

impl LaunchError {
    /// The shell's exit status for this failure (127 not found, 126 not executable).
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::NotFound { .. } => 127,
            LaunchError::PermissionDenied { .. } => 126,
            _ => 1,
        }
    }
}

/// The filter `profile run` records under: it allows everything.
pub fn allow_all() -> Vec<libc::sock_filter> {
    vec![libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ALLOW,
    }]
}

/// Spawns `argv` under `filter` (when one is given), first moving it into the cgroup whose
/// `cgroup.procs` is `procs` (when one is given).
pub fn spawn(
    argv: &[String],
    procs: Option<&Path>,
    mut filter: Option<Vec<libc::sock_filter>>,
) -> Result<Child, LaunchError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Invalid("no command given".into()))?;
    let procs_file = procs
        .map(|procs| {
            OpenOptions::new()
                .write(true)
                .open(procs)
                .map_err(|e| Error::io(procs, e))
        })
        .transpose()?;
    let procs_fd = procs_file.as_ref().map(|f| f.as_raw_fd());
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: the closure only makes async-signal-safe syscalls on memory it owns.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs_fd {
                join_cgroup(fd)?;
            }
            match filter.as_mut() {
                Some(filter) => install_filter(filter),
                None => Ok(()),
            }
        });
    }
    let child = command.spawn().map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LaunchError::NotFound {
            program: program.clone(),
        },
        io::ErrorKind::PermissionDenied => LaunchError::PermissionDenied {
            program: program.clone(),
        },
        _ => LaunchError::Other {
            program: program.clone(),
            source,
        },
    })?;
    drop(procs_file);
    Ok(child)
}

fn join_cgroup(procs_fd: libc::c_int) -> io::Result<()> {
    // "0" moves the writing process itself.
    // SAFETY: writes one byte from a static buffer to an open fd.
    let n = unsafe { libc::write(procs_fd, b"0".as_ptr().cast(), 1) };
    if n != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs `filter` with prctl, as runc does; with CAP_SYS_ADMIN no-new-privs isn't needed,
/// as with container runtimes running as root.
fn install_filter(filter: &mut [libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prog points to a valid one-instruction filter that outlives the call.
    let install = || unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    if install() == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EACCES) {
        return Err(err);
    }
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 || install() != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
