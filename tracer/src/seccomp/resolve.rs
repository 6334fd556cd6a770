//! A profile for one container: Docker's `includes`/`excludes` (capabilities, architecture,
//! kernel) and `archMap` resolved the way the engine resolves them, leaving a flat profile.
use std::collections::BTreeSet;

use super::model::{Filter, Profile};
use crate::names::Arch;

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

/// Every capability the kernel defines (as of Linux 6.x), for `--cap-add ALL`.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The conditions a profile's rules are evaluated under, as Docker does when it loads one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// The platform, whose Go name (`amd64`) `includes.arches` names.
    pub arch: Arch,
    pub caps: BTreeSet<String>,
    /// Kernel version as (major, minor).
    pub kernel: (u32, u32),
}

/// A capability name as Docker accepts it (`sys_admin`, `SYS_ADMIN`, `CAP_SYS_ADMIN`), in the
/// `CAP_` form; `None` for one the kernel doesn't define.
pub fn capability(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL_CAPS.contains(&full.as_str()).then_some(full)
}

impl Context {
    pub fn docker_default() -> Self {
        Context {
            arch: Arch::host(),
            caps: DOCKER_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect(),
            kernel: running_kernel().unwrap_or((6, 0)),
        }
    }

    /// Docker's default capabilities with `add` and `drop` applied as `docker run --cap-add
    /// --cap-drop` does (`ALL` names every capability; drops are applied first, as Docker).
    pub fn with_caps(add: &[String], drop: &[String]) -> Result<Self, String> {
        let mut ctx = Context::docker_default();
        let resolve = |names: &[String]| -> Result<Vec<String>, String> {
            let mut out = Vec::new();
            for n in names {
                if n.eq_ignore_ascii_case("ALL") {
                    out.extend(ALL_CAPS.iter().map(|c| c.to_string()));
                } else {
                    out.push(capability(n).ok_or_else(|| format!("unknown capability {n:?}"))?);
                }
            }
            Ok(out)
        };
        for c in resolve(drop)? {
            ctx.caps.remove(&c);
        }
        ctx.caps.extend(resolve(add)?);
        Ok(ctx)
    }

    /// The same container on `arch`.
    pub fn on(&self, arch: Arch) -> Context {
        Context {
            arch,
            ..self.clone()
        }
    }
}

/// The context the unit tests evaluate under: Docker's default capabilities on a 6.18
/// kernel, whatever kernel runs the tests.
#[cfg(test)]
pub(crate) fn test_context() -> Context {
    Context {
        kernel: (6, 18),
        ..Context::docker_default()
    }
}

/// (major, minor) of the running kernel.
pub fn running_kernel() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    parse_kernel_version(release.trim())
}

pub(crate) fn parse_kernel_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

