//! The seccomp profile model: Docker's JSON format (also read by Podman and runc), building a
//! minimal profile from what was observed, and evaluating what a profile allows.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    names::Abi,
    recorder::Snapshot,
};

pub const ACT_ALLOW: &str = "SCMP_ACT_ALLOW";
pub const ACT_ERRNO: &str = "SCMP_ACT_ERRNO";
/// errno for denied calls: EPERM, as in Docker's default.
pub const EPERM: u32 = 1;

/// Docker writes `null` for empty lists; read it as empty.
fn nullable<'de, D, T>(deserializer: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Docker seccomp profile. Field order is the output order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arch_map: Vec<ArchMap>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub flags: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Rule>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<String>,
    /// Single-name form of older profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<Arg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub includes: Filter,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub excludes: Filter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub caps: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arches: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// Docker's 14 default capabilities.
pub const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The conditions a profile's rules are evaluated under, as Docker does when it loads one.
#[derive(Clone, Debug)]
pub struct Context {
    /// Go's name of the native architecture (`amd64`), which `includes.arches` names.
    pub go_arch: &'static str,
    pub caps: BTreeSet<String>,
    /// Kernel version as (major, minor).
    pub kernel: (u32, u32),
}

impl Context {
    pub fn docker_default() -> Self {
        Context {
            go_arch: "amd64",
            caps: DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect(),
            kernel: running_kernel().unwrap_or((6, 0)),
        }
    }
}

/// (major, minor) of the running kernel.
pub fn running_kernel() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_kernel_version(release.trim())
}

fn parse_kernel_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// How a profile treats one syscall name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Allowed only for some argument values.
    AllowedWithArgs,
}

impl Profile {
    /// The minimal profile allowing exactly `names` on the ABIs in `abis`; everything else EPERM.
    pub fn allowing<'a>(names: impl IntoIterator<Item = &'a str>, abis: &BTreeSet<Abi>) -> Self {
        let names: BTreeSet<&str> = names.into_iter().collect();
        let mut architectures: Vec<String> = abis.iter().map(|a| a.seccomp_arch().into()).collect();
        if architectures.is_empty() {
            architectures.push(Abi::X86_64.seccomp_arch().into());
        }
        Profile {
            default_action: ACT_ERRNO.into(),
            default_errno_ret: Some(EPERM),
            arch_map: Vec::new(),
            architectures,
            flags: Vec::new(),
            syscalls: if names.is_empty() {
                Vec::new()
            } else {
                vec![Rule {
                    names: names.into_iter().map(String::from).collect(),
                    name: None,
                    action: ACT_ALLOW.into(),
                    errno_ret: None,
                    args: Vec::new(),
                    comment: None,
                    includes: Filter::default(),
                    excludes: Filter::default(),
                }]
            },
        }
    }

    /// The minimal profile allowing what a recording saw; numbers no table names are left out
    /// (the report lists them).
    pub fn observed(snap: &Snapshot) -> Self {
        let abis: BTreeSet<Abi> = snap.syscalls.keys().map(|id| id.abi).collect();
        let names: BTreeSet<&'static str> = snap
            .syscalls
            .keys()
            .filter_map(|id| id.abi.name(id.nr))
            .collect();
        Profile::allowing(names, &abis)
    }

    /// Docker's default profile (moby/profiles seccomp v0.2.3), shipped with this tool.
    pub fn docker_default() -> Self {
        static JSON: &str = include_str!("../assets/docker-default-seccomp.json");
        // The embedded file is checked by a unit test, so this can't fail at run time.
        serde_json::from_str(JSON).expect("embedded Docker default profile parses")
    }

    /// Parses a profile, reporting syntax errors with line and column.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::ProfileSyntax {
            path: origin.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Stable, diff-friendly JSON: two-space indent, fields in a fixed order, trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The ABIs this profile covers (`architectures`, or the arch map's, or x86_64 only).
    pub fn abis(&self) -> BTreeSet<Abi> {
        let mut abis: BTreeSet<Abi> = self
            .architectures
            .iter()
            .filter_map(|a| Abi::from_seccomp_arch(a))
            .collect();
        for entry in &self.arch_map {
            if entry.architecture == Abi::X86_64.seccomp_arch() {
                abis.insert(Abi::X86_64);
                abis.extend(
                    entry
                        .sub_architectures
                        .iter()
                        .filter_map(|a| Abi::from_seccomp_arch(a)),
                );
            }
        }
        if abis.is_empty() {
            abis.insert(Abi::X86_64);
        }
        abis
    }

    /// Names of `abi`'s table this profile lets through under `ctx`.
    pub fn allowed(&self, abi: Abi, ctx: &Context) -> BTreeMap<&'static str, Verdict> {
        let table = abi.names();
        let mut out = BTreeMap::new();
        let default_allows =
            self.default_action == ACT_ALLOW || self.default_action == "SCMP_ACT_LOG";
        if default_allows {
            out.extend(table.iter().map(|n| (*n, Verdict::Allowed)));
        }
        for rule in &self.syscalls {
            if !rule.applies(ctx) {
                continue;
            }
            let allows = rule.action == ACT_ALLOW || rule.action == "SCMP_ACT_LOG";
            for name in rule.names.iter().chain(rule.name.iter()) {
                let Ok(i) = table.binary_search(&name.as_str()) else {
                    continue;
                };
                let name = table[i];
                if allows {
                    let verdict = if rule.args.is_empty() {
                        Verdict::Allowed
                    } else {
                        Verdict::AllowedWithArgs
                    };
                    let entry = out.entry(name).or_insert(verdict);
                    if verdict == Verdict::Allowed {
                        *entry = Verdict::Allowed;
                    }
                } else if default_allows && rule.args.is_empty() {
                    out.remove(name);
                }
            }
        }
        out
    }

    /// Every name the rules mention that `abi`'s table doesn't know (Docker ignores those).
    pub fn unknown_names(&self, abis: &BTreeSet<Abi>) -> Vec<String> {
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for rule in &self.syscalls {
            for name in rule.names.iter().chain(rule.name.iter()) {
                if !abis.iter().any(|abi| abi.knows(name)) {
                    unknown.insert(name.clone());
                }
            }
        }
        unknown.into_iter().collect()
    }
}

