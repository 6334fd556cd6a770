//! A recorded container run: how it runs, why it ended, and what it saw.
use std::time::Duration;

use super::{
    error::SessionError, probe::ProbeOptions, probe::ProbeReport, ready::ReadyOptions,
    signals::Interrupt,
};
use crate::{
    cgroup,
    docker::{ContainerSpec, Engine, Leftover, Pull},
    hardening::{Rootfs, rootfs},
    owner::Owner,
    recorder::{Mode, Recorder, Snapshot},
};

/// How the container runs and how its run ends: plain values the command line fills in.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The container; each run sets its name, seccomp profile and owner.
    pub container: ContainerSpec,
    /// When its image is pulled.
    pub pull: Pull,
    /// The container's name [default: profile-<pid>-<time>]; each run adds its suffix.
    pub name: Option<String>,
    /// Stop the container after this long.
    pub duration: Option<Duration>,
    /// End the run as failed after this long (`verify`'s time limit): a workload that never
    /// ends, looping on a denied call, does not hang its caller.
    pub timeout: Option<Duration>,
    /// A host command (`sh -c`) whose end ends the recording.
    pub exercise: Option<String>,
    /// The built-in HTTP probe, run once the container is ready, when there is no exercise;
    /// its end stops the container gracefully.
    pub probe: Option<ProbeOptions>,
    pub ready: ReadyOptions,
    /// Between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    /// Copy the container's output to stderr.
    pub forward_logs: bool,
    /// Leave the container in place at the end.
    pub keep: bool,
    /// Send [`Notice::Progress`] every second.
    pub progress: bool,
    /// Read what the workload wrote in its root filesystem before the container is removed
    /// ([`RecordedRun::rootfs`]).
    pub observe_rootfs: bool,
}

impl RunOptions {
    /// What exercises the container once it is ready, in words.
    pub fn exercise_words(&self) -> &'static str {
        match self.exercise {
            Some(_) => "the exercise",
            None => "the HTTP probe",
        }
    }

    /// How reports name the workload: the image and, if given, the command.
    pub fn target(&self) -> String {
        let c = &self.container;
        match c.cmd.is_empty() {
            true => c.image.clone(),
            false => format!("{} {}", c.image, c.cmd.join(" ")),
        }
    }
}

/// What a run has to say while it goes on; the command line decides how to show it.
#[derive(Debug)]
pub enum Notice<'a> {
    Progress {
        label: &'a str,
        name: &'a str,
        elapsed: Duration,
        distinct: usize,
        calls: u64,
        /// What the exercise waits for, while it does.
        waiting_for: Option<&'a str>,
        /// Requests the probe has made so far, while it runs.
        requests: Option<usize>,
    },
    ProgressDone,
    /// The first signal: the container is being stopped.
    Interrupted {
        name: &'a str,
    },
    /// A second signal while the daemon was being waited for: it isn't any more.
    GaveUp {
        name: &'a str,
        id: &'a str,
    },
    Kept {
        name: &'a str,
        id: &'a str,
    },
    NotRemoved {
        name: &'a str,
        reason: String,
    },
    /// The daemon went away; it is waited for this long to remove the container.
    DaemonGone {
        name: &'a str,
        wait: Duration,
    },
    LeftoverRemoved(&'a Leftover),
    /// The image was pulled: it was not present locally, or `--pull always`.
    Pulled {
        image: &'a str,
        pull: Pull,
    },
    /// While verifying: a call denied over and over (the workload may loop on it).
    DenialFlood {
        syscall: String,
        program: String,
        count: u64,
    },
}

