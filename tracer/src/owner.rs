//! Which process owns what `profile` leaves in shared places (run cgroups, containers): its pid,
//! start time and boot, so that the leftovers of a process that is gone can be told from those
//! of one that still runs.
use std::fs;

/// A process, named so that a later process with the same pid is never mistaken for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Clock ticks after boot (field 22 of /proc/PID/stat).
    pub start: u64,
    /// The kernel's boot id: start times count from boot.
    pub boot: String,
    /// Its pid namespace (`pid:[INODE]`): a pid means nothing in another one, where a
    /// `profile` in a container without the host's pids runs.
    pub pid_ns: Option<String>,
}

impl Owner {
    /// This process.
    pub fn me() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start: start_time(pid)?,
            boot: boot_id()?,
            pid_ns: pid_namespace(),
        })
    }

    /// Whether this process still runs. One in another pid namespace can't be looked up, and
    /// counts as running: what it owns is left alone.
    pub fn alive(&self) -> bool {
        if self.pid_ns.is_some() && self.pid_ns != pid_namespace() {
            return true;
        }
        boot_id().as_deref() == Some(self.boot.as_str()) && start_time(self.pid) == Some(self.start)
    }
}

/// This process's pid namespace, as /proc names it (`pid:[4026531836]`).
fn pid_namespace() -> Option<String> {
    fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|link| link.to_string_lossy().into_owned())
}

/// When `pid` started (clock ticks after boot): with the pid it names one process for the
/// whole uptime.
pub fn start_time(pid: u32) -> Option<u64> {
    parse_start_time(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_a_stat_line() {
        let stat = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 9 9";
        assert_eq!(parse_start_time(stat), Some(987654));
    }

    #[test]
    fn this_process_is_alive_and_a_later_one_is_not() {
        let me = Owner::me().expect("this process");
        assert!(me.start > 0);
        assert!(me.alive());
        let later = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(!later.alive());
        let other_boot = Owner {
            boot: "another boot".into(),
            ..me.clone()
        };
        assert!(!other_boot.alive());
        // A process of another pid namespace is never taken for gone.
        let elsewhere = Owner {
            pid_ns: Some("pid:[1]".into()),
            ..later
        };
        assert!(elsewhere.alive());
    }
}
