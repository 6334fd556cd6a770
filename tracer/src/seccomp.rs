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
pub const ACT_LOG: &str = "SCMP_ACT_LOG";
/// Default actions that stop a call (the rest, ALLOW and LOG, let it through).
const DENYING_ACTIONS: &[&str] = &[
    ACT_ERRNO,
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
];
/// errno for denied calls: EPERM, as in Docker's default.
pub const EPERM: u32 = 1;

/// Calls every generated profile allows, observed or not, with why.
pub const ALWAYS_ALLOWED: &[(&str, &str)] = &[(
    "rt_sigreturn",
    "returns from a signal handler: denying it turns any handled signal into a crash, and the runtime's own code receives signals at random moments",
)];

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
                vec![Rule::allow(names.into_iter().map(String::from))]
            },
        }
    }

    /// The minimal profile allowing what a recording saw; numbers no table names are left out
    /// (the report lists them).
    /// [`ALWAYS_ALLOWED`] is added: a profile learned from a run where no signal happened to
    /// arrive would otherwise crash the first run where one does.
    pub fn observed(snap: &Snapshot) -> Self {
        let abis: BTreeSet<Abi> = snap.syscalls.keys().map(|id| id.abi).collect();
        let mut names: BTreeSet<&'static str> = snap
            .syscalls
            .keys()
            .filter_map(|id| id.abi.name(id.nr))
            .collect();
        if !names.is_empty() {
            names.extend(ALWAYS_ALLOWED.iter().map(|(n, _)| *n));
        }
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

/// Why profiles can't be merged without `--force`.
#[derive(Debug, thiserror::Error)]
#[error(
    "{first} and {other} differ in {what} ({a} vs {b}); merging would change what one of them means (use --force to merge anyway, keeping the first's)"
)]
pub struct MergeConflict {
    pub first: String,
    pub other: String,
    pub what: &'static str,
    pub a: String,
    pub b: String,
}

impl Profile {
    /// This profile in complain mode: calls it doesn't list are allowed and logged by the
    /// kernel (SCMP_ACT_LOG) instead of failing.
    pub fn logging(mut self) -> Self {
        self.default_action = ACT_LOG.into();
        self.default_errno_ret = None;
        self
    }

    /// The profile `verify` enforces: calls the default action stops fail with `errno` (one no
    /// syscall returns by itself), so that the kernel can count every denial. Rules with their
    /// own actions and errnos are kept as they are. Returns a note when the meaning changes.
    ///
    /// Docker Engine 20.10 ignores `defaultErrnoRet`, so besides setting it, every name of the
    /// profile's syscall tables that no rule kept for a container with `ctx` mentions gets an
    /// explicit deny rule with `errno`.
    pub fn for_verification(&self, errno: u32, ctx: &Context) -> (Profile, Option<String>) {
        let mut p = self.clone();
        if !DENYING_ACTIONS.contains(&self.default_action.as_str()) {
            return (
                p,
                Some(format!(
                    "defaultAction {} lets unlisted calls through: only the profile's own deny rules can deny, and those are not counted",
                    self.default_action
                )),
            );
        }
        let note = (self.default_action != ACT_ERRNO).then(|| {
            format!(
                "defaultAction {} is verified as SCMP_ACT_ERRNO, so that every denial is counted instead of the first one ending the workload",
                self.default_action
            )
        });
        p.default_action = ACT_ERRNO.into();
        p.default_errno_ret = Some(errno);
        let mentioned: BTreeSet<&str> = self
            .syscalls
            .iter()
            .filter(|r| r.applies(ctx))
            .flat_map(|r| r.names.iter().chain(r.name.iter()))
            .map(String::as_str)
            .collect();
        let unlisted: BTreeSet<String> = self
            .abis()
            .iter()
            .flat_map(|abi| abi.names())
            .filter(|n| !mentioned.contains(n))
            .map(|n| n.to_string())
            .collect();
        if !unlisted.is_empty() {
            p.syscalls.push(Rule {
                action: ACT_ERRNO.into(),
                errno_ret: Some(errno),
                ..Rule::allow(unlisted)
            });
        }
        (p, note)
    }

    /// This profile plus unconditional permission for `names` on each ABI (for `verify --fix`).
    pub fn allowing_more(&self, names: &BTreeMap<Abi, BTreeSet<String>>) -> Profile {
        let mut p = self.clone();
        let all: BTreeSet<String> = names.values().flatten().cloned().collect();
        if all.is_empty() {
            return p;
        }
        if !p.architectures.is_empty() {
            for abi in names.keys() {
                let arch = abi.seccomp_arch().to_string();
                if !p.architectures.contains(&arch) {
                    p.architectures.push(arch);
                }
            }
        }
        match p.syscalls.iter_mut().find(|r| r.is_plain_allow()) {
            Some(rule) => {
                let mut merged: BTreeSet<String> = rule.names.drain(..).collect();
                merged.extend(all);
                rule.names = merged.into_iter().collect();
            }
            None => p.syscalls.insert(0, Rule::allow(all)),
        }
        p
    }

