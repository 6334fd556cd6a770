//! A recipe where it is applied: `docker run`'s options, a compose override for one service,
//! a Kubernetes strategic-merge patch for one container of a workload.
use serde_json::{Value, json};

use super::{HardeningError, Recipe};

/// The `docker run` options that apply the recipe, seccomp profile included.
pub fn docker_run_options(r: &Recipe) -> Vec<String> {
    let mut argv: Vec<String> = r
        .capabilities
        .drop
        .iter()
        .map(|c| format!("--cap-drop={c}"))
        .chain(r.capabilities.add.iter().map(|c| format!("--cap-add={c}")))
        .collect();
    if r.read_only_rootfs {
        argv.push("--read-only".into());
        argv.extend(r.tmpfs.iter().map(|t| format!("--tmpfs={t}")));
    }
    if r.no_new_privileges {
        argv.push("--security-opt=no-new-privileges".into());
    }
    if let Some(user) = &r.user {
        argv.push(format!("--user={user}"));
    }
    if let Some(seccomp) = &r.seccomp {
        argv.push(format!("--security-opt=seccomp={seccomp}"));
    }
    argv
}

/// A compose file to put after the stack's own (`docker-compose -f compose.yml -f THIS up`):
/// for each `(service, recipe)`, its capabilities, read-only root, tmpfs, security options and
/// user. `version` is the stack's file format version (docker-compose 1 wants them equal).
pub fn compose_override(
    services: &[(String, &Recipe)],
    version: &str,
) -> Result<String, HardeningError> {
    let mut all = serde_json::Map::new();
    for (service, r) in services {
        let mut s = serde_json::Map::new();
        s.insert("cap_drop".into(), json!(r.capabilities.drop));
        s.insert("cap_add".into(), json!(r.capabilities.add));
        if r.read_only_rootfs {
            s.insert("read_only".into(), json!(true));
            if !r.tmpfs.is_empty() {
                s.insert("tmpfs".into(), json!(r.tmpfs));
            }
        }
        let mut security = Vec::new();
        if r.no_new_privileges {
            security.push("no-new-privileges:true".to_string());
        }
        if let Some(seccomp) = &r.seccomp {
            security.push(format!("seccomp={seccomp}"));
        }
        if !security.is_empty() {
            s.insert("security_opt".into(), json!(security));
        }
        if let Some(user) = &r.user {
            s.insert("user".into(), json!(user));
        }
        all.insert(service.clone(), Value::Object(s));
    }
    yaml(&json!({ "version": version, "services": all }))
}

/// A Kubernetes strategic-merge patch for a workload (Deployment, StatefulSet, DaemonSet,
/// Job's template) that runs container `container` under the recipe: its `securityContext`
/// (the seccomp profile as `Localhost`, `localhost_profile` relative to kubelet's seccomp
/// root) and an in-memory `emptyDir` for each tmpfs. Where the recipe keeps root but the
/// workload binds a port below 1024, NET_BIND_SERVICE stays (CRI runtimes need not open low
/// ports to everyone, as Docker does).
pub fn k8s_patch(
    r: &Recipe,
    container: &str,
    localhost_profile: Option<&str>,
) -> Result<String, HardeningError> {
    let mut security = serde_json::Map::new();
    security.insert(
        "allowPrivilegeEscalation".into(),
        json!(!r.no_new_privileges),
    );
    security.insert(
        "capabilities".into(),
        json!({ "drop": r.capabilities.drop, "add": r.capabilities.add }),
    );
    security.insert("readOnlyRootFilesystem".into(), json!(r.read_only_rootfs));
    if let Some((uid, gid)) = r.user.as_deref().and_then(numeric_user) {
        security.insert("runAsNonRoot".into(), json!(uid != 0));
        security.insert("runAsUser".into(), json!(uid));
        if let Some(gid) = gid {
            security.insert("runAsGroup".into(), json!(gid));
        }
    }
    if let Some(profile) = localhost_profile {
        security.insert(
            "seccompProfile".into(),
            json!({ "type": "Localhost", "localhostProfile": profile }),
        );
    }
    let mut c = serde_json::Map::new();
    c.insert("name".into(), json!(container));
    c.insert("securityContext".into(), Value::Object(security));
    let mut pod = serde_json::Map::new();
    if r.read_only_rootfs && !r.tmpfs.is_empty() {
        let volumes: Vec<(String, &String)> = r
            .tmpfs
            .iter()
            .map(|path| (volume_name(container, path), path))
            .collect();
        c.insert(
            "volumeMounts".into(),
            json!(
                volumes
                    .iter()
                    .map(|(name, path)| json!({ "name": name, "mountPath": path }))
                    .collect::<Vec<_>>()
            ),
        );
        pod.insert(
            "volumes".into(),
            json!(
                volumes
                    .iter()
                    .map(|(name, _)| json!({ "name": name, "emptyDir": { "medium": "Memory" } }))
                    .collect::<Vec<_>>()
            ),
        );
    }
    pod.insert("containers".into(), json!([Value::Object(c)]));
    yaml(&json!({ "spec": { "template": { "spec": Value::Object(pod) } } }))
}

