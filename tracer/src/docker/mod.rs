//! The Docker Engine (or Podman's Docker-compatible service): connect (DOCKER_HOST or the
//! default socket) with the API version negotiated down to the daemon's, make sure an image is
//! there; create, start, inspect, wait for, stop and remove a container, each request bounded
//! in time; describe any container and follow the engine's container events; find the
//! containers of `profile` processes that are gone; the engine's runtimes; export an image.
mod export;
mod inspect;
mod rootfs;
mod runtimes;
mod spec;
#[cfg(test)]
pub(crate) mod stub;

use std::{collections::HashMap, future::Future, time::Duration};

use bollard::{
    Docker,
    errors::Error as BollardError,
    models::HealthStatusEnum,
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
        ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
        StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
    },
};
use futures_util::StreamExt as _;

use inspect::published;
pub use inspect::{Published, Running};
pub use spec::{
    ContainerSpec, PortSpec, Pull, ROLE_LABEL, default_profile_path, env_entry, volume_entry,
};
use spec::{owner_of, split_reference};

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
    #[error(
        "uid {euid} may not use the Docker daemon's socket {socket}{}: run as root, or as a member of {}",
        access.as_ref().map(|a| format!(" ({a})")).unwrap_or_default(),
        access.as_ref().map(|a| format!("group {}", a.group)).unwrap_or("the socket's group".into())
    )]
    SocketDenied {
        euid: u32,
        socket: String,
        access: Option<crate::privileges::FileAccess>,
    },
    #[error("image {image} is not present locally and could not be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error(
        "image {image} is not present locally, and --pull never does not pull it (build it or `docker pull` it first, or --pull missing)"
    )]
    ImageMissing { image: String },
    #[error("image {image} could not be pulled (--pull always): {reason}")]
    PullFailed { image: String, reason: String },
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

/// A container a `profile` process that is gone left behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    pub name: String,
    pub owner_pid: u32,
}

/// Whether connecting failed because the socket's permissions refused this process.
fn permission_denied(err: &BollardError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Using the daemon's Unix socket, when this process may not (it is not root and not in the
/// socket's group): named with everything else that is missing, before anything is tried.
pub fn missing_privileges() -> Option<crate::privileges::Missing> {
    let socket = unix_socket()?;
    let path = std::path::Path::new(&socket);
    let denied = crate::privileges::may_access(path, libc::R_OK | libc::W_OK)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied);
    if !denied {
        return None;
    }
    let access = crate::privileges::FileAccess::of(path);
    Some(crate::privileges::Missing::group(
        format!(
            "using the Docker daemon's socket {socket}{}",
            access
                .as_ref()
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        ),
        access.map_or_else(|| "the socket's group".to_string(), |a| a.group),
    ))
}

