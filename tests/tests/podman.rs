//! Podman's Docker-compatible service: `train` and `watch` work against it, and the profiles
//! run under `podman run --security-opt seccomp=`.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use profile_tests::*;

/// `podman system service` on a socket of the test's own, stopped when dropped. Podman needs
/// explicit ulimits here (the machine has no CAP_SYS_RESOURCE to raise them).
struct Podman {
    dir: Scratch,
    service: Child,
}

impl Podman {
    fn start(test: &str) -> Podman {
        Podman::start_with(test, None)
    }

    /// Podman's service running containers with `runtime` (its own default otherwise).
    fn start_with(test: &str, runtime: Option<&str>) -> Podman {
        let dir = Scratch::new(test);
        let engine = runtime
            .map(|r| format!("[engine]\nruntime = \"{r}\"\n"))
            .unwrap_or_default();
        std::fs::write(
            dir.path("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n{engine}"
            ),
        )
        .unwrap();
        let service = Command::new("podman")
            .env("CONTAINERS_CONF", dir.path("containers.conf"))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", dir.path("podman.sock").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service (apt-get install podman)");
        wait_until("podman's socket", Duration::from_secs(20), || {
            dir.path("podman.sock").exists().then_some(())
        });
        assert!(
            dir.path("podman.sock").exists(),
            "podman's socket never appeared"
        );
        let podman = Podman { dir, service };
        // The test image, handed over from the Docker Engine.
        let tar = podman.dir.path("image.tar");
        let saved = docker(&["save", "-o", tar.to_str().unwrap(), test_image()]);
        assert!(saved.status.success(), "{}", output_text(&saved));
        let loaded = podman.cli(&["load", "-i", tar.to_str().unwrap()]);
        assert!(loaded.status.success(), "{}", output_text(&loaded));
        podman
    }

    fn socket(&self) -> PathBuf {
        self.dir.path("podman.sock")
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", self.dir.path("containers.conf"))
            .arg("--url")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("podman")
    }

    fn profile(&self, args: &[&str]) -> Output {
        Command::new(profile_bin())
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("profile")
    }

    /// The test image as Podman names it.
    fn image(&self) -> String {
        format!("localhost/{}", test_image())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
    }
}

fn run_under_podman(p: &Podman, profile: &Path, cmd: &[&str]) -> Output {
    let seccomp = format!("seccomp={}", profile.display());
    let image = p.image();
    let mut args = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        &seccomp,
        &image,
    ];
    args.extend_from_slice(cmd);
    p.cli(&args)
}

#[test]
fn train_and_watch_against_podman() {
    if !privileged("train_and_watch_against_podman") {
        return;
    }
    let p = Podman::start("podman");
    let profile_path = p.dir.path("true.json");
    let out = p.profile(&[
        "train",
        "--image",
        &p.image(),
        "--network",
        "none",
        "-q",
        "-o",
        profile_path.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let ok = run_under_podman(&p, &profile_path, &["true"]);
    assert!(ok.status.success(), "{}", output_text(&ok));
    let denied = run_under_podman(&p, &profile_path, &["mkdir", "/tmp/x"]);
    assert!(
        output_text(&denied).contains("Operation not permitted"),
        "{}",
        output_text(&denied)
    );
    // watch: containers Podman runs while it watches.
    let dir = p.dir.path("watched");
    let label = format!("profile-test-podman-{}", std::process::id());
    let image = p.image();
    let script = format!(
        "for i in 1 2 3; do CONTAINERS_CONF={conf} podman --url unix://{sock} run --rm --network none --label {label} {image} true; done",
        conf = p.dir.path("containers.conf").display(),
        sock = p.socket().display(),
    );
    let out = p.profile(&[
        "watch",
        "-o",
        dir.to_str().unwrap(),
        "--filter",
        &format!("label={label}"),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let row = &index["profiles"][0];
    assert_eq!(row["runs"], 3, "{index}");
    assert_eq!(row["complete"], true, "{index}");
    let watched = dir.join(row["file"].as_str().unwrap());
    let ok = run_under_podman(&p, &watched, &["true"]);
    assert!(ok.status.success(), "{}", output_text(&ok));
}

/// The reasons the training report gives for what it allows unobserved, in one string.
fn reasons(report: &serde_json::Value) -> String {
    report["always_allowed"]
        .as_array()
        .expect("always_allowed")
        .iter()
        .map(|b| format!("{}: {}", b["name"], b["reason"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn podmans_runtime_is_the_one_it_runs_and_crun_profiles_carry_cruns_set() {
    if !privileged("podmans_runtime_is_the_one_it_runs_and_crun_profiles_carry_cruns_set") {
        return;
    }
    let cmd = ["sh", "-c", "ls / >/dev/null"];
    let mut allowed = Vec::new();
    for runtime in ["crun", "runc"] {
        let p = Podman::start_with(&format!("podman-{runtime}"), Some(runtime));
        let profile_path = p.dir.path("p.json");
        let report_path = p.dir.path("p.report.json");
        let mut args = vec!["train", "--image"];
        let image = p.image();
        args.extend([
            image.as_str(),
            "--network",
            "none",
            "-q",
            "-o",
            profile_path.to_str().unwrap(),
            "--report",
            report_path.to_str().unwrap(),
            "--",
        ]);
        args.extend(cmd);
        let out = p.profile(&args);
        assert!(out.status.success(), "{runtime}: {}", output_text(&out));
        let why = reasons(&report(&report_path));
        let other = if runtime == "crun" { "runc" } else { "crun" };
        assert!(
            why.contains(&format!("by {runtime} 1.")),
            "{runtime}: {why}"
        );
        assert!(!why.contains(&format!("by {other} 1.")), "{runtime}: {why}");
        // Every start under the profile works with the runtime it was learned with.
        for i in 1..=5 {
            let ok = run_under_podman(&p, &profile_path, &cmd);
            assert!(
                ok.status.success(),
                "{runtime}, start {i}: {}",
                output_text(&ok)
            );
        }
        allowed.push(allowed_names(&profile_path));
    }
    // runc's Go runtime is not crun's: crun's profile has none of its own calls.
    for name in ["madvise", "sigaltstack", "nanosleep", "munmap"] {
        assert!(!allowed[0].contains(name), "crun's profile allows {name}");
        assert!(allowed[1].contains(name), "runc's profile lacks {name}");
    }
}
