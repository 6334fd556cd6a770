//! The mount table (/proc/self/mountinfo): where filesystems of a type are mounted.
use std::{fs, io, path::PathBuf};

/// Mount points of filesystems of type `fstype` (`cgroup2`, `tracefs`), in mount order.
pub fn of_type(fstype: &str) -> io::Result<Vec<PathBuf>> {
    Ok(parse(&fs::read_to_string("/proc/self/mountinfo")?, fstype))
}

fn parse(mountinfo: &str, fstype: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // mountinfo: id parent major:minor root mount-point options ... - fstype source ...
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != fstype {
                return None;
            }
            let mount_point = left.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape(mount_point)))
        })
        .collect()
}

fn unescape(path: &str) -> String {
    path.replace("\\040", " ").replace("\\011", "\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mount_points_by_type() {
        let info = "22 1 0:21 / /sys rw - sysfs sysfs rw\n\
                    30 22 0:26 / /sys/fs/cgroup/unified rw shared:9 - cgroup2 cgroup2 rw\n\
                    40 22 0:12 / /sys/kernel/tracing rw - tracefs nodev rw\n\
                    41 22 0:12 / /a\\040b rw - tracefs nodev rw\n";
        assert_eq!(
            parse(info, "tracefs"),
            [PathBuf::from("/sys/kernel/tracing"), PathBuf::from("/a b")]
        );
        assert_eq!(
            parse(info, "cgroup2"),
            [PathBuf::from("/sys/fs/cgroup/unified")]
        );
        assert!(parse(info, "ext4").is_empty());
    }
}
