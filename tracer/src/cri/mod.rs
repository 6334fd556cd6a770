//! The CRI runtime service, the gRPC API kubelet drives containerd and CRI-O with: connect over
//! the runtime's Unix socket, and ask whose a container is (its pod, its labels, the seccomp
//! profile and runtime it runs with), every request bounded in time.
mod runtime;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

pub use runtime::runc;

/// The generated CRI messages and client (`runtime.v1`).
#[allow(clippy::all, missing_docs)]
pub mod api {
    tonic::include_proto!("runtime.v1");
}

use api::runtime_service_client::RuntimeServiceClient;

/// containerd's CRI socket, the default of `--engine cri`.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// CRI-O's.
pub const CRIO_SOCKET: &str = "/var/run/crio/crio.sock";

/// How long one request may take.
const REQUEST: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error("cannot reach the CRI runtime at {socket}: {message}")]
    Unreachable { socket: PathBuf, message: String },
    #[error(
        "no CRI runtime socket at {}: nothing there (containerd's is {CONTAINERD_SOCKET}, CRI-O's {CRIO_SOCKET}; --engine cri=SOCKET names another)",
        socket.display()
    )]
    NoSocket { socket: PathBuf },
    #[error(
        "{} answers, but not as a CRI runtime: it is a containerd with its CRI plugin off (Docker's own containerd is one: its config says disabled_plugins = [\"cri\"]); name the socket of a containerd that kubelet uses, or of CRI-O",
        socket.display()
    )]
    NoCriPlugin { socket: PathBuf },
    #[error("{action}: {status}")]
    Call {
        action: String,
        status: Box<tonic::Status>,
    },
    #[error("{action}: the CRI runtime did not answer within {}s", REQUEST.as_secs())]
    Timeout { action: String },
}

impl CriError {
    /// Whether the runtime said the object does not exist (any more).
    pub fn not_found(&self) -> bool {
        matches!(self, CriError::Call { status, .. } if status.code() == tonic::Code::NotFound)
    }
}

pub type Result<T, E = CriError> = std::result::Result<T, E>;

/// The CRI runtime service on a Unix socket.
#[derive(Clone, Debug)]
pub struct Cri {
    client: RuntimeServiceClient<Channel>,
    socket: PathBuf,
}

/// A container as the CRI describes it, with what `ContainerStatus`'s verbose info adds where
/// the runtime gives it (containerd does).
#[derive(Clone, Debug, Default)]
pub struct CriContainer {
    pub id: String,
    pub sandbox_id: String,
    /// Its name in the pod.
    pub name: String,
    /// Restarts of the same container in the pod count up from 0.
    pub attempt: u32,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: i32,
    /// Its first process, while it runs.
    pub pid: Option<u32>,
    /// The OCI `linux.seccomp` object it runs under, as JSON (`None`: no filter, or the
    /// runtime does not say).
    pub seccomp: Option<String>,
    /// Whether the runtime said what the spec holds (otherwise `seccomp` is unknown).
    pub spec_known: bool,
    /// The runtime it runs with (containerd: `io.containerd.runc.v2`).
    pub runtime_type: Option<String>,
}

/// A pod sandbox: its pod's identity and labels.
#[derive(Clone, Debug, Default)]
pub struct Sandbox {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
}

