//! `profile watch --engine cri`: a Kubernetes node's pods, recorded through the CRI as kubelet
//! drives a private containerd; one profile per workload's container, merged across replicas,
//! that runs its container as a `Localhost` profile.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use profile_tests::{node::*, *};

/// `profile watch --engine cri=<node>` running until [`stop`].
fn start_watch(node: &Node, dir: &Path, flags: &[&str]) -> (Child, Transcript) {
    let mut child = Command::new(profile_bin())
        .args(["watch", "--engine", &node.engine(), "-o"])
        .arg(dir)
        .args(flags)
        .stderr(Stdio::piped())
        .spawn()
        .expect("profile watch");
    let mut said = Transcript::of(&mut child);
    said.wait_for("watching", Duration::from_secs(60));
    (child, said)
}

/// Ends the watch (SIGINT) and returns what it said.
fn stop(mut child: Child, said: Transcript) -> String {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("watch exits");
    let text = said.all();
    assert_eq!(status.code(), Some(130), "{text}");
    text
}

fn rows(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("index.json")).expect("index.json");
    let index: serde_json::Value = serde_json::from_str(&text).expect("index parses");
    index["profiles"].as_array().cloned().unwrap_or_default()
}

fn row<'a>(rows: &'a [serde_json::Value], profile: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["profile"] == profile)
        .unwrap_or_else(|| panic!("no {profile} in {rows:#?}"))
}

/// A replica of the "web" Deployment: busybox httpd on `port`, and a sidecar that fetches
/// from it three times and exits.
fn web_replica(suffix: &str, port: u16, seccomp: [Seccomp; 2]) -> PodSpec {
    let [httpd, sidecar] = seccomp;
    PodSpec::new(
        "default",
        &format!("web-7d9f8b6c5-{suffix}"),
        vec![
            ContainerSpec::new("httpd", &format!("exec httpd -f -p 127.0.0.1:{port} -h /www"), httpd),
            ContainerSpec::new(
                "sidecar",
                &format!(
                    "for i in 1 2 3; do until wget -q -O- http://127.0.0.1:{port}/; do sleep 0.1; done; done"
                ),
                sidecar,
            ),
        ],
    )
    .label("app", "web")
    .label("pod-template-hash", "7d9f8b6c5")
}

#[test]
fn a_deployments_replicas_make_one_profile_per_container_that_runs_them() {
    if !privileged("a_deployments_replicas_make_one_profile_per_container_that_runs_them") {
        return;
    }
    let node = Node::start("deploy");
    let dir = Scratch::new("cri-deploy");
    let (watch, said) = start_watch(&node, &dir.0, &[]);
    let mut pods = Vec::new();
    for suffix in ["abcde", "fghij"] {
        let port = free_port();
        let pod = node.run_pod(&web_replica(
            suffix,
            port,
            [Seccomp::RuntimeDefault, Seccomp::RuntimeDefault],
        ));
        assert_eq!(
            node.wait_exited(&pod.containers[1], Duration::from_secs(30)),
            0
        );
        assert!(http_request(port, "GET / HTTP/1.0").contains("hello from the test image"));
        pods.push(pod);
    }
    for pod in &pods {
        node.remove_pod(pod);
    }
    let text = stop(watch, said);
    // The runtime and the runc it runs, whose measured tail every profile allows.
    assert!(text.contains("pods of containerd "), "{text}");
    assert!(text.contains("; runc 1."), "{text}");
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 2, "{rows:#?}\n{text}");
    for name in ["default-web-httpd", "default-web-sidecar"] {
        let row = row(&rows, name);
        assert_eq!(row["containers"].as_array().map(Vec::len), Some(2), "{row}");
        assert_eq!(row["runs"], 2, "{row}");
        assert_eq!(row["complete"], true, "{row}");
        // The CRI exports no image: the ceilings of the programs that ran are unknown, once.
        let unknown: Vec<String> = strings::<Vec<String>>(&row["notes"])
            .into_iter()
            .filter(|n| n.contains("programs are unknown: the CRI exports no image"))
            .collect();
        assert_eq!(unknown.len(), 1, "{row}");
        assert!(row.get("coverage").is_none(), "{row}");
        eprintln!(
            "{name}: {} syscalls allowed ({}% fewer than Docker's default)",
            row["allowed"], row["reduction_vs_docker_default_percent"]
        );
        let line = row["security_context"].as_str().unwrap_or_default();
        assert!(
            line.contains(&format!("localhostProfile: profile/{name}.json")),
            "{line}"
        );
    }
    let httpd = allowed_names(&dir.path("default-web-httpd.json"));
    let sidecar = allowed_names(&dir.path("default-web-sidecar.json"));
    for call in ["bind", "listen", "accept"] {
        assert!(
            httpd.iter().any(|n| n.starts_with(call)),
            "{call}: {httpd:?}"
        );
    }
    assert!(
        !sidecar.contains("bind") && !sidecar.contains("listen"),
        "{sidecar:?}"
    );
    assert!(sidecar.contains("connect"), "{sidecar:?}");
    for name in ["mount", "pivot_root", "sethostname"] {
        assert!(!httpd.contains(name) && !sidecar.contains(name), "{name}");
    }

    // Each profile runs its container, as kubelet's Localhost profile.
    let port = free_port();
    let pod = node.run_pod(&web_replica(
        "zzzzz",
        port,
        [
            Seccomp::Localhost(dir.path("default-web-httpd.json")),
            Seccomp::Localhost(dir.path("default-web-sidecar.json")),
        ],
    ));
    assert_eq!(
        node.wait_exited(&pod.containers[1], Duration::from_secs(30)),
        0,
        "{}",
        node.log(&pod, "sidecar")
    );
    assert!(
        node.log(&pod, "sidecar")
            .contains("hello from the test image")
    );
    assert!(http_request(port, "GET / HTTP/1.0").contains("hello from the test image"));
    node.remove_pod(&pod);
}

