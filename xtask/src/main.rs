//! Project chores that are not the product: the test runner CI uses, the benchmark, the demo.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build, check formatting and lints, and run every test (the end-to-end ones need root).
    Test {
        /// Skip `cargo fmt --check` and clippy.
        #[arg(long)]
        no_lint: bool,
    },
    /// Measure recording overhead against an untraced run, side by side in one invocation.
    Bench {
        /// getppid calls per run.
        #[arg(long, default_value_t = 4_000_000)]
        calls: u64,
        /// Runs per variant (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Build the example images (examples/images/*), train their profiles into profiles/
    /// (three runs each, verified under enforcement), and run `hello` under its profile.
    Demo,
    /// Build the example images locally (profile-example/<name>:latest).
    Images,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("cargo {args:?}"))?;
    ensure!(status.success(), "cargo {} failed", args.join(" "));
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Test { no_lint } => test(no_lint),
        Task::Bench { calls, runs } => bench(calls, runs),
        Task::Demo => demo(),
        Task::Images => images().map(drop),
    }
}

fn test(no_lint: bool) -> anyhow::Result<()> {
    if !is_root() {
        if std::env::var_os("CI").is_some() {
            bail!("the end-to-end tests need root, and CI must not skip them");
        }
        eprintln!("xtask: not root: end-to-end tests will report themselves SKIPPED");
    }
    if !no_lint {
        cargo(&["fmt", "--all", "--", "--check"])?;
        cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    }
    cargo(&["build", "-p", "tracer", "--bins"])?;
    // End-to-end tests share the kernel; two at a time keeps them quick on a 2-core machine.
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "test",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--no-fail-fast",
        ])
        .args(["--", "--test-threads=2"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().context("cargo test output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            passed += field(rest, "passed");
            failed += field(rest, "failed");
        }
    }
    let status = child.wait()?;
    // One closing line for the whole run, across all test binaries.
    println!("{passed} passed, {failed} failed");
    ensure!(status.success() && failed == 0, "tests failed");
    ensure!(passed > 0, "no test ran");
    Ok(())
}

/// The number before `name` in a libtest summary ("ok. 8 passed; 0 failed; ...").
fn field(summary: &str, name: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| {
            let part = part
                .trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ");
            part.strip_suffix(name)?.trim().parse().ok()
        })
        .unwrap_or(0)
}