/// A notice in words, as the terminal shows it (a progress line's message, or a line).
impl std::fmt::Display for Notice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Progress {
                distinct,
                calls,
                waiting_for,
                requests,
                ..
            } => {
                match (waiting_for, requests) {
                    (Some(what), _) => write!(f, "waiting for {what}\u{2026}, ")?,
                    (None, Some(n)) => write!(f, "probing: {n} requests, ")?,
                    (None, None) => {}
                }
                write!(f, "{distinct} distinct syscalls, {calls} calls")
            }
            Notice::ProgressDone => Ok(()),
            Notice::Interrupted { name } => write!(
                f,
                "interrupted: stopping container {name}, writing what was recorded (interrupt again to stop waiting for the Docker daemon)"
            ),
            Notice::GaveUp { name, id } => write!(
                f,
                "interrupted again: not waiting for the Docker daemon any more; container {name} ({id}) may be left behind (`docker rm -f {name}` removes it, and so does the next `profile train` or `profile verify`)"
            ),
            Notice::Kept { name, id } => write!(f, "kept container {name} ({id})"),
            Notice::NotRemoved { name, reason } => {
                write!(f, "warning: could not remove container {name}: {reason}")
            }
            Notice::DaemonGone { name, wait } => write!(
                f,
                "the Docker daemon went away; waiting up to {}s for it to come back to remove container {name} (interrupt to stop waiting)",
                wait.as_secs()
            ),
            Notice::DenialFlood {
                syscall,
                program,
                count,
            } => write!(
                f,
                "{syscall} is being denied over and over ({count} times so far, first to {program}): the workload may be looping on it"
            ),
            Notice::Pulled { image, pull } => match pull {
                Pull::Always => write!(f, "pulled {image} (--pull always)"),
                _ => write!(f, "pulled {image}: it was not present locally"),
            },
            Notice::LeftoverRemoved(leftover) => write!(
                f,
                "removed container {}, left behind by profile process {} which is gone",
                leftover.name, leftover.owner_pid
            ),
        }
    }
}

/// Where notices go.
pub type Observer = dyn Fn(Notice<'_>) + Send + Sync;

/// Why the recording ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The container exited by itself.
    Exited,
    Duration,
    Exercise,
    /// SIGINT or SIGTERM (the number).
    Interrupted(i32),
    /// The container could not start (the daemon's message is in the warnings).
    StartFailed,
    /// The HTTP probe finished (the container was then stopped gracefully).
    Probe,
    /// The container was not ready for the exercise in time (why: [`RecordedRun::not_ready`]).
    NotReady,
    /// The Docker daemon went away (stopped, restarted, crashed) during the run.
    DaemonLost,
    /// The time limit elapsed before the run ended (the container was then stopped).
    TimedOut,
}

impl Stop {
    /// How reports say it (`stopped_by`): nothing when the container exited by itself.
    pub fn stopped_by(self) -> Option<StoppedBy> {
        Some(match self {
            Stop::Exited => return None,
            Stop::Duration => StoppedBy::Duration,
            Stop::Exercise => StoppedBy::Exercise,
            Stop::Probe => StoppedBy::Probe,
            Stop::Interrupted(_) => StoppedBy::Interrupted,
            Stop::StartFailed => StoppedBy::StartFailed,
            Stop::NotReady => StoppedBy::NotReady,
            Stop::DaemonLost => StoppedBy::DaemonLost,
            Stop::TimedOut => StoppedBy::Timeout,
        })
    }
}

/// What ended a recording the workload did not end by itself, as reports say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoppedBy {
    Duration,
    Exercise,
    Probe,
    Interrupted,
    StartFailed,
    NotReady,
    DaemonLost,
    Timeout,
}

impl StoppedBy {
    /// The name reports give it (`start_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            StoppedBy::Duration => "duration",
            StoppedBy::Exercise => "exercise",
            StoppedBy::Probe => "probe",
            StoppedBy::Interrupted => "interrupted",
            StoppedBy::StartFailed => "start_failed",
            StoppedBy::NotReady => "not_ready",
            StoppedBy::DaemonLost => "daemon_lost",
            StoppedBy::Timeout => "timeout",
        }
    }
}

/// What one recorded run saw.
#[derive(Debug)]
pub struct RecordedRun {
    pub snapshot: Snapshot,
    pub stop: Stop,
    /// The container's exit code.
    pub exit_code: Option<i64>,
    /// The exercise command's exit code (None: no exercise, or it did not finish).
    pub exercise_code: Option<i32>,
    pub elapsed: Duration,
    pub warnings: Vec<String>,
    pub container_name: String,
    /// What was still not ready when `--ready-timeout` elapsed, or the container's exit
    /// while it was waited for.
    pub not_ready: Option<String>,
    /// The container exited while it was waited for.
    pub exited_before_ready: bool,
    /// A second signal ended the wait for the daemon: the container may still exist.
    pub abandoned: bool,
    /// What the HTTP probe did, when it ran.
    pub probe: Option<ProbeReport>,
    /// With the probe: the syscalls seen first in each phase (`start`, `probe`, `stop`).
    pub phases: Vec<(String, Vec<String>)>,
    /// With [`RunOptions::observe_rootfs`]: what the workload wrote in its root filesystem
    /// and where tmpfs would hold it (`None`: it could not be read).
    pub rootfs: Option<Rootfs>,
}

