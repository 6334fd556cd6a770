//! Docker's seccomp JSON format (also read by Podman and runc): the serde types, parsing with
//! positions, validation of what runc would reject, and stable output.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::names::{Abi, Arch};

/// A profile that can't be read, placed at the offending text.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct SyntaxError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

type Result<T, E = SyntaxError> = std::result::Result<T, E>;

/// The arguments a syscall has, as seccomp sees them.
pub const ARGS: usize = 6;

pub const ACT_ALLOW: &str = "SCMP_ACT_ALLOW";
pub const ACT_ERRNO: &str = "SCMP_ACT_ERRNO";
pub const ACT_LOG: &str = "SCMP_ACT_LOG";
const ACT_KILL: &str = "SCMP_ACT_KILL";
const ACT_KILL_PROCESS: &str = "SCMP_ACT_KILL_PROCESS";
const ACT_KILL_THREAD: &str = "SCMP_ACT_KILL_THREAD";
const ACT_TRAP: &str = "SCMP_ACT_TRAP";
const ACT_TRACE: &str = "SCMP_ACT_TRACE";
const ACT_NOTIFY: &str = "SCMP_ACT_NOTIFY";
/// Every action name libseccomp (and so runc) accepts.
const ACTIONS: [&str; 9] = [
    ACT_ALLOW,
    ACT_ERRNO,
    ACT_LOG,
    ACT_KILL,
    ACT_KILL_PROCESS,
    ACT_KILL_THREAD,
    ACT_TRAP,
    ACT_TRACE,
    ACT_NOTIFY,
];
/// errno for denied calls: EPERM, as in Docker's default (and runc's default for errno rules).
pub const EPERM: u32 = 1;
/// errno for calls that should look unimplemented (Docker's default answers clone3 so, and
/// glibc then falls back to clone).
pub const ENOSYS: u32 = 38;
/// The largest errno the kernel returns for a call a filter denies (it caps SECCOMP_RET_DATA
/// at MAX_ERRNO; userspace treats -4095..-1 as errors).
pub const MAX_ERRNO: u32 = 4095;
/// The largest errno a profile can name: libseccomp takes 16 bits (SECCOMP_RET_DATA).
const MAX_ERRNO_RET: u32 = 0xffff;

/// What a rule or the default does with a call, as libseccomp knows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    Log,
    Errno(u32),
    Kill,
    KillProcess,
    KillThread,
    Trap,
    Trace(u32),
    Notify,
}

impl Action {
    /// The action named `name`, with `errno` for ERRNO and TRACE (EPERM when absent, as runc).
    pub fn parse(name: &str, errno: Option<u32>) -> Option<Action> {
        Some(match name {
            ACT_ALLOW => Action::Allow,
            ACT_LOG => Action::Log,
            ACT_ERRNO => Action::Errno(errno.unwrap_or(EPERM)),
            ACT_KILL => Action::Kill,
            ACT_KILL_PROCESS => Action::KillProcess,
            ACT_KILL_THREAD => Action::KillThread,
            ACT_TRAP => Action::Trap,
            ACT_TRACE => Action::Trace(errno.unwrap_or(EPERM)),
            ACT_NOTIFY => Action::Notify,
            _ => return None,
        })
    }

