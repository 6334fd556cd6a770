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
        assert_eq!(node.wait_exited(&pod.containers[1], Duration::from_secs(30)), 0);
        assert!(http_request(port, "GET / HTTP/1.0").contains("hello from the test image"));
        pods.push(pod);
    }
    for pod in &pods {
        node.remove_pod(pod);
    }
    let text = stop(watch, said);
    let rows = rows(&dir.0);
    assert_eq!(rows.len(), 2, "{rows:#?}\n{text}");
    for name in ["default-web-httpd", "default-web-sidecar"] {
        let row = row(&rows, name);
        assert_eq!(row["containers"].as_array().map(Vec::len), Some(2), "{row}");
        assert_eq!(row["runs"], 2, "{row}");
        assert_eq!(row["complete"], true, "{row}");
        let line = row["security_context"].as_str().unwrap_or_default();
        assert!(line.contains(&format!("localhostProfile: profile/{name}.json")), "{line}");
    }
    let httpd = allowed_names(&dir.path("default-web-httpd.json"));
    let sidecar = allowed_names(&dir.path("default-web-sidecar.json"));
    for call in ["bind", "listen", "accept"] {
        assert!(httpd.iter().any(|n| n.starts_with(call)), "{call}: {httpd:?}");
    }
    assert!(!sidecar.contains("bind") && !sidecar.contains("listen"), "{sidecar:?}");
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
    assert!(node.log(&pod, "sidecar").contains("hello from the test image"));
    assert!(http_request(port, "GET / HTTP/1.0").contains("hello from the test image"));
    node.remove_pod(&pod);
}
