//! `profile` with fewer privileges than root: each missing one is named, and the minimum the
//! README gives is enough (`setpriv` drops the user, groups and capabilities).
use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::RwLock,
};

use profile_tests::{SYSLOOP, Scratch, count, privileged, profile_bin, report, test_image};

const NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];

/// Held to write an executable (exclusive) and to start a process (shared): a child forked by
/// another test while a copy is open for writing would hold it open until it execs, and
/// executing the copy then fails with ETXTBSY.
static EXECUTABLES: RwLock<()> = RwLock::new(());

/// A scratch directory anyone may use, holding copies of `profile` and the workload that
/// nobody can run (the build directory may be closed to it).
fn world_scratch(name: &str) -> (Scratch, PathBuf, PathBuf) {
    let dir = Scratch::new(name);
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let bin = dir.path("profile");
    let workload = dir.path("sysloop");
    for (from, to) in [(profile_bin(), &bin), (PathBuf::from(SYSLOOP), &workload)] {
        // A link is never open for writing; a copy (across filesystems) is written while no
        // test here starts a process.
        if std::fs::hard_link(&from, to).is_err() {
            let _writing = EXECUTABLES.write().unwrap_or_else(|e| e.into_inner());
            std::fs::copy(&from, to).unwrap();
        }
    }
    (dir, bin, workload)
}

