//! `profile absorb`: complain-mode logs become profile updates, within the bound.
use std::{
    collections::{BTreeSet, HashMap},
    fs,
    io::Read as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
    time::SystemTime,
};

use anyhow::Context as _;
use clap::Args;

use crate::{
    absorb::{self, AbsorbReport, Scope, Selection, Tally, Whereabouts, update::Bound},
    audit::{Lines, LogLine, Stamp},
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
        let absorption = absorb::absorb(&input, &input_label, &tally, &bound, &ctx)?;
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
        let mut procfs = Procfs::new(cgroups);
        let mut whereabouts = |pid| procfs.whereabouts(pid);
        if args.logs.is_empty() {
            read_kmsg(&mut tally, &selection, &mut whereabouts).context(
                "reading the kernel log (run as root, or pass a log: `dmesg | profile absorb PROFILE --log -`)",
            )?;
        }
        for path in &args.logs {
            read_log(path, &mut tally, &selection, &mut whereabouts)?;
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
        let info = engine.inspect(name).await?;
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
                let rel = relative_cgroup(&dir)?;
                let pids = cgroup_pids(&dir);
                let programs: BTreeSet<String> = pids.iter().filter_map(|p| exe_of(*p)).collect();
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

/// `dir` as /proc/PID/cgroup writes it: relative to the unified hierarchy's root.
fn relative_cgroup(dir: &Path) -> anyhow::Result<String> {
    let root = cgroup::unified_root()?;
    let rel = dir.strip_prefix(&root).unwrap_or(dir);
    Ok(format!("/{}", rel.display()))
}

/// The pids in `dir` and the cgroups below it.
pub(super) fn cgroup_pids(dir: &Path) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_pids(&entry.path()));
            }
        }
    }
    pids
}

/// The program `pid` runs, as a path in its own mount namespace (as audit records name it).
fn exe_of(pid: u32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let text = target.to_string_lossy();
    Some(text.trim_end_matches(" (deleted)").to_string())
}

/// The unified-hierarchy cgroup of `pid` (`/docker/<id>`), if it is alive.
pub(super) fn cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|rel| rel.trim().to_string())
}

/// Whether cgroup `rel` is `scope` or below it.
pub(super) fn within(rel: &str, scope: &str) -> bool {
    !scope.is_empty()
        && rel
            .strip_prefix(scope)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Where pids are now, from /proc, looked up once each.
struct Procfs {
    cgroups: Vec<String>,
    cache: HashMap<u32, Whereabouts>,
}

impl Procfs {
    fn new(cgroups: Vec<String>) -> Self {
        Procfs {
            cgroups,
            cache: HashMap::new(),
        }
    }

    fn whereabouts(&mut self, pid: u32) -> Whereabouts {
        let cgroups = &self.cgroups;
        *self
            .cache
            .entry(pid)
            .or_insert_with(|| match cgroup_of(pid) {
                None => Whereabouts::Gone,
                Some(rel) => cgroups
                    .iter()
                    .position(|c| within(&rel, c))
                    .map_or(Whereabouts::Elsewhere, Whereabouts::In),
            })
    }
}

/// Reads a log file (or stdin) line by line into `tally`.
fn read_log(
    path: &Path,
    tally: &mut Tally,
    selection: &Selection,
    whereabouts: &mut dyn FnMut(u32) -> Whereabouts,
) -> anyhow::Result<()> {
    let reader = input::open_log(path)?;
    let name = if input::is_stdin(path) {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    let src = tally.source(name);
    let mut lines = Lines::new(reader);
    let mut number = 0;
    while let Some(line) = lines.next_line().map_err(|e| crate::Error::io(path, e))? {
        number += 1;
        tally.line(src, number, &line, selection, whereabouts);
    }
    Ok(())
}

/// The kernel log device.
pub(super) const KMSG: &str = "/dev/kmsg";

/// Reads what the kernel log buffer holds now (/dev/kmsg, without blocking) into `tally`;
/// returns the source's index.
pub(super) fn read_kmsg(
    tally: &mut Tally,
    selection: &Selection,
    whereabouts: &mut dyn FnMut(u32) -> Whereabouts,
) -> crate::Result<usize> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(KMSG)
        .map_err(|e| crate::Error::io(KMSG, e))?;
    let src = tally.source(format!("kernel log ({KMSG})"));
    // One record per read; the longest the kernel writes is about 8 KiB.
    let mut buf = vec![0u8; 16 * 1024];
    let mut last_seq: Option<u64> = None;
    let mut number = 0;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // Records were overwritten since the last read: the sequence numbers say how many.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(crate::Error::io(KMSG, e)),
        };
        number += 1;
        let record = String::from_utf8_lossy(&buf[..n]);
        // `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS;MESSAGE` then continuation lines.
        let (header, message) = record.split_once(';').unwrap_or(("", &record));
        if let Some(seq) = header.split(',').nth(1).and_then(|s| s.parse::<u64>().ok()) {
            if let Some(last) = last_seq
                && seq > last + 1
            {
                tally.overwritten(src, seq - last - 1);
            }
            last_seq = Some(seq);
        }
        let text = message.lines().next().unwrap_or_default().to_string();
        let line = LogLine { text, cut: false };
        tally.line(src, number, &line, selection, whereabouts);
    }
    Ok(src)
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

    #[test]
    fn cgroups_nest() {
        assert!(within("/docker/abc", "/docker/abc"));
        assert!(within("/docker/abc/sub", "/docker/abc"));
        assert!(!within("/docker/abcd", "/docker/abc"));
        assert!(!within("/docker/abc", ""));
    }
}
