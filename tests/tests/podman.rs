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
        let dir = Scratch::new(test);
        std::fs::write(
            dir.path("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n",
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
