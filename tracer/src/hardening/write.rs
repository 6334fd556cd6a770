//! Where a recipe goes: its own JSON file, a compose override for the service, a Kubernetes
//! patch for the container. Each is written (atomically) only when the recipe was verified:
//! nothing is recommended that a run under it did not pass.
use std::path::{Path, PathBuf};

use super::{HardeningError, Recipe, render};
use crate::output;

/// The files a recipe is written to, and the names they give it.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// The recipe as JSON (`--hardening`).
    pub recipe: Option<PathBuf>,
    /// A compose override for `service` (`--compose-override`).
    pub compose: Option<PathBuf>,
    pub service: String,
    /// The stack's compose file format version.
    pub compose_version: String,
    /// A Kubernetes strategic-merge patch for `container` (`--k8s-patch`).
    pub k8s: Option<PathBuf>,
    pub container: String,
    /// The seccomp profile's path relative to kubelet's seccomp root.
    pub localhost_profile: Option<String>,
}

/// What [`Outputs::write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Nothing was asked for.
    Nothing,
    /// These files were written.
    Files(Vec<PathBuf>),
    /// The recipe was not verified: nothing was written (the paths asked for).
    Unverified(Vec<PathBuf>),
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Render(#[from] HardeningError),
    #[error(transparent)]
    Output(#[from] output::OutputError),
}

impl Outputs {
    /// Every path asked for, in a fixed order.
    pub fn paths(&self) -> Vec<&Path> {
        [&self.recipe, &self.compose, &self.k8s]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }

    /// Writes every output asked for, when `recipe` was verified; none otherwise.
    pub fn write(&self, recipe: &Recipe) -> Result<Written, WriteError> {
        let paths: Vec<PathBuf> = self.paths().into_iter().map(Path::to_path_buf).collect();
        if paths.is_empty() {
            return Ok(Written::Nothing);
        }
        if !recipe.verified {
            return Ok(Written::Unverified(paths));
        }
        // All rendered before any is written: a rendering error leaves none half-done.
        let mut files = Vec::new();
        if let Some(path) = &self.recipe {
            files.push((path, recipe.to_json()?));
        }
        if let Some(path) = &self.compose {
            let services = [(self.service.clone(), recipe)];
            files.push((
                path,
                render::compose_override(&services, &self.compose_version)?,
            ));
        }
        if let Some(path) = &self.k8s {
            let patch =
                render::k8s_patch(recipe, &self.container, self.localhost_profile.as_deref())?;
            files.push((path, patch));
        }
        for (path, text) in &files {
            output::write_atomic(path, text.as_bytes())?;
        }
        Ok(Written::Files(paths))
    }
}

impl Written {
    /// One line for the terminal, when anything was asked for.
    pub fn words(&self, why_not: &str) -> Option<String> {
        let list = |paths: &[PathBuf]| {
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Written::Nothing => None,
            Written::Files(paths) => Some(format!("least-privilege recipe -> {}", list(paths))),
            Written::Unverified(paths) => Some(format!(
                "least-privilege recipe not written to {}: {why_not}",
                list(paths)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unverified_recipe_is_written_nowhere() {
        let dir = std::env::temp_dir().join(format!("profile-recipe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let outputs = Outputs {
            recipe: Some(dir.join("r.json")),
            compose: Some(dir.join("override.yml")),
            service: "web".into(),
            compose_version: "2.4".into(),
            k8s: Some(dir.join("patch.yaml")),
            container: "web".into(),
            localhost_profile: Some("profile/web.json".into()),
        };
        let mut recipe = Recipe {
            image: "web".into(),
            ..Recipe::default()
        };
        let said = outputs.write(&recipe).unwrap();
        assert!(matches!(said, Written::Unverified(_)));
        assert!(outputs.paths().iter().all(|p| !p.exists()));
        assert!(
            said.words("CHOWN denied")
                .unwrap()
                .ends_with(": CHOWN denied")
        );
        recipe.verified = true;
        assert!(matches!(outputs.write(&recipe).unwrap(), Written::Files(f) if f.len() == 3));
        let back = Recipe::read(&dir.join("r.json")).unwrap();
        assert_eq!(back, recipe);
        let compose = std::fs::read_to_string(dir.join("override.yml")).unwrap();
        assert!(compose.contains("web:"), "{compose}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
