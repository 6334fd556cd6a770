//! The release artifacts of `cargo xtask dist` (target/dist/): a static executable that runs
//! in a `FROM scratch` image, the tarball's completions and man pages, and the image
//! `profile:<version>` learning what the host build learns, given the host's view by the
//! documented `docker run` options, and naming what it lacks without one.
//!
//! `cargo xtask test` builds target/dist first (once per run); these tests reuse it.
use std::{
    collections::BTreeSet,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use profile_tests::{
    Scratch, allowed_names, build_image, docker, free_port, output_text, privileged, profile,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `docker run` gives the image (README, "Install"), each with what its absence is
/// named as. The output folder is mounted by each test.
const RUN_OPTIONS: [(&[&str], &str); 4] = [
    (&["--cap-add", "SYS_ADMIN"], "--cap-add SYS_ADMIN"),
    (
        &["-v", "/var/run/docker.sock:/var/run/docker.sock"],
        "-v /var/run/docker.sock:/var/run/docker.sock",
    ),
    (
        &["-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro"],
        "-v /sys/fs/cgroup:/sys/fs/cgroup:ro",
    ),
    (
        &["-v", "/sys/kernel/tracing:/sys/kernel/tracing:ro"],
        "-v /sys/kernel/tracing:/sys/kernel/tracing:ro",
    ),
];

/// target/dist, when `cargo xtask dist` has filled it; outside CI a test without it skips,
/// saying so.
fn dist(test: &str) -> Option<PathBuf> {
    let dir = profile_tests::profile_bin()
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("dist");
    if dir.join(executable_name()).exists() {
        return Some(dir);
    }
    let why = format!(
        "{} has no release build: run `cargo xtask dist`",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}, and CI must not skip it");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

fn executable_name() -> String {
    format!("profile-{VERSION}-x86_64-linux")
}

/// The image built from the repository's Dockerfile with `dir` as its context (what `cargo
/// xtask dist --image` does), once per test process.
fn image(dir: &Path) -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = format!("profile:{VERSION}");
        let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile");
        let out = Command::new("docker")
            .args(["build", "-q", "-t", &image, "--build-arg"])
            .arg(format!("VERSION={VERSION}"))
            .arg("-f")
            .arg(dockerfile)
            .arg(dir)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build");
        assert!(
            out.status.success(),
            "building {image}: {}",
            output_text(&out)
        );
        image
    })
}

/// `docker run --rm OPTIONS… -v DIR:DIR IMAGE ARGS…`: the folder is mounted at the same path.
fn in_image(image: &str, options: &[&str], dir: &Path, args: &[&str]) -> Output {
    let mount = format!("{0}:{0}", dir.display());
    docker(
        &[&["run", "--rm"][..], options, &["-v", &mount, image], args]
            .concat()
            .iter()
            .map(|s| &**s)
            .collect::<Vec<_>>(),
    )
}

fn all_options() -> Vec<&'static str> {
    RUN_OPTIONS
        .iter()
        .flat_map(|(o, _)| o.iter().copied())
        .collect()
}

/// The profile's rules with argument conditions, as text: what the comparison of two trainings
/// looks at beside the names.
fn argument_rules(path: &Path) -> BTreeSet<String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|rule| rule["args"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|rule| format!("{} {} {}", rule["names"], rule["action"], rule["args"]))
        .collect()
}

/// The example web image (examples/images/web plus the host's static busybox), as `cargo xtask
/// images` builds it.
fn web_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = "profile-example/web:latest".to_string();
        let ctx = Scratch::new("dist-web-image");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/web");
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), ctx.path(&entry.file_name().to_string_lossy())).unwrap();
        }
        std::fs::copy("/bin/busybox", ctx.path("busybox")).expect("/bin/busybox");
        if let Err(why) = build_image(&image, &ctx.0) {
            panic!("{why}");
        }
        image
    })
}

