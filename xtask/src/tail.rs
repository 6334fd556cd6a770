//! `cargo xtask runtime-tail`: which calls the container runtime's init makes after it has
//! installed the container's seccomp filter, measured under stress.
//!
//! A private dockerd (its own data root and socket, no bridge) runs the example `hello` image
//! again and again, many containers at once, under conditions that shake runc's Go runtime:
//! CPU contention, a garbage collector that runs all the time (GOGC=1, through a wrapper
//! runtime), one or many Ps, and container configurations that take runc's other paths (a
//! user, a working directory, no capabilities, no_new_privs, a terminal, `docker exec`).
//! `profile watch --per container` records every container; the kernel side tells the
//! runtime's calls (before the exec that hands over to the container's process) from the
//! workload's, and each container's index row lists them. The result says, per call, in how
//! many containers of each condition it was seen.
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use std::os::unix::fs::PermissionsExt as _;

use anyhow::{Context as _, bail, ensure};

use crate::{bench::release_binaries, example_image, images, is_root, target_dir};

/// A condition: how the containers are started, and what else loads the machine meanwhile.
struct Condition {
    name: &'static str,
    runtime: &'static str,
    /// `docker run` options.
    options: &'static [&'static str],
    /// Busy loops per CPU while the containers start.
    hogs_per_cpu: usize,
    /// Start containers with `docker exec` into running ones instead of `docker run`.
    exec: bool,
}

const CONDITIONS: &[Condition] = &[
    Condition {
        name: "plain",
        runtime: "runc",
        options: &[],
        hogs_per_cpu: 0,
        exec: false,
    },
    Condition {
        name: "cpu contention",
        runtime: "runc",
        options: &[],
        hogs_per_cpu: 2,
        exec: false,
    },
    Condition {
        name: "GOGC=1",
        runtime: "runc-gogc1",
        options: &[],
        hogs_per_cpu: 0,
        exec: false,
    },
    Condition {
        name: "GOGC=1, one P, cpu contention",
        runtime: "runc-gogc1-p1",
        options: &[],
        hogs_per_cpu: 2,
        exec: false,
    },
    Condition {
        name: "GOGC=1, 16 Ps, cpu contention",
        runtime: "runc-gogc1-p16",
        options: &[],
        hogs_per_cpu: 2,
        exec: false,
    },
    Condition {
        name: "user 1000:1000, workdir, no capabilities",
        runtime: "runc-gogc1",
        options: &["-u", "1000:1000", "-w", "/tmp", "--cap-drop", "ALL"],
        hogs_per_cpu: 1,
        exec: false,
    },
    Condition {
        name: "no-new-privileges, terminal, extra groups",
        runtime: "runc-gogc1",
        options: &[
            "--security-opt",
            "no-new-privileges",
            "-t",
            "--group-add",
            "10",
        ],
        hogs_per_cpu: 1,
        exec: false,
    },
    Condition {
        name: "docker exec",
        runtime: "runc-gogc1",
        options: &[],
        hogs_per_cpu: 1,
        exec: true,
    },
];

/// Wrapper runtimes registered with the private dockerd: runc with its Go runtime tuned.
const WRAPPERS: &[(&str, &str)] = &[
    ("runc-gogc1", "GOGC=1"),
    ("runc-gogc1-p1", "GOGC=1 GOMAXPROCS=1"),
    ("runc-gogc1-p16", "GOGC=1 GOMAXPROCS=16"),
];

const LABEL: &str = "io.github.profile.runtime-tail=1";

