//! `profile absorb`: complain-mode logs become profile updates, within the bound.
use std::{collections::BTreeSet, path::PathBuf, process::ExitCode, time::SystemTime};

use anyhow::Context as _;
use clap::Args;

use crate::{
    absorb::{
        self, AbsorbReport, Scope, Selection, Tally,
        sources::{self, Processes},
        update::Bound,
    },
    audit::Stamp,
    cgroup,
    cli::{ProfileFormatArgs, learning::LearnOptions, load_profile},
    docker::Engine,
    input, output,
    seccomp::{Context, LearnArgs},
};

#[derive(Debug, Args)]
pub struct AbsorbArgs {
    /// The profile the workload ran under (in complain mode or not): the result is this
    /// profile plus what was absorbed, enforcing (`-` reads it from stdin).
    #[arg(value_name = "PROFILE")]
    pub profile: PathBuf,
    /// Read seccomp audit records from FILE: a kernel log (`dmesg`, `journalctl -k`,
    /// /var/log/kern.log) or auditd's audit.log; `-` for stdin. Repeatable. Without it, the
    /// kernel log buffer (/dev/kmsg).
    #[arg(long = "log", value_name = "FILE")]
    pub logs: Vec<PathBuf>,
    /// Only records from TIME on: an RFC 3339 time (`2026-11-29T08:00:00Z`; without a zone,
    /// UTC), `@SECONDS` since the epoch, or a duration ago (`10m`, `2h`).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Only records of this container (name or id; repeatable): its processes while it runs,
    /// or, for processes that have exited, its programs during its run.
    #[arg(long = "container", value_name = "NAME|ID")]
    pub containers: Vec<String>,
    /// Only records of this program (`exe`, the path inside the container; repeatable).
    #[arg(long = "exe", value_name = "PATH")]
    pub exes: Vec<String>,
    /// Only records of this command name (`comm`; repeatable).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Where to write the updated profile (atomically) [default: stdout; `-`: stdout].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Write the report here: .json for JSON, .md for Markdown, anything else as text
    /// [default: text on stderr].
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub format: ProfileFormatArgs,
    /// The profile the result stays within: `docker-default` (resolved for the
    /// capabilities), a profile file, or `allow-all` (then Docker's default unless
    /// --allow-beyond-default).
    #[arg(long, value_name = "PROFILE", default_value = "docker-default")]
    pub base: String,
    /// Absorb calls the base denies outright too (never argument-checked ones such as socket:
    /// the records carry no arguments).
    #[arg(long)]
    pub allow_beyond_default: bool,
    /// Capabilities of the workload, as for `docker run` (they move the base's rules).
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Capabilities dropped, as for `docker run`.
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Keep reading the kernel's audit records as they happen (every one, not only those the
    /// kernel log keeps) until the containers exit or SIGINT/SIGTERM; SIGUSR1 writes the
    /// profile and report so far.
    #[arg(long)]
    pub follow: bool,
}

/// `--since`: RFC 3339, `@SECONDS`, or a duration ago.
fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if let Some(secs) = s.strip_prefix('@') {
        let secs: f64 = secs
            .parse()
            .map_err(|_| format!("{s:?}: @ takes seconds since the epoch"))?;
        if !(0.0..1e11).contains(&secs) {
            return Err(format!("{s:?}: out of range"));
        }
        return Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs));
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        format!(
            "{s:?}: expected an RFC 3339 time (2026-11-29T08:00:00Z), @SECONDS since the epoch, or a duration ago (10m, 2h)"
        )
    })?;
    SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| format!("{s:?}: before the epoch"))
}

