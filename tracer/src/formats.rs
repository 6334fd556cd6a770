//! The formats profiles are written and read in besides Docker's JSON: the OCI runtime-spec
//! `linux.seccomp` object (alone or in a runtime config) and a Kubernetes Security Profiles
//! Operator `SeccompProfile` manifest (YAML).
//!
//! Neither format has Docker's `includes`/`excludes` or `archMap`: rules are resolved for a
//! [`Context`] (Docker's default capabilities, amd64, the running kernel) and the arch map is
//! expanded the way Docker expands it for an x86_64 host.
use std::path::Path;

use serde::{Deserialize, Serialize, de::IgnoredAny};

use crate::{
    input::{self, InputError},
    seccomp::{Arg, Context, Profile, SyntaxError, model::position},
};

type Result<T, E = SyntaxError> = std::result::Result<T, E>;

/// Why a profile could not be read: the input, or what it holds.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
}

/// The name that stands for Docker's default profile wherever a profile is read, unless a file
/// has that name.
pub const DOCKER_DEFAULT: &str = "docker-default";

/// Whether `path` names Docker's default profile (see [`DOCKER_DEFAULT`]).
pub fn is_docker_default(path: &Path) -> bool {
    path == Path::new(DOCKER_DEFAULT) && !path.exists()
}

/// Reads a profile in any format `profile` writes (see [`parse_profile`]) from a regular file
/// within the input limit, or from stdin as `-`; [`DOCKER_DEFAULT`] names Docker's default
/// profile shipped with this tool.
pub fn read_profile(path: &Path) -> Result<Profile, ReadError> {
    if is_docker_default(path) {
        return Ok(Profile::docker_default());
    }
    let text = input::read_text(path)?;
    Ok(parse_profile(&text, origin(path))?)
}

/// How an input is named in messages: `<stdin>` for `-`.
pub fn origin(path: &Path) -> &Path {
    if input::is_stdin(path) {
        Path::new("<stdin>")
    } else {
        path
    }
}

pub const SPO_API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";
pub const SPO_KIND: &str = "SeccompProfile";
/// The API group of every SPO version (v1alpha1, v1beta1).
const SPO_GROUP: &str = "security-profiles-operator.x-k8s.io/";

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

/// Reads a profile in any format `profile` writes: Docker's JSON or the OCI `linux.seccomp`
/// object (a JSON object with `defaultAction`), an OCI runtime config (its `linux.seccomp`),
/// or an SPO `SeccompProfile` manifest (YAML, or JSON). Errors name the line and column.
pub fn parse_profile(text: &str, origin: &Path) -> Result<Profile> {
    let syntax = |(line, column): (usize, usize), message: String| SyntaxError {
        path: origin.to_path_buf(),
        line,
        column,
        message,
    };
    let first = text.trim_start().chars().next();
    if matches!(first, Some('{') | Some('[')) {
        return match serde_json::from_str::<Head>(text) {
            Ok(head) if head.kind.is_some() => {
                let manifest: Manifest = serde_json::from_str(text)
                    .map_err(|e| syntax((e.line(), e.column()), e.to_string()))?;
                head.check_manifest(text, origin)?;
                manifest.spec.validated(text, origin)
            }
            Ok(head) if head.default_action.is_none() && head.linux.is_some() => {
                let config: RuntimeConfig = serde_json::from_str(text)
                    .map_err(|e| syntax((e.line(), e.column()), e.to_string()))?;
                let seccomp = config.linux.seccomp.ok_or_else(|| {
                    syntax(
                        (1, 1),
                        "an OCI runtime config without linux.seccomp: no profile in it".into(),
                    )
                })?;
                seccomp.validated(text, origin)
            }
            // Docker's format, the OCI object, or JSON with errors Profile::parse places.
            _ => Profile::parse(text, origin),
        };
    }
    let yaml = |e: serde_saphyr::Error| {
        let at = e
            .location()
            .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
        let message = e.render_with_options(serde_saphyr::render_options! {
            snippets: serde_saphyr::SnippetMode::Off,
        });
        syntax(
            at,
            format!(
                "neither a JSON profile nor a SeccompProfile manifest (YAML): {}",
                without_position(&message)
            ),
        )
    };
    let head: Head = serde_saphyr::from_str(text).map_err(yaml)?;
    head.check_manifest(text, origin)?;
    let manifest: Manifest = serde_saphyr::from_str(text).map_err(yaml)?;
    manifest.spec.validated(text, origin)
}

/// serde's message without the " at line L column C" its Display adds: the error names
/// the position itself.
fn without_position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or(message, |at| &message[..at])
}

