//! `profile train` against the real Docker Engine and kernel: the learned profile runs the
//! workload under enforcement, denies what it never did, counts exactly, and records only the
//! workload (never the runtime's setup, never another container).
use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use profile_tests::{
    Scratch, allowed_names, container_exists, container_name, count, docker, free_port, privileged,
    profile_bin, report, run_under, runtime_line, syscall_line, test_image, test_image_stem, train,
    wait_until,
};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        stderr(out)
    );
}

/// The calls runc makes while setting up a container, before its filter exists.
const RUNTIME_SETUP: &[&str] = &[
    "mount",
    "pivot_root",
    "keyctl",
    "sethostname",
    "unshare",
    "umount2",
];

#[test]
fn trained_profile_runs_the_workload_and_denies_the_rest() {
    if !privileged("trained_profile_runs_the_workload_and_denies_the_rest") {
        return;
    }
    let dir = Scratch::new("train-ls");
    let cmd = ["sh", "-c", "ls /; sysloop getsid 7; echo hi"];
    let (profile, rep, out) = train(&dir, "ls", &[], &cmd);
    assert_ok(&out, "train");
    let rep = rep.expect("report");
    assert_eq!(rep["exit_code"], 0);
    assert_eq!(rep["complete"], true);
    // A call neither runc nor busybox makes: the workload's own, counted exactly.
    assert_eq!(count(&rep, "getsid"), 7);
    assert_eq!(syscall_line(&rep, "getsid")["first_program"], "sysloop");

    // Same output, exit 0, under enforcement.
    let reference = run_under(None, &cmd);
    assert_ok(&reference, "docker run with Docker's default");
    let enforced = run_under(Some(&profile), &cmd);
    assert_ok(&enforced, "docker run under the learned profile");
    assert_eq!(enforced.stdout, reference.stdout);
    assert!(String::from_utf8_lossy(&enforced.stdout).contains("hi"));

    // A syscall the workload never made: EPERM, and nothing created.
    assert!(!allowed_names(&profile).contains("mkdir"));
    let denied = run_under(Some(&profile), &["sh", "-c", "mkdir /tmp/x; ls -d /tmp/x"]);
    let text = stderr(&denied);
    assert!(
        text.contains("mkdir: can't create directory '/tmp/x': Operation not permitted"),
        "{text}"
    );
    assert!(!denied.status.success());
}

#[test]
fn the_runtime_setup_is_never_granted() {
    if !privileged("the_runtime_setup_is_never_granted") {
        return;
    }
    let dir = Scratch::new("train-setup");
    let cmd = ["sh", "-c", "ls /; echo hi"];
    let (profile, plain, out) = train(&dir, "ls", &[], &cmd);
    assert_ok(&out, "train");
    let names = allowed_names(&profile);
    // What the workload was seen making (the profile allows the runtime's set beside it).
    let seen = plain.expect("report")["syscalls"]
        .as_array()
        .expect("syscalls")
        .len();
    for call in RUNTIME_SETUP {
        assert!(!names.contains(*call), "{call} granted");
    }
    // Counting the whole cgroup sees runc's setup: proof the calls happen, and are excluded above.
    let (all, rep, out) = train(&dir, "all", &["--all-syscalls"], &cmd);
    assert_ok(&out, "train --all-syscalls");
    let rep = rep.expect("report");
    let observed = rep["syscalls"].as_array().expect("syscalls").len();
    assert!(observed > seen + 20, "{observed} vs {seen}");
    assert_eq!(rep["mode"], "all_syscalls");
    // Even then the profile stays within its base: the setup calls are seen, not granted.
    let all_names = allowed_names(&all);
    let not_learned = rep["not_learned"].to_string();
    for call in ["mount", "pivot_root", "sethostname", "umount2"] {
        assert!(count(&rep, call) > 0, "{call} not observed");
        assert!(!all_names.contains(call), "{call} granted");
        assert!(not_learned.contains(call), "{call}: {not_learned}");
    }
}

