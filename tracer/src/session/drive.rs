//! A started container's run: watch it until something ends the run (a signal, its exit, the
//! exercise, `--duration`, readiness that never came), decide why it ended, and end it.
use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use super::{
    error::SessionError,
    exercise, flood,
    probe::{ProbeReport, probe},
    ready,
    run::{Notice, RecordedRun, Session, Stop},
    signals::Interrupt,
};
use crate::{
    cgroup,
    docker::{self, DockerError, Running},
    recorder::Recording,
};
use exercise::Exercise;
use ready::Target;

/// Why the watch over a started container ended.
enum End {
    Signal(i32),
    Exited(docker::Result<i64>),
    /// It exited while the exercise (or probe) waited for it to be ready.
    ExitedBeforeReady(docker::Result<i64>),
    Deadline,
    /// The time limit elapsed.
    TimedOut,
    ExerciseDone(std::io::Result<i32>),
    ProbeDone(ProbeReport),
    NotReady(String),
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A started container, as its run goes on.
struct Started<'a> {
    id: &'a str,
    name: &'a str,
    at: Instant,
    running: Running,
    /// Resolves to its exit code when it stops.
    wait: Boxed<'a, docker::Result<i64>>,
    exercise: Option<Exercise>,
    probe: Option<Boxed<'a, ProbeReport>>,
    /// Syscall names seen before the probe started.
    before_probe: Vec<String>,
}

