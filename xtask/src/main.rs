//! Project chores that are not the product: the test runner CI uses, the benchmark, the demo.
use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, ensure};
use clap::{Parser, Subcommand};

mod bench;
mod dist;
mod man;
mod scale;
mod tail;

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
        /// Containers the scale row's `watch` records, alive together (0: no scale row).
        #[arg(long, default_value_t = 250)]
        containers: usize,
        /// How many of them start at once.
        #[arg(long, default_value_t = 25)]
        at_once: usize,
    },
    /// Build the example images (examples/images/*), train their profiles into profiles/
    /// (three runs each, verified under enforcement), and run `hello` under its profile.
    Demo,
    /// Build the example images locally (profile-example/<name>:latest).
    Images,
    /// Write the release artifacts into target/dist/: the static executable, a tarball with
    /// it, the README, licences, shell completions and man pages, and SHA256SUMS.
    Dist {
        /// Also build the image profile:<version> from the Dockerfile (needs Docker).
        #[arg(long)]
        image: bool,
    },
    /// Measure which calls the container runtime's init makes after installing the filter:
    /// many starts at once under stress, on a private dockerd (needs root; a few minutes).
    RuntimeTail {
        /// The runtime measured: runc or crun.
        #[arg(long, default_value = "runc")]
        runtime: String,
        /// Containers started per condition.
        #[arg(long, default_value_t = 120)]
        starts: usize,
        /// How many start at once.
        #[arg(long, default_value_t = 60)]
        at_once: usize,
        /// Only the conditions whose name contains this ("plain", "Podman").
        #[arg(long)]
        only: Option<String>,
    },
    /// Take each call of the runtime's tail out of a trained profile, one at a time, and count
    /// how often `profile verify` finds a start failing and names the runtime (needs root; long).
    RuntimeRemovals {
        /// The runtime measured: runc or crun.
        #[arg(long, default_value = "runc")]
        runtime: String,
        /// Starts per removal.
        #[arg(long, default_value_t = 20)]
        starts: usize,
        /// How many verify at once.
        #[arg(long, default_value_t = 4)]
        at_once: usize,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Where cargo builds, as cargo itself decides: CARGO_TARGET_DIR when it is set (relative to
/// the folder `cargo xtask` runs in), `target/` of the workspace otherwise.
fn target_dir() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| root());
    target_dir_from(std::env::var_os("CARGO_TARGET_DIR"), &here)
}

fn target_dir_from(set: Option<std::ffi::OsString>, here: &Path) -> PathBuf {
    match set.filter(|dir| !dir.is_empty()) {
        Some(dir) => here.join(dir),
        None => root().join("target"),
    }
}

/// `cargo` as xtask runs it: in the workspace, building where [`target_dir`] says.
fn cargo_command() -> Command {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root())
        .env("CARGO_TARGET_DIR", target_dir());
    cargo
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let status = cargo_command()
        .args(args)
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
        Task::Bench {
            calls,
            runs,
            containers,
            at_once,
        } => bench::bench(calls, runs, (containers, at_once)),
        Task::Demo => demo(),
        Task::Images => images().map(drop),
        Task::Dist { image } => dist::dist(image),
        Task::RuntimeTail {
            runtime,
            starts,
            at_once,
            only,
        } => tail::runtime_tail(&runtime, starts, at_once, only.as_deref()),
        Task::RuntimeRemovals {
            runtime,
            starts,
            at_once,
        } => tail::runtime_removals(&runtime, starts, at_once),
    }
}

