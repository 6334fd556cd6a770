//! Profile output formats besides Docker's JSON: the OCI runtime-spec `linux.seccomp` object
//! and a Kubernetes Security Profiles Operator `SeccompProfile` manifest.
//!
//! Neither format has Docker's `includes`/`excludes` or `archMap`: rules are resolved for a
//! [`Context`] (Docker's default capabilities, amd64, the running kernel) and the arch map is
//! expanded the way Docker expands it for an x86_64 host.
use std::fmt::Write as _;

use serde::Serialize;

use crate::seccomp::{Arg, Context, Profile};

pub const SPO_API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";
pub const SPO_KIND: &str = "SeccompProfile";

/// One rule of the OCI object (runtime-spec `LinuxSyscall`).
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

    pub fn to_json(&self) -> crate::Result<String> {
        crate::output::json(self)
    }

    /// A Security Profiles Operator `SeccompProfile` manifest named `name`. SPO's spec has no
    /// `defaultErrnoRet`: denied calls get the runtime's default errno, EPERM.
    pub fn to_k8s_yaml(&self, name: &str) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "apiVersion: {SPO_API_VERSION}");
        let _ = writeln!(y, "kind: {SPO_KIND}");
        let _ = writeln!(y, "metadata:");
        let _ = writeln!(y, "  name: {}", quote(&k8s_name(name)));
        let _ = writeln!(y, "spec:");
        let _ = writeln!(y, "  defaultAction: {}", quote(&self.default_action));
        if !self.architectures.is_empty() {
            let _ = writeln!(y, "  architectures:");
            for a in &self.architectures {
                let _ = writeln!(y, "    - {}", quote(a));
            }
        }
        if !self.flags.is_empty() {
            let _ = writeln!(y, "  flags:");
            for f in &self.flags {
                let _ = writeln!(y, "    - {}", quote(f));
            }
        }
        if !self.syscalls.is_empty() {
            let _ = writeln!(y, "  syscalls:");
        }
        for rule in &self.syscalls {
            let _ = writeln!(y, "    - action: {}", quote(&rule.action));
            if let Some(errno) = rule.errno_ret {
                let _ = writeln!(y, "      errnoRet: {errno}");
            }
            let _ = writeln!(y, "      names:");
            for n in &rule.names {
                let _ = writeln!(y, "        - {}", quote(n));
            }
            if !rule.args.is_empty() {
                let _ = writeln!(y, "      args:");
                for a in &rule.args {
                    let _ = writeln!(y, "        - index: {}", a.index);
                    let _ = writeln!(y, "          value: {}", a.value);
                    let _ = writeln!(y, "          valueTwo: {}", a.value_two);
                    let _ = writeln!(y, "          op: {}", quote(a.op.as_str()));
                }
            }
        }
        y
    }
}

/// A YAML scalar: plain when it is an identifier-like word, double-quoted otherwise.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
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
        let y = OciSeccomp::resolve(&p, &Context::docker_default()).to_k8s_yaml("My_App:1.0");
        assert_eq!(
            y,
            "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nmetadata:\n  name: my-app-1.0\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  architectures:\n    - SCMP_ARCH_X86_64\n  syscalls:\n    - action: SCMP_ACT_ALLOW\n      names:\n        - read\n        - write\n"
        );
    }

    #[test]
    fn names_and_quotes() {
        assert_eq!(k8s_name("profiles/App--x_"), "profiles-app--x");
        assert_eq!(k8s_name("__"), "profile");
        assert_eq!(quote("SCMP_CMP_EQ"), "SCMP_CMP_EQ");
        assert_eq!(quote("no"), "\"no\"");
        assert_eq!(quote("a b"), "\"a b\"");
    }
}