/// The path of the Unix socket the client connects to (DOCKER_HOST or the default).
fn unix_socket() -> Option<String> {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    host.strip_prefix("unix://").map(str::to_string)
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
    /// The image as the container was created with.
    pub image: String,
    /// The id of the image it was created from, when the engine said (an image's name may
    /// since name another).
    pub image_id: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--security-opt` values (`seccomp=…` among them).
    pub security_opt: Vec<String>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// The runtime it runs with, when it names one (`--runtime`).
    pub runtime: Option<String>,
}

/// A profile written for Podman to read, removed when dropped.
struct SeccompFile {
    path: std::path::PathBuf,
}

impl SeccompFile {
    fn write(name: &str, json: &str) -> std::io::Result<Self> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = std::env::temp_dir().join(format!("profile-seccomp-{name}.json"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(json.as_bytes())?;
        Ok(SeccompFile { path })
    }
}

impl Drop for SeccompFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A connection to the Docker Engine.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    limits: Limits,
    /// Podman's Docker-compatible service: it takes `seccomp=` as a path on the server, not
    /// as the profile's text.
    podman: bool,
    /// The runtimes containers run with, as the engine reports them.
    runtimes: runtimes::Runtimes,
}

impl Engine {
    /// The engine's container events from `since` on (the request is made when the stream is
    /// first polled, so `since` keeps the events in between).
    pub fn container_events(
        &self,
        since: std::time::SystemTime,
    ) -> impl futures_util::Stream<
        Item = std::result::Result<bollard::models::EventMessage, BollardError>,
    > + use<> {
        let filters = HashMap::from([("type", vec!["container"])]);
        let since = format!(
            "{:.9}",
            since
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        );
        let options = bollard::query_parameters::EventsOptionsBuilder::default()
            .filters(&filters)
            .since(&since)
            .build();
        self.docker.events(Some(options))
    }

    /// Connects to DOCKER_HOST (or the default socket) and negotiates the API version, so that
    /// old engines (20.10, API 1.41) and current ones both work.
    pub async fn connect() -> Result<Self> {
        let endpoint = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => format!("{host} (DOCKER_HOST)"),
            _ => DEFAULT_HOST.to_string(),
        };
        let unreachable = |source| {
            if permission_denied(&source)
                && let Some(socket) = unix_socket()
            {
                return DockerError::SocketDenied {
                    // SAFETY: geteuid has no preconditions and cannot fail.
                    euid: unsafe { libc::geteuid() },
                    access: crate::privileges::FileAccess::of(std::path::Path::new(&socket)),
                    socket,
                };
            }
            DockerError::Unreachable {
                endpoint: endpoint.clone(),
                source,
            }
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
        let version = bounded(
            "asking the engine's version",
            Duration::from_secs(30),
            async {
                docker
                    .version()
                    .await
                    .map_err(api("asking the engine's version"))
            },
        )
        .await;
        let (podman, components) = match version {
            Ok(v) => {
                let platform = v.platform.is_some_and(|p| p.name.contains("Podman"));
                let components: std::collections::BTreeMap<String, String> = v
                    .components
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.name.to_lowercase(), c.version))
                    .collect();
                let podman = platform || components.keys().any(|n| n.contains("podman"));
                (podman, components)
            }
            Err(err) => {
                log::info!("{err}");
                (false, Default::default())
            }
        };
        if podman {
            log::info!("the engine is Podman: seccomp profiles are handed over as files");
        }
        let info = bounded(
            "asking the engine's runtime",
            Duration::from_secs(30),
            async {
                docker
                    .info()
                    .await
                    .map_err(api("asking the engine's runtime"))
            },
        )
        .await
        .ok();
        let default_name = info
            .as_ref()
            .and_then(|info| info.default_runtime.clone())
            .unwrap_or_else(|| "runc".to_string());
        let programs = info
            .and_then(|info| info.runtimes)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, r)| Some((name, r.path?)))
            .collect();
        let socket = unix_socket();
        let runtimes = runtimes::Runtimes::new(
            &default_name,
            programs,
            components,
            podman,
            socket.as_deref().map(std::path::Path::new),
        );
        log::info!("default runtime: {}", runtimes.default);
        Ok(Engine {
            docker,
            limits: Limits::default(),
            podman,
            runtimes,
        })
    }

    /// The runtime a container runs with: `name` from its configuration (HostConfig.Runtime),
    /// or the engine's default; with its version and binary when they can be found.
    pub fn runtime(&self, name: Option<&str>) -> crate::runtime::Runtime {
        self.runtimes.of(name)
    }

    /// Whether the daemon answers at all.
    /// Whether the daemon takes a new connection and answers on it. A daemon that is shutting
    /// down closes its listener first and keeps serving the connections it has (bollard's pool
    /// among them) while it stops its containers: only a fresh connection tells.
    pub async fn answers_anew(&self) -> bool {
        let Ok(fresh) = Docker::connect_with_defaults() else {
            return false;
        };
        bounded("asking the daemon", self.limits.ping, async {
            fresh
                .ping()
                .await
                .map(drop)
                .map_err(api("asking the daemon"))
        })
        .await
        .is_ok()
    }

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

    /// The id of the image `reference` names (a name with or without its tag, an id or a
    /// prefix of one, a digest), as the engine resolves it; `None` when it has no such image.
    pub async fn image_id(&self, reference: &str) -> Option<String> {
        let action = format!("inspecting image {reference}");
        bounded(&action, self.limits.request, async {
            Ok(self
                .docker
                .inspect_image(reference)
                .await
                .ok()
                .and_then(|i| i.id))
        })
        .await
        .ok()
        .flatten()
    }

    /// Makes sure the image is present locally, pulling it as `pull` says (as `docker run
    /// --pull` does); says whether it was pulled.
    pub async fn ensure_image(&self, image: &str, pull: Pull) -> Result<bool> {
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
        let present = match pull {
            Pull::Always => false,
            Pull::Missing | Pull::Never => inspect().await?,
        };
        match (present, pull) {
            (true, _) => return Ok(false),
            (false, Pull::Never) => {
                return Err(DockerError::ImageMissing {
                    image: image.to_string(),
                });
            }
            _ => {}
        }
        let pulled = bounded(
            &format!("pulling {image}"),
            self.limits.pull,
            self.pull(image),
        )
        .await;
        match (pulled, pull) {
            (Err(DockerError::ImageUnavailable { reason, .. }), Pull::Always) => {
                return Err(DockerError::PullFailed {
                    image: image.to_string(),
                    reason,
                });
            }
            (pulled, _) => pulled?,
        }
        match inspect().await? {
            true => Ok(true),
            false => Err(DockerError::ImageUnavailable {
                image: image.to_string(),
                reason: "the pull ended without it".into(),
            }),
        }
    }

    async fn pull(&self, image: &str) -> Result<()> {
        log::info!("pulling {image}");
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
        // Podman reads the profile from a path when the container is created; it keeps its
        // own copy, so the file is gone right after.
        let file = match self.podman {
            true => Some(SeccompFile::write(&spec.name, &spec.seccomp).map_err(|e| {
                DockerError::Api {
                    action: action.clone(),
                    message: format!("writing the seccomp profile for Podman: {e}"),
                }
            })?),
            false => None,
        };
        let body = match &file {
            Some(f) => ContainerSpec {
                seccomp: f.path.display().to_string(),
                ..spec.clone()
            }
            .body(),
            None => spec.body(),
        };
        let created = bounded(&action, self.limits.request, async {
            self.docker
                .create_container(Some(options), body)
                .await
                .map_err(api(action.as_str()))
        })
        .await?;
        drop(file);
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
        self.wait_for_exit(id, false).await
    }

    /// As [`Engine::wait`]; with `next`, for the container's next exit (one that is created
    /// but not started yet is not running, and would end the wait at once).
    pub async fn wait_for_exit(&self, id: &str, next: bool) -> Result<i64> {
        let condition = if next { "next-exit" } else { "not-running" };
        let options = WaitContainerOptionsBuilder::default()
            .condition(condition)
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

    /// A container by name or id, as it is now.
    pub async fn container(&self, name_or_id: &str) -> Result<ContainerInfo> {
        let action = format!("inspecting container {name_or_id}");
        let inspect = bounded(&action, self.limits.request, async {
            self.docker
                .inspect_container(name_or_id, None)
                .await
                .map_err(|err| {
                    if is_not_found(&err) {
                        DockerError::Invalid(format!("no such container: {name_or_id}"))
                    } else {
                        api(action.as_str())(err)
                    }
                })
        })
        .await?;
        let state = inspect.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let config = inspect.config.unwrap_or_default();
        let host = inspect.host_config.unwrap_or_default();
        Ok(ContainerInfo {
            image: config.image.unwrap_or_default(),
            image_id: inspect.image.filter(|id| !id.is_empty()),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            security_opt: host.security_opt.unwrap_or_default(),
            cap_add: host.cap_add.unwrap_or_default(),
            cap_drop: host.cap_drop.unwrap_or_default(),
            runtime: host.runtime,
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
        // Docker counts whole seconds: a fraction gets the second it began.
        let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
        let options = StopContainerOptionsBuilder::default()
            .t(secs.min(i32::MAX as u64) as i32)
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

    /// The ids of the containers running now.
    pub async fn running_containers(&self) -> Result<Vec<String>> {
        let options = ListContainersOptionsBuilder::default().all(false).build();
        let containers = self.list_containers(options).await?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    async fn list_containers(
        &self,
        options: bollard::query_parameters::ListContainersOptions,
    ) -> Result<Vec<bollard::models::ContainerSummary>> {
        let action = "listing containers";
        bounded(action, self.limits.request, async {
            self.docker
                .list_containers(Some(options))
                .await
                .map_err(api(action))
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
        let containers = self.list_containers(options).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A daemon that accepts connections and never answers, as a stopped dockerd does.
    fn stalled_engine(dir: &std::path::Path) -> (Engine, std::os::unix::net::UnixListener) {
        let socket = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        (stub::engine_at(&socket), listener)
    }

    #[tokio::test]
    async fn images_are_pulled_as_docker_run_pull_says() {
        let dir = std::env::temp_dir().join(format!("profile-pull-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        let (engine, store) = stub::ImageStore::serving(&dir, &["here:1"]);
        let inspect = |image: &str| format!("GET /images/{image}/json");
        let pull = |image: &str| {
            let (repo, tag) = image.split_once(':').expect("a tag");
            format!("POST /images/create?fromImage={repo}&tag={tag}&platform=")
        };

        // missing: a present image is only inspected, an absent one pulled (and said to be).
        let pulled = engine.ensure_image("here:1", Pull::Missing).await;
        assert!(!pulled.expect("present"));
        let pulled = engine.ensure_image("away:1", Pull::Missing).await;
        assert!(pulled.expect("pulled"));
        // never: an absent image is refused, by name, without a pull.
        let err = engine
            .ensure_image("gone:1", Pull::Never)
            .await
            .expect_err("not present");
        assert!(matches!(&err, DockerError::ImageMissing { image } if image == "gone:1"));
        assert!(err.to_string().contains("--pull never"), "{err}");
        let pulled = engine.ensure_image("here:1", Pull::Never).await;
        assert!(!pulled.expect("present"));
        // always: a present image is pulled too.
        let pulled = engine.ensure_image("here:1", Pull::Always).await;
        assert!(pulled.expect("pulled"));
        assert_eq!(
            store.requests(),
            [
                inspect("here:1"),
                inspect("away:1"),
                pull("away:1"),
                inspect("away:1"),
                inspect("gone:1"),
                inspect("here:1"),
                pull("here:1"),
                inspect("here:1"),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
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
            engine.ensure_image("img", Pull::Missing).await.map(drop),
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
