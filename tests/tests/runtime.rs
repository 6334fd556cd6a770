//! Profiles start their containers every time: the container runtime's calls after its filter
//! is in place (runc's measured tail, and what its binary's Go runtime can call) and the
//! vDSO's are in every profile, whether a run saw them or not; verify names a profile that
//! lacks one, and tells the base's own denials from the profile's.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use profile_tests::{
    PRIVATE_IMAGE, PrivateDaemon, Scratch, Transcript, allowed_names, container_name, docker,
    output_text, privileged, profile, report, run_under, strings, test_image, train, wait_until,
};

/// The calls of the Go runtime that runc makes whenever it likes, after the filter too.
const GO_RUNTIME: [&str; 4] = ["madvise", "mmap", "munmap", "nanosleep"];

/// runc's tail as the engine's runc has it (measured, and read from the binary Docker runs):
/// every profile for a container must allow it.
fn runc_tail() -> BTreeSet<String> {
    let binary = tracer::runtime::Daemon::here().find("runc");
    assert!(
        binary.is_some(),
        "runc is on the PATH (apt-get install runc)"
    );
    let runtime = tracer::runtime::Runtime::new("runc", None).with_binary(binary);
    let tail = tracer::runtime::tail(&runtime);
    assert_eq!(tail.note, None, "{runtime} is measured and its binary read");
    // clone3 is the bound's to answer (ENOSYS, as Docker's default does: glibc falls back to
    // clone), never allowed.
    let names: BTreeSet<String> = tail
        .calls
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| n != "clone3")
        .collect();
    for name in GO_RUNTIME {
        assert!(names.contains(name), "{name}: {names:?}");
    }
    names
}

/// Profile `p`'s rule for `name` (the first that names it), as written.
fn rule_for(p: &Path, name: &str) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("profile")).expect("JSON");
    json["syscalls"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| {
            r["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|v| v == name))
        })
        .cloned()
        .unwrap_or_default()
}

/// The profiles among `paths` that differ, each with one of its files.
fn distinct(paths: &[PathBuf]) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for p in paths {
        let text = std::fs::read_to_string(p).expect("profile written");
        out.entry(text).or_insert_with(|| p.clone());
    }
    out
}

/// Starts the workload 5 times under `profile`: every start must succeed.
fn starts_five_times(profile: &Path, cmd: &[&str]) {
    for i in 1..=5 {
        let out = run_under(Some(profile), cmd);
        assert!(
            out.status.success(),
            "start {i} of 5 under {} failed: {}",
            profile.display(),
            output_text(&out)
        );
    }
}

