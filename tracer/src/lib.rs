//! `profile` learns a container's seccomp profile by watching the syscalls it makes.
//!
//! The library does the work: each use case takes plain options and returns a typed outcome
//! ([`train::train`], [`verify::verify`], [`watch::watch`], [`absorb::absorb`], [`host::run`],
//! [`host::exec`], [`seccomp::merge::merge`], [`scan::scan_image`] and [`scan::scan_files`];
//! profiles are read and written by [`formats`] and reported by [`report`]). [`cli`] is the
//! `profile` command line over it: it parses, prints and maps outcomes to exit statuses.
pub mod absorb;
pub mod audit;
pub mod cgroup;
pub mod cli;
pub mod cri;
pub mod docker;
pub mod filter;
pub mod formats;
pub mod hardening;
pub mod host;
pub mod input;
pub mod kallsyms;
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
pub mod status;
pub mod tracefs;
pub mod train;
pub mod verify;
pub mod watch;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod layering;
