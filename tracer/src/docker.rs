//! The Docker Engine, as `train` and `verify` use it: connect (DOCKER_HOST or the default
//! socket) with the API version negotiated down to the daemon's, make sure an image is there,
//! and create, start, inspect, wait for, stop and remove one container, each request bounded
//! in time; find the containers of `profile` processes that are gone.
use std::{collections::HashMap, future::Future, path::PathBuf, time::Duration};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::{ContainerCreateBody, HealthConfig, HealthStatusEnum, HostConfig, PortBinding},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
        ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
        StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
    },
};
use futures_util::StreamExt as _;

use crate::owner::Owner;

/// The socket the daemon listens on when DOCKER_HOST is unset.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker daemon at {endpoint} (is dockerd running? DOCKER_HOST selects another daemon)"
    )]
    Unreachable {
        endpoint: String,
        source: BollardError,
    },
    #[error("image {image} is not present locally and could not be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("{action}: {message}")]
    Api { action: String, message: String },
    #[error("{action}: the Docker daemon could not be reached: {message}")]
    Transport { action: String, message: String },
    #[error("{action}: the Docker daemon did not answer within {secs}s")]
    Timeout { action: String, secs: u64 },
    #[error("{0}")]
    Invalid(String),
}

impl DockerError {
    /// Whether the daemon itself failed to answer (gone, restarting or stalled), rather than
    /// refusing the request.
    pub fn daemon_unresponsive(&self) -> bool {
        matches!(
            self,
            DockerError::Transport { .. } | DockerError::Timeout { .. }
        )
    }
}

pub type Result<T, E = DockerError> = std::result::Result<T, E>;

/// The daemon's own words for a failed request, without bollard's wrapping.
fn message(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

fn api(action: impl Into<String>) -> impl FnOnce(BollardError) -> DockerError {
    let action = action.into();
    move |err| match err {
        BollardError::IOError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::SocketNotFoundError(_)
        | BollardError::RequestTimeoutError => DockerError::Transport {
            action,
            message: err.to_string(),
        },
        _ => DockerError::Api {
            action,
            message: message(&err),
        },
    }
}

/// Runs one request to the daemon, giving up after `limit`: a stalled daemon must never hold
/// `profile` (nor its clean-up) forever.
async fn bounded<T>(
    action: &str,
    limit: Duration,
    request: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(limit, request)
        .await
        .map_err(|_| DockerError::Timeout {
            action: action.to_string(),
            secs: limit.as_secs().max(1),
        })?
}

/// How long each kind of request may take.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Inspect, create, start, kill, remove, list.
    request: Duration,
    /// Asking whether the daemon is there at all.
    ping: Duration,
    /// Pulling an image (while the user can still interrupt it).
    pull: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request: Duration::from_secs(60),
            ping: Duration::from_secs(5),
            pull: Duration::from_secs(30 * 60),
        }
    }
}

/// Labels of the containers `profile` creates.
pub const ROLE_LABEL: &str = "io.github.profile.role";
const OWNER_PID_LABEL: &str = "io.github.profile.owner-pid";
const OWNER_START_LABEL: &str = "io.github.profile.owner-start";
const OWNER_BOOT_LABEL: &str = "io.github.profile.owner-boot";
/// Set on containers made with `--keep`: they outlive their owner on purpose.
const KEEP_LABEL: &str = "io.github.profile.keep";

/// The labels a container of `owner` gets.
fn labels(owner: Option<&Owner>, keep: bool) -> HashMap<String, String> {
    let mut labels = HashMap::from([(ROLE_LABEL.to_string(), "train".to_string())]);
    if let Some(owner) = owner {
        labels.insert(OWNER_PID_LABEL.into(), owner.pid.to_string());
        labels.insert(OWNER_START_LABEL.into(), owner.start.to_string());
        labels.insert(OWNER_BOOT_LABEL.into(), owner.boot.clone());
    }
    if keep {
        labels.insert(KEEP_LABEL.into(), "true".into());
    }
    labels
}

/// The process that created a container, unless it was kept on purpose or carries no owner.
fn owner_of(labels: &HashMap<String, String>) -> Option<Owner> {
    if labels.contains_key(KEEP_LABEL) {
        return None;
    }
    Some(Owner {
        pid: labels.get(OWNER_PID_LABEL)?.parse().ok()?,
        start: labels.get(OWNER_START_LABEL)?.parse().ok()?,
        boot: labels.get(OWNER_BOOT_LABEL)?.clone(),
    })
}

