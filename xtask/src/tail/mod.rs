//! `cargo xtask runtime-tail`: which calls the container runtime's init makes after it has
//! installed the container's seccomp filter, measured under stress, beside what the runtime's
//! binary says it can make then.
//!
//! A private dockerd (its own data root and socket, no bridge) runs the example `hello` image
//! again and again, many containers at once, with the runtime measured (`--runtime runc` or
//! `crun`), under conditions that shake it: CPU contention; a large environment, which runc's
//! init copies for its final execve after the filter, so that its Go heap grows and its
//! collector runs under the filter (a small GOGC can't: runc hands its init only GOMAXPROCS of
//! its environment); many Ps (GOMAXPROCS=16, through a wrapper runtime); container
//! configurations that take the runtime's other paths (a user, a working directory, no
//! capabilities, no_new_privs, a terminal, `docker exec`); and Podman's service running the
//! same runtime. `profile watch --per container` records every container; the kernel side
//! tells the runtime's calls (before the exec that hands over to the container's process) from
//! the workload's, and each container's index row lists them. The result says, per call, in
//! how many containers of each condition it was seen, and whether the binary says so too.
//!
//! `cargo xtask runtime-removals` then takes each call of the runtime's tail out of a profile
//! by hand and counts how often `profile verify` finds a start failing, and names it.
mod engines;
mod removals;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};

use crate::{bench::release_binaries, example_image, images, is_root, root, target_dir};
use engines::{Engine, Hogs, large_environment, text, which};
pub(crate) use removals::runtime_removals;

/// A condition: how the containers are started, and what else loads the machine meanwhile.
struct Condition {
    name: &'static str,
    /// The runtimes it applies to.
    runtimes: &'static [&'static str],
    /// The wrapper runtime the containers run with instead of the measured one.
    wrapper: Option<&'static str>,
    /// `docker run` options.
    options: &'static [&'static str],
    /// The container gets [`large_environment`].
    large_env: bool,
    /// Busy loops per CPU while the containers start.
    hogs_per_cpu: usize,
    /// Start containers with `docker exec` into running ones instead of `docker run`.
    exec: bool,
    /// Through Podman's service, running the measured runtime, instead of dockerd.
    podman: bool,
}

const BOTH: &[&str] = &["runc", "crun"];

const PLAIN: Condition = Condition {
    name: "plain",
    runtimes: BOTH,
    wrapper: None,
    options: &[],
    large_env: false,
    hogs_per_cpu: 0,
    exec: false,
    podman: false,
};

const CONDITIONS: &[Condition] = &[
    PLAIN,
    Condition {
        name: "cpu contention",
        hogs_per_cpu: 2,
        ..PLAIN
    },
    Condition {
        name: "large environment",
        large_env: true,
        ..PLAIN
    },
    Condition {
        name: "large environment, cpu contention",
        large_env: true,
        hogs_per_cpu: 2,
        ..PLAIN
    },
    Condition {
        name: "GOMAXPROCS=16, cpu contention",
        runtimes: &["runc"],
        wrapper: Some("runc-p16"),
        hogs_per_cpu: 2,
        ..PLAIN
    },
    Condition {
        name: "user 1000:1000, workdir, no capabilities",
        options: &["-u", "1000:1000", "-w", "/tmp", "--cap-drop", "ALL"],
        hogs_per_cpu: 1,
        ..PLAIN
    },
    Condition {
        name: "no-new-privileges, terminal, extra groups",
        options: &[
            "--security-opt",
            "no-new-privileges",
            "-t",
            "--group-add",
            "10",
        ],
        hogs_per_cpu: 1,
        ..PLAIN
    },
    Condition {
        name: "docker exec",
        hogs_per_cpu: 1,
        exec: true,
        ..PLAIN
    },
    Condition {
        name: "Podman",
        hogs_per_cpu: 1,
        podman: true,
        ..PLAIN
    },
];