/// What a test run counted. Skipped tests pass in libtest's eyes; they say `SKIPPED` instead.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl Tally {
    /// Counts one line of `cargo test --show-output`.
    fn read(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("test result: ") {
            self.passed += field(rest, "passed");
            self.failed += field(rest, "failed");
        } else if line.starts_with("SKIPPED ") {
            self.skipped += 1;
        }
    }

    /// Counts one line of `cargo nextest run`: the closing summary
    /// (`Summary [ 502.1s] 394 tests run: 392 passed (3 slow), 1 failed, 1 timed out, 0 skipped`)
    /// and the SKIPPED lines of the tests' own output.
    fn read_nextest(&mut self, line: &str) {
        let line = line.trim_start();
        if line.starts_with("SKIPPED ") {
            self.skipped += 1;
            return;
        }
        let Some(rest) = line.strip_prefix("Summary ") else {
            return;
        };
        let Some((_, counts)) = rest.split_once(" run: ") else {
            return;
        };
        // Drop the parenthesised details ("(3 slow, 1 flaky)"), then read "N what" parts.
        let mut plain = String::new();
        let mut depth = 0u32;
        for c in counts.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        for part in plain.split(',') {
            let Some((n, what)) = part.trim().split_once(' ') else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else {
                continue;
            };
            match what.trim() {
                "passed" => self.passed += n,
                "failed" | "timed out" | "exec failed" | "leaky" => self.failed += n,
                _ => {}
            }
        }
    }

    /// The totals once `cargo test` ended with `success`.
    fn finish(mut self, success: bool) -> Self {
        // A skipped test returned early: libtest counted it as passed.
        self.passed = self.passed.saturating_sub(self.skipped);
        if !success && self.failed == 0 {
            eprintln!("xtask: cargo test failed without a failing test: a build error or a crash");
            self.failed = 1;
        }
        self
    }
}

/// Runs every check and test, then ends with one summary line, also when a step before the
/// tests fails (`fmt: 0 passed, 1 failed, 0 skipped`).
fn test(no_lint: bool) -> anyhow::Result<()> {
    match run_checks_and_tests(no_lint) {
        Ok(t) => {
            println!(
                "{} passed, {} failed, {} skipped",
                t.passed, t.failed, t.skipped
            );
            ensure!(t.failed == 0, "tests failed");
            ensure!(t.passed > 0, "no test ran");
            ensure!(
                t.skipped == 0 || std::env::var_os("CI").is_none(),
                "{} test(s) skipped, and CI must not skip",
                t.skipped
            );
            Ok(())
        }
        Err((step, err)) => {
            eprintln!("xtask: {err:#}");
            println!("{step}: 0 passed, 1 failed, 0 skipped");
            Err(err)
        }
    }
}

fn run_checks_and_tests(no_lint: bool) -> Result<Tally, (&'static str, anyhow::Error)> {
    if !is_root() {
        if std::env::var_os("CI").is_some() {
            return Err((
                "setup",
                anyhow::anyhow!("the end-to-end tests need root, and CI must not skip them"),
            ));
        }
        eprintln!("xtask: not root: end-to-end tests will report themselves SKIPPED");
    }
    if !no_lint {
        cargo(&["fmt", "--all", "--", "--check"]).map_err(|e| ("fmt", e))?;
        cargo(&["clippy", "--all-targets", "--", "-D", "warnings"]).map_err(|e| ("clippy", e))?;
    }
    cargo(&["build", "-p", "tracer", "--bins"]).map_err(|e| ("build", e))?;
    // The release artifacts, built once here: tests/dist.rs checks them and their image.
    dist::dist(false).map_err(|e| ("dist", e))?;
    run_tests().map_err(|e| ("test", e))
}

/// The workspace's tests, their output passed through and counted: under cargo-nextest when
/// it is installed (every test of every binary shares the two slots, so one slow binary does
/// not hold the rest back), else under `cargo test`.
fn run_tests() -> anyhow::Result<Tally> {
    let nextest = cargo_command()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if nextest {
        run_nextest()
    } else {
        eprintln!("xtask: cargo-nextest not installed: running the tests under cargo test");
        run_libtest()
    }
}

/// `cargo nextest run` for the workspace. Its report and each test's output go to stderr.
fn run_nextest() -> anyhow::Result<Tally> {
    // Passing tests' output is shown too, so skipped ones can be counted.
    let mut nextest = cargo_command();
    nextest.args([
        "nextest",
        "run",
        "--workspace",
        "--exclude",
        "tracer-ebpf",
        "--no-fail-fast",
        "--test-threads",
        "2",
        "--success-output",
        "immediate",
        "--failure-output",
        "immediate-final",
    ]);
    counted(nextest, Stream::Stderr, Tally::read_nextest)
}

