//! The CI loop against the real Docker Engine and kernel: verify under enforcement, fix, merge,
//! diff, convergence over runs, and the OCI / Kubernetes / complain-mode outputs.
use std::{path::Path, process::Command};

use profile_tests::{
    Scratch, allowed_names, docker, output_text, privileged, profile, report, run_under,
    test_image, train,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_code(out: &std::process::Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `profile verify --image <test image> -q --profile P [FLAGS] -- CMD…`
fn verify(p: &Path, flags: &[&str], cmd: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        "--image",
        test_image(),
        "-q",
        "--profile",
        p.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(cmd);
    profile(&args)
}

/// Writes `profile` minus `name` to `to`.
fn without(profile: &Path, name: &str, to: &Path) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile).unwrap()).unwrap();
    let names = json["syscalls"][0]["names"].as_array_mut().unwrap();
    let before = names.len();
    names.retain(|n| n != name);
    assert_eq!(names.len() + 1, before, "{name} was not in the profile");
    std::fs::write(to, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

const WORKLOAD: [&str; 3] = ["sh", "-c", "ls /; mkdir /tmp/d && echo made"];

#[test]
fn a_fresh_profile_verifies_and_train_verify_passes() {
    if !privileged("a_fresh_profile_verifies_and_train_verify_passes") {
        return;
    }
    let dir = Scratch::new("ci-verify");
    let (p, rep, out) = train(&dir, "w", &["--verify"], &WORKLOAD);
    assert_code(&out, 0, "train --verify");
    assert_eq!(rep.unwrap()["verified"], true);
    assert!(text(&out.stderr).contains("PASS"), "{}", text(&out.stderr));

    let r = dir.path("verify.json");
    let out = verify(&p, &["--report", r.to_str().unwrap()], &WORKLOAD);
    assert_code(&out, 0, "verify");
    let v = report(&r);
    assert_eq!(v["passed"], true);
    assert_eq!(v["errno"], 3797);
    assert_eq!(v["denied"].as_array().unwrap().len(), 0);
    assert_eq!(v["exit_code"], 0);
}

#[test]
fn verify_names_a_missing_syscall_and_fix_repairs_it() {
    if !privileged("verify_names_a_missing_syscall_and_fix_repairs_it") {
        return;
    }
    let dir = Scratch::new("ci-fix");
    let (p, _, out) = train(&dir, "w", &[], &WORKLOAD);
    assert_code(&out, 0, "train");
    let broken = dir.path("broken.json");
    without(&p, "mkdir", &broken);
    let fixed = dir.path("fixed.json");
    let r = dir.path("verify.json");
    // Without -q: the container's output comes to stderr.
    let out = profile(&[
        "verify",
        "--image",
        test_image(),
        "--profile",
        broken.to_str().unwrap(),
        "--fix",
        "-o",
        fixed.to_str().unwrap(),
        "--report",
        r.to_str().unwrap(),
        "--",
        WORKLOAD[0],
        WORKLOAD[1],
        WORKLOAD[2],
    ]);
    // The workload saw the verification errno, not one of its own.
    assert!(
        text(&out.stderr).contains("mkdir: can't create directory '/tmp/d': Unknown error 3797"),
        "{}",
        text(&out.stderr)
    );
    assert_code(&out, 1, "verify of the broken profile");
    let v = report(&r);
    assert_eq!(v["passed"], false);
    let denied = v["denied"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["name"], "mkdir");
    assert_eq!(denied[0]["count"], 1);
    assert_eq!(denied[0]["first_program"], "mkdir");
    assert!(allowed_names(&fixed).contains("mkdir"));
    assert_eq!(allowed_names(&fixed), allowed_names(&p));
    assert_code(
        &verify(&fixed, &[], &WORKLOAD),
        0,
        "verify of the fixed profile",
    );

    // diff is the gate: the fixed profile allows more than the broken one, not the reverse.
    let out = profile(&["diff", broken.to_str().unwrap(), fixed.to_str().unwrap()]);
    assert_code(&out, 1, "diff broken fixed");
    assert!(
        text(&out.stdout).contains("+ mkdir"),
        "{}",
        text(&out.stdout)
    );
    let out = profile(&[
        "diff",
        fixed.to_str().unwrap(),
        broken.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_code(&out, 0, "diff fixed broken");
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["allows_more"], false);
    assert_eq!(d["removed"], serde_json::json!(["mkdir"]));
    assert_eq!(d["added"], serde_json::json!([]));
}

#[test]
fn a_denial_inside_the_runtime_is_named_too() {
    if !privileged("a_denial_inside_the_runtime_is_named_too") {
        return;
    }
    // runc itself lists /proc/self/fd after the filter is in place: without getdents64 the
    // container can't start, and verify says which call and which program.
    let dir = Scratch::new("ci-runtime");
    let (p, _, out) = train(&dir, "w", &[], &["true"]);
    assert_code(&out, 0, "train true");
    let broken = dir.path("broken.json");
    without(&p, "getdents64", &broken);
    let r = dir.path("v.json");
    let out = verify(&broken, &["--report", r.to_str().unwrap()], &["true"]);
    assert_code(&out, 1, "verify");
    let v = report(&r);
    assert_eq!(v["stopped_by"], "start_failed");
    // The denial is the runtime's, before it handed over: not the workload's.
    assert_eq!(v["denied"], serde_json::json!([]));
    assert_eq!(v["runtime_denied"][0]["name"], "getdents64");
    assert_eq!(v["runtime_denied"][0]["first_program"], "runc:[2:INIT]");
    assert!(
        output_text(&out)
            .contains("FAIL: runc:[2:INIT] was denied getdents64: the container could not start"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn merged_profiles_run_both_workloads() {
    if !privileged("merged_profiles_run_both_workloads") {
        return;
    }
    let dir = Scratch::new("ci-merge");
    let a_cmd = ["sh", "-c", "mkdir /tmp/a && echo made"];
    let b_cmd = ["sysloop", "threads", "2", "10"];
    let (a, _, out) = train(&dir, "a", &[], &a_cmd);
    assert_code(&out, 0, "train a");
    let (b, _, out) = train(&dir, "b", &[], &b_cmd);
    assert_code(&out, 0, "train b");
    let m = dir.path("merged.json");
    let out = profile(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
    ]);
    assert_code(&out, 0, "merge");
    let merged = allowed_names(&m);
    for name in allowed_names(&a).iter().chain(allowed_names(&b).iter()) {
        assert!(merged.contains(name), "{name} missing from the merge");
    }
    let under_a = run_under(Some(&m), &a_cmd);
    assert_code(&under_a, 0, "workload a under the merge");
    assert!(text(&under_a.stdout).contains("made"));
    assert_code(
        &run_under(Some(&m), &b_cmd),
        0,
        "workload b under the merge",
    );
    // b alone never made mkdir: a's workload fails under it.
    assert!(!run_under(Some(&b), &a_cmd).status.success());

    // Different default actions are refused, with the reason, unless --force.
    let log = dir.path("log.json");
    let out = profile(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--default-action",
        "log",
        "-o",
        log.to_str().unwrap(),
    ]);
    assert_code(&out, 0, "merge --default-action log");
    let refused = dir.path("refused.json");
    let out = profile(&[
        "merge",
        a.to_str().unwrap(),
        log.to_str().unwrap(),
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert_code(&out, 2, "merge of ERRNO and LOG profiles");
    assert!(
        text(&out.stderr).contains("default action"),
        "{}",
        text(&out.stderr)
    );
    assert!(!refused.exists());
    let out = profile(&[
        "merge",
        a.to_str().unwrap(),
        log.to_str().unwrap(),
        "--force",
        "-o",
        refused.to_str().unwrap(),
    ]);
    assert_code(&out, 0, "merge --force");
}

/// Whether the kernel log holds a line for a mkdir by a program named `comm` that a seccomp
/// filter let through with SCMP_ACT_LOG.
fn logged_mkdir(comm: &str) -> bool {
    let out = Command::new("dmesg").output().expect("dmesg");
    text(&out.stdout).lines().any(|l| {
        l.contains("type=1326")
            && l.contains(&format!("comm=\"{comm}\""))
            && l.contains("syscall=83 ")
            && l.contains("code=0x7ffc0000")
    })
}

#[test]
fn complain_mode_allows_and_logs() {
    if !privileged("complain_mode_allows_and_logs") {
        return;
    }
    let dir = Scratch::new("ci-log");
    let (p, _, out) = train(
        &dir,
        "w",
        &["--default-action", "log"],
        &["sh", "-c", "ls /tmp && echo ok"],
    );
    assert_code(&out, 0, "train --default-action log");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_LOG");
    assert!(json.get("defaultErrnoRet").is_none());
    // The mkdir runs as a program of a name of its own, so that its log line is told apart
    // from every other test's.
    let comm = format!("mk{}", std::process::id() % 100_000);
    let script = format!("cp /bin/sysloop /tmp/{comm} && /tmp/{comm} mkdir /tmp/x && echo ok");
    // The kernel rate-limits these lines (a burst of 10 per 5 s): other tests' bursts may
    // crowd one out, so the call is made again after the limit's interval.
    let mut logged = false;
    for _ in 0..3 {
        let out = run_under(Some(&p), &["sh", "-c", &script]);
        assert_code(&out, 0, "an untrained call under complain mode");
        assert!(text(&out.stdout).contains("ok"));
        // The kernel logged it (audit type 1326, SECCOMP_RET_LOG).
        if logged_mkdir(&comm) {
            logged = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(6));
    }
    assert!(logged, "no kernel log line for {comm}'s mkdir");
}

#[test]
fn training_runs_report_convergence() {
    if !privileged("training_runs_report_convergence") {
        return;
    }
    let dir = Scratch::new("ci-runs");
    let (_, rep, out) = train(&dir, "w", &["--runs", "3"], &["sh", "-c", "ls /"]);
    assert_code(&out, 0, "train --runs 3");
    let rep = rep.unwrap();
    let runs = rep["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0]["added"], runs[0]["distinct"]);
    let later: u64 = runs[1..].iter().map(|r| r["added"].as_u64().unwrap()).sum();
    let total = rep["syscalls"].as_array().unwrap().len() as u64;
    assert_eq!(runs[0]["added"].as_u64().unwrap() + later, total);
    for r in &runs[1..] {
        assert_eq!(
            r["added_names"].as_array().unwrap().len() as u64,
            r["added"].as_u64().unwrap()
        );
    }
    // Three containers ran the workload: counts add up over the runs.
    let (_, once, out) = train(&dir, "once", &[], &["sh", "-c", "ls /"]);
    assert_code(&out, 0, "train once");
    let once = profile_tests::count(&once.unwrap(), "exit_group");
    assert!(once > 0);
    assert_eq!(profile_tests::count(&rep, "exit_group"), 3 * once);
}

#[test]
fn oci_output_is_enforced_by_runc() {
    if !privileged("oci_output_is_enforced_by_runc") {
        return;
    }
    let dir = Scratch::new("ci-oci");
    let cmd = ["sh", "-c", "ls /; echo hi"];
    let (oci, _, out) = train(&dir, "w", &["--format", "oci"], &cmd);
    assert_code(&out, 0, "train --format oci");
    let seccomp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&oci).unwrap()).unwrap();
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(
        seccomp["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64"])
    );
    assert!(seccomp["syscalls"][0]["names"].as_array().unwrap().len() > 10);

    // An OCI bundle of the test image, with the object as linux.seccomp, run by runc itself.
    let bundle = dir.path("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let created = docker(&["create", test_image()]);
    assert_code(&created, 0, "docker create");
    let id = text(&created.stdout).trim().to_string();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker export {id} | tar -x -C {}",
            rootfs.display()
        ))
        .status()
        .unwrap();
    let _ = docker(&["rm", &id]);
    assert!(status.success());
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(spec.success());
    let run = |args: &[&str], name: &str| {
        let path = bundle.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(args);
        config["root"]["readonly"] = false.into();
        config["linux"]["seccomp"] = seccomp.clone();
        std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
        Command::new("runc")
            .arg("--root")
            .arg(dir.path("runc-state"))
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("profile-test-oci-{name}-{}", std::process::id()))
            .output()
            .unwrap()
    };
    let ok = run(&cmd, "ok");
    assert_code(&ok, 0, "runc run under the OCI object");
    assert!(text(&ok.stdout).contains("hi"));
    let denied = run(&["mkdir", "/tmp/x"], "denied");
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains("Operation not permitted"),
        "{}",
        text(&denied.stderr)
    );
}

