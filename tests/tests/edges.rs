//! The `profile` binary at its edges: bad input, unwritable output, usage mistakes, killed
//! runs, profiles that can't even start a program, and the syscall tables' own edges.
use std::{
    os::fd::{FromRawFd as _, OwnedFd},
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use profile_tests::{
    Scratch, output_text, poll, privileged, profile, profile_bin, profile_ok, test_image,
    wait_until,
};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit status 2 with exactly one line on stderr containing `needle`, and no panic.
fn assert_refused(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs `profile ARGS` with stdout going to `out`, giving up after `secs` seconds.
fn profile_within(args: &[&str], stdout: Stdio, secs: u64) -> Output {
    let mut child = Command::new(profile_bin())
        .args(args)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("running profile");
    if poll(Duration::from_secs(secs), || {
        child.try_wait().expect("waiting")
    })
    .is_none()
    {
        let _ = child.kill();
        let out = child.wait_with_output().expect("reaping");
        panic!("profile {args:?} still ran after {secs}s: {}", stderr(&out));
    }
    child.wait_with_output().expect("collecting output")
}

/// A profile allowing `names` on x86_64, written to `path`.
fn write_profile(path: &Path, default_action: &str, names: &[&str]) {
    let json = serde_json::json!({
        "defaultAction": default_action,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }],
    });
    std::fs::write(path, json.to_string()).expect("profile written");
}

/// What `profile run -- true` records on this machine: no write, no rt_sigaction.
const TRUE_PROFILE: &[&str] = &[
    "access",
    "arch_prctl",
    "brk",
    "close",
    "execve",
    "exit_group",
    "mmap",
    "mprotect",
    "munmap",
    "newfstatat",
    "openat",
    "pread64",
    "prlimit64",
    "read",
    "rseq",
    "rt_sigreturn",
    "set_robust_list",
    "set_tid_address",
];

#[test]
fn the_last_x86_64_syscall_is_known() {
    let dir = Scratch::new("edges-setattr");
    let p = dir.path("file_setattr-only.json");
    write_profile(&p, "SCMP_ACT_ERRNO", &["file_setattr"]);
    let out = profile_ok(&["report", p.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(text.contains("allows 1 syscalls"), "{text}");
    assert!(text.contains("the kernel's table (383)"), "{text}");
    assert!(!text.contains("unknown"), "{text}");
}

#[test]
fn i386_names_are_read_as_libseccomp_reads_them() {
    let dir = Scratch::new("edges-i386");
    let p = dir.path("i386.json");
    let json = r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],
        "syscalls":[{"names":["break","read","recv","send","semop","no_such_call"],"action":"SCMP_ACT_ALLOW"}]}"#;
    std::fs::write(&p, json).unwrap();
    let out = profile_ok(&["report", "--format", "json", p.to_str().unwrap()]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("r#break"), "{all}");
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let warning = report["warnings"].to_string();
    assert!(warning.contains("1 name(s) unknown"), "{warning}");
    assert!(warning.contains(": no_such_call"), "{warning}");

    // Docker's default: only names no x86 ABI has, recv and send (socketcall on i386) not.
    let out = profile_ok(&["report", "docker-default"]);
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("unknown to the profile's architectures"))
        .expect("a warning for the other architectures' names");
    assert!(line.contains("12 name(s)"), "{line}");
    for name in ["recv", "send"] {
        assert!(!line.contains(&format!(" {name},")), "{line}");
        assert!(!line.ends_with(&format!(" {name}")), "{line}");
    }
    assert!(line.contains("cacheflush"), "{line}");
}

