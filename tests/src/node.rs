//! A Kubernetes node without kubelet: a private containerd (its own socket, root and state, the
//! CRI plugin on) driven through the CRI as kubelet drives it — hostNetwork pod sandboxes,
//! kubelet's labels and cgroupfs layout (`/kubepods/besteffort/pod<uid>/<id>`), a container
//! seccomp profile per container. Images are built locally with Docker and imported; nothing is
//! pulled.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use tracer::cri::{Cri, api};

use crate::{test_image, wait_until};

/// The pause image every sandbox runs: busybox sleeping.
const PAUSE: &str = "profile-test/pause:1";

/// The seccomp profile a container asks for.
#[derive(Clone, Debug)]
pub enum Seccomp {
    /// No field: containerd runs it without a filter.
    Unset,
    Unconfined,
    RuntimeDefault,
    /// A Docker-format JSON profile at this absolute path.
    Localhost(PathBuf),
}

impl Seccomp {
    fn to_cri(&self) -> Option<api::SecurityProfile> {
        use api::security_profile::ProfileType;
        let (t, path) = match self {
            Seccomp::Unset => return None,
            Seccomp::Unconfined => (ProfileType::Unconfined, String::new()),
            Seccomp::RuntimeDefault => (ProfileType::RuntimeDefault, String::new()),
            Seccomp::Localhost(p) => (ProfileType::Localhost, p.display().to_string()),
        };
        Some(api::SecurityProfile {
            profile_type: t as i32,
            localhost_ref: path,
        })
    }
}

/// One container of a pod.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    /// Run with `sh -c`.
    pub script: String,
    pub seccomp: Seccomp,
    /// The rest of its securityContext and its emptyDir mounts.
    pub hardening: Option<Hardening>,
}

impl ContainerSpec {
    pub fn new(name: &str, script: &str, seccomp: Seccomp) -> Self {
        ContainerSpec {
            name: name.into(),
            script: script.into(),
            seccomp,
            hardening: None,
        }
    }
}

/// What kubelet hands the CRI for a container's securityContext (beside its seccompProfile)
/// and its emptyDir volumes.
#[derive(Clone, Debug, Default)]
pub struct Hardening {
    pub add: Vec<String>,
    pub drop: Vec<String>,
    pub read_only: bool,
    /// `!allowPrivilegeEscalation`.
    pub no_new_privs: bool,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    /// (path in the container, directory on the host).
    pub mounts: Vec<(String, PathBuf)>,
}

impl Hardening {
    /// A pod template's container as kubelet converts it: its securityContext, and each of
    /// its volumeMounts as a fresh directory under `volumes` (an emptyDir; kubelet mounts a
    /// tmpfs there for `medium: Memory`, which the container sees alike: a writable
    /// directory of its own).
    pub fn of_container(c: &serde_json::Value, volumes: &std::path::Path) -> Hardening {
        let sc = &c["securityContext"];
        let names = |v: &serde_json::Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mounts = c["volumeMounts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| {
                        let name = m["name"].as_str().expect("volume name");
                        let host = volumes.join(name);
                        std::fs::create_dir_all(&host).expect("emptyDir");
                        let path = m["mountPath"].as_str().expect("mountPath");
                        (path.to_string(), host)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Hardening {
            add: names(&sc["capabilities"]["add"]),
            drop: names(&sc["capabilities"]["drop"]),
            read_only: sc["readOnlyRootFilesystem"] == true,
            no_new_privs: sc["allowPrivilegeEscalation"] == false,
            run_as_user: sc["runAsUser"].as_i64(),
            run_as_group: sc["runAsGroup"].as_i64(),
            mounts,
        }
    }
}

/// A pod as a controller would make it: its name, namespace and own labels.
#[derive(Clone, Debug)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<ContainerSpec>,
}

impl PodSpec {
    pub fn new(namespace: &str, name: &str, containers: Vec<ContainerSpec>) -> Self {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            labels: BTreeMap::from([("app".to_string(), name.to_string())]),
            containers,
        }
    }

    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
}

/// A pod running on the node.
#[derive(Clone, Debug)]
pub struct Pod {
    pub uid: String,
    pub sandbox: String,
    /// Container ids, in the spec's order.
    pub containers: Vec<String>,
}

/// A private containerd with the CRI plugin, stopped and cleaned up on drop.
pub struct Node {
    dir: PathBuf,
    child: Child,
    pub socket: PathBuf,
    rt: tokio::runtime::Runtime,
    cri: Cri,
    /// The workload image, as the CRI names it.
    pub image: String,
    pods: std::sync::Mutex<Vec<Pod>>,
}