impl RecordedRun {
    pub(super) fn new(name: &str) -> Self {
        RecordedRun {
            snapshot: Snapshot::default(),
            stop: Stop::StartFailed,
            exit_code: None,
            exercise_code: None,
            elapsed: Duration::ZERO,
            warnings: Vec::new(),
            container_name: name.to_string(),
            not_ready: None,
            exited_before_ready: false,
            abandoned: false,
            probe: None,
            phases: Vec::new(),
            rootfs: None,
        }
    }

    /// Whether a signal or the daemon's going away cut the run short (a run abandoned to a
    /// stalled daemon is one a signal ended).
    pub fn cut_short(&self) -> bool {
        matches!(self.stop, Stop::Interrupted(_) | Stop::DaemonLost)
    }

    /// Whether the workload failed: it exited nonzero by itself, or the exercise failed or
    /// could not finish.
    pub fn failed(&self, exercised: bool) -> bool {
        self.failure(exercised).is_some()
    }

    /// Why the workload failed, in words, if it did (see [`RecordedRun::failed`]).
    pub fn failure(&self, exercised: bool) -> Option<String> {
        let code = self.exit_code.unwrap_or(-1);
        Some(match self.stop {
            Stop::Exited if self.exit_code != Some(0) => format!("the workload exited {code}"),
            Stop::Exited if exercised => {
                format!("the container exited ({code}) before the exercise finished")
            }
            Stop::Exited | Stop::Probe => return None,
            Stop::Exercise => match self.exercise_code {
                Some(0) => return None,
                Some(code) => format!("the exercise failed (exit {code})"),
                None => "the exercise did not finish".into(),
            },
            // With an exercise, --duration cut it off (or it never started).
            Stop::Duration if exercised => "--duration elapsed before the exercise finished".into(),
            Stop::Duration => return None,
            Stop::Interrupted(sig) => format!("interrupted by signal {sig}"),
            Stop::StartFailed => "the container could not start".into(),
            Stop::NotReady => self
                .not_ready
                .clone()
                .unwrap_or_else(|| "the container was not ready".into()),
            Stop::DaemonLost => "the Docker daemon went away during the run".into(),
            Stop::TimedOut => "the run did not end within its time limit (--timeout)".into(),
        })
    }
}

/// How long a run waits for a daemon that went away to come back, to remove its container.
const DAEMON_RETURN: Duration = Duration::from_secs(30);

/// What every container-running command needs first: the Docker Engine (with the image
/// present) and the loaded recorder.
pub struct Prepared<'o> {
    pub engine: Engine,
    pub recorder: Recorder,
    /// The ports the image EXPOSEs (`8080/tcp`).
    pub exposed: Vec<String>,
    observer: &'o Observer,
}

impl<'o> Prepared<'o> {
    /// Connects to the Docker Engine, removes what killed `profile` processes left there,
    /// makes sure `run`'s image is there (pulled as it says) and loads the recorder.
    pub async fn new(
        run: &RunOptions,
        observer: &'o Observer,
        interrupt: &mut Interrupt,
    ) -> Result<Self, SessionError> {
        Recorder::require_privileges(crate::docker::missing_privileges())?;
        cgroup::unified_root()?;
        let engine = Engine::connect().await?;
        match interrupt.guard(engine.remove_leftovers()).await? {
            Ok(removed) => removed
                .iter()
                .for_each(|l| observer(Notice::LeftoverRemoved(l))),
            Err(err) => log::warn!("looking for containers left behind: {err}"),
        }
        let image = &run.container.image;
        if interrupt
            .guard(engine.ensure_image(image, run.pull))
            .await??
        {
            observer(Notice::Pulled {
                image,
                pull: run.pull,
            });
        }
        let exposed = match interrupt.guard(engine.exposed_ports(image)).await? {
            Ok(ports) => ports,
            Err(err) => {
                log::warn!("which ports {image} EXPOSEs is not known: {err}");
                Vec::new()
            }
        };
        let recorder = Recorder::load()?;
        Ok(Prepared {
            engine,
            recorder,
            exposed,
            observer,
        })
    }