#[test]
fn a_wider_profile_is_more_not_negative_fewer() {
    let dir = Scratch::new("edges-wider");
    let p = dir.path("allow-all.json");
    std::fs::write(&p, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let text = stdout(&profile_ok(&["report", p.to_str().unwrap()]));
    let line = text
        .lines()
        .find(|l| l.contains("Docker's default ("))
        .expect("the reduction line");
    assert!(line.contains("% more than Docker's default"), "{line}");
    assert!(!line.contains(": -"), "{line}");
}

#[test]
fn inputs_must_be_bounded_regular_files() {
    let dir = Scratch::new("edges-input");
    let ok = dir.path("ok.json");
    write_profile(&ok, "SCMP_ACT_ERRNO", &["read"]);
    let ok = ok.to_str().unwrap();
    for args in [
        vec!["report", "/dev/zero"],
        vec!["diff", ok, "/dev/zero"],
        vec!["merge", "/dev/zero", ok],
        vec!["exec", "--profile", "/dev/zero", "--", "true"],
    ] {
        let out = profile_within(&args, Stdio::null(), 20);
        assert_refused(&out, "/dev/zero: not a regular file (a character device)");
    }
    let big = dir.path("big.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(65 << 20).unwrap();
    let out = profile(&["report", big.to_str().unwrap()]);
    assert_refused(&out, "larger than 64 MiB");

    // stdin, bounded the same way, read once.
    let mut child = Command::new(profile_bin())
        .args(["report", "-"])
        .stdin(std::fs::File::open(ok).unwrap())
        .output()
        .unwrap();
    assert!(child.status.success(), "{}", stderr(&child));
    assert!(stdout(&child).contains("profile for <stdin>"));
    child = Command::new(profile_bin())
        .args(["diff", "-", "-"])
        .stdin(std::fs::File::open(ok).unwrap())
        .output()
        .unwrap();
    assert_refused(&child, "stdin (`-`) can be read only once");
}

#[test]
fn unwritable_stdout_is_an_error_and_a_closed_pipe_is_quiet() {
    for args in [
        &["report", "docker-default"][..],
        &["diff", "docker-default", "docker-default"],
        &["merge", "docker-default", "docker-default"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = profile_within(args, Stdio::from(full), 20);
        assert_refused(&out, "writing to stdout: No space left on device");

        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills two new descriptors, each owned once below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fresh descriptors from pipe(2).
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(read);
        let out = profile_within(args, Stdio::from(write), 20);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{args:?}: a closed pipe is quiet");
    }
}

#[test]
fn outputs_are_checked_before_any_work() {
    let dir = Scratch::new("edges-output");
    let p = dir.path("p.json");
    let p = p.to_str().unwrap();

    // -o and --report naming one file.
    let same = format!("{}/./p.json", dir.0.display());
    let out = profile(&["run", "-o", p, "--report", &same, "--", "true"]);
    assert_refused(&out, "-o and --report name the same file");
    assert!(!Path::new(p).exists());

    // A file in the way of the directory.
    let ro = dir.path("ro");
    std::fs::write(&ro, "").unwrap();
    let target = format!("{}/x.json", ro.display());
    let out = profile(&["run", "-o", &target, "--", "true"]);
    assert_refused(&out, &format!("{} is not a directory", ro.display()));

    // /proc takes no new file.
    let out = profile(&["run", "-o", "/proc/version", "--", "true"]);
    assert_refused(
        &out,
        "/proc/version: can't be written: /proc accepts no new files",
    );

    // A missing file's cause is said once.
    let out = profile(&["report", "/no/such/profile.json"]);
    assert_refused(
        &out,
        "profile: error: /no/such/profile.json: No such file or directory (os error 2)",
    );
    assert_eq!(stderr(&out).matches("No such file").count(), 1);

    // The output's directory is not created when the command fails.
    let newdir = dir.path("newdir");
    let target = format!("{}/x.json", newdir.display());
    let out = profile(&["train", "--image", "no-such-image-here:1", "-o", &target]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!newdir.exists(), "{} was created", newdir.display());
}

#[test]
fn dash_is_stdout_for_every_output() {
    let dir = Scratch::new("edges-dash");
    let a = dir.path("a.json");
    let b = dir.path("b.json");
    write_profile(&a, "SCMP_ACT_ERRNO", &["read"]);
    write_profile(&b, "SCMP_ACT_ERRNO", &["write"]);
    let out = Command::new(profile_bin())
        .args(["merge", a.to_str().unwrap(), b.to_str().unwrap(), "-o", "-"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let merged: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        merged["syscalls"][0]["names"],
        serde_json::json!(["read", "write"])
    );
    assert!(!dir.path("-").exists(), "a file named - was written");

    if !privileged("dash_is_stdout_for_every_output") {
        return;
    }
    let out = Command::new(profile_bin())
        .args(["run", "-o", "-", "--", "true"])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let profile: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert!(!dir.path("-").exists(), "a file named - was written");
    assert!(!stderr(&out).contains("-> -"), "{}", stderr(&out));
}

#[test]
fn absurd_durations_are_usage_errors() {
    for d in ["99999999999999999999999", "0", "400d", "1x"] {
        let out = profile(&["train", "--image", "img", "--duration", d]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{d}: {err}");
        assert!(err.contains("invalid value"), "{d}: {err}");
        assert!(!err.contains("panicked"), "{d}: {err}");
    }
}

#[test]
fn usage_mistakes_get_a_tip() {
    let out = profile(&["run", "ls", "/"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("tip: put the command after `--`: profile run [OPTIONS] -- ls"),
        "{}",
        stderr(&out)
    );
    let out = profile(&["train", "profile-example/hello"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "tip: name the image with --image: profile train --image profile-example/hello"
        ),
        "{}",
        stderr(&out)
    );
    // An option of train after `--` goes to the container: said before anything else.
    let out = profile(&[
        "train",
        "--image",
        "no-such-image-here:1",
        "--",
        "sh",
        "--duration",
        "5s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("profile: warning: --duration comes after `--`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_never_hangs_and_says_why() {
    let dir = Scratch::new("edges-exec");
    let p = dir.path("true.json");
    write_profile(&p, "SCMP_ACT_ERRNO", TRUE_PROFILE);
    let p = p.to_str().unwrap();
    // Neither write nor rt_sigaction: the launcher can't report the failed exec the usual way.
    let out = profile_within(
        &["exec", "--profile", p, "--", "nosuchcmd"],
        Stdio::null(),
        20,
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("nosuchcmd: command not found"));

    let out = profile_within(&["exec", "--profile", p, "--", "true"], Stdio::null(), 20);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let deny = dir.path("deny.json");
    std::fs::write(&deny, r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
    let out = profile_within(
        &["exec", "--profile", deny.to_str().unwrap(), "--", "true"],
        Stdio::null(),
        20,
    );
    assert_refused(
        &out,
        "denies execve on x86_64: no command can start under it",
    );

    let arm = dir.path("arm.json");
    std::fs::write(
        &arm,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_AARCH64"],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = profile_within(
        &["exec", "--profile", arm.to_str().unwrap(), "--", "true"],
        Stdio::null(),
        20,
    );
    assert_refused(&out, "(it names only SCMP_ARCH_AARCH64)");

    // A program the profile lets start but not finish: killed, and said so.
    let out = profile_within(
        &["exec", "--profile", p, "--", "ls", "/"],
        Stdio::null(),
        20,
    );
    assert!(
        out.status.code().is_some_and(|c| c > 128),
        "{:?}",
        out.status
    );
    assert!(
        stderr(&out).contains("ls: killed by SIG"),
        "{}",
        stderr(&out)
    );

    if !privileged("exec_never_hangs_and_says_why") {
        return;
    }
    // The profile `profile run` learns from `true`.
    let learned = dir.path("learned.json");
    profile_ok(&["run", "-o", learned.to_str().unwrap(), "--", "true"]);
    let out = profile_within(
        &[
            "exec",
            "--profile",
            learned.to_str().unwrap(),
            "--",
            "nosuchcmd",
        ],
        Stdio::null(),
        20,
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
}

/// The unified hierarchy's `profile-run-*` cgroups.
fn run_cgroups() -> Vec<String> {
    let root = tracer::cgroup::unified_root().expect("a cgroup v2 hierarchy");
    std::fs::read_dir(root)
        .expect("the unified root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("profile-run-"))
        .collect()
}

#[test]
fn a_killed_run_leaves_nothing_that_breaks_the_next() {
    if !privileged("a_killed_run_leaves_nothing_that_breaks_the_next") {
        return;
    }
    let dir = Scratch::new("edges-kill9");
    let mut run = Command::new(profile_bin())
        .args([
            "run",
            "-o",
            dir.path("p.json").to_str().unwrap(),
            "--",
            "sleep",
            "60",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let prefix = format!("profile-run-{}-", run.id());
    let limit = Duration::from_secs(20);
    let name = wait_until(&format!("a cgroup {prefix}*"), limit, || {
        run_cgroups().into_iter().find(|n| n.starts_with(&prefix))
    });
    let path = tracer::cgroup::unified_root().unwrap().join(&name);
    let procs = path.join("cgroup.procs");
    let joined = || !std::fs::read_to_string(&procs).unwrap().trim().is_empty();
    wait_until(&format!("sleep joining {name}"), limit, || {
        joined().then_some(())
    });
    run.kill().unwrap();
    run.wait().unwrap();
    assert!(path.exists(), "kill -9 leaves the cgroup");
    // Its child is still there: nothing removes a cgroup anything runs in.
    let _ = std::fs::write(path.join("cgroup.kill"), "1");
    wait_until("the child ending at cgroup.kill", limit, || {
        let procs = std::fs::read_to_string(&procs).unwrap_or_default();
        procs.trim().is_empty().then_some(())
    });
    profile_ok(&[
        "run",
        "-o",
        dir.path("q.json").to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(!path.exists(), "{name} was not cleaned up");
}

/// Every format `profile` writes is read back by the commands that read profiles: the SPO
/// manifest (YAML), the OCI object, and a runtime config holding one.
#[test]
fn the_tool_reads_what_it_writes() {
    let dir = Scratch::new("edges-formats");
    let (yaml, oci, config) = (
        dir.path("d.yaml"),
        dir.path("d.oci.json"),
        dir.path("config.json"),
    );
    let (y, o) = (yaml.to_str().unwrap(), oci.to_str().unwrap());
    for (format, out) in [("k8s", y), ("oci", o)] {
        profile_ok(&["convert", "docker-default", "--format", format, "-o", out]);
    }
    let manifest = std::fs::read_to_string(&yaml).unwrap();
    assert!(
        manifest.starts_with(
            "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n  name: d\n"
        ),
        "{manifest}"
    );
    let object: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&oci).unwrap()).unwrap();
    assert!(object["syscalls"].as_array().unwrap().len() > 10);
    assert!(
        !object.to_string().contains("includes"),
        "resolved: {object}"
    );
    // Converted back to Docker's JSON (on stdout without -o), the manifest is the default.
    let back = dir.path("back.json");
    std::fs::write(&back, profile_ok(&["convert", y]).stdout).unwrap();
    let b = back.to_str().unwrap();
    assert!(stdout(&profile_ok(&["diff", "docker-default", b])).contains("allows nothing"));
    assert!(stdout(&profile_ok(&["diff", b, "docker-default"])).contains("allows nothing"));
    // A merge of one profile with itself is that profile too.
    let twice = dir.path("twice.yaml");
    let t = twice.to_str().unwrap();
    profile_ok(&["merge", y, y, "--format", "k8s", "-o", t]);
    assert!(stdout(&profile_ok(&["diff", y, t])).contains("allows nothing"));
    assert!(stdout(&profile_ok(&["diff", t, y])).contains("allows nothing"));
    let object = std::fs::read_to_string(&oci).unwrap();
    std::fs::write(
        &config,
        format!("{{\"ociVersion\": \"1.0.2\", \"linux\": {{\"seccomp\": {object}}}}}"),
    )
    .unwrap();
    for p in [y, o, config.to_str().unwrap()] {
        let report: serde_json::Value =
            serde_json::from_str(&stdout(&profile_ok(&["report", p, "--format", "json"]))).unwrap();
        assert_eq!(report["allowed"], 309, "{p}");
        // Resolved for Docker's default capabilities: the same as Docker's default there.
        assert!(stdout(&profile_ok(&["diff", "docker-default", p])).contains("allows nothing"));
        assert!(stdout(&profile_ok(&["diff", p, "docker-default"])).contains("allows nothing"));
        profile_ok(&[
            "merge",
            p,
            "docker-default",
            "-o",
            dir.path("m.json").to_str().unwrap(),
        ]);
        profile_ok(&["exec", "--profile", p, "--", "true"]);
    }
    profile_ok(&["exec", "--profile", "docker-default", "--", "true"]);

    // A hand-written manifest is enforced by exec: mkdir fails with EPERM, nothing is made.
    let deny = dir.path("deny-mkdir.yaml");
    std::fs::write(
        &deny,
        "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\n\
         kind: SeccompProfile\n\
         metadata:\n  name: deny-mkdir\n\
         spec:\n  defaultAction: SCMP_ACT_ALLOW\n  syscalls:\n\
         \x20 - action: SCMP_ACT_ERRNO\n    errnoRet: 1\n    names: [mkdir, mkdirat]\n",
    )
    .unwrap();
    let made = dir.path("made");
    let out = profile(&[
        "exec",
        "--profile",
        deny.to_str().unwrap(),
        "--",
        profile_tests::SYSLOOP,
        "mkdir",
        made.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(libc::EPERM), "{}", stderr(&out));
    assert!(!made.exists());

    // What is not a profile is refused with its line and column.
    let bad = dir.path("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: ConfigMap\nspec: {}\n").unwrap();
    let b = bad.to_str().unwrap();
    for args in [
        vec!["report", b],
        vec!["diff", b, b],
        vec!["exec", "--profile", b, "--", "true"],
    ] {
        assert_refused(&profile(&args), &format!("{b}:2:1: kind \"ConfigMap\""));
    }
}

#[test]
fn a_published_port_in_use_is_reported_as_the_engine_says() {
    if !privileged("a_published_port_in_use_is_reported_as_the_engine_says") {
        return;
    }
    let dir = Scratch::new("edges-port-in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().unwrap().port();
    let out = profile(&[
        "train",
        "--image",
        test_image(),
        "-q",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        "-o",
        dir.path("p.json").to_str().unwrap(),
        "--",
        "true",
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("address already in use"), "{text}");
    assert!(!text.contains("was never seen"), "{text}");
    assert!(!dir.path("p.json").exists());
}
