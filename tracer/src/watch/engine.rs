//! What a watch needs of a container engine, so that one loop serves the Docker Engine (its
//! event stream) and a CRI runtime (polled, as kubelet's own event source is not everywhere).
use std::collections::BTreeMap;

use futures_util::Stream;

use super::containers::{Tracked, Watcher};
use crate::{
    docker::{DockerError, Engine},
    recorder::Recorder,
};

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
