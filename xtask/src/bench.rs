//! `cargo xtask bench`: recording cost measured side by side against the design's floor (an
//! empty program on the same tracepoint, loaded here), with the kernel's own run-time
//! statistics for the programs.
use std::{
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, ensure};

use crate::{cargo, is_root, root, target_dir};

pub(crate) fn release_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    cargo(&["build", "--release", "-p", "tracer", "--bins"])?;
    let target = target_dir().join("release");
    let sysloop = target.join("sysloop");
    let status = Command::new("cc")
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&sysloop)
        .arg(root().join("tests/workloads/sysloop.c"))
        .status()
        .context("cc")?;
    ensure!(status.success(), "compiling sysloop failed");
    Ok((target.join("profile"), sysloop))
}

fn loop_ns(mut cmd: Command) -> anyhow::Result<f64> {
    let out = cmd
        .stderr(Stdio::null())
        .output()
        .context("running the loop")?;
    ensure!(
        out.status.success(),
        "{} failed: {}",
        describe(&cmd),
        out.status
    );
    timing(&out.stdout)
}

/// The loop's own timing (`ns=` on its standard output).
fn timing(stdout: &[u8]) -> anyhow::Result<f64> {
    let text = String::from_utf8_lossy(stdout);
    let ns = text
        .lines()
        .find_map(|l| l.strip_prefix("ns="))
        .with_context(|| format!("no timing in output: {text}"))?;
    Ok(ns.trim().parse()?)
}

/// `cmd` as a command line, for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the loop under `cmd` (a `profile` that loads the recorder itself) and reads the
/// kernel's statistics of its sys_enter program while it runs: ns/call of the loop, and ns
/// per run of the program (the last reading before it exits; the few calls of its start are
/// averaged in).
fn loop_ns_with_stats(mut cmd: Command) -> anyhow::Result<(f64, f64)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| describe(&cmd))?;
    let pid = child.id();
    let mut last = ProgStats::default();
    while child.try_wait()?.is_none() {
        let now = ProgStats::busiest_of(pid);
        if now.run_cnt > last.run_cnt {
            last = now;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "{} failed: {}",
        describe(&cmd),
        out.status
    );
    Ok((timing(&out.stdout)?, last.since(ProgStats::default())))
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `background`, waits until it is set up, and returns it for the caller to stop.
fn start_background(mut cmd: Command, settle: Duration) -> anyhow::Result<std::process::Child> {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| describe(&cmd))?;
    let mut child = child;
    thread::sleep(settle);
    if let Some(status) = child.try_wait()? {
        anyhow::bail!("{} ended before it was measured: {status}", describe(&cmd));
    }
    Ok(child)
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
}

/// Peak RSS in KiB of `cmd`, as GNU time reports it. Not from our own wait4: a child this
/// process starts begins as (or shares) a copy of this process's memory, and the kernel counts
/// that in the child's peak even after its exec; GNU time forks from its own small image.
fn peak_rss_kib(cmd: Command) -> anyhow::Result<i64> {
    let out = target_dir().join("release/peak-rss");
    let mut time = Command::new("/usr/bin/time");
    time.args(["-f", "%M", "-o"])
        .arg(&out)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    usage(time)?;
    let text = std::fs::read_to_string(&out)
        .map_err(|e| anyhow::anyhow!("GNU time's report {}: {e}", out.display()))?;
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("GNU time's report {}: {text:?}", out.display()))?;
    Ok(kib)
}

/// CPU seconds (user + system) `cmd` took, from wait4's rusage.
fn cpu_seconds(cmd: Command) -> anyhow::Result<f64> {
    let u = usage(cmd)?;
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(secs(u.ru_utime) + secs(u.ru_stime))
}

fn usage(mut cmd: Command) -> anyhow::Result<libc::rusage> {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| describe(&cmd))?;
    let mut status = 0;
    // SAFETY: rusage is plain data, zeroed before use.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    ensure!(rc > 0, "wait4 failed");
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} failed (wait status {status:#x})",
        describe(&cmd)
    );
    Ok(usage)
}

/// VmRSS of a running process, in KiB (0 when unreadable).
fn vm_rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0.0)
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;

