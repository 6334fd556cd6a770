//! `profile train` under faults: a Docker daemon that stalls, restarts or outlives a killed
//! `profile`, and signals during verification. The daemon tests run their own dockerd
//! ([`PrivateDaemon`]), so that stalling and restarting it disturbs no one else.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use profile_tests::{
    PRIVATE_IMAGE, PrivateDaemon, Scratch, Transcript, allowed_names, container_exists,
    container_name, docker, poll, privileged, profile_bin, report, test_image, wait_until,
};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Waits for `child` at most `limit`; None if it still runs (then it is killed).
fn wait_at_most(mut child: Child, limit: Duration) -> Option<std::process::Output> {
    if poll(limit, || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    child.wait_with_output().ok()
}

/// Waits until `name`'s workload runs `program` (its earlier commands are done, and recorded).
fn wait_running_program(
    docker: &dyn Fn(&[&str]) -> std::process::Output,
    name: &str,
    program: &str,
) {
    wait_until(
        &format!("{name} running {program}"),
        Duration::from_secs(30),
        || {
            let top = docker(&["top", name]);
            String::from_utf8_lossy(&top.stdout)
                .contains(program)
                .then_some(())
        },
    );
}

/// `profile train` of the private image, `-q`, with a report, talking to `daemon`.
fn spawn_train(daemon: &PrivateDaemon, dir: &Scratch, name: &str, cmd: &[&str]) -> Child {
    daemon
        .profile()
        .args([
            "train",
            "--image",
            PRIVATE_IMAGE,
            "-q",
            "--name",
            name,
            "-o",
        ])
        .arg(dir.path(&format!("{name}.profile.json")))
        .arg("--report")
        .arg(dir.path(&format!("{name}.json")))
        .arg("--")
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting profile")
}

/// `profile train [FLAGS] -o DIR/NAME.json -- true` against `daemon`, to completion.
fn train_true(
    daemon: &PrivateDaemon,
    dir: &Scratch,
    name: &str,
    flags: &[&str],
) -> std::process::Output {
    daemon
        .profile()
        .args(["train", "--image", PRIVATE_IMAGE, "-q"])
        .args(flags)
        .arg("-o")
        .arg(dir.path(&format!("{name}.json")))
        .args(["--", "true"])
        .output()
        .expect("running profile")
}

/// The test's own daemon and scratch directory, or None when the test can't run here.
fn private(test: &str, tag: &str) -> Option<(PrivateDaemon, Scratch)> {
    privileged(test).then(|| (PrivateDaemon::start(tag), Scratch::new(tag)))
}

#[test]
fn a_second_signal_ends_profile_while_the_daemon_is_stalled() {
    let Some((mut daemon, dir)) = private(
        "a_second_signal_ends_profile_while_the_daemon_is_stalled",
        "stall",
    ) else {
        return;
    };
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let name = format!("stalled-{sig}");
        let mut child = spawn_train(&daemon, &dir, &name, &["sh", "-c", "ls /; sleep 60"]);
        let mut said = Transcript::of(&mut child);
        daemon.wait_running(&name);
        wait_running_program(&|args| daemon.docker(args), &name, "sleep 60");
        let (out, after_second) = {
            let _stalled = daemon.stall();
            signal(&child, sig);
            // The first signal asks the stalled daemon to kill the container: no answer comes.
            said.wait_for("interrupted: stopping container", Duration::from_secs(10));
            signal(&child, sig);
            let second = Instant::now();
            (
                wait_at_most(child, Duration::from_secs(10)),
                second.elapsed(),
            )
        };
        let text = said.all();
        let out = out.unwrap_or_else(|| {
            panic!("profile still ran 10 s after the second signal (signal {sig}):\n{text}")
        });
        assert_eq!(out.status.code(), Some(code), "{text}");
        assert!(after_second < Duration::from_secs(3), "{after_second:?}");
        assert!(text.contains("may be left behind"), "{text}");
        assert!(text.contains(&name), "{text}");
        // What was recorded before is written, marked partial.
        let rep = report(&dir.path(&format!("{name}.json")));
        assert_eq!(rep["complete"], false);
        assert!(allowed_names(&dir.path(&format!("{name}.profile.json"))).contains("getdents64"));
        eprintln!("signal {sig}: profile ended {after_second:?} after the second one");
    }
    // The next profile removes what the abandoned runs left.
    let out = train_true(&daemon, &dir, "next", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        assert!(!daemon.has_container(&format!("stalled-{sig}")));
    }
    daemon.terminate();
}

