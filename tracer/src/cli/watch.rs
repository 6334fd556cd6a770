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
    watch::{ContainerFilter, Per, WatchNotice, WatchOptions, watch},
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

pub async fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let options = WatchOptions {
        output: args.output,
        filters: args.filters,
        per: args.per,
        duration: args.duration,
        flush_every: args.flush_every,
        learn_args: args.learn_args,
        rendering: args.format.rendering(),
        command: args.command,
    };
    let watched = watch(&options, &show).await?;
    for filter in &watched.unmatched_filters {
        eprintln!("profile: warning: --filter {filter} matched no container");
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
    Ok(ending(watched.status, None))
}

fn show(notice: WatchNotice<'_>) {
    eprintln!("profile: {notice}");
}
