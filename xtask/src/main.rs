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
        Task::Bench { calls, runs } => bench::bench(calls, runs),
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

/// `cargo test` for the workspace, its output passed through and counted.
fn run_tests() -> anyhow::Result<Tally> {
    // End-to-end tests share the kernel; two at a time keeps them quick on a 2-core machine.
    // --show-output prints what passing tests said, so skipped ones can be counted.
    let mut child = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "test",
            "--workspace",
            "--exclude",
            "tracer-ebpf",
            "--no-fail-fast",
        ])
        .args(["--", "--test-threads=2", "--show-output"])
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cargo test")?;
    let mut tally = Tally::default();
    let stdout = child.stdout.take().context("cargo test output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        tally.read(&line);
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
    let (profile, _) = bench::release_binaries()?;
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
        // cargo failing with no failed test (a build error) still counts as a failure.
        let mut built_nothing = Tally::default();
        built_nothing.read("error: could not compile `tracer`");
        assert_eq!(built_nothing.finish(false).failed, 1);
    }
}
