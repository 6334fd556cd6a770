//! `profile scan`: the syscall ceiling of an image's executables, or of host files.
use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use clap::Args;

use super::{args::ReportFormat, container::PullArg};
use crate::scan;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["image", "files"])))]
pub struct ScanArgs {
    /// Scan this image's filesystem, exported by the Docker Engine (DOCKER_HOST); nothing runs.
    #[arg(long, value_name = "IMAGE", conflicts_with = "files")]
    pub image: Option<String>,
    /// Host files to scan; directories are searched for executables.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ReportFormat,
    /// When to pull the image, as docker run --pull: missing, never, always.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value_t,
        requires = "image"
    )]
    pub pull: PullArg,
}

pub async fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let result = match &args.image {
        Some(image) => {
            let engine = crate::docker::Engine::connect().await?;
            let scan = scan::scan_image(&engine, image, args.pull.pull()).await?;
            if let Some(notice) = scan.pulled_notice() {
                eprintln!("profile: {notice}");
            }
            scan
        }
        None => {
            let files = args.files.clone();
            tokio::task::spawn_blocking(move || scan::scan_files(&files))
                .await
                .context("scanning")??
        }
    };
    let bytes: u64 = result.binaries.iter().map(|b| b.size).sum();
    let secs = started.elapsed().as_secs_f64();
    log::info!(
        "scanned {} executable(s), {:.1} MiB, in {secs:.2} s ({:.2} s/MiB)",
        result.binaries.len(),
        bytes as f64 / 1048576.0,
        secs / (bytes as f64 / 1048576.0).max(1e-9)
    );
    crate::output::stdout(&args.format.render(&result)?)?;
    Ok(ExitCode::SUCCESS)
}
