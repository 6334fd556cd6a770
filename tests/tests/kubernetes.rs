//! deploy/kubernetes/: the manifests are valid Kubernetes objects (checked against the
//! Kubernetes schemas, offline, strictly: no unknown field passes), and the DaemonSet's
//! arguments are ones `profile` takes.
use std::{path::PathBuf, process::Command};

use profile_tests::{Scratch, kubernetes_validate as validate, output_text, profile_bin};

fn manifests() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_manifests_are_valid_kubernetes_objects() {
    let files = manifests();
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(names, ["daemonset.yaml", "namespace.yaml"]);
    let Some(out) = validate(&files) else {
        return;
    };
    assert!(out.status.success(), "{}", output_text(&out));
    // The check is strict: a misspelt field fails it.
    let dir = std::env::temp_dir().join(format!("profile-test-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bad = dir.join("daemonset.yaml");
    let text = std::fs::read_to_string(&files[0]).expect("daemonset");
    std::fs::write(&bad, text.replace("hostPID:", "hostPid:")).expect("write");
    let out = validate(&[bad]).expect("validator");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "{}", output_text(&out));
}

#[test]
fn the_daemonsets_arguments_are_profiles() {
    let dir = Scratch::new("k8s-args");
    let text = std::fs::read_to_string(&manifests()[0]).expect("daemonset");
    let ds: serde_json::Value = serde_saphyr::from_str(&text).expect("YAML");
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("profile:{}", env!("CARGO_PKG_VERSION"))
    );
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            a.as_str()
                .expect("a string")
                .replace("$(NODE_NAME)", "node-1")
                .replace("/run/containerd/containerd.sock", "/nonexistent/cri.sock")
                .replace("/var/lib/profile", &dir.0.display().to_string())
        })
        .collect();
    // Taken as given: it fails only where the runtime is (not here).
    let out = Command::new(profile_bin())
        .args(&args)
        .output()
        .expect("profile");
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("no CRI runtime socket at /nonexistent/cri.sock"),
        "{text}"
    );
}