/// The floor of the design: `r0 = 0; exit` as a raw tracepoint program on sys_enter, loaded
/// with bpf(2) directly. Detached when dropped.
struct EmptyProgram {
    prog: OwnedFd,
    _link: OwnedFd,
}

impl EmptyProgram {
    fn attach() -> anyhow::Result<Self> {
        // struct bpf_insn: code, dst/src registers, offset, immediate.
        let insns: [[u8; 8]; 2] = [[0xb7, 0, 0, 0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]];
        let license = c"GPL";
        // The leading fields of union bpf_attr for BPF_PROG_LOAD; the rest stays zero.
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&BPF_PROG_TYPE_RAW_TRACEPOINT.to_ne_bytes());
        attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
        let prog = bpf(BPF_PROG_LOAD, &mut attr).context("loading the empty program")?;
        let name = c"sys_enter";
        let mut attr = [0u8; 128];
        attr[0..8].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
        attr[8..12].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
        let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr).context("attaching it to sys_enter")?;
        Ok(EmptyProgram { prog, _link: link })
    }

    fn stats(&self) -> ProgStats {
        ProgStats::of_fdinfo(&format!("/proc/self/fdinfo/{}", self.prog.as_raw_fd()))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> anyhow::Result<OwnedFd> {
    // SAFETY: attr is a zero-padded union bpf_attr of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    ensure!(fd >= 0, "bpf({cmd}): {}", std::io::Error::last_os_error());
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The kernel's run-time statistics of one program (kernel.bpf_stats_enabled).
#[derive(Clone, Copy, Debug, Default)]
struct ProgStats {
    run_time_ns: u64,
    run_cnt: u64,
}

impl ProgStats {
    fn of_fdinfo(path: &str) -> ProgStats {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        ProgStats {
            run_time_ns: field("run_time_ns:"),
            run_cnt: field("run_cnt:"),
        }
    }

    /// The raw tracepoint program of process `pid` that ran most often (its sys_enter).
    fn busiest_of(pid: u32) -> ProgStats {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return ProgStats::default();
        };
        fds.filter_map(|e| e.ok())
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-prog")
            })
            .map(|e| {
                ProgStats::of_fdinfo(&format!(
                    "/proc/{pid}/fdinfo/{}",
                    e.file_name().to_string_lossy()
                ))
            })
            .max_by_key(|s| s.run_cnt)
            .unwrap_or_default()
    }

    /// ns per run between two readings.
    fn since(self, before: ProgStats) -> f64 {
        let runs = self.run_cnt.saturating_sub(before.run_cnt);
        if runs == 0 {
            return f64::NAN;
        }
        self.run_time_ns.saturating_sub(before.run_time_ns) as f64 / runs as f64
    }
}

/// Turns on the kernel's BPF run-time statistics for as long as it lives.
struct BpfStats(Option<String>);

impl BpfStats {
    fn enable() -> Self {
        const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";
        let old = std::fs::read_to_string(PATH).ok();
        let _ = std::fs::write(PATH, "1");
        BpfStats(old)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", old.trim());
        }
    }
}