/// `docker save` of the pause and test images, made once per test process into a directory
/// named after the test image's tag (so later runs reuse it instead of leaving copies behind).
fn image_archives() -> &'static (PathBuf, PathBuf) {
    static TARS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    TARS.get_or_init(|| {
        let tag = test_image().rsplit(':').next().unwrap_or("latest");
        let dir = std::env::temp_dir().join(format!("profile-test-node-images-{tag}"));
        let pid = std::process::id();
        let ctx = dir.join(format!("pause-{pid}"));
        std::fs::create_dir_all(&ctx).expect("image dir");
        std::fs::copy("/bin/busybox", ctx.join("busybox")).expect("/bin/busybox");
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM scratch\nCOPY busybox /busybox\nCMD [\"/busybox\", \"sleep\", \"2147483647\"]\n",
        )
        .expect("Dockerfile");
        let run = |args: &[&str]| {
            let out = Command::new("docker")
                .args(args)
                .env("DOCKER_BUILDKIT", "0")
                .output()
                .expect("docker");
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["build", "-q", "-t", PAUSE, ctx.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&ctx);
        // Saved under a name of this process's, then renamed: a run beside it reads whole files.
        let save = |image: &str, name: &str| {
            let path = dir.join(name);
            let part = dir.join(format!("{name}.{pid}"));
            run(&["save", "-o", part.to_str().unwrap(), image]);
            std::fs::rename(&part, &path).expect("rename");
            path
        };
        (save(PAUSE, "pause.tar"), save(test_image(), "box.tar"))
    })
}