    /// Runs of `options`'s container recorded in `mode`; `label` names them in the progress
    /// line.
    pub fn session<'a>(
        &'a self,
        options: &'a RunOptions,
        mode: Mode,
        label: &'a str,
    ) -> Session<'a> {
        Session {
            engine: &self.engine,
            recorder: &self.recorder,
            options,
            mode,
            label,
            strict_args: false,
            exposed: &self.exposed,
            observer: self.observer,
        }
    }
}

/// A run to record: the connection, the recorder, how to run the container and how to record.
pub struct Session<'a> {
    pub engine: &'a Engine,
    pub recorder: &'a Recorder,
    pub options: &'a RunOptions,
    pub mode: Mode,
    /// Shown in the progress line, e.g. "training".
    pub label: &'a str,
    /// Learn ioctl's and prctl's arguments too.
    pub strict_args: bool,
    /// The ports the image EXPOSEs: what a run reached of them is said.
    pub exposed: &'a [String],
    pub(super) observer: &'a Observer,
}

impl Session<'_> {
    /// Creates, records and removes one container running under `seccomp` (a profile's JSON).
    /// `suffix` tells the containers of one command apart (`-run2`, `-verify`).
    pub async fn run(
        &self,
        seccomp: &str,
        suffix: &str,
        interrupt: &mut Interrupt,
    ) -> Result<RecordedRun, SessionError> {
        let name = self.options.name.clone().unwrap_or_else(default_name) + suffix;
        let spec = ContainerSpec {
            name: name.clone(),
            seccomp: seccomp.to_string(),
            owner: Owner::me(),
            keep: self.options.keep,
            ..self.options.container.clone()
        };
        let id = interrupt.guard(self.engine.create(&spec)).await??;
        log::info!("created container {name} ({})", &id[..12]);
        let mut result = self.record(&id, &name, interrupt).await;
        let daemon_lost = match &result {
            Ok(outcome) => outcome.stop == Stop::DaemonLost,
            Err(SessionError::Docker(err)) => err.daemon_unresponsive(),
            Err(_) => false,
        };
        if let Ok(outcome) = &result
            && outcome.abandoned
        {
            return result;
        }
        if self.options.observe_rootfs
            && !daemon_lost
            && let Ok(outcome) = &mut result
        {
            outcome.rootfs = self.rootfs(&id, &spec, interrupt).await;
        }
        if self.options.keep {
            (self.observer)(Notice::Kept {
                name: &name,
                id: &id[..12],
            });
        } else if let Err(sig) = self.remove(&id, &name, daemon_lost, interrupt).await
            && let Ok(outcome) = &mut result
        {
            outcome.abandoned = true;
            if !matches!(outcome.stop, Stop::Interrupted(_)) {
                outcome.stop = Stop::Interrupted(sig);
            }
        }
        result
    }

    /// Removes the container, waiting a while for a daemon that went away to come back; a
    /// signal ends the wait (its number is returned).
    async fn remove(
        &self,
        id: &str,
        name: &str,
        daemon_lost: bool,
        interrupt: &mut Interrupt,
    ) -> Result<(), i32> {
        let not_removed = |reason: String| (self.observer)(Notice::NotRemoved { name, reason });
        if daemon_lost {
            (self.observer)(Notice::DaemonGone {
                name,
                wait: DAEMON_RETURN,
            });
            let back = tokio::time::timeout(DAEMON_RETURN, async {
                while self.engine.ping().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            match interrupt.guard(back).await {
                Err(SessionError::Interrupted(sig)) => return self.give_up(name, id, sig),
                Ok(Err(_)) | Err(_) => {
                    not_removed(format!(
                        "the Docker daemon did not come back within {}s; the next `profile train` or `profile verify` removes it",
                        DAEMON_RETURN.as_secs()
                    ));
                    return Ok(());
                }
                Ok(Ok(())) => {}
            }
        }
        match interrupt.guard(self.engine.remove(id)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                not_removed(err.to_string());
                Ok(())
            }
            Err(SessionError::Interrupted(sig)) => self.give_up(name, id, sig),
            Err(_) => Ok(()),
        }
    }

    /// What the workload wrote in container `id`'s root filesystem, and where tmpfs mounts
    /// would hold it; `None` when the engine could not say (or a signal came).
    async fn rootfs(
        &self,
        id: &str,
        spec: &ContainerSpec,
        interrupt: &mut Interrupt,
    ) -> Option<Rootfs> {
        let changes = match interrupt.guard(self.engine.changes(id)).await {
            Ok(Ok(changes)) => changes,
            Ok(Err(err)) => {
                log::warn!("reading the container's changes: {err}");
                return None;
            }
            Err(_) => return None,
        };
        let mounts = spec.mount_destinations();
        // The first pass finds the directories to look into; the plan then uses what they hold.
        let mut wanted = Vec::new();
        rootfs::plan(&changes, &mounts, &mut |dir| {
            wanted.push(dir.to_string());
            Some(Default::default())
        });
        let mut listings = std::collections::BTreeMap::new();
        for dir in wanted {
            let listing = interrupt.guard(self.engine.listing(id, &dir)).await.ok()?;
            listings.insert(dir, listing);
        }
        Some(rootfs::plan(&changes, &mounts, &mut |dir| {
            listings.get(dir).cloned().flatten()
        }))
    }

    pub(super) fn give_up(&self, name: &str, id: &str, sig: i32) -> Result<(), i32> {
        (self.observer)(Notice::GaveUp {
            name,
            id: &id[..12],
        });
        Err(sig)
    }

    async fn record(
        &self,
        id: &str,
        name: &str,
        interrupt: &mut Interrupt,
    ) -> Result<RecordedRun, SessionError> {
        // The kernel matches the container's cgroup by name the moment it is created (cgroupfs
        // driver: .../docker/<id>; systemd driver: docker-<id>.scope), so the first process the
        // runtime puts there is already watched.
        let scope = format!("docker-{id}.scope");
        let recording =
            self.recorder
                .watch_cgroup_named(&[id, &scope], self.mode, self.strict_args)?;
        let result = self.drive(id, name, &recording, interrupt).await;
        let snapshot = self.recorder.finish(recording)?;
        let mut outcome = result?;
        if snapshot.cgroups.is_empty() && outcome.stop != Stop::StartFailed {
            outcome.warnings.push(format!(
                "the container's cgroup (named {id} or {scope}) was never seen in the cgroup v2 hierarchy: nothing could be recorded"
            ));
        }
        if !outcome.phases.is_empty() {
            let seen: std::collections::BTreeSet<String> = outcome
                .phases
                .iter()
                .flat_map(|(_, names)| names.iter().cloned())
                .collect();
            let mut stop: Vec<String> = snapshot
                .syscalls
                .keys()
                .map(|id| id.name())
                .filter(|n| !seen.contains(n))
                .collect();
            stop.sort();
            outcome.phases.push(("stop".into(), stop));
        }
        outcome.snapshot = snapshot;
        Ok(outcome)
    }
}