impl Rule {
    /// Whether Docker keeps this rule for a container with `ctx` (moby's includes/excludes).
    pub fn applies(&self, ctx: &Context) -> bool {
        let min_kernel_ok = |v: &Option<String>| {
            v.as_deref()
                .and_then(parse_kernel_version)
                .is_none_or(|min| ctx.kernel >= min)
        };
        let inc = &self.includes;
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == ctx.go_arch) {
            return false;
        }
        if !inc.caps.iter().all(|c| ctx.caps.contains(c)) {
            return false;
        }
        if !min_kernel_ok(&inc.min_kernel) {
            return false;
        }
        let exc = &self.excludes;
        if exc.arches.iter().any(|a| a == ctx.go_arch) {
            return false;
        }
        if exc.caps.iter().any(|c| ctx.caps.contains(c)) {
            return false;
        }
        if exc.min_kernel.is_some() && min_kernel_ok(&exc.min_kernel) {
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_allows_about_309_on_x86_64() {
        let profile = Profile::docker_default();
        let ctx = Context {
            kernel: (6, 18),
            ..Context::docker_default()
        };
        let allowed = profile.allowed(Abi::X86_64, &ctx);
        let with_args: Vec<_> = allowed
            .iter()
            .filter(|(_, v)| **v == Verdict::AllowedWithArgs)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(with_args, ["clone", "personality", "socket"]);
        assert!((300..=315).contains(&allowed.len()), "{}", allowed.len());
        for denied in ["mount", "clone3", "kexec_load", "bpf", "unshare", "setns"] {
            assert!(!allowed.contains_key(denied), "{denied}");
        }
        // ptrace is allowed from kernel 4.8 on (minKernel), as is chroot with CAP_SYS_CHROOT.
        for ok in ["read", "chroot", "openat", "execve", "arch_prctl", "ptrace"] {
            assert!(allowed.contains_key(ok), "{ok}");
        }
    }

    #[test]
    fn caps_widen_the_default() {
        let profile = Profile::docker_default();
        let mut ctx = Context::docker_default();
        ctx.caps.insert("CAP_SYS_ADMIN".into());
        ctx.caps.insert("CAP_SYS_PTRACE".into());
        let allowed = profile.allowed(Abi::X86_64, &ctx);
        assert!(allowed.contains_key("mount"));
        assert!(allowed.contains_key("ptrace"));
        assert_eq!(allowed.get("clone"), Some(&Verdict::Allowed));
    }

    #[test]
    fn minimal_profile_is_sorted_and_stable() {
        let abis = BTreeSet::from([Abi::X86_64]);
        let p = Profile::allowing(["write", "exit_group", "read"], &abis);
        let json = p.to_json();
        assert_eq!(
            json,
            "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"defaultErrnoRet\": 1,\n  \"architectures\": [\n    \"SCMP_ARCH_X86_64\"\n  ],\n  \"syscalls\": [\n    {\n      \"names\": [\n        \"exit_group\",\n        \"read\",\n        \"write\"\n      ],\n      \"action\": \"SCMP_ACT_ALLOW\"\n    }\n  ]\n}\n"
        );
        let back = Profile::parse(&json, Path::new("p.json")).unwrap();
        assert_eq!(back, p);
        let allowed = back.allowed(Abi::X86_64, &Context::docker_default());
        assert_eq!(allowed.len(), 3);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = Profile::parse("{\n  \"defaultAction\": }", Path::new("bad.json")).unwrap_err();
        let Error::ProfileSyntax { line, column, .. } = err else {
            panic!("{err}")
        };
        assert_eq!((line, column), (2, 20));
    }

    #[test]
    fn unknown_names_are_listed() {
        let abis = BTreeSet::from([Abi::X86_64]);
        let p = Profile::allowing(["read", "socketcall", "no_such_call"], &abis);
        assert_eq!(p.unknown_names(&abis), ["no_such_call", "socketcall"]);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
    }
}