/// Wrapper runtimes registered with the private dockerd: runc with its Go runtime tuned
/// (GOMAXPROCS is the one variable runc passes on to its init).
const WRAPPERS: &[(&str, &str)] = &[("runc-p16", "GOMAXPROCS=16")];

const LABEL: &str = "io.github.profile.runtime-tail=1";

/// What was measured of one condition: containers recorded, starts that failed, and per call
/// in how many containers.
struct Seen {
    recorded: usize,
    failed: usize,
    calls: BTreeMap<String, usize>,
    /// What each recorded container's profile allows.
    allowed: Vec<BTreeSet<String>>,
}

/// The calls of runc's Go runtime that no start needs to make but any may: every profile of
/// a container runc started must allow them.
const GO_RUNTIME: &[&str] = &["madvise", "mmap", "munmap", "nanosleep"];

pub(crate) fn runtime_tail(
    runtime: &str,
    starts: usize,
    at_once: usize,
    only: Option<&str>,
) -> anyhow::Result<()> {
    ensure!(is_root(), "recording needs root");
    ensure!(
        at_once > 0 && starts > 0,
        "--starts and --at-once must be positive"
    );
    let setup = Setup::new(runtime, "runtime-tail")?;
    let mut results: Vec<(&Condition, Seen)> = Vec::new();
    let chosen = CONDITIONS
        .iter()
        .filter(|c| c.runtimes.contains(&runtime))
        .filter(|c| only.is_none_or(|o| c.name.contains(o)));
    for condition in chosen {
        println!(
            "condition: {} ({starts} starts, {at_once} at once)",
            condition.name
        );
        let seen = setup.measure(condition, starts, at_once)?;
        results.push((condition, seen));
    }
    let report = setup.render(starts, at_once, &results);
    let out = setup.dir.join("result.md");
    std::fs::write(&out, &report)?;
    println!("\n{report}");
    println!("written to {}", out.display());
    Ok(())
}

/// The measured runtime on its private engines, and what its binary says.
struct Setup {
    runtime: String,
    dir: PathBuf,
    profile: PathBuf,
    docker: Engine,
    /// The example image as the private dockerd names it.
    image: String,
    large_env: PathBuf,
    version: String,
    tail: tracer::runtime::Tail,
}

impl Setup {
    fn new(runtime: &str, task: &str) -> anyhow::Result<Self> {
        ensure!(
            BOTH.contains(&runtime),
            "--runtime must be runc or crun, not {runtime}"
        );
        let (profile, _) = release_binaries()?;
        images()?;
        let dir = target_dir().join(task).join(runtime);
        let _ = std::fs::remove_dir_all(dir.join("out"));
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let program = which(runtime)?;
        let mut runtimes = vec![(runtime.to_string(), program.clone())];
        for (name, env) in WRAPPERS {
            let path = dir.join(name);
            std::fs::write(
                &path,
                format!(
                    "#!/bin/sh\nexport {env}\nexec {} \"$@\"\n",
                    program.display()
                ),
            )?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
            runtimes.push((name.to_string(), path));
        }
        let docker = Engine::dockerd(&dir, &runtimes, runtime)?;
        let image = docker.load(&example_image("hello"))?;
        let version = command_output(Command::new(&program).arg("--version"))?;
        let binary = tracer::runtime::Daemon::here().find(&program.display().to_string());
        let measured = tracer::runtime::Runtime::new(runtime, None).with_binary(binary);
        Ok(Setup {
            runtime: runtime.to_string(),
            large_env: large_environment(&dir)?,
            tail: tracer::runtime::tail(&measured),
            dir,
            profile,
            docker,
            image,
            version,
        })
    }

    /// The container runtime name containers of `condition` run with.
    fn runtime_of(&self, condition: &Condition) -> String {
        condition
            .wrapper
            .map_or_else(|| self.runtime.clone(), str::to_string)
    }