#[test]
fn a_container_that_exits_at_once_is_recorded_in_full() {
    if !privileged("a_container_that_exits_at_once_is_recorded_in_full") {
        return;
    }
    let dir = Scratch::new("train-true");
    // No -o: the default path is profiles/<image>-<tag>.json under the working directory.
    let out = Command::new(profile_bin())
        .args(["train", "--image", test_image(), "--", "true"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_ok(&out, "train true");
    let profile = dir.path(&format!("profiles/{}.json", test_image_stem()));
    let names = allowed_names(&profile);
    for call in ["execve", "exit_group"] {
        assert!(names.contains(call), "{call} missing: {names:?}");
    }
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("workload exited 0"), "{report}");
    assert_ok(
        &run_under(Some(&profile), &["true"]),
        "true under its profile",
    );
}

#[test]
fn counts_in_a_container_are_exact() {
    if !privileged("counts_in_a_container_are_exact") {
        return;
    }
    let dir = Scratch::new("train-exact");
    let (_, rep, out) = train(&dir, "loop", &[], &["sysloop", "getppid", "1000003"]);
    assert_ok(&out, "train sysloop");
    let rep = rep.expect("report");
    assert_eq!(count(&rep, "getppid"), 1_000_003);
    assert_eq!(syscall_line(&rep, "getppid")["first_program"], "sysloop");
    // runc's init checks its parent once (getppid) after the filter is in place, before the
    // exec that hands over: the runtime's call, counted apart from the workload's.
    let runtime = runtime_line(&rep, "getppid");
    assert_eq!(runtime["count"], 1);
    assert_eq!(runtime["first_program"], "runc:[2:INIT]");
    let (_, base, out) = train(&dir, "zero", &[], &["sysloop", "getppid", "0"]);
    assert_ok(&out, "train sysloop 0");
    let base = base.expect("report");
    assert_eq!(count(&base, "getppid"), 0);
    assert_eq!(runtime_line(&base, "getppid")["count"], 1);
}

#[test]
fn a_noisy_neighbour_does_not_leak_in() {
    if !privileged("a_noisy_neighbour_does_not_leak_in") {
        return;
    }
    let dir = Scratch::new("train-noisy");
    let noisy = container_name("noisy");
    let _ = docker(&["rm", "-f", &noisy]);
    let started = docker(&[
        "run",
        "-d",
        "--name",
        &noisy,
        test_image(),
        "sh",
        "-c",
        "sysloop getpid 1000000000 & while :; do mkdir /tmp/n; rmdir /tmp/n; done",
    ]);
    assert_ok(&started, "noisy container");
    wait_until(
        "the neighbour making noise",
        Duration::from_secs(30),
        || {
            let top = docker(&["top", &noisy]);
            String::from_utf8_lossy(&top.stdout)
                .contains("sysloop getpid")
                .then_some(())
        },
    );
    let (profile, rep, out) = train(&dir, "quiet", &[], &["sh", "-c", "ls /; sleep 1"]);
    let still_running = docker(&["inspect", "-f", "{{.State.Running}}", &noisy]);
    let _ = docker(&["rm", "-f", &noisy]);
    assert_ok(&out, "train beside the noisy container");
    assert_eq!(
        String::from_utf8_lossy(&still_running.stdout).trim(),
        "true"
    );
    let rep = rep.expect("report");
    for call in ["mkdir", "rmdir"] {
        assert_eq!(count(&rep, call), 0, "{call} leaked in");
        assert!(!allowed_names(&profile).contains(call));
    }
    assert!(
        count(&rep, "getpid") < 10,
        "getpid {}",
        count(&rep, "getpid")
    );
}

#[test]
fn an_exercise_client_and_docker_exec_are_recorded() {
    if !privileged("an_exercise_client_and_docker_exec_are_recorded") {
        return;
    }
    let dir = Scratch::new("train-exercise");
    let name = container_name("web");
    let port = free_port();
    let seen_name = dir.path("name.txt");
    let exercise = format!(
        "set -e; i=0; until busybox wget -q -O /dev/null http://127.0.0.1:{port}/; do \
           i=$((i+1)); [ $i -lt 100 ]; sleep 0.1; done; \
         busybox wget -q -O - http://127.0.0.1:{port}/ | grep -q 'hello from the test image'; \
         docker exec \"$PROFILE_CONTAINER_ID\" mkdir /tmp/from-exec; \
         echo \"$PROFILE_CONTAINER_NAME\" > {}",
        seen_name.display()
    );
    let publish = format!("127.0.0.1:{port}:8080");
    let (profile, rep, out) = train(
        &dir,
        "web",
        &["--name", &name, "-p", &publish, "--exercise", &exercise],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    assert_ok(&out, "train with --exercise");
    let rep = rep.expect("report");
    assert_eq!(rep["stopped_by"], "exercise");
    assert_eq!(
        std::fs::read_to_string(&seen_name).unwrap().trim(),
        name.as_str()
    );
    // The server's side of the requests.
    assert!(
        count(&rep, "accept") >= 2,
        "accept {}",
        count(&rep, "accept")
    );
    assert!(count(&rep, "sendfile") >= 2);
    // The process docker exec started.
    assert_eq!(count(&rep, "mkdir"), 1);
    let mkdir = syscall_line(&rep, "mkdir");
    assert_eq!(mkdir["first_program"], "mkdir");
    assert!(allowed_names(&profile).contains("mkdir"));
    assert!(!container_exists(&name), "container left behind");
}

#[test]
fn failures_are_reported_and_still_write_the_profile() {
    if !privileged("failures_are_reported_and_still_write_the_profile") {
        return;
    }
    let dir = Scratch::new("train-fail");
    let (profile, rep, out) = train(&dir, "exit3", &[], &["sh", "-c", "ls /; exit 3"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(profile.exists());
    let rep = rep.expect("report");
    assert_eq!(rep["exit_code"], 3);
    assert!(rep["warnings"].to_string().contains("exited 3"));

    let (profile, rep, out) = train(
        &dir,
        "exercise",
        &["--exercise", "exit 4"],
        &["sleep", "30"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(profile.exists());
    let rep = rep.expect("report");
    assert_eq!(rep["stopped_by"], "exercise");
    assert!(
        rep["warnings"]
            .to_string()
            .contains("exercise command failed (exit 4)")
    );
}

#[test]
fn duration_stops_the_container() {
    if !privileged("duration_stops_the_container") {
        return;
    }
    let dir = Scratch::new("train-duration");
    let name = container_name("duration");
    let started = Instant::now();
    let (_, rep, out) = train(
        &dir,
        "sleep",
        &["--duration", "1s", "--stop-timeout", "1", "--name", &name],
        &["sleep", "60"],
    );
    assert_ok(&out, "train --duration");
    let rep = rep.expect("report");
    assert_eq!(rep["stopped_by"], "duration");
    // sleep runs as PID 1, which ignores SIGTERM: 1 s of recording, 1 s until SIGKILL.
    let recorded = rep["duration_seconds"].as_f64().expect("duration_seconds");
    assert!((2.0..3.5).contains(&recorded), "recorded for {recorded} s");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(count(&rep, "nanosleep") + count(&rep, "clock_nanosleep") >= 1);
    assert!(!container_exists(&name));
}

#[test]
fn ctrl_c_removes_the_container_and_writes_a_partial_profile() {
    if !privileged("ctrl_c_removes_the_container_and_writes_a_partial_profile") {
        return;
    }
    let dir = Scratch::new("train-interrupt");
    let name = container_name("interrupt");
    let profile = dir.path("p.json");
    let report_path = dir.path("r.json");
    let mut child = Command::new(profile_bin())
        .args(["train", "--image", test_image(), "--name", &name, "-o"])
        .arg(&profile)
        .arg("--report")
        .arg(&report_path)
        .args([
            "--",
            "sh",
            "-c",
            "sysloop getsid 5 && echo ready && sleep 60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The container's output comes to profile's stderr: interrupt once the workload is ready.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line == "ready" {
            break;
        }
    }
    assert!(
        seen.ends_with("ready\n"),
        "the workload never got ready: {seen}"
    );
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{}", rest.join("\n"));
    assert!(!container_exists(&name), "container left behind");
    let rep = report(&report_path);
    assert_eq!(rep["complete"], false);
    assert_eq!(rep["stopped_by"], "interrupted");
    assert_eq!(count(&rep, "getsid"), 5, "what ran before Ctrl-C is kept");
    assert!(allowed_names(&profile).contains("getsid"));
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    if !privileged("bad_input_is_refused_before_anything_runs") {
        return;
    }
    let dir = Scratch::new("train-bad");
    let p = dir.path("p.json");
    let p = p.to_str().unwrap();

    let out = profile_tests::profile(&["train", "--image", "no-such-image-here:1", "-o", p]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("image no-such-image-here:1 is not present locally"),
        "{}",
        stderr(&out)
    );
    assert!(!std::path::Path::new(p).exists());

    let out = Command::new(profile_bin())
        .args(["train", "--image", test_image(), "-o", p, "--", "true"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unix:///nonexistent/docker.sock (DOCKER_HOST)"),
        "{}",
        stderr(&out)
    );

    let name = container_name("unwritable");
    let out = profile_tests::profile(&[
        "train",
        "--image",
        test_image(),
        "--name",
        &name,
        "-o",
        "/proc/no/such/dir/p.json",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/proc/no/such/dir"),
        "{}",
        stderr(&out)
    );
    assert!(!container_exists(&name), "a container was created");

    // A port alone is Docker's random host port; one beyond 65535 is no port.
    let out = profile_tests::profile(&["train", "--image", test_image(), "-o", p, "-p", "8:99999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("[[IP:]HOST_PORT:]CONTAINER_PORT"));

    // A command the image doesn't have: the start fails, nothing is written.
    let out =
        profile_tests::profile(&["train", "--image", test_image(), "-o", p, "--", "/no/such"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("starting the container"),
        "{}",
        stderr(&out)
    );
    assert!(!std::path::Path::new(p).exists());
}

#[test]
fn progress_is_shown_on_a_terminal_only() {
    if !privileged("progress_is_shown_on_a_terminal_only") {
        return;
    }
    let dir = Scratch::new("train-progress");
    let p = dir.path("p.json");
    let cmd = format!(
        "{} train --image {} -q -o {} -- sleep 1.5",
        profile_bin().display(),
        test_image(),
        p.display()
    );
    // script(1) gives the command a terminal.
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert_ok(&out, "train on a terminal");
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(
        shown
            .lines()
            .any(|l| l.contains("training") && l.contains("distinct syscalls")),
        "{shown}"
    );
    let (_, _, out) = train(&dir, "piped", &[], &["sleep", "1.5"]);
    assert_ok(&out, "train into a pipe");
    assert!(!stderr(&out).contains("distinct syscalls"));
}
