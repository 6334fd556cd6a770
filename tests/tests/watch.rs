//! `profile watch`: every container created while it runs is recorded from its first syscall
//! and kept apart, grouped into one profile per image, service or container.
use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use profile_tests::*;

/// The index, or null before it is written.
fn index(dir: &Path) -> serde_json::Value {
    match std::fs::read_to_string(dir.join("index.json")) {
        Ok(text) => serde_json::from_str(&text).expect("index.json parses"),
        Err(_) => serde_json::Value::Null,
    }
}

/// A label only this test's containers carry: other tests' containers run on the same engine.
fn tag(test: &str) -> String {
    format!("profile-test-{test}-{}", std::process::id())
}

fn rows(dir: &Path) -> Vec<serde_json::Value> {
    index(dir)["profiles"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Starts container `name` of the test image in the background (removed when it exits).
fn start_detached(name: &str, options: &[&str], cmd: &[&str]) {
    let mut args = vec!["run", "-d", "--rm", "--network", "none", "--name", name];
    args.extend_from_slice(options);
    args.push(test_image());
    args.extend_from_slice(cmd);
    let started = docker(&args);
    assert!(started.status.success(), "{}", output_text(&started));
}

fn watch(dir: &Path, flags: &[&str], script: &str) -> Output {
    let mut args = vec!["watch", "-o", dir.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    profile(&args)
}

#[test]
fn twenty_short_containers_are_all_recorded() {
    if !privileged("twenty_short_containers_are_all_recorded") {
        return;
    }
    let dir = Scratch::new("watch-twenty");
    let image = test_image();
    let tag = tag("twenty");
    let out = watch(
        &dir.0,
        &["--filter", &format!("label={tag}")],
        &format!(
            "for i in $(seq 20); do docker run --rm --network none --label {tag} {image} true; done"
        ),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["containers"].as_array().unwrap().len(), 20, "{row}");
    assert_eq!(row["runs"], 20);
    assert_eq!(row["complete"], true, "{row}");
    let profile = dir.0.join(row["file"].as_str().unwrap());
    // What `train` learns of the same container, each of the twenty saw from its start.
    let (trained, _, out) = train(&dir, "true", &[], &["true"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let watched = allowed_names(&profile);
    for name in allowed_names(&trained) {
        assert!(watched.contains(&name), "{name} missing: {watched:?}");
    }
    let run = run_under(Some(&profile), &["true"]);
    assert!(run.status.success(), "{}", output_text(&run));
}

#[test]
fn containers_are_kept_apart_and_filtered() {
    if !privileged("containers_are_kept_apart_and_filtered") {
        return;
    }
    let dir = Scratch::new("watch-apart");
    let image = test_image();
    let tag = tag("apart");
    let script = format!(
        "docker run --rm --network none --label {tag}=yes --name {tag}-mk {image} sysloop mkdir /tmp/d 3 && \
         docker run --rm --network none --label {tag}=yes --name {tag}-true {image} true && \
         docker run --rm --network none --name {tag}-other {image} true"
    );
    let out = watch(
        &dir.0,
        &[
            "--per",
            "container",
            "--filter",
            &format!("label={tag}=yes"),
        ],
        &script,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let rows = rows(&dir.0);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["profile"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [format!("{tag}-mk"), format!("{tag}-true")],
        "{rows:?}"
    );
    let file = |r: &serde_json::Value| dir.0.join(r["file"].as_str().unwrap());
    assert!(allowed_names(&file(&rows[0])).contains("mkdir"));
    assert!(!allowed_names(&file(&rows[1])).contains("mkdir"));
}

#[test]
fn signals_write_what_was_recorded() {
    if !privileged("signals_write_what_was_recorded") {
        return;
    }
    let dir = Scratch::new("watch-signals");
    let image = test_image();
    let tag = tag("signals");
    // A container that runs before watching starts is not recorded.
    let before = container_name("watch-before");
    start_detached(&before, &[], &["sleep", "60"]);
    let mut child = Command::new(profile_bin())
        .args(["watch", "-o", dir.0.to_str().unwrap(), "--filter"])
        .arg(format!("label={tag}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("profile watch");
    // Ready once it says so: the signal handlers and the kernel side are in place.
    let mut said = Transcript::of(&mut child);
    said.wait_for("watching containers", Duration::from_secs(30));
    let run = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        &tag,
        image,
        "sysloop",
        "mkdir",
        "/tmp/a",
        "1",
    ]);
    assert!(run.status.success(), "{}", output_text(&run));
    // SIGUSR1: the profiles so far, without stopping (again until the container's events,
    // which the engine sends on its own time, have arrived).
    let runs = |n: u32| {
        wait_until(
            &format!("SIGUSR1 writing {n} run(s)"),
            Duration::from_secs(10),
            || {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
                std::thread::sleep(Duration::from_millis(200));
                let rows = rows(&dir.0);
                (rows.len() == 1 && rows[0]["runs"] == n).then_some(())
            },
        )
    };
    runs(1);
    let run = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        &tag,
        image,
        "true",
    ]);
    assert!(run.status.success());
    runs(2);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("watch ends");
    let rest = said.all();
    let _ = docker(&["rm", "-f", &before]);
    assert_eq!(status.code(), Some(130), "{rest}");
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 1);
    let containers = rows[0]["containers"].to_string();
    assert_eq!(rows[0]["runs"], 2, "{containers}");
    assert!(!containers.contains(&before), "{containers}");
}

#[test]
fn a_compose_stack_gets_one_profile_per_service() {
    if !privileged("a_compose_stack_gets_one_profile_per_service") {
        return;
    }
    let dir = Scratch::new("watch-compose");
    let image = test_image();
    let project = tag("compose");
    let compose = dir.path("docker-compose.yml");
    std::fs::write(
        &compose,
        format!(
            "version: '2.4'\n\
             services:\n  \
               web:\n    image: {image}\n    command: [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n  \
               client:\n    image: {image}\n    depends_on: [web]\n    \
                 command: [\"sh\", \"-c\", \"for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://web:8080/ && exit 0; sleep 0.5; done; exit 1\"]\n  \
               oneshot:\n    image: {image}\n    command: [\"true\"]\n"
        ),
    )
    .unwrap();
    let file = compose.to_str().unwrap().to_string();
    let out = profile(&[
        "watch",
        "-o",
        dir.0.to_str().unwrap(),
        "--per",
        "service",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--",
        "docker-compose",
        "-f",
        &file,
        "-p",
        &project,
        "up",
        "--abort-on-container-exit",
        "--exit-code-from",
        "client",
    ]);
    let _ = Command::new("docker-compose")
        .args(["-f", &file, "-p", &project, "down", "-t", "1"])
        .output();
    assert!(out.status.success(), "{}", output_text(&out));
    let rows = rows(&dir.0);
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["profile"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("{project}-client"),
            format!("{project}-oneshot"),
            format!("{project}-web")
        ],
        "{rows:?}"
    );
    let profile = |i: usize| dir.0.join(rows[i]["file"].as_str().unwrap());
    let (client, web) = (allowed_names(&profile(0)), allowed_names(&profile(2)));
    for call in ["bind", "listen"] {
        assert!(web.contains(call), "web lacks {call}");
        assert!(!client.contains(call), "client has {call}");
    }
    assert!(client.contains("connect"));
    // The web service serves under its own profile (fetched over a port on 127.0.0.1).
    let httpd = Httpd::under(&profile(2), "compose-web");
    let page = http_request(httpd.port, "GET / HTTP/1.0");
    assert!(page.contains("hello from the test image"), "{page}");
}

#[test]
fn two_watches_with_disjoint_filters_do_not_mix() {
    if !privileged("two_watches_with_disjoint_filters_do_not_mix") {
        return;
    }
    let (a, b) = (Scratch::new("watch-a"), Scratch::new("watch-b"));
    let image = test_image();
    let (ta, tb) = (tag("two-a"), tag("two-b"));
    // Each watches until its duration ends, once it says it is watching.
    let spawn = |dir: &Scratch, t: &str| {
        let mut child = Command::new(profile_bin())
            .args(["watch", "-o", dir.0.to_str().unwrap(), "--filter"])
            .arg(format!("label={t}"))
            .args(["--duration", "8s"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("profile watch");
        let mut said = Transcript::of(&mut child);
        said.wait_for("watching containers", Duration::from_secs(8));
        (child, said)
    };
    let (wa, wb) = (spawn(&a, &ta), spawn(&b, &tb));
    let ra = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        &ta,
        image,
        "sysloop",
        "mkdir",
        "/tmp/x",
    ]);
    let rb = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        &tb,
        image,
        "true",
    ]);
    assert!(ra.status.success() && rb.status.success());
    for (mut w, said) in [wa, wb] {
        let status = w.wait().expect("watch ends");
        assert!(status.success(), "{}", said.all());
    }
    let (ia, ib) = (rows(&a.0), rows(&b.0));
    assert_eq!((ia.len(), ib.len()), (1, 1));
    assert_eq!(ia[0]["runs"], 1);
    assert_eq!(ib[0]["runs"], 1);
    assert!(allowed_names(&a.0.join(ia[0]["file"].as_str().unwrap())).contains("mkdir"));
    assert!(!allowed_names(&b.0.join(ib[0]["file"].as_str().unwrap())).contains("mkdir"));
}

