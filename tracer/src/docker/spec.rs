//! What a container is made of: the `docker run` options as parsed (ports, environment,
//! volumes, image references), the labels that name the process responsible for it, and the
//! create request built from them.
use std::{collections::HashMap, path::PathBuf, time::Duration};

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, PortBinding};

use crate::owner::Owner;

/// One `-p [IP:]HOST:CTR[/PROTO]` mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: Option<String>,
    pub host_port: String,
    /// `80/tcp`: the container port with its protocol.
    pub container: String,
}

impl std::str::FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?}: expected [[IP:]HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp]");
        // A container port alone is published on a host port Docker picks, as `docker run -p`.
        let (rest, container) = s.rsplit_once(':').unwrap_or(("", s));
        let (port, proto) = container.split_once('/').unwrap_or((container, "tcp"));
        if port.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(bad());
        }
        let (host_ip, host_port) = match rest.rsplit_once(':') {
            Some((ip, hp)) => (
                Some(ip.trim_start_matches('[').trim_end_matches(']').to_string()),
                hp,
            ),
            None => (None, rest),
        };
        // An empty host port (`8080`, `127.0.0.1::8080`): one Docker picks.
        if !host_port.is_empty() && host_port.parse::<u16>().is_err() {
            return Err(bad());
        }
        if let Some(ip) = &host_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(format!("{s:?}: {ip:?} is not an IP address"));
        }
        Ok(PortSpec {
            host_ip,
            host_port: host_port.to_string(),
            container: format!("{port}/{proto}"),
        })
    }
}

/// A `-e K=V` pair (a bare `K` takes K's value from this process's environment, as
/// `docker run -e K` does).
pub fn env_entry(s: &str) -> std::result::Result<String, String> {
    if s.is_empty() || s.starts_with('=') {
        return Err(format!("{s:?}: expected KEY=VALUE or KEY"));
    }
    if s.contains('=') {
        return Ok(s.to_string());
    }
    Ok(match std::env::var(s) {
        Ok(value) => format!("{s}={value}"),
        Err(_) => s.to_string(),
    })
}

/// A `-v SRC:DST[:OPTS]` bind mount or named volume; a relative SRC is made absolute.
pub fn volume_entry(s: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = s.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts[0].is_empty() || !parts[1].starts_with('/') {
        return Err(format!("{s:?}: expected SRC:/DST[:ro]"));
    }
    let src = parts[0];
    let src = if src.starts_with('.') || src.contains('/') && !src.starts_with('/') {
        std::path::absolute(src)
            .map_err(|e| format!("{src}: {e}"))?
            .to_string_lossy()
            .into_owned()
    } else {
        src.to_string()
    };
    let mut out = format!("{src}:{}", parts[1]);
    if let Some(opts) = parts.get(2) {
        out.push(':');
        out.push_str(opts);
    }
    Ok(out)
}

/// The container `train` and `verify` run.
#[derive(Clone, Debug, Default)]
pub struct ContainerSpec {
    pub image: String,
    pub name: String,
    /// Replaces the image's CMD when not empty.
    pub cmd: Vec<String>,
    /// Replaces the image's ENTRYPOINT (`Some("")` clears it).
    pub entrypoint: Option<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub ports: Vec<PortSpec>,
    pub volumes: Vec<String>,
    pub network: Option<String>,
    /// The seccomp profile's JSON text.
    pub seccomp: String,
    /// Capabilities added to and dropped from Docker's default set.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// A read-only root filesystem (`--read-only`), with tmpfs mounted at `tmpfs`.
    pub read_only: bool,
    pub tmpfs: Vec<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// A health check (`sh -c` in the container) replacing the image's HEALTHCHECK.
    pub health_cmd: Option<String>,
    /// The process responsible for removing the container, named in its labels.
    pub owner: Option<Owner>,
    /// The container is kept on purpose: never removed as a leftover.
    pub keep: bool,
}

/// How often `--health-cmd` runs: often, since the exercise waits for it.
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

impl ContainerSpec {
    /// Runs under the whole of a least-privilege recipe: all capabilities dropped but those
    /// it keeps, the read-only root with its tmpfs, no-new-privileges, its user.
    pub fn harden(&mut self, recipe: &crate::hardening::Recipe) {
        self.cap_drop = recipe.capabilities.drop.clone();
        self.cap_add = recipe.capabilities.add.clone();
        self.read_only = recipe.read_only_rootfs;
        self.tmpfs = recipe.tmpfs.clone();
        self.no_new_privileges = recipe.no_new_privileges;
        if let Some(user) = &recipe.user {
            self.user = Some(user.clone());
        }
    }

