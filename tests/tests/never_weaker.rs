//! A learned profile never allows what the profile it replaces forbids: tested as an attacker
//! would, inside a container, against the same container under Docker's default.
use std::{collections::BTreeMap, path::Path};

use profile_tests::*;

const DEFAULT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tracer/assets/docker-default-seccomp.json"
);

const ATTACKS: &[&str] = &[
    "clone3_newuser",
    "clone_newuser",
    "clone_newns_net_pid",
    "unshare_user",
    "personality_aslr",
    "socket_vsock",
    "socket_alg",
    "socket_packet",
    "socket_netlink",
];

/// Runs every attack probe in one container under `profile`; returns probe → errno.
fn attack(profile: &Path) -> BTreeMap<String, i32> {
    let mut cmd = vec!["/bin/attack", "probe"];
    cmd.extend_from_slice(ATTACKS);
    let out = run_under(Some(profile), &cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "attack probes under {}: {}\n{stdout}{}",
        profile.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| {
            let (name, e) = l.split_once(" errno=")?;
            Some((name.to_string(), e.trim().parse().ok()?))
        })
        .collect()
}

#[test]
fn learned_profile_blocks_every_attack_the_default_blocks_and_more() {
    if !privileged("learned_profile_blocks_every_attack_the_default_blocks_and_more") {
        return;
    }
    let dir = Scratch::new("never-weaker");
    let (profile, report, out) = train(&dir, "benign", &[], &["/bin/attack", "benign"]);
    assert!(
        out.status.success(),
        "train: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report.expect("report");
    // The benign run still works under its profile, threads included (clone3 → ENOSYS).
    let ok = run_under(Some(&profile), &["/bin/attack", "benign"]);
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "benign ok",
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let learned = attack(&profile);
    let default = attack(Path::new(DEFAULT));
    assert_eq!(learned.len(), ATTACKS.len(), "{learned:?}");
    for name in ATTACKS {
        let (l, d) = (learned[*name], default[*name]);
        assert_ne!(l, 0, "{name} succeeded under the learned profile");
        if d != 0 {
            assert_eq!(
                l, d,
                "{name}: the learned profile answers unlike the default"
            );
        }
    }
    // Docker's default answers clone3 ENOSYS (glibc falls back); CAP_NET_RAW lets AF_PACKET
    // and netlink through there, not here.
    assert_eq!(default["clone3_newuser"], 38);
    assert_eq!(learned["clone3_newuser"], 38);
    assert_eq!(default["socket_packet"], 0);
    assert_eq!(default["socket_netlink"], 0);
    assert_eq!(learned["socket_packet"], libc::EPERM);
    // The report says what the argument rules block.
    let rules = report["argument_rules"].as_array().expect("argument_rules");
    let socket = rules
        .iter()
        .find(|r| r["syscall"] == "socket")
        .expect("socket rule");
    assert_eq!(
        socket["allows"],
        serde_json::json!(["AF_INET, SOCK_STREAM"])
    );
    let blocks = socket["blocks_beyond_default"].to_string();
    assert!(blocks.contains("AF_PACKET SOCK_RAW") && blocks.contains("AF_NETLINK"));
    assert_eq!(report["bound"], "docker-default");
    // And the tool itself agrees: nothing beyond the default.
    assert_within_default(&profile);
}

#[test]
fn allow_all_training_stays_within_the_default() {
    if !privileged("allow_all_training_stays_within_the_default") {
        return;
    }
    let dir = Scratch::new("allow-all-base");
    // Under allow-all the thread is made with clone3, and unshare succeeds.
    let (profile, report, out) = train(
        &dir,
        "explore",
        &["--base", "allow-all"],
        &[
            "sh",
            "-c",
            "/bin/attack benign && /bin/attack probe unshare_user",
        ],
    );
    assert!(
        out.status.success(),
        "train: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = report.expect("report");
    assert!(
        count(&report, "clone3") > 0,
        "clone3 observed under allow-all"
    );
    let names = allowed_names(&profile);
    assert!(!names.contains("unshare"), "{names:?}");
    assert!(!names.contains("clone3"), "{names:?}");
    let not_learned = report["not_learned"].to_string();
    assert!(not_learned.contains("unshare"), "{not_learned}");
    let ok = run_under(Some(&profile), &["/bin/attack", "benign"]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "benign ok");
    assert_within_default(&profile);
}

#[test]
fn capabilities_move_the_base() {
    if !privileged("capabilities_move_the_base") {
        return;
    }
    let dir = Scratch::new("cap-add");
    let cmd = ["/bin/attack", "probe", "unshare_user"];
    let (with, _, out) = train(&dir, "admin", &["--cap-add", "SYS_ADMIN"], &cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(allowed_names(&with).contains("unshare"));
    let (without, _, out) = train(&dir, "plain", &[], &cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!allowed_names(&without).contains("unshare"));
    // The capability-trained profile lets unshare through only with the capability.
    let admin = run_under_with(Some(&with), &["--cap-add", "SYS_ADMIN"], &cmd);
    assert_eq!(
        String::from_utf8_lossy(&admin.stdout).trim(),
        "unshare_user errno=0"
    );
}

#[test]
fn strict_arguments_deny_a_new_ioctl_and_verify_names_it() {
    if !privileged("strict_arguments_deny_a_new_ioctl_and_verify_names_it") {
        return;
    }
    let dir = Scratch::new("strict-ioctl");
    let (profile, _, out) = train(
        &dir,
        "ioctl",
        &["--learn-args", "strict"],
        &["/bin/attack", "ioctl", "2"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let two = run_under(Some(&profile), &["/bin/attack", "ioctl", "2"]);
    assert_eq!(String::from_utf8_lossy(&two.stdout).trim(), "ioctl ok");
    let three = run_under(Some(&profile), &["/bin/attack", "ioctl", "3"]);
    assert_eq!(
        String::from_utf8_lossy(&three.stdout).trim(),
        "ioctl 0x5421 errno=1"
    );
    let report = dir.path("verify.json");
    let v = profile_tests::profile(&[
        "verify",
        "--image",
        test_image(),
        "-q",
        "--profile",
        profile.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--",
        "/bin/attack",
        "ioctl",
        "3",
    ]);
    assert_eq!(
        v.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let json = profile_tests::report(&report);
    let denied = json["denied_arguments"].to_string();
    assert!(
        denied.contains("ioctl") && denied.contains("0x5421"),
        "{denied}"
    );
    assert_eq!(count_denied(&json, "ioctl"), 1);
    // --fix adds the denied value, not ioctl for every request.
    let fixed = dir.path("fixed.json");
    let v = verify_fix(&profile, &fixed, &["/bin/attack", "ioctl", "3"]);
    assert_eq!(v.status.code(), Some(1), "{}", output_text(&v));
    let three = run_under(Some(&fixed), &["/bin/attack", "ioctl", "3"]);
    assert_eq!(String::from_utf8_lossy(&three.stdout).trim(), "ioctl ok");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixed).unwrap()).unwrap();
    let ioctl: Vec<&serde_json::Value> = json["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["names"].to_string().contains("\"ioctl\""))
        .collect();
    assert_eq!(ioctl.len(), 3, "one rule per request: {ioctl:?}");
    assert!(ioctl.iter().all(|r| r["args"].is_array()), "{ioctl:?}");
}

#[test]
fn verify_fix_never_adds_what_the_default_forbids() {
    if !privileged("verify_fix_never_adds_what_the_default_forbids") {
        return;
    }
    let dir = Scratch::new("fix-within");
    let (profile, _, out) = train(&dir, "true", &[], &["true"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let fixed = dir.path("fixed.json");
    let v = verify_fix(
        &profile,
        &fixed,
        &["/bin/attack", "probe", "unshare_user", "socket_alg"],
    );
    // Docker's default denies them too and the workload copes: a PASS that names them, with
    // nothing to add, so nothing is written.
    assert_eq!(v.status.code(), Some(0), "{}", output_text(&v));
    assert!(output_text(&v).contains("not added"), "{}", output_text(&v));
    assert!(!fixed.exists(), "{}", output_text(&v));
    // The profile runs the workload, and the attacker's calls still fail.
    let fixed = profile;
    let run = run_under(
        Some(&fixed),
        &["/bin/attack", "probe", "unshare_user", "socket_alg"],
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "unshare_user errno=1\nsocket_alg errno=1",
        "{}",
        output_text(&run)
    );
    assert!(!allowed_names(&fixed).contains("unshare"));
    assert_within_default(&fixed);
}

/// `profile verify --fix -o FIXED` of `cmd` in the test image under `profile`.
fn verify_fix(profile: &Path, fixed: &Path, cmd: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        "--image",
        test_image(),
        "-q",
        "--profile",
        profile.to_str().unwrap(),
        "--fix",
        "-o",
        fixed.to_str().unwrap(),
        "--",
    ];
    args.extend_from_slice(cmd);
    profile_tests::profile(&args)
}

/// `profile diff` agrees: the profile allows nothing Docker's default doesn't.
fn assert_within_default(profile_path: &Path) {
    let diff = profile_tests::profile(&["diff", DEFAULT, profile_path.to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(0), "{}", output_text(&diff));
}

fn count_denied(report: &serde_json::Value, name: &str) -> u64 {
    report["denied"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["name"] == name)
        .map(|d| d["count"].as_u64().unwrap_or(0))
        .sum()
}
