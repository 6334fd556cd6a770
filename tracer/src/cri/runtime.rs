//! Which runc a CRI runtime starts containers with: the CRI names no low-level runtime's
//! version, so it is asked of the runc the runtime's own process finds on its PATH, in the
//! runtime's root (the host's, seen from a DaemonSet's container through /proc).
use std::{
    ffi::CString,
    os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

/// The process serving `socket` (its peer's credentials).
fn peer_pid(socket: &Path) -> Option<u32> {
    let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is a connected socket owned by `stream`; `cred` and `len` are valid for
    // writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

/// The directories on `pid`'s PATH (a daemon started without one searches the default).
fn search_path(pid: u32) -> Vec<PathBuf> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let path = environ
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// The version of the runc the runtime serving `socket` runs (`1.1.5+ds1`), when it can be
/// found and asked.
pub fn runc_version(socket: &Path) -> Option<String> {
    let pid = peer_pid(socket)?;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let runc = search_path(pid)
        .into_iter()
        .map(|d| d.join("runc"))
        .find(|p| root.join(p.strip_prefix("/").unwrap_or(p)).is_file())?;
    let root = CString::new(root.as_os_str().as_bytes()).ok()?;
    let mut cmd = Command::new(&runc);
    cmd.arg("--version");
    // SAFETY: between fork and exec the child only makes the chroot and chdir syscalls, both
    // async-signal-safe, on a string allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().ok()?;
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// `runc version 1.1.5+ds1` → `1.1.5+ds1`.
fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("runc version "))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev\n")
                .as_deref(),
            Some("1.1.5+ds1")
        );
        assert_eq!(parse_version("crun version 1.8\n"), None);
    }
}
