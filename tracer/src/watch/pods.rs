//! Kubernetes names for a pod's containers, from the labels kubelet gives them through the CRI
//! (`io.kubernetes.pod.namespace`, `.pod.name`, `.container.name`) and the pod's own labels:
//! the owning workload (Deployment, StatefulSet, DaemonSet, Job) so that replicas and restarts
//! merge into one profile.
use std::collections::BTreeMap;

use crate::formats::{Format, k8s_name};

pub const NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD: &str = "io.kubernetes.pod.name";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER: &str = "io.kubernetes.container.name";

type Labels = BTreeMap<String, String>;

/// Whether the labels are a Kubernetes pod's container's.
pub fn is_pod(labels: &Labels) -> bool {
    labels.contains_key(NAMESPACE) && labels.contains_key(POD) && labels.contains_key(CONTAINER)
}

/// `<namespace>-<pod>-<container>`: one pod's container, restarts merged.
pub fn pod_group(labels: &Labels) -> Option<String> {
    Some(format!(
        "{}-{}-{}",
        labels.get(NAMESPACE)?,
        labels.get(POD)?,
        labels.get(CONTAINER)?
    ))
}

/// `<namespace>-<workload>-<container>`: every replica's container, restarts merged.
pub fn workload_group(labels: &Labels) -> Option<String> {
    Some(format!(
        "{}-{}-{}",
        labels.get(NAMESPACE)?,
        workload(labels)?,
        labels.get(CONTAINER)?
    ))
}

/// The workload that owns the pod, read from the names its controller gives pods: a
/// Deployment's ReplicaSet names them `<deployment>-<pod-template-hash>-<suffix>`, a
/// StatefulSet `<set>-<ordinal>`, a DaemonSet `<set>-<suffix>` (with `controller-revision-hash`
/// and `pod-template-generation`), a Job `<job>-<suffix>` (with `job-name`; a CronJob's jobs are
/// `<cronjob>-<scheduled minute>`). A bare pod is its own workload.
pub fn workload(labels: &Labels) -> Option<String> {
    let pod = labels.get(POD)?;
    let label = |k: &str| labels.get(k).map(String::as_str);
    if let Some(hash) = label("pod-template-hash")
        && let Some(at) = pod.rfind(&format!("-{hash}-"))
    {
        return Some(pod[..at].to_string());
    }
    if label("statefulset.kubernetes.io/pod-name") == Some(pod.as_str())
        && let Some((set, ordinal)) = pod.rsplit_once('-')
        && !ordinal.is_empty()
        && ordinal.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(set.to_string());
    }
    if let Some(job) = label("batch.kubernetes.io/job-name").or(label("job-name")) {
        // A CronJob's job: `<cronjob>-<minutes since the epoch>`.
        return Some(match job.rsplit_once('-') {
            Some((cron, minute))
                if minute.len() >= 8 && minute.bytes().all(|b| b.is_ascii_digit()) =>
            {
                cron.to_string()
            }
            _ => job.to_string(),
        });
    }
    if label("controller-revision-hash").is_some()
        && label("pod-template-generation").is_some()
        && let Some((set, _)) = pod.rsplit_once('-')
    {
        return Some(set.to_string());
    }
    Some(pod.clone())
}

/// The namespace and labels of a pod container's SeccompProfile: the workload and container
/// it was learned from (`None` for containers of no pod).
pub fn manifest_labels(labels: &Labels) -> Option<(String, Labels)> {
    let namespace = labels.get(NAMESPACE)?.clone();
    let manifest = Labels::from([
        ("app.kubernetes.io/name".to_string(), workload(labels)?),
        (
            "app.kubernetes.io/component".to_string(),
            labels.get(CONTAINER)?.clone(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "profile".to_string(),
        ),
    ]);
    Some((namespace, manifest))
}

/// The `securityContext` that runs a container under the profile written to `file`: kubelet
/// reads a `Localhost` profile under its seccomp root, where one copies a Docker-format file
/// (`profile/<file>`) and where the Security Profiles Operator installs a `SeccompProfile`
/// applied in the pod's namespace (`operator/<namespace>/<name>.json`).
pub fn security_context(file: &str, format: Format, namespace: Option<&str>) -> String {
    let path = match (format, namespace) {
        (Format::K8s, Some(ns)) => {
            let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
            format!("operator/{ns}/{}.json", k8s_name(stem))
        }
        _ => format!("profile/{file}"),
    };
    format!("securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: {path}}}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_contexts() {
        assert_eq!(
            security_context("default-web-httpd.json", Format::Docker, Some("default")),
            "securityContext: {seccompProfile: {type: Localhost, localhostProfile: profile/default-web-httpd.json}}"
        );
        assert_eq!(
            security_context("shop-web-app.yaml", Format::K8s, Some("shop")),
            "securityContext: {seccompProfile: {type: Localhost, localhostProfile: operator/shop/shop-web-app.json}}"
        );
    }

    fn labels(pod: &str, extra: &[(&str, &str)]) -> Labels {
        let mut l: Labels = [(NAMESPACE, "shop"), (POD, pod), (CONTAINER, "app")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert(POD_UID.into(), "u".into());
        l
    }

    #[test]
    fn workloads_from_their_controllers_names() {
        let w = |pod: &str, extra: &[(&str, &str)]| workload(&labels(pod, extra)).unwrap();
        assert_eq!(
            w("web-7d9f8b6c5-abcde", &[("pod-template-hash", "7d9f8b6c5")]),
            "web"
        );
        assert_eq!(
            w(
                "my-web-7d9f8b6c5-x2x9z",
                &[("pod-template-hash", "7d9f8b6c5")]
            ),
            "my-web"
        );
        assert_eq!(
            w(
                "db-12",
                &[
                    ("statefulset.kubernetes.io/pod-name", "db-12"),
                    ("controller-revision-hash", "db-5f6")
                ]
            ),
            "db"
        );
        assert_eq!(
            w(
                "agent-x7k2p",
                &[
                    ("controller-revision-hash", "6b8c"),
                    ("pod-template-generation", "3")
                ]
            ),
            "agent"
        );
        assert_eq!(w("migrate-q8v4c", &[("job-name", "migrate")]), "migrate");
        assert_eq!(
            w(
                "backup-29012345-q8v4c",
                &[("batch.kubernetes.io/job-name", "backup-29012345")]
            ),
            "backup"
        );
        assert_eq!(w("debug", &[]), "debug");
        // A hash the name doesn't carry leaves the pod's own name.
        assert_eq!(w("web-abcde", &[("pod-template-hash", "123")]), "web-abcde");
    }

    #[test]
    fn groups() {
        let l = labels("web-7d9f8b6c5-abcde", &[("pod-template-hash", "7d9f8b6c5")]);
        assert!(is_pod(&l));
        assert_eq!(workload_group(&l).as_deref(), Some("shop-web-app"));
        assert_eq!(
            pod_group(&l).as_deref(),
            Some("shop-web-7d9f8b6c5-abcde-app")
        );
        assert_eq!(workload_group(&Labels::new()), None);
    }
}
