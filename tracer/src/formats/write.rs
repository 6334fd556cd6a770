//! Writing a profile: the format and default action asked for, rendered stably.
use std::path::Path;

use super::oci::OciSeccomp;
use crate::{
    output::{self, OutputError},
    seccomp::{Context, Profile},
};

/// The formats a profile can be written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Docker's seccomp JSON (Podman takes it too).
    #[default]
    Docker,
    /// The OCI runtime-spec `linux.seccomp` object (JSON).
    Oci,
    /// A Kubernetes Security Profiles Operator `SeccompProfile` manifest (YAML).
    K8s,
}

/// What a written profile does with calls it doesn't list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultAction {
    /// As the profile says (enforcing, for every profile `profile` learns).
    #[default]
    Errno,
    /// Allow them and have the kernel log them (SCMP_ACT_LOG): complain mode for rollouts.
    Log,
}

/// How a profile is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendering {
    pub format: Format,
    pub default_action: DefaultAction,
    /// `metadata.name` of a k8s manifest, when not the one the writer names.
    pub k8s_name: Option<String>,
}

/// Why a profile could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
}

impl Rendering {
    /// The file extension of the format (`json` or `yaml`).
    pub fn extension(&self) -> &'static str {
        match self.format {
            Format::K8s => "yaml",
            Format::Docker | Format::Oci => "json",
        }
    }

    /// `profile` with the default action applied, in the format. `name` names a k8s
    /// manifest unless [`Rendering::k8s_name`] does. OCI and k8s rules are resolved for
    /// Docker's default capabilities: neither format has `includes`/`excludes`.
    pub fn render(&self, profile: &Profile, name: &str) -> Result<String, RenderError> {
        let profile = match self.default_action {
            DefaultAction::Errno => profile.clone(),
            DefaultAction::Log => profile.clone().logging(),
        };
        let ctx = Context::docker_default();
        Ok(match self.format {
            Format::Docker => profile.to_json()?,
            Format::Oci => OciSeccomp::resolve(&profile, &ctx).to_json()?,
            Format::K8s => OciSeccomp::resolve(&profile, &ctx)
                .to_k8s_yaml(self.k8s_name.as_deref().unwrap_or(name))?,
        })
    }
}

/// Why a profile could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Render(#[from] RenderError),
    // Not transparent: the command line looks for a closed stdout in the chain.
    #[error("{0}")]
    Output(#[from] OutputError),
}

impl Rendering {
    /// Renders `profile` and writes it to `path` (atomically), or to stdout without one (or
    /// with `-`). A k8s manifest is named `name`, else after the file [default: `profile`].
    pub fn write(
        &self,
        path: Option<&Path>,
        profile: &Profile,
        name: Option<&str>,
    ) -> Result<(), WriteError> {
        let path = output::file(path);
        let stem = path
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned());
        let text = self.render(profile, name.or(stem.as_deref()).unwrap_or("profile"))?;
        match path {
            Some(path) => output::write_atomic(path, text.as_bytes())?,
            None => output::stdout(&text)?,
        }
        Ok(())
    }
}