fn release_binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    cargo(&["build", "--release", "-p", "tracer", "--bins"])?;
    let target = root().join("target/release");
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
    let text = String::from_utf8_lossy(&out.stdout);
    let ns = text
        .lines()
        .find_map(|l| l.strip_prefix("ns="))
        .with_context(|| format!("no timing in output: {text}"))?;
    Ok(ns.trim().parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `background`, waits until it is set up, and returns it for the caller to stop.
fn start_background(mut cmd: Command, settle: Duration) -> anyhow::Result<std::process::Child> {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting background tracer")?;
    thread::sleep(settle);
    Ok(child)
}

fn stop(mut child: std::process::Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
}

/// Peak RSS in KiB of `cmd`, from wait4's rusage.
fn peak_rss_kib(mut cmd: Command) -> anyhow::Result<i64> {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let mut status = 0;
    // SAFETY: rusage is plain data, zeroed before use.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child.
    let rc = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    ensure!(rc > 0, "wait4 failed");
    Ok(usage.ru_maxrss)
}

fn bench(calls: u64, runs: usize) -> anyhow::Result<()> {
    ensure!(
        is_root(),
        "the benchmark loads eBPF programs: run it as root"
    );
    let (profile, sysloop) = release_binaries()?;
    let n = calls.to_string();
    let plain = || {
        let mut c = Command::new(&sysloop);
        c.args(["bench", &n]);
        c
    };
    let watched = || {
        let mut c = Command::new(&profile);
        c.args(["run", "-o", "/dev/null", "--"])
            .arg(&sysloop)
            .args(["bench", &n]);
        c
    };
    let has_bpftrace = Command::new("bpftrace").arg("--version").output().is_ok();
    let strace_calls = (calls / 100).max(1000);
    let mut base = Vec::new();
    let mut under = Vec::new();
    let mut bystander = Vec::new();
    let mut bpftrace = Vec::new();
    let mut strace = Vec::new();
    let mut steady_rss = Vec::new();
    for round in 0..runs {
        eprintln!("xtask bench: round {}/{runs}", round + 1);
        base.push(loop_ns(plain())?);
        under.push(loop_ns(watched())?);
        let mut idle = Command::new(&profile);
        idle.args(["run", "-o", "/dev/null", "--"])
            .arg(&sysloop)
            .args(["sleep", "600000"]);
        let bg = start_background(idle, Duration::from_millis(1500))?;
        bystander.push(loop_ns(plain())?);
        steady_rss.push(vm_rss_kib(bg.id()));
        stop(bg);
        if has_bpftrace {
            let mut bt = Command::new("bpftrace");
            bt.args([
                "-e",
                "tracepoint:raw_syscalls:sys_enter { @[cgroup, args->id] = count(); }",
            ]);
            let bg = start_background(bt, Duration::from_secs(3))?;
            bpftrace.push(loop_ns(plain())?);
            stop(bg);
        }
        let mut st = Command::new("strace");
        st.args(["-f", "-qq", "-o", "/dev/null"])
            .arg(&sysloop)
            .args(["bench", &strace_calls.to_string()]);
        if let Ok(ns) = loop_ns(st) {
            strace.push(ns * (calls as f64 / strace_calls as f64));
        }
    }
    let rss = peak_rss_kib(watched())?;
    let b = median(base);
    let row = |name: &str, v: Vec<f64>, target: &str| {
        if v.is_empty() {
            println!("| {name} | not installed | | {target} |");
        } else {
            let m = median(v);
            println!(
                "| {name} | {:.1} | {:.2}x | {target} |",
                m / calls as f64,
                m / b
            );
        }
    };
    println!("getppid loop, {calls} calls, median of {runs} rounds\n");
    println!("| variant | ns/call | vs untraced | target |");
    println!("|---|---:|---:|---|");
    println!("| untraced | {:.1} | 1.00x | |", b / calls as f64);
    row("watched by `profile run`", under, "<= 1.10x");
    row(
        "bystander while `profile` watches another cgroup",
        bystander,
        "<= 1.05x",
    );
    row("bpftrace count per (cgroup, syscall)", bpftrace, "");
    row("strace -f (scaled)", strace, "");
    println!(
        "\npeak RSS of `profile run`: {:.1} MiB (target <= 20 MiB); while recording: {:.1} MiB",
        rss as f64 / 1024.0,
        median(steady_rss) / 1024.0
    );
    Ok(())
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

/// The example images: (name, image reference).
const EXAMPLES: &[&str] = &["hello", "web"];

fn example_image(name: &str) -> String {
    format!("profile-example/{name}:latest")
}

/// Builds every example image from examples/images/<name> plus Debian's static busybox.
fn images() -> anyhow::Result<Vec<String>> {
    let busybox = Path::new("/bin/busybox");
    ensure!(
        busybox.exists(),
        "/bin/busybox is missing: apt-get install busybox-static (scripts/host-setup.sh does)"
    );
    let mut built = Vec::new();
    for name in EXAMPLES {
        let src = root().join("examples/images").join(name);
        let ctx = root().join("target/images").join(name);
        let _ = std::fs::remove_dir_all(&ctx);
        std::fs::create_dir_all(&ctx)?;
        for entry in std::fs::read_dir(&src).with_context(|| src.display().to_string())? {
            let entry = entry?;
            std::fs::copy(entry.path(), ctx.join(entry.file_name()))?;
        }
        std::fs::copy(busybox, ctx.join("busybox"))?;
        let image = example_image(name);
        let out = Command::new("docker")
            .args(["build", "-q", "-t", &image])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .context("docker build (is the Docker CLI installed?)")?;
        ensure!(
            out.status.success(),
            "docker build {image} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("built {image}");
        built.push(image);
    }
    Ok(built)
}

fn demo() -> anyhow::Result<()> {
    ensure!(is_root(), "the demo loads eBPF programs: run it as root");
    let (profile, _) = release_binaries()?;
    images()?;
    // Committed: the profile and its summary, which change only when the profile does. The
    // full report (calls, first programs, convergence) differs from run to run: under target/.
    let profiles = root().join("profiles");
    let reports = root().join("target/demo");
    std::fs::create_dir_all(&reports).with_context(|| reports.display().to_string())?;
    let port = "18080";
    for name in EXAMPLES {
        let image = example_image(name);
        let stem = format!("profile-example-{name}-latest");
        let json = profiles.join(format!("{stem}.json"));
        let md = reports.join(format!("{stem}.md"));
        let mut train = Command::new(&profile);
        train
            .args(["train", "--image", &image, "--runs", "3", "--verify", "-o"])
            .arg(&json)
            .arg("--report")
            .arg(&md)
            .arg("--summary")
            .arg(profiles.join(format!("{stem}.md")))
            .current_dir(root());
        if *name == "web" {
            train
                .args(["-p", &format!("127.0.0.1:{port}:8080"), "--exercise"])
                .arg("examples/images/web/exercise.sh")
                .env("PORT", port);
        }
        println!("\n$ profile train --image {image} ...");
        ensure!(train.status()?.success(), "profile train {image} failed");
        println!("{}", std::fs::read_to_string(&md)?);
        if *name == "hello" {
            println!("$ docker run --rm --security-opt seccomp={stem}.json {image}");
            let status = Command::new("docker")
                .args(["run", "--rm", "--security-opt"])
                .arg(format!("seccomp={}", json.display()))
                .arg(&image)
                .status()?;
            ensure!(status.success(), "{image} failed under its own profile");
        }
    }
    Ok(())
}
