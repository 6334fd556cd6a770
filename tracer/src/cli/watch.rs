//! `profile watch`: record every container an engine creates while it runs (a compose stack,
//! a test suite), and write one profile per image, compose service or container.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;

use super::{
    args::{ProfileFormatArgs, parse_duration},
    exit::ending,
};
use crate::{
    seccomp::LearnArgs,
    watch::{ContainerFilter, Per, WatchEngine, WatchNotice, WatchOptions, watch},
};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Record only containers that match (as `docker ps --filter`): label=KEY[=VALUE],
    /// name=NAME, image=IMAGE; repeat to require several. All containers by default.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<ContainerFilter>,
    /// Directory for the profiles and index.md / index.json.
    #[arg(short, long, value_name = "DIR", default_value = "profiles")]
    pub output: PathBuf,
    /// One profile per image (replicas and restarts merged), per compose service, or per
    /// container; with --engine cri, per workload (the default) or pod. Default: image
    /// (docker), workload (cri).
    #[arg(long, value_enum, value_name = "BY")]
    pub per: Option<Per>,
    /// Whose containers: `docker` (DOCKER_HOST; the default), or `cri[=SOCKET]`, a Kubernetes
    /// node's pods through the CRI runtime (containerd's socket by default, or CRI-O's).
    #[arg(long, value_name = "ENGINE", default_value = "docker")]
    pub engine: WatchEngine,
    /// Also record containers already running when watching begins, from then on (their
    /// profiles are marked incomplete).
    #[arg(long)]
    pub existing: bool,
    /// What the profiles of containers that ran without a seccomp filter stay within (their
    /// runtime's setup is never recorded): docker-default (the default), allow-all, or a
    /// profile file.
    #[arg(long, value_name = "BASE")]
    pub base: Option<String>,
    /// The node named in the index (--engine cri; default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Stop after this long (e.g. 30s, 5m). Without it and without CMD, until Ctrl-C.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the profiles so far this often, without stopping (SIGUSR1 does it once).
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub flush_every: Option<Duration>,
    /// Also allow every call the programs that ran can make, from their sound ceilings (each
    /// profile's image is read once, as `scan --image` reads it), within the bound: a path
    /// the watched containers never took can't be missed when every program that ran has
    /// one. The index's coverage names, per profile, what the ceilings hold that was never
    /// observed, with or without this. Docker engine only: the CRI exports no image.
    #[arg(long)]
    pub ceiling: bool,
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

pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    if args.ceiling && matches!(args.engine, WatchEngine::Cri(_)) {
        anyhow::bail!(
            "--ceiling and --engine cri contradict each other: the ceilings are read from the images, which the CRI does not export"
        );
    }
    let options = WatchOptions {
        output: args.output,
        filters: args.filters,
        per: args.per.unwrap_or(match args.engine {
            WatchEngine::Docker => Per::Image,
            WatchEngine::Cri(_) => Per::Workload,
        }),
        duration: args.duration,
        flush_every: args.flush_every,
        learn_args: args.learn_args,
        rendering: args.format.rendering(),
        command: args.command,
        node_name: args.node_name,
        unconfined_base: args
            .base
            .as_deref()
            .map(super::args::load_base)
            .transpose()?,
        engine: args.engine,
        existing: args.existing,
        ceiling: args.ceiling,
    };
    let watched = watch(&options, &show).await?;
    if watched.adoptions_lost > 0 {
        eprintln!(
            "profile: warning: {} container(s) started while the kernel's table of containers was full ({} at once) and were not recorded",
            watched.adoptions_lost,
            tracer_common::MAX_ADOPTED
        );
    }
    eprintln!(
        "profile: {} profile(s) from {} container(s) -> {}",
        watched
            .index
            .profiles
            .iter()
            .filter(|r| r.file.is_some())
            .count(),
        watched.containers,
        watched.index_path.display()
    );
    Ok(ending(watched.status, watched.why.as_deref()))
}

fn show(notice: WatchNotice<'_>) {
    eprintln!("profile: {notice}");
}
