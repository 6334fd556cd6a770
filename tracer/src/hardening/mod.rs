//! The least-privilege recipe of a container beside its seccomp profile: the capabilities it
//! keeps (all others dropped), whether its root filesystem can be read-only and where it needs
//! tmpfs, whether no-new-privileges holds, and the user it can run as — learned from what a
//! training run did ([`learn`]), never more than that run had, and written for `docker run`,
//! compose and Kubernetes ([`render`]). A recipe is recommended only once a run under the whole
//! of it passed: `verified` says whether one did.
pub mod caps;
pub mod learn;
pub mod merge;
pub mod render;
pub mod rootfs;
pub mod verdict;
pub mod write;

use serde::{Deserialize, Serialize};

pub use learn::{Learning, learn};
pub use rootfs::{Change, ChangeKind, Rootfs};

/// The recipe, as written to `--hardening FILE.json`: stable keys, sorted lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// The image it was learned from.
    pub image: String,
    /// Whether a run under the whole recipe (seccomp profile included) passed.
    pub verified: bool,
    pub capabilities: Capabilities,
    pub read_only_rootfs: bool,
    /// Directories to mount as tmpfs (only with a read-only root filesystem).
    pub tmpfs: Vec<String>,
    pub no_new_privileges: bool,
    /// The user to run as (`UID:GID`), when it is to change; `None`: as the image says.
    pub user: Option<String>,
    /// The seccomp profile it goes with, as written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seccomp: Option<String>,
    /// The `docker run` options that apply all of it.
    #[serde(default)]
    pub docker_run_options: Vec<String>,
    /// Why each setting is what it is.
    #[serde(default)]
    pub evidence: Evidence,
}

/// Capabilities as Docker spells them (no `CAP_` prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub drop: Vec<String>,
    pub add: Vec<String>,
}

/// What the training saw that decided each setting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The capabilities kept, each with the checks that used it.
    #[serde(default)]
    pub used: Vec<CapabilityUse>,
    /// Capabilities the workload was denied in training (it did not have them): wanted, not
    /// granted, and not added.
    #[serde(default)]
    pub wanted: Vec<CapabilityUse>,
    /// Ports below 1024 it bound (NET_BIND_SERVICE where unprivileged ports start at 1024).
    #[serde(default)]
    pub low_ports: Vec<u16>,
    /// Paths it wrote in its root filesystem (as `docker diff` shows them).
    #[serde(default)]
    pub writes: Vec<String>,
    /// Why the root filesystem is not read-only, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_because: Option<String>,
    /// The programs whose exec changed the workload's credentials (setuid, setgid, file
    /// capabilities): no-new-privileges would stop them.
    #[serde(default)]
    pub privileged_execs: Vec<String>,
    /// The user the training ran as (empty: the image's default, root).
    #[serde(default)]
    pub trained_as: String,
    /// Why the user is what it is.
    #[serde(default)]
    pub user_because: String,
}

/// One capability and where the workload used (or wanted) it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityUse {
    pub name: String,
    /// The syscalls the checks happened in.
    pub syscalls: Vec<String>,
    /// The programs that made the first check of each kind.
    pub programs: Vec<String>,
    pub checks: u64,
}

/// Why a recipe could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    #[error(transparent)]
    Read(#[from] crate::input::InputError),
    #[error("{path}: not a hardening recipe: {source}")]
    Parse {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: capability {name:?} is not one the kernel defines")]
    UnknownCapability {
        path: std::path::PathBuf,
        name: String,
    },
    #[error("writing a recipe: {0}")]
    Render(String),
}

impl Recipe {
    /// The recipe at `path`, or `None` where the file is not one (no `read_only_rootfs` key:
    /// a seccomp profile, say) or is nothing a recipe could be read from: stdin (it reads
    /// once) or what isn't a bounded regular file (/dev/zero). Those go to the profile reader,
    /// which says why it refuses them.
    pub fn read_if_recipe(path: &std::path::Path) -> Result<Option<Recipe>, HardeningError> {
        if crate::input::is_stdin(path) {
            return Ok(None);
        }
        let Ok(text) = crate::input::read_text(path) else {
            return Ok(None);
        };
        let is_recipe = serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v.get("read_only_rootfs").is_some());
        match is_recipe {
            true => Self::from_text(path, &text).map(Some),
            false => Ok(None),
        }
    }

    /// Reads a recipe written by `--hardening` (its `docker_run_options` are worked out again
    /// from its settings, so a hand edit of them can't disagree).
    pub fn read(path: &std::path::Path) -> Result<Recipe, HardeningError> {
        Self::from_text(path, &crate::input::read_text(path)?)
    }

    fn from_text(path: &std::path::Path, text: &str) -> Result<Recipe, HardeningError> {
        let mut recipe: Recipe =
            serde_json::from_str(text).map_err(|source| HardeningError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        for name in recipe
            .capabilities
            .add
            .iter()
            .chain(&recipe.capabilities.drop)
        {
            if name != "ALL" && caps::number(name).is_none() {
                return Err(HardeningError::UnknownCapability {
                    path: path.to_path_buf(),
                    name: name.clone(),
                });
            }
        }
        recipe.docker_run_options = render::docker_run_options(&recipe);
        Ok(recipe)
    }

    /// The recipe as pretty JSON with a final newline (stable: fields in a fixed order, lists
    /// sorted by their builders).
    pub fn to_json(&self) -> Result<String, HardeningError> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|e| HardeningError::Render(e.to_string()))
    }

    /// The same recipe running as the image's own user.
    pub fn as_image_user(&self, because: String) -> Recipe {
        let mut r = self.clone();
        r.user = None;
        r.evidence.user_because = because;
        r.docker_run_options = render::docker_run_options(&r);
        r
    }
}
