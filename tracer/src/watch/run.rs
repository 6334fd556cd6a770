//! A watch from start to end: every container the engine creates is recorded until a command
//! exits, a duration elapses or a signal comes; the profiles are written at the end, and on
//! SIGUSR1 or every `flush_every` while it goes on.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use futures_util::StreamExt as _;
use tokio::signal::unix::{SignalKind, signal};

use super::{
    containers::{ContainerFilter, Per, Tracked, Watcher},
    cri::CriWatcher,
    engine::{ContainerEngine, WatchEngine},
    images::Images,
};
use crate::{
    cri::CriError,
    docker::{DockerError, Engine},
    formats::{Rendering, WriteError},
    launch::exit_code,
    names::Abi,
    recorder::{Recorder, RecorderError, Snapshot},
    report::{self, Index, IndexRow, ProgramsRun, Report},
    runtime,
    scan::coverage::Ceilings,
    seccomp::{Base, Bound, LearnArgs, NotWithin},
    session::{Interrupt, SessionError},
    status::Status,
};

/// What to watch, and where the profiles go.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// The directory of the profiles and `index.md` / `index.json`.
    pub output: PathBuf,
    /// Only containers that match all of these.
    pub filters: Vec<ContainerFilter>,
    pub per: Per,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Write the profiles so far this often.
    pub flush_every: Option<Duration>,
    pub learn_args: LearnArgs,
    pub rendering: Rendering,
    /// A host command run while watching: watching stops when it exits.
    pub command: Vec<String>,
    /// Whose containers are watched.
    pub engine: WatchEngine,
    /// Also record containers already running when watching begins, from then on.
    pub existing: bool,
    /// The node named in the index (`--engine cri`).
    pub node_name: Option<String>,
    /// What the profiles of containers that ran without a filter stay within (default:
    /// Docker's default).
    pub unconfined_base: Option<Base>,
    /// Also allow the sound ceilings of the programs that ran (within the bound); their
    /// images are read through the Docker engine.
    pub ceiling: bool,
}

/// What a watch has to say while it goes on; the command line decides how to show it.
#[derive(Debug)]
pub enum WatchNotice<'a> {
    /// The kernel side adopts new containers and the engine's events are subscribed to.
    Watching,
    /// The CRI runtime whose pods are watched, and the runc it runs (`None`: unknown).
    Runtime {
        runtime: &'a str,
        socket: &'a Path,
        runc: Option<&'a str>,
    },
    /// An engine event could not be followed up (the container could not be inspected).
    EventFailed(&'a (dyn std::error::Error + 'static)),
}

/// A notice in words, as the terminal shows it.
impl std::fmt::Display for WatchNotice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WatchNotice::Watching => f.write_str(
                "watching containers (Ctrl-C to stop, SIGUSR1 to write the profiles so far)",
            ),
            WatchNotice::Runtime {
                runtime,
                socket,
                runc,
            } => write!(
                f,
                "pods of {runtime} at {}; {}",
                socket.display(),
                match runc {
                    Some(v) => format!("runc {v}"),
                    None => "runc's version unknown: profiles allow every measured runtime's tail"
                        .into(),
                }
            ),
            WatchNotice::EventFailed(err) => write!(f, "warning: {err}"),
        }
    }
}

