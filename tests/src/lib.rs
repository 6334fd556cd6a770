//! Helpers for the end-to-end tests: the `profile` binary, the static workload, privileges,
//! what a written profile allows (read by the library's own model), waiting on what a test can
//! observe.
pub mod judge;
pub mod node;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The static test workload (`workloads/sysloop.c`).
pub const SYSLOOP: &str = env!("SYSLOOP");
/// The static attack probe (`workloads/attack.c`).
pub const ATTACK: &str = env!("ATTACK");
/// The static program that makes i386 syscalls from 64-bit code (`workloads/int80.c`).
pub const INT80: &str = env!("INT80");
/// A static C program that only starts and exits (`workloads/empty.c`).
pub const EMPTY: &str = env!("EMPTY");
/// `empty` plus getppid, getsid and sync (`workloads/calls.c`).
pub const CALLS: &str = env!("CALLS");
/// A static Go program that reads and writes files and never touches the network
/// (`workloads/gofiles`).
pub const GOFILES: &str = env!("GOFILES");
/// A static Go HTTP server: `/` answers, `/mkdir?name=N` makes /N (`workloads/goserve`).
pub const GOSERVE: &str = env!("GOSERVE");

/// The `profile` binary of this build (`cargo build -p tracer` puts it beside `deps/`).
pub fn profile_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PROFILE_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("profile");
    assert!(
        bin.exists(),
        "{} missing: build it first (cargo build -p tracer), or run `cargo xtask test`",
        bin.display()
    );
    bin
}

/// True when the test may run. Outside CI a test without root skips, saying so; in CI
/// (CI set) it fails instead, because nothing may be skipped there.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root (eBPF, cgroups), and CI must not skip it");
    }
    eprintln!("SKIPPED {test}: needs root (eBPF, cgroups)");
    false
}

/// A scratch directory removed at the end of the test.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("profile-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `check`'s first answer within `limit`, asked every 20 ms; `None` when it never answered.
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(answer) = check() {
            return Some(answer);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `check` answers (asked every 20 ms) and returns the answer; fails the test,
/// naming `what`, when it hasn't within `limit`.
pub fn wait_until<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    poll(limit, check).unwrap_or_else(|| panic!("{what}: not within {limit:?}"))
}

/// What a child process says on stderr, line by line as it says it: a test waits for the
/// line that tells it something happened, instead of sleeping and hoping it did.
pub struct Transcript {
    lines: std::sync::mpsc::Receiver<String>,
    said: Vec<String>,
}

impl Transcript {
    /// Takes `child`'s stderr (spawned with `Stdio::piped()`).
    pub fn of(child: &mut std::process::Child) -> Transcript {
        use std::io::BufRead as _;
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Transcript {
            lines,
            said: Vec::new(),
        }
    }

    /// Waits until a line containing `needle` is said; fails the test after `limit`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        wait_until(&format!("{needle:?} said"), limit, || {
            self.said.extend(self.lines.try_iter());
            self.said.iter().any(|l| l.contains(needle)).then_some(())
        });
    }

    /// Everything said, once the child has closed its stderr (it has exited).
    pub fn all(mut self) -> String {
        self.said.extend(self.lines.iter());
        self.said.join("\n")
    }
}

/// Sends the request `head` (`GET / HTTP/1.0`) to 127.0.0.1:`port` and returns the whole
/// response, retried for up to 10 s while the server starts (an empty string if it never
/// answered).
pub fn http_request(port: u16, head: &str) -> String {
    use std::io::{Read as _, Write as _};
    poll(Duration::from_secs(10), || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(format!("{head}\r\nHost: x\r\n\r\n").as_bytes());
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        (!response.is_empty()).then_some(response)
    })
    .unwrap_or_default()
}

/// The test image's busybox httpd serving /www under a seccomp profile, published on a fresh
/// port of 127.0.0.1; removed when dropped.
pub struct Httpd {
    pub port: u16,
    name: String,
}

impl Httpd {
    pub fn under(profile: &Path, test: &str) -> Httpd {
        Httpd::serving(
            profile,
            test,
            test_image(),
            &["httpd", "-f", "-p", "8080", "-h", "/www"],
        )
    }

