//! `profile watch`: every container an engine creates while it runs (a compose stack, a test
//! suite) is recorded ([`containers`]), and one profile per image, compose service or
//! container is written with an index ([`run`]).
pub mod containers;
mod cri;
mod engine;
mod images;
pub mod pods;
pub mod run;

pub use containers::{ContainerFilter, Per, Tracked, Watcher};
pub use cri::hostname;
pub use engine::WatchEngine;
pub use run::{WatchError, WatchNotice, WatchOptions, Watched, watch};