/// `cargo test` for the workspace.
fn run_libtest() -> anyhow::Result<Tally> {
    // End-to-end tests share the kernel; two at a time keeps them quick on a 2-core machine.
    // --show-output prints what passing tests said, so skipped ones can be counted.
    let mut libtest = cargo_command();
    libtest
        .args([
            "test",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--no-fail-fast",
        ])
        .args(["--", "--test-threads=2", "--show-output"]);
    counted(libtest, Stream::Stdout, Tally::read)
}

/// Where a test runner reports.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Runs `runner`, passing its report through (to where it was going) and counting each line.
fn counted(
    mut runner: Command,
    stream: Stream,
    read: fn(&mut Tally, &str),
) -> anyhow::Result<Tally> {
    let what = format!("{:?}", runner.get_args().take(2).collect::<Vec<_>>());
    let mut child = match stream {
        Stream::Stdout => runner.stdout(Stdio::piped()),
        Stream::Stderr => runner.stderr(Stdio::piped()),
    }
    .spawn()
    .with_context(|| format!("cargo {what}"))?;
    let report: Box<dyn std::io::Read> = match stream {
        Stream::Stdout => Box::new(child.stdout.take().context("the runner's output")?),
        Stream::Stderr => Box::new(child.stderr.take().context("the runner's output")?),
    };
    let mut tally = Tally::default();
    for line in BufReader::new(report).lines() {
        let line = line?;
        match stream {
            Stream::Stdout => println!("{line}"),
            Stream::Stderr => eprintln!("{line}"),
        }
        read(&mut tally, &line);
    }
    let status = child.wait()?;
    Ok(tally.finish(status.success()))
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

/// The example images, by name (examples/images/<name>, built as profile-example/<name>).
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
        let ctx = target_dir().join("images").join(name);
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
    let (profile, _) = bench::release_binaries()?;
    images()?;
    // Committed: the profile and its summary, which change only when the profile does. The
    // full report (calls, first programs, convergence) differs from run to run: under target/.
    let profiles = root().join("profiles");
    let reports = target_dir().join("demo");
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
                .arg("examples/images/web/exercise.sh");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_go_where_cargo_target_dir_says() {
        let here = Path::new("/work/elsewhere");
        assert_eq!(target_dir_from(None, here), root().join("target"));
        assert_eq!(
            target_dir_from(Some("".into()), here),
            root().join("target")
        );
        assert_eq!(
            target_dir_from(Some("/tmp/t".into()), here),
            Path::new("/tmp/t")
        );
        assert_eq!(
            target_dir_from(Some("out".into()), here),
            Path::new("/work/elsewhere/out")
        );
    }

    #[test]
    fn skipped_tests_are_counted_apart_from_passed_ones() {
        let output = "\
running 3 tests
test a ... ok
test b ... ok
test c ... FAILED

successes:

---- b stdout ----
SKIPPED b: needs root (eBPF, cgroups)

test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s
test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";
        let mut tally = Tally::default();
        for line in output.lines() {
            tally.read(line);
        }
        let want = Tally {
            passed: 5,
            failed: 1,
            skipped: 1,
        };
        assert_eq!(tally.finish(false), want);
        // nextest's summary, with the SKIPPED lines of the tests' output.
        let mut nextest = Tally::default();
        for line in [
            "        PASS [   0.012s] (1/9) profile-tests::edges a",
            "SKIPPED a: needs root (eBPF, cgroups)",
            "     Summary [ 502.104s] 9 tests run: 6 passed (2 slow, 1 flaky), 2 failed, 1 timed out, 0 skipped",
            "        FAIL [   1.000s] (9/9) profile-tests::edges z",
        ] {
            nextest.read_nextest(line);
        }
        let want = Tally {
            passed: 5,
            failed: 3,
            skipped: 1,
        };
        assert_eq!(nextest.finish(false), want);
        // cargo failing with no failed test (a build error) still counts as a failure.
        let mut built_nothing = Tally::default();
        built_nothing.read("error: could not compile `tracer`");
        assert_eq!(built_nothing.finish(false).failed, 1);
    }
}
