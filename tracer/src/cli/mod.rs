//! The `profile` command line: flags are parsed here and handed to the engine as plain values.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

use crate::{output, report::Report, seccomp::Profile};

pub mod container;
pub mod exec;
pub mod run;
pub mod train;

/// Learn a container's seccomp profile by watching the syscalls it makes.
///
/// Syscalls are counted in the kernel by an eBPF program on the raw_syscalls tracepoints, per
/// cgroup, from the moment the workload's seccomp filter is installed: the container runtime's
/// own setup calls are never granted. Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN).
#[derive(Debug, Parser)]
#[command(name = "profile", version, propagate_version = true)]
pub struct Cli {
    /// More log output (--verbose: info, twice: debug).
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Learn an image's profile: run it under Docker with an allow-all filter, record every
    /// syscall its processes make under that filter, write the minimal profile and a report of
    /// the reduction against Docker's default.
    ///
    /// Exit status: 0 done; 1 the workload exited nonzero by itself or the exercise failed (the
    /// profile and report are still written); 2 error (nothing written); 128+N interrupted by
    /// signal N (what was recorded is written, marked partial).
    Train(Box<train::TrainArgs>),
    /// Run a command in a fresh cgroup under an allow-all seccomp filter and record its profile.
    Run(run::RunArgs),
    /// Run a command with a profile enforced (allow-list profiles on x86_64), to try a profile
    /// without a container runtime.
    Exec(exec::ExecArgs),
}

/// What is recorded and where the report goes: shared by the recording commands.
#[derive(Clone, Debug, clap::Args)]
pub struct RecordArgs {
    /// Write the report here: .json for JSON, .md for Markdown, anything else as text.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Count every syscall in the cgroup, the runtime's own setup included, not only those made
    /// under the seccomp filter (for comparison: such a profile grants calls no filter checks).
    #[arg(long)]
    pub all_syscalls: bool,
}

impl RecordArgs {
    pub fn mode(&self) -> crate::recorder::Mode {
        if self.all_syscalls {
            crate::recorder::Mode::AllSyscalls
        } else {
            crate::recorder::Mode::UnderFilter
        }
    }
}

/// Exit status for errors of the tool itself (not of the workload).
pub const EXIT_ERROR: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("profile: error: starting the runtime: {err}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Train(args) => train::train(*args).await,
            Command::Run(args) => run::run(args).await,
            Command::Exec(args) => exec::exec(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("profile: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Report formats, chosen by the file name's extension.
pub fn write_report(path: &Path, report: &Report) -> crate::Result<()> {
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => report.to_json(),
        Some("md") | Some("markdown") => report.to_markdown(),
        _ => report.to_text(),
    };
    output::write_atomic(path, text.as_bytes())
}

/// Writes the profile to `path`, or to stdout without one.
pub fn write_profile(path: Option<&PathBuf>, profile: &Profile) -> crate::Result<()> {
    let json = profile.to_json();
    match path {
        Some(path) => output::write_atomic(path, json.as_bytes()),
        None => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            out.write_all(json.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| crate::Error::io("<stdout>", e))
        }
    }
}
