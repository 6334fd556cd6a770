//! The engines the runtime's tail is measured on, each of this process's own and stopped when
//! dropped: a private dockerd (its own data root, exec root, socket and pidfile, no bridge, in
//! a network namespace of its own) with extra runtimes registered, or Podman's service on a
//! socket of its own. The system's engine and the host's interfaces are never touched.
use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

/// A private engine.
pub(crate) struct Engine {
    child: Child,
    /// DOCKER_HOST for `profile`.
    pub(crate) host: String,
    dir: PathBuf,
    podman: bool,
}

impl Engine {
    /// A dockerd of its own in `dir`, with `runtimes` (name, program) registered and
    /// containers running with `default` unless they name another.
    pub(crate) fn dockerd(
        dir: &Path,
        runtimes: &[(String, PathBuf)],
        default: &str,
    ) -> anyhow::Result<Self> {
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
            .args(["--ip-forward=false", "--ip-masq=false"])
            .args(["--containerd-namespace", "profile-tail"])
            .args(["--containerd-plugins-namespace", "profile-tail-plugins"]);
        for (name, program) in runtimes.iter().filter(|(n, _)| n != "runc") {
            cmd.arg("--add-runtime")
                .arg(format!("{name}={}", program.display()));
        }
        cmd.args(["--default-runtime", default]);
        // dockerd without a bridge deletes the interface named docker0 where it runs: in a
        // network namespace of its own there is none (containers run with --network none).
        // SAFETY: between fork and exec the child only makes the unshare syscall.
        unsafe {
            cmd.pre_exec(|| match libc::unshare(libc::CLONE_NEWNET) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting dockerd")?;
        let engine = Engine {
            child,
            host,
            dir: state,
            podman: false,
        };
        engine.wait_ready("dockerd.log")?;
        Ok(engine)
    }

    /// Podman's Docker-compatible service in `dir`, running containers with `runtime` (Podman
    /// needs explicit ulimits here: nothing may raise them).
    pub(crate) fn podman(dir: &Path, runtime: &str) -> anyhow::Result<Self> {
        let state = dir.join("podman");
        std::fs::create_dir_all(&state)?;
        std::fs::write(
            state.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n[engine]\nruntime = \"{runtime}\"\n"
            ),
        )?;
        let socket = state.join("podman.sock");
        let _ = std::fs::remove_file(&socket);
        let host = format!("unix://{}", socket.display());
        let log = std::fs::File::create(state.join("podman.log"))?;
        let child = Command::new("podman")
            .env("CONTAINERS_CONF", state.join("containers.conf"))
            .args(["system", "service", "--time=0", &host])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting podman system service (apt-get install podman)")?;
        let engine = Engine {
            child,
            host,
            dir: state,
            podman: true,
        };
        engine.wait_ready("podman.log")?;
        Ok(engine)
    }

    fn wait_ready(&self, log: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.cli(&["version"]).output()?.status.success() {
            if Instant::now() > deadline {
                bail!(
                    "the private engine did not start: see {}",
                    self.dir.join(log).display()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The engine's own command line (`docker -H …`, `podman --url …`), with `args`.
    pub(crate) fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = match self.podman {
            true => {
                let mut c = Command::new("podman");
                c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
                    .args(["--url", &self.host]);
                c
            }
            false => {
                let mut c = Command::new("docker");
                c.args(["-H", &self.host]);
                c
            }
        };
        cmd.args(args);
        cmd
    }

    pub(crate) fn output(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        self.cli(args).output().context("the engine's command line")
    }

    /// Copies `image` from the system's dockerd into this engine; the name it has there.
    pub(crate) fn load(&self, image: &str) -> anyhow::Result<String> {
        let save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .context("docker save")?;
        let stdout = save.stdout.context("docker save output")?;
        let status = self
            .cli(&["load", "-q"])
            .stdin(stdout)
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "loading {image} into the private engine");
        Ok(match self.podman {
            true => format!("localhost/{image}"),
            false => image.to_string(),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the engine this process started.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Busy loops that keep every CPU contended; killed when dropped.
pub(crate) struct Hogs(Vec<Child>);

impl Hogs {
    pub(crate) fn start(per_cpu: usize) -> anyhow::Result<Self> {
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

/// A large environment for the container: runc's init copies it for the final execve after
/// installing the filter, so its Go heap grows (and its collector runs) under the filter. A
/// small GOGC can't do that: runc hands its init GOMAXPROCS alone of its own environment.
pub(crate) fn large_environment(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("large.env");
    let mut text = String::new();
    let value = "x".repeat(1000);
    for i in 0..1400 {
        text.push_str(&format!("PROFILE_BULK_{i}={value}\n"));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

pub(crate) fn which(name: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found on PATH"))
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