/// What tells the formats apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<String>,
    kind: Option<String>,
    default_action: Option<IgnoredAny>,
    linux: Option<IgnoredAny>,
    spec: Option<HeadSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadSpec {
    base_profile_name: Option<String>,
}

impl Head {
    /// Refuses what isn't an SPO SeccompProfile, or one whose rules aren't all in the file.
    fn check_manifest(&self, text: &str, origin: &Path) -> Result<()> {
        let at = |needle: &str| text.find(needle).map_or((1, 1), |o| position(text, o));
        let refuse = |needle: &str, message: String| {
            let (line, column) = at(needle);
            Err(SyntaxError {
                path: origin.to_path_buf(),
                line,
                column,
                message,
            })
        };
        let kind = self.kind.as_deref().unwrap_or_default();
        if kind != SPO_KIND {
            return refuse(
                "kind",
                format!("kind {kind:?}: not a {SPO_KIND} manifest (nor a seccomp profile)"),
            );
        }
        let api = self.api_version.as_deref().unwrap_or_default();
        if !api.starts_with(SPO_GROUP) {
            return refuse(
                "apiVersion",
                format!(
                    "apiVersion {api:?}: not the Security Profiles Operator's ({SPO_API_VERSION})"
                ),
            );
        }
        if let Some(base) = self
            .spec
            .as_ref()
            .and_then(|s| s.base_profile_name.as_deref())
        {
            return refuse(
                "baseProfileName",
                format!(
                    "baseProfileName {base:?}: the profile is built on another one, whose rules are not in this file"
                ),
            );
        }
        Ok(())
    }
}

/// An SPO manifest, read: the spec is a seccomp profile (SPO's fields are Docker's).
#[derive(Deserialize)]
struct Manifest {
    spec: Profile,
}

/// An OCI runtime config (`config.json`), read for its seccomp object.
#[derive(Deserialize)]
struct RuntimeConfig {
    linux: RuntimeLinux,
}

#[derive(Deserialize)]
struct RuntimeLinux {
    seccomp: Option<Profile>,
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
    fn what_is_written_is_read_back() {
        let ctx = Context::docker_default();
        let default = Profile::docker_default();
        let oci = OciSeccomp::resolve(&default, &ctx);
        let origin = Path::new("p");
        let from_yaml = parse_profile(&oci.to_k8s_yaml("d").unwrap(), origin).unwrap();
        let from_oci = parse_profile(&oci.to_json().unwrap(), origin).unwrap();
        let config = format!(
            "{{\"ociVersion\": \"1.0.2\", \"linux\": {{\"seccomp\": {}}}}}",
            oci.to_json().unwrap()
        );
        let from_config = parse_profile(&config, origin).unwrap();
        let json_manifest = serde_json::to_string(&oci.to_k8s_manifest("d")).unwrap();
        let from_json_manifest = parse_profile(&json_manifest, origin).unwrap();
        for (what, p) in [
            ("yaml", &from_yaml),
            ("oci", &from_oci),
            ("config", &from_config),
            ("json manifest", &from_json_manifest),
        ] {
            for abi in Abi::ALL {
                assert_eq!(
                    p.decisions(abi, &ctx),
                    default.decisions(abi, &ctx),
                    "{what} {abi}"
                );
            }
        }
    }

    #[test]
    fn unreadable_manifests_say_where() {
        let err = |text: &str| {
            parse_profile(text, Path::new("m.yaml"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("apiVersion: v1\nkind: ConfigMap\nspec: {}\n"),
            "m.yaml:2:1: kind \"ConfigMap\": not a SeccompProfile manifest (nor a seccomp profile)"
        );
        assert_eq!(
            err(
                "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nspec:\n  baseProfileName: runc-v1.1.5\n  defaultAction: SCMP_ACT_ERRNO\n"
            ),
            "m.yaml:4:3: baseProfileName \"runc-v1.1.5\": the profile is built on another one, whose rules are not in this file"
        );
        assert_eq!(
            err(
                "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - names: [read]\n    action: SCMP_ACT_FROB\n"
            ),
            "m.yaml:7:13: action \"SCMP_ACT_FROB\" is not a seccomp action (SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_LOG, SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_NOTIFY)"
        );
        assert_eq!(
            err("this is: [not closed\n"),
            "m.yaml:1:10: neither a JSON profile nor a SeccompProfile manifest (YAML): unclosed bracket '['"
        );
        // JSON errors keep serde_json's positions.
        assert!(err("{\n  \"defaultAction\": }").starts_with("m.yaml:2:20: "));
        assert!(err("  [1, 2]").contains("expected a JSON object"));
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
