//! cgroups: where the unified (v2) hierarchy is, cgroup ids, and cgroups `profile run` creates.
use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// The mount point of the cgroup v2 hierarchy: `/sys/fs/cgroup` on v2 hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones.
pub fn unified_root() -> Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    mounts
        .lines()
        .find_map(|line| {
            // mountinfo: id parent major:minor root mount-point options ... - fstype source ...
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let mount_point = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_mount_path(mount_point)))
        })
        .ok_or(Error::NoUnifiedHierarchy)
}

fn unescape_mount_path(path: &str) -> String {
    path.replace("\\040", " ").replace("\\011", "\t")
}

/// The id `bpf_get_current_cgroup_id()` reports for tasks in the cgroup at `path`.
pub fn id_of(path: &Path) -> Result<u64> {
    fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|source| Error::Cgroup {
            path: path.to_path_buf(),
            source,
        })
}

/// The unified-hierarchy cgroup directory of process `pid` (the `0::` line of
/// /proc/PID/cgroup).
pub fn of_pid(pid: u32) -> Result<PathBuf> {
    let file = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or(Error::NoUnifiedHierarchy)?;
    Ok(unified_root()?.join(rel.trim_start_matches('/')))
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
        let err = |source| Error::Cgroup {
            path: path.clone(),
            source,
        };
        fs::create_dir(&path).map_err(err)?;
        let id = id_of(&path)?;
        Ok(OwnedCgroup { path, id })
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

#[cfg(test)]
mod tests {
    use super::unescape_mount_path;

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape_mount_path("/a\\040b"), "/a b");
    }
}
