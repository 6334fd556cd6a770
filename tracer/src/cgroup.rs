//! cgroups: where the unified (v2) hierarchy is, cgroup ids, and cgroups `profile run` creates.
use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{
    mounts, owner,
    privileges::{self, Cap, Creds, FileAccess, Missing},
};

/// Why a cgroup could not be found, created or read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "no cgroup v2 (unified) hierarchy is mounted: looked for a cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified"
    )]
    NoUnifiedHierarchy,
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

type Result<T, E = CgroupError> = std::result::Result<T, E>;

fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        path: path.into(),
        source,
    }
}

/// The mount point of the cgroup v2 hierarchy: `/sys/fs/cgroup` on v2 hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones.
pub fn unified_root() -> Result<PathBuf> {
    mounts::of_type("cgroup2")
        .map_err(|e| io("/proc/self/mountinfo", e))?
        .into_iter()
        .next()
        .ok_or(CgroupError::NoUnifiedHierarchy)
}

/// The id `bpf_get_current_cgroup_id()` reports for tasks in the cgroup at `path`.
pub fn id_of(path: &Path) -> Result<u64> {
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| CgroupError::Cgroup {
            path: path.to_path_buf(),
            source,
        })
}

/// The unified-hierarchy cgroup directory of process `pid` (the `0::` line of
/// /proc/PID/cgroup).
pub fn of_pid(pid: u32) -> Result<PathBuf> {
    let file = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&file).map_err(|e| io(&file, e))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or(CgroupError::NoUnifiedHierarchy)?;
    Ok(unified_root()?.join(rel.trim_start_matches('/')))
}

