//! One recorded container run, shared by the commands that run images: create the container
//! under a given seccomp profile, have the kernel watch its cgroup before its first process
//! exists, start it, stop it when it exits, when `--duration` elapses, when the exercise
//! finishes or on Ctrl-C/SIGTERM, and remove it whatever happened.
use std::{
    io::IsTerminal as _,
    os::fd::AsFd as _,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    cgroup,
    docker::{self, ContainerSpec, Engine, PortSpec},
    recorder::{Mode, Recorder, Snapshot},
};

/// How the container runs: the `docker run` options `train` and `verify` share.
#[derive(Clone, Debug, Args)]
pub struct ContainerArgs {
    /// The image to run (pulled if not present locally).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Stop the container after this long (e.g. 30s, 2m, 500ms): the image's stop signal,
    /// then SIGKILL after --stop-timeout. Without it, recording lasts until the container exits.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// A host command (run with sh -c) that exercises the container; recording stops when it
    /// finishes. PROFILE_CONTAINER_ID and PROFILE_CONTAINER_NAME are in its environment. If it
    /// fails, the command exits 1 (the profile is still written).
    #[arg(long, value_name = "CMD")]
    pub exercise: Option<String>,
    /// Container name (default: profile-<pid>-<time>).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Set an environment variable in the container (KEY=VALUE, or KEY to pass this one's).
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = docker::env_entry)]
    pub env: Vec<String>,
    /// Publish a container port: [IP:]HOST_PORT:CONTAINER_PORT[/PROTO].
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR")]
    pub publish: Vec<PortSpec>,
    /// Bind mount or volume: SRC:DST[:ro].
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]", value_parser = docker::volume_entry)]
    pub volumes: Vec<String>,
    /// User (name|uid[:group|gid]) to run the container as.
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it).
    #[arg(long, value_name = "E")]
    pub entrypoint: Option<String>,
    /// Connect the container to this network (as `docker run --network`).
    #[arg(long, value_name = "NET")]
    pub network: Option<String>,
    /// Add a Linux capability (as `docker run --cap-add`; ALL for every one). The base
    /// profile's capability rules follow, and so does the learned profile.
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (as `docker run --cap-drop`; ALL for every one).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Seconds between the stop signal and SIGKILL when stopping the container.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub stop_timeout: u64,
    /// Don't copy the container's output to stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Leave the container in place at the end (it is removed by default, also on errors).
    #[arg(long)]
    pub keep: bool,
    /// Command and arguments for the container (replacing the image's CMD), after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

impl ContainerArgs {
    /// How the run is named in reports: the image and, if given, the command.
    pub fn target(&self) -> String {
        if self.command.is_empty() {
            self.image.clone()
        } else {
            format!("{} {}", self.image, self.command.join(" "))
        }
    }

    fn spec(&self, name: &str, seccomp: &str) -> ContainerSpec {
        ContainerSpec {
            image: self.image.clone(),
            name: name.to_string(),
            cmd: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            env: self.env.clone(),
            user: self.user.clone(),
            ports: self.publish.clone(),
            volumes: self.volumes.clone(),
            network: self.network.clone(),
            seccomp: seccomp.to_string(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
        }
    }

    /// The conditions Docker evaluates profiles under for this container: its capabilities.
    pub fn context(&self) -> anyhow::Result<crate::seccomp::Context> {
        crate::seccomp::Context::with_caps(&self.cap_add, &self.cap_drop)
            .map_err(|e| anyhow::anyhow!("--cap-add/--cap-drop: {e}"))
    }
}

/// The longest `--duration`: a year.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `30s`, `2m`, `1h`, `500ms`, `1h 30m` (humantime's syntax), or plain seconds (`1.5`): more
/// than zero and at most a year.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = match s.parse::<f64>() {
        Ok(secs) if (0.0..=MAX_DURATION.as_secs_f64()).contains(&secs) => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => Duration::MAX,
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{s:?}: {e} (use e.g. 30s, 2m, 500ms, 1h)"))?,
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    if d > MAX_DURATION {
        return Err(format!("{s:?}: must be at most a year"));
    }
    Ok(d)
}