#[test]
fn a_killed_train_leaves_its_container_to_the_next_profile() {
    let Some((daemon, dir)) = private(
        "a_killed_train_leaves_its_container_to_the_next_profile",
        "killed",
    ) else {
        return;
    };
    // A container kept on purpose outlives its owner and is never taken for a leftover.
    let out = train_true(&daemon, &dir, "kept", &["--keep", "--name", "kept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let name = "killed-train";
    let child = spawn_train(&daemon, &dir, name, &["sleep", "60"]);
    daemon.wait_running(name);
    signal(&child, libc::SIGKILL);
    let _ = wait_at_most(child, Duration::from_secs(10));
    assert!(daemon.has_container(name), "nothing was left to clean up");

    let out = train_true(&daemon, &dir, "next", &[]);
    let text = stderr(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "removed container {name}, left behind by profile process"
        )),
        "{text}"
    );
    assert!(!daemon.has_container(name), "the leftover is still there");
    assert!(daemon.has_container("kept"), "a kept container was removed");
}

#[test]
fn a_daemon_restart_mid_training_is_reported_as_such() {
    let Some((mut daemon, dir)) = private(
        "a_daemon_restart_mid_training_is_reported_as_such",
        "restart",
    ) else {
        return;
    };
    let name = "restarted";
    let child = spawn_train(&daemon, &dir, name, &["sh", "-c", "ls /; exec sleep 30"]);
    daemon.wait_running(name);
    wait_running_program(&|args| daemon.docker(args), name, "sleep 30");
    // dockerd's shutdown stops the container (sleep as pid 1 ignores SIGTERM: SIGKILL, 137).
    daemon.terminate();
    daemon.restart();
    let out = wait_at_most(child, Duration::from_secs(60)).expect("profile never ended");
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("the Docker daemon went away"), "{text}");
    let rep = report(&dir.path(&format!("{name}.json")));
    assert_eq!(rep["complete"], false);
    assert_eq!(rep["stopped_by"], "daemon_lost");
    assert_eq!(rep["exit_code"], serde_json::Value::Null);
    assert!(
        rep["warnings"]
            .to_string()
            .contains("the Docker daemon went away"),
        "{}",
        rep["warnings"]
    );
    assert!(!text.contains("workload exited 137"), "{text}");
    assert!(!daemon.has_container(name), "container left behind");
}

#[test]
fn a_signal_during_verification_still_writes_the_trained_profile() {
    if !privileged("a_signal_during_verification_still_writes_the_trained_profile") {
        return;
    }
    let dir = Scratch::new("verify-term");
    let name = container_name("verify-term");
    let profile = dir.path("p.json");
    let report_path = dir.path("r.json");
    let mut child = Command::new(profile_bin())
        .args([
            "train",
            "--image",
            test_image(),
            "-q",
            "--verify",
            "--name",
            &name,
        ])
        .arg("-o")
        .arg(&profile)
        .arg("--report")
        .arg(&report_path)
        .args(["--", "sh", "-c", "ls /; sleep 2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let verifying = format!("{name}-verify");
    // Once its `ls` is done (recorded under enforcement), the verification is under way.
    wait_until("the verification running", Duration::from_secs(60), || {
        if let Ok(Some(status)) = child.try_wait() {
            let mut text = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut text);
            }
            panic!("profile ended before the verification ran: {status}\n{text}");
        }
        let top = docker(&["top", &verifying]);
        String::from_utf8_lossy(&top.stdout)
            .contains("sleep 2")
            .then_some(())
    });
    signal(&child, libc::SIGTERM);
    let out = wait_at_most(child, Duration::from_secs(30)).expect("profile never ended");
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(
        Path::new(&profile).exists(),
        "the trained profile was not written"
    );
    assert!(allowed_names(&profile).contains("getdents64"));
    let rep = report(&report_path);
    assert_eq!(rep["complete"], true, "training itself finished");
    assert_eq!(rep["verification"], "interrupted");
    assert_eq!(rep["verified"], serde_json::Value::Null);
    assert!(
        rep["warnings"]
            .to_string()
            .contains("verification interrupted")
    );
    assert!(
        !container_exists(&verifying),
        "verification container left behind"
    );
}