    /// Whether the call runs. TRACE and NOTIFY hand the decision to another process, which may
    /// let it run: counted as allowing wherever that is the cautious reading.
    pub fn runs(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    pub fn may_run(self) -> bool {
        matches!(
            self,
            Action::Allow | Action::Log | Action::Trace(_) | Action::Notify
        )
    }
}

/// libseccomp's argument comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

impl Op {
    /// libseccomp's name of the comparison.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Ne => "SCMP_CMP_NE",
            Op::Lt => "SCMP_CMP_LT",
            Op::Le => "SCMP_CMP_LE",
            Op::Eq => "SCMP_CMP_EQ",
            Op::Ge => "SCMP_CMP_GE",
            Op::Gt => "SCMP_CMP_GT",
            Op::MaskedEq => "SCMP_CMP_MASKED_EQ",
        }
    }
}

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

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    pub op: Op,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Arg {
    pub fn eq(index: u32, value: u64) -> Arg {
        Arg {
            index,
            value,
            value_two: 0,
            op: Op::Eq,
        }
    }
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

/// The seccomp architectures libseccomp knows.
const ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

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

    /// A rule for `names` with `action` (ERRNO carries its errno).
    pub fn with_action(names: impl IntoIterator<Item = String>, action: Action) -> Rule {
        let (name, errno) = action_fields(action);
        Rule {
            action: name.into(),
            errno_ret: errno,
            ..Rule::allow(names)
        }
    }

    /// The names this rule lists, in either form.
    pub fn all_names(&self) -> impl Iterator<Item = &String> {
        self.names.iter().chain(self.name.iter())
    }

    /// The rule's action; rules are validated on load, so an unknown one reads as a kill.
    pub fn act(&self) -> Action {
        Action::parse(&self.action, self.errno_ret).unwrap_or(Action::Kill)
    }

    /// No includes/excludes: Docker keeps it whatever the capabilities, arch and kernel.
    pub fn is_unconditional(&self) -> bool {
        self.includes.is_empty() && self.excludes.is_empty()
    }

    /// Allows its names outright: no argument checks, no conditions.
    pub fn is_plain_allow(&self) -> bool {
        self.action == ACT_ALLOW && self.args.is_empty() && self.is_unconditional()
    }
}

/// The JSON fields of an action: its name and errnoRet.
pub fn action_fields(action: Action) -> (&'static str, Option<u32>) {
    match action {
        Action::Allow => (ACT_ALLOW, None),
        Action::Log => (ACT_LOG, None),
        Action::Errno(e) => (ACT_ERRNO, Some(e)),
        Action::Kill => (ACT_KILL, None),
        Action::KillProcess => (ACT_KILL_PROCESS, None),
        Action::KillThread => (ACT_KILL_THREAD, None),
        Action::Trap => (ACT_TRAP, None),
        Action::Trace(e) => (ACT_TRACE, Some(e)),
        Action::Notify => (ACT_NOTIFY, None),
    }
}

impl Profile {
    /// Docker's default profile (moby/profiles seccomp v0.2.3), shipped with this tool.
    pub fn docker_default() -> Self {
        static JSON: &str = include_str!("../../assets/docker-default-seccomp.json");
        // The embedded file is checked by a unit test, so this can't fail at run time.
        serde_json::from_str(JSON).expect("embedded Docker default profile parses")
    }

