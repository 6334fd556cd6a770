//! `profile` learns a container's seccomp profile by watching the syscalls it makes.
//!
//! The library holds the engine; [`cli`] is the `profile` command line over it.
pub mod absorb;
pub mod audit;
pub mod cgroup;
pub mod cli;
pub mod docker;
pub mod error;
pub mod filter;
pub mod formats;
pub mod input;
pub mod kbtf;
pub mod launch;
pub mod mounts;
pub mod names;
pub mod netlink;
pub mod output;
pub mod owner;
pub mod privileges;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod runtime;
pub mod scan;
pub mod seccomp;
pub mod session;
pub mod tracefs;
pub mod watch;

pub use error::{Error, Result};