    /// `image` running `cmd` (its own command when empty), serving on the container's 8080.
    pub fn serving(profile: &Path, test: &str, image: &str, cmd: &[&str]) -> Httpd {
        let port = free_port();
        let name = container_name(test);
        let seccomp = format!("seccomp={}", profile.display());
        let publish = format!("127.0.0.1:{port}:8080");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--security-opt",
            &seccomp,
            "-p",
            &publish,
            image,
        ];
        args.extend_from_slice(cmd);
        let started = docker(&args);
        assert!(started.status.success(), "{}", output_text(&started));
        Httpd { port, name }
    }
}

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// A command's stdout and stderr, for assertion messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `profile ARGS`, returning its output.
pub fn profile(args: &[&str]) -> Output {
    Command::new(profile_bin())
        .args(args)
        .output()
        .expect("running profile")
}

/// Runs `profile ARGS` and fails the test unless it exits 0.
pub fn profile_ok(args: &[&str]) -> Output {
    let out = profile(args);
    assert!(
        out.status.success(),
        "profile {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON report at `path`.
pub fn report(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

/// Call count of `name` in a JSON report, 0 when absent.
pub fn count(report: &serde_json::Value, name: &str) -> u64 {
    syscall_line(report, name)["count"].as_u64().unwrap_or(0)
}

/// The x86_64 line for `name` in a JSON report (`Null` when absent).
pub fn syscall_line(report: &serde_json::Value, name: &str) -> serde_json::Value {
    abi_line(report, name, "x86_64")
}

/// The line for `name` made through `abi` (`x86_64`, `i386`, `x32`) in a JSON report.
pub fn abi_line(report: &serde_json::Value, name: &str, abi: &str) -> serde_json::Value {
    report["syscalls"]
        .as_array()
        .expect("syscalls array")
        .iter()
        .find(|s| s["name"] == name && s["abi"] == abi)
        .cloned()
        .unwrap_or_default()
}

/// The line for `name` among the container runtime's calls before it handed over, in a JSON
/// report (`Null` when absent).
pub fn runtime_line(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["runtime_calls"]
        .as_array()
        .expect("runtime_calls array")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_default()
}

/// The names a profile allows for some arguments at least, on any architecture it lists, as
/// runc hands it to libseccomp for a container with Docker's default capabilities: every rule
/// counts, read by the library's own model (in any format `profile` writes). Fails the test
/// when the profile can't be read, or allows nothing at all (every "not allowed" check would
/// pass then).
pub fn allowed_names(profile: &Path) -> BTreeSet<String> {
    let p = tracer::formats::read_profile(profile)
        .unwrap_or_else(|e| panic!("reading the profile {}: {e}", profile.display()));
    let names = allowed_by(&p);
    assert!(!names.is_empty(), "{} allows nothing", profile.display());
    names
}

/// The names `p` allows for some arguments at least, on any of its architectures.
pub fn allowed_by(p: &tracer::seccomp::Profile) -> BTreeSet<String> {
    let ctx = tracer::seccomp::Context::docker_default();
    p.abis()
        .into_iter()
        .flat_map(|abi| p.decisions(abi, &ctx))
        .filter(|(_, d)| !d.denied())
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The strings of a JSON array (none when it is no array).
pub fn strings<C: FromIterator<String>>(array: &serde_json::Value) -> C {
    array
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

/// Runs `profile run [FLAGS] -o DIR/NAME.profile.json --report DIR/NAME.json -- sysloop ARGS`,
/// which must succeed, and returns the JSON report.
pub fn record(dir: &Scratch, name: &str, flags: &[&str], workload: &[&str]) -> serde_json::Value {
    record_with(dir, name, flags, SYSLOOP, workload)
}

/// As [`record`], with another program than sysloop.
pub fn record_with(
    dir: &Scratch,
    name: &str,
    flags: &[&str],
    program: &str,
    workload: &[&str],
) -> serde_json::Value {
    let profile = dir.path(&format!("{name}.profile.json"));
    let report_path = dir.path(&format!("{name}.json"));
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[
        "-o",
        profile.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
        "--",
        program,
    ]);
    args.extend_from_slice(workload);
    profile_ok(&args);
    report(&report_path)
}

/// Runs `docker ARGS`, returning its output.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("running the docker CLI")
}

/// The image the Docker tests run: `FROM scratch` with Debian's static busybox (applets
/// installed in /bin), the static workloads as /bin/sysloop and /bin/attack, and
/// /www/index.html.
/// Built once per test process; no registry is needed. Its tag is a hash of the workloads, so
/// test runs of different checkouts on one daemon never swap each other's image.
pub fn test_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let image = format!("profile-test/box:{:016x}", workloads_hash());
        let ctx = std::env::temp_dir().join(format!("profile-test-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&ctx);
        std::fs::create_dir_all(&ctx).expect("image context");
        std::fs::copy("/bin/busybox", ctx.join("busybox"))
            .expect("/bin/busybox (apt-get install busybox-static)");
        std::fs::copy(SYSLOOP, ctx.join("sysloop")).expect("sysloop");
        std::fs::copy(ATTACK, ctx.join("attack")).expect("attack");
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             COPY sysloop /bin/sysloop\n\
             COPY attack /bin/attack\n\
             RUN mkdir -p /www /tmp && echo 'hello from the test image' > /www/index.html\n\
             CMD [\"sh\"]\n",
        )
        .expect("Dockerfile");
        let built = build_image(&image, &ctx);
        let _ = std::fs::remove_dir_all(&ctx);
        if let Err(why) = built {
            panic!("{why}");
        }
        image
    })
}

/// `docker build -q -t IMAGE CONTEXT` on the local daemon, with the classic builder (no
/// registry is needed for a `FROM` of a local image); why it failed, if it did.
pub fn build_image(image: &str, context: &Path) -> Result<(), String> {
    let out = Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .map_err(|e| format!("docker build: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!("building {image}: {}", output_text(&out))),
    }
}

/// FNV-1a over the static workloads' bytes.
fn workloads_hash() -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for path in [SYSLOOP, ATTACK] {
        for byte in std::fs::read(path).expect("workload built") {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The file name `profile train` writes the test image's profile to by default, without its
/// extension (`profile-test-box-<tag>`).
pub fn test_image_stem() -> String {
    tracer::docker::default_profile_path(test_image())
        .file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

/// A unique container name for one test.
pub fn container_name(test: &str) -> String {
    format!("profile-test-{test}-{}", std::process::id())
}

/// Whether a container with this name exists (running or not).
pub fn container_exists(name: &str) -> bool {
    let out = docker(&["ps", "-a", "-q", "--filter", &format!("name=^/{name}$")]);
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `profile train --image <test image> -q -o DIR/NAME.profile.json --report DIR/NAME.json
/// [FLAGS] -- CMD…`; returns the profile path, the report (if written) and the output.
pub fn train(
    dir: &Scratch,
    name: &str,
    flags: &[&str],
    cmd: &[&str],
) -> (PathBuf, Option<serde_json::Value>, Output) {
    train_image(test_image(), dir, name, flags, cmd)
}

/// As [`train`], on another image.
pub fn train_image(
    image: &str,
    dir: &Scratch,
    name: &str,
    flags: &[&str],
    cmd: &[&str],
) -> (PathBuf, Option<serde_json::Value>, Output) {
    let profile_path = dir.path(&format!("{name}.profile.json"));
    let report_path = dir.path(&format!("{name}.json"));
    let mut args = vec![
        "train",
        "--image",
        image,
        "-q",
        "-o",
        profile_path.to_str().expect("utf-8 path"),
        "--report",
        report_path.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(flags);
    if !cmd.is_empty() {
        args.push("--");
        args.extend_from_slice(cmd);
    }
    let out = profile(&args);
    let rep = report_path.exists().then(|| report(&report_path));
    (profile_path, rep, out)
}

/// `docker run --rm [--security-opt seccomp=PROFILE] <test image> CMD…`.
pub fn run_under(profile: Option<&Path>, cmd: &[&str]) -> Output {
    run_under_with(profile, &[], cmd)
}

/// As [`run_under`], with more `docker run` options.
pub fn run_under_with(profile: Option<&Path>, opts: &[&str], cmd: &[&str]) -> Output {
    let opt = profile.map(|p| format!("seccomp={}", p.display()));
    let mut all = opts.to_vec();
    if let Some(opt) = &opt {
        all.extend_from_slice(&["--security-opt", opt]);
    }
    run_image(test_image(), &all, cmd)
}

/// `docker run --rm OPTS IMAGE CMD…`.
pub fn run_image(image: &str, opts: &[&str], cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.push(image);
    args.extend_from_slice(cmd);
    docker(&args)
}

/// A Docker daemon of one test's own: its own socket, data, exec root, containerd and bridge
/// (without iptables rules). A test may stall, stop and restart it without touching the
/// machine's daemon, which other tests (and people) use at the same time. Stopped and cleaned
/// up on drop.
pub struct PrivateDaemon {
    dir: PathBuf,
    child: Option<std::process::Child>,
    /// Its own bridge: `--bridge none` would make dockerd delete the machine's docker0. None
    /// for a daemon in a network namespace of its own ([`Self::isolated`]).
    bridge: Option<String>,
    /// More `dockerd` options.
    options: Vec<String>,
    /// The DOCKER_HOST that reaches it.
    pub host: String,
}

/// The image every [`PrivateDaemon`] builds: `FROM scratch` with Debian's static busybox.
pub const PRIVATE_IMAGE: &str = "profile-test/private:latest";

impl PrivateDaemon {
    /// Starts a daemon named after `tag` and builds [`PRIVATE_IMAGE`] in it.
    pub fn start(tag: &str) -> Self {
        let dir = PathBuf::from(format!("/tmp/pd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("daemon dir");
        let host = format!("unix://{}/docker.sock", dir.display());
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let bridge = format!("pd{}x{n}", pid % 1_000_000);
        let subnet = format!("10.251.{}.1/24", (pid + n * 37) % 250 + 1);
        for args in [
            vec!["link", "add", "name", &bridge, "type", "bridge"],
            vec!["addr", "add", &subnet, "dev", &bridge],
            vec!["link", "set", &bridge, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut daemon = PrivateDaemon {
            dir,
            child: None,
            bridge: Some(bridge),
            options: Vec::new(),
            host,
        };
        daemon.launch();
        daemon.build_image();
        daemon
    }

    /// A daemon in a network namespace of its own (its containers run with `--network none`;
    /// no interface of the machine's is made or removed), started with more dockerd
    /// `options` (`--add-runtime crun=/usr/bin/crun`), with [`PRIVATE_IMAGE`] built.
    pub fn isolated(tag: &str, options: &[&str]) -> Self {
        let dir = PathBuf::from(format!("/tmp/pd-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("daemon dir");
        let host = format!("unix://{}/docker.sock", dir.display());
        let mut daemon = PrivateDaemon {
            dir,
            child: None,
            bridge: None,
            options: options.iter().map(|o| o.to_string()).collect(),
            host,
        };
        daemon.launch();
        daemon.build_image();
        daemon
    }

    fn build_image(&self) {
        let daemon = self;
        let ctx = daemon.dir.join("image");
        std::fs::create_dir_all(&ctx).expect("image context");
        std::fs::copy("/bin/busybox", ctx.join("busybox"))
            .expect("/bin/busybox (apt-get install busybox-static)");
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
             CMD [\"sh\"]\n",
        )
        .expect("Dockerfile");
        let out = Command::new("docker")
            .args(["-H", &daemon.host, "build", "-q", "--network", "none"])
            .args(["-t", PRIVATE_IMAGE])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("docker build");
        assert!(
            out.status.success(),
            "building {PRIVATE_IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts dockerd on this daemon's directories and waits until it answers.
    fn launch(&mut self) {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("daemon log");
        let mut cmd = Command::new("dockerd");
        cmd.args(["--data-root", &d("data"), "--exec-root", &d("exec")])
            .args(["--pidfile", &d("docker.pid"), "-H", &self.host])
            .args([
                "--bridge",
                self.bridge.as_deref().unwrap_or("none"),
                "--iptables=false",
                "--ip-masq=false",
            ])
            .args(&self.options)
            .args([
                "--ip-forward=false",
                "--containerd-namespace",
                "profile-test",
            ])
            .args(["--containerd-plugins-namespace", "profile-test-plugins"]);
        if self.bridge.is_none() {
            use std::os::unix::process::CommandExt as _;
            // Without a bridge dockerd deletes the interface named docker0 where it runs: in a
            // network namespace of its own there is none.
            // SAFETY: between fork and exec the child only makes the unshare syscall.
            unsafe {
                cmd.pre_exec(|| match libc::unshare(libc::CLONE_NEWNET) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                });
            }
        }
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("daemon log"))
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        self.child = Some(child);
        let log = self.dir.join("dockerd.log");
        wait_until(
            &format!("the private dockerd starting (see {})", log.display()),
            Duration::from_secs(60),
            || self.docker(&["version"]).status.success().then_some(()),
        );
    }

    /// Runs `docker -H <this daemon> ARGS`.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(["-H", &self.host])
            .args(args)
            .output()
            .expect("running the docker CLI")
    }

    /// A `profile` command that talks to this daemon.
    pub fn profile(&self) -> Command {
        let mut cmd = Command::new(profile_bin());
        cmd.env("DOCKER_HOST", &self.host);
        cmd
    }

    /// Whether a container with this name exists here.
    pub fn has_container(&self, name: &str) -> bool {
        let out = self.docker(&["ps", "-a", "-q", "--filter", &format!("name=^/{name}$")]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }

    /// Waits until the container runs.
    pub fn wait_running(&self, name: &str) {
        wait_until(&format!("{name} running"), Duration::from_secs(30), || {
            let out = self.docker(&["inspect", "-f", "{{.State.Running}}", name]);
            (String::from_utf8_lossy(&out.stdout).trim() == "true").then_some(())
        });
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the dockerd this test started.
            unsafe { libc::kill(child.id() as i32, sig) };
        }
    }

    /// Stalls the daemon (SIGSTOP) until the guard is dropped (SIGCONT), also on a failure.
    pub fn stall(&self) -> Stalled<'_> {
        self.signal(libc::SIGSTOP);
        Stalled(self)
    }

    /// Stops the daemon as a service manager would (SIGTERM) and waits until it has exited.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        let Some(mut child) = self.child.take() else {
            return;
        };
        if poll(Duration::from_secs(60), || child.try_wait().ok().flatten()).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again after [`Self::terminate`], as it was started.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// Unmounts what a daemon that was killed may have left mounted under its directory.
    fn unmount_leftovers(&self) {
        let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        let prefix = self.dir.display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            if let Ok(c) = std::ffi::CString::new(point) {
                // SAFETY: umount2(2) with a valid C string, on a mount under our own directory.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-a", "-q"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", "-v", id]);
        }
        self.terminate();
        // A dockerd that had to be killed leaves its containerd running.
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("exec/containerd/containerd.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "containerd")
        {
            // SAFETY: kill(2) on the containerd our dockerd started, checked by name.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        self.unmount_leftovers();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(bridge) = &self.bridge {
            let _ = Command::new("ip").args(["link", "del", bridge]).output();
        }
    }
}

/// A stalled [`PrivateDaemon`]; dropping it lets the daemon go on.
pub struct Stalled<'a>(&'a PrivateDaemon);

impl Drop for Stalled<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// Fails the test unless the completions in `dir` (`profile.bash`, `_profile`, `profile.fish`,
/// as the tarball names them) load in bash, zsh and fish and complete `profile`.
pub fn completions_load(dir: &Path) {
    let out = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && complete -p profile")
        .arg("bash")
        .arg(dir.join("profile.bash"))
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("-F _profile profile"),
        "{}",
        output_text(&out)
    );

    // zsh: the file parses, and compinit takes it as profile's completion.
    let zsh = dir.join("_profile");
    let out = Command::new("zsh")
        .arg("-n")
        .arg(&zsh)
        .output()
        .expect("zsh (apt-get install zsh)");
    assert!(out.status.success(), "{}", output_text(&out));
    let out = Command::new("zsh")
        .arg("-fc")
        .arg("fpath=(\"$1\" $fpath); autoload -Uz compinit; compinit -u -D; print -r -- \"${_comps[profile]}\"")
        .arg("zsh")
        .arg(dir)
        .output()
        .expect("zsh");
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "_profile");
    // fish: completing `profile tr` offers train, and train's options are known.
    let out = Command::new("fish")
        .arg("-c")
        .arg("source $argv[1]; complete -C 'profile tr'; complete -C 'profile train --ima'")
        .arg(dir.join("profile.fish"))
        .output()
        .expect("fish (apt-get install fish)");
    assert!(out.status.success(), "{}", output_text(&out));
    let offered = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        offered.lines().any(|l| l.starts_with("train\t"))
            && offered.lines().any(|l| l.starts_with("--image\t")),
        "{offered}"
    );
}

/// `kubernetes-validate`, installed by scripts/host-setup.sh with its bundled schemas.
const KUBERNETES_VALIDATE: &str = "/opt/kubernetes-validate/bin/kubernetes-validate";

/// Checks Kubernetes manifests against the Kubernetes 1.30 schemas, offline and strictly (no
/// unknown field passes); `None` (skipped, saying so) where the validator is missing outside
/// CI.
pub fn kubernetes_validate(files: &[PathBuf]) -> Option<Output> {
    if !Path::new(KUBERNETES_VALIDATE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{KUBERNETES_VALIDATE} missing (scripts/host-setup.sh installs it), and CI must not skip"
        );
        eprintln!("SKIPPED: {KUBERNETES_VALIDATE} missing (scripts/host-setup.sh installs it)");
        return None;
    }
    Some(
        Command::new(KUBERNETES_VALIDATE)
            .args(["--strict", "--kubernetes-version", "1.30.0"])
            .args(files)
            .output()
            .expect("kubernetes-validate"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> tracer::seccomp::Profile {
        tracer::seccomp::Profile::parse(json, Path::new("p.json")).expect("a profile")
    }

    /// A name is allowed wherever a rule allows it: not only in the first rule, and not only
    /// on x86_64.
    #[test]
    fn every_rule_and_every_architecture_counts() {
        let first_rule = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","unshare"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(allowed_by(&first_rule).contains("unshare"));
        let second_rule = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["unshare"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(allowed_by(&second_rule).contains("unshare"));
        let with_arguments = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["unshare"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(allowed_by(&with_arguments).contains("unshare"));
        // waitpid has no x86_64 number: only i386 can allow it.
        let i386 = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[{"names":["read","waitpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(allowed_by(&i386).contains("waitpid"));
        let denied = parse(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["unshare"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert!(!allowed_by(&denied).contains("unshare"));
        assert!(allowed_by(&denied).contains("read"));
    }

    #[test]
    fn a_profile_that_allows_nothing_fails_the_test() {
        let dir = Scratch::new("allows-nothing");
        let path = dir.path("p.json");
        std::fs::write(&path, r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
        let read = std::panic::catch_unwind(|| allowed_names(&path));
        assert!(read.is_err(), "a negative check on it would pass vacuously");
        let missing = std::panic::catch_unwind(|| allowed_names(&dir.path("missing.json")));
        assert!(missing.is_err());
    }

    #[test]
    fn waiting_ends_with_the_answer_or_fails_the_test() {
        let mut tries = 0;
        let answer = wait_until("the third try", Duration::from_secs(5), || {
            tries += 1;
            (tries == 3).then_some(tries)
        });
        assert_eq!(answer, 3);
        assert_eq!(poll(Duration::from_millis(50), || None::<()>), None);
        let never = std::panic::catch_unwind(|| {
            wait_until("never", Duration::from_millis(50), || None::<()>)
        });
        assert!(never.is_err());
    }
}