/// SIGINT and SIGTERM, caught for the whole command so that a container is never left behind.
pub struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    pub fn install() -> anyhow::Result<Self> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    /// Waits for the next signal; returns its number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }

    /// Runs `fut` unless a signal comes first.
    pub async fn guard<T>(
        &mut self,
        fut: impl std::future::Future<Output = T>,
    ) -> anyhow::Result<T> {
        tokio::select! {
            biased;
            sig = self.recv() => anyhow::bail!("interrupted by signal {sig}"),
            out = fut => Ok(out),
        }
    }
}

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
}

impl Stop {
    /// The report's `stopped_by`.
    pub fn label(self) -> Option<String> {
        match self {
            Stop::Exited => None,
            Stop::Duration => Some("duration".into()),
            Stop::Exercise => Some("exercise".into()),
            Stop::Interrupted(_) => Some("interrupted".into()),
            Stop::StartFailed => Some("start_failed".into()),
        }
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
}

impl Outcome {
    /// Whether the workload failed: it exited nonzero by itself, or the exercise failed or
    /// could not finish.
    pub fn failed(&self, exercised: bool) -> bool {
        match self.stop {
            Stop::Exited => self.exit_code != Some(0) || exercised,
            Stop::Exercise => self.exercise_code != Some(0),
            Stop::Duration => false,
            Stop::Interrupted(_) | Stop::StartFailed => true,
        }
    }
}

/// What every container-running command needs first: the Docker Engine (with the image
/// present) and the loaded recorder.
pub struct Prepared {
    pub engine: Engine,
    pub recorder: Recorder,
}

impl Prepared {
    /// Connects to the Docker Engine, makes sure the image is there and loads the recorder.
    pub async fn new(args: &ContainerArgs, interrupt: &mut Interrupt) -> anyhow::Result<Self> {
        cgroup::unified_root()?;
        let engine = Engine::connect().await?;
        interrupt.guard(engine.ensure_image(&args.image)).await??;
        let recorder = Recorder::load()?;
        Ok(Prepared { engine, recorder })
    }

    /// Runs of `args`'s container recorded in `mode`; `label` names them in the progress line.
    pub fn session<'a>(
        &'a self,
        args: &'a ContainerArgs,
        mode: Mode,
        label: &'a str,
    ) -> Session<'a> {
        Session {
            engine: &self.engine,
            recorder: &self.recorder,
            args,
            mode,
            label,
            strict_args: false,
        }
    }
}

/// A run to record: the connection, the recorder, how to run the container and how to record.
pub struct Session<'a> {
    pub engine: &'a Engine,
    pub recorder: &'a Recorder,
    pub args: &'a ContainerArgs,
    pub mode: Mode,
    /// Shown in the progress line, e.g. "training".
    pub label: &'a str,
    /// Learn ioctl's and prctl's arguments too.
    pub strict_args: bool,
}