    /// Where volumes, binds and tmpfs mounts go in the container.
    pub fn mount_destinations(&self) -> Vec<String> {
        let volumes = self.volumes.iter().filter_map(|v| {
            let mut parts = v.split(':');
            let first = parts.next()?;
            Some(parts.next().unwrap_or(first).to_string())
        });
        volumes.chain(self.tmpfs.iter().cloned()).collect()
    }

    pub(super) fn body(&self) -> ContainerCreateBody {
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for port in &self.ports {
            bindings
                .entry(port.container.clone())
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: port.host_ip.clone(),
                    host_port: Some(port.host_port.clone()),
                });
        }
        let mut exposed: Vec<String> = bindings.keys().cloned().collect();
        exposed.sort();
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    vec![String::new()]
                } else {
                    vec![e.clone()]
                }
            }),
            env: (!self.env.is_empty()).then(|| self.env.clone()),
            user: self.user.clone(),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            labels: Some(labels(self.owner.as_ref(), self.keep)),
            healthcheck: self.health_cmd.as_ref().map(|cmd| HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), cmd.clone()]),
                interval: Some(HEALTH_INTERVAL.as_nanos() as i64),
                timeout: Some(Duration::from_secs(30).as_nanos() as i64),
                retries: Some(3),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                security_opt: Some(
                    std::iter::once(format!("seccomp={}", self.seccomp))
                        .chain(
                            self.no_new_privileges
                                .then(|| "no-new-privileges".to_string()),
                        )
                        .collect(),
                ),
                readonly_rootfs: self.read_only.then_some(true),
                tmpfs: (!self.tmpfs.is_empty()).then(|| {
                    self.tmpfs
                        .iter()
                        .map(|t| (t.clone(), String::new()))
                        .collect()
                }),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                binds: (!self.volumes.is_empty()).then(|| self.volumes.clone()),
                network_mode: self.network.clone(),
                cap_add: (!self.cap_add.is_empty()).then(|| self.cap_add.clone()),
                cap_drop: (!self.cap_drop.is_empty()).then(|| self.cap_drop.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Labels of the containers `profile` creates.
pub const ROLE_LABEL: &str = "io.github.profile.role";
const OWNER_PID_LABEL: &str = "io.github.profile.owner-pid";
const OWNER_START_LABEL: &str = "io.github.profile.owner-start";
const OWNER_BOOT_LABEL: &str = "io.github.profile.owner-boot";
const OWNER_PID_NS_LABEL: &str = "io.github.profile.owner-pidns";
/// Set on containers made with `--keep`: they outlive their owner on purpose.
const KEEP_LABEL: &str = "io.github.profile.keep";

/// The labels a container of `owner` gets.
fn labels(owner: Option<&Owner>, keep: bool) -> HashMap<String, String> {
    let mut labels = HashMap::from([(ROLE_LABEL.to_string(), "train".to_string())]);
    if let Some(owner) = owner {
        labels.insert(OWNER_PID_LABEL.into(), owner.pid.to_string());
        labels.insert(OWNER_START_LABEL.into(), owner.start.to_string());
        labels.insert(OWNER_BOOT_LABEL.into(), owner.boot.clone());
        if let Some(ns) = &owner.pid_ns {
            labels.insert(OWNER_PID_NS_LABEL.into(), ns.clone());
        }
    }
    if keep {
        labels.insert(KEEP_LABEL.into(), "true".into());
    }
    labels
}

/// The process that created a container, unless it was kept on purpose or carries no owner.
pub(super) fn owner_of(labels: &HashMap<String, String>) -> Option<Owner> {
    if labels.contains_key(KEEP_LABEL) {
        return None;
    }
    Some(Owner {
        pid: labels.get(OWNER_PID_LABEL)?.parse().ok()?,
        start: labels.get(OWNER_START_LABEL)?.parse().ok()?,
        boot: labels.get(OWNER_BOOT_LABEL)?.clone(),
        pid_ns: labels.get(OWNER_PID_NS_LABEL).cloned(),
    })
}

/// When an image is pulled, as `docker run --pull` says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pull {
    /// Only when it is not present locally (docker run's default).
    #[default]
    Missing,
    /// Never: an image not present locally is refused.
    Never,
    /// Always, even when it is present.
    Always,
}

/// `repo[:tag]` or `repo@digest`, split for a pull (the tag is None for digests).
pub(super) fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], Some(&image[last_slash + i + 1..])),
        None => (image, Some("latest")),
    }
}