/// A pod of one container running `script` under `seccomp`, in `namespace`.
fn single(namespace: &str, name: &str, script: &str, seccomp: Seccomp) -> PodSpec {
    PodSpec::new(
        namespace,
        name,
        vec![ContainerSpec::new("main", script, seccomp)],
    )
}

#[test]
fn a_container_that_exits_at_once_is_recorded_completely() {
    if !privileged("a_container_that_exits_at_once_is_recorded_completely") {
        return;
    }
    let node = Node::start("true");
    let dir = Scratch::new("cri-true");
    let (watch, said) = start_watch(&node, &dir.0, &[]);
    let pod = node.run_pod(&single("default", "once", "true", Seccomp::RuntimeDefault));
    assert_eq!(
        node.wait_exited(&pod.containers[0], Duration::from_secs(30)),
        0
    );
    node.remove_pod(&pod);
    let text = stop(watch, said);
    let rows = rows(&dir.0);
    let row = row(&rows, "default-once-main");
    assert_eq!(row["complete"], true, "{row}\n{text}");
    let watched = allowed_names(&dir.path("default-once-main.json"));
    let (trained, _, out) = train(&dir, "true", &[], &["sh", "-c", "true"]);
    assert!(out.status.success(), "{}", output_text(&out));
    for name in allowed_names(&trained) {
        assert!(watched.contains(&name), "{name} missing: {watched:?}");
    }
}

#[test]
fn unconfined_and_runtime_default_containers_learn_the_same_and_never_the_runtimes_setup() {
    if !privileged(
        "unconfined_and_runtime_default_containers_learn_the_same_and_never_the_runtimes_setup",
    ) {
        return;
    }
    let node = Node::start("unconfined");
    let dir = Scratch::new("cri-unconfined");
    let (watch, said) = start_watch(&node, &dir.0, &[]);
    let script = "ls / >/dev/null; echo hi; cat /www/index.html";
    let mut pods = Vec::new();
    for (ns, seccomp) in [
        ("confined", Seccomp::RuntimeDefault),
        ("unconfined", Seccomp::Unconfined),
        ("unset", Seccomp::Unset),
    ] {
        let pod = node.run_pod(&single(ns, "box", script, seccomp));
        assert_eq!(
            node.wait_exited(&pod.containers[0], Duration::from_secs(30)),
            0
        );
        pods.push(pod);
    }
    for pod in &pods {
        node.remove_pod(pod);
    }
    let text = stop(watch, said);
    let rows = rows(&dir.0);
    let confined = allowed_names(&dir.path("confined-box-main.json"));
    for ns in ["unconfined", "unset"] {
        let row = row(&rows, &format!("{ns}-box-main"));
        assert_eq!(row["complete"], true, "{row}\n{text}");
        // runc's version was found: its own measured tail, no note about an unmeasured one.
        let notes = row["notes"].to_string();
        assert!(!notes.contains("not measured"), "{notes}");
        let names = allowed_names(&dir.path(&format!("{ns}-box-main.json")));
        assert_eq!(names, confined, "{ns}");
    }
    for name in ["mount", "pivot_root", "sethostname", "umount2", "unshare"] {
        assert!(!confined.contains(name), "{name}: {confined:?}");
    }
    // runc's tail under the filter is allowed: the container starts under its profile.
    for name in ["capset", "setgroups", "execve", "futex"] {
        assert!(confined.contains(name), "{name}: {confined:?}");
    }
    let pod = node.run_pod(&single(
        "default",
        "again",
        script,
        Seccomp::Localhost(dir.path("unconfined-box-main.json")),
    ));
    assert_eq!(
        node.wait_exited(&pod.containers[0], Duration::from_secs(30)),
        0,
        "{}",
        node.log(&pod, "main")
    );
    assert!(node.log(&pod, "main").contains("hello from the test image"));
}