    /// Parses and validates a profile, reporting errors with line and column.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let syntax = |line, column, message: String| SyntaxError {
            path: origin.to_path_buf(),
            line,
            column,
            message,
        };
        // serde reads a JSON array as a struct's fields in order; a profile is an object.
        if let Some((offset, c)) = text.char_indices().find(|(_, c)| !c.is_whitespace())
            && c != '{'
        {
            let (line, column) = position(text, offset);
            return Err(syntax(
                line,
                column,
                "expected a JSON object (a seccomp profile)".into(),
            ));
        }
        let profile: Profile =
            serde_json::from_str(text).map_err(|e| syntax(e.line(), e.column(), e.to_string()))?;
        profile.validated(text, origin)
    }

    /// This profile, read from `text` (JSON or YAML), if runc would take it; otherwise the
    /// error, placed at the offending text.
    pub(crate) fn validated(self, text: &str, origin: &Path) -> Result<Self> {
        let Err((needle, message)) = self.validate() else {
            return Ok(self);
        };
        // YAML may leave the quotes out.
        let (line, column) = text
            .find(&needle)
            .or_else(|| text.find(needle.trim_matches('"')))
            .map(|o| position(text, o))
            .unwrap_or((1, 1));
        Err(SyntaxError {
            path: origin.to_path_buf(),
            line,
            column,
            message,
        })
    }

    /// What runc would refuse: unknown actions, architectures and operators, errnos beyond
    /// 16 bits, argument indexes past the sixth. Returns the offending JSON text (to find
    /// its position) and a message.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        let action_ok = |name: &str, errno: Option<u32>, what: &str| {
            if Action::parse(name, errno).is_none() {
                return Err((
                    format!("\"{name}\""),
                    format!(
                        "{what} {name:?} is not a seccomp action ({})",
                        ACTIONS.join(", ")
                    ),
                ));
            }
            if let Some(e) = errno.filter(|e| *e > MAX_ERRNO_RET) {
                return Err((
                    e.to_string(),
                    format!("errno {e} is out of range (at most {MAX_ERRNO_RET}, 16 bits)"),
                ));
            }
            Ok(())
        };
        action_ok(
            &self.default_action,
            self.default_errno_ret,
            "defaultAction",
        )?;
        let arches = self.architectures.iter().chain(
            self.arch_map
                .iter()
                .flat_map(|m| std::iter::once(&m.architecture).chain(m.sub_architectures.iter())),
        );
        for arch in arches {
            if !ARCHES.contains(&arch.as_str()) {
                return Err((
                    format!("\"{arch}\""),
                    format!(
                        "{arch:?} is not a seccomp architecture (SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32, ...)"
                    ),
                ));
            }
        }
        for rule in &self.syscalls {
            action_ok(&rule.action, rule.errno_ret, "action")?;
            if let Some(arg) = rule.args.iter().find(|a| a.index as usize >= ARGS) {
                return Err((
                    "\"index\"".into(),
                    format!(
                        "argument index {} is out of range (0 to {})",
                        arg.index,
                        ARGS - 1
                    ),
                ));
            }
            if rule.names.is_empty() && rule.name.is_none() {
                return Err((
                    format!("\"{}\"", rule.action),
                    "a rule without names".into(),
                ));
            }
        }
        Ok(())
    }

    /// Stable, diff-friendly JSON: two-space indent, fields in a fixed order, trailing newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }

    /// The platforms this profile is meant for: those whose ABIs it names (in
    /// `architectures`, or as an arch map's entry, as Docker's default names nine), or,
    /// naming none, the host's.
    pub fn arches(&self) -> BTreeSet<Arch> {
        let named = self
            .architectures
            .iter()
            .chain(self.arch_map.iter().map(|e| &e.architecture));
        let arches: BTreeSet<Arch> = named
            .filter_map(|a| Abi::from_seccomp_arch(a))
            .map(Abi::arch)
            .collect();
        if arches.is_empty() {
            BTreeSet::from([Arch::host()])
        } else {
            arches
        }
    }

    /// Whether the filter built from this profile on `abi`'s platform checks `abi`'s calls
    /// against its rules: the native ABI always (libseccomp adds it), others when listed in
    /// `architectures` or in the arch map's entry for the native one (what Docker expands
    /// there). Calls of an ABI it doesn't cover are all denied.
    pub fn covers(&self, abi: Abi) -> bool {
        let native = abi.arch().native();
        let arch = abi.seccomp_arch();
        abi == native
            || self.architectures.iter().any(|a| a == arch)
            || self
                .arch_map
                .iter()
                .filter(|e| e.architecture == native.seccomp_arch())
                .any(|e| e.sub_architectures.iter().any(|a| a == arch))
    }

    /// The ABIs this profile covers on the platforms it is meant for ([`Profile::arches`]).
    pub fn abis(&self) -> BTreeSet<Abi> {
        self.arches()
            .into_iter()
            .flat_map(|arch| arch.abis().iter().copied())
            .filter(|abi| self.covers(*abi))
            .collect()
    }

    /// The default action, parsed (validated on load).
    pub fn default_act(&self) -> Action {
        Action::parse(&self.default_action, self.default_errno_ret).unwrap_or(Action::Kill)
    }

    /// A warning naming what the rules mention that none of the profile's own architectures
    /// knows: Docker (libseccomp) drops those silently.
    pub fn unknown_names_warning(&self) -> Option<String> {
        let unknown = self.unknown_names(&self.abis());
        (!unknown.is_empty()).then(|| {
            format!(
                "{} name(s) unknown to the profile's architectures, which Docker ignores silently: {}",
                unknown.len(),
                unknown.join(", ")
            )
        })
    }

    /// A warning naming the errnos above [`MAX_ERRNO`]: runc takes them, and the kernel returns
    /// errno 4095 instead.
    pub fn capped_errno_warning(&self) -> Option<String> {
        let errnos: BTreeSet<u32> = std::iter::once(self.default_errno_ret)
            .chain(self.syscalls.iter().map(|r| r.errno_ret))
            .flatten()
            .filter(|e| *e > MAX_ERRNO)
            .collect();
        (!errnos.is_empty()).then(|| {
            let list: Vec<String> = errnos.iter().map(|e| e.to_string()).collect();
            format!(
                "errno {} above {MAX_ERRNO}: the kernel returns errno {MAX_ERRNO} for it instead",
                list.join(", ")
            )
        })
    }

    /// What is worth saying about a profile that is read: names its architectures don't know,
    /// errnos the kernel caps.
    pub fn warnings(&self) -> Vec<String> {
        self.unknown_names_warning()
            .into_iter()
            .chain(self.capped_errno_warning())
            .collect()
    }

    /// Every name the rules mention that none of `abis` knows (libseccomp drops those).
    pub fn unknown_names(&self, abis: &BTreeSet<Abi>) -> Vec<String> {
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for rule in &self.syscalls {
            for name in rule.all_names() {
                if !abis.iter().any(|abi| abi.knows(name)) {
                    unknown.insert(name.clone());
                }
            }
        }
        unknown.into_iter().collect()
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |n| offset - n - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_have_positions() {
        let err = Profile::parse("{\n  \"defaultAction\": }", Path::new("bad.json")).unwrap_err();
        assert_eq!((err.line, err.column), (2, 20));
    }

    #[test]
    fn invalid_profiles_are_refused_with_positions() {
        let cases = [
            (
                "{\"defaultAction\":\"SCMP_ACT_WHATEVER\"}",
                "not a seccomp action",
                (1, 18),
            ),
            (
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\n\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_FROB\"}]}",
                "not a seccomp action",
                (2, 40),
            ),
            ("  [1, 2]", "expected a JSON object", (1, 3)),
            (
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_VAX\"]}",
                "not a seccomp architecture",
                (1, 52),
            ),
            (
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":70000}",
                "out of range",
                (1, 53),
            ),
            (
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                "argument index 6",
                (1, 100),
            ),
            (
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_FROB\"}]}]}",
                "unknown variant",
                (1, 139),
            ),
        ];
        for (text, message, pos) in cases {
            let err = Profile::parse(text, Path::new("p.json")).unwrap_err();
            let m = &err.message;
            assert!(m.contains(message), "{text}: {m}");
            assert_eq!((err.line, err.column), pos, "{text}: {m}");
        }
    }

    /// moby's own example profile names errno 12345: runc takes it, the kernel returns 4095.
    #[test]
    fn errnos_above_the_kernels_cap_are_read_and_said() {
        let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":12345}]}"#;
        let p = Profile::parse(text, Path::new("moby.json")).expect("read");
        assert_eq!(p.syscalls[0].act(), Action::Errno(12345));
        assert_eq!(
            p.capped_errno_warning().as_deref(),
            Some("errno 12345 above 4095: the kernel returns errno 4095 for it instead")
        );
        assert_eq!(Profile::docker_default().capped_errno_warning(), None);
        let err = Profile::parse(&text.replace("12345", "65536"), Path::new("p")).unwrap_err();
        assert!(err.message.contains("out of range"), "{err}");
    }

    #[test]
    fn every_action_name_reads_back() {
        for name in ACTIONS {
            let action = Action::parse(name, None).expect(name);
            assert_eq!(action_fields(action).0, name);
        }
    }

    #[test]
    fn actions() {
        assert_eq!(Action::parse(ACT_ERRNO, None), Some(Action::Errno(EPERM)));
        assert_eq!(Action::parse(ACT_ERRNO, Some(38)), Some(Action::Errno(38)));
        assert!(Action::Log.runs() && !Action::Errno(1).runs() && Action::Notify.may_run());
        for a in [
            Action::Allow,
            Action::Errno(38),
            Action::Trace(3),
            Action::Kill,
        ] {
            let (name, errno) = action_fields(a);
            assert_eq!(Action::parse(name, errno), Some(a));
        }
    }

    #[test]
    fn the_default_profile_is_valid() {
        assert!(Profile::docker_default().validate().is_ok());
    }
}