/// `setpriv ARGS BIN PROFILE_ARGS`, in `dir`; `caps` are kept (as ambient capabilities for
/// another user, as the only bounding set for uid 0).
fn setpriv(dir: &Path, user: &[&str], caps: &str, bin: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(user);
    if user.is_empty() {
        cmd.arg(format!("--inh-caps=-all{caps}"))
            .arg(format!("--bounding-set=-all{caps}"));
    } else if !caps.is_empty() {
        cmd.arg(format!("--inh-caps={caps}"))
            .arg(format!("--ambient-caps={caps}"));
    }
    cmd.arg(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = {
        let _starting = EXECUTABLES.read().unwrap_or_else(|e| e.into_inner());
        cmd.spawn().expect("setpriv (util-linux)")
    };
    child.wait_with_output().expect("setpriv's output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `profile run -- true` as `user` with `caps`, which must be refused with status 2: the
/// message, which must hold each of `parts` and none of `absent`.
fn run_refused(name: &str, user: &[&str], caps: &str, parts: &[&str], absent: &[&str]) {
    let (dir, bin, _) = world_scratch(name);
    let args = ["run", "-o", "/dev/null", "--", "true"];
    let out = setpriv(&dir.0, user, caps, &bin, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for part in parts {
        assert!(err.contains(part), "missing {part:?} in: {err}");
    }
    for word in absent {
        assert!(!err.contains(word), "{word:?} in: {err}");
    }
}

#[test]
fn run_as_nobody_names_every_missing_capability() {
    if !privileged("run_as_nobody_names_every_missing_capability") {
        return;
    }
    run_refused(
        "priv-nobody",
        &NOBODY,
        "",
        &[
            "missing privileges (uid 65534): loading the eBPF recorder needs CAP_BPF and CAP_PERFMON",
            "reading tracefs at /sys/kernel/tracing (owner root, group root, mode 0700) needs CAP_DAC_READ_SEARCH",
            "creating the command's cgroup in /sys/fs/cgroup",
            "needs CAP_DAC_OVERRIDE; run as root, or grant CAP_BPF, CAP_PERFMON and CAP_DAC_OVERRIDE",
        ],
        &[],
    );
}

#[test]
fn mounted_tracefs_that_cannot_be_read_is_not_called_unmounted() {
    if !privileged("mounted_tracefs_that_cannot_be_read_is_not_called_unmounted") {
        return;
    }
    run_refused(
        "priv-tracefs",
        &NOBODY,
        "+bpf,+perfmon,+sys_admin",
        &[
            "reading tracefs at /sys/kernel/tracing (owner root, group root, mode 0700) needs CAP_DAC_READ_SEARCH",
        ],
        &["not mounted", "busy", "CAP_BPF"],
    );
}

#[test]
fn root_without_dac_override_is_told_about_the_cgroup() {
    if !privileged("root_without_dac_override_is_told_about_the_cgroup") {
        return;
    }
    run_refused(
        "priv-root",
        &[],
        ",+bpf,+perfmon,+sys_admin",
        &[
            "missing privileges (uid 0 without all capabilities): creating the command's cgroup in /sys/fs/cgroup",
            "needs CAP_DAC_OVERRIDE; grant CAP_DAC_OVERRIDE",
        ],
        &["tracefs"],
    );
}

#[test]
fn run_needs_only_bpf_perfmon_and_dac_override() {
    if !privileged("run_needs_only_bpf_perfmon_and_dac_override") {
        return;
    }
    let (dir, bin, workload) = world_scratch("priv-run-min");
    let rep = dir.path("r.json");
    let args = [
        "run",
        "-o",
        "p.json",
        "--report",
        "r.json",
        "--",
        workload.to_str().unwrap(),
        "getppid",
        "1000",
    ];
    let out = setpriv(&dir.0, &NOBODY, "+bpf,+perfmon,+dac_override", &bin, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&report(&rep), "getppid"), 1000);
    // One capability fewer is not enough, and the message says which.
    for (caps, lacking) in [
        ("+perfmon,+dac_override", "needs CAP_BPF;"),
        ("+bpf,+dac_override", "needs CAP_PERFMON;"),
        ("+bpf,+perfmon", "needs CAP_DAC_OVERRIDE;"),
    ] {
        let out = setpriv(&dir.0, &NOBODY, caps, &bin, &args);
        assert_eq!(out.status.code(), Some(2), "{caps}");
        assert!(stderr(&out).contains(lacking), "{caps}: {}", stderr(&out));
    }
}

#[test]
fn train_names_everything_missing_at_once_and_needs_no_more() {
    if !privileged("train_names_everything_missing_at_once_and_needs_no_more") {
        return;
    }
    let image = test_image();
    let (dir, bin, _) = world_scratch("priv-train");
    let args = [
        "train", "--image", image, "-q", "-o", "p.json", "--", "true",
    ];
    let out = setpriv(&dir.0, &NOBODY, "", &bin, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    // The socket and the capabilities in one message: nothing is left for a second round.
    assert_eq!(
        err,
        "profile: error: missing privileges (uid 65534): loading the eBPF recorder needs CAP_BPF \
         and CAP_PERFMON; reading tracefs at /sys/kernel/tracing (owner root, group root, mode \
         0700) needs CAP_DAC_READ_SEARCH; using the Docker daemon's socket /var/run/docker.sock \
         (owner root, group docker, mode 0660) needs membership of group docker; run as root, \
         or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH and join group docker\n"
    );

    let docker_gid = std::fs::metadata("/var/run/docker.sock")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
        .unwrap();
    let groups = format!("--groups={docker_gid}");
    let in_docker = ["--reuid=65534", "--regid=65534", groups.as_str()];
    let out = setpriv(&dir.0, &in_docker, "", &bin, &args);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("missing privileges (uid 65534): loading the eBPF recorder needs CAP_BPF and CAP_PERFMON; reading tracefs"),
        "{err}"
    );
    assert!(
        err.contains("run as root, or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH"),
        "{err}"
    );
    assert!(!err.contains("cgroup"), "{err}");

    let out = setpriv(
        &dir.0,
        &in_docker,
        "+bpf,+perfmon,+dac_read_search",
        &bin,
        &args,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path("p.json").exists());
}

#[test]
fn unprivileged_watch_creates_nothing_before_it_fails() {
    if !privileged("unprivileged_watch_creates_nothing_before_it_fails") {
        return;
    }
    let (dir, bin, _) = world_scratch("priv-watch");
    let args = ["watch", "-o", "out", "--duration", "1s"];
    let out = setpriv(&dir.0, &NOBODY, "", &bin, &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("loading the eBPF recorder needs CAP_BPF")
            && err.contains("needs membership of group docker"),
        "{err}"
    );
    assert!(!dir.path("out").exists(), "watch created its directory");
}