/// The name a service or container of `image` gets where none was given: the image's name
/// without registry, path or tag, as a DNS label (`ghcr.io/a/web:1` → `web`).
pub fn workload_name(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split(['@', ':']).next().unwrap_or(name);
    let mut label: String = name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '-',
        })
        .collect();
    label.truncate(63);
    match label.trim_matches('-') {
        "" => "app".to_string(),
        l => l.to_string(),
    }
}

/// `UID` or `UID:GID`, numeric.
fn numeric_user(user: &str) -> Option<(u32, Option<u32>)> {
    let mut parts = user.splitn(2, ':');
    let uid = parts.next()?.parse().ok()?;
    let gid = match parts.next() {
        Some(g) => Some(g.parse().ok()?),
        None => None,
    };
    Some((uid, gid))
}

/// A volume name for the tmpfs at `path` of `container`: a DNS label (`app-tmpfs-var-lib-x`).
fn volume_name(container: &str, path: &str) -> String {
    let mut name = format!("{container}-tmpfs{}", path.replace(['/', '_', '.'], "-"));
    name.make_ascii_lowercase();
    name.retain(|c| c.is_ascii_alphanumeric() || c == '-');
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    if name.len() > 63 {
        // Kept unique by a hash of the whole path.
        let hash = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        name.truncate(50);
        name = format!(
            "{}-{:012x}",
            name.trim_end_matches('-'),
            hash & 0xffff_ffff_ffff
        );
    }
    name.trim_end_matches('-').to_string()
}

fn yaml(v: &Value) -> Result<String, HardeningError> {
    serde_saphyr::to_string(v).map_err(|e| HardeningError::Render(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardening::Capabilities;

    fn nginx() -> Recipe {
        Recipe {
            image: "nginx".into(),
            verified: true,
            capabilities: Capabilities {
                drop: vec!["ALL".into()],
                add: ["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"]
                    .map(String::from)
                    .into(),
            },
            read_only_rootfs: true,
            tmpfs: ["/run", "/var/lib/nginx", "/var/log/nginx"]
                .map(String::from)
                .into(),
            no_new_privileges: true,
            user: None,
            seccomp: Some("nginx.json".into()),
            ..Recipe::default()
        }
    }

    #[test]
    fn docker_run_options_apply_all_of_it() {
        let mut r = nginx();
        assert_eq!(
            docker_run_options(&r),
            [
                "--cap-drop=ALL",
                "--cap-add=CHOWN",
                "--cap-add=DAC_OVERRIDE",
                "--cap-add=SETGID",
                "--cap-add=SETUID",
                "--read-only",
                "--tmpfs=/run",
                "--tmpfs=/var/lib/nginx",
                "--tmpfs=/var/log/nginx",
                "--security-opt=no-new-privileges",
                "--security-opt=seccomp=nginx.json",
            ]
        );
        r.read_only_rootfs = false;
        r.no_new_privileges = false;
        r.user = Some("65534:65534".into());
        let argv = docker_run_options(&r);
        assert!(
            !argv
                .iter()
                .any(|a| a.starts_with("--tmpfs") || a == "--read-only")
        );
        assert!(argv.contains(&"--user=65534:65534".to_string()));
    }

    #[test]
    fn compose_and_kubernetes_say_the_same() {
        let r = nginx();
        let compose = compose_override(&[("web".into(), &r)], "2.4").unwrap();
        assert!(compose.contains("read_only: true"), "{compose}");
        assert!(compose.contains("- no-new-privileges:true"), "{compose}");
        assert!(compose.contains("- /var/lib/nginx"), "{compose}");
        let patch = k8s_patch(&r, "web", Some("profiles/nginx.json")).unwrap();
        for want in [
            "allowPrivilegeEscalation: false",
            "readOnlyRootFilesystem: true",
            "localhostProfile: profiles/nginx.json",
            "mountPath: /var/lib/nginx",
            "name: web-tmpfs-var-lib-nginx",
            "medium: Memory",
        ] {
            assert!(patch.contains(want), "{want} in {patch}");
        }
        assert!(!patch.contains("runAsNonRoot"), "root stays: {patch}");
        let mut user = r.clone();
        user.user = Some("65534:65534".into());
        let patch = k8s_patch(&user, "web", None).unwrap();
        assert!(patch.contains("runAsNonRoot: true") && patch.contains("runAsUser: 65534"));
    }

    #[test]
    fn a_workload_is_named_after_its_image() {
        assert_eq!(workload_name("ghcr.io/a/web:1"), "web");
        assert_eq!(workload_name("registry:5000/My_App@sha256:ab"), "my-app");
        assert_eq!(workload_name("___"), "app");
    }

    #[test]
    fn volume_names_are_dns_labels() {
        assert_eq!(
            volume_name("web", "/var/lib/nginx"),
            "web-tmpfs-var-lib-nginx"
        );
        assert_eq!(volume_name("Web_1", "/tmp"), "web1-tmpfs-tmp");
        let long = volume_name("c", &format!("/{}", "x".repeat(100)));
        assert!(long.len() <= 63, "{long}");
    }
}