/// Why a watch could not go on.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("creating {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Cri(#[from] CriError),
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    #[error("installing a signal handler: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Interrupt(#[from] SessionError),
    #[error("starting {command}: {source}")]
    Command {
        command: String,
        source: std::io::Error,
    },
    #[error("waiting for the command: {0}")]
    Wait(#[source] std::io::Error),
    #[error("{0}; the profiles so far were written")]
    EventsLost(String),
    #[error("{container}: {reason}")]
    Capabilities { container: String, reason: String },
    #[error(transparent)]
    NotWithin(#[from] NotWithin),
    #[error(transparent)]
    Profile(#[from] WriteError),
    #[error(transparent)]
    Index(#[from] report::ReportError),
}

/// What a watch wrote.
#[derive(Clone, Debug)]
pub struct Watched {
    /// One row per profile.
    pub index: Index,
    /// Where the Markdown index is.
    pub index_path: PathBuf,
    /// The containers recorded.
    pub containers: usize,
    /// The command's exit status, the signal that ended the watch, or success at the
    /// duration's end.
    pub status: Status,
    /// The `--filter`s that matched no container (`image=app`).
    pub unmatched_filters: Vec<String>,
    /// Containers that started while the kernel's table of adopted cgroups was full: not
    /// recorded at all.
    pub adoptions_lost: u32,
    /// Why `status` is not success, in one line.
    pub why: Option<String>,
}

/// Watches until the command exits, the duration elapses or SIGINT/SIGTERM; then writes one
/// profile per group and the index.
pub async fn watch(
    options: &WatchOptions,
    observer: &(dyn Fn(WatchNotice<'_>) + Sync),
) -> Result<Watched, WatchError> {
    // Nothing is created before everything missing is named.
    let engine_missing = match &options.engine {
        WatchEngine::Docker => crate::docker::missing_privileges(),
        WatchEngine::Cri(_) => None,
    };
    Recorder::require_privileges(engine_missing)?;
    match &options.engine {
        WatchEngine::Docker => {
            let engine = Engine::connect().await?;
            let recorder = Recorder::load_with(1, tracer_common::MAX_ADOPTED)?;
            make_directory(&options.output)?;
            let mut w = Watcher::new(recorder, engine, options.filters.clone());
            if options.existing {
                w.adopt_existing().await?;
            }
            watch_with(w, options, observer).await
        }
        WatchEngine::Cri(socket) => {
            let options = &WatchOptions {
                node_name: Some(options.node_name.clone().unwrap_or_else(super::hostname)),
                ..options.clone()
            };
            let (cri, version) = crate::cri::Cri::connect(socket).await?;
            let recorder = Recorder::load_with(1, tracer_common::MAX_ADOPTED)?;
            make_directory(&options.output)?;
            let w = CriWatcher::new(recorder, cri, &options.filters, options.existing).await?;
            observer(WatchNotice::Runtime {
                runtime: &version,
                socket,
                runc: w.runc(),
            });
            watch_with(w, options, observer).await
        }
    }
}

/// The output directory itself, as `mkdir` makes it: a typo above it is not made into a tree.
fn make_directory(output: &std::path::Path) -> Result<(), WatchError> {
    if output.is_dir() {
        return Ok(());
    }
    std::fs::create_dir(output).map_err(|source| WatchError::Directory {
        path: output.to_path_buf(),
        source,
    })
}

/// Watches `w`'s engine (see [`watch`]).
async fn watch_with<E: ContainerEngine>(
    mut w: E,
    options: &WatchOptions,
    observer: &(dyn Fn(WatchNotice<'_>) + Sync),
) -> Result<Watched, WatchError> {
    // Subscribed before anything runs: no container start is missed.
    let mut events = w.events();
    let mut interrupt = Interrupt::install()?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(WatchError::Signals)?;
    let mut images = Images::default();
    let mut child = match options.command.split_first() {
        Some((cmd, rest)) => Some(
            tokio::process::Command::new(cmd)
                .args(rest)
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| WatchError::Command {
                    command: cmd.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let deadline = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let flush_every = options
        .flush_every
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut flush =
        tokio::time::interval_at(tokio::time::Instant::now() + flush_every, flush_every);
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    observer(WatchNotice::Watching);
    let status = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(e)) => {
                    if let Err(err) = w.on_event(&e).await {
                        observer(WatchNotice::EventFailed(&err));
                    }
                }
                Some(Err(err)) => {
                    w.finish();
                    write_all(&w, options, &mut images, &mut interrupt).await?;
                    return Err(WatchError::EventsLost(format!("lost the engine's events ({err})")));
                }
                None => {
                    w.finish();
                    write_all(&w, options, &mut images, &mut interrupt).await?;
                    return Err(WatchError::EventsLost("the engine ended its event stream".into()));
                }
            },
            status = async { child.as_mut().expect("guarded").wait().await }, if child.is_some() => {
                break Status::Exited(exit_code(status.map_err(WatchError::Wait)?));
            }
            sig = interrupt.recv() => break Status::Interrupted(sig),
            _ = usr1.recv() => {
                write_all(&w, options, &mut images, &mut interrupt).await?;
                if let Some(sig) = images.interrupted {
                    break Status::Interrupted(sig);
                }
            }
            _ = flush.tick(), if options.flush_every.is_some() => {
                write_all(&w, options, &mut images, &mut interrupt).await?;
                if let Some(sig) = images.interrupted {
                    break Status::Interrupted(sig);
                }
            }
            _ = sweep.tick() => w.forget_unclaimed(),
            _ = &mut deadline => break Status::Success,
        }
    };
    // Containers the command stopped at its end report their deaths a moment later.
    let drain = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(drain);
    loop {
        tokio::select! {
            Some(Ok(e)) = events.next() => {
                if let Err(err) = w.on_event(&e).await {
                    observer(WatchNotice::EventFailed(&err));
                }
            }
            _ = &mut drain => break,
        }
    }
    w.finish();
    // A signal that ended a read during a flush is the first: the last write reads again.
    images.interrupted = None;
    let index = write_all(&w, options, &mut images, &mut interrupt).await?;
    let unmatched_filters = w.unmatched_filters();
    let (status, why) = unmatched(status, &unmatched_filters);
    Ok(Watched {
        index,
        index_path: options.output.join("index.md"),
        containers: w.tracked().len(),
        status,
        unmatched_filters,
        adoptions_lost: w.recorder().adoptions_lost(),
        why,
    })
}

/// A watch that would end well but whose filter matched no container fails, so that CI sees
/// a filter that selects nothing (a misspelt image, a renamed service).
fn unmatched(status: Status, filters: &[String]) -> (Status, Option<String>) {
    if filters.is_empty() || !matches!(status, Status::Success | Status::Exited(0)) {
        return (status, None);
    }
    let which: Vec<String> = filters.iter().map(|f| format!("--filter {f}")).collect();
    (
        Status::WorkloadFailed,
        Some(format!(
            "{} matched no container: nothing was recorded for {}",
            which.join(", "),
            match filters.len() {
                1 => "it",
                _ => "them",
            }
        )),
    )
}

/// Writes one profile per group and the index; the images whose programs ran are read first
/// (once for the whole watch), unless a signal ended a read.
async fn write_all(
    w: &impl ContainerEngine,
    options: &WatchOptions,
    images: &mut Images,
    interrupt: &mut Interrupt,
) -> Result<Index, WatchError> {
    let mut groups: BTreeMap<String, Vec<&Tracked>> = BTreeMap::new();
    for t in w.tracked().values() {
        groups
            .entry(options.per.group(&t.info))
            .or_default()
            .push(t);
    }
    let mut index = Index {
        node: options.node_name.clone(),
        ..Index::default()
    };
    for (group, members) in groups {
        let mut snap = Snapshot::default();
        for t in &members {
            snap.merge(&t.recorded(w.recorder()));
        }
        let ceilings = images
            .ceilings(w.images(), &members, &snap, interrupt)
            .await;
        index
            .profiles
            .push(write_group(&snap, ceilings, &group, &members, options)?);
    }
    report::write(&options.output.join("index.json"), &index)?;
    report::write(&options.output.join("index.md"), &index)?;
    Ok(index)
}

/// Learns and writes the profile of one group from what its containers recorded (`snap`)
/// and the ceilings of the programs they ran (or why those are unknown); returns its index
/// row.
fn write_group(
    snap: &Snapshot,
    ceilings: Result<Option<Ceilings>, String>,
    group: &str,
    members: &[&Tracked],
    options: &WatchOptions,
) -> Result<IndexRow, WatchError> {
    let notes: Vec<String> = members
        .iter()
        .flat_map(|t| t.incomplete.iter().map(|n| format!("{}: {n}", t.info.name)))
        .collect();
    let mut images: Vec<String> = members.iter().map(|t| t.info.image.clone()).collect();
    images.sort();
    images.dedup();
    let mut row = IndexRow {
        profile: group.to_string(),
        file: None,
        images,
        containers: members.iter().map(|t| t.info.name.clone()).collect(),
        runs: members.iter().map(|t| t.runs).sum(),
        allowed: 0,
        docker_default_allowed: 0,
        reduction_vs_docker_default_percent: 0.0,
        complete: notes.is_empty(),
        runtimes: {
            let mut r: Vec<String> = members.iter().map(|t| t.runtime.to_string()).collect();
            r.sort();
            r.dedup();
            r
        },
        security_context: None,
        ran: ProgramsRun::default(),
        runtime_calls: snap
            .runtime
            .keys()
            .filter_map(|nr| Abi::X86_64.name(*nr))
            .map(String::from)
            .collect(),
        notes,
    };
    let first = members[0];
    let bound = match (&first.base, &options.unconfined_base) {
        (None, Some(base)) => Bound {
            label: format!("{} (the container ran unconfined)", base.label()),
            ..base.bound(false)
        },
        _ => first.bound(),
    };
    if snap.is_empty() {
        row.notes.push("nothing was recorded".into());
        row.complete = false;
        return Ok(row);
    }
    let ctx = first.context().map_err(|reason| WatchError::Capabilities {
        container: first.info.name.clone(),
        reason,
    })?;
    // The tails of the runtimes the group's containers ran with: every start needs its own.
    let mut runtimes: Vec<&runtime::Runtime> = Vec::new();
    for t in members {
        if !runtimes.contains(&&t.runtime) {
            runtimes.push(&t.runtime);
        }
    }
    let tail = runtime::tail_of(&runtimes);
    let mut obs = snap.observation();
    obs.required = tail.calls.clone();
    let (ceilings, unknown) = match ceilings {
        Ok(c) => (c, None),
        Err(why) => (None, Some(why)),
    };
    if options.ceiling
        && let Some(c) = &ceilings
    {
        obs.ceiling = c.sound.clone();
    }
    let mut learned = bound.learn(&obs, &ctx, options.learn_args)?;
    let derived = bound.derive(&mut learned.profile, &options.rendering.arches, &ctx)?;
    let mut report = Report::new(group, false, snap, &learned, &bound.label);
    report.add_coverage(
        ceilings.map(|c| c.coverage),
        options.ceiling,
        snap,
        &learned,
        &ctx,
    );
    report.warnings.extend(unknown);
    let file = file_name(group, options.per, options.rendering.extension());
    let path = options.output.join(&file);
    let written = options.rendering.written_as(Some(&path));
    report.for_arches(&learned.profile, &derived, written);
    // A Kubernetes workload's SeccompProfile goes into its namespace, labelled after it.
    let rendering = match super::pods::manifest_labels(&first.info.labels) {
        Some((namespace, labels)) => &Rendering {
            k8s_namespace: Some(namespace),
            k8s_labels: labels,
            ..options.rendering.clone()
        },
        None => &options.rendering,
    };
    rendering.write(Some(&path), &learned.profile, Some(path_stem(&path)))?;
    if options.node_name.is_some() && options.engine != WatchEngine::Docker {
        row.security_context = Some(super::pods::security_context(
            &file,
            options.rendering.format,
            first
                .info
                .labels
                .get(super::pods::NAMESPACE)
                .map(String::as_str),
        ));
    }
    row.file = Some(file);
    row.allowed = report.allowed;
    row.docker_default_allowed = report.docker_default_allowed;
    row.reduction_vs_docker_default_percent = report.reduction_vs_docker_default_percent;
    row.notes.extend(report.warnings);
    row.notes.extend(tail.note);
    row.ran = report.ran;
    Ok(row)
}

fn path_stem(path: &Path) -> &str {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("profile")
}

/// `<repo>-<tag>.json` for an image (as `train` names it), the group name otherwise.
fn file_name(group: &str, per: Per, extension: &str) -> String {
    let stem = if per == Per::Image
        || !group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        crate::docker::default_profile_path(group)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "profile".into())
    } else {
        group.to_string()
    };
    format!("{stem}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            file_name("shop/web:1.0", Per::Image, "json"),
            "shop-web-1.0.json"
        );
        assert_eq!(file_name("p-web", Per::Service, "json"), "p-web.json");
        assert_eq!(
            file_name("odd/name", Per::Container, "yaml"),
            "odd-name-latest.yaml"
        );
    }
}