#[test]
fn kubernetes_output_is_an_spo_manifest() {
    if !privileged("kubernetes_output_is_an_spo_manifest") {
        return;
    }
    let dir = Scratch::new("ci-k8s");
    let (docker_json, _, out) = train(&dir, "d", &[], &["ls", "/"]);
    assert_code(&out, 0, "train");
    let yaml = dir.path("p.yaml");
    let out = profile(&[
        "merge",
        docker_json.to_str().unwrap(),
        docker_json.to_str().unwrap(),
        "--format",
        "k8s",
        "--k8s-name",
        "My_App",
        "-o",
        yaml.to_str().unwrap(),
    ]);
    assert_code(&out, 0, "merge --format k8s");
    let manifest: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&yaml).unwrap()).unwrap();
    assert_eq!(
        manifest["apiVersion"].as_str(),
        Some("security-profiles-operator.x-k8s.io/v1beta1")
    );
    assert_eq!(manifest["kind"].as_str(), Some("SeccompProfile"));
    assert_eq!(manifest["metadata"]["name"].as_str(), Some("my-app"));
    let spec = &manifest["spec"];
    assert_eq!(spec["defaultAction"].as_str(), Some("SCMP_ACT_ERRNO"));
    assert_eq!(spec["architectures"][0].as_str(), Some("SCMP_ARCH_X86_64"));
    assert_eq!(
        spec["syscalls"][0]["action"].as_str(),
        Some("SCMP_ACT_ALLOW")
    );
    let names: std::collections::BTreeSet<String> = spec["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(names.is_subset(&allowed_names(&docker_json)), "{names:?}");
    // Read back, the manifest allows what the Docker profile does.
    assert_eq!(allowed_names(&yaml), allowed_names(&docker_json));

    // train writes .yaml by default for k8s.
    let out = Command::new(profile_tests::profile_bin())
        .args([
            "train",
            "--image",
            test_image(),
            "-q",
            "--format",
            "k8s",
            "--",
            "true",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_code(&out, 0, "train --format k8s");
    let stem = profile_tests::test_image_stem();
    let text = std::fs::read_to_string(dir.path(&format!("profiles/{stem}.yaml"))).unwrap();
    assert!(text.contains(&format!("name: {stem}")), "{text}");
}

#[test]
fn bad_profiles_are_reported_with_positions() {
    let dir = Scratch::new("ci-bad");
    let bad = dir.path("bad.json");
    std::fs::write(
        &bad,
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [,]\n}\n",
    )
    .unwrap();
    let out_path = dir.path("out.json");
    let b = bad.to_str().unwrap();
    for args in [
        vec!["report", b],
        vec!["diff", b, b],
        vec!["merge", b, b, "-o", out_path.to_str().unwrap()],
    ] {
        let out = profile(&args);
        assert_code(&out, 2, &format!("{args:?}"));
        assert!(
            text(&out.stderr).contains(&format!("{b}:3:16")),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(!out_path.exists(), "nothing is written on error");

    let unknown = dir.path("unknown.json");
    std::fs::write(
        &unknown,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{"names":["read","no_such_call","socketcall"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    // Once: in the report, which carries it, and not again on stderr.
    let warning = "2 name(s) unknown to the profile's architectures, which Docker ignores silently: no_such_call, socketcall";
    let out = profile(&["report", unknown.to_str().unwrap()]);
    assert_code(&out, 0, "report");
    let both = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(both.matches(warning).count(), 1, "{both}");
    assert!(text(&out.stdout).contains(warning));
    // Commands without a report say it on stderr.
    let u = unknown.to_str().unwrap();
    let out = profile(&["diff", u, u]);
    assert_code(&out, 0, "diff");
    assert_eq!(
        text(&out.stderr).matches(warning).count(),
        2,
        "one per input"
    );

    // An errno above the kernel's cap (moby's own example fixture names 12345) is read, as
    // runc reads it, and the kernel's answer is said; one beyond 16 bits is refused.
    let capped = dir.path("capped.json");
    std::fs::write(
        &capped,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":12345}]}"#,
    )
    .unwrap();
    let c = capped.to_str().unwrap();
    let out = profile(&["report", c]);
    assert_code(&out, 0, "report of errno 12345");
    assert!(
        text(&out.stdout).contains("errno 12345 above 4095: the kernel returns errno 4095"),
        "{}",
        text(&out.stdout)
    );
    let out = profile(&["diff", c, c]);
    assert_code(&out, 0, "diff of errno 12345");
    // Enforced, the kernel answers 4095 (exit status 255), not 12345 (it would be 57).
    let made = dir.path("made");
    let out = profile(&[
        "exec",
        "--profile",
        c,
        "--",
        profile_tests::SYSLOOP,
        "mkdir",
        made.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(4095 & 0xff),
        "{}",
        text(&out.stderr)
    );
    assert!(!made.exists());
    std::fs::write(
        &capped,
        text(&std::fs::read(&capped).unwrap()).replace("12345", "70000"),
    )
    .unwrap();
    let out = profile(&["report", c]);
    assert_code(&out, 2, "report of errno 70000");
    assert!(
        text(&out.stderr).contains("out of range"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn report_of_docker_default() {
    let out = profile(&["report", "docker-default", "--format", "json"]);
    assert_code(&out, 0, "report docker-default");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 309 of the pinned x86_64 table's 383 names, with Docker's 14 default capabilities.
    assert_eq!(r["allowed"], 309);
    assert_eq!(r["docker_default_allowed"], 309);
    assert_eq!(r["kernel_syscalls"], 383);
    assert_eq!(r["reduction_vs_docker_default_percent"], 0.0);
    assert_eq!(r["reduction_vs_kernel_percent"], 19.3);
    assert_eq!(r["mode"], "profile");
    let dangerous: Vec<&str> = r["allowed_dangerous"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert!(dangerous.contains(&"ptrace"), "{dangerous:?}");
    let md = profile(&["report", "docker-default", "--format", "md"]);
    assert!(text(&md.stdout).starts_with("# Seccomp profile for `docker-default`"));
}

#[test]
fn the_example_ci_gate() {
    if !privileged("the_example_ci_gate") {
        return;
    }
    let dir = Scratch::new("ci-gate");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ci/profile-gate.sh");
    let bin_dir = profile_tests::profile_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let reports = dir.path("reports");
    let gate = |baseline: &Path, cmd: &[&str]| {
        Command::new("sh")
            .arg(&script)
            .arg(test_image())
            .arg(baseline)
            .arg("--")
            .args(cmd)
            .env("PATH", &path)
            .env("PROFILE_RUNS", "2")
            .env("PROFILE_GATE_REPORTS", &reports)
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    // No baseline yet (nor its directory): the fresh profile is adopted, with its summary.
    let baseline = dir.path("profiles/base.json");
    let summary = dir.path("profiles/base.md");
    let out = gate(&baseline, &["sh", "-c", "ls /"]);
    assert_code(&out, 0, "first gate run");
    assert!(baseline.exists());
    assert!(text(&out.stderr).contains("adopted"));
    let committed = std::fs::read_to_string(&summary).expect("the summary beside the baseline");
    assert!(
        committed.starts_with("# Seccomp profile for"),
        "{committed}"
    );
    // The same workload again: the committed summary is left as it was, the full report
    // (with the comparison) goes elsewhere.
    let out = gate(&baseline, &["sh", "-c", "ls /"]);
    assert_code(&out, 0, "gate within the baseline");
    assert_eq!(
        std::fs::read_to_string(&summary).expect("summary"),
        committed,
        "a passing gate rewrote the committed summary"
    );
    let full = std::fs::read_to_string(reports.join("base.md")).expect("the full report");
    assert!(full.contains("## Compared with"), "{full}");
    // The image now needs mkdir: the gate fails and names it.
    let out = gate(&baseline, &["sh", "-c", "ls /; mkdir /tmp/x"]);
    assert_code(&out, 1, "gate with a new syscall");
    assert!(
        text(&out.stdout).contains("+ mkdir"),
        "{}",
        text(&out.stdout)
    );
    let full = std::fs::read_to_string(reports.join("base.md")).expect("the full report");
    assert!(full.contains("# Seccomp profile for") && full.contains("+ mkdir"));
    // A failing gate leaves the committed summary as it was; the fresh one, which the
    // changed profile changed, goes to the reports, without the comparison.
    assert_eq!(
        std::fs::read_to_string(&summary).expect("summary"),
        committed,
        "a failing gate rewrote the committed summary"
    );
    let fresh = std::fs::read_to_string(reports.join("base.summary.md")).expect("fresh summary");
    assert!(
        fresh != committed && !fresh.contains("Compared with"),
        "{fresh}"
    );
    assert!(
        text(&out.stderr).contains("is left as it was"),
        "{}",
        text(&out.stderr)
    );
    // A baseline that allows everything on x86_64: nothing new, the gate passes.
    let wide = dir.path("wide.json");
    let names: Vec<&str> = tracer::names::Abi::X86_64.names();
    std::fs::write(
        &wide,
        serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}],
        })
        .to_string(),
    )
    .unwrap();
    assert_code(
        &gate(&wide, &["sh", "-c", "ls /"]),
        0,
        "gate within the baseline",
    );
}

#[test]
fn verify_names_what_docker_default_denies() {
    if !privileged("verify_names_what_docker_default_denies") {
        return;
    }
    // unshare sits in Docker's CAP_SYS_ADMIN-only rules: without that capability the rule is
    // dropped and the default action denies it, which verify counts and names.
    let out = verify(Path::new("docker-default"), &[], &["unshare", "-U", "true"]);
    assert_code(&out, 1, "verify under Docker's default");
    let shown = text(&out.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("unshare") && l.trim_end().ends_with("unshare")),
        "{shown}"
    );
}
