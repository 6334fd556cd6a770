//! One recorded container run, shared by the commands that run images: create the container
//! under a given seccomp profile, have the kernel watch its cgroup before its first process
//! exists, start it, wait until it is ready for the exercise, end the recording when it exits,
//! when the duration elapses, when the exercise finishes, on a signal or when the daemon goes
//! away, and remove it whatever happened.
mod drive;
mod error;
mod exercise;
mod exercised;
mod flood;
mod probe;
mod ready;
mod run;
mod signals;

pub use error::SessionError;
pub use exercised::{Exercised, Unexercised, unexercised, unexercised_words};
pub use probe::{ProbeOptions, ProbeReport, ProbeRequest, probe};
pub use ready::{NotReady, ReadyOptions};
pub use run::{Notice, Observer, Prepared, RecordedRun, RunOptions, Session, Stop, StoppedBy};
pub use signals::Interrupt;