/// The bench: `calls` getppid per loop, `runs` rounds, and the scale row's `(containers, at
/// once)`.
pub(crate) fn bench(calls: u64, runs: usize, scale: (usize, usize)) -> anyhow::Result<()> {
    ensure!(
        is_root(),
        "the benchmark loads eBPF programs: run it as root"
    );
    let (profile, sysloop) = release_binaries()?;
    // The release executable (static, musl) beside the glibc build.
    crate::dist::dist(false)?;
    let static_profile = crate::dist::dir().join(crate::dist::name());
    let allow_all = target_dir().join("release/allow-all.json");
    std::fs::write(&allow_all, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)?;
    let n = calls.to_string();
    let plain = || {
        let mut c = Command::new(&sysloop);
        c.args(["bench", &n]);
        c
    };
    // The same loop under an allow-all seccomp filter and nothing else.
    let filtered = || {
        let mut c = Command::new(&profile);
        c.args(["exec", "--profile"])
            .arg(&allow_all)
            .arg("--")
            .arg(&sysloop)
            .args(["bench", &n]);
        c
    };
    let watched_by = |profile: &Path| {
        let mut c = Command::new(profile);
        c.args(["run", "-o", "/dev/null", "--"])
            .arg(&sysloop)
            .args(["bench", &n]);
        c
    };
    let watched = || watched_by(&profile);
    let idle_recording = |profile: &Path| {
        let mut c = Command::new(profile);
        c.args(["run", "-o", "/dev/null", "--"])
            .arg(&sysloop)
            .args(["sleep", "600000"]);
        c
    };
    // Userspace work that allocates: the reduction report of Docker's default, 20 times.
    let reports = |profile: &Path| -> anyhow::Result<f64> {
        let mut total = 0.0;
        for _ in 0..20 {
            let mut c = Command::new(profile);
            c.args(["report", "docker-default", "--format", "json"]);
            total += cpu_seconds(c)?;
        }
        Ok(total)
    };
    let _stats = BpfStats::enable();
    let has_bpftrace = Command::new("bpftrace").arg("--version").output().is_ok();
    let has_strace = Command::new("strace").arg("-V").output().is_ok();
    let strace_calls = (calls / 100).max(1000);
    let mut v: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut empty_ns = Vec::new();
    let mut bystander_ns = Vec::new();
    let mut filtered_bystander_ns = Vec::new();
    let mut watched_ns = Vec::new();
    let mut watched_static_ns = Vec::new();
    let mut steady_rss = Vec::new();
    let mut static_steady_rss = Vec::new();
    let mut report_cpu: [Vec<f64>; 2] = Default::default();
    let mut cap_checks: [Vec<f64>; 2] = Default::default();
    let cap_calls = (calls / 4).max(1000);
    for round in 0..runs {
        eprintln!("xtask bench: round {}/{runs}", round + 1);
        v.entry("untraced").or_default().push(loop_ns(plain())?);
        v.entry("filter").or_default().push(loop_ns(filtered())?);
        {
            let empty = EmptyProgram::attach()?;
            let before = empty.stats();
            v.entry("empty").or_default().push(loop_ns(plain())?);
            empty_ns.push(empty.stats().since(before));
            v.entry("empty+filter")
                .or_default()
                .push(loop_ns(filtered())?);
        }
        let (ns, prog) = loop_ns_with_stats(watched())?;
        v.entry("watched").or_default().push(ns);
        watched_ns.push(prog);
        let (ns, prog) = loop_ns_with_stats(watched_by(&static_profile))?;
        v.entry("watched, static").or_default().push(ns);
        watched_static_ns.push(prog);
        let bg = start_background(idle_recording(&profile), Duration::from_millis(1500))?;
        let before = ProgStats::busiest_of(bg.id());
        v.entry("bystander").or_default().push(loop_ns(plain())?);
        bystander_ns.push(ProgStats::busiest_of(bg.id()).since(before));
        // Under a filter of its own in another cgroup: every other container on the host.
        let before = ProgStats::busiest_of(bg.id());
        v.entry("filtered bystander")
            .or_default()
            .push(loop_ns(filtered())?);
        filtered_bystander_ns.push(ProgStats::busiest_of(bg.id()).since(before));
        steady_rss.push(vm_rss_kib(bg.id()));
        stop(bg);
        let bg = start_background(idle_recording(&static_profile), Duration::from_millis(1500))?;
        static_steady_rss.push(vm_rss_kib(bg.id()));
        stop(bg);
        cap_checks[0].push(capability_checks_ns(&sysloop, cap_calls, false)?);
        cap_checks[1].push(capability_checks_ns(&sysloop, cap_calls, true)?);
        report_cpu[0].push(reports(&profile)?);
        report_cpu[1].push(reports(&static_profile)?);
        if has_bpftrace {
            let mut bt = Command::new("bpftrace");
            bt.args([
                "-e",
                "tracepoint:raw_syscalls:sys_enter { @[cgroup, args->id] = count(); }",
            ]);
            let bg = start_background(bt, Duration::from_secs(3))?;
            v.entry("bpftrace").or_default().push(loop_ns(plain())?);
            stop(bg);
        }
        if has_strace {
            let mut st = Command::new("strace");
            st.args(["-f", "-qq", "-o", "/dev/null"])
                .arg(&sysloop)
                .args(["bench", &strace_calls.to_string()]);
            let ns = loop_ns(st)?;
            v.entry("strace")
                .or_default()
                .push(ns * (calls as f64 / strace_calls as f64));
        }
    }
    let rss = peak_rss_kib(watched())?;
    let per_call = |name: &str| median(v.get(name).cloned().unwrap_or_default()) / calls as f64;
    let untraced = per_call("untraced");
    println!(
        "getppid loop, {calls} calls, median of {runs} rounds, variants interleaved in each round\n"
    );
    println!("| variant | ns/call | vs untraced | vs its floor | target |");
    println!("|---|---:|---:|---:|---|");
    let row = |label: &str, name: &str, floor: Option<&str>, target: &str| {
        let ns = per_call(name);
        if ns.is_nan() {
            println!("| {label} | not installed | | | |");
            return;
        }
        let vs_floor = floor
            .map(|f| format!("{:.2}x", ns / per_call(f)))
            .unwrap_or_default();
        println!(
            "| {label} | {ns:.1} | {:.2}x | {vs_floor} | {target} |",
            ns / untraced
        );
    };
    row("untraced", "untraced", None, "");
    row("allow-all seccomp filter only", "filter", None, "");
    row(
        "empty raw tracepoint program on sys_enter (floor for every task)",
        "empty",
        None,
        "",
    );
    row(
        "allow-all filter + empty program (floor for a watched task)",
        "empty+filter",
        None,
        "",
    );
    row(
        "bystander while `profile` records another cgroup",
        "bystander",
        Some("empty"),
        "<= 1.03x floor",
    );
    row(
        "filtered bystander (its own allow-all filter) while `profile` records another cgroup",
        "filtered bystander",
        Some("empty+filter"),
        "<= 1.03x floor",
    );
    row(
        "watched by `profile run`",
        "watched",
        Some("empty+filter"),
        "<= 1.10x floor",
    );
    row(
        "watched by `profile run`, static release executable",
        "watched, static",
        Some("empty+filter"),
        "<= 1.10x floor",
    );
    row("bpftrace count per (cgroup, syscall)", "bpftrace", None, "");
    row("strace -f (scaled)", "strace", None, "");
    let e = median(empty_ns);
    println!(
        "\nkernel BPF statistics (run_time_ns / run_cnt, medians; they include the statistics' own clock reads, so each is also given above the empty program measured the same way)\n"
    );
    println!("| program | ns/run | above the empty program |");
    println!("|---|---:|---:|");
    println!("| empty raw tracepoint program on sys_enter | {e:.1} | |");
    for (label, runs) in [
        ("`profile`'s sys_enter, bystander", bystander_ns),
        (
            "`profile`'s sys_enter, filtered bystander",
            filtered_bystander_ns,
        ),
        ("`profile`'s sys_enter, watched (`profile run`)", watched_ns),
        (
            "`profile`'s sys_enter, watched (static executable)",
            watched_static_ns,
        ),
    ] {
        let ns = median(runs);
        println!("| {label} | {ns:.1} | {:.1} |", ns - e);
    }
    let (unrecorded, recorded) = (median(cap_checks[0].clone()), median(cap_checks[1].clone()));
    println!(
        "\ncapability checks: {cap_calls} setuid(0) as root in a watched cgroup (one audited CAP_SETUID check each), median of {runs}\n"
    );
    println!("| variant | ns/call | checks per second | vs not recorded |");
    println!("|---|---:|---:|---:|");
    for (label, ns) in [
        ("capabilities not recorded", unrecorded),
        ("capabilities recorded (`--hardening`)", recorded),
    ] {
        println!(
            "| {label} | {ns:.1} | {:.0} | {:.2}x |",
            1e9 / ns,
            ns / unrecorded
        );
    }
    let static_rss = peak_rss_kib(watched_by(&static_profile))?;
    println!(
        "\n| build | peak RSS, `run` | RSS while recording | CPU, 20 × `report docker-default` |"
    );
    println!("|---|---:|---:|---:|");
    for (label, peak, steady, cpu) in [
        ("glibc (target/release)", rss, &steady_rss, &report_cpu[0]),
        (
            "static, musl (target/dist)",
            static_rss,
            &static_steady_rss,
            &report_cpu[1],
        ),
    ] {
        println!(
            "| {label} | {:.1} MiB | {:.1} MiB | {:.2} s |",
            peak as f64 / 1024.0,
            median(steady.clone()) / 1024.0,
            median(cpu.clone())
        );
    }
    println!("(targets: peak <= 20 MiB, while recording <= 10 MiB)");
    servers(&profile, &static_profile, runs)?;
    crate::scale::scale(&profile, &sysloop, scale.0, scale.1)
}