pub async fn absorb(args: AbsorbArgs) -> anyhow::Result<ExitCode> {
    output::check_distinct(&[
        ("-o", args.output.as_deref()),
        ("--report", args.report.as_deref()),
    ])?;
    for path in args.output.iter().chain(args.report.iter()) {
        if !output::is_stdout(path) {
            output::check_writable(path)?;
        }
    }
    if args.follow && !args.logs.is_empty() {
        anyhow::bail!(
            "--follow reads the kernel's records as they happen; it takes no --log (pipe a growing log with `tail -f FILE | profile absorb P --log -` instead)"
        );
    }
    let ctx = Context::with_caps(&args.cap_add, &args.cap_drop).map_err(anyhow::Error::msg)?;
    let bases = LearnOptions {
        base: args.base.clone(),
        learn_args: LearnArgs::None,
        allow_beyond_default: args.allow_beyond_default,
    }
    .bases(&ctx)?;
    let input = load_profile(&args.profile)?;
    let input_label = if input::is_stdin(&args.profile) {
        "<stdin>".to_string()
    } else {
        args.profile.display().to_string()
    };
    let engine = if args.containers.is_empty() {
        None
    } else {
        Some(Engine::connect().await?)
    };
    let (selection, cgroups, words) = select(&args, engine.as_ref()).await?;
    let bound = Bound {
        profile: &bases.bound,
        label: &bases.bound_label,
        allow_beyond: args.allow_beyond_default,
    };
    let finish = |tally: &Tally| -> anyhow::Result<()> {
        let mut tally = tally.clone();
        tally.finish();
        let mut absorption = absorb::absorb(&input, &input_label, &tally, &bound, &ctx)?;
        (args.format).derive(
            &mut absorption.profile,
            &bases.bound,
            &bases.bound_label,
            &ctx,
        )?;
        let report = AbsorbReport::new(
            &input_label,
            &bases.bound_label,
            words.clone(),
            &tally,
            &absorption,
        );
        args.format
            .write(args.output.as_deref(), &absorption.profile, None)?;
        match &args.report {
            Some(path) => {
                crate::cli::write_report(path, &report)?;
                for w in &report.warnings {
                    eprintln!("profile: warning: {w}");
                }
            }
            None => eprint!("{}", report.to_text()),
        }
        Ok(())
    };
    let mut tally = Tally::default();
    if args.follow {
        super::follow::follow(&mut tally, &selection, &cgroups, engine.as_ref(), &finish).await?;
    } else {
        let mut processes = Processes::new(&cgroups);
        let mut whereabouts = |pid| processes.whereabouts(pid, false);
        if args.logs.is_empty() {
            sources::read_kmsg(&mut tally, &selection, &mut whereabouts).context(
                "reading the kernel log (run as root, or pass a log: `dmesg | profile absorb PROFILE --log -`)",
            )?;
        }
        for path in &args.logs {
            sources::read_log(path, &mut tally, &selection, &mut whereabouts)?;
        }
    }
    finish(&tally)?;
    Ok(ExitCode::SUCCESS)
}

/// The selection the flags describe, the containers' cgroups (paths relative to the unified
/// hierarchy, as /proc/PID/cgroup names them), and the selection in words for the report.
async fn select(
    args: &AbsorbArgs,
    engine: Option<&Engine>,
) -> anyhow::Result<(Selection, Vec<String>, Vec<String>)> {
    let mut words = Vec::new();
    let mut selection = Selection {
        since: args.since.and_then(Stamp::from_system_time),
        exes: args.exes.iter().cloned().collect(),
        comms: args.comms.iter().cloned().collect(),
        containers: Vec::new(),
    };
    let mut cgroups = Vec::new();
    for name in &args.containers {
        let Some(engine) = engine else { break };
        let info = engine.container(name).await?;
        let stamp = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .and_then(Stamp::from_system_time)
        };
        let short = &info.id[..info.id.len().min(12)];
        let mut scope = Scope {
            name: info.name.clone(),
            id: info.id.clone(),
            programs: None,
            created: stamp(&info.created),
            started: stamp(&info.started_at),
            finished: if info.running {
                None
            } else {
                stamp(&info.finished_at)
            },
        };
        match info.pid {
            Some(pid) => {
                let dir = cgroup::of_pid(pid)
                    .with_context(|| format!("the cgroup of container {}", info.name))?;
                let rel = sources::relative_cgroup(&dir)?;
                let pids = sources::cgroup_pids(&dir);
                let programs: BTreeSet<String> =
                    pids.iter().filter_map(|p| sources::exe_of(*p)).collect();
                words.push(format!(
                    "container {} ({short}), running: {} process(es) in {}; programs {}",
                    info.name,
                    pids.len(),
                    rel,
                    programs.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
                scope.programs = Some(programs);
                cgroups.push(rel);
            }
            None => {
                if args.exes.is_empty() && args.comms.is_empty() {
                    anyhow::bail!(
                        "container {} is not running: its processes can't be told from others' any more; name its programs with --exe PATH or --comm NAME (records are still limited to its last run)",
                        info.name
                    );
                }
                words.push(format!(
                    "container {} ({short}), not running: records of its last run ({} – {}) by --exe/--comm",
                    info.name,
                    info.started_at.as_deref().unwrap_or("?"),
                    info.finished_at.as_deref().unwrap_or("?")
                ));
                // No cgroup to find its processes in: an entry no process matches.
                cgroups.push(String::new());
            }
        }
        selection.containers.push(scope);
    }
    for exe in &args.exes {
        words.push(format!("exe {exe}"));
    }
    for comm in &args.comms {
        words.push(format!("comm {comm}"));
    }
    if let Some(since) = selection.since {
        words.push(format!("since {}", since.rfc3339()));
    }
    if args.containers.is_empty() && args.exes.is_empty() && args.comms.is_empty() {
        words.push("every process (no --container, --exe or --comm)".into());
    }
    Ok((selection, cgroups, words))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_epochs_and_durations() {
        let t = parse_since("2026-11-29T00:04:49Z").unwrap();
        assert_eq!(Stamp::from_system_time(t), Some(Stamp(1_795_910_689_000)));
        assert_eq!(parse_since("2026-11-29 00:04:49").unwrap(), t);
        assert_eq!(parse_since("@1795910689").unwrap(), t);
        let ago = parse_since("10m").unwrap();
        let d = SystemTime::now().duration_since(ago).unwrap().as_secs();
        assert!((599..=601).contains(&d), "{d}");
        assert!(parse_since("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_since("@-5").is_err());
    }
}