pub(crate) fn runtime_tail(starts: usize, at_once: usize) -> anyhow::Result<()> {
    ensure!(is_root(), "recording needs root");
    ensure!(
        at_once > 0 && starts > 0,
        "--starts and --at-once must be positive"
    );
    let (profile, _) = release_binaries()?;
    images()?;
    let dir = target_dir().join("runtime-tail");
    let _ = std::fs::remove_dir_all(dir.join("out"));
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let runc = which("runc")?;
    for (name, env) in WRAPPERS {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexport {env}\nexec {} \"$@\"\n", runc.display()),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    let daemon = Daemon::start(&dir)?;
    let image = example_image("hello");
    daemon.load(&image)?;
    let version = command_output(Command::new(&runc).arg("--version"))?;
    let mut results: Vec<(&Condition, usize, BTreeMap<String, usize>)> = Vec::new();
    for condition in CONDITIONS {
        println!(
            "condition: {} ({starts} starts, {at_once} at once)",
            condition.name
        );
        let seen = measure(&daemon, &profile, &dir, &image, condition, starts, at_once)?;
        results.push((condition, seen.0, seen.1));
    }
    let report = render(&version, starts, at_once, &results);
    std::fs::write(dir.join("result.md"), &report)?;
    println!("\n{report}");
    println!("written to {}", dir.join("result.md").display());
    Ok(())
}

