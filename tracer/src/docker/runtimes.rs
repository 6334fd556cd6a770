//! The engine's container runtimes: which one a container runs with, its version, and its
//! binary where the daemon runs it (the runtime's tail is read from it, see
//! [`crate::runtime`]).
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex},
};

use crate::runtime::{Daemon, Runtime, locate::parse_version};

/// The name Podman's Docker-compatible API gives every container's runtime, whichever it is:
/// the one Podman runs by default, unless the container was started with another.
const PODMAN_ANY: &str = "oci";

/// What the engine said about its runtimes.
#[derive(Clone, Debug, Default)]
pub struct Runtimes {
    /// The runtime containers run with unless they name another.
    pub default: Runtime,
    /// The runtimes the engine lists, by name: the program each runs (a path or a name on the
    /// daemon's PATH).
    programs: BTreeMap<String, String>,
    /// Versions of the engine's components by name (`runc` → `1.1.5+ds1`).
    components: BTreeMap<String, String>,
    podman: bool,
    /// The daemon's process, when it is visible from here.
    daemon: Option<Daemon>,
    /// Each runtime once it was looked up (its binary run for its version).
    known: Arc<Mutex<BTreeMap<String, Runtime>>>,
}

impl Runtimes {
    /// The runtimes of the engine behind `socket` (a Unix socket, when it is one).
    pub fn new(
        default: &str,
        programs: BTreeMap<String, String>,
        components: BTreeMap<String, String>,
        podman: bool,
        socket: Option<&Path>,
    ) -> Self {
        let mut runtimes = Runtimes {
            default: Runtime::default(),
            programs,
            components,
            podman,
            daemon: socket.and_then(Daemon::serving),
            known: Default::default(),
        };
        runtimes.default = runtimes.named(default);
        runtimes
    }

    /// The runtime a container runs with: `name` from its configuration (HostConfig.Runtime),
    /// or the engine's default.
    pub fn of(&self, name: Option<&str>) -> Runtime {
        match name.filter(|n| !n.is_empty()) {
            Some(PODMAN_ANY) if self.podman => self.default.clone(),
            Some(name) if name != self.default.name => self.named(name),
            _ => self.default.clone(),
        }
    }

    fn named(&self, name: &str) -> Runtime {
        // A poisoned lock only means another thread panicked mid-insert: the map is still whole.
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .entry(name.to_string())
            .or_insert_with(|| {
                let program = self.programs.get(name).map_or(name, String::as_str);
                let binary = self.daemon.as_ref().and_then(|d| d.find(program));
                Runtime::new(name, self.version(name).as_deref()).with_binary(binary)
            })
            .clone()
    }

    /// The version the engine reports for runtime `name`: Docker names the runc it runs by
    /// default as a component (a runtime configured under another name is another program,
    /// whose version it doesn't know), Podman its OCI runtime (`OCI Runtime (crun)`).
    fn version(&self, name: &str) -> Option<String> {
        if (name == "runc" || name.starts_with("io.containerd.runc."))
            && let Some(v) = self.components.get("runc")
        {
            return Some(v.clone());
        }
        self.components
            .get(&format!("oci runtime ({name})"))
            .and_then(|text| parse_version(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtimes(podman: bool, default: &str) -> Runtimes {
        let components = BTreeMap::from([
            ("runc".to_string(), "1.1.5+ds1".to_string()),
            (
                "oci runtime (crun)".to_string(),
                "crun version 1.8.1\ncommit: f8a096be\n".to_string(),
            ),
        ]);
        Runtimes::new(default, BTreeMap::new(), components, podman, None)
    }

    #[test]
    fn versions_as_the_engines_report_them() {
        let docker = runtimes(false, "runc");
        assert_eq!(docker.default, Runtime::new("runc", Some("1.1.5+ds1")));
        assert_eq!(
            docker.of(Some("io.containerd.runc.v2")),
            Runtime::new("io.containerd.runc.v2", Some("1.1.5+ds1"))
        );
        assert_eq!(docker.of(Some("crun")), Runtime::new("crun", Some("1.8.1")));
        assert_eq!(docker.of(Some("kata")), Runtime::new("kata", None));
        assert_eq!(docker.of(None), docker.default);
    }

    #[test]
    fn podman_names_every_containers_runtime_oci() {
        let podman = runtimes(true, "crun");
        assert_eq!(podman.of(Some("oci")), Runtime::new("crun", Some("1.8.1")));
        assert_eq!(runtimes(false, "runc").of(Some("oci")).name, "oci");
    }
}
