//! The kernel side adopts container cgroups by name the moment they are created, in every
//! layout engines and kubelet use, and nothing else; and it tells the runtime's tasks from the
//! workload's by the kernel's own events.
use std::path::PathBuf;

use profile_tests::privileged;
use tracer::{cgroup, recorder::Recorder};

/// A directory tree under the cgroup v2 root, removed (deepest first) when dropped.
struct Tree {
    dirs: Vec<PathBuf>,
}

impl Tree {
    fn new() -> Self {
        Tree { dirs: Vec::new() }
    }

    /// Creates `path` (relative to the v2 root) and the directories above it.
    fn mkdir(&mut self, path: &str) {
        let root = cgroup::unified_root().expect("cgroup v2 root");
        let mut at = root.clone();
        for part in path.split('/') {
            at = at.join(part);
            if !at.exists() {
                std::fs::create_dir(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
                self.dirs.push(at.clone());
            }
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn container_cgroups_of_every_layout_are_adopted_and_nothing_else() {
    if !privileged("container_cgroups_of_every_layout_are_adopted_and_nothing_else") {
        return;
    }
    let recorder = Recorder::load_with(1, 16).expect("recorder loads");
    recorder.adopt_containers(true);
    let pid = std::process::id();
    let id = |n: u32| format!("{pid:08x}{n:056x}");
    let uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    let adopted_layouts = [
        // Docker and Podman with the cgroupfs driver.
        format!("profile-test-{pid}/docker/{}", id(1)),
        format!("profile-test-{pid}/libpod_parent/libpod-{}", id(2)),
        // kubelet with the cgroupfs driver: a pod's containers (and its sandbox) by bare id.
        format!("profile-test-{pid}/kubepods/besteffort/pod{uid}/{}", id(3)),
        // The systemd driver's scopes.
        format!("profile-test-{pid}/system.slice/docker-{}.scope", id(4)),
        format!(
            "profile-test-{pid}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{}.scope",
            uid.replace('-', "_"),
            id(5)
        ),
        format!("profile-test-{pid}/kubepods.slice/crio-{}.scope", id(6)),
    ];
    let mut tree = Tree::new();
    for path in &adopted_layouts {
        tree.mkdir(path);
    }
    // Names that are no container's: a pod's own cgroup, a service, a short or odd id.
    tree.mkdir(&format!("profile-test-{pid}/kubepods/besteffort/pod{uid}x"));
    tree.mkdir(&format!("profile-test-{pid}/system.slice/ssh.service"));
    tree.mkdir(&format!("profile-test-{pid}/docker/{}", &id(7)[..63]));
    tree.mkdir(&format!("profile-test-{pid}/docker/{}X", &id(8)[..63]));
    tree.mkdir(&format!(
        "profile-test-{pid}/system.slice/docker-{}.slice",
        id(9)
    ));
    let mut names: Vec<String> = recorder
        .adopted()
        .into_iter()
        .map(|(_, name)| name)
        .filter(|name| name.starts_with(&format!("{pid:08x}")))
        .collect();
    names.sort();
    let want: Vec<String> = (1..=6).map(id).collect();
    assert_eq!(names, want);
    for (cg, _) in recorder.adopted() {
        recorder.forget_adopted(cg);
    }
    recorder.adopt_containers(false);
}
