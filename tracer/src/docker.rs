//! The Docker Engine, as `train` and `verify` use it: connect (DOCKER_HOST or the default
//! socket) with the API version negotiated down to the daemon's, make sure an image is there,
//! and create, start, wait for, stop and remove one container.
use std::{collections::HashMap, path::PathBuf, time::Duration};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::{ContainerCreateBody, HostConfig, PortBinding},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
        LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
        WaitContainerOptionsBuilder,
    },
};
use futures_util::StreamExt as _;

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
    #[error("{0}")]
    Invalid(String),
}

type Result<T, E = DockerError> = std::result::Result<T, E>;

/// The daemon's own words for a failed request, without bollard's wrapping.
fn message(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

fn api(action: impl Into<String>) -> impl FnOnce(BollardError) -> DockerError {
    let action = action.into();
    move |err| DockerError::Api {
        action,
        message: message(&err),
    }
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
}

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
            labels: Some(HashMap::from([(
                "io.github.profile.role".to_string(),
                "train".to_string(),
            )])),
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

/// A container as the engine describes it (`docker inspect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// The host pid of its first process, while it runs.
    pub pid: Option<u32>,
    pub running: bool,
    /// RFC 3339 times of its creation, and of its last start and end (absent until they
    /// happen).
    pub created: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A connection to the Docker Engine.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
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
        // Waiting for a container lasts as long as the workload: no request timeout beyond
        // the negotiation's.
        let docker = docker.with_timeout(Duration::from_secs(365 * 24 * 3600));
        log::info!(
            "Docker Engine at {endpoint}, API {}",
            docker.client_version()
        );
        Ok(Engine { docker })
    }

    /// Makes sure the image is present locally, pulling it if it is not.
    pub async fn ensure_image(&self, image: &str) -> Result<()> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(err) if is_not_found(&err) => {
                self.pull(image).await?;
                self.docker
                    .inspect_image(image)
                    .await
                    .map(drop)
                    .map_err(|e| DockerError::ImageUnavailable {
                        image: image.to_string(),
                        reason: message(&e),
                    })
            }
            Err(err) => Err(api(format!("inspecting image {image}"))(err)),
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
        let created = self
            .docker
            .create_container(Some(options), spec.body())
            .await
            .map_err(api(format!("creating container {}", spec.name)))?;
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
        self.docker
            .start_container(id, None)
            .await
            .map_err(api("starting the container"))
    }

    /// Waits until the container stops; returns its exit code.
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

    async fn exit_code(&self, id: &str) -> Result<i64> {
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(api("inspecting the container"))?;
        Ok(inspect.state.and_then(|s| s.exit_code).unwrap_or(-1))
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

    /// The host pid of the container's first process, while it runs.
    pub async fn pid(&self, id: &str) -> Option<u32> {
        let inspect = self.docker.inspect_container(id, None).await.ok()?;
        let pid = inspect.state?.pid?;
        u32::try_from(pid).ok().filter(|&p| p > 0)
    }

    /// A container by name or id, as it is now.
    pub async fn inspect(&self, name_or_id: &str) -> Result<ContainerInfo> {
        let inspect = self
            .docker
            .inspect_container(name_or_id, None)
            .await
            .map_err(|err| {
                if is_not_found(&err) {
                    DockerError::Invalid(format!("no such container: {name_or_id}"))
                } else {
                    api(format!("inspecting container {name_or_id}"))(err)
                }
            })?;
        let state = inspect.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        Ok(ContainerInfo {
            id: inspect.id.unwrap_or_else(|| name_or_id.to_string()),
            name: inspect
                .name
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or_else(|| name_or_id.to_string()),
            pid: state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| running && *p > 0),
            running,
            created: inspect.created,
            started_at: state.started_at.filter(|t| !t.starts_with("0001-")),
            finished_at: state.finished_at.filter(|t| !t.starts_with("0001-")),
        })
    }

    /// Stops the container the way `docker stop` does: its stop signal, then SIGKILL after
    /// `grace`.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let options = StopContainerOptionsBuilder::default()
            .t(grace.as_secs().min(i32::MAX as u64) as i32)
            .build();
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(err) => Err(api("stopping the container")(err)),
        }
    }

    pub async fn kill(&self, id: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()), // not running
            Err(err) => Err(api("killing the container")(err)),
        }
    }

    /// Removes the container, running or not, with its anonymous volumes.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(api("removing the container")(err)),
        }
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
    }
}
