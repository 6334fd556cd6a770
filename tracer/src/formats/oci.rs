//! The OCI runtime-spec `linux.seccomp` object and the Security Profiles Operator's
//! `SeccompProfile` manifest, as `profile` writes them: rules resolved for a container (neither
//! format has Docker's `includes`/`excludes` or `archMap`).
use serde::Serialize;

use crate::seccomp::{Arg, Context, Profile};

pub const SPO_API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";
pub const SPO_KIND: &str = "SeccompProfile";
/// The API group of every SPO version (v1alpha1, v1beta1).
pub(super) const SPO_GROUP: &str = "security-profiles-operator.x-k8s.io/";

/// One rule of the OCI object (runtime-spec `LinuxSyscall`), and of an SPO manifest's spec.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSyscall {
    pub names: Vec<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
}

/// The runtime-spec `linux.seccomp` object.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciSeccomp {
    pub default_action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    pub architectures: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    pub syscalls: Vec<OciSyscall>,
}

/// A Security Profiles Operator `SeccompProfile` manifest, as written.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoManifest {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: SpoMetadata,
    pub spec: SpoSpec,
}

#[derive(Clone, Debug, Serialize)]
pub struct SpoMetadata {
    pub name: String,
    /// The namespace of the workload it is for (SeccompProfiles are namespaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// SPO's spec: the OCI object without `defaultErrnoRet`, which SPO doesn't have.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoSpec {
    pub default_action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<OciSyscall>,
}

impl OciSeccomp {
    /// `profile` as the runtime would receive it for a container with `ctx`.
    pub fn resolve(profile: &Profile, ctx: &Context) -> Self {
        let flat = profile.resolve(ctx);
        let syscalls = flat
            .syscalls
            .iter()
            .map(|r| OciSyscall {
                names: r.all_names().cloned().collect(),
                action: r.action.clone(),
                errno_ret: r.errno_ret,
                args: r.args.clone(),
            })
            .collect();
        OciSeccomp {
            default_action: flat.default_action,
            default_errno_ret: flat.default_errno_ret,
            architectures: flat.architectures,
            flags: flat.flags,
            syscalls,
        }
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }

    /// A Security Profiles Operator `SeccompProfile` manifest named `name`. SPO's spec has no
    /// `defaultErrnoRet`: denied calls get the runtime's default errno, EPERM.
    pub fn to_k8s_manifest(&self, name: &str) -> SpoManifest {
        SpoManifest {
            api_version: SPO_API_VERSION,
            kind: SPO_KIND,
            metadata: SpoMetadata {
                name: k8s_name(name),
                namespace: None,
                labels: Default::default(),
            },
            spec: SpoSpec {
                default_action: self.default_action.clone(),
                architectures: self.architectures.clone(),
                flags: self.flags.clone(),
                syscalls: self.syscalls.clone(),
            },
        }
    }

    /// [`to_k8s_manifest`](Self::to_k8s_manifest) as YAML.
    pub fn to_k8s_yaml(&self, name: &str) -> Result<String, serde_saphyr::SerializeError> {
        serde_saphyr::to_string(&self.to_k8s_manifest(name))
    }
}

/// A Kubernetes object name (RFC 1123 subdomain): lowercase alphanumerics, `-` and `.`,
/// starting and ending alphanumeric, at most 253 characters.
pub fn k8s_name(s: &str) -> String {
    let mapped: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut name: String = trimmed.chars().take(253).collect();
    while name.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        name.pop();
    }
    if name.is_empty() {
        "profile".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::names::Abi;

    #[test]
    fn oci_resolves_docker_default_for_default_caps() {
        let ctx = Context {
            kernel: (6, 18),
            ..Context::docker_default()
        };
        let oci = OciSeccomp::resolve(&Profile::docker_default(), &ctx);
        assert_eq!(
            oci.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        let names: BTreeSet<&str> = oci
            .syscalls
            .iter()
            .filter(|r| r.action == "SCMP_ACT_ALLOW")
            .flat_map(|r| r.names.iter().map(String::as_str))
            .collect();
        assert!(names.contains("read") && !names.contains("mount"));
        let json: serde_json::Value = serde_json::from_str(&oci.to_json().unwrap()).unwrap();
        assert_eq!(json["defaultErrnoRet"], 1);
        assert!(json["syscalls"][0].get("includes").is_none());
    }

    #[test]
    fn k8s_yaml_shape() {
        let p = Profile::allowing(["read", "write"], &BTreeSet::from([Abi::X86_64]));
        let y = OciSeccomp::resolve(&p, &Context::docker_default())
            .to_k8s_yaml("My_App:1.0")
            .unwrap();
        assert_eq!(
            y,
            "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n  name: my-app-1.0\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  architectures:\n  - SCMP_ARCH_X86_64\n  syscalls:\n  - names:\n    - read\n    - write\n    action: SCMP_ACT_ALLOW\n"
        );
    }

    #[test]
    fn names() {
        assert_eq!(k8s_name("profiles/App--x_"), "profiles-app--x");
        assert_eq!(k8s_name("__"), "profile");
    }

    #[test]
    fn yaml_quotes_what_would_read_back_otherwise() {
        let mut oci = OciSeccomp::resolve(&Profile::docker_default(), &Context::docker_default());
        oci.default_action = "no".into();
        let y = oci.to_k8s_yaml("x").unwrap();
        // Go's YAML 1.1 reader (kubectl's) would take a plain no for false.
        assert!(y.contains("defaultAction: \"no\""), "{y}");
    }
}
