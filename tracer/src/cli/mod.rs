//! The `profile` command line: each subcommand's flags (one file each) become the library's
//! plain options, the library does the work, and the outcome is printed and mapped to an exit
//! status here.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{launch::LaunchError, output, privileges, session::SessionError, status::Status};

mod absorb;
mod args;
pub mod completions;
mod container;
mod convert;
mod diff;
mod exec;
mod exit;
mod merge;
mod report;
mod run;
mod scan;
mod train;
mod verify;
mod watch;

pub use exit::EXIT_ERROR;

/// `--version`: the release, the commit it was built from, the SHA-256 of the embedded eBPF
/// object and the target it was built for.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit ",
    env!("PROFILE_COMMIT"),
    "\nebpf sha256 ",
    env!("PROFILE_EBPF_SHA256"),
    "\ntarget ",
    env!("PROFILE_TARGET"),
);

/// Learn a container's seccomp profile by watching the syscalls it makes.
///
/// Syscalls are counted in the kernel by an eBPF program on the raw_syscalls tracepoints, per
/// cgroup, from the moment the workload's seccomp filter is installed: the container runtime's
/// own setup calls are never granted. Needs root (or CAP_BPF, CAP_PERFMON and read access to
/// tracefs; `run` also CAP_DAC_OVERRIDE, `train` and `verify` the Docker socket).
#[derive(Debug, Parser)]
#[command(name = "profile", version, long_version = LONG_VERSION, propagate_version = true)]
pub struct Cli {
    /// More log output (--verbose: info, twice: debug).
    #[arg(long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Give every file written this owner (a numeric UID, or UID:GID): the files a root
    /// `profile` in a container writes into a mounted folder then belong to the host's user.
    #[arg(long, global = true, env = "PROFILE_OWNER", value_name = "UID[:GID]")]
    pub owner: Option<output::FileOwner>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Learn an image's profile: run it under Docker with its base profile (Docker's default
    /// unless --base), record every syscall its processes make under that filter, write the
    /// minimal profile within the base and a report of the reduction against Docker's default.
    ///
    /// Exit status: 0 done; 1 the workload exited nonzero by itself, the exercise failed or was
    /// cut off by --duration (the profile and report are still written), or the container was
    /// never ready for the exercise (nothing written); 2 error (nothing written), or the Docker
    /// daemon went away mid-run (what was recorded is written, marked partial); 128+N
    /// interrupted by signal N (what was recorded is written, marked partial).
    Train(Box<train::TrainArgs>),
    /// Run an image under a profile, enforced, and name every syscall the profile denied
    /// (name, count, first program).
    ///
    /// While verifying, the profile's defaultErrnoRet is replaced by errno 3797, which no
    /// syscall returns by itself (the kernel's errnos end below 600), so denials are told apart
    /// from the workload's own errors and counted per syscall in the kernel at syscall exit.
    /// Explicit deny rules keep their own errno and are not counted.
    ///
    /// Exit status: 0 nothing denied; 1 something denied, or the container was never ready for
    /// the exercise; 2 error; 128+N interrupted.
    Verify(Box<verify::VerifyArgs>),
    /// Write the union of what several profiles allow.
    ///
    /// Inputs must agree on the default action and the architectures; --force merges anyway,
    /// keeping the first input's.
    Merge(merge::MergeArgs),
    /// Compare two profiles: the syscalls NEW allows that OLD didn't, and those it dropped.
    ///
    /// Exit status: 0 NEW allows nothing OLD didn't; 1 NEW allows more; 2 error. The CI gate
    /// for "this image now needs ptrace".
    Diff(diff::DiffArgs),
    /// The reduction report of any profile file (hand-written ones, or `docker-default`):
    /// what it allows against Docker's default and the kernel's table, and which dangerous
    /// syscalls it blocks or allows.
    Report(report::ReportArgs),
    /// Record every container the engine creates while this runs (a compose stack, a test
    /// suite run as CMD) and write one profile per image, compose service or container, each
    /// within the profile its container ran under, plus index.md / index.json.
    ///
    /// Each new container cgroup is adopted by the kernel side the moment it is created, so
    /// no container and no early syscall is lost to the engine's event timing. Exit status:
    /// CMD's when given; 0 at --duration; 1 when a --filter matched no container (and the
    /// watch would have exited 0); 128+N on signal N (the profiles are written).
    Watch(Box<watch::WatchArgs>),
    /// Run a command in a fresh cgroup under an allow-all seccomp filter and record its profile.
    ///
    /// The profile goes to stdout unless -o names a file; then the command's own standard
    /// output goes to stderr, so that `profile run -- CMD > p.json` writes the profile alone.
    Run(run::RunArgs),
    /// Run a command with a profile enforced (x86_64, argument conditions included), to try a
    /// profile without a container runtime.
    Exec(exec::ExecArgs),
    /// Write a profile in another format (Docker's JSON, the OCI linux.seccomp object, an SPO
    /// SeccompProfile manifest): it is read in any of them.
    Convert(convert::ConvertArgs),
    /// Turn complain-mode logs into a profile update: the seccomp audit records (type 1326) of
    /// the workload's calls that PROFILE let through with SCMP_ACT_LOG are added to it, within
    /// the base (Docker's default unless --base), and the result is written enforcing.
    ///
    /// Records carry no arguments: a call whose arguments matter (socket, personality, ioctl,
    /// prctl, clone) gets the base's rule for it, never more. Calls the base denies are listed,
    /// not absorbed (unless --allow-beyond-default). The result is checked to allow nothing
    /// the base forbids before it is written.
    ///
    /// Exit status: 0 written; 2 error (nothing written), among them a result that would allow
    /// what the base forbids.
    Absorb(Box<absorb::AbsorbArgs>),
    /// The syscall ceiling of an image's executables (read through the engine, never run) or
    /// of host files: every syscall a static or Go binary can make, resolved from its machine
    /// code. A ceiling with a site whose number can't be resolved is reported NOT SOUND;
    /// dynamic (libc) executables have none.
    Scan(scan::ScanArgs),
    /// Print the completions of `profile` for bash, zsh or fish.
    ///
    /// bash: `profile completions bash > /usr/share/bash-completion/completions/profile`;
    /// zsh: `profile completions zsh > "${fpath[1]}/_profile"`; fish: `profile completions
    /// fish > ~/.config/fish/completions/profile.fish`.
    Completions(completions::CompletionsArgs),
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(mut err) => {
            if let Some(tip) = hint(&err, &args) {
                err.insert(
                    clap::error::ContextKind::Suggested,
                    clap::error::ContextValue::StyledStrs(vec![tip.into()]),
                );
            }
            err.exit()
        }
    };
    if let Command::Train(args) = &cli.command {
        warn_misplaced("train", &args.container.command);
    }
    if let Command::Verify(args) = &cli.command {
        warn_misplaced("verify", &args.container.command);
    }
    if let Some(owner) = cli.owner {
        output::set_owner(owner);
    }
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(log_line)
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
            Command::Train(args) => train::run(*args).await,
            Command::Verify(args) => verify::run(*args).await,
            Command::Merge(args) => merge::run(args).await,
            Command::Diff(args) => diff::run(args).await,
            Command::Report(args) => report::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Watch(args) => watch::run(*args).await,
            Command::Exec(args) => exec::run(args).await,
            Command::Convert(args) => convert::run(args).await,
            Command::Absorb(args) => absorb::run(*args).await,
            Command::Scan(args) => scan::run(args).await,
            Command::Completions(args) => completions::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        // stdout's reader went away (`| head`): nothing more to say to it or about it.
        Err(err)
            if err
                .chain()
                .any(|e| e.downcast_ref().is_some_and(output::is_broken_pipe)) =>
        {
            ExitCode::from(EXIT_ERROR)
        }
        // A signal before anything was recorded: the shell's status for it, nothing written.
        Err(err) if interrupted_by(&err).is_some() => {
            let sig = interrupted_by(&err).unwrap_or(libc::SIGINT);
            eprintln!("profile: interrupted by signal {sig}: nothing was recorded or written");
            exit::exit_code(Status::Interrupted(sig))
        }
        // A command that could not start: the shell's status for that (127 not found, 126
        // not executable).
        Err(err) if launch_failure(&err).is_some() => {
            let launch = launch_failure(&err);
            eprintln!("profile: {}", one_line(&err));
            ExitCode::from(launch.map_or(EXIT_ERROR, |e| e.exit_code() as u8))
        }
        Err(err) => {
            let line = one_line(&err);
            eprintln!("profile: error: {line}");
            if let Some(hint) = container_hint(&line).filter(|_| privileges::in_image()) {
                eprintln!("profile: running in a container: {hint} (README: Install, the image)");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// A log record in the one style of everything `profile` says on stderr: `profile: warning: …`.
fn log_line(out: &mut env_logger::fmt::Formatter, record: &log::Record<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    writeln!(
        out,
        "profile: {}: {}",
        level_word(record.level()),
        record.args()
    )
}

fn level_word(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// What `docker run` must give a `profile` in a container for the error `line` (the host's
/// view it lacks), if that is what the error is about.
fn container_hint(line: &str) -> Option<&'static str> {
    // The errors' own words (privileges, docker, cgroup and tracefs): each module wraps them
    // transparently, so their text is what reaches here unchanged.
    const HINTS: [(&str, &str); 6] = [
        (
            "missing privileges (uid 0",
            "give it the BPF privileges with docker run --cap-add SYS_ADMIN",
        ),
        (
            "missing privileges (uid",
            "run the image as root (without -u: capabilities don't survive it) with --cap-add SYS_ADMIN, and name the files' owner with --owner UID:GID",
        ),
        (
            "cannot reach the Docker daemon",
            "give it the Docker socket with docker run -v /var/run/docker.sock:/var/run/docker.sock",
        ),
        (
            "may not use the Docker daemon's socket",
            "run the image as root, with the Docker socket mounted",
        ),
        (
            "no cgroup v2 (unified) hierarchy",
            "give it the host's cgroups with docker run -v /sys/fs/cgroup:/sys/fs/cgroup:ro",
        ),
        (
            "tracefs is not mounted",
            "give it the host's tracefs with docker run -v /sys/kernel/tracing:/sys/kernel/tracing:ro",
        ),
    ];
    HINTS
        .iter()
        .find(|(words, _)| line.contains(words))
        .map(|(_, hint)| *hint)
}

/// The signal that stopped a command before it recorded anything.
fn interrupted_by(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|e| match e.downcast_ref() {
        Some(SessionError::Interrupted(sig)) => Some(*sig),
        _ => None,
    })
}

/// Why a host command could not start, if that is what `err` says.
fn launch_failure(err: &anyhow::Error) -> Option<&LaunchError> {
    err.chain().find_map(|e| e.downcast_ref())
}

/// A tip for the usual mistakes behind "unexpected argument": a command not after `--`, an
/// image not named with `--image`.
fn hint(err: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    if arg.starts_with('-') {
        return None;
    }
    let before: Vec<&str> = args
        .iter()
        .skip(1)
        .take_while(|a| *a != arg)
        .map(String::as_str)
        .collect();
    let sub = before.iter().find(|a| !a.starts_with('-'))?;
    let image_named = before
        .iter()
        .any(|a| *a == "--image" || a.starts_with("--image="));
    match *sub {
        "train" | "verify" if !image_named => Some(format!(
            "name the image with --image: profile {sub} --image {arg} ...; a command for the container goes after `--`"
        )),
        "train" | "verify" | "run" | "exec" => Some(format!(
            "put the command after `--`: profile {sub} [OPTIONS] -- {arg} ..."
        )),
        _ => None,
    }
}

/// Warns about arguments after `--` that look like `profile SUB`'s own long options: they go
/// to the container's command, not to `profile`.
fn warn_misplaced(sub: &str, command: &[String]) {
    for option in misplaced(sub, command) {
        eprintln!(
            "profile: warning: {option} comes after `--`, so it is part of the container's command, not an option of profile {sub}; put options of profile before `--`"
        );
    }
}

fn misplaced(sub: &str, command: &[String]) -> Vec<String> {
    use clap::CommandFactory as _;
    let cli = Cli::command();
    let Some(sub) = cli.find_subcommand(sub) else {
        return Vec::new();
    };
    let longs: Vec<&str> = sub.get_arguments().filter_map(|a| a.get_long()).collect();
    command
        .iter()
        .filter(|arg| {
            arg.strip_prefix("--")
                .map(|name| name.split_once('=').map_or(name, |(n, _)| n))
                .is_some_and(|name| longs.contains(&name))
        })
        .cloned()
        .collect()
}

/// The error and its causes on one line, each cause once: an error that already shows its
/// cause in its own message (`path: No such file or directory`) is not followed by it again.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = shorten(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A cause of many lines cut to its first 4 and last 16: verifier logs run to thousands of
/// lines, and those say what failed.
fn shorten(message: &str) -> String {
    let lines: Vec<&str> = message.lines().collect();
    if lines.len() <= 24 {
        return message.to_string();
    }
    format!(
        "{}\n... ({} lines left out) ...\n{}",
        lines[..4].join("\n"),
        lines.len() - 20,
        lines[lines.len() - 16..].join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tip(args: &[&str]) -> Option<String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let err = Cli::try_parse_from(&args).expect_err("a usage error");
        hint(&err, &args)
    }

    #[test]
    fn usual_mistakes_get_a_tip() {
        assert_eq!(
            tip(&["profile", "run", "ls", "/"]).as_deref(),
            Some("put the command after `--`: profile run [OPTIONS] -- ls ...")
        );
        assert_eq!(
            tip(&["profile", "train", "profile-example/hello"]).as_deref(),
            Some(
                "name the image with --image: profile train --image profile-example/hello ...; a command for the container goes after `--`"
            )
        );
        assert_eq!(
            tip(&["profile", "train", "--image", "img", "sh"]).as_deref(),
            Some("put the command after `--`: profile train [OPTIONS] -- sh ...")
        );
        assert_eq!(tip(&["profile", "run", "--nope", "--", "true"]), None);
    }

    #[test]
    fn own_options_after_the_double_dash_are_found() {
        let command: Vec<String> = ["sh", "-c", "x", "--duration=5s", "--report", "r.md", "-o"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(misplaced("train", &command), ["--duration=5s", "--report"]);
        assert!(misplaced("train", &command[..3]).is_empty());
    }

    #[test]
    fn a_container_is_told_what_docker_run_must_give_it() {
        let hint = |line: &str| container_hint(line).unwrap_or("none");
        assert!(
            hint("missing privileges (uid 0 without all capabilities): …")
                .contains("--cap-add SYS_ADMIN")
        );
        assert!(hint("missing privileges (uid 1000): …").contains("--owner"));
        assert!(
            hint("cannot reach the Docker daemon at unix:///var/run/docker.sock …")
                .contains("docker.sock")
        );
        assert!(hint("no cgroup v2 (unified) hierarchy is mounted: …").contains("/sys/fs/cgroup"));
        assert!(
            hint("tracefs is not mounted at /sys/kernel/tracing …").contains("/sys/kernel/tracing")
        );
        assert_eq!(hint("profile.json:3:4: expected a string"), "none");
    }

    #[test]
    fn long_causes_keep_their_ends() {
        let log: Vec<String> = (1..=100).map(|i| format!("line {i}")).collect();
        let short = shorten(&log.join("\n"));
        let lines: Vec<&str> = short.lines().collect();
        assert_eq!(lines.len(), 21);
        assert_eq!(lines[..4], ["line 1", "line 2", "line 3", "line 4"]);
        assert_eq!(lines[4], "... (80 lines left out) ...");
        assert_eq!(lines[20], "line 100");
        assert_eq!(shorten("one\ntwo"), "one\ntwo");
    }

    #[test]
    fn errors_name_their_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = anyhow::Error::new(output::OutputError::Io {
            path: "/nonexist".into(),
            source: io,
        });
        assert_eq!(one_line(&err), "/nonexist: entity not found");
        let err = err.context("reading the profile");
        assert_eq!(
            one_line(&err),
            "reading the profile: /nonexist: entity not found"
        );
    }
}
