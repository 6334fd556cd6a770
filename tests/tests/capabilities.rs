//! What a workload does with privileges, in the kernel: the capability checks it makes (with
//! their outcome and syscall), its binds below port 1024, its execs that change credentials,
//! and, while verifying, its writes a read-only filesystem refused.
use std::{os::unix::fs::PermissionsExt as _, path::PathBuf, time::Duration};

use profile_tests::{SYSLOOP, privileged};
use tracer::{
    cgroup::OwnedCgroup,
    launch,
    names::Abi,
    recorder::{CapOutcome, Mode, Recorder, Snapshot},
};

/// Records `argv` run in a fresh cgroup under an allow-all filter, capabilities included;
/// `ok`: whether it must succeed.
fn record_in(test: &str, mode: Mode, argv: &[&str], ok: bool) -> Snapshot {
    let recorder = Recorder::load().expect("load recorder");
    recorder.record_capabilities().expect("capability checks");
    let cg = OwnedCgroup::create(&format!("profile-test-caps-{test}-{}", std::process::id()))
        .expect("cgroup");
    let rec = recorder.watch_cgroup(cg.id(), mode, false).expect("watch");
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut child = launch::spawn(
        &argv,
        Some(&cg.procs_path()),
        Some(launch::allow_all()),
        false,
    )
    .expect("spawn");
    let status = child.wait().expect("wait");
    assert_eq!(status.success(), ok, "{argv:?}: {status}");
    std::thread::sleep(Duration::from_millis(50));
    recorder.finish(rec).expect("snapshot")
}

fn record(test: &str, argv: &[&str]) -> Snapshot {
    record_in(test, Mode::UnderFilter, argv, true)
}

/// The needs (checks that were not probes) found with `outcome`: capability and syscall.
fn needs(snap: &Snapshot, outcome: CapOutcome) -> Vec<(u16, String)> {
    snap.capabilities
        .iter()
        .filter(|(c, o)| c.outcome == outcome && !o.probe)
        .map(|(c, _)| (c.cap, Abi::X86_64.name(c.nr).unwrap_or("?").to_string()))
        .collect()
}

/// A scratch directory of this test process, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("profile-test-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_chown_to_another_user_is_one_granted_chown_check_in_its_syscall() {
    if !privileged("a_chown_to_another_user_is_one_granted_chown_check_in_its_syscall") {
        return;
    }
    let dir = Dir::new("caps-chown");
    let file = dir.0.join("f");
    std::fs::write(&file, "x").unwrap();
    let snap = record("chown", &[SYSLOOP, "chown", file.to_str().unwrap(), "1000"]);
    assert_eq!(
        needs(&snap, CapOutcome::Granted),
        [(0, "chown".to_string())]
    );
    assert!(needs(&snap, CapOutcome::Denied).is_empty(), "{snap:?}");
    // The overcommit check of brk and execve asks for SYS_ADMIN only to probe.
    let probes: Vec<u16> = snap
        .capabilities
        .iter()
        .filter(|(_, o)| o.probe)
        .map(|(c, _)| c.cap)
        .collect();
    assert!(probes.contains(&21), "{:?}", snap.capabilities);
}

#[test]
fn a_user_without_capabilities_is_denied_them_and_a_low_port_is_remembered() {
    if !privileged("a_user_without_capabilities_is_denied_them_and_a_low_port_is_remembered") {
        return;
    }
    // As uid 4242 the host's bind to port 80 fails: a denied NET_BIND_SERVICE, and the port.
    let snap = record_in(
        "lowport",
        Mode::UnderFilter,
        &[SYSLOOP, "drop", "4242", SYSLOOP, "bind", "80"],
        false,
    );
    let denied = needs(&snap, CapOutcome::Denied);
    assert!(denied.contains(&(10, "bind".to_string())), "{denied:?}");
    let ports: Vec<u32> = snap
        .capabilities
        .keys()
        .filter(|c| c.outcome == CapOutcome::LowPort)
        .map(|c| c.nr)
        .collect();
    assert_eq!(ports, [80]);
    // The drop itself: SETGID and SETUID granted, in setgroups/setgid and setuid.
    let granted = needs(&snap, CapOutcome::Granted);
    for want in [(6, "setgid"), (7, "setuid")] {
        assert!(
            granted.contains(&(want.0, want.1.to_string())),
            "{want:?} in {granted:?}"
        );
    }
}

#[test]
fn a_setuid_exec_is_named_and_no_new_privs_is_seen_to_stop_one() {
    if !privileged("a_setuid_exec_is_named_and_no_new_privs_is_seen_to_stop_one") {
        return;
    }
    let dir = Dir::new("caps-suid");
    // World-executable, setuid to uid 1000: run by uid 2000, the exec changes its euid.
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let suid = dir.0.join("suid-sysloop");
    std::fs::copy(SYSLOOP, &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let suid = suid.to_str().unwrap();
    let snap = record("suid", &[SYSLOOP, "drop", "2000", suid, "getppid", "1"]);
    let exec = snap.privileged_execs.get(suid).copied().unwrap_or_default();
    assert!(
        exec.gained && !exec.setid_stopped,
        "{:?}",
        snap.privileged_execs
    );
    // Under no_new_privs the same exec keeps uid 2000, and that is seen.
    let snap = record(
        "suid-nnp",
        &[
            SYSLOOP, "drop", "2000", SYSLOOP, "nnp", suid, "getppid", "1",
        ],
    );
    let exec = snap.privileged_execs.get(suid).copied().unwrap_or_default();
    assert!(
        !exec.gained && exec.setid_stopped,
        "{:?}",
        snap.privileged_execs
    );
    // A plain exec is neither.
    assert_eq!(
        snap.privileged_execs.len(),
        1,
        "{:?}",
        snap.privileged_execs
    );
}

#[test]
fn a_write_a_read_only_filesystem_refuses_is_named_by_its_path_while_verifying() {
    if !privileged("a_write_a_read_only_filesystem_refuses_is_named_by_its_path_while_verifying") {
        return;
    }
    let dir = Dir::new("caps-erofs");
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let target = c(dir.0.to_str().unwrap());
    // SAFETY: valid NUL-terminated strings; a read-only tmpfs over the scratch directory.
    let rc = unsafe {
        libc::mount(
            c("none").as_ptr(),
            target.as_ptr(),
            c("tmpfs").as_ptr(),
            libc::MS_RDONLY,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let inside = dir.0.join("x");
    let snap = record_in(
        "erofs",
        Mode::Verify,
        &[SYSLOOP, "mkdir", inside.to_str().unwrap()],
        false,
    );
    // SAFETY: unmounts what this test mounted.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    let write = snap
        .read_only_writes
        .get(inside.to_str().unwrap())
        .unwrap_or_else(|| panic!("{:?}", snap.read_only_writes));
    assert_eq!(Abi::X86_64.name(write.nr), Some("mkdir"));
    assert_eq!(write.program, "sysloop");
}