#[test]
fn pods_that_ran_before_watching_are_recorded_only_with_existing() {
    if !privileged("pods_that_ran_before_watching_are_recorded_only_with_existing") {
        return;
    }
    let node = Node::start("existing");
    let before = node.run_pod(&single(
        "default",
        "early",
        "while true; do ls / >/dev/null; sleep 0.1; done",
        Seccomp::RuntimeDefault,
    ));
    let dir = Scratch::new("cri-existing");
    let (watch, said) = start_watch(&node, &dir.0, &[]);
    let late = node.run_pod(&single("default", "late", "true", Seccomp::RuntimeDefault));
    node.wait_exited(&late.containers[0], Duration::from_secs(30));
    node.remove_pod(&late);
    let text = stop(watch, said);
    let names: Vec<String> = rows(&dir.0)
        .iter()
        .map(|r| r["profile"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["default-late-main"], "{text}");

    let dir = Scratch::new("cri-existing-2");
    let (watch, said) = start_watch(&node, &dir.0, &["--existing"]);
    let profile = dir.path("default-early-main.json");
    // SIGUSR1 writes what was recorded so far: the running loop's calls, from now on.
    let (child, said) = (watch, said);
    wait_until("the running pod's calls", Duration::from_secs(30), || {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGUSR1) };
        std::thread::sleep(Duration::from_millis(300));
        (profile.exists() && allowed_names(&profile).contains("getdents64")).then_some(())
    });
    node.remove_pod(&before);
    let text = stop(child, said);
    let rows = rows(&dir.0);
    let row = row(&rows, "default-early-main");
    assert_eq!(row["complete"], false, "{row}\n{text}");
    assert!(
        row["notes"]
            .to_string()
            .contains("running before watching began"),
        "{row}"
    );
}

#[test]
fn sixty_short_pods_back_to_back_are_all_recorded_apart() {
    if !privileged("sixty_short_pods_back_to_back_are_all_recorded_apart") {
        return;
    }
    let node = Node::start("churn");
    let dir = Scratch::new("cri-churn");
    let (watch, said) = start_watch(&node, &dir.0, &["--per", "pod"]);
    // Even pods ask the kernel's name, odd ones only exit: a mix-up shows as uname where it
    // does not belong, or missing where it does (runc's own calls have no uname).
    let pods: Vec<_> = (0..60)
        .map(|i| {
            let script = if i % 2 == 0 {
                "uname >/dev/null"
            } else {
                "true"
            };
            node.run_pod(&single(
                "churn",
                &format!("p{i:02}"),
                script,
                Seccomp::RuntimeDefault,
            ))
        })
        .collect();
    for pod in &pods {
        assert_eq!(
            node.wait_exited(&pod.containers[0], Duration::from_secs(60)),
            0
        );
    }
    for pod in &pods {
        node.remove_pod(pod);
    }
    let text = stop(watch, said);
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 60, "{text}");
    for i in 0..60 {
        let name = format!("churn-p{i:02}-main");
        let row = row(&rows, &name);
        assert_eq!(row["runs"], 1, "{row}");
        assert_eq!(row["complete"], true, "{row}");
        let names = allowed_names(&dir.path(&format!("{name}.json")));
        assert_eq!(names.contains("uname"), i % 2 == 0, "{name}: {names:?}");
    }
}

