//! The `docker run` options `train` and `verify` share, resolved into the session's plain
//! [`RunOptions`], and how a run's notices are shown on the terminal.
use std::{io::IsTerminal as _, time::Duration};

use clap::Args;

use super::args::{parse_duration, parse_grace};
use crate::{
    docker::{self, ContainerSpec, PortSpec, Pull},
    progress::Progress,
    session::{Notice, ProbeOptions, ReadyOptions, RunOptions},
};

/// Whether the built-in HTTP probe exercises the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeKind {
    Http,
    None,
}

/// When an image is pulled: `--pull` of train, verify and scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullArg {
    #[default]
    Missing,
    Never,
    Always,
}

impl PullArg {
    pub fn pull(self) -> Pull {
        match self {
            PullArg::Missing => Pull::Missing,
            PullArg::Never => Pull::Never,
            PullArg::Always => Pull::Always,
        }
    }
}

/// How the container runs: the `docker run` options `train` and `verify` share.
#[derive(Clone, Debug, Args)]
pub struct ContainerArgs {
    /// The image to run.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// When to pull the image, as docker run --pull: missing (when it is not present
    /// locally), never (refuse an image that is not present), always.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t)]
    pub pull: PullArg,
    /// Stop the container after this long (e.g. 30s, 2m, 500ms): the image's stop signal,
    /// then SIGKILL after --stop-timeout. Without it, recording lasts until the container exits.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// A host command (run with sh -c) that exercises the container; recording stops when it
    /// finishes. It starts once the container is ready (see --ready-timeout), with
    /// PROFILE_CONTAINER_ID, PROFILE_CONTAINER_NAME and PROFILE_PORT_<container port> (the
    /// host port) in its environment. If it fails, or --duration cuts it off, the command
    /// exits 1 (train still writes the profile; verify fails).
    #[arg(long, value_name = "CMD")]
    pub exercise: Option<String>,
    /// How long the exercise waits for the container to be ready: healthy when it has a health
    /// check (the image's HEALTHCHECK or --health-cmd), otherwise every published TCP port
    /// taking connections that the container keeps open. On expiry: exit 1, nothing written.
    #[arg(long, value_name = "D", value_parser = parse_duration, default_value = "60s")]
    pub ready_timeout: Duration,
    /// Start the exercise at once, without waiting for the container to be ready.
    #[arg(long)]
    pub no_wait: bool,
    /// A health check (run with sh -c in the container, every second) that tells when the
    /// container is ready for the exercise; replaces the image's HEALTHCHECK.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// The built-in HTTP probe: once the container is ready, request `/` on every published
    /// TCP port that speaks HTTP or HTTPS (on 127.0.0.1 only), follow same-origin links (depth
    /// 3, 200 requests), send HEAD, OPTIONS, a 404, a POST, a range, gzip, keep-alive and
    /// closed-connection requests, then stop the container gracefully. Default: http when
    /// ports are published and there is no --exercise.
    #[arg(long, value_enum, value_name = "KIND")]
    pub probe: Option<ProbeKind>,
    /// A path the probe requests too (repeatable).
    #[arg(long = "probe-url", value_name = "PATH")]
    pub probe_urls: Vec<String>,
    /// Container name (default: profile-<pid>-<time>).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Set an environment variable in the container (KEY=VALUE, or KEY to pass this one's).
    #[arg(short = 'e', long = "env", value_name = "K=V", value_parser = docker::env_entry)]
    pub env: Vec<String>,
    /// Publish a container port: [[IP:]HOST_PORT:]CONTAINER_PORT[/PROTO] (without a host
    /// port, Docker picks one, as `docker run -p 8080` does).
    #[arg(short = 'p', long = "publish", value_name = "[[IP:]HOST:]CTR")]
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
    /// How long the container has between its stop signal and SIGKILL (e.g. 20s, 1m; plain
    /// seconds too; 0 for none; Docker counts whole seconds, so a fraction is rounded up).
    #[arg(long, value_name = "D", value_parser = parse_grace, default_value = "10s")]
    pub stop_timeout: Duration,
    /// Say less: the container's output is not copied to stderr, and train prints its
    /// warnings and one closing line instead of the report (--report still writes it).
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
    /// What the session runs: the container (each run names it and sets its profile) and
    /// how its runs end.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            container: ContainerSpec {
                image: self.image.clone(),
                cmd: self.command.clone(),
                entrypoint: self.entrypoint.clone(),
                env: self.env.clone(),
                user: self.user.clone(),
                ports: self.publish.clone(),
                volumes: self.volumes.clone(),
                network: self.network.clone(),
                cap_add: self.cap_add.clone(),
                cap_drop: self.cap_drop.clone(),
                health_cmd: self.health_cmd.clone(),
                ..Default::default()
            },
            pull: self.pull.pull(),
            name: self.name.clone(),
            duration: self.duration,
            timeout: None,
            exercise: self.exercise.clone(),
            probe: self.probe_options(),
            ready: ReadyOptions {
                wait: !self.no_wait,
                timeout: self.ready_timeout,
            },
            stop_timeout: self.stop_timeout,
            forward_logs: !self.quiet,
            keep: self.keep,
            progress: std::io::stderr().is_terminal(),
            observe_rootfs: false,
        }
    }

    /// Refuses options that contradict each other, so that none is ignored silently: the
    /// probe never runs with an exercise, and has nothing to request without a published TCP
    /// port.
    pub fn check(&self) -> anyhow::Result<()> {
        let probe_asked = self.probe == Some(ProbeKind::Http);
        let urls = !self.probe_urls.is_empty();
        if self.exercise.is_some() && (probe_asked || urls) {
            anyhow::bail!(
                "{} and --exercise contradict each other: the exercise replaces the HTTP probe, which would never run; give one of them",
                if probe_asked {
                    "--probe http"
                } else {
                    "--probe-url"
                }
            );
        }
        if urls && self.probe == Some(ProbeKind::None) {
            anyhow::bail!(
                "--probe-url and --probe none contradict each other: without the probe, nothing requests the paths"
            );
        }
        let tcp = self.publish.iter().any(|p| p.container.ends_with("/tcp"));
        if (probe_asked || urls) && !tcp {
            anyhow::bail!(
                "{} needs a published TCP port to request (-p [[IP:]HOST:]CTR): none is published",
                if probe_asked {
                    "--probe http"
                } else {
                    "--probe-url"
                }
            );
        }
        Ok(())
    }

    /// The HTTP probe, when it runs: asked for, or by default when ports are published and
    /// there is no exercise.
    fn probe_options(&self) -> Option<ProbeOptions> {
        let on = match self.probe {
            Some(ProbeKind::Http) => self.exercise.is_none(),
            Some(ProbeKind::None) => false,
            None => self.exercise.is_none() && !self.publish.is_empty(),
        };
        on.then(|| ProbeOptions {
            paths: self.probe_urls.clone(),
            ..ProbeOptions::default()
        })
    }

    /// The conditions Docker evaluates profiles under for this container: its capabilities.
    pub fn context(&self) -> anyhow::Result<crate::seccomp::Context> {
        crate::seccomp::Context::with_caps(&self.cap_add, &self.cap_drop)
            .map_err(|e| anyhow::anyhow!("--cap-add/--cap-drop: {e}"))
    }
}

/// The progress line of the run going on, while there is one.
static LINE: std::sync::Mutex<Option<(String, Progress)>> = std::sync::Mutex::new(None);

/// Shows a run's notices on stderr: the progress line (on a terminal; indicatif draws it) and,
/// above it, what happens to the container.
pub fn show(notice: Notice<'_>) {
    let mut line = LINE.lock().unwrap_or_else(|e| e.into_inner());
    match &notice {
        Notice::Progress { label, name, .. } => {
            let prefix = format!("{label} {name}");
            if line.as_ref().is_none_or(|(p, _)| *p != prefix) {
                *line = Some((prefix.clone(), Progress::new(&prefix)));
            }
            if let Some((_, progress)) = line.as_ref() {
                progress.message(notice.to_string());
            }
        }
        Notice::ProgressDone => drop(line.take()),
        _ => match line.as_ref() {
            Some((_, progress)) => progress.eprintln(&format!("profile: {notice}")),
            None => eprintln!("profile: {notice}"),
        },
    }
}