impl Cri {
    /// Connects to the runtime at `socket` and asks its version (so a wrong socket fails here).
    pub async fn connect(socket: &Path) -> Result<(Self, String)> {
        let unreachable = |message: String| CriError::Unreachable {
            socket: socket.to_path_buf(),
            message,
        };
        if !socket.exists() {
            return Err(CriError::NoSocket {
                socket: socket.to_path_buf(),
            });
        }
        let path = socket.to_path_buf();
        let endpoint = Endpoint::from_static("http://cri.invalid")
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST);
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let cri = Cri {
            client: RuntimeServiceClient::new(channel),
            socket: socket.to_path_buf(),
        };
        let version = cri
            .call("asking the runtime's version", |mut c| async move {
                c.version(api::VersionRequest {
                    version: "v1".into(),
                })
                .await
            })
            .await
            .map_err(|e| match &e {
                CriError::Call { status, .. } if lacks_the_service(status) => {
                    CriError::NoCriPlugin {
                        socket: socket.to_path_buf(),
                    }
                }
                _ => unreachable(e.to_string()),
            })?;
        Ok((
            cri,
            format!("{} {}", version.runtime_name, version.runtime_version),
        ))
    }

    /// The generated client on this connection, for every other call of the runtime service.
    pub fn client(&self) -> RuntimeServiceClient<Channel> {
        self.client.clone()
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn call<T, F, Fut>(&self, action: &str, f: F) -> Result<T>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(REQUEST, f(self.client.clone())).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(CriError::Call {
                action: action.to_string(),
                status: Box::new(status),
            }),
            Err(_) => Err(CriError::Timeout {
                action: action.to_string(),
            }),
        }
    }

    /// Every container the runtime has (created, running, exited), by id with its state.
    pub async fn containers(&self) -> Result<Vec<api::Container>> {
        Ok(self
            .call("listing containers", |mut c| async move {
                c.list_containers(api::ListContainersRequest { filter: None })
                    .await
            })
            .await?
            .containers)
    }

    /// Every pod sandbox the runtime has.
    pub async fn sandboxes(&self) -> Result<Vec<api::PodSandbox>> {
        Ok(self
            .call("listing pod sandboxes", |mut c| async move {
                c.list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
                    .await
            })
            .await?
            .items)
    }

    /// A container, with the spec details the runtime's verbose status gives.
    pub async fn container(&self, id: &str) -> Result<CriContainer> {
        let action = format!("asking the status of container {id}");
        let r = self
            .call(&action, |mut c| async move {
                c.container_status(api::ContainerStatusRequest {
                    container_id: id.to_string(),
                    verbose: true,
                })
                .await
            })
            .await?;
        let status = r.status.unwrap_or_default();
        let info: serde_json::Value = r
            .info
            .get("info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        let spec = info.get("runtimeSpec");
        let metadata = status.metadata.unwrap_or_default();
        let mut sandbox_id = info
            .get("sandboxID")
            .and_then(|v| v.as_str())
            .map(String::from)
            .unwrap_or_default();
        if sandbox_id.is_empty() {
            // Runtimes whose verbose info does not name it (CRI-O's may not): the listing does.
            let filter = api::ContainerFilter {
                id: id.to_string(),
                ..Default::default()
            };
            sandbox_id = self
                .call(&action, |mut c| async move {
                    c.list_containers(api::ListContainersRequest {
                        filter: Some(filter),
                    })
                    .await
                })
                .await?
                .containers
                .into_iter()
                .next()
                .map(|c| c.pod_sandbox_id)
                .unwrap_or_default();
        }
        Ok(CriContainer {
            id: status.id,
            sandbox_id,
            name: metadata.name,
            attempt: metadata.attempt,
            image: status
                .image
                .map(|i| i.image)
                .filter(|i| !i.is_empty())
                .unwrap_or(status.image_ref),
            labels: status.labels.into_iter().collect(),
            state: status.state,
            pid: info
                .get("pid")
                .and_then(|v| v.as_u64())
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
            seccomp: spec
                .and_then(|s| s.pointer("/linux/seccomp"))
                .map(|s| s.to_string()),
            spec_known: spec.is_some(),
            runtime_type: info
                .get("runtimeType")
                .and_then(|v| v.as_str())
                .map(String::from),
        })
    }

    /// A pod sandbox.
    pub async fn sandbox(&self, id: &str) -> Result<Sandbox> {
        let action = format!("asking the status of pod sandbox {id}");
        let r = self
            .call(&action, |mut c| async move {
                c.pod_sandbox_status(api::PodSandboxStatusRequest {
                    pod_sandbox_id: id.to_string(),
                    verbose: false,
                })
                .await
            })
            .await?;
        let status = r.status.unwrap_or_default();
        let metadata = status.metadata.unwrap_or_default();
        Ok(Sandbox {
            id: status.id,
            name: metadata.name,
            namespace: metadata.namespace,
            uid: metadata.uid,
            labels: status.labels.into_iter().collect(),
        })
    }

    /// The runtime's verbose status info (containerd: its CRI config, as JSON under `config`).
    pub async fn status_info(&self) -> Result<BTreeMap<String, String>> {
        Ok(self
            .call("asking the runtime's status", |mut c| async move {
                c.status(api::StatusRequest { verbose: true }).await
            })
            .await?
            .info
            .into_iter()
            .collect())
    }
}

/// An error and its causes, in one line.
/// Whether a gRPC server said it has no CRI runtime service: containerd without its CRI
/// plugin answers `unknown service runtime.v1.RuntimeService`.
fn lacks_the_service(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unimplemented && status.message().starts_with("unknown service")
}

/// An error and its causes on one line, each said once (hyper's transport error repeats the
/// I/O error it wraps).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(&format!(": {text}"));
        }
        cause = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wraps(&'static str, Option<std::io::Error>);
    impl std::fmt::Display for Wraps {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io().to_string();
        let repeated = Wraps(
            Box::leak(format!("transport error: {text}").into_boxed_str()),
            Some(io()),
        );
        assert_eq!(error_chain(&repeated), format!("transport error: {text}"));
        let apart = Wraps("transport error", Some(io()));
        assert_eq!(error_chain(&apart), format!("transport error: {text}"));
        let unimplemented =
            tonic::Status::unimplemented("unknown service runtime.v1.RuntimeService");
        assert!(lacks_the_service(&unimplemented));
        assert!(!lacks_the_service(&tonic::Status::unimplemented(
            "GetContainerEvents"
        )));
    }
}