/// Records `starts` containers of `condition`, `at_once` at a time; returns how many were
/// recorded and, per call the runtime made, in how many of them.
fn measure(
    daemon: &Daemon,
    profile: &Path,
    dir: &Path,
    image: &str,
    condition: &Condition,
    starts: usize,
    at_once: usize,
) -> anyhow::Result<(usize, BTreeMap<String, usize>)> {
    let out = dir
        .join("out")
        .join(condition.name.replace([' ', ',', '='], "_"));
    std::fs::create_dir_all(&out)?;
    let mut watch = Command::new(profile)
        .args(["watch", "--per", "container", "--filter"])
        .arg(format!("label={LABEL}"))
        .arg("-o")
        .arg(&out)
        .env("DOCKER_HOST", &daemon.host)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting profile watch")?;
    wait_for_line(&mut watch, "watching containers")?;
    let hogs = Hogs::start(condition.hogs_per_cpu)?;
    // `docker exec` needs running containers to enter: one per slot, recorded too.
    let hosts: Vec<String> = if condition.exec {
        (0..at_once)
            .map(|i| {
                let name = format!("profile-tail-host-{i}");
                let _ = daemon.docker(&["rm", "-f", &name]);
                let out = daemon.docker(&[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--label",
                    LABEL,
                    "--runtime",
                    condition.runtime,
                    image,
                    "sleep",
                    "3600",
                ])?;
                ensure!(
                    out.status.success(),
                    "starting {name}: {}",
                    text(&out.stderr)
                );
                Ok(name)
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let mut done = 0;
    while done < starts {
        let batch = at_once.min(starts - done);
        let children: Vec<Child> = (0..batch)
            .map(|i| {
                let mut cmd = Command::new("docker");
                cmd.args(["-H", &daemon.host]);
                if condition.exec {
                    cmd.args(["exec", &hosts[i], "sh", "-c", "ls / >/dev/null"]);
                } else {
                    cmd.args([
                        "run",
                        "--rm",
                        "--label",
                        LABEL,
                        "--runtime",
                        condition.runtime,
                    ]);
                    cmd.args(condition.options);
                    cmd.args([image, "sh", "-c", "ls / >/dev/null; sleep 1"]);
                }
                cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()
            })
            .collect::<Result<_, _>>()
            .context("starting docker")?;
        for mut child in children {
            let _ = child.wait();
        }
        done += batch;
    }
    for name in &hosts {
        let _ = daemon.docker(&["rm", "-f", name]);
    }
    drop(hogs);
    // Deaths are reported a moment after the exits.
    thread::sleep(Duration::from_secs(3));
    // SAFETY: kill(2) on the child this function started.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    let status = watch.wait()?;
    ensure!(
        status.code() == Some(130),
        "profile watch ended with {status}"
    );
    let index = std::fs::read_to_string(out.join("index.json"))?;
    let rows = index_rows(&index)?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut recorded = 0;
    for calls in rows {
        if calls.is_empty() {
            continue;
        }
        recorded += 1;
        for call in calls {
            *seen.entry(call).or_default() += 1;
        }
    }
    Ok((recorded, seen))
}

/// The `runtime_calls` of each row of watch's index.json.
fn index_rows(index: &str) -> anyhow::Result<Vec<BTreeSet<String>>> {
    let json: serde_json::Value = serde_json::from_str(index).context("index.json")?;
    let rows = json["profiles"]
        .as_array()
        .context("index.json: no profiles")?;
    Ok(rows
        .iter()
        .map(|r| {
            r["runtime_calls"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect())
}

fn render(
    version: &str,
    starts: usize,
    at_once: usize,
    results: &[(&Condition, usize, BTreeMap<String, usize>)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "runtime: {}\n{starts} starts per condition, {at_once} at once\n",
        version.lines().collect::<Vec<_>>().join("; ")
    );
    let calls: BTreeSet<&String> = results.iter().flat_map(|(_, _, s)| s.keys()).collect();
    let _ = write!(out, "| call |");
    for (c, n, _) in results {
        let _ = write!(out, " {} ({n}) |", c.name);
    }
    let _ = write!(out, "\n|---|");
    for _ in results {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for call in calls {
        let _ = write!(out, "| `{call}` |");
        for (_, _, seen) in results {
            let _ = write!(out, " {} |", seen.get(call).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    out
}

/// A dockerd of its own, with the wrapper runtimes registered; stopped when dropped.
struct Daemon {
    child: Child,
    host: String,
    dir: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> anyhow::Result<Self> {
        let state = dir.join("docker");
        std::fs::create_dir_all(&state)?;
        let host = format!("unix://{}", state.join("docker.sock").display());
        let log = std::fs::File::create(state.join("dockerd.log"))?;
        let mut cmd = Command::new("dockerd");
        cmd.arg("--data-root")
            .arg(state.join("data"))
            .arg("--exec-root")
            .arg(state.join("exec"))
            .arg("--pidfile")
            .arg(state.join("docker.pid"))
            .args(["-H", &host, "--bridge", "none", "--iptables=false"])
            .args(["--containerd-namespace", "profile-tail"])
            .args(["--containerd-plugins-namespace", "profile-tail-plugins"]);
        for (name, _) in WRAPPERS {
            cmd.arg("--add-runtime")
                .arg(format!("{name}={}", dir.join(name).display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        let daemon = Daemon {
            child,
            host,
            dir: state,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !daemon.docker(&["version"])?.status.success() {
            if Instant::now() > deadline {
                bail!(
                    "the private dockerd did not start: see {}",
                    daemon.dir.join("dockerd.log").display()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(daemon)
    }

    fn docker(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new("docker")
            .args(["-H", &self.host])
            .args(args)
            .output()
            .context("docker")
    }

    /// Copies `image` from the system's dockerd into this one.
    fn load(&self, image: &str) -> anyhow::Result<()> {
        let save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .context("docker save")?;
        let stdout = save.stdout.context("docker save output")?;
        let status = Command::new("docker")
            .args(["-H", &self.host, "load", "-q"])
            .stdin(stdout)
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "loading {image} into the private dockerd");
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the dockerd this process started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Busy loops that keep every CPU contended; killed when dropped.
struct Hogs(Vec<Child>);

impl Hogs {
    fn start(per_cpu: usize) -> anyhow::Result<Self> {
        let cpus = thread::available_parallelism().map_or(1, |n| n.get());
        let hogs = (0..per_cpu * cpus)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
            })
            .collect::<Result<_, _>>()
            .context("starting busy loops")?;
        Ok(Hogs(hogs))
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_line(child: &mut Child, needle: &str) -> anyhow::Result<()> {
    use std::io::BufRead as _;
    let stderr = child.stderr.take().context("watch's stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line?.contains(needle) {
            // Keep draining, so that watch never blocks on a full pipe.
            thread::spawn(move || lines.for_each(drop));
            return Ok(());
        }
    }
    bail!("profile watch ended before it started watching")
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found on PATH"))
}

fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().context("running a command")?;
    Ok(text(&out.stdout).trim().to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
