//! The `profile` command line: flags are parsed here and handed to the engine as plain values.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};

use crate::{formats::OciSeccomp, input, names::Arch, output, report::Render, seccomp::Profile};

pub mod absorb;
pub mod container;
pub mod diff;
pub mod exec;
mod follow;
pub mod learning;
pub mod merge;
pub mod report_cmd;
pub mod run;
pub mod scan;
pub mod train;
pub mod verify;
pub mod watch;

/// Learn a container's seccomp profile by watching the syscalls it makes.
///
/// Syscalls are counted in the kernel by an eBPF program on the raw_syscalls tracepoints, per
/// cgroup, from the moment the workload's seccomp filter is installed: the container runtime's
/// own setup calls are never granted. Needs root (or CAP_BPF, CAP_PERFMON and read access to
/// tracefs; `run` also CAP_DAC_OVERRIDE, `train` and `verify` the Docker socket).
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
    Report(report_cmd::ReportArgs),
    /// Record every container the engine creates while this runs (a compose stack, a test
    /// suite run as CMD) and write one profile per image, compose service or container, each
    /// within the profile its container ran under, plus index.md / index.json.
    ///
    /// Each new container cgroup is adopted by the kernel side the moment it is created, so
    /// no container and no early syscall is lost to the engine's event timing. Exit status:
    /// CMD's when given; 0 at --duration; 128+N on signal N (the profiles are written).
    Watch(Box<watch::WatchArgs>),
    /// Run a command in a fresh cgroup under an allow-all seccomp filter and record its profile.
    Run(run::RunArgs),
    /// Run a command with a profile enforced (x86_64, argument conditions included), to try a
    /// profile without a container runtime.
    Exec(exec::ExecArgs),
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
}

/// What is recorded and where the report goes: shared by the recording commands.
#[derive(Clone, Debug, clap::Args)]
pub struct RecordArgs {
    /// Write the report here: .json for JSON, .md for Markdown, anything else as text.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also write a Markdown summary without what changes from run to run (calls, first
    /// programs, what each run added): to commit beside the profile, it changes only when the
    /// profile does.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Count every syscall in the cgroup, the runtime's own setup included, not only those made
    /// under the seccomp filter (for comparison: such a profile grants calls no filter checks).
    #[arg(long)]
    pub all_syscalls: bool,
}

impl RecordArgs {
    /// Checks that the report and the summary can be written, before anything runs.
    pub fn check_writable(&self) -> crate::Result<()> {
        for path in self.report.iter().chain(self.summary.iter()) {
            output::check_writable(path)?;
        }
        Ok(())
    }

    /// Writes the report and the summary where they were asked for.
    pub fn write(&self, report: &crate::report::Report) -> crate::Result<()> {
        if let Some(path) = &self.report {
            write_report(path, report)?;
        }
        if let Some(path) = &self.summary {
            output::write_atomic(path, report.to_summary_markdown().as_bytes())?;
        }
        Ok(())
    }

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
            Command::Verify(args) => verify::verify(*args).await,
            Command::Merge(args) => merge::merge(args).await,
            Command::Diff(args) => diff::diff(args).await,
            Command::Report(args) => report_cmd::report(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Watch(args) => watch::watch(*args).await,
            Command::Exec(args) => exec::exec(args).await,
            Command::Absorb(args) => absorb::absorb(*args).await,
            Command::Scan(args) => scan::scan(args).await,
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
            ExitCode::from(128 + sig as u8)
        }
        Err(err) => {
            eprintln!("profile: error: {}", one_line(&err));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The signal that stopped a command before it recorded anything.
fn interrupted_by(err: &anyhow::Error) -> Option<i32> {
    err.chain().find_map(|e| match e.downcast_ref() {
        Some(crate::session::SessionError::Interrupted(sig)) => Some(*sig),
        _ => None,
    })
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

/// Writes a report (atomically) in the format its file name's extension names: `.json`,
/// `.md`, anything else as text.
pub fn write_report(path: &Path, report: &impl Render) -> crate::Result<()> {
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => report.json()?,
        Some("md") | Some("markdown") => report.markdown(),
        _ => report.text(),
    };
    output::write_atomic(path, text.as_bytes())
}

/// Formats a profile can be written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Docker's seccomp JSON (Podman takes it too).
    #[default]
    Docker,
    /// The OCI runtime-spec `linux.seccomp` object (JSON).
    Oci,
    /// A Kubernetes Security Profiles Operator `SeccompProfile` manifest (YAML).
    K8s,
}

/// What a written profile does with calls it doesn't list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DefaultAction {
    /// Fail them with EPERM (enforcing).
    #[default]
    Errno,
    /// Allow them and have the kernel log them (SCMP_ACT_LOG): complain mode for rollouts.
    Log,
}

