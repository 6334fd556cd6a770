//! Where records and processes come from: the kernel log buffer, log files, and /proc (which
//! processes are a container's, and what they run).
use std::{
    collections::{BTreeSet, HashMap},
    fs,
    io::Read as _,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use super::{
    error::AbsorbError,
    selection::{Selection, Whereabouts},
    tally::Tally,
};
use crate::{
    audit::{Lines, LogLine},
    cgroup, input,
    netlink::ProcEvent,
};

type Result<T, E = AbsorbError> = std::result::Result<T, E>;

fn io(path: &Path, source: std::io::Error) -> AbsorbError {
    AbsorbError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `dir` as /proc/PID/cgroup writes it: relative to the unified hierarchy's root.
pub fn relative_cgroup(dir: &Path) -> Result<String> {
    let root = cgroup::unified_root()?;
    let rel = dir.strip_prefix(&root).unwrap_or(dir);
    Ok(format!("/{}", rel.display()))
}

/// The pids in `dir` and the cgroups below it.
pub fn cgroup_pids(dir: &Path) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_pids(&entry.path()));
            }
        }
    }
    pids
}

/// The program `pid` runs, as a path in its own mount namespace (as audit records name it).
pub fn exe_of(pid: u32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = target.to_string_lossy();
    Some(text.trim_end_matches(" (deleted)").to_string())
}

/// The unified-hierarchy cgroup of `pid` (`/docker/<id>`), if it is alive.
pub fn cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|rel| rel.trim().to_string())
}

/// Whether cgroup `rel` is `scope` or below it.
pub fn within(rel: &str, scope: &str) -> bool {
    if let Some(id) = scope.strip_prefix(BY_ID) {
        // A container's cgroup is named by its id (`/docker/<id>`, `docker-<id>.scope`,
        // `libpod-<id>`), whatever the driver.
        return !id.is_empty() && rel.split('/').any(|part| part.contains(id));
    }
    !scope.is_empty()
        && rel
            .strip_prefix(scope)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// How a cgroup not made yet is named: by the id of the container it will hold.
const BY_ID: &str = "id:";

/// The cgroup of container `id` before it starts (see [`within`]).
pub fn cgroup_of_id(id: &str) -> String {
    format!("{BY_ID}{id}")
}

/// Reads a log file (or stdin) line by line into `tally`.
pub fn read_log(
    path: &Path,
    tally: &mut Tally,
    selection: &Selection,
    whereabouts: &mut dyn FnMut(u32) -> Whereabouts,
) -> Result<()> {
    let reader = input::open_log(path)?;
    let name = if input::is_stdin(path) {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let src = tally.source(name);
    let mut lines = Lines::new(reader);
    let mut number = 0;
    while let Some(line) = lines.next_line().map_err(|e| io(path, e))? {
        number += 1;
        tally.line(src, number, &line, selection, whereabouts);
    }
    Ok(())
}

/// The kernel log device.
pub const KMSG: &str = "/dev/kmsg";

/// Reads what the kernel log buffer holds now (/dev/kmsg, without blocking) into `tally`;
/// returns the source's index.
pub fn read_kmsg(
    tally: &mut Tally,
    selection: &Selection,
    whereabouts: &mut dyn FnMut(u32) -> Whereabouts,
) -> Result<usize> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(KMSG)
        .map_err(|source| AbsorbError::KernelLog { path: KMSG, source })?;
    let src = tally.source(format!("kernel log ({KMSG})"));
    // One record per read; the longest the kernel writes is about 8 KiB.
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_seq: Option<u64> = None;
    let mut number = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Records were overwritten since the last read: the sequence numbers say how many.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(source) => return Err(AbsorbError::KernelLog { path: KMSG, source }),
        };
        number += 1;
        let record = String::from_utf8_lossy(&buf[..n]);
        // `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE` then continuation lines.
        let (header, message) = record.split_once(';').unwrap_or(("", &record));
        if let Some(seq) = header.split(',').nth(1).and_then(|s| s.parse::<u64>().ok()) {
            if let Some(last) = last_seq
                && seq > last + 1
            {
                tally.overwritten(src, seq - last - 1);
            }
            last_seq = Some(seq);
        }
        let text = message.lines().next().unwrap_or_default().to_string();
        let line = LogLine { text, cut: false };
        tally.line(src, number, &line, selection, whereabouts);
    }
    Ok(src)
}