    /// The union of what `inputs` (named for messages) allow. Inputs must agree on the default
    /// action and the architectures unless `force`; then the first one's are kept.
    pub fn merge(inputs: &[(String, Profile)], force: bool) -> Result<Profile, MergeConflict> {
        let Some((first_name, first)) = inputs.first() else {
            return Ok(Profile::allowing([], &BTreeSet::new()));
        };
        let mut out = first.clone();
        out.syscalls.clear();
        let mut allowed: BTreeSet<String> = BTreeSet::new();
        let mut others: Vec<Rule> = Vec::new();
        for (name, p) in inputs {
            if !force {
                let conflict = |what, a: String, b: String| MergeConflict {
                    first: first_name.clone(),
                    other: name.clone(),
                    what,
                    a,
                    b,
                };
                if (&p.default_action, p.default_errno_ret)
                    != (&first.default_action, first.default_errno_ret)
                {
                    let show = |p: &Profile| match p.default_errno_ret {
                        Some(e) => format!("{} errno {e}", p.default_action),
                        None => p.default_action.clone(),
                    };
                    return Err(conflict("default action", show(first), show(p)));
                }
                if p.abis() != first.abis() {
                    let show = |p: &Profile| {
                        p.abis()
                            .iter()
                            .map(|a| a.seccomp_arch())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    return Err(conflict("architectures", show(first), show(p)));
                }
            }
            for arch in &p.architectures {
                if !out.architectures.contains(arch) {
                    out.architectures.push(arch.clone());
                }
            }
            for entry in &p.arch_map {
                if !out.arch_map.contains(entry) {
                    out.arch_map.push(entry.clone());
                }
            }
            for flag in &p.flags {
                if !out.flags.contains(flag) {
                    out.flags.push(flag.clone());
                }
            }
            for rule in &p.syscalls {
                if rule.is_plain_allow() {
                    allowed.extend(rule.names.iter().chain(rule.name.iter()).cloned());
                } else if !others.contains(rule) {
                    others.push(rule.clone());
                }
            }
        }
        // A call one input allows outright is allowed: unconditional deny rules give it up.
        for rule in &mut others {
            if rule.action != ACT_ALLOW && rule.args.is_empty() && rule.is_unconditional() {
                rule.names.retain(|n| !allowed.contains(n));
                if rule.name.as_ref().is_some_and(|n| allowed.contains(n)) {
                    rule.name = None;
                }
            }
        }
        others.retain(|r| !r.names.is_empty() || r.name.is_some());
        if !allowed.is_empty() {
            out.syscalls.push(Rule::allow(allowed));
        }
        out.syscalls.extend(others);
        Ok(out)
    }
}

/// What changed between two profiles, name by name (non-native ABIs as `name (abi)`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Allowed by NEW, not by OLD.
    pub added: Vec<String>,
    /// Allowed by OLD, not by NEW.
    pub removed: Vec<String>,
    /// Allowed by OLD only for some arguments, by NEW for all.
    pub widened: Vec<String>,
    /// Allowed by OLD for all arguments, by NEW only for some.
    pub narrowed: Vec<String>,
}

impl Diff {
    /// Whether NEW allows anything OLD didn't.
    pub fn allows_more(&self) -> bool {
        !self.added.is_empty() || !self.widened.is_empty()
    }

    pub fn between(old: &Profile, new: &Profile, ctx: &Context) -> Diff {
        let mut diff = Diff::default();
        let abis: BTreeSet<Abi> = old.abis().union(&new.abis()).copied().collect();
        for abi in abis {
            let label = |n: &str| match abi {
                Abi::X86_64 => n.to_string(),
                other => format!("{n} ({other})"),
            };
            let a = if old.abis().contains(&abi) {
                old.allowed(abi, ctx)
            } else {
                BTreeMap::new()
            };
            let b = if new.abis().contains(&abi) {
                new.allowed(abi, ctx)
            } else {
                BTreeMap::new()
            };
            for (name, verdict) in &b {
                match (a.get(name), verdict) {
                    (None, _) => diff.added.push(label(name)),
                    (Some(Verdict::AllowedWithArgs), Verdict::Allowed) => {
                        diff.widened.push(label(name))
                    }
                    (Some(Verdict::Allowed), Verdict::AllowedWithArgs) => {
                        diff.narrowed.push(label(name))
                    }
                    _ => {}
                }
            }
            diff.removed
                .extend(a.keys().filter(|n| !b.contains_key(*n)).map(|n| label(n)));
        }
        diff
    }
}

impl Rule {
    /// An unconditional allow rule for `names`.
    pub fn allow(names: impl IntoIterator<Item = String>) -> Rule {
        Rule {
            names: names.into_iter().collect(),
            name: None,
            action: ACT_ALLOW.into(),
            errno_ret: None,
            args: Vec::new(),
            comment: None,
            includes: Filter::default(),
            excludes: Filter::default(),
        }
    }

    /// No includes/excludes: Docker keeps it whatever the capabilities, arch and kernel.
    pub fn is_unconditional(&self) -> bool {
        self.includes.is_empty() && self.excludes.is_empty()
    }