impl Session<'_> {
    /// Starts the container, watches it until the run ends, and ends it; the snapshot is left
    /// empty.
    pub(super) async fn drive(
        &self,
        id: &str,
        name: &str,
        recording: &Recording,
        interrupt: &mut Interrupt,
    ) -> Result<RecordedRun, SessionError> {
        let mut outcome = RecordedRun::new(name);
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
        let mut run = Started {
            id,
            name,
            at: started,
            running,
            wait: Box::pin(self.engine.wait(id)),
            exercise: None,
            probe: None,
            before_probe: Vec::new(),
        };
        let end = self.watch(&mut run, recording, interrupt).await?;
        if self.options.progress {
            (self.observer)(Notice::ProgressDone);
        }
        self.conclude(&mut run, end, &mut outcome, recording, interrupt)
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
    async fn watch(
        &self,
        run: &mut Started<'_>,
        recording: &Recording,
        interrupt: &mut Interrupt,
    ) -> Result<End, SessionError> {
        let options = self.options;
        let (id, name) = (run.id, run.name);
        let env = exercise::environment(id, name, &run.running.ports);
        let exercising = options.exercise.is_some() || options.probe.is_some();
        let target = if exercising && options.ready.wait {
            let published = options
                .container
                .ports
                .iter()
                .any(|p| p.container.ends_with("/tcp"));
            Target::of(&run.running, published)
        } else {
            None
        };
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let waiting_for = target.as_ref().map(Target::describe);
        if let Some(what) = &waiting_for {
            log::info!("waiting for {what} before the exercise");
        } else if let Some(cmd) = &options.exercise {
            run.exercise = Some(Exercise::start(cmd, &env).map_err(SessionError::Exercise)?);
        } else if options.probe.is_some() {
            self.start_probe(run, recording, &requests)?;
        }
        let mut check: Option<Boxed<'_, Result<(), String>>> = None;
        let mut last_reason = String::from("not checked yet");
        let ready_by = tokio::time::sleep(options.ready.timeout);
        let deadline = tokio::time::sleep(options.duration.unwrap_or(Duration::MAX));
        let limit = tokio::time::sleep(options.timeout.unwrap_or(Duration::MAX));
        tokio::pin!(ready_by, deadline, limit);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut floods = flood::Floods::default();
        let mut flood_tick = tokio::time::interval(flood::WINDOW);
        flood_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let verifying = self.mode == crate::recorder::Mode::Verify;
        loop {
            let waiting = run.exercise.is_none() && run.probe.is_none() && target.is_some();
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
                code = run.wait.as_mut() => {
                    return Ok(match waiting {
                        true => End::ExitedBeforeReady(code),
                        false => End::Exited(code),
                    });
                }
                status = async { run.exercise.as_mut().expect("guarded").wait().await }, if run.exercise.is_some() => {
                    return Ok(End::ExerciseDone(status));
                }
                report = async { run.probe.as_mut().expect("guarded").await }, if run.probe.is_some() => {
                    run.probe = None;
                    return Ok(End::ProbeDone(report));
                }
                _ = &mut deadline, if options.duration.is_some() => return Ok(End::Deadline),
                _ = &mut limit, if options.timeout.is_some() => return Ok(End::TimedOut),
                _ = flood_tick.tick(), if verifying => {
                    let snap = self.recorder.snapshot(recording)?;
                    for notice in floods.check(&snap) {
                        (self.observer)(notice);
                    }
                }
                _ = &mut ready_by, if waiting => {
                    return Ok(End::NotReady(format!(
                        "the container was not ready after {}: {last_reason}",
                        humantime::format_duration(options.ready.timeout)
                    )));
                }
                result = async { check.as_mut().expect("guarded").await }, if waiting => {
                    check = None;
                    match result {
                        Ok(()) => match &options.exercise {
                            Some(cmd) => {
                                run.exercise = Some(Exercise::start(cmd, &env).map_err(SessionError::Exercise)?);
                            }
                            None => self.start_probe(run, recording, &requests)?,
                        },
                        Err(reason) => last_reason = reason,
                    }
                }
                _ = tick.tick(), if options.progress => {
                    let snap = self.recorder.snapshot(recording)?;
                    (self.observer)(Notice::Progress {
                        label: self.label,
                        name,
                        elapsed: run.at.elapsed(),
                        distinct: snap.syscalls.len(),
                        calls: snap.total_calls(),
                        waiting_for: waiting.then_some(waiting_for.as_deref()).flatten(),
                        requests: run
                            .probe
                            .is_some()
                            .then(|| requests.load(std::sync::atomic::Ordering::Relaxed)),
                    });
                }
            }
        }
    }

    /// The names of the syscalls the recording has seen so far, sorted.
    fn names_seen(&self, recording: &Recording) -> Result<Vec<String>, SessionError> {
        let mut names: Vec<String> = self
            .recorder
            .snapshot(recording)?
            .syscalls
            .keys()
            .map(|id| id.name())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Starts the HTTP probe against the run's published ports, remembering what was seen
    /// before it (the start phase).
    fn start_probe(
        &self,
        run: &mut Started<'_>,
        recording: &Recording,
        requests: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Result<(), SessionError> {
        let Some(options) = self.options.probe.clone() else {
            return Ok(());
        };
        run.before_probe = self.names_seen(recording)?;
        let ports = run.running.ports.clone();
        let requests = requests.clone();
        run.probe = Some(Box::pin(async move {
            probe(&ports, &options, |n| {
                requests.store(n, std::sync::atomic::Ordering::Relaxed)
            })
            .await
        }));
        Ok(())
    }

    /// Ends the run the way `end` calls for and records why in `outcome`.
    async fn conclude(
        &self,
        run: &mut Started<'_>,
        end: End,
        outcome: &mut RecordedRun,
        recording: &Recording,
        interrupt: &mut Interrupt,
    ) -> Result<(), SessionError> {
        // Whatever ends the run ends the exercise's whole process group too.
        let exercising = run.exercise.take().is_some();
        let (stop, exit_code) = match end {
            End::Signal(sig) => {
                self.interrupted(run, sig, outcome, interrupt).await;
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
            End::ExitedBeforeReady(code) => {
                let daemon_answers = self.daemon_answers().await;
                let (stop, code) = classify(code, daemon_answers)?;
                outcome.exit_code = code;
                if stop == Stop::DaemonLost {
                    outcome.warnings.push(daemon_lost_warning(code));
                } else {
                    outcome.not_ready = Some(format!(
                        "the container exited ({}) before it was ready for {}",
                        code.unwrap_or(-1),
                        self.options.exercise_words()
                    ));
                    outcome.exited_before_ready = true;
                }
                // It has stopped already: nothing to stop.
                outcome.stop = match stop {
                    Stop::DaemonLost => stop,
                    _ => Stop::NotReady,
                };
                return Ok(());
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
                log::info!(
                    "--duration elapsed: stopping {} with its stop signal",
                    run.name
                );
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
            End::TimedOut => {
                let limit = self.options.timeout.unwrap_or_default();
                outcome.warnings.push(format!(
                    "the run did not end within --timeout {}: the container was stopped",
                    humantime::format_duration(limit)
                ));
                (Stop::TimedOut, None)
            }
            End::NotReady(reason) => {
                outcome.not_ready = Some(reason);
                (Stop::NotReady, None)
            }
            End::ProbeDone(report) => {
                // The names the probe made appear: what was seen before it started is the
                // start phase's.
                let now = self.names_seen(recording)?;
                let start = std::mem::take(&mut run.before_probe);
                let probe: Vec<String> = now.into_iter().filter(|n| !start.contains(n)).collect();
                outcome.phases = vec![("start".into(), start), ("probe".into(), probe)];
                if report.requests.is_empty() {
                    outcome.warnings.push(
                        "the HTTP probe made no request: no published port spoke HTTP".into(),
                    );
                }
                outcome.probe = Some(report);
                (Stop::Probe, None)
            }
        };
        outcome.stop = stop;
        outcome.exit_code = exit_code;
        if matches!(
            stop,
            Stop::Exercise | Stop::Probe | Stop::Duration | Stop::NotReady | Stop::TimedOut
        ) {
            // A container that never got ready is removed anyway: no grace for it.
            let grace = if stop == Stop::NotReady {
                Duration::ZERO
            } else {
                self.options.stop_timeout
            };
            self.stop_container(run, grace, outcome, interrupt).await;
        }
        Ok(())
    }

    /// Stops the container with its stop signal (SIGKILL after `grace`) and takes its exit
    /// code; a signal meanwhile turns this into an interruption.
    async fn stop_container(
        &self,
        run: &mut Started<'_>,
        grace: Duration,
        outcome: &mut RecordedRun,
        interrupt: &mut Interrupt,
    ) {
        let stopped = async {
            self.engine.stop(run.id, grace).await?;
            tokio::time::timeout(grace + Duration::from_secs(60), run.wait.as_mut())
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
                self.interrupted(run, sig, outcome, interrupt).await;
            }
            Err(_) => {}
        }
    }

    /// The first signal: kill the container; a second one gives up waiting for the daemon.
    async fn interrupted(
        &self,
        run: &Started<'_>,
        sig: i32,
        outcome: &mut RecordedRun,
        interrupt: &mut Interrupt,
    ) {
        (self.observer)(Notice::Interrupted { name: run.name });
        outcome.stop = Stop::Interrupted(sig);
        outcome.exit_code = None;
        match interrupt.guard(self.engine.kill(run.id)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => outcome.warnings.push(err.to_string()),
            Err(_) => {
                let _ = self.give_up(run.name, run.id, sig);
                outcome.abandoned = true;
            }
        }
    }

    /// Whether the daemon still answers on a new connection (asked twice: a busy daemon may
    /// miss one).
    async fn daemon_answers(&self) -> bool {
        if self.engine.answers_anew().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.engine.answers_anew().await
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
}
