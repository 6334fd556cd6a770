//! One recorded container run, shared by the commands that run images: create the container
//! under a given seccomp profile, have the kernel watch its cgroup before its first process
//! exists, start it, wait until it is ready for the exercise, end the recording when it exits,
//! when the duration elapses, when the exercise finishes, on a signal or when the daemon goes
//! away, and remove it whatever happened.
mod exercise;
mod ready;
mod signals;

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

pub use ready::ReadyOptions;
pub use signals::Interrupt;

use crate::{
    cgroup,
    docker::{self, ContainerSpec, DockerError, Engine, Leftover, Running},
    owner::Owner,
    recorder::{Mode, Recorder, Recording, Snapshot},
};
use exercise::Exercise;
use ready::Target;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Recorder(#[from] crate::Error),
    /// A signal came before anything was recorded.
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
    #[error("installing the {0} handler: {1}")]
    Signals(&'static str, #[source] std::io::Error),
    #[error("starting the exercise command with sh -c: {0}")]
    Exercise(#[source] std::io::Error),
}

/// How the container runs and how its run ends: plain values the command line fills in.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The container; each run sets its name, seccomp profile and owner.
    pub container: ContainerSpec,
    /// The container's name [default: profile-<pid>-<time>]; each run adds its suffix.
    pub name: Option<String>,
    /// Stop the container after this long.
    pub duration: Option<Duration>,
    /// A host command (`sh -c`) whose end ends the recording.
    pub exercise: Option<String>,
    pub ready: ReadyOptions,
    /// Between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    /// Copy the container's output to stderr.
    pub forward_logs: bool,
    /// Leave the container in place at the end.
    pub keep: bool,
    /// Send [`Notice::Progress`] every second.
    pub progress: bool,
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
    /// The container was not ready for the exercise in time (why: [`Outcome::not_ready`]).
    NotReady,
    /// The Docker daemon went away (stopped, restarted, crashed) during the run.
    DaemonLost,
}

impl Stop {
    /// The report's `stopped_by`.
    pub fn label(self) -> Option<String> {
        let label = match self {
            Stop::Exited => return None,
            Stop::Duration => "duration",
            Stop::Exercise => "exercise",
            Stop::Interrupted(_) => "interrupted",
            Stop::StartFailed => "start_failed",
            Stop::NotReady => "not_ready",
            Stop::DaemonLost => "daemon_lost",
        };
        Some(label.into())
    }
}

/// What one recorded run saw.
#[derive(Debug)]
pub struct Outcome {
    pub snapshot: Snapshot,
    pub stop: Stop,
    /// The container's exit code.
    pub exit_code: Option<i64>,
    /// The exercise command's exit code (None: no exercise, or it did not finish).
    pub exercise_code: Option<i32>,
    pub elapsed: Duration,
    pub warnings: Vec<String>,
    pub container_name: String,
    /// What was still not ready when `--ready-timeout` elapsed.
    pub not_ready: Option<String>,
    /// A second signal ended the wait for the daemon: the container may still exist.
    pub abandoned: bool,
}

impl Outcome {
    fn new(name: &str) -> Self {
        Outcome {
            snapshot: Snapshot::default(),
            stop: Stop::StartFailed,
            exit_code: None,
            exercise_code: None,
            elapsed: Duration::ZERO,
            warnings: Vec::new(),
            container_name: name.to_string(),
            not_ready: None,
            abandoned: false,
        }
    }

    /// Whether the workload failed: it exited nonzero by itself, or the exercise failed or
    /// could not finish.
    pub fn failed(&self, exercised: bool) -> bool {
        match self.stop {
            Stop::Exited => self.exit_code != Some(0) || exercised,
            Stop::Exercise => self.exercise_code != Some(0),
            // With an exercise, --duration cut it off (or it never started).
            Stop::Duration => exercised,
            Stop::Interrupted(_) | Stop::StartFailed | Stop::NotReady | Stop::DaemonLost => true,
        }
    }
}

/// How long a run waits for a daemon that went away to come back, to remove its container.
const DAEMON_RETURN: Duration = Duration::from_secs(30);

/// What every container-running command needs first: the Docker Engine (with the image
/// present) and the loaded recorder.
pub struct Prepared<'o> {
    pub engine: Engine,
    pub recorder: Recorder,
    observer: &'o Observer,
}