    /// Allows its names outright: no argument checks, no conditions.
    pub fn is_plain_allow(&self) -> bool {
        self.action == ACT_ALLOW && self.args.is_empty() && self.is_unconditional()
    }

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

    fn simple(names: &[&str]) -> Profile {
        Profile::allowing(names.iter().copied(), &BTreeSet::from([Abi::X86_64]))
    }

    #[test]
    fn merge_is_a_union_and_refuses_mismatches() {
        let a = ("a".to_string(), simple(&["read", "write"]));
        let b = ("b".to_string(), simple(&["write", "mkdir"]));
        let m = Profile::merge(&[a.clone(), b.clone()], false).unwrap();
        assert_eq!(m, simple(&["mkdir", "read", "write"]));

        let log = ("log".to_string(), simple(&["read"]).logging());
        let err = Profile::merge(&[a.clone(), log.clone()], false).unwrap_err();
        assert_eq!(err.what, "default action");
        assert!(err.to_string().contains("--force"), "{err}");
        let forced = Profile::merge(&[a.clone(), log], true).unwrap();
        assert_eq!(forced.default_action, ACT_ERRNO);

        let i386 = (
            "i386".to_string(),
            Profile::allowing(["read"], &BTreeSet::from([Abi::X86_64, Abi::I386])),
        );
        assert_eq!(
            Profile::merge(&[a, i386], false).unwrap_err().what,
            "architectures"
        );
    }

    #[test]
    fn merge_keeps_conditional_rules_and_drops_overridden_denials() {
        let default = ("d".to_string(), Profile::docker_default());
        let mut deny = simple(&["read"]);
        deny.syscalls.push(Rule {
            action: ACT_ERRNO.into(),
            errno_ret: Some(38),
            ..Rule::allow(["clone3".to_string(), "mkdir".to_string()])
        });
        let deny = ("x".to_string(), deny);
        let more = ("y".to_string(), simple(&["mkdir"]));
        let m = Profile::merge(&[deny, more], false).unwrap();
        let errno_rule = m.syscalls.iter().find(|r| r.action == ACT_ERRNO).unwrap();
        assert_eq!(errno_rule.names, ["clone3"]);
        // Docker's default merged with itself is itself, allow rules first.
        let twice = Profile::merge(&[default.clone(), default], false).unwrap();
        let ctx = Context::docker_default();
        assert_eq!(
            twice.allowed(Abi::X86_64, &ctx),
            Profile::docker_default().allowed(Abi::X86_64, &ctx)
        );
    }

    #[test]
    fn verification_denies_every_unlisted_name_with_the_errno() {
        let p = simple(&["read", "write"]);
        let ctx = Context::docker_default();
        let (v, note) = p.for_verification(3797, &ctx);
        assert!(note.is_none());
        assert_eq!(v.default_errno_ret, Some(3797));
        let rule = v.syscalls.last().unwrap();
        assert_eq!(
            (rule.action.as_str(), rule.errno_ret),
            (ACT_ERRNO, Some(3797))
        );
        assert!(rule.names.contains(&"mkdir".to_string()));
        assert!(!rule.names.contains(&"read".to_string()));
        assert_eq!(rule.names.len(), Abi::X86_64.names().len() - 2);
        let (_, note) = simple(&["read"]).logging().for_verification(3797, &ctx);
        assert!(note.unwrap().contains("lets unlisted calls through"));
        // Docker's default: calls only its capability-gated rules name are denied with the
        // errno too, since those rules are dropped for a container with the default caps.
        let (v, _) = Profile::docker_default().for_verification(3797, &ctx);
        let rule = v.syscalls.last().unwrap();
        assert_eq!(rule.errno_ret, Some(3797));
        for name in ["mount", "unshare", "bpf", "kexec_load"] {
            assert!(rule.names.contains(&name.to_string()), "{name}");
        }
        for name in ["read", "clone", "clone3", "personality"] {
            assert!(!rule.names.contains(&name.to_string()), "{name}");
        }
    }

    #[test]
    fn fixes_and_diffs() {
        let p = simple(&["read"]);
        let missing = BTreeMap::from([(Abi::X86_64, BTreeSet::from(["mkdir".to_string()]))]);
        let fixed = p.allowing_more(&missing);
        assert_eq!(fixed, simple(&["mkdir", "read"]));
        let ctx = Context::docker_default();
        let d = Diff::between(&p, &fixed, &ctx);
        assert_eq!(d.added, ["mkdir"]);
        assert!(d.allows_more());
        let back = Diff::between(&fixed, &p, &ctx);
        assert_eq!(back.removed, ["mkdir"]);
        assert!(!back.allows_more());
        let i386 = fixed.allowing_more(&BTreeMap::from([(
            Abi::I386,
            BTreeSet::from(["write".to_string()]),
        )]));
        assert!(i386.architectures.contains(&"SCMP_ARCH_X86".to_string()));
        assert!(
            Diff::between(&fixed, &i386, &ctx)
                .added
                .contains(&"write (i386)".to_string())
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
    }
}
