//! What a new user meets following the README: streams that keep a profile apart from a
//! workload's output, exit statuses that say why, options that can't be ignored silently.
use profile_tests::{
    Scratch, completions_load, container_name, docker, free_port, output_text, privileged, profile,
    test_image, train,
};

#[test]
fn run_keeps_the_commands_output_out_of_a_profile_on_stdout() {
    if !privileged("run_keeps_the_commands_output_out_of_a_profile_on_stdout") {
        return;
    }
    let out = profile(&["run", "--", "sh", "-c", "echo said-by-the-command"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let written: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout holds the profile alone");
    assert!(written["syscalls"].is_array(), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("said-by-the-command"),
        "the command's output goes to stderr"
    );

    // With -o FILE, stdout is the command's again.
    let dir = Scratch::new("run-stdout");
    let file = dir.path("p.json");
    let out = profile(&[
        "run",
        "-o",
        file.to_str().expect("utf-8"),
        "--",
        "sh",
        "-c",
        "echo said-by-the-command",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "said-by-the-command\n"
    );
}

/// `profile verify --image <test image> --profile docker-default -q FLAGS -- CMD`.
fn verify(flags: &[&str], cmd: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        "--image",
        test_image(),
        "--profile",
        "docker-default",
        "-q",
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(cmd);
    profile(&args)
}

/// stderr's lines that say why the exit status is not 0.
fn why_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("profile: exit status "))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_status_that_is_not_0_says_why_on_stderr() {
    if !privileged("a_status_that_is_not_0_says_why_on_stderr") {
        return;
    }
    let dir = Scratch::new("why");
    // -q, no --report, stdout taken away: only stderr is left to say it.
    let (profile_path, _, out) = train(&dir, "exit3", &[], &["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(profile_path.exists(), "the profile is still written");
    assert_eq!(
        why_lines(&out),
        ["profile: exit status 1: the workload exited 3 (the profile and report are written)"]
    );
    // One style for everything profile says, its warnings included (-q: nothing else speaks).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: the workload exited 3"),
        "{stderr}"
    );
    for line in stderr.lines() {
        assert!(line.starts_with("profile: "), "{line:?} in {stderr}");
    }

    let (_, _, out) = train(
        &dir,
        "cut",
        &[
            "--exercise",
            "sleep 60",
            "--duration",
            "1s",
            // A duration, as every time option takes.
            "--stop-timeout",
            "1s",
        ],
        &["sleep", "60"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        why_lines(&out),
        [
            "profile: exit status 1: --duration elapsed before the exercise finished (the profile and report are written)"
        ]
    );

    let out = profile(&["run", "-o", "/dev/null", "--", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        why_lines(&out),
        ["profile: exit status 4: the command exited 4"]
    );

    // verify: Docker's default denies unshare.
    let out = verify(&[], &["unshare", "-U", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let why = why_lines(&out);
    assert_eq!(why.len(), 1, "{}", output_text(&out));
    assert!(
        why[0].starts_with("profile: exit status 1: FAIL: ") && why[0].contains("unshare"),
        "{why:?}"
    );
}

#[test]
fn a_container_that_exits_before_it_is_ready_writes_nothing() {
    if !privileged("a_container_that_exits_before_it_is_ready_writes_nothing") {
        return;
    }
    let dir = Scratch::new("never-ready");
    let publish = format!("127.0.0.1:{}:8080", free_port());
    for (name, flags, what) in [
        ("exercise", vec!["--exercise", "true"], "the exercise"),
        ("probe", vec![], "the HTTP probe"),
    ] {
        let mut flags = flags;
        flags.extend_from_slice(&["-p", &publish]);
        let (profile_path, report, out) = train(&dir, name, &flags, &["true"]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            !profile_path.exists() && report.is_none(),
            "nothing written: {text}"
        );
        assert!(
            text.contains(&format!(
                "the container exited (0) before it was ready for {what}; {what} never ran and nothing was written"
            )),
            "{text}"
        );
        assert!(!text.contains("--ready-timeout waits longer"), "{text}");

        // verify agrees.
        let out = verify(&flags, &["true"]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("before it was ready for {what}; {what} never ran")),
            "{text}"
        );
    }
}

/// `profile ARGS` must be refused with status 2 and one line on stderr holding `says`.
fn refused(args: &[&str], says: &str) {
    let out = profile(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    assert!(err.contains(says), "{args:?}: {says:?} not in {err}");
}

#[test]
fn contradictory_options_are_refused_not_ignored() {
    // Checked before the daemon or the kernel is asked anything: no privileges needed.
    let image = ["train", "--image", "profile-example/hello"];
    let with = |more: &[&'static str]| -> Vec<&'static str> {
        image.iter().chain(more).copied().collect()
    };
    refused(
        &with(&[
            "--probe",
            "http",
            "--exercise",
            "true",
            "-p",
            "127.0.0.1:1:80",
        ]),
        "--probe http and --exercise contradict each other",
    );
    refused(
        &with(&[
            "--probe-url",
            "/a",
            "--exercise",
            "true",
            "-p",
            "127.0.0.1:1:80",
        ]),
        "--probe-url and --exercise contradict each other",
    );
    refused(
        &with(&["--probe", "http"]),
        "--probe http needs a published TCP port",
    );
    refused(
        &with(&["--probe-url", "/a"]),
        "--probe-url needs a published TCP port",
    );
    refused(
        &with(&["--probe-url", "/a", "--probe", "none", "-p", "1:80"]),
        "--probe-url and --probe none contradict each other",
    );
    refused(
        &with(&["--allow-beyond-default"]),
        "--allow-beyond-default changes nothing with --base docker-default",
    );
    let mut verify = vec!["verify", "--image", "x", "--profile", "docker-default"];
    verify.extend_from_slice(&["--probe", "http", "--exercise", "true", "-p", "1:80"]);
    refused(&verify, "--probe http and --exercise contradict each other");
}

#[test]
fn verify_help_says_what_verify_does_with_a_failed_exercise() {
    let out = profile(&["verify", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    assert!(!help.contains("the profile is still written"), "{help}");
    assert!(help.contains("verify fails"), "{help}");
    let out = profile(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("goes to stderr"), "{help}");
}

#[test]
fn input_errors_name_the_option_and_the_empty_file() {
    let dir = Scratch::new("inputs");
    let missing = dir.path("nope.json");
    refused(
        &[
            "train",
            "--image",
            "profile-example/hello",
            "--base",
            missing.to_str().expect("utf-8"),
        ],
        &format!("--base {}", missing.display()),
    );
    let empty = dir.path("empty.json");
    std::fs::write(&empty, "").expect("written");
    refused(
        &["report", empty.to_str().expect("utf-8")],
        "the file is empty: no profile in it",
    );
}

#[test]
fn a_misspelt_built_in_profile_is_named_as_a_misspelt_option_is() {
    refused(
        &["train", "--image", "x", "--base", "docker-defualt"],
        "--base docker-defualt: docker-defualt: no such file, nor a built-in profile; a similar one exists: docker-default",
    );
    refused(
        &["verify", "--image", "x", "--profile", "docker-defalt"],
        "a similar one exists: docker-default",
    );
    refused(
        &["report", "docker_default"],
        "a similar one exists: docker-default",
    );
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let dir = Scratch::new("completions");
    for (shell, file) in [
        ("bash", "profile.bash"),
        ("zsh", "_profile"),
        ("fish", "profile.fish"),
    ] {
        let out = profile(&["completions", shell]);
        assert!(out.status.success(), "{}", output_text(&out));
        std::fs::write(dir.path(file), &out.stdout).expect("written");
    }
    completions_load(&dir.0);
    let out = profile(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[possible values: bash, zsh, fish]"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn engine_errors_do_not_blame_the_base() {
    if !privileged("engine_errors_do_not_blame_the_base") {
        return;
    }
    let dir = Scratch::new("engine-errors");
    // A port something else holds on the host.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = held.local_addr().expect("bound").port();
    let publish = format!("127.0.0.1:{port}:8080");
    let (_, _, out) = train(
        &dir,
        "port",
        &["-p", &publish, "--probe", "none"],
        &["true"],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("the container could not start: "), "{text}");
    assert!(!text.contains("base profile"), "{text}");
    drop(held);
    let (_, _, out) = train(&dir, "nosuch", &[], &["/nosuch"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("the container could not start: "), "{text}");
    assert!(!text.contains("base profile"), "{text}");
}

#[test]
fn a_container_port_alone_is_published_on_a_port_docker_picks() {
    if !privileged("a_container_port_alone_is_published_on_a_port_docker_picks") {
        return;
    }
    let dir = Scratch::new("random-port");
    // `-p 8080` binds every address; on loopback only, its form is `127.0.0.1::8080`.
    let (_, report, out) = train(
        &dir,
        "web",
        &["-p", "127.0.0.1::8080", "--stop-timeout", "1"],
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let report = report.expect("report");
    assert_eq!(report["stopped_by"], "probe");
    let requests = report["probe"]["requests"].as_array().expect("requests");
    assert!(requests.iter().any(|r| r["status"] == 200), "{requests:?}");
}

#[test]
fn an_output_in_a_missing_directory_is_refused_unless_mkdir() {
    let dir = Scratch::new("mkdir");
    let typo = dir.path("typo/deeper/x.json");
    let last = dir.path("new/x.json");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let (typo, last) = (path(&typo), path(&last));
    // Every output option, checked before anything runs (no privileges needed for that).
    for args in [
        vec!["convert", "docker-default", "-o", &last],
        vec!["merge", "docker-default", "docker-default", "-o", &last],
        vec!["run", "-o", &last, "--", "true"],
        vec!["run", "-o", "-", "--report", &last, "--", "true"],
        vec!["run", "-o", "-", "--summary", &last, "--", "true"],
        vec!["train", "--image", "x", "-o", &last],
        vec!["train", "--image", "x", "-o", "-", "--report", &last],
        vec![
            "verify",
            "--image",
            "x",
            "--profile",
            "docker-default",
            "--report",
            &last,
        ],
        vec!["absorb", "docker-default", "--log", "-", "-o", &last],
    ] {
        refused(&args, "new does not exist (--mkdir creates it)");
        assert!(!dir.path("new").exists(), "{args:?} created it");
    }
    refused(
        &["convert", "docker-default", "--mkdir", "-o", &typo],
        "--mkdir creates only the last directory",
    );
    assert!(!dir.path("typo").exists());
    let out = profile(&["convert", "docker-default", "--mkdir", "-o", &last]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(std::path::Path::new(&last).is_file());
}

#[test]
fn verify_ends_a_denial_flood_at_its_time_limit_and_says_so_as_it_happens() {
    if !privileged("verify_ends_a_denial_flood_at_its_time_limit_and_says_so_as_it_happens") {
        return;
    }
    let dir = Scratch::new("flood");
    // Docker's default without getsid: a loop on it is denied over and over.
    let out = profile(&["convert", "docker-default"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let mut default: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for rule in default["syscalls"].as_array_mut().expect("rules") {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "getsid");
        }
    }
    let strict = dir.path("no-getsid.json");
    std::fs::write(&strict, default.to_string()).expect("written");
    // stderr is a pipe here, not a terminal: the notice must come anyway.
    let out = profile(&[
        "verify",
        "--image",
        test_image(),
        "--profile",
        strict.to_str().expect("utf-8"),
        "-q",
        "--timeout",
        "4s",
        "--stop-timeout",
        "1",
        "--",
        "sysloop",
        "getsid",
        "100000000000",
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(
            |l| l.starts_with("profile: getsid is being denied over and over (")
                && l.contains("first to sysloop")
        ),
        "{stderr}"
    );
    let why = why_lines(&out);
    assert_eq!(why.len(), 1, "{stderr}");
    assert!(
        why[0].contains("denied getsid") && why[0].contains("--timeout"),
        "{why:?}"
    );
}

#[test]
fn watch_makes_its_directory_never_the_ones_above() {
    if !privileged("watch_makes_its_directory_never_the_ones_above") {
        return;
    }
    let dir = Scratch::new("watch-dir");
    let typo = dir.path("typo/profiles");
    let out = profile(&[
        "watch",
        "-o",
        typo.to_str().expect("utf-8"),
        "--duration",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(!dir.path("typo").exists(), "{}", output_text(&out));
    let made = dir.path("profiles");
    let out = profile(&[
        "watch",
        "-o",
        made.to_str().expect("utf-8"),
        "--duration",
        "1s",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(made.join("index.json").is_file());
}

#[test]
fn pull_never_refuses_a_missing_image_and_missing_pulls_no_present_one() {
    if !privileged("pull_never_refuses_a_missing_image_and_missing_pulls_no_present_one") {
        return;
    }
    let dir = Scratch::new("pull");
    let written = dir.path("p.json");
    let p = written.to_str().expect("utf-8");
    let missing = format!("profile-test/not-here-{}:1", std::process::id());
    let refusal =
        format!("image {missing} is not present locally, and --pull never does not pull it");
    let name = container_name("pull-never");
    for args in [
        vec![
            "train", "--image", &missing, "--pull", "never", "-o", p, "--name", &name,
        ],
        vec![
            "verify",
            "--image",
            &missing,
            "--pull",
            "never",
            "--profile",
            "docker-default",
            "--name",
            &name,
        ],
        vec!["scan", "--image", &missing, "--pull", "never"],
    ] {
        refused(&args, &refusal);
        assert!(!written.exists(), "{args:?} wrote {p}");
        // Each run adds its suffix to the name.
        let made = docker(&["ps", "-a", "-q", "--filter", &format!("name={name}")]);
        assert_eq!(String::from_utf8_lossy(&made.stdout).trim(), "", "{args:?}");
    }
    // The test image is local only: no registry has it, so a pull of it would fail.
    let (profile_path, _, out) = train(&dir, "present", &["--pull", "missing"], &["true"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(profile_path.exists());
    assert!(
        !output_text(&out).contains("pulled"),
        "{}",
        output_text(&out)
    );
    // --pull always asks the engine for a pull, which would reach a registry: the library's
    // tests check its requests against an engine of their own (docker::tests).
    let out = profile(&["scan", "--image", test_image()]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("pulled"));
}

#[test]
fn the_terminal_gets_counts_and_q_gets_warnings_and_one_closing_line() {
    if !privileged("the_terminal_gets_counts_and_q_gets_warnings_and_one_closing_line") {
        return;
    }
    let dir = Scratch::new("terminal");
    let written = dir.path("p.json");
    let p = written.to_str().expect("utf-8");
    let image = test_image();
    let cmd = ["--", "sh", "-c", "ls / >/dev/null; exit 3"];
    let mut args = vec!["train", "--image", image, "-o", p];
    args.extend_from_slice(&cmd);
    let out = profile(&args);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    // busybox's ceiling has 166 calls: a count and the dangerous ones, not the list.
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with("/bin/busybox:") || l.contains("calls in its ceiling"))
        .unwrap_or_else(|| panic!("no coverage line in {report}"));
    assert!(line.contains(" never, "), "{line}");
    assert!(!line.contains("never:"), "{line}");
    assert!(line.len() < 400, "{} characters: {line}", line.len());
    assert!(
        report.contains("listed in the Markdown and JSON reports"),
        "{report}"
    );

    // -q: no report, the warnings and the closing lines only.
    let quiet = dir.path("q.json");
    let mut args = vec!["train", "--image", image, "-q", "-o"];
    args.push(quiet.to_str().expect("utf-8"));
    args.extend_from_slice(&cmd);
    let out = profile(&args);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(out.stdout.is_empty(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("profile: ")), "{stderr}");
    let warnings = lines
        .iter()
        .filter(|l| l.starts_with("profile: warning: "))
        .count();
    assert!(warnings >= 1, "the workload's exit is warned of: {stderr}");
    assert_eq!(
        lines.len(),
        warnings + 2,
        "the warnings, what was learned, why the status is 1: {stderr}"
    );
    assert!(
        lines[lines.len() - 2].contains("syscalls allowed"),
        "{stderr}"
    );
}

#[test]
fn a_run_that_does_not_complete_never_replaces_a_profile() {
    if !privileged("a_run_that_does_not_complete_never_replaces_a_profile") {
        return;
    }
    let dir = Scratch::new("keep");
    let keep = dir.path("keep.json");
    let partial = dir.path("keep.partial.json");
    let k = keep.to_str().expect("utf-8");
    // `profile train … -o keep.json -- sh -c CMD`, run by `before` (`timeout …`) if given.
    let train_to = |before: &[&str], cmd: &str| {
        let bin = profile_tests::profile_bin();
        let mut command = match before.split_first() {
            Some((first, rest)) => {
                let mut c = std::process::Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => std::process::Command::new(&bin),
        };
        command
            .args(["train", "--image", test_image(), "-q", "-o", k])
            .args(["--", "sh", "-c", cmd])
            .output()
            .expect("profile train")
    };
    let out = train_to(&[], "ls /");
    assert!(out.status.success(), "{}", output_text(&out));
    let good = std::fs::read(&keep).expect("the profile");

    // A failed run: the good profile stays, the partial one goes beside it, and it is said.
    let out = train_to(&[], "ls /; mkdir /tmp/x; exit 3");
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert_eq!(
        std::fs::read(&keep).expect("kept"),
        good,
        "replaced by a failed run"
    );
    assert!(partial.is_file(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains(&format!(
            "profile: the run did not complete: {k} is left as it was, and the partial profile is {}",
            partial.display()
        )),
        "{}",
        output_text(&out)
    );
    std::fs::remove_file(&partial).expect("removed");

    // Interrupted, as `timeout -s INT` does: the same.
    let out = train_to(
        &["timeout", "--preserve-status", "-s", "INT", "8"],
        "ls /; mkdir /tmp/x; sleep 60",
    );
    assert_eq!(out.status.code(), Some(130), "{}", output_text(&out));
    assert_eq!(
        std::fs::read(&keep).expect("kept"),
        good,
        "replaced by an interrupted run"
    );
    assert!(partial.is_file(), "{}", output_text(&out));
    let cut: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&partial).expect("partial")).expect("JSON");
    assert!(cut["syscalls"].is_array(), "{cut}");

    // A completed run replaces it, and says what changed in one line.
    let out = train_to(&[], "ls /; mkdir /tmp/x");
    assert!(out.status.success(), "{}", output_text(&out));
    let said: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(&format!("{k} replaced: ")))
        .map(String::from)
        .collect();
    assert_eq!(said.len(), 1, "{}", output_text(&out));
    assert!(said[0].contains("+mkdir"), "{said:?}");
    assert_ne!(std::fs::read(&keep).expect("replaced"), good);
}