/// `profiles/<image>-<tag>.json`: the repository path with `/` as `-`, and the tag
/// (`latest` when none; the digest's first 12 hex digits for `@sha256:…`).
pub fn default_profile_path(image: &str) -> PathBuf {
    let (repo, tag) = match image.split_once('@') {
        Some((repo, digest)) => {
            let hex = digest.rsplit(':').next().unwrap_or(digest);
            (repo, hex.chars().take(12).collect::<String>())
        }
        None => {
            let (repo, tag) = split_reference(image);
            (repo, tag.unwrap_or("latest").to_string())
        }
    };
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    PathBuf::from("profiles").join(format!("{}-{}.json", clean(repo), clean(&tag)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_paths() {
        let p = |s| default_profile_path(s).display().to_string();
        assert_eq!(p("app"), "profiles/app-latest.json");
        assert_eq!(p("app:1.2"), "profiles/app-1.2.json");
        assert_eq!(
            p("localhost:5000/org/app"),
            "profiles/localhost-5000-org-app-latest.json"
        );
        assert_eq!(
            p("org/app:v2@sha256:0123456789abcdef0123"),
            "profiles/org-app-v2-0123456789ab.json"
        );
    }

    #[test]
    fn references() {
        assert_eq!(split_reference("app"), ("app", Some("latest")));
        assert_eq!(
            split_reference("host:5000/app"),
            ("host:5000/app", Some("latest"))
        );
        assert_eq!(
            split_reference("host:5000/app:1"),
            ("host:5000/app", Some("1"))
        );
        assert_eq!(split_reference("app@sha256:ab"), ("app@sha256:ab", None));
    }

    #[test]
    fn ports() {
        let p: PortSpec = "127.0.0.1:8080:80".parse().unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            (p.host_port.as_str(), p.container.as_str()),
            ("8080", "80/tcp")
        );
        let p: PortSpec = "53:53/udp".parse().unwrap();
        assert_eq!((p.host_ip, p.container.as_str()), (None, "53/udp"));
        let p: PortSpec = "[::1]:8080:80".parse().unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("::1"));
        // Docker's random host port: the container port alone, or an empty host port.
        let p: PortSpec = "8080".parse().unwrap();
        assert_eq!(
            (p.host_ip, p.host_port.as_str(), p.container.as_str()),
            (None, "", "8080/tcp")
        );
        let p: PortSpec = "127.0.0.1::8080".parse().unwrap();
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.host_port, "");
        for bad in [
            "x",
            "x:80",
            "1.2.3:80:80",
            "80:80/icmp",
            "80:99999",
            "99999",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn env_and_volumes() {
        assert_eq!(env_entry("A=b=c").unwrap(), "A=b=c");
        assert!(env_entry("=x").is_err());
        assert_eq!(volume_entry("data:/data:ro").unwrap(), "data:/data:ro");
        assert_eq!(volume_entry("/a:/b").unwrap(), "/a:/b");
        assert!(volume_entry("/a:b").is_err());
        assert!(volume_entry("/a").is_err());
        assert!(volume_entry("./x:/x").unwrap().starts_with('/'));
    }

    #[test]
    fn body_maps_ports_and_seccomp() {
        let spec = ContainerSpec {
            image: "app".into(),
            name: "n".into(),
            ports: vec!["127.0.0.1:1:80".parse().unwrap(), "2:80".parse().unwrap()],
            seccomp: "{}".into(),
            cap_add: vec!["SYS_ADMIN".into()],
            entrypoint: Some(String::new()),
            ..Default::default()
        };
        let body = spec.body();
        let host = body.host_config.unwrap();
        assert_eq!(
            host.port_bindings.unwrap()["80/tcp"]
                .as_ref()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(host.security_opt.unwrap(), vec!["seccomp={}".to_string()]);
        assert_eq!(host.cap_add.unwrap(), ["SYS_ADMIN"]);
        assert_eq!(body.entrypoint.unwrap(), vec![String::new()]);
        assert_eq!(body.exposed_ports.unwrap(), vec!["80/tcp".to_string()]);
        assert!(body.healthcheck.is_none());
    }

    #[test]
    fn labels_name_the_owner_unless_kept() {
        let owner = Owner {
            pid: 42,
            start: 7,
            boot: "b".into(),
            pid_ns: Some("pid:[4026531836]".into()),
        };
        let labelled = labels(Some(&owner), false);
        assert_eq!(labelled[ROLE_LABEL], "train");
        assert_eq!(owner_of(&labelled), Some(owner.clone()));
        assert_eq!(owner_of(&labels(Some(&owner), true)), None);
        assert_eq!(owner_of(&labels(None, false)), None);
        let spec = ContainerSpec {
            owner: Some(owner),
            health_cmd: Some("test -e /up".into()),
            ..Default::default()
        };
        let body = spec.body();
        assert_eq!(body.labels.unwrap()[OWNER_PID_LABEL], "42");
        let health = body.healthcheck.unwrap();
        assert_eq!(health.test.unwrap(), ["CMD-SHELL", "test -e /up"]);
        assert_eq!(health.interval, Some(1_000_000_000));
    }
}
