//! Where a container runtime's binary is: engines name a runtime by a command (`runc`, found on
//! the PATH of the daemon that starts it) or a path, in the daemon's own root — the host's,
//! seen from a container of `profile`'s through /proc when the daemon's process is visible.
use std::{
    ffi::CString,
    os::{fd::AsRawFd as _, unix::ffi::OsStrExt as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::Command,
};

/// A runtime's executable: the path its daemon runs, and where this process reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeBinary {
    /// As the daemon sees it (`/usr/sbin/runc`).
    pub path: String,
    /// As this process can read it (`/proc/PID/root/usr/sbin/runc`).
    pub here: PathBuf,
    /// The daemon's root, as this process sees it, to run the binary in.
    root: PathBuf,
}

/// The process serving a daemon's socket, and what it sees.
#[derive(Clone, Debug)]
pub struct Daemon {
    root: PathBuf,
    search: Vec<PathBuf>,
}

/// The directories searched when a process has no PATH.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl Daemon {
    /// The daemon serving the Unix socket `socket`, when its process is visible from here.
    pub fn serving(socket: &Path) -> Option<Daemon> {
        let pid = peer_pid(socket)?;
        Some(Daemon {
            root: PathBuf::from(format!("/proc/{pid}/root")),
            search: search_path(pid),
        })
    }

    /// This process's own root and PATH: for a runtime that runs beside it.
    pub fn here() -> Daemon {
        let path = std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into());
        Daemon {
            root: PathBuf::from("/"),
            search: path
                .split(':')
                .filter(|d| d.starts_with('/'))
                .map(PathBuf::from)
                .collect(),
        }
    }

    /// The executable `program` names for the daemon: a path as it is, a bare name on the
    /// daemon's PATH; a path that doesn't exist is looked up on the PATH by its file name
    /// (Podman lists the first of the places it would look, not the one it found).
    pub fn find(&self, program: &str) -> Option<RuntimeBinary> {
        if program.is_empty() {
            return None;
        }
        let named = Path::new(program);
        if named.is_absolute()
            && let Some(found) = self.at(named)
        {
            return Some(found);
        }
        let file = named.file_name()?;
        self.search.iter().find_map(|dir| self.at(&dir.join(file)))
    }

    fn at(&self, path: &Path) -> Option<RuntimeBinary> {
        let here = self.root.join(path.strip_prefix("/").ok()?);
        here.is_file().then(|| RuntimeBinary {
            path: path.display().to_string(),
            here,
            root: self.root.clone(),
        })
    }
}

impl RuntimeBinary {
    /// The version `--version` prints (`runc version 1.1.5+ds1`, `crun version 1.8.1`), the
    /// binary run in its daemon's root.
    pub fn version(&self) -> Option<String> {
        let root = CString::new(self.root.as_os_str().as_bytes()).ok()?;
        let mut cmd = Command::new(&self.path);
        cmd.arg("--version");
        // SAFETY: between fork and exec the child only makes the chroot and chdir syscalls,
        // both async-signal-safe, on a string allocated before the fork.
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

    /// The file's name (`runc`, `crun`).
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// `runc version 1.1.5+ds1` → `1.1.5+ds1`, `crun version 1.8.1` → `1.8.1`: the first line that
/// says `<name> version <version>`.
pub fn parse_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (_, said, version) = (words.next()?, words.next()?, words.next()?);
        (said == "version").then(|| version.to_string())
    })
}

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
        .unwrap_or_else(|| DEFAULT_PATH.into());
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect()
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
        assert_eq!(
            parse_version("crun version 1.8.1\ncommit: f8a096be\nrundir: /run/crun\n").as_deref(),
            Some("1.8.1")
        );
        assert_eq!(parse_version("usage: runc\n"), None);
    }

    #[test]
    fn paths_on_the_daemons_path() {
        let daemon = Daemon {
            root: PathBuf::from("/"),
            search: vec![PathBuf::from("/nonexistent"), PathBuf::from("/bin")],
        };
        let sh = daemon.find("sh").expect("/bin/sh");
        assert_eq!(sh.path, "/bin/sh");
        assert_eq!(sh.file_name(), "sh");
        // A path that isn't there is looked up by its name.
        assert_eq!(
            daemon.find("/nonexistent/sh").map(|b| b.path),
            Some("/bin/sh".into())
        );
        assert!(daemon.find("no-such-program").is_none());
    }
}