impl Session<'_> {
    /// Creates, records and removes one container running under `seccomp` (a profile's JSON).
    /// `suffix` tells the containers of one command apart (`-run2`, `-verify`).
    pub async fn run(
        &self,
        seccomp: &str,
        suffix: &str,
        interrupt: &mut Interrupt,
    ) -> anyhow::Result<Outcome> {
        let name = self.args.name.clone().unwrap_or_else(default_name) + suffix;
        let spec = self.args.spec(&name, seccomp);
        let id = interrupt.guard(self.engine.create(&spec)).await??;
        log::info!("created container {name} ({})", &id[..12]);
        let result = self.record(&id, &name, interrupt).await;
        if self.args.keep {
            eprintln!("profile: kept container {name} ({})", &id[..12]);
        } else if let Err(err) = self.engine.remove(&id).await {
            eprintln!("profile: warning: could not remove container {name}: {err}");
        }
        result
    }

    async fn record(
        &self,
        id: &str,
        name: &str,
        interrupt: &mut Interrupt,
    ) -> anyhow::Result<Outcome> {
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
        outcome.snapshot = snapshot;
        Ok(outcome)
    }

    /// Starts the container and waits for the end of the run; the snapshot is left empty.
    async fn drive(
        &self,
        id: &str,
        name: &str,
        recording: &crate::recorder::Recording,
        interrupt: &mut Interrupt,
    ) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome {
            snapshot: Snapshot::default(),
            stop: Stop::StartFailed,
            exit_code: None,
            exercise_code: None,
            elapsed: Duration::ZERO,
            warnings: Vec::new(),
            container_name: name.to_string(),
        };
        let warnings = &mut outcome.warnings;
        let started = Instant::now();
        if let Err(err) = interrupt.guard(self.engine.start(id)).await? {
            // What ran before the failure (the runtime's calls under the filter) is kept:
            // `verify` names the denials that made the start fail.
            warnings.push(err.to_string());
            outcome.elapsed = started.elapsed();
            return Ok(outcome);
        }
        if self.recorder.cgroups(recording).is_empty() {
            self.watch_late(id, recording, warnings).await;
        }
        let logs = (!self.args.quiet).then(|| self.engine.forward_logs(id));
        let wait = self.engine.wait(id);
        tokio::pin!(wait);
        let mut exercise = match &self.args.exercise {
            Some(cmd) => Some(Box::pin(run_exercise(cmd, id, name)?)),
            None => None,
        };
        let deadline = async {
            match self.args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let progress = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let grace = Duration::from_secs(self.args.stop_timeout);
        let mut exercise_code = None;
        let (stop, exit_code) = loop {
            tokio::select! {
                biased;
                sig = interrupt.recv() => {
                    eprintln!("\nprofile: interrupted: stopping the container, writing what was recorded");
                    self.engine.kill(id).await?;
                    break (Stop::Interrupted(sig), None);
                }
                code = &mut wait => {
                    let code = code?;
                    if exercise.is_some() {
                        warnings.push(format!(
                            "the container exited ({code}) before the exercise finished"
                        ));
                    }
                    break (Stop::Exited, Some(code));
                }
                status = async { exercise.as_mut().expect("guarded").await }, if exercise.is_some() => {
                    let code = status?;
                    exercise_code = Some(code);
                    if code != 0 {
                        warnings.push(format!("the exercise command failed (exit {code})"));
                    }
                    self.engine.stop(id, grace).await?;
                    break (Stop::Exercise, Some((&mut wait).await?));
                }
                _ = &mut deadline => {
                    log::info!("--duration elapsed: stopping {name} with its stop signal");
                    self.engine.stop(id, grace).await?;
                    break (Stop::Duration, Some((&mut wait).await?));
                }
                _ = tick.tick(), if progress => {
                    let snap = self.recorder.snapshot(recording)?;
                    eprint!(
                        "\r\x1b[K{} {name}: {:>4.0}s, {} distinct syscalls, {} calls",
                        self.label,
                        started.elapsed().as_secs_f64(),
                        snap.syscalls.len(),
                        snap.total_calls()
                    );
                }
            }
        };
        if progress {
            eprint!("\r\x1b[K");
        }
        if let Some(logs) = logs {
            // The stream ends when the container stops; don't hang on a daemon that lingers.
            let _ = tokio::time::timeout(Duration::from_secs(2), logs).await;
        }
        outcome.stop = stop;
        outcome.exit_code = exit_code;
        outcome.exercise_code = exercise_code;
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// When the cgroup was not matched by name at creation (an unusual cgroup layout), watch
    /// it from now on by the id of the container's first process: what ran before is missed.
    async fn watch_late(
        &self,
        id: &str,
        recording: &crate::recorder::Recording,
        warnings: &mut Vec<String>,
    ) {
        let Some(pid) = self.engine.pid(id).await else {
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

fn default_name() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    format!("profile-{}-{secs}", std::process::id())
}

/// Starts the exercise command; the future resolves to its exit code. Its output goes to our
/// stderr, keeping stdout for the report.
fn run_exercise(
    cmd: &str,
    id: &str,
    name: &str,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<i32>> + use<>> {
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr for the exercise")?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("PROFILE_CONTAINER_ID", id)
        .env("PROFILE_CONTAINER_NAME", name)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .kill_on_drop(true)
        .spawn()
        .context("starting the exercise command with sh -c")?;
    Ok(async move {
        let status = child.wait().await.context("waiting for the exercise")?;
        Ok(crate::cli::run::exit_code(status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        for bad in [
            "",
            "s",
            "0",
            "0s",
            "-1s",
            "3x",
            "inf",
            "NaN",
            "400d",
            "99999999999999999999999",
            "99999999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
