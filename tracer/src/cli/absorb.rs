//! `profile absorb`: complain-mode logs become profile updates, within the bound.
use std::{path::PathBuf, process::ExitCode, time::SystemTime};

use clap::Args;

use super::args::{MkdirArgs, ProfileFormatArgs, load_base, load_profile, write_report};
use crate::{
    absorb::{AbsorbOptions, Absorbed, FollowNotice, Wanted, absorb},
    formats, output,
    report::Render as _,
    seccomp::Context,
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
    #[command(flatten)]
    pub mkdir: MkdirArgs,
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

pub async fn run(args: AbsorbArgs) -> anyhow::Result<ExitCode> {
    output::check_distinct(&[
        ("-o", args.output.as_deref()),
        ("--report", args.report.as_deref()),
    ])?;
    for path in args.output.iter().chain(args.report.iter()) {
        if !output::is_stdout(path) {
            args.mkdir.check(path)?;
        }
    }
    if args.follow && !args.logs.is_empty() {
        anyhow::bail!(
            "--follow reads the kernel's records as they happen; it takes no --log (pipe a growing log with `tail -f FILE | profile absorb P --log -` instead)"
        );
    }
    let ctx = Context::with_caps(&args.cap_add, &args.cap_drop).map_err(anyhow::Error::msg)?;
    let bound = load_base(&args.base)?.bound(args.allow_beyond_default);
    let options = AbsorbOptions {
        profile: load_profile(&args.profile)?,
        label: formats::origin(&args.profile).display().to_string(),
        logs: args.logs.clone(),
        wanted: Wanted {
            since: args.since,
            containers: args.containers.clone(),
            exes: args.exes.clone(),
            comms: args.comms.clone(),
        },
        bound,
        ctx,
        follow: args.follow,
        arches: args.format.rendering().arches,
    };
    let checkpoint = |absorbed: &Absorbed| {
        if let Err(err) = write(&args, absorbed) {
            eprintln!("profile: error: {err:#}");
        }
    };
    let absorbed = absorb(&options, &show, &checkpoint).await?;
    write(&args, &absorbed)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the updated profile, and the report (to its file, or as text on stderr).
fn write(args: &AbsorbArgs, absorbed: &Absorbed) -> anyhow::Result<()> {
    let report = &absorbed.report;
    args.format
        .rendering()
        .write(args.output.as_deref(), &absorbed.absorption.profile, None)?;
    match &args.report {
        Some(path) => {
            write_report(path, report)?;
            for w in &report.warnings {
                eprintln!("profile: warning: {w}");
            }
        }
        None => eprint!("{}", report.text()),
    }
    Ok(())
}

fn show(notice: FollowNotice<'_>) {
    eprintln!("profile: {notice}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Stamp;

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
