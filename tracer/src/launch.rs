//! Starts a command the way a container runtime would: in a given cgroup, under a seccomp
//! filter installed just before exec (`run`'s allows everything, `exec`'s is a profile's).
use std::{
    ffi::CString,
    fs::OpenOptions,
    io,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::atomic::{AtomicI32, Ordering},
};

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{program}: permission denied")]
    PermissionDenied { program: String },
    #[error("{program}: {source}")]
    Other { program: String, source: io::Error },
    #[error("no command given")]
    NoCommand,
    #[error("{path}: {source}")]
    Cgroup { path: PathBuf, source: io::Error },
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

/// The shell's convention: the exit code, or 128 + the signal that ended the process.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt as _;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Waits for `child`; SIGINT and SIGTERM sent to `profile` alone are passed on to it (a
/// terminal's reach it directly).
pub async fn wait_forwarding_signals(mut child: Child) -> io::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{SignalKind, signal};
    let pid = child.id() as i32;
    let waiter = tokio::task::spawn_blocking(move || child.wait());
    tokio::pin!(waiter);
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    loop {
        let sig = tokio::select! {
            status = &mut waiter => return status.map_err(io::Error::other)?,
            _ = sigint.recv() => libc::SIGINT,
            _ = sigterm.recv() => libc::SIGTERM,
        };
        // SAFETY: kill(2) on the child's pid.
        unsafe { libc::kill(pid, sig) };
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
/// `cgroup.procs` is `procs` (when one is given). With `stdout_to_stderr` its standard output
/// goes to this process's standard error (stdout carries a profile then).
///
/// Between the filter's install and the program's start only `execve` runs: the child execs
/// by itself and, should that fail, leaves the error in memory shared with this process rather
/// than in a pipe, then exits (or crashes, if the filter denies even that) with the default
/// fault handlers. So a filter that denies `write` or `rt_sigaction` can't make the child hang
/// or lose the reason it didn't start.
pub fn spawn(
    argv: &[String],
    procs: Option<&Path>,
    mut filter: Option<Vec<libc::sock_filter>>,
    stdout_to_stderr: bool,
) -> Result<Child, LaunchError> {
    let (program, args) = argv.split_first().ok_or(LaunchError::NoCommand)?;
    let other = |source| LaunchError::Other {
        program: program.clone(),
        source,
    };
    let c_argv = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<CString>, _>>()
        .map_err(|e| other(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // execvp's argument vector, as addresses (the strings' buffers stay where they are).
    let mut c_ptrs: Vec<usize> = c_argv.iter().map(|a| a.as_ptr() as usize).collect();
    c_ptrs.push(0);
    let exec_errno = SharedErrno::new().map_err(other)?;
    let errno_at = exec_errno.addr();
    let procs_file = procs
        .map(|procs| {
            OpenOptions::new()
                .write(true)
                .open(procs)
                .map_err(|source| LaunchError::Cgroup {
                    path: procs.to_path_buf(),
                    source,
                })
        })
        .transpose()?;
    let procs_fd = procs_file.as_ref().map(|f| f.as_raw_fd());
    let mut command = Command::new(program);
    command.args(args);
    if stdout_to_stderr {
        command.stdout(io::stderr());
    }
    // SAFETY: the closure only makes async-signal-safe calls on memory prepared before the
    // fork; it returns only with an error from before the filter's install.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs_fd {
                join_cgroup(fd)?;
            }
            default_fault_handlers();
            if let Some(filter) = filter.as_mut() {
                install_filter(filter)?;
            }
            exec_or_die(&c_argv, &c_ptrs, errno_at)
        });
    }
    let mut child = command.spawn().map_err(other)?;
    drop(procs_file);
    match exec_errno.get() {
        0 => Ok(child),
        errno => {
            let _ = child.wait();
            Err(match io::Error::from_raw_os_error(errno) {
                e if e.kind() == io::ErrorKind::NotFound => LaunchError::NotFound {
                    program: program.clone(),
                },
                e if e.kind() == io::ErrorKind::PermissionDenied => LaunchError::PermissionDenied {
                    program: program.clone(),
                },
                e => other(e),
            })
        }
    }
}

/// A word in memory shared with the child across fork: where it puts execve's errno.
struct SharedErrno(*mut libc::c_void);

impl SharedErrno {
    fn new() -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping, unmapped on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<AtomicI32>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedErrno(ptr))
    }

    fn addr(&self) -> usize {
        self.0 as usize
    }

    fn get(&self) -> i32 {
        // SAFETY: the mapping is live, zero-filled at creation and aligned to a page.
        unsafe { AtomicI32::from_ptr(self.0.cast()) }.load(Ordering::SeqCst)
    }
}

impl Drop for SharedErrno {
    fn drop(&mut self) {
        // SAFETY: unmaps what new() mapped.
        unsafe { libc::munmap(self.0, std::mem::size_of::<AtomicI32>()) };
    }
}

/// In the child: the fault handlers this process installed (the runtime's stack-overflow
/// handler among them) would run under the filter, and one that can't reset itself because
/// the filter denies `rt_sigaction` faults again forever. exec resets them anyway.
fn default_fault_handlers() {
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGABRT,
        libc::SIGTRAP,
        libc::SIGSYS,
    ] {
        // SAFETY: signal(2) is async-signal-safe.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// In the child: execs `argv` (`ptrs`: its addresses, null-terminated); on failure leaves the
/// errno at `errno_at` and exits 127, or, when the filter denies exiting too, crashes.
fn exec_or_die(argv: &[CString], ptrs: &[usize], errno_at: usize) -> io::Result<()> {
    // SAFETY: `ptrs` holds the addresses of `argv`'s strings and a final null.
    unsafe { libc::execvp(argv[0].as_ptr(), ptrs.as_ptr().cast()) };
    let errno = io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL);
    // SAFETY: `errno_at` is the live shared mapping of SharedErrno.
    unsafe { AtomicI32::from_ptr(errno_at as *mut i32) }.store(errno, Ordering::SeqCst);
    // SAFETY: raw exit_group: no atexit handlers run in a forked child.
    unsafe { libc::syscall(libc::SYS_exit_group, 127) };
    // exit_group was denied: die by the (default) SIGILL handler, which needs no syscall.
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    // SAFETY: ud2 raises SIGILL and never returns.
    unsafe {
        std::arch::asm!("ud2", options(noreturn))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    std::process::abort()
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