/// ns per setuid(0) of a loop in a cgroup the recorder watches, under an allow-all filter,
/// with the capability hook attached (`record`) or not. Recorded, every check must be counted.
fn capability_checks_ns(sysloop: &Path, calls: u64, record: bool) -> anyhow::Result<f64> {
    use tracer::{
        cgroup::OwnedCgroup,
        launch,
        recorder::{CapOutcome, Mode, Recorder},
    };
    let recorder = Recorder::load()?;
    if record {
        recorder.record_capabilities()?;
    }
    let cg = OwnedCgroup::create(&format!("profile-bench-caps-{}", std::process::id()))?;
    let recording = recorder.watch_cgroup(cg.id(), Mode::UnderFilter, false)?;
    let out = target_dir().join("release/setuid-bench.ns");
    let argv = [
        sysloop.display().to_string(),
        "setuid-bench".into(),
        calls.to_string(),
        out.display().to_string(),
    ];
    let mut child = launch::spawn(
        &argv,
        Some(&cg.procs_path()),
        Some(launch::allow_all()),
        true,
    )?;
    let status = child.wait()?;
    ensure!(status.success(), "{}: {status}", argv.join(" "));
    let snap = recorder.finish(recording)?;
    if record {
        // CAP_SETUID is 7.
        let checks: u64 = snap
            .capabilities
            .iter()
            .filter(|(c, _)| c.cap == 7 && c.outcome == CapOutcome::Granted)
            .map(|(_, o)| o.count)
            .sum();
        ensure!(
            checks >= calls,
            "{calls} setuid calls, {checks} CAP_SETUID checks recorded"
        );
    }
    let text = std::fs::read(&out).with_context(|| out.display().to_string())?;
    Ok(timing(&text)? / calls as f64)
}

