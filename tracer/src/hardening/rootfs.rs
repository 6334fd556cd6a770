//! What a workload wrote in its root filesystem, and where tmpfs mounts let that filesystem be
//! read-only: the narrowest directories that hold every write, never `/`, never one whose
//! image content a tmpfs would hide.
//!
//! The input is the engine's list of a container's changes (`docker diff`: added, changed,
//! deleted paths). A path the workload added under directories it added itself gets a tmpfs
//! at the topmost of those (the runtime makes the mount point; nothing of the image is under
//! it); a file it added where the image has a directory gets a tmpfs at that directory, once
//! the container's copy of it is seen to hold nothing else of the image. A changed or deleted
//! file of the image can't be kept on a read-only root: the recipe then leaves it writable,
//! and says why.
use std::collections::BTreeSet;

/// One entry of the engine's list of a container's changes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Changed,
    Deleted,
}

/// What the writes make of the root filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rootfs {
    /// The workload's writes (the runtime's mount points left out), sorted.
    pub writes: Vec<String>,
    /// The directories to mount as tmpfs, sorted, none inside another.
    pub tmpfs: Vec<String>,
    /// Why the root filesystem can't be read-only, when it can't.
    pub blockers: Vec<String>,
}

impl Rootfs {
    /// Whether the root filesystem can be read-only (with [`Rootfs::tmpfs`]).
    pub fn read_only(&self) -> bool {
        self.blockers.is_empty()
    }

    /// The union of what several runs wrote: every write and tmpfs of each, every reason.
    pub fn union(runs: &[Rootfs]) -> Rootfs {
        let writes: BTreeSet<String> = runs.iter().flat_map(|r| r.writes.clone()).collect();
        let tmpfs: BTreeSet<String> = runs.iter().flat_map(|r| r.tmpfs.clone()).collect();
        let blockers: BTreeSet<String> = runs.iter().flat_map(|r| r.blockers.clone()).collect();
        Rootfs {
            writes: writes.into_iter().collect(),
            tmpfs: outermost(tmpfs),
            blockers: blockers.into_iter().collect(),
        }
    }
}

/// The directory a path is in (`/` for `/x`).
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Whether `inner` is `outer` or below it.
fn within(inner: &str, outer: &str) -> bool {
    outer == "/"
        || inner == outer
        || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
}

/// `dirs` without those inside another of them.
fn outermost(dirs: BTreeSet<String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for d in dirs {
        if !kept.iter().any(|k| within(&d, k)) {
            kept.push(d);
        }
    }
    kept
}

