//! What a watch needs of a container engine, so that one loop serves the Docker Engine (its
//! event stream) and a CRI runtime (polled, as kubelet's own event source is not everywhere).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use futures_util::Stream;

use super::containers::{Tracked, Watcher};
use crate::{
    cri::{CONTAINERD_SOCKET, CRIO_SOCKET},
    docker::{DockerError, Engine},
    recorder::Recorder,
};

/// The engine whose containers a watch records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum WatchEngine {
    /// The Docker Engine (or Podman's service) at DOCKER_HOST.
    #[default]
    Docker,
    /// A CRI runtime (containerd, CRI-O) at this socket: a Kubernetes node's pods.
    Cri(PathBuf),
}

/// A source of containers for a watch: the kernel side adopts their cgroups on creation, the
/// engine says whose each one is.
pub trait ContainerEngine {
    type Event;
    /// Why the event stream ended.
    type StreamError: std::fmt::Display;
    /// Why one event could not be followed up (the watch goes on).
    type EventError: std::error::Error + 'static;

    /// The engine's events since watching began.
    fn events(
        &self,
    ) -> impl Stream<Item = Result<Self::Event, Self::StreamError>> + Unpin + 'static;
    /// Follows one event up: a container started (record it or forget it) or ended.
    fn on_event(
        &mut self,
        event: &Self::Event,
    ) -> impl Future<Output = Result<(), Self::EventError>>;
    /// Forgets adopted cgroups no container claimed in time.
    fn forget_unclaimed(&mut self);
    /// Stops adopting; containers still running are recorded up to now.
    fn finish(&mut self);
    fn recorder(&self) -> &Recorder;
    /// The containers recorded, by id.
    fn tracked(&self) -> &BTreeMap<String, Tracked>;
    /// The filters that matched no container that started, in words (`image=app`).
    fn unmatched_filters(&self) -> Vec<String>;
    /// The Docker engine whose images are read for their programs' ceilings; `None` where
    /// the engine exports no image (a CRI runtime).
    fn images(&self) -> Option<&Engine> {
        None
    }
}

impl ContainerEngine for Watcher {
    type Event = bollard::models::EventMessage;
    type StreamError = bollard::errors::Error;
    type EventError = DockerError;

    fn events(
        &self,
    ) -> impl Stream<Item = Result<Self::Event, Self::StreamError>> + Unpin + 'static {
        Box::pin(Watcher::events(self))
    }

    fn on_event(
        &mut self,
        event: &Self::Event,
    ) -> impl Future<Output = Result<(), Self::EventError>> {
        Watcher::on_event(self, event)
    }

    fn forget_unclaimed(&mut self) {
        Watcher::forget_unclaimed(self)
    }

    fn finish(&mut self) {
        Watcher::finish(self)
    }

    fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    fn tracked(&self) -> &BTreeMap<String, Tracked> {
        &self.tracked
    }

    fn unmatched_filters(&self) -> Vec<String> {
        Watcher::unmatched_filters(self)
    }

    fn images(&self) -> Option<&Engine> {
        Some(self.engine())
    }
}

/// `docker`, `cri` (containerd's socket, or CRI-O's when only that one exists) or `cri=SOCKET`.
impl std::str::FromStr for WatchEngine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            None if s == "docker" => Ok(WatchEngine::Docker),
            None if s == "cri" => Ok(WatchEngine::Cri(default_socket())),
            Some(("cri", socket)) if !socket.is_empty() => Ok(WatchEngine::Cri(PathBuf::from(
                socket.strip_prefix("unix://").unwrap_or(socket),
            ))),
            _ => Err(format!("{s:?}: expected docker, cri or cri=SOCKET")),
        }
    }
}

fn default_socket() -> PathBuf {
    let crio = Path::new(CRIO_SOCKET);
    if !Path::new(CONTAINERD_SOCKET).exists() && crio.exists() {
        return crio.to_path_buf();
    }
    PathBuf::from(CONTAINERD_SOCKET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines() {
        let engine = |s: &str| s.parse::<WatchEngine>();
        assert_eq!(engine("docker"), Ok(WatchEngine::Docker));
        assert_eq!(
            engine("cri=/tmp/c.sock"),
            Ok(WatchEngine::Cri("/tmp/c.sock".into()))
        );
        assert_eq!(
            engine("cri=unix:///run/x.sock"),
            Ok(WatchEngine::Cri("/run/x.sock".into()))
        );
        assert!(matches!(engine("cri"), Ok(WatchEngine::Cri(_))));
        assert!(engine("podman").is_err());
        assert!(engine("cri=").is_err());
    }
}