#[test]
fn sixty_containers_started_at_once_each_learn_a_profile_that_starts_them() {
    if !privileged("sixty_containers_started_at_once_each_learn_a_profile_that_starts_them") {
        return;
    }
    let dir = Scratch::new("rt-sixty");
    let label = format!("profile-test-sixty={}", std::process::id());
    let mut watch = Command::new(profile_tests::profile_bin())
        .args(["watch", "--per", "container", "--filter"])
        .arg(format!("label={label}"))
        .arg("-o")
        .arg(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("profile watch");
    let mut transcript = Transcript::of(&mut watch);
    transcript.wait_for("watching containers", Duration::from_secs(30));
    let cmd = ["sh", "-c", "ls / >/dev/null; sleep 2"];
    // One round here; `cargo xtask runtime-tail` checks the same over many more.
    const ROUNDS: usize = 1;
    for _ in 0..ROUNDS {
        let starts: Vec<std::process::Child> = (0..60)
            .map(|_| {
                let mut args = vec!["run", "--rm", "--label", &label, test_image()];
                args.extend_from_slice(&cmd);
                Command::new("docker")
                    .args(&args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("docker run")
            })
            .collect();
        for mut child in starts {
            assert!(child.wait().expect("docker run").success());
        }
    }
    // Each death is reported a moment after its exit: stop once all are written.
    let index = dir.path("index.json");
    wait_until("all profiles in the index", Duration::from_secs(90), || {
        // SAFETY: kill(2) on the watch this test started; SIGUSR1 writes the profiles so far.
        unsafe { libc::kill(watch.id() as i32, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(500));
        let rows = std::fs::read_to_string(&index).ok()?;
        let json: serde_json::Value = serde_json::from_str(&rows).ok()?;
        let complete = json["profiles"]
            .as_array()?
            .iter()
            .filter(|r| r["file"].is_string() && r["complete"] == true)
            .count();
        (complete == 60 * ROUNDS).then_some(())
    });
    // SAFETY: as above.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    assert_eq!(watch.wait().expect("watch").code(), Some(130));
    let index = report(&index);
    let rows = index["profiles"].as_array().expect("profiles");
    assert_eq!(rows.len(), 60 * ROUNDS, "{index}");
    // Whatever runc did under the filter in any container, every profile allows: the calls
    // one start happened to make are the next start's to make.
    let mut made: BTreeSet<String> = BTreeSet::new();
    for row in rows {
        let runtime: BTreeSet<String> = strings(&row["runtime_calls"]);
        // The runtime's calls are named apart from the workload's in every row.
        assert!(
            runtime.contains("execve") && runtime.contains("capset"),
            "{row}"
        );
        made.extend(runtime);
    }
    let needed = runc_tail();
    let beyond: Vec<&String> = made.difference(&needed).collect();
    assert!(
        beyond.is_empty(),
        "runc made calls outside its derived set: {beyond:?}"
    );
    let mut files = Vec::new();
    for row in rows {
        let file = dir.path(row["file"].as_str().expect("a profile file"));
        let allowed = allowed_names(&file);
        let missing: Vec<&String> = needed.difference(&allowed).collect();
        assert!(missing.is_empty(), "{} lacks {missing:?}", file.display());
        for name in GO_RUNTIME {
            assert!(allowed.contains(name), "{}: {name}", file.display());
        }
        files.push(file);
    }
    for (_, file) in distinct(&files) {
        starts_five_times(&file, &cmd);
        // A call from the binary keeps the base's argument rule: clone only without new
        // namespaces, as under Docker's default.
        let clone = rule_for(&file, "clone");
        assert_eq!(clone["args"][0]["value"], 2114060288u64, "{clone}");
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ", "{clone}");
    }
}

#[test]
fn twenty_trainings_back_to_back_each_start_their_container() {
    if !privileged("twenty_trainings_back_to_back_each_start_their_container") {
        return;
    }
    let dir = Scratch::new("rt-twenty");
    let tail = runc_tail();
    let cmd = ["sh", "-c", "ls /"];
    let files: Vec<PathBuf> = (0..20)
        .map(|i| {
            let (p, rep, out) = train(&dir, &format!("t{i}"), &[], &cmd);
            assert!(out.status.success(), "training {i}: {}", output_text(&out));
            let missing: Vec<String> = tail.difference(&allowed_names(&p)).cloned().collect();
            assert!(missing.is_empty(), "training {i} lacks {missing:?}");
            // What the runtime's tail adds unobserved is listed with why.
            let rep = rep.expect("report");
            let listed: BTreeSet<String> = rep["always_allowed"]
                .as_array()
                .expect("always_allowed")
                .iter()
                .filter_map(|b| b["name"].as_str().map(String::from))
                .collect();
            assert!(listed.contains("fchown"), "{}", rep["always_allowed"]);
            p
        })
        .collect();
    for (_, file) in distinct(&files) {
        starts_five_times(&file, &cmd);
    }
}

#[test]
fn a_profile_trained_on_the_vdso_holds_where_the_clock_is_a_syscall() {
    if !privileged("a_profile_trained_on_the_vdso_holds_where_the_clock_is_a_syscall") {
        return;
    }
    let dir = Scratch::new("rt-vdso");
    // The vDSO answers every clock read of this twin: training sees none of them.
    let (p, rep, out) = train(&dir, "vdso", &[], &["sysloop", "clock", "1000"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let rep = rep.expect("report");
    let observed: BTreeSet<String> = rep["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter_map(|s| s["name"].as_str().map(String::from))
        .collect();
    let vdso = [
        "clock_gettime",
        "gettimeofday",
        "time",
        "clock_getres",
        "getcpu",
    ];
    for name in vdso {
        assert!(
            !observed.contains(name),
            "{name} was observed: {observed:?}"
        );
        assert!(rep["always_allowed"].to_string().contains(name), "{name}");
    }
    // Where the vDSO can't read the clock every read is a syscall: the profile still holds.
    let raw = ["sysloop", "clock-raw", "1000"];
    let out = run_under(Some(&p), &raw);
    assert!(out.status.success(), "{}", output_text(&out));
    // Without the vDSO's calls it would not.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("profile")).expect("JSON");
    for rule in json["syscalls"].as_array_mut().expect("rules") {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !vdso.iter().any(|v| n == v));
        }
    }
    let stripped = dir.path("no-vdso.json");
    std::fs::write(&stripped, json.to_string()).expect("write");
    let out = run_under(Some(&stripped), &raw);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
}

/// `profile verify --fix` of profile `p` on `cmd`: the report's path, the fixed profile's,
/// and the output.
fn verify_fixing(dir: &Scratch, p: &Path, cmd: &[&str]) -> (PathBuf, PathBuf, Output) {
    let r = dir.path("v.json");
    let fixed = dir.path("fixed.json");
    let mut args = vec!["verify", "--image", test_image(), "--profile"];
    args.extend([p.to_str().expect("utf-8"), "--report"]);
    args.extend([r.to_str().expect("utf-8"), "--fix", "-o"]);
    args.extend([fixed.to_str().expect("utf-8"), "--"]);
    args.extend(cmd);
    let out = profile(&args);
    (r, fixed, out)
}

#[test]
fn verify_tells_the_bases_denials_from_the_profiles() {
    if !privileged("verify_tells_the_bases_denials_from_the_profiles") {
        return;
    }
    let dir = Scratch::new("rt-uring");
    // Like MariaDB: tries io_uring, and copes with EPERM (Docker's default denies it).
    let cmd = ["sh", "-c", "sysloop uring; sleep 1"];
    let (p, _, out) = train(&dir, "uring", &[], &cmd);
    assert!(out.status.success(), "{}", output_text(&out));
    let (r, fixed, out) = verify_fixing(&dir, &p, &cmd);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let v = report(&r);
    assert_eq!(v["passed"], true, "{v}");
    assert_eq!(v["denied"][0]["name"], "io_uring_setup", "{v}");
    assert_eq!(
        v["denied_by_base_too"],
        serde_json::json!(["io_uring_setup"])
    );
    assert!(
        text.contains("PASS: the profile denied nothing docker-default allows (it denied io_uring_setup, as docker-default does too)"),
        "{text}"
    );
    // Nothing to add within Docker's default: said, and nothing written.
    assert!(!fixed.exists(), "{text}");
    assert!(text.contains("nothing to add to"), "{text}");
    assert!(
        text.contains("not added, docker-default forbids them: io_uring_setup"),
        "{text}"
    );
    // A failing exercise has not shown that the workload works: not a PASS.
    let name = container_name("uring-ex");
    let out = profile(&[
        "verify",
        "--image",
        test_image(),
        "--profile",
        p.to_str().expect("utf-8"),
        "--name",
        &name,
        "--no-wait",
        "--exercise",
        "exit 127",
        "--",
        "sh",
        "-c",
        "sysloop uring; sleep 30",
    ]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "FAIL: the exercise exited 127: the workload was not shown to work under the profile"
        ),
        "{text}"
    );
    let _ = docker(&["rm", "-f", &name]);
}

/// Writes `profile` minus every mention of `name` to `to`.
fn without(profile: &Path, name: &str, to: &Path) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile).expect("profile")).expect("JSON");
    let rules = json["syscalls"].as_array_mut().expect("rules");
    for rule in rules.iter_mut() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != name);
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|n| !n.is_empty()));
    std::fs::write(to, serde_json::to_string_pretty(&json).expect("JSON")).expect("write");
}