/// `profile-<pid>-<milliseconds since the epoch>`.
fn default_name() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("profile-{}-{millis}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_is_said() {
        let said = |pull| Notice::Pulled { image: "app", pull }.to_string();
        assert_eq!(
            said(Pull::Missing),
            "pulled app: it was not present locally"
        );
        assert_eq!(said(Pull::Always), "pulled app (--pull always)");
    }

    #[test]
    fn what_counts_as_a_failed_run() {
        let mut outcome = RecordedRun::new("n");
        outcome.stop = Stop::Duration;
        assert!(!outcome.failed(false));
        assert!(outcome.failed(true), "an exercise cut off by --duration");
        outcome.stop = Stop::Exited;
        outcome.exit_code = Some(0);
        assert!(!outcome.failed(false));
        assert!(outcome.failed(true), "exited before the exercise finished");
        for stop in [Stop::NotReady, Stop::DaemonLost, Stop::Interrupted(2)] {
            outcome.stop = stop;
            assert!(outcome.failed(false));
        }
        assert_eq!(Stop::DaemonLost.stopped_by(), Some(StoppedBy::DaemonLost));
        assert_eq!(Stop::Exited.stopped_by(), None);
        for stop in [Stop::NotReady, Stop::StartFailed, Stop::Interrupted(15)] {
            let by = stop.stopped_by().expect("not by itself");
            let json = serde_json::to_string(&by).expect("JSON");
            assert_eq!(json, format!("\"{}\"", by.as_str()));
        }
    }
}