/// A server on 127.0.0.1, untraced or recorded by `profile run`; stopped when dropped.
struct Server(std::process::Child);

impl Server {
    /// Runs `argv` behind `prefix` (e.g. `profile run -o /dev/null --`; empty: as it is).
    fn start(prefix: &[String], argv: &[String], port: u16) -> anyhow::Result<Server> {
        let all: Vec<&String> = prefix.iter().chain(argv.iter()).collect();
        let mut cmd = Command::new(all[0]);
        cmd.args(&all[1..]);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let server = Server(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                std::time::Instant::now() < deadline,
                "{} never listened on 127.0.0.1:{port}",
                argv[0]
            );
            thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; `profile run` passes SIGTERM on to the server.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// redis-benchmark's SET and GET requests per second against `port`.
fn redis_rps(port: u16) -> anyhow::Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-q", "-n", "50000", "-t", "set,get", "--csv"])
        .output()
        .context("redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SET","123456.79",...: the mean of the two tests' rates.
    let rates: Vec<f64> = text
        .lines()
        .filter_map(|l| l.split(',').nth(1))
        .filter_map(|v| v.trim_matches('"').parse().ok())
        .collect();
    ensure!(!rates.is_empty(), "no rates from redis-benchmark: {text}");
    Ok(rates.iter().sum::<f64>() / rates.len() as f64)
}

/// wrk's requests per second against nginx on `port` (3 s, 4 connections).
fn nginx_rps(port: u16) -> anyhow::Result<f64> {
    let out = Command::new("wrk")
        .args(["-t1", "-c4", "-d3s", &format!("http://127.0.0.1:{port}/")])
        .output()
        .context("wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no rate from wrk: {text}"))
}

/// How a server runs in the real-work rows.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Untraced,
    /// Under an allow-all filter with the empty program attached: the design's floor for a
    /// watched server.
    Floor,
    Recorded,
    /// Recorded by the static release executable.
    RecordedStatic,
}