/// The cgroup of container `id` in the unified hierarchy, found by its name as the kernel side
/// adopts it (`<id>`, `…-<id>.scope`) within a few levels of the root: a process's own
/// /proc/PID/cgroup is relative to the reader's cgroup namespace, a container's own one.
pub fn of_container(id: &str) -> Result<PathBuf> {
    fn search(dir: &Path, id: &str, depth: u32) -> Option<PathBuf> {
        let entries = fs::read_dir(dir).ok()?;
        let mut subdirs = Vec::new();
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name == id || name.ends_with(&format!("-{id}.scope")) {
                return Some(e.path());
            }
            subdirs.push(e.path());
        }
        (depth > 0)
            .then(|| subdirs.iter().find_map(|d| search(d, id, depth - 1)))
            .flatten()
    }
    let root = unified_root()?;
    search(&root, id, 6).ok_or_else(|| CgroupError::Cgroup {
        path: root.join(id),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// A cgroup this process created; killed and removed on drop.
#[derive(Debug)]
pub struct OwnedCgroup {
    path: PathBuf,
    id: u64,
}

impl OwnedCgroup {
    /// Creates `<unified root>/<name>`: a direct child of the root, which no controller
    /// configuration keeps processes out of.
    pub fn create(name: &str) -> Result<Self> {
        let path = unified_root()?.join(name);
        let err = |source| CgroupError::Cgroup {
            path: path.clone(),
            source,
        };
        fs::create_dir(&path).map_err(err)?;
        let id = id_of(&path)?;
        Ok(OwnedCgroup { path, id })
    }

    /// What creating (and later removing) a cgroup under the unified root needs that this
    /// process lacks: write access to the root, which belongs to root and may be read-only
    /// even for its owner (mode 0555 on hybrid hosts).
    pub fn missing_privileges(creds: &Creds) -> Result<Option<Missing>> {
        let root = unified_root()?;
        if privileges::may_access(&root, libc::W_OK | libc::X_OK).is_ok()
            || creds.has(Cap::DacOverride)
        {
            return Ok(None);
        }
        let access = FileAccess::of(&root)
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        Ok(Some(Missing::new(
            format!(
                "creating the command's cgroup in {}{access}",
                root.display()
            ),
            vec![Cap::DacOverride],
        )))
    }

    /// A fresh cgroup for `profile run`, `profile-run-<pid>-<start time>`: a later process
    /// that gets the same pid can't collide with one a killed `profile` left behind. Such
    /// leftovers are removed first when nothing runs in them any more.
    pub fn for_run() -> Result<Self> {
        remove_stale(&unified_root()?);
        let pid = std::process::id();
        let start = owner::start_time(pid).ok_or_else(|| {
            io(
                format!("/proc/{pid}/stat"),
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            )
        })?;
        Self::create(&format!("{RUN_PREFIX}{pid}-{start}"))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn procs_path(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// Kills whatever still runs in the cgroup and waits until it is empty.
    pub fn kill_all(&self) {
        let _ = fs::write(self.path.join("cgroup.kill"), "1");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match fs::read_to_string(self.procs_path()) {
                Ok(procs) if !procs.trim().is_empty() => {
                    // cgroup.kill is missing before Linux 5.14: signal each process instead.
                    for pid in procs
                        .split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok())
                    {
                        // SAFETY: plain kill(2) on a pid read from the cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }
}

impl Drop for OwnedCgroup {
    fn drop(&mut self) {
        self.kill_all();
        if let Err(err) = fs::remove_dir(&self.path) {
            log::warn!("could not remove cgroup {}: {err}", self.path.display());
        }
    }
}

/// Prefix of the cgroups [`OwnedCgroup::for_run`] creates.
const RUN_PREFIX: &str = "profile-run-";

/// Whether the `profile` that named a cgroup `profile-run-<pid>[-<start>]` still runs.
fn owner_alive(pid: u32, start: Option<u64>) -> bool {
    match start {
        Some(start) => owner::start_time(pid) == Some(start),
        // Older names carry only the pid.
        None => {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "profile")
        }
    }
}

/// Cgroups under `root` that a `profile run` created, whose owner is gone (`alive` says) and in
/// which nothing runs.
fn stale(root: &Path, alive: impl Fn(u32, Option<u64>) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let Some(owner) = name.to_str().and_then(|n| n.strip_prefix(RUN_PREFIX)) else {
                return false;
            };
            let (pid, start) = match owner.split_once('-') {
                Some((pid, start)) => (pid, Some(start)),
                None => (owner, None),
            };
            let (Ok(pid), Ok(start)) = (pid.parse(), start.map(str::parse).transpose()) else {
                return false;
            };
            !alive(pid, start)
                && fs::read_to_string(e.path().join("cgroup.procs"))
                    .is_ok_and(|procs| procs.trim().is_empty())
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Removes the cgroups killed `profile run`s left behind, when nothing runs in them.
fn remove_stale(root: &Path) {
    for path in stale(root, owner_alive) {
        match fs::remove_dir(&path) {
            Ok(()) => log::info!("removed the stale cgroup {}", path.display()),
            Err(err) => log::debug!("stale cgroup {}: {err}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_of_run_cgroups() {
        let me = std::process::id();
        let start = owner::start_time(me);
        assert!(owner_alive(me, start));
        assert!(!owner_alive(me, start.map(|t| t + 1)));
    }

    #[test]
    fn stale_cgroups_are_those_of_gone_owners_with_nothing_left() {
        let root = std::env::temp_dir().join(format!("profile-cgroups-{}", std::process::id()));
        for (name, procs) in [
            ("profile-run-1-5", ""),
            ("profile-run-2-6", ""),
            ("profile-run-3-7", "123\n"),
            ("profile-run-4", "\n"),
            ("profile-run-x", ""),
            ("other", ""),
        ] {
            fs::create_dir_all(root.join(name)).unwrap();
            fs::write(root.join(name).join("cgroup.procs"), procs).unwrap();
        }
        let found = stale(&root, |pid, _| pid == 2);
        assert_eq!(
            found,
            [root.join("profile-run-1-5"), root.join("profile-run-4")]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