/// A container a `profile` process that is gone left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub name: String,
    pub owner_pid: u32,
}

/// A published port as the daemon bound it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `8080/tcp`.
    pub container: String,
    /// The address to reach it at from this host (a wildcard binding becomes loopback).
    pub host: std::net::SocketAddr,
}

impl Published {
    /// The container port's number.
    pub fn container_port(&self) -> Option<u16> {
        self.container.split('/').next()?.parse().ok()
    }

    pub fn is_tcp(&self) -> bool {
        self.container.ends_with("/tcp")
    }
}

/// What a started container offers to be waited for.
#[derive(Clone, Debug, Default)]
pub struct Running {
    /// The host pid of its first process.
    pub pid: Option<u32>,
    pub ports: Vec<Published>,
    /// Whether it has a health check (the image's HEALTHCHECK or `--health-cmd`).
    pub healthcheck: bool,
}

/// Where to reach a binding from this host: wildcards become loopback.
fn reachable(ip: Option<&str>, port: &str) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let ip = match ip.unwrap_or("") {
        "" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip.parse().ok()?,
    };
    Some((ip, port).into())
}

/// The published ports of a port map, one per container port (IPv4 first), sorted.
fn published(ports: &HashMap<String, Option<Vec<PortBinding>>>) -> Vec<Published> {
    let mut out: Vec<Published> = ports
        .iter()
        .filter_map(|(container, bindings)| {
            let mut hosts: Vec<std::net::SocketAddr> = bindings
                .iter()
                .flatten()
                .filter_map(|b| reachable(b.host_ip.as_deref(), b.host_port.as_deref()?))
                .collect();
            hosts.sort_by_key(|a| (a.is_ipv6(), *a));
            Some(Published {
                container: container.clone(),
                host: *hosts.first()?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.container.cmp(&b.container));
    out
}

fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

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
        let bad = || format!("{s:?}: expected [IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp]");
        let (rest, container) = s.rsplit_once(':').ok_or_else(bad)?;
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
        if host_port.parse::<u16>().is_err() {
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
    fn body(&self) -> ContainerCreateBody {
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
                security_opt: Some(vec![format!("seccomp={}", self.seccomp)]),
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

/// A connection to the Docker Engine.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    limits: Limits,
}

impl Engine {
    /// Connects to DOCKER_HOST (or the default socket) and negotiates the API version, so that
    /// old engines (20.10, API 1.41) and current ones both work.
    pub async fn connect() -> Result<Self> {
        let endpoint = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => format!("{host} (DOCKER_HOST)"),
            _ => DEFAULT_HOST.to_string(),
        };
        let unreachable = |source| DockerError::Unreachable {
            endpoint: endpoint.clone(),
            source,
        };
        let docker = Docker::connect_with_defaults().map_err(unreachable)?;
        let docker = tokio::time::timeout(Duration::from_secs(30), docker.negotiate_version())
            .await
            .map_err(|_| unreachable(BollardError::RequestTimeoutError))?
            .map_err(unreachable)?;
        // bollard's own limit covers only a response's headers, and the daemon sends those of
        // a wait or a log stream at once: each request below gets its own bound instead.
        let docker = docker.with_timeout(Limits::default().pull);
        log::info!(
            "Docker Engine at {endpoint}, API {}",
            docker.client_version()
        );
        Ok(Engine {
            docker,
            limits: Limits::default(),
        })
    }

    /// Whether the daemon answers at all.
    pub async fn ping(&self) -> Result<()> {
        bounded("asking the daemon", self.limits.ping, async {
            self.docker
                .ping()
                .await
                .map(drop)
                .map_err(api("asking the daemon"))
        })
        .await
    }

    /// Makes sure the image is present locally, pulling it if it is not.
    pub async fn ensure_image(&self, image: &str) -> Result<()> {
        let action = format!("inspecting image {image}");
        let inspect = || {
            bounded(&action, self.limits.request, async {
                match self.docker.inspect_image(image).await {
                    Ok(_) => Ok(true),
                    Err(err) if is_not_found(&err) => Ok(false),
                    Err(err) => Err(api(action.as_str())(err)),
                }
            })
        };
        if inspect().await? {
            return Ok(());
        }
        bounded(
            &format!("pulling {image}"),
            self.limits.pull,
            self.pull(image),
        )
        .await?;
        match inspect().await? {
            true => Ok(()),
            false => Err(DockerError::ImageUnavailable {
                image: image.to_string(),
                reason: "the pull ended without it".into(),
            }),
        }
    }

    async fn pull(&self, image: &str) -> Result<()> {
        log::info!("{image} is not present locally; pulling it");
        let (repo, tag) = split_reference(image);
        let mut options = CreateImageOptionsBuilder::default().from_image(repo);
        if let Some(tag) = tag {
            options = options.tag(tag);
        }
        let mut stream = self.docker.create_image(Some(options.build()), None, None);
        while let Some(item) = stream.next().await {
            let unavailable = |reason| DockerError::ImageUnavailable {
                image: image.to_string(),
                reason,
            };
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(unavailable(detail));
                    }
                }
                Err(err) => return Err(unavailable(message(&err))),
            }
        }
        Ok(())
    }

    /// Creates the container; returns its full id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let action = format!("creating container {}", spec.name);
        let created = bounded(&action, self.limits.request, async {
            self.docker
                .create_container(Some(options), spec.body())
                .await
                .map_err(api(action.as_str()))
        })
        .await?;
        for warning in created.warnings {
            log::warn!("Docker: {warning}");
        }
        if created.id.len() != 64 {
            return Err(DockerError::Invalid(format!(
                "the daemon returned container id {:?}, not 64 hex digits",
                created.id
            )));
        }
        Ok(created.id)
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        let action = "starting the container";
        bounded(action, self.limits.request, async {
            self.docker
                .start_container(id, None)
                .await
                .map_err(api(action))
        })
        .await
    }

    /// Waits until the container stops; returns its exit code. Unbounded: it lasts as long as
    /// the workload (callers race it against their deadlines and signals).
    pub async fn wait(&self, id: &str) -> Result<i64> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(id, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(err)) => Err(api("waiting for the container")(err)),
            None => self.exit_code(id).await,
        }
    }

    async fn inspect(&self, id: &str) -> Result<bollard::models::ContainerInspectResponse> {
        let action = "inspecting the container";
        bounded(action, self.limits.request, async {
            self.docker
                .inspect_container(id, None)
                .await
                .map_err(api(action))
        })
        .await
    }

    async fn exit_code(&self, id: &str) -> Result<i64> {
        let inspect = self.inspect(id).await?;
        Ok(inspect.state.and_then(|s| s.exit_code).unwrap_or(-1))
    }

    /// The started container's first process, published ports and health check.
    pub async fn running(&self, id: &str) -> Result<Running> {
        let inspect = self.inspect(id).await?;
        let healthcheck = inspect
            .config
            .and_then(|c| c.healthcheck)
            .and_then(|h| h.test)
            .is_some_and(|test| test.first().is_some_and(|t| t != "NONE"));
        Ok(Running {
            pid: inspect
                .state
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|&p| p > 0),
            ports: inspect
                .network_settings
                .and_then(|n| n.ports)
                .map(|p| published(&p))
                .unwrap_or_default(),
            healthcheck,
        })
    }

    /// The container's health as Docker sees it (`starting`, `healthy`, `unhealthy`).
    pub async fn health(&self, id: &str) -> Result<Option<String>> {
        let inspect = self.inspect(id).await?;
        Ok(inspect
            .state
            .and_then(|s| s.health)
            .and_then(|h| h.status)
            .filter(|s| !matches!(s, HealthStatusEnum::EMPTY | HealthStatusEnum::NONE))
            .map(|s| s.to_string()))
    }

    /// Copies the container's output (from its start, following) to our stderr until the
    /// container stops.
    pub fn forward_logs(&self, id: &str) -> tokio::task::JoinHandle<()> {
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        tokio::spawn(async move {
            use std::io::Write as _;
            while let Some(Ok(chunk)) = stream.next().await {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(chunk.as_ref());
                let _ = err.flush();
            }
        })
    }

    /// Stops the container the way `docker stop` does: its stop signal, then SIGKILL after
    /// `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().min(i32::MAX as u64) as i32)
            .build();
        let action = "stopping the container";
        bounded(action, grace + self.limits.request, async {
            match self.docker.stop_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                // 304: already stopped.
                Err(BollardError::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(err) => Err(api(action)(err)),
            }
        })
        .await
    }

    pub async fn kill(&self, id: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        let action = "killing the container";
        bounded(action, self.limits.request, async {
            match self.docker.kill_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(BollardError::DockerResponseServerError {
                    status_code: 409, ..
                }) => Ok(()), // not running
                Err(err) => Err(api(action)(err)),
            }
        })
        .await
    }

    /// Removes the container, running or not, with its anonymous volumes.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let action = "removing the container";
        bounded(action, self.limits.request, async {
            match self.docker.remove_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(err) if is_not_found(&err) => Ok(()),
                Err(err) => Err(api(action)(err)),
            }
        })
        .await
    }

    /// Removes the containers `profile` processes that are gone left behind (a `kill -9`
    /// can't be cleaned up after by the process itself); returns them.
    pub async fn remove_leftovers(&self) -> Result<Vec<Leftover>> {
        let filters = HashMap::from([("label", vec![ROLE_LABEL])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let action = "listing containers";
        let containers = bounded(action, self.limits.request, async {
            self.docker
                .list_containers(Some(options))
                .await
                .map_err(api(action))
        })
        .await?;
        let mut removed = Vec::new();
        for container in containers {
            let (Some(id), Some(owner)) =
                (container.id, container.labels.as_ref().and_then(owner_of))
            else {
                continue;
            };
            if owner.alive() {
                continue;
            }
            let name = container
                .names
                .and_then(|n| n.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| id.chars().take(12).collect());
            match self.remove(&id).await {
                Ok(()) => removed.push(Leftover {
                    name,
                    owner_pid: owner.pid,
                }),
                Err(err) => log::warn!("could not remove the leftover container {name}: {err}"),
            }
        }
        Ok(removed)
    }
}

/// `repo[:tag]` or `repo@digest`, split for a pull (the tag is None for digests).
fn split_reference(image: &str) -> (&str, Option<&str>) {
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
        for bad in ["80", "x:80", "1.2.3:80:80", "80:80/icmp", "80:99999"] {
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

    #[test]
    fn published_ports_are_reached_on_loopback_for_wildcards() {
        let binding = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        };
        let ports = HashMap::from([
            (
                "8080/tcp".to_string(),
                Some(vec![binding("::", "18080"), binding("0.0.0.0", "18080")]),
            ),
            (
                "53/udp".to_string(),
                Some(vec![binding("127.0.0.2", "5353")]),
            ),
            ("9/tcp".to_string(), None),
        ]);
        let found = published(&ports);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].container, "53/udp");
        assert!(!found[0].is_tcp());
        assert_eq!(found[0].host.to_string(), "127.0.0.2:5353");
        assert_eq!(found[1].host.to_string(), "127.0.0.1:18080");
        assert_eq!(found[1].container_port(), Some(8080));
        assert_eq!(reachable(Some("::"), "1").unwrap().to_string(), "[::1]:1");
        assert_eq!(reachable(None, "0"), None);
    }

    /// A daemon that accepts connections and never answers, as a stopped dockerd does.
    fn stalled_engine(dir: &std::path::Path) -> (Engine, std::os::unix::net::UnixListener) {
        let socket = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let docker = Docker::connect_with_unix(
            socket.to_str().expect("utf-8"),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("client");
        let limits = Limits {
            request: Duration::from_millis(300),
            ping: Duration::from_millis(200),
            pull: Duration::from_millis(300),
        };
        (Engine { docker, limits }, listener)
    }

    #[tokio::test]
    async fn every_request_to_a_stalled_daemon_ends() {
        let dir = std::env::temp_dir().join(format!("profile-stalled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (engine, _listener) = stalled_engine(&dir);
        let started = std::time::Instant::now();
        let id = "0".repeat(64);
        let results = [
            engine.ping().await.map(drop),
            engine.ensure_image("img").await,
            engine.create(&ContainerSpec::default()).await.map(drop),
            engine.start(&id).await,
            engine.running(&id).await.map(drop),
            engine.health(&id).await.map(drop),
            engine.stop(&id, Duration::ZERO).await,
            engine.kill(&id).await,
            engine.remove(&id).await,
            engine.remove_leftovers().await.map(drop),
        ];
        assert!(started.elapsed() < Duration::from_secs(10));
        for result in results {
            let err = result.expect_err("a stalled daemon answers nothing");
            assert!(err.daemon_unresponsive(), "{err}");
            assert!(err.to_string().contains("did not answer within"), "{err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_daemon_that_is_gone_is_unresponsive() {
        let dir = std::env::temp_dir().join(format!("profile-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (engine, listener) = stalled_engine(&dir);
        drop(listener);
        let _ = std::fs::remove_file(dir.join("docker.sock"));
        let err = engine.ping().await.expect_err("nothing listens");
        assert!(err.daemon_unresponsive(), "{err}");
        let err = engine.wait(&"0".repeat(64)).await.expect_err("no daemon");
        assert!(err.daemon_unresponsive(), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