/// Measures `rate` of the server `argv` makes on a fresh port, in each variant, `runs` times
/// interleaved; returns the medians (untraced, floor, recorded, recorded by the static build).
fn server_rates(
    (profile, static_profile): (&Path, &Path),
    allow_all: &Path,
    runs: usize,
    argv: impl Fn(u16) -> Vec<String>,
    rate: impl Fn(u16) -> anyhow::Result<f64>,
) -> anyhow::Result<[f64; 4]> {
    let mut got: [Vec<f64>; 4] = Default::default();
    let p = profile.display().to_string();
    for _ in 0..runs {
        for (i, variant) in [
            Variant::Untraced,
            Variant::Floor,
            Variant::Recorded,
            Variant::RecordedStatic,
        ]
        .into_iter()
        .enumerate()
        {
            let port = free_port()?;
            let prefix: Vec<String> = match variant {
                Variant::Untraced => Vec::new(),
                Variant::Floor => vec![
                    p.clone(),
                    "exec".into(),
                    "--profile".into(),
                    allow_all.display().to_string(),
                    "--".into(),
                ],
                Variant::Recorded | Variant::RecordedStatic => vec![
                    if variant == Variant::Recorded {
                        p.clone()
                    } else {
                        static_profile.display().to_string()
                    },
                    "run".into(),
                    "-o".into(),
                    "/dev/null".into(),
                    "--".into(),
                ],
            };
            let empty = (variant == Variant::Floor)
                .then(EmptyProgram::attach)
                .transpose()?;
            let _server = Server::start(&prefix, &argv(port), port)?;
            got[i].push(rate(port)?);
            drop(empty);
        }
    }
    Ok(got.map(median))
}

/// Real work: redis-server under redis-benchmark and nginx under wrk, over 127.0.0.1,
/// untraced, at the floor and recorded by `profile run`, interleaved; throughput as ratios.
fn servers(profile: &Path, static_profile: &Path, runs: usize) -> anyhow::Result<()> {
    let allow_all = target_dir().join("release/allow-all.json");
    let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    let dir = target_dir().join("release/bench-servers");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::write(dir.join("www/index.html"), "<html>bench</html>\n")?;
    println!(
        "\nreal work over 127.0.0.1, median of {runs} interleaved rounds (target: recorded >= 0.97x untraced)\n"
    );
    println!(
        "| server | load | untraced req/s | floor req/s | recorded req/s | recorded vs untraced | recorded vs floor | recorded by the static build req/s | static vs floor |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, load: &str, [u, f, r, rs]: [f64; 4]| {
        println!(
            "| {name} | {load} | {u:.0} | {f:.0} | {r:.0} | {:.3} | {:.3} | {rs:.0} | {:.3} |",
            r / u,
            r / f,
            rs / f
        );
    };
    if have("redis-server") && have("redis-benchmark") {
        let argv = |port: u16| -> Vec<String> {
            [
                "redis-server",
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let rates = server_rates((profile, static_profile), &allow_all, runs, argv, redis_rps)?;
        row("redis-server", "redis-benchmark SET, GET", rates);
    } else {
        println!("| redis-server | not installed | | | | | | | |");
    }
    if have("nginx") && have("wrk") {
        let d = dir.display().to_string();
        let argv = |port: u16| -> Vec<String> {
            let conf = format!("{d}/nginx-{port}.conf");
            let _ = std::fs::write(
                &conf,
                format!(
                    "daemon off; master_process off; worker_processes 1;\n\
                     pid {d}/nginx-{port}.pid; error_log {d}/error.log;\n\
                     events {{}}\n\
                     http {{ access_log off; server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n"
                ),
            );
            vec!["nginx".into(), "-c".into(), conf, "-p".into(), d.clone()]
        };
        let rates = server_rates((profile, static_profile), &allow_all, runs, argv, nginx_rps)?;
        row("nginx", "wrk, 4 connections", rates);
    } else {
        println!("| nginx | not installed | | | | | | | |");
    }
    Ok(())
}