impl Node {
    /// Starts a containerd of `test`'s own and imports the images.
    pub fn start(test: &str) -> Node {
        let dir = PathBuf::from(format!("/tmp/node-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("cni")).expect("node dir");
        let socket = dir.join("containerd.sock");
        let d = |s: &str| dir.join(s).display().to_string();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n\
                 \x20 sandbox_image = \"docker.io/{PAUSE}\"\n\
                 \x20 restrict_oom_score_adj = true\n\
                 \x20 stream_server_address = \"127.0.0.1\"\n\
                 \x20 stream_server_port = \"0\"\n\
                 \x20 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n\
                 \x20   snapshotter = \"overlayfs\"\n\
                 \x20 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n\
                 \x20   conf_dir = \"{cni}\"\n\
                 \x20   bin_dir = \"{cni}\"\n",
                root = d("root"),
                state = d("state"),
                sock = socket.display(),
                cni = d("cni"),
            ),
        )
        .expect("config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("containerd (apt-get install containerd)");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let cri = wait_until(
            &format!(
                "containerd answering (see {}/containerd.log)",
                dir.display()
            ),
            Duration::from_secs(60),
            || rt.block_on(Cri::connect(&socket)).ok().map(|(c, _)| c),
        );
        let (pause, box_) = image_archives();
        for tar in [pause, box_] {
            let out = Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args(["-n", "k8s.io", "images", "import"])
                .arg(tar)
                .output()
                .expect("ctr");
            assert!(
                out.status.success(),
                "ctr images import: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Node {
            dir,
            child,
            socket,
            rt,
            cri,
            image: format!("docker.io/{}", test_image()),
            pods: Default::default(),
        }
    }

    /// The `--engine` value that watches this node.
    pub fn engine(&self) -> String {
        format!("cri={}", self.socket.display())
    }

    /// Creates the pod's sandbox and containers and starts them, as kubelet does.
    pub fn run_pod(&self, spec: &PodSpec) -> Pod {
        let pod = self.create_pod(spec);
        for id in &pod.containers {
            self.start_container(id);
        }
        pod
    }

    /// Creates the pod's sandbox and containers (not started).
    pub fn create_pod(&self, spec: &PodSpec) -> Pod {
        static UIDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = UIDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uid = format!("{:08x}-0000-4000-8000-{:012x}", std::process::id(), n);
        let mut labels: std::collections::HashMap<String, String> =
            spec.labels.clone().into_iter().collect();
        labels.insert("io.kubernetes.pod.name".into(), spec.name.clone());
        labels.insert("io.kubernetes.pod.namespace".into(), spec.namespace.clone());
        labels.insert("io.kubernetes.pod.uid".into(), uid.clone());
        let logs = self.dir.join("logs").join(&uid);
        std::fs::create_dir_all(&logs).expect("log dir");
        let namespaces = Some(api::NamespaceOption {
            network: api::NamespaceMode::Node as i32,
            pid: api::NamespaceMode::Container as i32,
            ipc: api::NamespaceMode::Pod as i32,
            ..Default::default()
        });
        let config = api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: spec.name.clone(),
                uid: uid.clone(),
                namespace: spec.namespace.clone(),
                attempt: 0,
            }),
            log_directory: logs.display().to_string(),
            labels: labels.clone(),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/besteffort/pod{uid}"),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: namespaces.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut client = self.cri.client();
        let sandbox = self
            .rt
            .block_on(client.run_pod_sandbox(api::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .unwrap_or_else(|e| panic!("RunPodSandbox {}: {e}", spec.name))
            .into_inner()
            .pod_sandbox_id;
        let mut pod = Pod {
            uid: uid.clone(),
            sandbox: sandbox.clone(),
            containers: Vec::new(),
        };
        self.pods.lock().expect("pods").push(pod.clone());
        for c in &spec.containers {
            let container_labels = std::collections::HashMap::from([
                ("io.kubernetes.container.name".to_string(), c.name.clone()),
                ("io.kubernetes.pod.name".to_string(), spec.name.clone()),
                (
                    "io.kubernetes.pod.namespace".to_string(),
                    spec.namespace.clone(),
                ),
                ("io.kubernetes.pod.uid".to_string(), uid.clone()),
            ]);
            let request = api::CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(api::ContainerConfig {
                    metadata: Some(api::ContainerMetadata {
                        name: c.name.clone(),
                        attempt: 0,
                    }),
                    image: Some(api::ImageSpec {
                        image: self.image.clone(),
                        ..Default::default()
                    }),
                    command: vec!["/bin/sh".into(), "-c".into(), c.script.clone()],
                    working_dir: "/".into(),
                    log_path: format!("{}.log", c.name),
                    labels: container_labels,
                    linux: Some(api::LinuxContainerConfig {
                        resources: Some(api::LinuxContainerResources {
                            cpu_period: 100_000,
                            cpu_shares: 2,
                            oom_score_adj: 1000,
                            ..Default::default()
                        }),
                        security_context: Some(security_context(c, &namespaces)),
                    }),
                    mounts: c
                        .hardening
                        .iter()
                        .flat_map(|h| &h.mounts)
                        .map(|(path, host)| api::Mount {
                            container_path: path.clone(),
                            host_path: host.display().to_string(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
                sandbox_config: Some(config.clone()),
            };
            let id = self
                .rt
                .block_on(client.create_container(request))
                .unwrap_or_else(|e| panic!("CreateContainer {}/{}: {e}", spec.name, c.name))
                .into_inner()
                .container_id;
            pod.containers.push(id);
        }
        if let Some(p) = self.pods.lock().expect("pods").last_mut() {
            *p = pod.clone();
        }
        pod
    }

    /// Starts a created container.
    pub fn start_container(&self, id: &str) {
        self.rt
            .block_on(
                self.cri
                    .client()
                    .start_container(api::StartContainerRequest {
                        container_id: id.into(),
                    }),
            )
            .unwrap_or_else(|e| panic!("StartContainer {id}: {e}"));
    }

    /// Waits until the container has exited; returns its exit code.
    pub fn wait_exited(&self, id: &str, limit: Duration) -> i32 {
        wait_until(&format!("container {id} exiting"), limit, || {
            let status = self
                .rt
                .block_on(
                    self.cri
                        .client()
                        .container_status(api::ContainerStatusRequest {
                            container_id: id.into(),
                            verbose: false,
                        }),
                )
                .ok()?
                .into_inner()
                .status?;
            (status.state == api::ContainerState::ContainerExited as i32)
                .then_some(status.exit_code)
        })
    }

    /// What the container wrote (CRI log lines, their messages only).
    pub fn log(&self, pod: &Pod, container: &str) -> String {
        let text = std::fs::read_to_string(
            self.dir
                .join("logs")
                .join(&pod.uid)
                .join(format!("{container}.log")),
        )
        .unwrap_or_default();
        text.lines()
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops and removes the pod, its containers and its cgroup (as kubelet does).
    pub fn remove_pod(&self, pod: &Pod) {
        let mut client = self.cri.client();
        for id in &pod.containers {
            let _ = self
                .rt
                .block_on(client.stop_container(api::StopContainerRequest {
                    container_id: id.clone(),
                    timeout: 5,
                }));
            let _ = self
                .rt
                .block_on(client.remove_container(api::RemoveContainerRequest {
                    container_id: id.clone(),
                }));
        }
        let _ = self
            .rt
            .block_on(client.stop_pod_sandbox(api::StopPodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            }));
        let _ = self
            .rt
            .block_on(client.remove_pod_sandbox(api::RemovePodSandboxRequest {
                pod_sandbox_id: pod.sandbox.clone(),
            }));
        remove_pod_cgroups(&pod.uid);
        self.pods
            .lock()
            .expect("pods")
            .retain(|p| p.sandbox != pod.sandbox);
    }
}

/// runc removes the containers' cgroups, kubelet the pod's: every hierarchy's
/// `/kubepods/besteffort/pod<uid>`.
fn remove_pod_cgroups(uid: &str) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for line in mounts.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2") {
            let dir = Path::new(f[1]).join(format!("kubepods/besteffort/pod{uid}"));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let pods = self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        for pod in &pods {
            self.remove_pod(pod);
        }
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        // Shims left behind by a test that failed midway exit once their tasks are gone.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.join("state"))
            .output();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The container's security context as kubelet makes it.
fn security_context(
    c: &ContainerSpec,
    namespaces: &Option<api::NamespaceOption>,
) -> api::LinuxContainerSecurityContext {
    let mut sc = api::LinuxContainerSecurityContext {
        namespace_options: namespaces.clone(),
        seccomp: c.seccomp.to_cri(),
        ..Default::default()
    };
    if let Some(h) = &c.hardening {
        sc.capabilities = Some(api::Capability {
            add_capabilities: h.add.clone(),
            drop_capabilities: h.drop.clone(),
            ..Default::default()
        });
        sc.readonly_rootfs = h.read_only;
        sc.no_new_privs = h.no_new_privs;
        sc.run_as_user = h.run_as_user.map(|value| api::Int64Value { value });
        sc.run_as_group = h.run_as_group.map(|value| api::Int64Value { value });
    }
    sc
}
