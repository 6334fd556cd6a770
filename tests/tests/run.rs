//! `profile run` on the real kernel: exact counts, isolation, runtime-awareness, enforcement.
use std::{process::Command, thread, time::Duration};

use profile_tests::{
    SYSLOOP, Scratch, allowed_names, count, privileged, profile, profile_ok, record, report,
    syscall_line, wait_until,
};

#[test]
fn counts_are_exact() {
    if !privileged("counts_are_exact") {
        return;
    }
    let dir = Scratch::new("exact");
    let rep = record(&dir, "r1", &[], &["getppid", "1000003"]);
    assert_eq!(count(&rep, "getppid"), 1_000_003);
    assert_eq!(count(&rep, "exit_group"), 1);
    assert_eq!(count(&rep, "execve"), 1);
    assert_eq!(rep["complete"], true);
    let first = syscall_line(&rep, "getppid");
    assert_eq!(first["first_program"], "sysloop");
}

/// Waits until process `pid` runs under a seccomp filter (`Seccomp: 2` in its status).
fn wait_for_filter(pid: u32) {
    wait_until(
        &format!("{pid} installing its filter"),
        Duration::from_secs(10),
        || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status.lines().any(|l| l == "Seccomp:\t2").then_some(())
        },
    );
}

#[test]
fn processes_outside_the_cgroup_are_not_counted() {
    if !privileged("processes_outside_the_cgroup_are_not_counted") {
        return;
    }
    let dir = Scratch::new("bystander");
    let r = dir.path("r.json");
    // The same syscall, at the same time, from outside the recorded cgroup, under a seccomp
    // filter of its own: only the cgroup check can leave it out.
    let mut bystander = Command::new(SYSLOOP)
        .args(["tsync", "1", "1000000000"])
        .spawn()
        .unwrap();
    wait_for_filter(bystander.id());
    profile_ok(&[
        "run",
        "-o",
        dir.path("p.json").to_str().unwrap(),
        "--report",
        r.to_str().unwrap(),
        "--",
        SYSLOOP,
        "getppid",
        "200000",
    ]);
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "bystander must overlap the recording"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    assert_eq!(count(&report(&r), "getppid"), 200_000);
}

#[test]
fn threads_and_children_are_counted() {
    if !privileged("threads_and_children_are_counted") {
        return;
    }
    let dir = Scratch::new("threads");
    let rep = record(&dir, "r2", &[], &["threads", "4", "25000"]);
    assert_eq!(count(&rep, "getppid"), 100_000);
    assert_eq!(count(&rep, "clone3") + count(&rep, "clone"), 4);

    let rep = record(&dir, "r3", &[], &["fork", "3", "10000"]);
    assert_eq!(count(&rep, "getppid"), 30_000);
    assert_eq!(
        count(&rep, "exit_group"),
        4,
        "the parent and its three children"
    );
}

/// A process that installs its own filter: counting starts at the install, for every thread
/// the filter is synchronised to (TSYNC), and a failed install (runc's probe) is not one.
#[test]
fn counting_starts_at_the_tasks_own_install() {
    use tracer::{
        cgroup::OwnedCgroup,
        launch,
        recorder::{Mode, Recorder},
    };
    if !privileged("counting_starts_at_the_tasks_own_install") {
        return;
    }
    let recorder = Recorder::load().expect("recorder loads");
    let argv: Vec<String> = [SYSLOOP, "tsync", "3", "20000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let run = |mode| {
        let cg =
            OwnedCgroup::create(&format!("profile-test-tsync-{}", std::process::id())).unwrap();
        let recording = recorder.watch_cgroup(cg.id(), mode, false).unwrap();
        let mut child = launch::spawn(&argv, Some(&cg.procs_path()), None, false).unwrap();
        assert!(child.wait().unwrap().success());
        let snap = recorder.finish(recording).unwrap();
        let count = |name: &str| {
            snap.syscalls
                .iter()
                .find(|(id, _)| id.name() == name)
                .map_or(0, |(_, o)| o.count)
        };
        (count("getppid"), count("getpid"), count("seccomp"))
    };
    assert_eq!(run(Mode::UnderFilter), (60_000, 0, 0));
    assert_eq!(run(Mode::AllSyscalls), (60_000, 4, 2));
}

#[test]
fn calls_before_the_filter_install_are_not_counted() {
    if !privileged("calls_before_the_filter_install_are_not_counted") {
        return;
    }
    let dir = Scratch::new("prefilter");
    // The launcher joins the cgroup (write) and installs the filter (prctl) before exec;
    // the workload itself never calls prctl.
    let rep = record(&dir, "r4", &[], &["getppid", "10"]);
    assert_eq!(count(&rep, "prctl"), 0);
    assert_eq!(rep["mode"], "under_filter");
    assert!(!allowed_names(&dir.path("r4.profile.json")).contains("prctl"));

    let rep = record(&dir, "r5", &["--all-syscalls"], &["getppid", "10"]);
    assert_eq!(rep["mode"], "all_syscalls");
    assert_eq!(
        count(&rep, "prctl"),
        1,
        "the install itself, seen cgroup-wide"
    );
    assert_eq!(count(&rep, "getppid"), 10);
}