impl<'o> Prepared<'o> {
    /// Connects to the Docker Engine, removes what killed `profile` processes left there,
    /// makes sure the image is there and loads the recorder.
    pub async fn new(
        image: &str,
        observer: &'o Observer,
        interrupt: &mut Interrupt,
    ) -> Result<Self, SessionError> {
        cgroup::unified_root()?;
        let engine = Engine::connect().await?;
        match interrupt.guard(engine.remove_leftovers()).await? {
            Ok(removed) => removed
                .iter()
                .for_each(|l| observer(Notice::LeftoverRemoved(l))),
            Err(err) => log::warn!("looking for containers left behind: {err}"),
        }
        interrupt.guard(engine.ensure_image(image)).await??;
        let recorder = Recorder::load()?;
        Ok(Prepared {
            engine,
            recorder,
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
    observer: &'a Observer,
}

/// Why the watch over a started container ended.
enum End {
    Signal(i32),
    Exited(docker::Result<i64>),
    Deadline,
    ExerciseDone(std::io::Result<i32>),
    NotReady(String),
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Session<'_> {
    /// Creates, records and removes one container running under `seccomp` (a profile's JSON).
    /// `suffix` tells the containers of one command apart (`-run2`, `-verify`).
    pub async fn run(
        &self,
        seccomp: &str,
        suffix: &str,
        interrupt: &mut Interrupt,
    ) -> Result<Outcome, SessionError> {
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

    fn give_up(&self, name: &str, id: &str, sig: i32) -> Result<(), i32> {
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
    ) -> Result<Outcome, SessionError> {
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
        if snapshot.cgroups.is_empty() {
            outcome.warnings.push(format!(
                "the container's cgroup (named {id} or {scope}) was never seen in the cgroup v2 hierarchy: nothing could be recorded"
            ));
        }
        outcome.snapshot = snapshot;
        Ok(outcome)
    }

    /// Starts the container, watches it until the run ends, and ends it; the snapshot is left
    /// empty.
    async fn drive(
        &self,
        id: &str,
        name: &str,
        recording: &Recording,
        interrupt: &mut Interrupt,
    ) -> Result<Outcome, SessionError> {
        let mut outcome = Outcome::new(name);
        let started = Instant::now();
        match interrupt.guard(self.engine.start(id)).await? {
            Err(err) if err.daemon_unresponsive() => return Err(err.into()),
            // What ran before the failure (the runtime's calls under the filter) is kept:
            // `verify` names the denials that made the start fail.
            Err(err) => {
                outcome.warnings.push(err.to_string());
                outcome.elapsed = started.elapsed();
                return Ok(outcome);
            }
            Ok(()) => {}
        }
        let running = match interrupt.guard(self.engine.running(id)).await? {
            Ok(running) => running,
            Err(err) => {
                log::warn!("inspecting the started container: {err}");
                Running::default()
            }
        };
        if self.recorder.cgroups(recording).is_empty() {
            self.watch_late(running.pid, recording, &mut outcome.warnings);
        }
        let logs = self
            .options
            .forward_logs
            .then(|| self.engine.forward_logs(id));
        let mut wait: Boxed<'_, _> = Box::pin(self.engine.wait(id));
        let mut exercise = None;
        let end = self
            .watch(
                id,
                name,
                &running,
                recording,
                &mut wait,
                &mut exercise,
                interrupt,
                started,
            )
            .await?;
        if self.options.progress {
            (self.observer)(Notice::ProgressDone);
        }
        self.conclude(id, name, end, &mut wait, exercise, &mut outcome, interrupt)
            .await?;
        if let Some(logs) = logs {
            if outcome.abandoned {
                logs.abort();
            } else {
                // The stream ends when the container stops; don't hang on a daemon that lingers.
                let _ = tokio::time::timeout(Duration::from_secs(2), logs).await;
            }
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// Watches the started container until something ends the run: a signal, its exit, the
    /// exercise's end, `--duration`, or readiness that never came. The exercise starts once
    /// the container is ready.
    #[allow(clippy::too_many_arguments)]
    async fn watch(
        &self,
        id: &str,
        name: &str,
        running: &Running,
        recording: &Recording,
        wait: &mut Boxed<'_, docker::Result<i64>>,
        exercise: &mut Option<Exercise>,
        interrupt: &mut Interrupt,
        started: Instant,
    ) -> Result<End, SessionError> {
        let options = self.options;
        let env = exercise::environment(id, name, &running.ports);
        let target = match options.exercise {
            Some(_) if options.ready.wait => Target::of(running),
            _ => None,
        };
        let waiting_for = target.as_ref().map(Target::describe);
        if let Some(what) = &waiting_for {
            log::info!("waiting for {what} before the exercise");
        } else if let Some(cmd) = &options.exercise {
            *exercise = Some(Exercise::start(cmd, &env).map_err(SessionError::Exercise)?);
        }
        let mut check: Option<Boxed<'_, Result<(), String>>> = None;
        let mut last_reason = String::from("not checked yet");
        let ready_by = tokio::time::sleep(options.ready.timeout);
        let deadline = tokio::time::sleep(options.duration.unwrap_or(Duration::MAX));
        tokio::pin!(ready_by, deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let waiting = exercise.is_none() && target.is_some();
            if waiting && check.is_none() {
                let target = target.clone();
                check = Some(Box::pin(async move {
                    let Some(target) = target else {
                        return Ok(());
                    };
                    let result = ready::check(self.engine, id, &target).await;
                    if result.is_err() {
                        tokio::time::sleep(ready::PAUSE).await;
                    }
                    result
                }));
            }
            tokio::select! {
                biased;
                sig = interrupt.recv() => return Ok(End::Signal(sig)),
                code = wait.as_mut() => return Ok(End::Exited(code)),
                status = async { exercise.as_mut().expect("guarded").wait().await }, if exercise.is_some() => {
                    return Ok(End::ExerciseDone(status));
                }
                _ = &mut deadline, if options.duration.is_some() => return Ok(End::Deadline),
                _ = &mut ready_by, if waiting => {
                    return Ok(End::NotReady(format!(
                        "the container was not ready after {}: {last_reason}",
                        humantime::format_duration(options.ready.timeout)
                    )));
                }
                result = async { check.as_mut().expect("guarded").await }, if waiting => {
                    check = None;
                    match result {
                        Ok(()) => {
                            let cmd = options.exercise.as_deref().unwrap_or("true");
                            *exercise = Some(Exercise::start(cmd, &env).map_err(SessionError::Exercise)?);
                        }
                        Err(reason) => last_reason = reason,
                    }
                }
                _ = tick.tick(), if options.progress => {
                    let snap = self.recorder.snapshot(recording)?;
                    (self.observer)(Notice::Progress {
                        label: self.label,
                        name,
                        elapsed: started.elapsed(),
                        distinct: snap.syscalls.len(),
                        calls: snap.total_calls(),
                        waiting_for: waiting.then_some(waiting_for.as_deref()).flatten(),
                    });
                }
            }
        }
    }

    /// Ends the run the way `end` calls for and records why in `outcome`.
    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        &self,
        id: &str,
        name: &str,
        end: End,
        wait: &mut Boxed<'_, docker::Result<i64>>,
        exercise: Option<Exercise>,
        outcome: &mut Outcome,
        interrupt: &mut Interrupt,
    ) -> Result<(), SessionError> {
        let exercising = exercise.is_some();
        // Whatever ends the run ends the exercise's whole process group too.
        drop(exercise);
        let (stop, exit_code) = match end {
            End::Signal(sig) => {
                self.interrupted(name, id, sig, outcome, interrupt).await;
                return Ok(());
            }
            End::Exited(code) => {
                let daemon_answers = self.daemon_answers().await;
                let (stop, code) = classify(code, daemon_answers)?;
                match stop {
                    Stop::DaemonLost => outcome.warnings.push(daemon_lost_warning(code)),
                    _ if self.options.exercise.is_some() => outcome.warnings.push(format!(
                        "the container exited ({}) before the exercise finished",
                        code.unwrap_or(-1)
                    )),
                    _ => {}
                }
                (stop, code.filter(|_| stop == Stop::Exited))
            }
            End::ExerciseDone(status) => {
                let code = status.map_err(SessionError::Exercise)?;
                outcome.exercise_code = Some(code);
                if code != 0 {
                    outcome
                        .warnings
                        .push(format!("the exercise command failed (exit {code})"));
                }
                (Stop::Exercise, None)
            }
            End::Deadline => {
                log::info!("--duration elapsed: stopping {name} with its stop signal");
                if exercising {
                    outcome.warnings.push(
                        "--duration elapsed before the exercise finished: it was cut off and its processes killed".into(),
                    );
                } else if self.options.exercise.is_some() {
                    outcome.warnings.push(
                        "--duration elapsed before the container was ready: the exercise never ran"
                            .into(),
                    );
                }
                (Stop::Duration, None)
            }
            End::NotReady(reason) => {
                outcome.not_ready = Some(reason);
                (Stop::NotReady, None)
            }
        };
        outcome.stop = stop;
        outcome.exit_code = exit_code;
        if matches!(stop, Stop::Exercise | Stop::Duration | Stop::NotReady) {
            // A container that never got ready is removed anyway: no grace for it.
            let grace = if stop == Stop::NotReady {
                Duration::ZERO
            } else {
                self.options.stop_timeout
            };
            self.stop_container(id, name, grace, wait, outcome, interrupt)
                .await;
        }
        Ok(())
    }

    /// Stops the container with its stop signal (SIGKILL after `grace`) and takes its exit
    /// code; a signal meanwhile turns this into an interruption.
    async fn stop_container(
        &self,
        id: &str,
        name: &str,
        grace: Duration,
        wait: &mut Boxed<'_, docker::Result<i64>>,
        outcome: &mut Outcome,
        interrupt: &mut Interrupt,
    ) {
        let stopped = async {
            self.engine.stop(id, grace).await?;
            tokio::time::timeout(grace + Duration::from_secs(60), wait.as_mut())
                .await
                .map_err(|_| DockerError::Timeout {
                    action: "waiting for the stopped container".into(),
                    secs: grace.as_secs() + 60,
                })?
        };
        match interrupt.guard(stopped).await {
            Ok(Ok(code)) => outcome.exit_code = outcome.exit_code.or(Some(code)),
            Ok(Err(err)) if err.daemon_unresponsive() => {
                outcome.stop = Stop::DaemonLost;
                outcome.warnings.push(format!("{err}"));
                outcome.warnings.push(daemon_lost_warning(None));
            }
            Ok(Err(err)) => outcome.warnings.push(err.to_string()),
            Err(SessionError::Interrupted(sig)) => {
                self.interrupted(name, id, sig, outcome, interrupt).await;
            }
            Err(_) => {}
        }
    }

    /// The first signal: kill the container; a second one gives up waiting for the daemon.
    async fn interrupted(
        &self,
        name: &str,
        id: &str,
        sig: i32,
        outcome: &mut Outcome,
        interrupt: &mut Interrupt,
    ) {
        (self.observer)(Notice::Interrupted { name });
        outcome.stop = Stop::Interrupted(sig);
        outcome.exit_code = None;
        match interrupt.guard(self.engine.kill(id)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => outcome.warnings.push(err.to_string()),
            Err(_) => {
                let _ = self.give_up(name, id, sig);
                outcome.abandoned = true;
            }
        }
    }

    /// Whether the daemon still answers (asked twice: a busy daemon may miss one).
    async fn daemon_answers(&self) -> bool {
        if self.engine.ping().await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.engine.ping().await.is_ok()
    }

    /// When the cgroup was not matched by name at creation (an unusual cgroup layout), watch
    /// it from now on by the id of the container's first process: what ran before is missed.
    fn watch_late(&self, pid: Option<u32>, recording: &Recording, warnings: &mut Vec<String>) {
        let Some(pid) = pid else {
            return;
        };
        let Ok(id) = cgroup::of_pid(pid).and_then(|p| cgroup::id_of(&p)) else {
            return;
        };
        if self.recorder.watch_more(recording, id).is_ok() {
            warnings.push(
                "the container's cgroup was found only after it started: its first syscalls may be missing (PARTIAL)".into(),
            );
        }
    }
}

/// Why the container's wait ended, given whether the daemon still answers: a daemon that shuts
/// down stops its containers (137 then says nothing about the workload), and one that dies
/// drops the wait. Returns the stop and the exit code the wait reported.
fn classify(
    wait: docker::Result<i64>,
    daemon_answers: bool,
) -> Result<(Stop, Option<i64>), DockerError> {
    match wait {
        Ok(code) if daemon_answers => Ok((Stop::Exited, Some(code))),
        Ok(code) => Ok((Stop::DaemonLost, Some(code))),
        Err(err) if err.daemon_unresponsive() || !daemon_answers => Ok((Stop::DaemonLost, None)),
        Err(err) => Err(err),
    }
}

fn daemon_lost_warning(code: Option<i64>) -> String {
    let ended = match code {
        Some(code) => format!(" (it ended the container with it: exit {code})"),
        None => String::new(),
    };
    format!("the Docker daemon went away during the run{ended}: the recording is PARTIAL")
}

fn default_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("profile-{}-{secs}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> DockerError {
        DockerError::Transport {
            action: "waiting for the container".into(),
            message: "connection closed".into(),
        }
    }

    #[test]
    fn a_daemon_that_went_away_is_not_the_workload_exiting() {
        // dockerd shutting down kills the container: the wait reports 137, the daemon is gone.
        assert_eq!(
            classify(Ok(137), false).unwrap(),
            (Stop::DaemonLost, Some(137))
        );
        // dockerd killed: the wait itself breaks.
        assert_eq!(
            classify(Err(lost()), false).unwrap(),
            (Stop::DaemonLost, None)
        );
        assert_eq!(
            classify(Err(lost()), true).unwrap(),
            (Stop::DaemonLost, None)
        );
        // The workload's own exit, with the daemon there.
        assert_eq!(classify(Ok(137), true).unwrap(), (Stop::Exited, Some(137)));
        assert_eq!(classify(Ok(0), true).unwrap(), (Stop::Exited, Some(0)));
        // The daemon refused the wait (e.g. the container is gone): an error of its own.
        let refused = DockerError::Api {
            action: "waiting for the container".into(),
            message: "No such container".into(),
        };
        assert!(classify(Err(refused), true).is_err());
        assert!(daemon_lost_warning(Some(137)).contains("exit 137"));
    }

    #[test]
    fn what_counts_as_a_failed_run() {
        let mut outcome = Outcome::new("n");
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
        assert_eq!(Stop::DaemonLost.label().as_deref(), Some("daemon_lost"));
        assert_eq!(Stop::NotReady.label().as_deref(), Some("not_ready"));
    }
}