/// A container that runs unconfined is recorded from the exec that hands over to its
/// workload, and its profile stays within Docker's default; every profile allows its
/// runtime's tail, and the index names the calls the runtime made under the filter.
#[test]
fn an_unconfined_container_is_recorded_within_docker_default() {
    if !privileged("an_unconfined_container_is_recorded_within_docker_default") {
        return;
    }
    let dir = Scratch::new("watch-unconfined");
    let image = test_image();
    let tag = tag("unconfined");
    let script = format!(
        "docker run --rm --network none --security-opt seccomp=unconfined --label {tag} --name {tag}-free {image} sysloop mkdir /tmp/d 3 && \
         docker run --rm --network none --label {tag} --name {tag}-kept {image} true"
    );
    let out = watch(
        &dir.0,
        &["--per", "container", "--filter", &format!("label={tag}")],
        &script,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (free, kept) = (&rows[0], &rows[1]);
    assert_eq!(free["profile"], format!("{tag}-free"), "{rows:?}");
    assert_eq!(free["complete"], true, "{free}");
    let file = |r: &serde_json::Value| dir.0.join(r["file"].as_str().expect("a profile file"));
    let names = allowed_names(&file(free));
    assert!(names.contains("mkdir"), "{names:?}");
    // runc 1.1's tail: made before the exec, never recorded here, allowed all the same.
    assert!(names.contains("capset") && names.contains("setgroups"));
    let diff = profile(&["diff", "docker-default", file(free).to_str().unwrap()]);
    assert_eq!(diff.status.code(), Some(0), "{}", output_text(&diff));
    // Under Docker's default the runtime's init checks its parent under the filter.
    let runtime: Vec<String> = strings(&kept["runtime_calls"]);
    assert!(runtime.contains(&"getppid".to_string()), "{kept}");
    assert!(allowed_names(&file(kept)).contains("capset"));
}

#[test]
fn image_filters_match_as_docker_ps_ancestor_does() {
    if !privileged("image_filters_match_as_docker_ps_ancestor_does") {
        return;
    }
    let dir = Scratch::new("watch-image");
    let tag = tag("image");
    // A name without a tag is `:latest`'s.
    let name = format!("profile-test/filter-{}", std::process::id());
    let tagged = docker(&["tag", test_image(), &format!("{name}:latest")]);
    assert!(tagged.status.success(), "{}", output_text(&tagged));
    let id = String::from_utf8_lossy(
        &docker(&["image", "inspect", "-f", "{{.Id}}", test_image()]).stdout,
    )
    .trim()
    .to_string();
    let short = id.trim_start_matches("sha256:")[..12].to_string();
    let run = |image: &str| format!("docker run --rm --network none --label {tag} {image} true");
    for (filter, started) in [
        (format!("image={name}:latest"), name.clone()),
        (format!("image={name}"), test_image().to_string()),
        (format!("image={short}"), name.clone()),
        (format!("image={id}"), test_image().to_string()),
    ] {
        let out = watch(
            &dir.0,
            &["--filter", &format!("label={tag}"), "--filter", &filter],
            &run(&started),
        );
        let text = output_text(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("from 1 container(s)"),
            "{filter} of {started}: {text}"
        );
        assert!(!text.contains("matched no container"), "{text}");
    }
    let missing = format!("image={name}-nope");
    let out = watch(
        &dir.0,
        &["--filter", &format!("label={tag}"), "--filter", &missing],
        &run(&name),
    );
    let text = output_text(&out);
    // CI must see a filter that selected nothing: not 0, and the last line says why.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("from 0 container(s)"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some(
            format!(
                "profile: exit status 1: --filter {missing} matched no container: nothing was recorded for it"
            )
            .as_str()
        ),
        "{text}"
    );
    docker(&["rmi", &format!("{name}:latest")]);
}

#[test]
fn a_container_running_before_watch_existing_is_counted_from_then_on() {
    if !privileged("a_container_running_before_watch_existing_is_counted_from_then_on") {
        return;
    }
    let dir = Scratch::new("watch-existing");
    let tag = tag("existing");
    // Under Docker's default filter, calling getppid without pause from before the watch
    // starts: the kernel side sees its calls before its cgroup is watched, and must count
    // them once it is.
    let name = container_name("watch-existing");
    start_detached(
        &name,
        &["--label", &tag],
        &["sysloop", "getppid", "100000000000"],
    );
    let out = watch(
        &dir.0,
        &[
            "--existing",
            "--per",
            "container",
            "--filter",
            &format!("label={tag}"),
        ],
        "sleep 3",
    );
    let _ = docker(&["rm", "-f", &name]);
    assert!(out.status.success(), "{}", output_text(&out));
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["complete"], false, "{}", rows[0]);
    let profile = dir.0.join(rows[0]["file"].as_str().unwrap());
    assert!(
        allowed_names(&profile).contains("getppid"),
        "{}",
        output_text(&out)
    );
}
