//! Writing a profile: the format, default action and platforms asked for, rendered stably.
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use super::oci::OciSeccomp;
use crate::{
    names::Arch,
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
    /// `metadata.namespace` and `metadata.labels` of a k8s manifest (none by default).
    pub k8s_namespace: Option<String>,
    pub k8s_labels: std::collections::BTreeMap<String, String>,
    /// Platforms the profile must also hold on (empty: the host's alone). Formats without
    /// per-platform rules get one file per platform, unless `arch_union`.
    pub arches: BTreeSet<Arch>,
    /// One file whose rules apply on every platform instead (their union).
    pub arch_union: bool,
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
            Format::K8s => {
                let mut manifest = OciSeccomp::resolve(&profile, &ctx)
                    .to_k8s_manifest(self.k8s_name.as_deref().unwrap_or(name));
                manifest.metadata.namespace = self.k8s_namespace.clone();
                manifest.metadata.labels = self.k8s_labels.clone();
                serde_saphyr::to_string(&manifest)?
            }
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
    #[error("one file per architecture: name an output file (-o), or pass --arch-union")]
    OnePerPlatform,
}

impl Rendering {
    /// Renders `profile` and writes it to `path` (atomically), or to stdout without one (or
    /// with `-`). A k8s manifest is named `name`, else after the file [default: `profile`].
    /// A profile for several platforms goes, in formats without per-platform rules, to one
    /// file per platform (`NAME.arm64.json`) unless [`Rendering::arch_union`].
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
        let name = name.or(stem.as_deref()).unwrap_or("profile");
        let ctx = Context::docker_default();
        let profile = match (self.format, self.arches.len(), self.arch_union) {
            (Format::Docker, _, _) | (_, 0, _) => profile.clone(),
            (_, 1, _) => profile.for_arch(*self.arches.first().unwrap_or(&Arch::host()), &ctx),
            (_, _, true) => profile.arch_union(&ctx),
            (_, _, false) => {
                let path = path.ok_or(WriteError::OnePerPlatform)?;
                for (arch, file) in arch_files(path, &self.arches) {
                    let text =
                        self.render(&profile.for_arch(arch, &ctx), &format!("{name}-{arch}"))?;
                    output::write_atomic(&file, text.as_bytes())?;
                }
                return Ok(());
            }
        };
        let text = self.render(&profile, name)?;
        match path {
            Some(path) => output::write_atomic(path, text.as_bytes())?,
            None => output::stdout(&text)?,
        }
        Ok(())
    }

    /// How a profile is written to `path` in this rendering, in words.
    pub fn written_as(&self, path: Option<&Path>) -> String {
        match (self.format, self.arches.len(), self.arch_union, output::file(path)) {
            (Format::Docker, _, _, _) | (_, 0, _, _) => {
                "one Docker profile; rules Docker keeps on one platform only carry includes.arches"
                    .into()
            }
            (_, 1, _, _) => format!(
                "one file for {}",
                self.arches.first().unwrap_or(&Arch::host())
            ),
            (_, _, true, _) => "one file whose rules apply on every platform (their union: each allows the others' calls too)".into(),
            (_, _, false, Some(path)) => {
                let files: Vec<String> = arch_files(path, &self.arches)
                    .into_iter()
                    .map(|(_, f)| f.display().to_string())
                    .collect();
                format!("one file per platform: {}", files.join(", "))
            }
            (_, _, false, None) => "one file per platform (none: stdout can't hold them)".into(),
        }
    }
}

/// `app.json` → `app.amd64.json`, `app.arm64.json`: one file per platform.
fn arch_files(path: &Path, arches: &BTreeSet<Arch>) -> Vec<(Arch, PathBuf)> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path.extension().map(|s| s.to_string_lossy().into_owned());
    arches
        .iter()
        .map(|arch| {
            let name = match &ext {
                Some(ext) => format!("{stem}.{arch}.{ext}"),
                None => format!("{stem}.{arch}"),
            };
            (*arch, path.with_file_name(name))
        })
        .collect()
}
