//! `profile scan`: the syscall ceiling of an image's executables, or of host files.
use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use clap::Args;

use crate::{
    cli::report_cmd::ReportFormat,
    report::Render as _,
    scan::{self, Scan},
};

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
}

pub async fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let result = match &args.image {
        Some(image) => {
            let engine = crate::docker::Engine::connect().await?;
            scan::scan_image(&engine, image).await?
        }
        None => {
            let files = args.files.clone();
            tokio::task::spawn_blocking(move || scan_files(&files))
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
    let text = match args.format {
        ReportFormat::Text => result.text(),
        ReportFormat::Md => result.markdown(),
        ReportFormat::Json => result.json()?,
    };
    crate::output::stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Scans the files named, and the executables under the directories named.
fn scan_files(paths: &[PathBuf]) -> anyhow::Result<Scan> {
    let mut binaries = Vec::new();
    let mut pending: Vec<(PathBuf, bool)> = paths.iter().map(|p| (p.clone(), true)).collect();
    while let Some((path, named)) = pending.pop() {
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("{}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            pending.extend(children.into_iter().map(|c| (c, false)));
            continue;
        }
        use std::os::unix::fs::PermissionsExt as _;
        // Inside directories only executables count; a file named is scanned whatever it is.
        let executable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
        if !named && !executable {
            continue;
        }
        match scan::scan_file(&path)? {
            Some(binary) => binaries.push(binary),
            None if named => anyhow::bail!("{}: not an ELF file", path.display()),
            None => {}
        }
    }
    let target = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Scan::new(target, binaries))
}
