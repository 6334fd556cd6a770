//! Syscalls through the i386 ABI from 64-bit code (`int 0x80`): named from the i386 table, with
//! SCMP_ARCH_X86 in the profile; and a workload the filter kills (SIGSYS) fails verification.
use std::{path::Path, process::Output};

use profile_tests::{
    INT80, Scratch, abi_line as line, privileged, profile, record_with, report, test_image, train,
};

fn architectures(profile: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(profile).expect("profile written");
    let json: serde_json::Value = serde_json::from_str(&text).expect("profile is JSON");
    json["architectures"]
        .as_array()
        .expect("architectures")
        .iter()
        .filter_map(|a| a.as_str().map(String::from))
        .collect()
}

#[test]
fn int_0x80_from_64_bit_code_is_i386() {
    if !privileged("int_0x80_from_64_bit_code_is_i386") {
        return;
    }
    let dir = Scratch::new("int80-run");
    let rep = record_with(&dir, "r", &[], INT80, &["getppid", "1000"]);
    assert_eq!(line(&rep, "getppid", "i386")["count"], 1000, "{rep:#}");
    assert_eq!(line(&rep, "getppid", "x86_64")["count"], 1);
    assert!(line(&rep, "semget", "x86_64").is_null(), "{rep:#}");
    let archs = architectures(&dir.path("r.profile.json"));
    assert_eq!(archs, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]);
}

#[test]
fn trained_int_0x80_profile_verifies_and_a_sigsys_death_fails() {
    if !privileged("trained_int_0x80_profile_verifies_and_a_sigsys_death_fails") {
        return;
    }
    let dir = Scratch::new("int80-train");
    let mount = format!("{INT80}:/int80:ro");
    let flags = ["-v", mount.as_str(), "--verify"];
    let (trained, rep, out) = train(&dir, "t", &flags, &["/int80", "getppid", "100"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("verified under enforcement: PASS"), "{err}");
    let rep = rep.expect("report written");
    assert_eq!(line(&rep, "getppid", "i386")["count"], 100, "{rep:#}");
    assert_eq!(rep["verified"], true);
    assert!(architectures(&trained).contains(&"SCMP_ARCH_X86".to_string()));

    // Without SCMP_ARCH_X86 the filter kills the first i386 call: no denial is counted, yet
    // the workload died by seccomp's hand.
    let text = std::fs::read_to_string(&trained).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["architectures"] = serde_json::json!(["SCMP_ARCH_X86_64"]);
    let narrowed = dir.path("x86_64-only.json");
    std::fs::write(&narrowed, json.to_string()).unwrap();
    let verdict = dir.path("v.json");
    let out = verify_int80(&narrowed, &["--report", verdict.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("FAIL: the profile's filter killed the workload; the workload was killed by SIGSYS (159)"),
        "{err}"
    );
    let v = report(&verdict);
    assert_eq!(v["passed"], false);
    assert_eq!(v["killed_by_sigsys"], true);
    assert_eq!(v["exit_code"], 159);
    // The trained profile lets the calls through, and passes.
    let out = verify_int80(&trained, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `profile verify` of `int80 getppid 100` in the test image under `profile`.
fn verify_int80(profile_path: &Path, flags: &[&str]) -> Output {
    let mount = format!("{INT80}:/int80:ro");
    let mut args = vec!["verify", "--image", test_image(), "-q", "-v", &mount];
    args.extend_from_slice(&["--profile", profile_path.to_str().unwrap()]);
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "/int80", "getppid", "100"]);
    profile(&args)
}