impl super::model::Rule {
    /// Whether Docker keeps this rule for a container with `ctx` (moby's includes/excludes).
    pub fn applies(&self, ctx: &Context) -> bool {
        let min_kernel_ok = |v: &Option<String>| {
            v.as_deref()
                .and_then(parse_kernel_version)
                .is_none_or(|min| ctx.kernel >= min)
        };
        let go_arch = ctx.arch.go_name();
        let inc = &self.includes;
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == go_arch) {
            return false;
        }
        if !inc.caps.iter().all(|c| ctx.caps.contains(c)) {
            return false;
        }
        if !min_kernel_ok(&inc.min_kernel) {
            return false;
        }
        let exc = &self.excludes;
        if exc.arches.iter().any(|a| a == go_arch) {
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

impl Profile {
    /// The profile as the runtime receives it for a container with `ctx`: rules that don't
    /// apply dropped, the rest without `includes`/`excludes`, and the arch map expanded into
    /// `architectures` for a host of `ctx.arch` (moby expands only the native arch's entry).
    /// An engine that doesn't know a field then still applies exactly the rules meant.
    pub fn resolve(&self, ctx: &Context) -> Profile {
        let mut architectures = self.architectures.clone();
        if architectures.is_empty()
            && let Some(entry) = self
                .arch_map
                .iter()
                .find(|e| e.architecture == ctx.arch.native().seccomp_arch())
        {
            architectures.push(entry.architecture.clone());
            architectures.extend(entry.sub_architectures.iter().cloned());
        }
        Profile {
            default_action: self.default_action.clone(),
            default_errno_ret: self.default_errno_ret,
            arch_map: Vec::new(),
            architectures,
            flags: self.flags.clone(),
            syscalls: self
                .syscalls
                .iter()
                .filter(|r| r.applies(ctx))
                .map(|r| super::model::Rule {
                    includes: Filter::default(),
                    excludes: Filter::default(),
                    ..r.clone()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v669"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
    }

    #[test]
    fn capabilities_as_docker_takes_them() {
        let ctx = Context::with_caps(&["sys_admin".into()], &["NET_RAW".into()]).unwrap();
        assert!(ctx.caps.contains("CAP_SYS_ADMIN"));
        assert!(!ctx.caps.contains("CAP_NET_RAW"));
        assert_eq!(ctx.caps.len(), 14);
        let all = Context::with_caps(&["ALL".into()], &[]).unwrap();
        assert_eq!(all.caps.len(), ALL_CAPS.len());
        let none = Context::with_caps(&[], &["all".into()]).unwrap();
        assert!(none.caps.is_empty());
        assert!(Context::with_caps(&["CAP_FLY".into()], &[]).is_err());
    }

    #[test]
    fn resolving_keeps_only_what_applies() {
        let default = Profile::docker_default();
        let flat = default.resolve(&Context {
            kernel: (6, 18),
            ..Context::docker_default()
        });
        assert!(flat.syscalls.iter().all(|r| r.is_unconditional()));
        assert!(flat.arch_map.is_empty());
        assert_eq!(
            flat.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        let names = |p: &Profile| -> BTreeSet<String> {
            p.syscalls
                .iter()
                .flat_map(|r| r.all_names().cloned())
                .collect()
        };
        assert!(!names(&flat).contains("mount"));
        let admin = default.resolve(&Context::with_caps(&["SYS_ADMIN".into()], &[]).unwrap());
        assert!(names(&admin).contains("mount"));
    }

    /// moby's `setupSeccomp` (profiles/seccomp/seccomp_linux.go) on an arm64 host, by hand
    /// for Docker's default v0.2.3: the archMap entry of SCMP_ARCH_AARCH64 (with
    /// SCMP_ARCH_ARM) becomes `architectures`; a rule is kept when `includes.arches` is empty
    /// or names "arm64" and `excludes.arches` doesn't.
    #[test]
    fn docker_default_resolved_for_arm64_as_moby_does() {
        let default = Profile::docker_default();
        let arm64 = test_context().on(Arch::Arm64);
        let flat = default.resolve(&arm64);
        assert_eq!(flat.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
        let kept = |name: &str, arg: Option<u32>| {
            flat.syscalls
                .iter()
                .any(|r| r.all_names().any(|n| n == name) && r.args.first().map(|a| a.index) == arg)
        };
        // includes.arches [amd64, x32]: dropped.
        assert!(!kept("arch_prctl", None));
        // includes.arches [amd64, x32, x86]: dropped.
        assert!(!kept("modify_ldt", None));
        // includes.arches [arm, arm64]: kept.
        for name in ["arm_fadvise64_64", "breakpoint", "cacheflush", "set_tls"] {
            assert!(kept(name, None), "{name}");
        }
        // clone's mask on arg 0 excludes [s390, s390x] (and CAP_SYS_ADMIN): kept; the s390
        // one on arg 1 includes [s390, s390x]: dropped.
        assert!(kept("clone", Some(0)));
        assert!(!kept("clone", Some(1)));
        // includes.arches [ppc64le], [s390, s390x], [riscv64]: dropped.
        for name in ["swapcontext", "s390_runtime_instr", "riscv_flush_icache"] {
            assert!(!kept(name, None), "{name}");
        }
        // On amd64, the other way round.
        let flat = default.resolve(&test_context().on(Arch::Amd64));
        let names: BTreeSet<&str> = flat
            .syscalls
            .iter()
            .flat_map(|r| r.all_names().map(String::as_str))
            .collect();
        assert!(names.contains("arch_prctl") && !names.contains("cacheflush"));
    }

    #[test]
    fn docker_default_on_aarch64() {
        use crate::names::Abi;
        let default = Profile::docker_default();
        let allowed = default.allowed(Abi::Aarch64, &test_context());
        // 309 on x86_64; aarch64's table is smaller (no open, stat, poll, …). The judge in
        // tests/tests/arches.rs finds the same count from libseccomp's own filter.
        assert_eq!(allowed.len(), 267);
        let with_args: Vec<&str> = allowed
            .iter()
            .filter(|(_, v)| **v == super::super::Verdict::AllowedWithArgs)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(with_args, ["clone", "personality", "socket"]);
        for name in ["openat", "newfstatat", "getdents64", "ppoll", "clone"] {
            assert!(allowed.contains_key(name), "{name}");
        }
        for name in ["arch_prctl", "open", "unshare", "mount", "clone3"] {
            assert!(!allowed.contains_key(name), "{name}");
        }
    }
}