#[test]
fn a_profile_lacking_a_call_of_runcs_go_runtime_fails_verify_naming_runc() {
    if !privileged("a_profile_lacking_a_call_of_runcs_go_runtime_fails_verify_naming_runc") {
        return;
    }
    let dir = Scratch::new("rt-lacking");
    let cmd = ["sh", "-c", "ls / >/dev/null"];
    let (p, rep, out) = train(&dir, "t", &[], &cmd);
    assert!(out.status.success(), "{}", output_text(&out));
    // The report says why each call of the binary is there.
    let rep = rep.expect("report");
    let why = rep["always_allowed"]
        .as_array()
        .expect("always_allowed")
        .iter()
        .find(|b| b["name"] == "nanosleep")
        .map(|b| b["reason"].to_string())
        .unwrap_or_default();
    assert!(
        why.contains("runc's Go runtime (go1.19.8)") && why.contains("runtime.usleep"),
        "{why}"
    );
    // nanosleep is never seen in a plain start: the start succeeds without it, but the
    // profile still fails, naming the runtime.
    let broken = dir.path("broken.json");
    without(&p, "nanosleep", &broken);
    let (r, fixed, out) = verify_fixing(&dir, &broken, &cmd);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let v = report(&r);
    assert_eq!(v["passed"], false, "{v}");
    assert_eq!(
        v["runtime_lacking"],
        serde_json::json!(["nanosleep"]),
        "{v}"
    );
    assert_eq!(v["runtime"], "runc 1.1.5+ds1", "{v}");
    assert!(
        text.contains("FAIL: the profile lacks nanosleep, which runc 1.1.5+ds1 can make after installing the filter"),
        "{text}"
    );
    // --fix puts it back, and the fixed profile passes.
    assert_eq!(allowed_names(&fixed), allowed_names(&p), "{text}");
    let out = profile(&[
        "verify",
        "--image",
        test_image(),
        "-q",
        "--profile",
        fixed.to_str().expect("utf-8"),
        "--",
        cmd[0],
        cmd[1],
        cmd[2],
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // Merging two profiles keeps the set.
    let merged = dir.path("merged.json");
    let out = profile(&[
        "merge",
        p.to_str().expect("utf-8"),
        fixed.to_str().expect("utf-8"),
        "-o",
        merged.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let missing: Vec<String> = runc_tail()
        .difference(&allowed_names(&merged))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "the merged profile lacks {missing:?}");
}

#[test]
fn a_docker_daemon_running_crun_gives_its_profiles_cruns_set() {
    if !privileged("a_docker_daemon_running_crun_gives_its_profiles_cruns_set") {
        return;
    }
    let daemon = PrivateDaemon::isolated(
        "crun",
        &[
            "--add-runtime",
            "crun=/usr/bin/crun",
            "--default-runtime",
            "crun",
        ],
    );
    let dir = Scratch::new("rt-crun");
    let p = dir.path("crun.json");
    let r = dir.path("crun.report.json");
    let cmd = ["sh", "-c", "ls / >/dev/null"];
    let out = daemon
        .profile()
        .args(["train", "--image", PRIVATE_IMAGE, "--network", "none", "-q"])
        .arg("-o")
        .arg(&p)
        .arg("--report")
        .arg(&r)
        .arg("--")
        .args(cmd)
        .output()
        .expect("profile train");
    assert!(out.status.success(), "{}", output_text(&out));
    let rep = report(&r);
    let why: Vec<String> = rep["always_allowed"]
        .as_array()
        .expect("always_allowed")
        .iter()
        .map(|b| format!("{}: {}", b["name"], b["reason"]))
        .collect();
    let why = why.join("\n");
    assert!(why.contains("by crun 1.8"), "{why}");
    assert!(
        !why.contains("by runc") && !why.contains("runc's Go runtime"),
        "{why}"
    );
    // crun's set, not runc's Go runtime's.
    let allowed = allowed_names(&p);
    for name in ["pselect6", "setresuid", "rt_sigprocmask"] {
        assert!(allowed.contains(name), "{name}: {allowed:?}");
    }
    for name in ["madvise", "sigaltstack"] {
        assert!(!allowed.contains(name), "{name}: {allowed:?}");
    }
    // A container crun starts under it starts every time.
    let opt = format!("seccomp={}", p.display());
    for i in 1..=5 {
        let mut args = vec!["run", "--rm", "--network", "none", "--security-opt"];
        args.extend([opt.as_str(), PRIVATE_IMAGE]);
        args.extend(cmd);
        let ok = daemon.docker(&args);
        assert!(ok.status.success(), "start {i}: {}", output_text(&ok));
    }
}
