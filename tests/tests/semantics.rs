//! Profiles written by others are read, merged and enforced as runc applies them: a merged
//! profile is accepted by the runtime and allows exactly the union; a bad base stops training
//! before anything runs.

use profile_tests::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer/tests/fixtures");

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// A learned profile that runs `sh` and the attack probe (what every merge below builds on).
fn learned(dir: &Scratch) -> String {
    let (p, _, out) = train(
        dir,
        "base",
        &[],
        &["sh", "-c", "/bin/attack probe socket_alg; echo hi"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    p.to_str().unwrap().to_string()
}

#[test]
fn merged_profiles_mean_the_union_under_runc() {
    if !privileged("merged_profiles_mean_the_union_under_runc") {
        return;
    }
    let dir = Scratch::new("semantics-merge");
    let base = learned(&dir);
    let merged = dir.path("m.json");
    // The deny (ENOSYS) comes first: written in that order, runc would keep it.
    let out = profile(&[
        "merge",
        &base,
        &fixture("deny-ptrace-enosys.json"),
        &fixture("allow-ptrace-minkernel.json"),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let run = run_under(Some(&merged), &["/bin/attack", "probe", "ptrace_traceme"]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "ptrace_traceme errno=0",
        "{}",
        output_text(&run)
    );
    // The tool's own reading agrees: ptrace is what the merge adds to the base.
    let diff = profile(&["diff", &base, merged.to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(1), "{}", output_text(&diff));
    let added: Vec<String> = String::from_utf8_lossy(&diff.stdout)
        .lines()
        .filter(|l| l.starts_with("+ "))
        .map(String::from)
        .collect();
    assert_eq!(added, ["+ ptrace"], "{}", output_text(&diff));
    // Only one input of each: the union is ptrace denied with ENOSYS, as that input says.
    let deny_only = dir.path("d.json");
    let out = profile(&[
        "merge",
        &base,
        &fixture("deny-ptrace-enosys.json"),
        "-o",
        deny_only.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let run = run_under(
        Some(&deny_only),
        &["/bin/attack", "probe", "ptrace_traceme"],
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "ptrace_traceme errno=38"
    );
}

#[test]
fn merged_arch_names_are_accepted_by_the_engine() {
    if !privileged("merged_arch_names_are_accepted_by_the_engine") {
        return;
    }
    let dir = Scratch::new("semantics-arches");
    let base = learned(&dir);
    let merged = dir.path("m.json");
    let out = profile(&[
        "merge",
        "--force",
        &base,
        &fixture("archmap-only.json"),
        &fixture("architectures-only.json"),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert!(json.get("archMap").is_none() || json.get("architectures").is_none());
    let run = run_under(Some(&merged), &["sh", "-c", "echo hi"]);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "hi",
        "{}",
        output_text(&run)
    );
}

#[test]
fn a_wider_profile_fails_the_gate() {
    let out = profile(&[
        "diff",
        "docker-default",
        &fixture("socket-all-but-vsock.json"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("+ socket: now also for arg0 in {0x26}"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn a_bad_base_stops_before_any_container() {
    if !privileged("a_bad_base_stops_before_any_container") {
        return;
    }
    let dir = Scratch::new("semantics-bad-base");
    let bad = dir.path("bad.json");
    std::fs::write(
        &bad,
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [}\n",
    )
    .unwrap();
    let name = container_name("bad-base");
    let out = profile(&[
        "train",
        "--image",
        test_image(),
        "--name",
        &name,
        "--base",
        bad.to_str().unwrap(),
        "-o",
        dir.path("p.json").to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("bad.json:3:"),
        "{}",
        output_text(&out)
    );
    assert!(!container_exists(&name));
    assert!(!dir.path("p.json").exists());
    // A base that denies what runc itself needs: the container can't start, and the message
    // names the base.
    let strict = dir.path("no-getdents.json");
    std::fs::write(
        &strict,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","execve","exit_group"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let out = profile(&[
        "train",
        "--image",
        test_image(),
        "-q",
        "--base",
        strict.to_str().unwrap(),
        "-o",
        dir.path("p.json").to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let t = output_text(&out);
    assert!(
        t.contains("could not start under the base profile") && t.contains("no-getdents.json"),
        "{t}"
    );
    assert!(!dir.path("p.json").exists());
}
