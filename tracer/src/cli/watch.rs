//! `profile watch`: record every container an engine creates while it runs (a compose stack,
//! a test suite), and write one profile per image, compose service or container.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::{ProfileFormatArgs, container::parse_duration},
    docker::Engine,
    launch::exit_code,
    output,
    recorder::{Recorder, Snapshot},
    report::Report,
    seccomp::{LearnArgs, Profile, learn::learn_checked},
    watch::{Base, Filter, Per, Tracked, Watch},
};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Record only containers that match (as `docker ps --filter`): label=KEY[=VALUE],
    /// name=NAME, image=IMAGE; repeat to require several. All containers by default.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<Filter>,
    /// Directory for the profiles and index.md / index.json.
    #[arg(short, long, value_name = "DIR", default_value = "profiles")]
    pub output: PathBuf,
    /// One profile per image (replicas and restarts merged), per compose service, or per
    /// container.
    #[arg(long, value_enum, default_value_t, value_name = "BY")]
    pub per: Per,
    /// Stop after this long (e.g. 30s, 5m). Without it and without CMD, until Ctrl-C.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the profiles so far this often, without stopping (SIGUSR1 does it once).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub flush_every: Option<Duration>,
    /// Which syscall arguments are learned in the kernel (see `train --help`).
    #[arg(long, value_enum, default_value_t, value_name = "SET")]
    pub learn_args: LearnArgs,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    /// A host command to run while watching (e.g. `docker-compose up
    /// --abort-on-container-exit`); watching stops when it exits, with its exit status.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// One row of the index: a profile and what it was learned from.
#[derive(Clone, Debug, Serialize)]
struct IndexRow {
    profile: String,
    file: Option<String>,
    images: Vec<String>,
    containers: Vec<String>,
    runs: u32,
    allowed: usize,
    docker_default_allowed: usize,
    reduction_vs_docker_default_percent: f64,
    complete: bool,
    /// Calls the container runtime made under the filter before it handed over to the
    /// workload (all containers of the profile together).
    runtime_calls: Vec<String>,
    notes: Vec<String>,
}

pub async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let engine = Engine::connect().await?;
    let recorder = Recorder::load_with(1, tracer_common::MAX_ADOPTED)?;
    let mut w = Watch::new(recorder, engine, args.filters.clone());
    // Subscribed before anything runs: no container start is missed.
    let mut events = Box::pin(w.events());
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut child = match args.command.split_first() {
        Some((cmd, rest)) => Some(
            tokio::process::Command::new(cmd)
                .args(rest)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {cmd}"))?,
        ),
        None => None,
    };
    let deadline = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let flush_every = args
        .flush_every
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut flush =
        tokio::time::interval_at(tokio::time::Instant::now() + flush_every, flush_every);
    let mut sweep = tokio::time::interval(Duration::from_secs(5));
    eprintln!(
        "profile: watching containers (Ctrl-C to stop, SIGUSR1 to write the profiles so far)"
    );
    let code = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(e)) => {
                    if let Err(err) = w.on_event(&e).await {
                        eprintln!("profile: warning: {err}");
                    }
                }
                Some(Err(err)) => {
                    w.finish();
                    write_all(&w, &args)?;
                    anyhow::bail!("lost the engine's events ({err}); the profiles so far were written");
                }
                None => {
                    w.finish();
                    write_all(&w, &args)?;
                    anyhow::bail!("the engine ended its event stream; the profiles so far were written");
                }
            },
            status = async { child.as_mut().expect("guarded").wait().await }, if child.is_some() => {
                break exit_code(status.context("waiting for the command")?);
            }
            _ = int.recv() => break 128 + libc::SIGINT,
            _ = term.recv() => break 128 + libc::SIGTERM,
            _ = usr1.recv() => {
                write_all(&w, &args)?;
            }
            _ = flush.tick(), if args.flush_every.is_some() => {
                write_all(&w, &args)?;
            }
            _ = sweep.tick() => w.forget_unclaimed(),
            _ = &mut deadline => break 0,
        }
    };
    // Containers the command stopped at its end report their deaths a moment later.
    let drain = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(drain);
    loop {
        tokio::select! {
            Some(Ok(e)) = events.next() => {
                if let Err(err) = w.on_event(&e).await {
                    eprintln!("profile: warning: {err}");
                }
            }
            _ = &mut drain => break,
        }
    }
    w.finish();
    let rows = write_all(&w, &args)?;
    eprintln!(
        "profile: {} profile(s) from {} container(s) -> {}",
        rows.iter().filter(|r| r.file.is_some()).count(),
        w.tracked.len(),
        args.output.join("index.md").display()
    );
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Writes one profile per group and the index; returns the index rows.
fn write_all(w: &Watch, args: &WatchArgs) -> anyhow::Result<Vec<IndexRow>> {
    let mut groups: BTreeMap<String, Vec<&Tracked>> = BTreeMap::new();
    for t in w.tracked.values() {
        groups.entry(t.info.group(args.per)).or_default().push(t);
    }
    let mut rows = Vec::new();
    for (group, members) in groups {
        rows.push(write_group(&w.recorder, &group, &members, args)?);
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "profiles": rows }))?;
    output::write_atomic(
        &args.output.join("index.json"),
        format!("{json}\n").as_bytes(),
    )?;
    output::write_atomic(
        &args.output.join("index.md"),
        index_markdown(&rows).as_bytes(),
    )?;
    Ok(rows)
}