#[test]
fn the_release_executable_is_static_and_names_its_build() {
    let Some(dir) = dist("the_release_executable_is_static_and_names_its_build") else {
        return;
    };
    use object::{
        Endianness,
        elf::{DT_NEEDED, FileHeader64, PT_DYNAMIC, PT_INTERP},
        read::elf::{Dyn as _, FileHeader as _, ProgramHeader as _},
    };
    let bytes = std::fs::read(dir.join(executable_name())).unwrap();
    let elf = FileHeader64::<Endianness>::parse(&*bytes).expect("an ELF64 file");
    let endian = elf.endian().unwrap();
    let mut needed = 0;
    for header in elf.program_headers(endian, &*bytes).unwrap() {
        assert_ne!(
            header.p_type(endian),
            PT_INTERP,
            "it names a program interpreter"
        );
        if header.p_type(endian) == PT_DYNAMIC {
            let entries = header.dynamic(endian, &*bytes).unwrap().unwrap_or_default();
            needed += entries
                .iter()
                .filter(|d| d.d_tag(endian) == DT_NEEDED)
                .count();
        }
    }
    assert_eq!(needed, 0, "it needs shared libraries");

    // SHA256SUMS names both artifacts and holds.
    let out = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let checked = String::from_utf8_lossy(&out.stdout);
    assert!(
        checked.contains(&format!("{}: OK", executable_name())),
        "{checked}"
    );
    assert!(
        checked.contains(&format!("{}.tar.gz: OK", executable_name())),
        "{checked}"
    );

    // --version: the version, the commit, the embedded object's hash (the same object the
    // host build embeds) and the target.
    let version = Command::new(dir.join(executable_name()))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("profile {VERSION}"), "{text}");
    let commit = lines[1].strip_prefix("commit ").expect("a commit line");
    assert!(
        commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
    let host = String::from_utf8_lossy(&profile(&["--version"]).stdout).into_owned();
    let object_line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("ebpf sha256 "))
            .map(str::to_string)
    };
    assert_eq!(object_line(&text), object_line(&host), "{text}\n{host}");
    assert_eq!(object_line(&text).map(|l| l.len()), Some(12 + 64));
    assert_eq!(lines[3], "target x86_64-unknown-linux-musl", "{text}");
}