/// How a profile is written: shared by every command that writes one.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ProfileFormatArgs {
    /// Profile format: docker (Docker's seccomp JSON, for docker/podman --security-opt),
    /// oci (the runtime-spec linux.seccomp object), k8s (a Security Profiles Operator
    /// SeccompProfile manifest). oci and k8s resolve Docker's per-capability conditions for
    /// Docker's default capabilities.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub format: Format,
    /// What the profile does with calls it doesn't list: errno (fail with EPERM) or log (allow
    /// and log them: complain mode for rollouts).
    #[arg(long, value_enum, default_value_t, value_name = "ACTION")]
    pub default_action: DefaultAction,
    /// metadata.name of the k8s manifest [default: the output file's name]
    #[arg(long, value_name = "NAME")]
    pub k8s_name: Option<String>,
    /// Platforms the profile must also hold on (amd64, arm64; comma-separated) [default: the
    /// host's alone]. For arm64, the aarch64 calls that do the work of what was allowed on
    /// x86_64 are derived (openat for open, ppoll for poll, …) in rules Docker keeps on arm64
    /// only, within the base there: the x86_64 side is unchanged.
    #[arg(long = "arch", value_delimiter = ',', value_name = "LIST")]
    pub arch: Vec<Arch>,
    /// With --format oci or k8s and several platforms: one file whose rules apply on all of
    /// them (x86_64 then also allows what aarch64 needs), instead of one file per platform
    /// (NAME.amd64.json, NAME.arm64.json).
    #[arg(long)]
    pub arch_union: bool,
}

impl ProfileFormatArgs {
    /// The file extension of the format (`json` or `yaml`).
    pub fn extension(&self) -> &'static str {
        match self.format {
            Format::K8s => "yaml",
            _ => "json",
        }
    }

    /// `profile` with the default action applied, rendered in the chosen format. `name`
    /// names the k8s manifest unless --k8s-name does.
    pub fn render(&self, profile: &Profile, name: &str) -> crate::Result<String> {
        let profile = match self.default_action {
            DefaultAction::Errno => profile.clone(),
            DefaultAction::Log => profile.clone().logging(),
        };
        let ctx = crate::seccomp::Context::docker_default();
        Ok(match self.format {
            Format::Docker => profile.to_json()?,
            Format::Oci => OciSeccomp::resolve(&profile, &ctx).to_json()?,
            Format::K8s => OciSeccomp::resolve(&profile, &ctx)
                .to_k8s_yaml(self.k8s_name.as_deref().unwrap_or(name))?,
        })
    }

    /// Renders `profile` and writes it to `path` (atomically), or to stdout without one.
    /// `name` names a k8s manifest [default: the file's name]. A profile for several
    /// platforms goes, in formats without per-platform rules, to one file per platform
    /// (`NAME.arm64.json`) unless --arch-union.
    pub fn write(
        &self,
        path: Option<&Path>,
        profile: &Profile,
        name: Option<&str>,
    ) -> crate::Result<()> {
        let path = output::file(path);
        let stem = path
            .and_then(|p| p.file_stem())
            .map(|s| s.to_string_lossy().into_owned());
        let name = name.or(stem.as_deref()).unwrap_or("profile");
        let ctx = crate::seccomp::Context::docker_default();
        // Platforms asked for: the formats without per-platform rules write each one's own.
        let asked: std::collections::BTreeSet<_> = self.arch.iter().copied().collect();
        let profile = match (self.format, asked.len(), self.arch_union) {
            (Format::Docker, _, _) | (_, 0, _) => profile.clone(),
            (_, 1, _) => profile.for_arch(*asked.iter().next().unwrap_or(&Arch::host()), &ctx),
            (_, _, true) => profile.arch_union(&ctx),
            (_, _, false) => {
                let Some(path) = path else {
                    return Err(crate::Error::io(
                        Path::new("-"),
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "one file per architecture: name an output file (-o), or pass --arch-union",
                        ),
                    ));
                };
                for (arch, file) in arch_files(path, &asked) {
                    let name = format!("{name}-{arch}");
                    let text = self.render(&profile.for_arch(arch, &ctx), &name)?;
                    output::write_atomic(&file, text.as_bytes())?;
                }
                return Ok(());
            }
        };
        let text = self.render(&profile, name)?;
        match path {
            Some(path) => output::write_atomic(path, text.as_bytes()),
            None => output::stdout(&text),
        }
    }

    /// Makes `profile` hold on every --arch platform too, within `bound` there for a
    /// container with `ctx`, and proves it: an error naming what it would allow beyond
    /// `bound` on any platform, and `profile` left as it was. Returns what was derived.
    pub fn derive(
        &self,
        profile: &mut Profile,
        bound: &Profile,
        bound_label: &str,
        ctx: &crate::seccomp::Context,
    ) -> crate::Result<Vec<crate::seccomp::Derivation>> {
        let arches: std::collections::BTreeSet<_> = self.arch.iter().copied().collect();
        if arches.is_empty() {
            return Ok(Vec::new());
        }
        let (multi, derived) = profile.for_arches(&arches, bound, ctx);
        let widenings = multi.widenings(bound, ctx);
        if !widenings.is_empty() {
            return Err(crate::Error::NotWithin {
                what: "the profile for every --arch platform".into(),
                base: bound_label.to_string(),
                widenings,
            });
        }
        *profile = multi;
        Ok(derived)
    }

    /// How the profile is written to `path` in this format, in words.
    pub fn written_as(&self, path: Option<&Path>) -> String {
        let asked: std::collections::BTreeSet<_> = self.arch.iter().copied().collect();
        match (self.format, asked.len(), self.arch_union, output::file(path)) {
            (Format::Docker, _, _, _) | (_, 0, _, _) => {
                "one Docker profile; rules Docker keeps on one platform only carry includes.arches"
                    .into()
            }
            (_, 1, _, _) => format!("one file for {}", self.arch[0]),
            (_, _, true, _) => "one file whose rules apply on every platform (their union: each allows the others' calls too)".into(),
            (_, _, false, Some(path)) => {
                let files: Vec<String> = arch_files(path, &asked)
                    .into_iter()
                    .map(|(_, f)| f.display().to_string())
                    .collect();
                format!("one file per platform: {}", files.join(", "))
            }
            (_, _, false, None) => "one file per platform (none: stdout can't hold them)".into(),
        }
    }
}