#[test]
fn concurrent_recordings_stay_separate() {
    if !privileged("concurrent_recordings_stay_separate") {
        return;
    }
    let dir = Scratch::new("concurrent");
    let (pa, pb) = (dir.path("a"), dir.path("b"));
    let (pa, pb) = (pa.to_str().unwrap(), pb.to_str().unwrap());
    // Each workload waits for the other to start before its calls and for the other's calls
    // to end before it exits (or fails): the two recordings provably overlap.
    let (a, b) = thread::scope(|scope| {
        let a = scope.spawn(|| record(&dir, "a", &[], &["meet", "getppid", "400000", pa, pb]));
        let b = scope.spawn(|| record(&dir, "b", &[], &["meet", "getpid", "300000", pb, pa]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((count(&a, "getppid"), count(&a, "getpid")), (400_000, 0));
    assert_eq!((count(&b, "getppid"), count(&b, "getpid")), (0, 300_000));
}

#[test]
fn one_recorder_keeps_slots_apart() {
    if !privileged("one_recorder_keeps_slots_apart") {
        return;
    }
    use tracer::{
        cgroup::OwnedCgroup,
        launch,
        recorder::{Mode, Recorder},
    };
    let recorder = Recorder::load_for(2).expect("load recorder");
    let runs = [("getppid", 111_111u64, 110u32), ("getpid", 222_222, 39)];
    let mut live = Vec::new();
    for (i, (call, n, _)) in runs.iter().enumerate() {
        let cg =
            OwnedCgroup::create(&format!("profile-test-slots-{}-{i}", std::process::id())).unwrap();
        let rec = recorder
            .watch_cgroup(cg.id(), Mode::UnderFilter, false)
            .unwrap();
        let argv = [SYSLOOP.to_string(), call.to_string(), n.to_string()];
        let child = launch::spawn(
            &argv,
            Some(&cg.procs_path()),
            Some(launch::allow_all()),
            false,
        )
        .unwrap();
        live.push((cg, rec, child));
    }
    for ((_, n, nr), (cg, rec, mut child)) in runs.iter().zip(live) {
        assert!(child.wait().unwrap().success());
        let snap = recorder.finish(rec).unwrap();
        drop(cg);
        let counted: Vec<_> = snap
            .syscalls
            .iter()
            .filter(|(id, _)| id.nr == 110 || id.nr == 39)
            .map(|(id, o)| (id.nr, o.count))
            .collect();
        assert_eq!(counted, [(*nr, *n)]);
    }
}

#[test]
fn a_reused_slot_counts_nothing_of_the_cgroup_it_watched_before() {
    if !privileged("a_reused_slot_counts_nothing_of_the_cgroup_it_watched_before") {
        return;
    }
    use tracer::{
        cgroup::OwnedCgroup,
        launch,
        recorder::{Mode, Recorder},
    };
    // One slot: the second recording takes the first one's, whose task still loops on
    // getppid (each CPU remembers where that task's calls went).
    let recorder = Recorder::load_for(1).expect("load recorder");
    let pid = std::process::id();
    let first = OwnedCgroup::create(&format!("profile-test-reuse-{pid}-a")).unwrap();
    let rec = recorder
        .watch_cgroup(first.id(), Mode::UnderFilter, false)
        .unwrap();
    let argv = [SYSLOOP.to_string(), "getppid".into(), "2000000000".into()];
    let mut looping = launch::spawn(
        &argv,
        Some(&first.procs_path()),
        Some(launch::allow_all()),
        false,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let before = recorder.finish(rec).unwrap();
    assert!(
        count_of(&before, 110) > 0,
        "the loop was counted while watched"
    );
    let second = OwnedCgroup::create(&format!("profile-test-reuse-{pid}-b")).unwrap();
    let rec = recorder
        .watch_cgroup(second.id(), Mode::UnderFilter, false)
        .unwrap();
    let argv = [SYSLOOP.to_string(), "getpid".into(), "1000".into()];
    let mut child = launch::spawn(
        &argv,
        Some(&second.procs_path()),
        Some(launch::allow_all()),
        false,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let after = recorder.finish(rec).unwrap();
    let _ = looping.kill();
    let _ = looping.wait();
    assert_eq!(count_of(&after, 39), 1000);
    assert_eq!(
        count_of(&after, 110),
        0,
        "the first cgroup's loop leaked in"
    );
}

/// How often native call `nr` was recorded.
fn count_of(snap: &tracer::recorder::Snapshot, nr: u32) -> u64 {
    snap.syscalls
        .iter()
        .filter(|(id, _)| id.nr == nr && id.abi == tracer::names::Abi::X86_64)
        .map(|(_, o)| o.count)
        .sum()
}

#[test]
fn the_profile_runs_the_workload_and_denies_the_rest() {
    if !privileged("the_profile_runs_the_workload_and_denies_the_rest") {
        return;
    }
    let dir = Scratch::new("enforce");
    let p = dir.path("p.json");
    profile_ok(&[
        "run",
        "-o",
        p.to_str().unwrap(),
        "--",
        SYSLOOP,
        "getppid",
        "1000",
    ]);
    profile_ok(&[
        "exec",
        "--profile",
        p.to_str().unwrap(),
        "--",
        SYSLOOP,
        "getppid",
        "1000",
    ]);
    let target = dir.path("never-made");
    let out = profile(&[
        "exec",
        "--profile",
        p.to_str().unwrap(),
        "--",
        SYSLOOP,
        "mkdir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(libc::EPERM),
        "mkdir must fail with EPERM"
    );
    assert!(!target.exists());
    // Trained on mkdir, mkdir works.
    let pm = dir.path("pm.json");
    profile_ok(&[
        "run",
        "-o",
        pm.to_str().unwrap(),
        "--",
        SYSLOOP,
        "mkdir",
        dir.path("a").to_str().unwrap(),
    ]);
    profile_ok(&[
        "exec",
        "--profile",
        pm.to_str().unwrap(),
        "--",
        SYSLOOP,
        "mkdir",
        dir.path("b").to_str().unwrap(),
    ]);
    assert!(dir.path("b").is_dir());
}

#[test]
fn bad_input_fails_cleanly() {
    if !privileged("bad_input_fails_cleanly") {
        return;
    }
    let dir = Scratch::new("badinput");
    let p = dir.path("p.json");
    let out = profile(&["run", "-o", p.to_str().unwrap(), "--", "/no/such/command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("command not found"));
    assert!(!p.exists(), "no profile for a command that never ran");

    let marker = dir.path("ran");
    let out = profile(&[
        "run",
        "-o",
        "/proc/no-such-dir/p.json",
        "--",
        SYSLOOP,
        "mkdir",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !marker.exists(),
        "the command must not run when the output can't be written"
    );
}

#[test]
fn the_commands_exit_status_is_passed_through() {
    if !privileged("the_commands_exit_status_is_passed_through") {
        return;
    }
    let dir = Scratch::new("status");
    let p = dir.path("p.json");
    let out = profile(&["run", "-o", p.to_str().unwrap(), "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    assert!(p.exists(), "the profile is still written");
    let p = dir.path("killed.json");
    let out = profile(&[
        "run",
        "-o",
        p.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "kill -TERM $$",
    ]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGTERM));
    assert!(p.exists(), "the profile is still written");
}

/// The name match the kernel side does at cgroup creation, for both Docker cgroup drivers:
/// `<parent>/docker/<id>` (cgroupfs) and `<parent>/system.slice/docker-<id>.scope` (systemd).
/// The cgroups are created here, nested, after the recording starts; a process that joins one
/// is recorded from its first syscall under the filter.
#[test]
fn cgroups_are_watched_by_name_from_creation() {
    use tracer::{
        cgroup, launch,
        recorder::{Mode, Recorder},
    };
    if !privileged("cgroups_are_watched_by_name_from_creation") {
        return;
    }
    let recorder = Recorder::load().expect("recorder loads");
    let root = cgroup::unified_root().expect("unified hierarchy");
    let parent = root.join(format!("profile-test-names-{}", std::process::id()));
    for (layout, calls) in [("cgroupfs", 1234u64), ("systemd", 4321)] {
        let id = format!("{:064x}", 0xc0ffee_u64 + calls);
        let scope = format!("docker-{id}.scope");
        let recording = recorder
            .watch_cgroup_named(&[&id, &scope], Mode::UnderFilter, false)
            .unwrap();
        let dir = match layout {
            "cgroupfs" => parent.join("docker").join(&id),
            _ => parent.join("system.slice").join(&scope),
        };
        std::fs::create_dir_all(&dir).unwrap();
        let argv: Vec<String> = [SYSLOOP, "getppid", &calls.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut child = launch::spawn(
            &argv,
            Some(&dir.join("cgroup.procs")),
            Some(launch::allow_all()),
            false,
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
        let snap = recorder.finish(recording).unwrap();
        let getppid = snap
            .syscalls
            .iter()
            .find(|(id, _)| id.name() == "getppid")
            .map(|(_, o)| o.count);
        assert_eq!(getppid, Some(calls), "{layout}");
        assert_eq!(snap.cgroups, vec![cgroup::id_of(&dir).unwrap()], "{layout}");
        std::fs::remove_dir(&dir).unwrap();
    }
    for sub in ["docker", "system.slice", ""] {
        let _ = std::fs::remove_dir(parent.join(sub));
    }
}