fn write_group(
    recorder: &Recorder,
    group: &str,
    members: &[&Tracked],
    args: &WatchArgs,
) -> anyhow::Result<IndexRow> {
    let mut snap = Snapshot::default();
    let mut notes = Vec::new();
    for t in members {
        snap.merge(&t.recorded(recorder));
        notes.extend(t.incomplete.iter().map(|n| format!("{}: {n}", t.info.name)));
    }
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
        runtime_calls: snap
            .runtime
            .keys()
            .filter_map(|nr| crate::names::Abi::X86_64.name(*nr))
            .map(String::from)
            .collect(),
        notes,
    };
    let first = members[0];
    let (bound, label) = match &first.info.base {
        Base::Default => (Profile::docker_default(), "docker-default".to_string()),
        Base::Profile(p) => ((**p).clone(), format!("{}'s profile", first.info.name)),
        Base::Unconfined => (
            Profile::docker_default(),
            "docker-default (the container ran unconfined)".to_string(),
        ),
    };
    if snap.is_empty() {
        row.notes.push("nothing was recorded".into());
        row.complete = false;
        return Ok(row);
    }
    let ctx = first
        .info
        .context()
        .map_err(|e| anyhow::anyhow!("{}: {e}", first.info.name))?;
    let tail = crate::runtime::tail(&first.info.runtime);
    let mut obs = snap.observation();
    obs.required = tail.calls.clone();
    let mut learned = learn_checked(&obs, &bound, &label, &ctx, args.learn_args)?;
    let derived = (args.format).derive(&mut learned.profile, &bound, &label, &ctx)?;
    let mut report = Report::new(group, false, &snap, &learned, &label);
    let file = file_name(group, args.per, args.format.extension());
    let path = args.output.join(&file);
    let written = args.format.written_as(Some(&path));
    report.for_arches(&learned.profile, &derived, written);
    args.format
        .write(Some(&path), &learned.profile, Some(path_stem(&path)))?;
    row.file = Some(file);
    row.allowed = report.allowed;
    row.docker_default_allowed = report.docker_default_allowed;
    row.reduction_vs_docker_default_percent = report.reduction_vs_docker_default_percent;
    row.notes.extend(report.warnings);
    row.notes.extend(tail.note);
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

fn index_markdown(rows: &[IndexRow]) -> String {
    let mut out = String::from("# Profiles learned by `profile watch`\n\n");
    let _ = writeln!(
        out,
        "| profile | images | containers | runs | syscalls allowed | vs Docker's default | complete |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.file
                .as_deref()
                .map(|f| format!("[{}]({f})", r.profile))
                .unwrap_or_else(|| r.profile.clone()),
            r.images.join(", "),
            r.containers.len(),
            r.runs,
            r.allowed,
            crate::report::fewer_or_more(r.reduction_vs_docker_default_percent),
            if r.complete { "yes" } else { "no" }
        );
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| format!("- {}: {n}", r.profile)))
        .collect();
    if !notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
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