#[test]
fn completions_load_in_bash_zsh_and_fish_and_man_pages_render() {
    let Some(dir) = dist("completions_load_in_bash_zsh_and_fish_and_man_pages_render") else {
        return;
    };
    let unpacked = Scratch::new("dist-tarball");
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(dir.join(format!("{}.tar.gz", executable_name())))
        .arg("-C")
        .arg(&unpacked.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let top = unpacked.path(&executable_name());
    for file in [
        "profile",
        "README.md",
        "docs/train.md",
        "LICENSE-APACHE",
        "LICENSE-MIT",
        "completions/profile.bash",
        "completions/_profile",
        "completions/profile.fish",
    ] {
        assert!(top.join(file).is_file(), "{file} is not in the tarball");
    }
    assert_eq!(
        std::fs::read(top.join("profile")).unwrap(),
        std::fs::read(dir.join(executable_name())).unwrap()
    );

    profile_tests::completions_load(&top.join("completions"));

    // One page for profile and one per subcommand, each rendered by man without a warning.
    let help = String::from_utf8_lossy(&profile(&["--help"]).stdout).into_owned();
    let subcommands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(subcommands.contains(&"train"), "{help}");
    let pages = std::iter::once("profile".to_string())
        .chain(subcommands.iter().map(|s| format!("profile-{s}")));
    for page in pages {
        let path = top.join(format!("man/man1/{page}.1"));
        assert!(path.is_file(), "{} is missing", path.display());
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("man (apt-get install man-db)");
        assert!(out.status.success(), "man {page}: {}", output_text(&out));
        assert!(
            out.stderr.is_empty(),
            "man {page} warned: {}",
            output_text(&out)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NAME"), "{page}");
        // Nothing the tarball doesn't hold, and the shipped executable's version.
        assert!(!text.contains("profile-help"), "{page}: {text}");
        assert!(!text.contains("gnu"), "{page}: {text}");
        if page == "profile-train" {
            let synopsis = text.split("DESCRIPTION").next().unwrap_or_default();
            let words: Vec<&str> = synopsis.split_whitespace().collect();
            assert!(
                words.windows(2).any(|w| w == ["--image", "IMAGE"]),
                "{synopsis}"
            );
        }
    }
}

#[test]
fn the_image_runs_with_nothing_but_the_executable() {
    if !privileged("the_image_runs_with_nothing_but_the_executable") {
        return;
    }
    let Some(dir) = dist("the_image_runs_with_nothing_but_the_executable") else {
        return;
    };
    let image = image(&dir);
    let scratch = Scratch::new("dist-scratch");
    let out = in_image(image, &[], &scratch.0, &["--version"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("profile {VERSION}\n")));
    let out = in_image(
        image,
        &[],
        &scratch.0,
        &["report", "docker-default", "--format", "json"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["allowed"], 309);
    // exec enforces a profile with nothing else in the image: the executable runs itself.
    let out = in_image(
        image,
        &[],
        &scratch.0,
        &[
            "exec",
            "--profile",
            "docker-default",
            "--",
            "/usr/local/bin/profile",
            "--version",
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("profile "));
}

#[test]
fn the_image_learns_what_the_host_build_learns() {
    if !privileged("the_image_learns_what_the_host_build_learns") {
        return;
    }
    let Some(dir) = dist("the_image_learns_what_the_host_build_learns") else {
        return;
    };
    let image = image(&dir);
    let web = web_image();
    let scratch = Scratch::new("dist-train");
    let host = scratch.path("host.json");
    let port = free_port().to_string();
    let published = format!("127.0.0.1:{port}:8080");
    let out = profile(&[
        "train",
        "--image",
        web,
        "-p",
        &published,
        "-q",
        "-o",
        host.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "host build: {}", output_text(&out));

    let imaged = scratch.path("image.json");
    let port = free_port().to_string();
    let published = format!("127.0.0.1:{port}:8080");
    let mut options = all_options();
    options.push("--network=host");
    let out = in_image(
        image,
        &options,
        &scratch.0,
        &[
            "train",
            "--owner",
            "1000:1001",
            "--image",
            web,
            "-p",
            &published,
            "-q",
            "-o",
            imaged.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "image: {}", output_text(&out));
    assert_eq!(allowed_names(&imaged), allowed_names(&host));
    assert_eq!(argument_rules(&imaged), argument_rules(&host));
    assert!(
        !argument_rules(&host).is_empty(),
        "socket's rule is learned"
    );
    let meta = std::fs::metadata(&imaged).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
}

#[test]
fn the_image_names_what_it_is_missing() {
    if !privileged("the_image_names_what_it_is_missing") {
        return;
    }
    let Some(dir) = dist("the_image_names_what_it_is_missing") else {
        return;
    };
    let image = image(&dir);
    let scratch = Scratch::new("dist-missing");
    // Here the container may mount tracefs itself; where it may not (AppArmor's docker-default
    // denies mount), tracefs must be given: a filter that denies mount stands in for that.
    let no_mount = scratch.path("no-mount.json");
    std::fs::write(
        &no_mount,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let seccomp = format!("seccomp={}", no_mount.display());
    for (i, (_, named)) in RUN_OPTIONS.iter().enumerate() {
        let mut options: Vec<&str> = RUN_OPTIONS
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, (o, _))| o.iter().copied())
            .collect();
        options.extend(["--security-opt", &seccomp]);
        let written = scratch.path(&format!("without-{i}.json"));
        let out = in_image(
            image,
            &options,
            &scratch.0,
            &[
                "train",
                "--image",
                image,
                "-q",
                "-o",
                written.to_str().unwrap(),
                "--",
                "--version",
            ],
        );
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "without {named}: {text}");
        assert!(text.contains(named), "without {named}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(!written.exists(), "without {named}, something was written");
    }
    // Published ports are reached on the host's 127.0.0.1: without the host's network the
    // container is never ready, and the message says what it lacks.
    let written = scratch.path("without-network.json");
    let port = free_port().to_string();
    let out = in_image(
        image,
        &all_options(),
        &scratch.0,
        &[
            "train",
            "--image",
            web_image(),
            "-p",
            &format!("127.0.0.1:{port}:8080"),
            "--ready-timeout",
            "3s",
            "-q",
            "-o",
            written.to_str().unwrap(),
        ],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("--network=host"), "{text}");
    assert!(!written.exists());
}

#[test]
fn the_example_ci_gate_runs_through_the_image() {
    if !privileged("the_example_ci_gate_runs_through_the_image") {
        return;
    }
    let Some(dir) = dist("the_example_ci_gate_runs_through_the_image") else {
        return;
    };
    let image = image(&dir);
    let scratch = Scratch::new("dist-gate");
    let folder = scratch.0.display().to_string();
    let command = format!(
        "docker run --rm {} -v {folder}:{folder} -w {folder} {image}",
        all_options().join(" ")
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ci/profile-gate.sh");
    let gate = |baseline: &Path, cmd: &[&str]| {
        Command::new("sh")
            .arg(&script)
            .arg(profile_tests::test_image())
            .arg(baseline)
            .arg("--")
            .args(cmd)
            .current_dir(&scratch.0)
            .env("PROFILE_CMD", &command)
            // The reports go where the image sees them too.
            .env("PROFILE_GATE_REPORTS", scratch.path("reports"))
            .env("PROFILE_RUNS", "2")
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    // No baseline yet: the fresh profile, trained and verified in the image, is adopted.
    let baseline = scratch.path("base.json");
    let out = gate(&baseline, &["sh", "-c", "ls /"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert!(baseline.exists());
    // The image now needs mkdir: the gate fails and names it.
    let out = gate(&baseline, &["sh", "-c", "ls /; mkdir /tmp/x"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("+ mkdir"),
        "{}",
        output_text(&out)
    );
}