#[test]
fn the_profiles_of_two_nodes_merge_into_the_clusters() {
    if !privileged("the_profiles_of_two_nodes_merge_into_the_clusters") {
        return;
    }
    let nodes = [Node::start("node-a"), Node::start("node-b")];
    let dirs = [Scratch::new("cri-node-a"), Scratch::new("cri-node-b")];
    // Node b writes SPO manifests: merge reads them as it reads Docker's JSON.
    let flags: [&[&str]; 2] = [&[], &["--format", "k8s", "--node-name", "node-b"]];
    for (i, suffix) in ["abcde", "fghij"].iter().enumerate() {
        let (watch, said) = start_watch(&nodes[i], &dirs[i].0, flags[i]);
        let port = free_port();
        let mut spec = web_replica(suffix, port, [Seccomp::Unset, Seccomp::Unset]);
        if i == 1 {
            // Only node b's sidecar asks the kernel's name.
            spec.containers[1].script.push_str("; uname");
        }
        let pod = nodes[i].run_pod(&spec);
        assert_eq!(
            nodes[i].wait_exited(&pod.containers[1], Duration::from_secs(30)),
            0
        );
        nodes[i].remove_pod(&pod);
        stop(watch, said);
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dirs[1].path("index.json")).expect("index"))
            .expect("index parses");
    assert_eq!(index["node"], "node-b");
    let line = row(&rows(&dirs[1].0), "default-web-sidecar")["security_context"].clone();
    assert!(
        line.as_str()
            .unwrap_or_default()
            .contains("localhostProfile: operator/default/default-web-sidecar.json"),
        "{line}"
    );
    let manifest = std::fs::read_to_string(dirs[1].path("default-web-sidecar.yaml")).expect("yaml");
    // Named after the workload's container, in its namespace, labelled after it.
    let manifest: serde_json::Value = serde_saphyr::from_str(&manifest).expect("YAML");
    assert_eq!(
        manifest["metadata"]["name"], "default-web-sidecar",
        "{manifest}"
    );
    assert_eq!(manifest["metadata"]["namespace"], "default", "{manifest}");
    let labels = &manifest["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "web", "{manifest}");
    assert_eq!(
        labels["app.kubernetes.io/component"], "sidecar",
        "{manifest}"
    );

    let merged = dirs[0].path("merged-sidecar.json");
    let out = profile(&[
        "merge",
        dirs[0].path("default-web-sidecar.json").to_str().unwrap(),
        dirs[1].path("default-web-sidecar.yaml").to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(!allowed_names(&dirs[0].path("default-web-sidecar.json")).contains("uname"));
    assert!(allowed_names(&merged).contains("uname"));
    // The cluster's profile runs node b's replica on node a.
    let port = free_port();
    let mut spec = web_replica(
        "merged",
        port,
        [Seccomp::Unset, Seccomp::Localhost(merged.clone())],
    );
    spec.containers[1].script.push_str("; uname");
    let pod = nodes[0].run_pod(&spec);
    assert_eq!(
        nodes[0].wait_exited(&pod.containers[1], Duration::from_secs(30)),
        0,
        "{}",
        nodes[0].log(&pod, "sidecar")
    );
}

#[test]
fn base_bounds_the_profiles_of_unconfined_containers_only() {
    if !privileged("base_bounds_the_profiles_of_unconfined_containers_only") {
        return;
    }
    let node = Node::start("base");
    let dir = Scratch::new("cri-base");
    let base = dir.path("no-uname.json");
    std::fs::write(
        &base,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("base");
    let out = dir.path("out");
    std::fs::create_dir_all(&out).expect("out");
    let (watch, said) = start_watch(&node, &out, &["--base", base.to_str().unwrap()]);
    let mut pods = Vec::new();
    for (ns, seccomp) in [
        ("free", Seccomp::Unconfined),
        ("held", Seccomp::RuntimeDefault),
    ] {
        let pod = node.run_pod(&single(ns, "box", "uname", seccomp));
        assert_eq!(
            node.wait_exited(&pod.containers[0], Duration::from_secs(30)),
            0
        );
        pods.push(pod);
    }
    for pod in &pods {
        node.remove_pod(pod);
    }
    let text = stop(watch, said);
    // The unconfined container's profile stays within --base; the confined one's within the
    // profile it ran under, which allows uname.
    let free = allowed_names(&out.join("free-box-main.json"));
    let held = allowed_names(&out.join("held-box-main.json"));
    assert!(!free.contains("uname"), "{free:?}\n{text}");
    assert!(held.contains("uname"), "{held:?}\n{text}");
}

#[test]
fn a_socket_that_is_no_cri_runtime_is_said_once_in_words() {
    if !privileged("a_socket_that_is_no_cri_runtime_is_said_once_in_words") {
        return;
    }
    let dir = Scratch::new("cri-sockets");
    let out_dir = dir.path("profiles");
    let watch = |socket: &str| {
        profile(&[
            "watch",
            "--engine",
            &format!("cri={socket}"),
            "--duration",
            "1s",
            "-o",
            out_dir.to_str().expect("utf-8"),
        ])
    };
    let missing = dir.path("no.sock");
    let out = watch(missing.to_str().expect("utf-8"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("no CRI runtime socket at {}", missing.display())),
        "{err}"
    );
    assert_eq!(err.matches("No such file").count(), 0, "{err}");
    // Docker's own containerd answers gRPC, without the CRI plugin.
    let docker_containerd = "/var/run/docker/containerd/containerd.sock";
    assert!(
        Path::new(docker_containerd).exists(),
        "Docker Engine 20.10's containerd socket"
    );
    let out = watch(docker_containerd);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("a containerd with its CRI plugin off"),
        "{err}"
    );
    assert!(!out_dir.exists(), "nothing written");
}