    /// Records `starts` containers of `condition`, `at_once` at a time.
    fn measure(
        &self,
        condition: &Condition,
        starts: usize,
        at_once: usize,
    ) -> anyhow::Result<Seen> {
        let podman;
        let (engine, image) = match condition.podman {
            true => {
                podman = Engine::podman(&self.dir, &self.runtime)?;
                let image = podman.load(&example_image("hello"))?;
                (&podman, image)
            }
            false => (&self.docker, self.image.clone()),
        };
        let out = self
            .dir
            .join("out")
            .join(condition.name.replace([' ', ',', '=', ':'], "_"));
        std::fs::create_dir_all(&out)?;
        let mut watch = Command::new(&self.profile)
            .args(["watch", "--per", "container", "--filter"])
            .arg(format!("label={LABEL}"))
            .arg("-o")
            .arg(&out)
            .env("DOCKER_HOST", &engine.host)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting profile watch")?;
        wait_for_line(&mut watch, "watching containers")?;
        let hogs = Hogs::start(condition.hogs_per_cpu)?;
        let runtime = self.runtime_of(condition);
        let mut run: Vec<String> =
            vec!["run".into(), "--rm".into(), "--label".into(), LABEL.into()];
        run.extend(["--network".into(), "none".into()]);
        if !condition.podman {
            run.extend(["--runtime".into(), runtime.clone()]);
        }
        // `docker exec` needs running containers to enter: one per slot, recorded too.
        let hosts: Vec<String> = match condition.exec {
            true => (0..at_once)
                .map(|i| {
                    let name = format!("profile-tail-host-{i}");
                    let _ = engine.output(&["rm", "-f", &name]);
                    let mut args: Vec<&str> = run.iter().map(String::as_str).collect();
                    args.retain(|a| *a != "--rm");
                    args.extend(["-d", "--name", &name, &image, "sleep", "3600"]);
                    let out = engine.output(&args)?;
                    ensure!(
                        out.status.success(),
                        "starting {name}: {}",
                        text(&out.stderr)
                    );
                    Ok(name)
                })
                .collect::<anyhow::Result<_>>()?,
            false => Vec::new(),
        };
        if condition.large_env {
            run.extend(["--env-file".into(), self.large_env.display().to_string()]);
        }
        run.extend(condition.options.iter().map(|o| o.to_string()));
        let mut done = 0;
        let mut failed = 0;
        while done < starts {
            let batch = at_once.min(starts - done);
            let children: Vec<Child> = (0..batch)
                .map(|i| {
                    let mut cmd = match condition.exec {
                        true => engine.cli(&["exec", &hosts[i], "sh", "-c", "ls / >/dev/null"]),
                        false => {
                            let mut cmd =
                                engine.cli(&run.iter().map(String::as_str).collect::<Vec<_>>());
                            cmd.args([image.as_str(), "sh", "-c", "ls / >/dev/null; sleep 1"]);
                            cmd
                        }
                    };
                    cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()
                })
                .collect::<Result<_, _>>()
                .context("starting containers")?;
            for mut child in children {
                if !child.wait().is_ok_and(|s| s.success()) {
                    failed += 1;
                }
            }
            done += batch;
        }
        for name in &hosts {
            let _ = engine.output(&["rm", "-f", name]);
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
        let rows = index_rows(&index, &out)?;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut recorded = 0;
        let mut allowed = Vec::new();
        for (calls, profile) in rows.into_iter().filter(|(c, _)| !c.is_empty()) {
            recorded += 1;
            for call in calls {
                *seen.entry(call).or_default() += 1;
            }
            allowed.push(profile);
        }
        Ok(Seen {
            recorded,
            failed,
            calls: seen,
            allowed,
        })
    }

    fn render(&self, starts: usize, at_once: usize, results: &[(&Condition, Seen)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "runtime: {}\n{starts} starts per condition, {at_once} at once\n",
            self.version.lines().collect::<Vec<_>>().join("; ")
        );
        let mut calls: BTreeSet<&str> = results
            .iter()
            .flat_map(|(_, s)| s.calls.keys().map(String::as_str))
            .collect();
        calls.extend(self.tail.calls.iter().map(|(n, _)| *n));
        let _ = write!(out, "| call | from the binary |");
        for (c, s) in results {
            let failed = match s.failed {
                0 => String::new(),
                n => format!(", {n} failed to start"),
            };
            let _ = write!(out, " {} ({}{failed}) |", c.name, s.recorded);
        }
        let _ = write!(out, "\n|---|---|");
        for _ in results {
            let _ = write!(out, "---:|");
        }
        out.push('\n');
        for call in calls {
            let from_binary = self.tail.from_binary.contains(&call);
            let _ = write!(
                out,
                "| `{call}` | {} |",
                if from_binary { "yes" } else { "" }
            );
            for (_, seen) in results {
                let _ = write!(out, " {} |", seen.calls.get(call).copied().unwrap_or(0));
            }
            out.push('\n');
        }
        let _ = writeln!(out, "\n{}", self.held(results));
        if let Some(note) = &self.tail.note {
            let _ = writeln!(out, "\nnote: {note}");
        }
        out
    }

    /// Whether every profile recorded allows every call any runtime task made in any
    /// container (of every condition), and, for runc, its Go runtime's calls.
    fn held(&self, results: &[(&Condition, Seen)]) -> String {
        let mut needed: BTreeSet<&str> = results
            .iter()
            .flat_map(|(_, s)| s.calls.keys().map(String::as_str))
            .collect();
        if self.runtime == "runc" {
            needed.extend(GO_RUNTIME);
        }
        let profiles: Vec<&BTreeSet<String>> =
            results.iter().flat_map(|(_, s)| &s.allowed).collect();
        let mut lacking: BTreeMap<&str, usize> = BTreeMap::new();
        let mut short = 0;
        for allowed in &profiles {
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|n| !allowed.contains(*n))
                .collect();
            short += usize::from(!missing.is_empty());
            for name in missing {
                *lacking.entry(name).or_default() += 1;
            }
        }
        let lacking: Vec<String> = lacking
            .iter()
            .map(|(name, n)| format!("`{name}` ({n})"))
            .collect();
        format!(
            "profiles holding all {} calls any runtime task made{}: {} of {}{}",
            needed.len(),
            if self.runtime == "runc" {
                " and runc's Go runtime's mmap, munmap, madvise, nanosleep"
            } else {
                ""
            },
            profiles.len() - short,
            profiles.len(),
            match lacking.is_empty() {
                true => String::new(),
                false => format!("; lacking: {}", lacking.join(", ")),
            }
        )
    }
}

/// The `runtime_calls` of each row of watch's index.json, with the names its profile (in
/// `dir`) allows.
fn index_rows(
    index: &str,
    dir: &Path,
) -> anyhow::Result<Vec<(BTreeSet<String>, BTreeSet<String>)>> {
    let json: serde_json::Value = serde_json::from_str(index).context("index.json")?;
    let rows = json["profiles"]
        .as_array()
        .context("index.json: no profiles")?;
    rows.iter()
        .map(|r| {
            let allowed = match r["file"].as_str() {
                Some(file) => allowed_names(&dir.join(file))?,
                None => BTreeSet::new(),
            };
            Ok((strings(&r["runtime_calls"]), allowed))
        })
        .collect()
}

/// The strings of a JSON array.
fn strings(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The names a Docker profile allows.
fn allowed_names(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(path).with_context(|| shown(path))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| shown(path))?;
    Ok(json["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| strings(&r["names"]))
        .collect())
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

fn command_output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().context("running a command")?;
    Ok(text(&out.stdout).trim().to_string())
}

/// Where `path` is under the measurement's directory, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