/// Which processes are the containers': those in their cgroups when it starts, and, kept up to
/// date from process events while following, every process they fork or `docker exec` starts
/// (a record's process has often exited before the record is read).
pub struct Processes {
    cgroups: Vec<String>,
    members: HashMap<u32, usize>,
}

impl Processes {
    /// Starts with the processes in `cgroups` now (an empty entry: a container that doesn't run).
    pub fn new(cgroups: &[String]) -> Self {
        let mut members = HashMap::new();
        let root = cgroup::unified_root().ok();
        for (i, rel) in cgroups.iter().enumerate() {
            if let (false, Some(root)) = (rel.is_empty(), &root) {
                for pid in cgroup_pids(&root.join(rel.trim_start_matches('/'))) {
                    members.insert(pid, i);
                }
            }
        }
        Processes {
            cgroups: cgroups.to_vec(),
            members,
        }
    }

    fn container_of(&self, pid: u32) -> Option<Result<usize, ()>> {
        let rel = cgroup_of(pid)?;
        Some(self.cgroups.iter().position(|c| within(&rel, c)).ok_or(()))
    }

    /// Follows a fork or exec.
    pub fn event(&mut self, event: ProcEvent) {
        match event {
            ProcEvent::Fork { parent, child } => match self.members.get(&parent) {
                Some(&i) => {
                    self.members.insert(child, i);
                }
                // A pid reused outside the containers is not theirs any more.
                None => {
                    self.members.remove(&child);
                }
            },
            // `docker exec` processes join the cgroup, then execute the command.
            ProcEvent::Exec { pid } => {
                if !self.members.contains_key(&pid)
                    && let Some(Ok(i)) = self.container_of(pid)
                {
                    self.members.insert(pid, i);
                }
            }
        }
    }

    /// Where `pid` is. For a record made while following (`live`), a process neither followed
    /// nor alive in a container was never one of theirs: every fork in them was seen.
    pub fn whereabouts(&mut self, pid: u32, live: bool) -> Whereabouts {
        if let Some(&i) = self.members.get(&pid) {
            return Whereabouts::In(i);
        }
        match self.container_of(pid) {
            Some(Ok(i)) => {
                self.members.insert(pid, i);
                Whereabouts::In(i)
            }
            Some(Err(())) => Whereabouts::Elsewhere,
            None if live => Whereabouts::Elsewhere,
            None => Whereabouts::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_nest() {
        assert!(within("/docker/abc", "/docker/abc"));
        assert!(within("/docker/abc/sub", "/docker/abc"));
        assert!(!within("/docker/abcd", "/docker/abc"));
        assert!(!within("/docker/abc", ""));
        let created = cgroup_of_id("abc123");
        assert!(within("/docker/abc123", &created));
        assert!(within("/system.slice/docker-abc123.scope/sub", &created));
        assert!(!within("/docker/def456", &created));
        assert!(!within("/docker/abc123", &cgroup_of_id("")));
    }

    #[test]
    fn forks_of_members_are_members() {
        let mut t = Processes {
            cgroups: vec!["/docker/none-such".into()],
            members: HashMap::from([(10, 0)]),
        };
        t.event(ProcEvent::Fork {
            parent: 10,
            child: 11,
        });
        assert_eq!(t.whereabouts(11, true), Whereabouts::In(0));
        t.event(ProcEvent::Fork {
            parent: 1,
            child: 11,
        });
        // Reused by an outsider; gone from /proc too (no such pid).
        assert_eq!(t.members.get(&11), None);
        assert_eq!(t.whereabouts(u32::MAX - 1, false), Whereabouts::Gone);
        assert_eq!(t.whereabouts(u32::MAX - 1, true), Whereabouts::Elsewhere);
        assert_eq!(t.whereabouts(1, false), Whereabouts::Elsewhere);
    }
}
