//! Reading a profile in any format `profile` writes, with errors placed at line and column:
//! Docker's JSON, the OCI `linux.seccomp` object (alone or in a runtime config) and an SPO
//! `SeccompProfile` manifest (YAML or JSON).
use std::path::Path;

use serde::{Deserialize, de::IgnoredAny};

use super::oci::{SPO_API_VERSION, SPO_GROUP, SPO_KIND};
use crate::{
    input::{self, InputError},
    seccomp::{
        Base, Profile, SyntaxError,
        bound::{ALLOW_ALL, DOCKER_DEFAULT},
        model::position,
    },
};

type Result<T, E = SyntaxError> = std::result::Result<T, E>;

/// Why a profile could not be read: the input, or what it holds.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// No such file, and its name is close to a built-in profile's: a misspelling, most likely.
    #[error("{name}: no such file, nor a built-in profile; a similar one exists: {similar}")]
    Misspelt { name: String, similar: &'static str },
}

/// The built-in profile `name` most likely misspells, as clap finds a misspelt option's
/// (Jaro similarity above 0.7), when no file of that name exists.
fn misspelt(name: &str, builtins: &[&'static str]) -> Option<&'static str> {
    if name.contains('/') || Path::new(name).exists() {
        return None;
    }
    builtins
        .iter()
        .map(|b| (strsim::jaro(name, b), *b))
        .filter(|(similarity, _)| *similarity > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, b)| b)
}

fn refuse_misspelt(name: &str, builtins: &[&'static str]) -> Result<(), ReadError> {
    match misspelt(name, builtins) {
        Some(similar) => Err(ReadError::Misspelt {
            name: name.to_string(),
            similar,
        }),
        None => Ok(()),
    }
}

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
    if let Some(name) = path.to_str() {
        refuse_misspelt(name, &[DOCKER_DEFAULT])?;
    }
    let text = input::read_text(path)?;
    Ok(parse_profile(&text, origin(path))?)
}

/// The base `name` names: [`DOCKER_DEFAULT`], [`ALLOW_ALL`], or a profile read as
/// [`read_profile`] reads it.
pub fn read_base(name: &str) -> Result<Base, ReadError> {
    Ok(match name {
        ALLOW_ALL => Base::AllowAll,
        DOCKER_DEFAULT if is_docker_default(Path::new(name)) => Base::DockerDefault,
        path => {
            refuse_misspelt(path, &[DOCKER_DEFAULT, ALLOW_ALL])?;
            Base::Profile {
                profile: Box::new(read_profile(Path::new(path))?),
                label: path.to_string(),
            }
        }
    })
}

/// How an input is named in messages: `<stdin>` for `-`.
pub fn origin(path: &Path) -> &Path {
    if input::is_stdin(path) {
        Path::new("<stdin>")
    } else {
        path
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
    if first.is_none() {
        return Err(syntax((1, 1), "the file is empty: no profile in it".into()));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{formats::OciSeccomp, names::Abi, seccomp::Context};

    #[test]
    fn a_misspelt_built_in_profile_is_named() {
        let base = |name: &str| match read_base(name) {
            Err(ReadError::Misspelt { similar, .. }) => Some(similar),
            _ => None,
        };
        assert_eq!(base("docker-defualt"), Some(DOCKER_DEFAULT));
        assert_eq!(base("docker_default"), Some(DOCKER_DEFAULT));
        assert_eq!(base("alow-all"), Some(ALLOW_ALL));
        for other in ["web.json", "profiles/docker-defualt", "app.yaml", "-x"] {
            assert_eq!(base(other), None, "{other}");
        }
        let err = read_profile(Path::new("docker-defalt")).expect_err("no such file");
        assert_eq!(
            err.to_string(),
            "docker-defalt: no such file, nor a built-in profile; a similar one exists: docker-default"
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
        for empty in ["", " \n\n"] {
            assert_eq!(
                err(empty),
                "m.yaml:1:1: the file is empty: no profile in it"
            );
        }
    }
}