/// The tmpfs plan of one container's `changes`. `mounts` are the container's mount
/// destinations (volumes, binds, tmpfs): what is at, below or above them is the runtime's.
/// `listing(dir)` gives the names in the container's copy of an image directory (`None`:
/// unreadable), so that a tmpfs never hides what the image has there.
pub fn plan(
    changes: &[Change],
    mounts: &[String],
    listing: &mut dyn FnMut(&str) -> Option<BTreeSet<String>>,
) -> Rootfs {
    let entries: Vec<&Change> = changes
        .iter()
        .filter(|c| c.path.starts_with('/') && c.path != "/")
        .filter(|c| {
            !mounts
                .iter()
                .any(|m| within(&c.path, m) || within(m, &c.path))
        })
        .collect();
    let added: BTreeSet<&str> = entries
        .iter()
        .filter(|c| c.kind == ChangeKind::Added)
        .map(|c| c.path.as_str())
        .collect();
    let has_below = |path: &str| {
        entries
            .iter()
            .any(|c| c.path != path && within(&c.path, path))
    };
    let mut tmpfs = BTreeSet::new();
    let mut blockers = Vec::new();
    for c in &entries {
        if has_below(&c.path) {
            continue;
        }
        match c.kind {
            ChangeKind::Changed => {
                blockers.push(format!("changes {}, a file of the image", c.path))
            }
            ChangeKind::Deleted => {
                blockers.push(format!("deletes {}, a file of the image", c.path))
            }
            ChangeKind::Added => {
                // The topmost directory the workload made itself, above this write.
                let mut top = c.path.as_str();
                while added.contains(parent(top)) {
                    top = parent(top);
                }
                if top != c.path {
                    tmpfs.insert(top.to_string());
                } else if parent(top) == "/" {
                    blockers.push(format!("writes {top} in / itself"));
                } else {
                    tmpfs.insert(parent(top).to_string());
                }
            }
        }
    }
    let tmpfs = outermost(tmpfs);
    for dir in &tmpfs {
        if added.contains(dir.as_str()) {
            continue;
        }
        let Some(names) = listing(dir) else {
            blockers.push(format!(
                "{dir} could not be read to see what a tmpfs there would hide"
            ));
            continue;
        };
        let hidden: Vec<String> = names
            .iter()
            .map(|n| format!("{}/{n}", dir.trim_end_matches('/')))
            .filter(|p| !added.contains(p.as_str()))
            .collect();
        if let Some(first) = hidden.first() {
            blockers.push(format!(
                "a tmpfs at {dir} would hide {} entr{} of the image there ({first})",
                hidden.len(),
                if hidden.len() == 1 { "y" } else { "ies" }
            ));
        }
    }
    let mut writes: Vec<String> = entries
        .iter()
        .filter(|c| !has_below(&c.path))
        .map(|c| c.path.clone())
        .collect();
    writes.sort();
    Rootfs {
        writes,
        tmpfs,
        blockers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(list: &[(&str, &str)]) -> Vec<Change> {
        list.iter()
            .map(|(k, p)| Change {
                kind: match *k {
                    "A" => ChangeKind::Added,
                    "C" => ChangeKind::Changed,
                    _ => ChangeKind::Deleted,
                },
                path: p.to_string(),
            })
            .collect()
    }

    fn empty(_: &str) -> Option<BTreeSet<String>> {
        Some(BTreeSet::new())
    }

    #[test]
    fn writes_get_the_narrowest_tmpfs_that_hides_nothing() {
        // What a web server writes: a pid file, its cache directories, a log.
        let c = changes(&[
            ("A", "/run"),
            ("A", "/run/app.pid"),
            ("C", "/tmp"),
            ("A", "/tmp/x"),
            ("C", "/var"),
            ("C", "/var/lib"),
            ("C", "/var/lib/nginx"),
            ("A", "/var/lib/nginx/body"),
            ("A", "/var/lib/nginx/proxy"),
            ("A", "/data"),
            ("A", "/scratch"),
        ]);
        let mounts = ["/data".to_string(), "/scratch".to_string()];
        let mut listed = Vec::new();
        let mut listing = |dir: &str| {
            listed.push(dir.to_string());
            Some(match dir {
                "/var/lib/nginx" => ["body", "proxy"].map(String::from).into(),
                _ => ["x"].map(String::from).into(),
            })
        };
        let r = plan(&c, &mounts, &mut listing);
        assert_eq!(r.tmpfs, ["/run", "/tmp", "/var/lib/nginx"]);
        assert!(r.read_only(), "{r:?}");
        assert_eq!(
            r.writes,
            [
                "/run/app.pid",
                "/tmp/x",
                "/var/lib/nginx/body",
                "/var/lib/nginx/proxy"
            ]
        );
        // /run was made by the workload: nothing of the image to look at there.
        assert_eq!(listed, ["/tmp", "/var/lib/nginx"]);
    }

    #[test]
    fn what_a_tmpfs_would_hide_or_an_image_file_changed_keeps_the_root_writable() {
        let c = changes(&[("C", "/etc"), ("A", "/etc/app.conf")]);
        let mut listing = |_: &str| Some(["app.conf", "passwd"].map(String::from).into());
        let r = plan(&c, &[], &mut listing);
        assert_eq!(r.tmpfs, ["/etc"]);
        assert_eq!(
            r.blockers,
            ["a tmpfs at /etc would hide 1 entry of the image there (/etc/passwd)"]
        );
        let r = plan(
            &changes(&[("C", "/www"), ("C", "/www/index.html")]),
            &[],
            &mut empty,
        );
        assert_eq!(r.blockers, ["changes /www/index.html, a file of the image"]);
        let r = plan(&changes(&[("A", "/app.pid")]), &[], &mut empty);
        assert_eq!(r.blockers, ["writes /app.pid in / itself"]);
        assert!(!r.read_only() && r.tmpfs.is_empty());
        let r = plan(&changes(&[("D", "/old")]), &[], &mut empty);
        assert_eq!(r.blockers, ["deletes /old, a file of the image"]);
    }

    #[test]
    fn a_directory_the_workload_made_is_the_mount_point_itself() {
        let c = changes(&[
            ("C", "/var"),
            ("A", "/var/cache"),
            ("A", "/var/cache/app"),
            ("A", "/var/cache/app/1"),
        ]);
        let r = plan(&c, &[], &mut |_| None);
        assert_eq!(r.tmpfs, ["/var/cache"]);
        assert!(r.read_only(), "nothing of the image is read: {r:?}");
        let union = Rootfs::union(&[
            r,
            Rootfs {
                writes: vec!["/var/cache/x".into()],
                tmpfs: vec!["/var".into()],
                blockers: vec![],
            },
        ]);
        assert_eq!(union.tmpfs, ["/var"]);
        assert_eq!(union.writes, ["/var/cache/app/1", "/var/cache/x"]);
    }
}