/// `app.json` → `app.amd64.json`, `app.arm64.json`: one file per platform.
fn arch_files(path: &Path, arches: &std::collections::BTreeSet<Arch>) -> Vec<(Arch, PathBuf)> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path.extension().map(|s| s.to_string_lossy().into_owned());
    arches
        .iter()
        .map(|arch| {
            let name = match &ext {
                Some(ext) => format!("{stem}.{arch}.{ext}"),
                None => format!("{stem}.{arch}"),
            };
            (*arch, path.with_file_name(name))
        })
        .collect()
}

/// Reads a profile (see [`read_profile`]) and warns about names its architectures don't
/// know: Docker ignores them silently.
pub fn load_profile(path: &Path) -> crate::Result<Profile> {
    let profile = read_profile(path)?;
    // Docker's own default names other architectures' calls on purpose.
    if !is_docker_default(path)
        && let Some(warning) = profile.unknown_names_warning()
    {
        eprintln!("profile: warning: {}: {warning}", origin(path).display());
    }
    Ok(profile)
}

/// `docker-default` names Docker's default profile, unless a file has that name.
fn is_docker_default(path: &Path) -> bool {
    path == Path::new("docker-default") && !path.exists()
}

/// Reads a profile in any format `profile` writes (Docker's JSON, the OCI `linux.seccomp`
/// object or a runtime config holding one, an SPO `SeccompProfile` manifest) from a regular
/// file within the input limit, or from stdin as `-`; `docker-default` names Docker's default
/// profile shipped with this tool.
pub fn read_profile(path: &Path) -> crate::Result<Profile> {
    if is_docker_default(path) {
        return Ok(Profile::docker_default());
    }
    let text = input::read_text(path)?;
    crate::formats::parse_profile(&text, origin(path))
}

/// How an input is named in messages: `<stdin>` for `-`.
pub fn origin(path: &Path) -> &Path {
    if input::is_stdin(path) {
        Path::new("<stdin>")
    } else {
        path
    }
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
        let err = anyhow::Error::new(crate::Error::io("/nonexist", io));
        assert_eq!(one_line(&err), "/nonexist: entity not found");
        let err = err.context("reading the profile");
        assert_eq!(
            one_line(&err),
            "reading the profile: /nonexist: entity not found"
        );
    }
}
