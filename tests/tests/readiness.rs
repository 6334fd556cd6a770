//! The exercise starts when the container is ready (its published ports answer, or Docker
//! calls it healthy), gets the host ports in its environment, and is ended whole when
//! `--duration` cuts it off.
use std::time::{Duration, Instant};

use profile_tests::{
    Scratch, container_exists, container_name, count, free_port, privileged, train,
};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server that starts listening two seconds after the container does.
const LATE_SERVER: &[&str] = &["sh", "-c", "sleep 2; exec httpd -f -p 8080 -h /www"];

/// One request, no retry: it succeeds only if the server is ready.
const ONE_REQUEST: &str = "busybox wget -q -O - http://127.0.0.1:$PROFILE_PORT_8080/ | grep -q 'hello from the test image'";

/// Train options for [`LATE_SERVER`] published at `publish`, exercised by [`ONE_REQUEST`].
fn web_flags<'a>(publish: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut flags = vec![
        "-p",
        publish,
        "--stop-timeout",
        "1",
        "--exercise",
        ONE_REQUEST,
    ];
    flags.extend_from_slice(more);
    flags
}

#[test]
fn the_exercise_waits_until_the_server_answers() {
    if !privileged("the_exercise_waits_until_the_server_answers") {
        return;
    }
    let dir = Scratch::new("ready-port");
    for run in 0..3 {
        let publish = format!("127.0.0.1:{}:8080", free_port());
        let started = Instant::now();
        let flags = web_flags(&publish, &[]);
        let (profile, rep, out) = train(&dir, &format!("run{run}"), &flags, LATE_SERVER);
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        assert!(started.elapsed() >= Duration::from_secs(2));
        let rep = rep.expect("report");
        assert_eq!(rep["stopped_by"], "exercise");
        assert!(count(&rep, "accept") >= 1, "the server accepted nothing");
        assert!(profile.exists());
    }
    // Without the wait, the same single request meets a server that isn't listening yet
    // (docker-proxy accepts, then resets): what happened before readiness existed.
    let publish = format!("127.0.0.1:{}:8080", free_port());
    let flags = web_flags(&publish, &["--no-wait"]);
    let (_, rep, out) = train(&dir, "no-wait", &flags, LATE_SERVER);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        rep.expect("report")["warnings"]
            .to_string()
            .contains("exercise command failed")
    );
}

#[test]
fn a_container_never_ready_is_removed_and_nothing_is_written() {
    if !privileged("a_container_never_ready_is_removed_and_nothing_is_written") {
        return;
    }
    let dir = Scratch::new("ready-timeout");
    let name = container_name("never-ready");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let marker = dir.path("exercised");
    let exercise = format!("touch {}", marker.display());
    let flags = [
        "--name",
        &name,
        "-p",
        &publish,
        "--ready-timeout",
        "2s",
        "--exercise",
        &exercise,
    ];
    let started = Instant::now();
    let (profile, rep, out) = train(&dir, "never", &flags, &["sleep", "60"]);
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        text.contains("the container was not ready after 2s")
            && text.contains(&format!("127.0.0.1:{port}"))
            && text.contains("nothing listens on port 8080 in the container"),
        "{text}"
    );
    assert!(!profile.exists() && rep.is_none(), "something was written");
    assert!(!marker.exists(), "the exercise ran");
    assert!(!container_exists(&name), "container left behind");
}

#[test]
fn a_health_check_decides_when_the_container_is_ready() {
    if !privileged("a_health_check_decides_when_the_container_is_ready") {
        return;
    }
    let dir = Scratch::new("ready-health");
    let flags = [
        "--stop-timeout",
        "1",
        "--health-cmd",
        "test -e /tmp/up",
        "--exercise",
        "docker exec \"$PROFILE_CONTAINER_ID\" test -e /tmp/up",
    ];
    let cmd = ["sh", "-c", "sleep 2; touch /tmp/up; sleep 60"];
    let (_, rep, out) = train(&dir, "health", &flags, &cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    let rep = rep.expect("report");
    assert_eq!(rep["stopped_by"], "exercise");
    // The health check runs in the container, under its profile: it is part of the workload.
    assert!(count(&rep, "stat") + count(&rep, "newfstatat") + count(&rep, "faccessat") >= 1);
}

#[test]
fn an_exercise_cut_off_by_duration_is_reported_and_ended_whole() {
    if !privileged("an_exercise_cut_off_by_duration_is_reported_and_ended_whole") {
        return;
    }
    let dir = Scratch::new("ready-cutoff");
    let pidfile = dir.path("sleep.pid");
    let exercise = format!("sleep 97 & echo $! > {}; wait", pidfile.display());
    let flags = [
        "--duration",
        "2s",
        "--stop-timeout",
        "1",
        "--exercise",
        &exercise,
    ];
    let (profile, rep, out) = train(&dir, "cutoff", &flags, &["sleep", "60"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(profile.exists());
    let rep = rep.expect("report");
    assert_eq!(rep["stopped_by"], "duration");
    assert!(
        rep["warnings"].to_string().contains("cut off"),
        "{}",
        rep["warnings"]
    );
    let pid = std::fs::read_to_string(&pidfile).expect("the exercise ran");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    // Gone, or a zombie waiting for init: never still sleeping.
    assert!(
        stat.as_ref()
            .map_or(true, |s| s.split_whitespace().nth(2) == Some("Z")),
        "sleep 97 still runs: {stat:?}"
    );
}

#[test]
fn the_progress_line_says_what_the_exercise_waits_for() {
    if !privileged("the_progress_line_says_what_the_exercise_waits_for") {
        return;
    }
    let dir = Scratch::new("ready-progress");
    let port = free_port();
    let cmd = format!(
        "{} train --image {} -q -o {} -p 127.0.0.1:{port}:8080 --stop-timeout 1 \
         --exercise 'busybox wget -q -O /dev/null http://127.0.0.1:$PROFILE_PORT_8080/' \
         -- sh -c 'sleep 2; exec httpd -f -p 8080 -h /www'",
        profile_tests::profile_bin().display(),
        profile_tests::test_image(),
        dir.path("p.json").display()
    );
    // script(1) gives the command a terminal.
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&format!("waiting for 127.0.0.1:{port}\u{2026}"))),
        "{shown}"
    );
}
