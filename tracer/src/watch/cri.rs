//! A Kubernetes node's pods, through the CRI runtime service: the kernel side adopts each new
//! container cgroup on creation (kubelet's layouts end in the container's id), and the runtime,
//! polled as kubelet polls it, says whose it is. The pause container of a pod's sandbox is
//! never recorded.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::{Duration, Instant},
};

use futures_util::Stream;

use super::{
    containers::{ContainerFilter, Tracked},
    engine::ContainerEngine,
    pods,
};
use crate::{
    cri::{Cri, CriContainer, CriError, Sandbox, api},
    docker::ContainerInfo,
    formats::parse_profile,
    recorder::Recorder,
    runtime::{Runtime, RuntimeBinary},
    seccomp::Base,
};

/// How often the runtime is asked: a container's identity is fetched while it exists, which
/// kubelet keeps for a while after exit; a short poll also serves containers removed at once.
const POLL: Duration = Duration::from_millis(100);
/// How long an adopted cgroup may stay unclaimed before it is forgotten.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(30);

/// What a container id turned out to be.
#[derive(Clone, Debug)]
enum Known {
    /// A pod's container: recorded (once started) if the filters take it.
    Container(Box<Tracked>),
    /// A pod sandbox's pause container, or a container the filters leave out.
    Ignored,
}

/// The pods of a CRI runtime and the recorder that counts their syscalls.
pub struct CriWatcher {
    recorder: Recorder,
    cri: Cri,
    filters: Vec<ContainerFilter>,
    /// Per filter: whether it matched a container.
    matched: Vec<bool>,
    tracked: BTreeMap<String, Tracked>,
    known: BTreeMap<String, Known>,
    sandboxes: BTreeMap<String, Sandbox>,
    /// The low-level runtime containers run with, as far as it can be told: its binary and
    /// version.
    runc: Option<RuntimeBinary>,
    runc_version: Option<String>,
    /// Adopted cgroups whose runs ended.
    done: BTreeSet<u64>,
    first_seen: BTreeMap<u64, Instant>,
}

impl CriWatcher {
    /// Starts adopting new container cgroups of the runtime `cri` serves, recording those
    /// `filters` take; containers that exist already are not recorded (with `existing`,
    /// running ones are recorded from now on).
    pub async fn new(
        recorder: Recorder,
        cri: Cri,
        filters: &[ContainerFilter],
        existing: bool,
    ) -> Result<Self, CriError> {
        let runc = crate::cri::runc(cri.socket());
        let runc_version = runc.as_ref().and_then(RuntimeBinary::version);
        log::info!(
            "runc: {}",
            runc_version.as_deref().unwrap_or("unknown version")
        );
        recorder.adopt_containers(true);
        let mut w = CriWatcher {
            recorder,
            cri,
            filters: filters.to_vec(),
            matched: vec![false; filters.len()],
            tracked: BTreeMap::new(),
            known: BTreeMap::new(),
            sandboxes: BTreeMap::new(),
            runc,
            runc_version,
            done: BTreeSet::new(),
            first_seen: BTreeMap::new(),
        };
        for sb in w.cri.sandboxes().await? {
            w.known.insert(sb.id, Known::Ignored);
        }
        for c in w.cri.containers().await? {
            if existing && c.state == api::ContainerState::ContainerRunning as i32 {
                w.adopt_running(&c.id).await;
            } else if c.state != api::ContainerState::ContainerCreated as i32 {
                // Ran (or runs) before watching began: not recorded.
                w.known.insert(c.id, Known::Ignored);
            }
        }
        Ok(w)
    }

    /// The version of the runc the runtime runs, when it could be asked.
    pub fn runc(&self) -> Option<&str> {
        self.runc_version.as_deref()
    }

    /// Records a container that runs already, from now on (marked partial).
    async fn adopt_running(&mut self, id: &str) {
        let Some(Known::Container(mut t)) = self.identify(id).await else {
            return;
        };
        self.known.insert(id.to_string(), Known::Ignored);
        let cg = match self.recorder.adopt_running(id) {
            Ok(cg) => cg,
            Err(err) => {
                log::warn!("{}: not recorded: {err}", t.info.name);
                return;
            }
        };
        t.running_before(cg);
        self.tracked.insert(id.to_string(), *t);
    }

    /// What container `id` is: a pod's container (with its identity), or something never
    /// recorded (a sandbox, a container the filters leave out); `None` if the runtime no
    /// longer knows it.
    async fn identify(&mut self, id: &str) -> Option<Known> {
        let c = match self.cri.container(id).await {
            Ok(c) => c,
            Err(err) if err.not_found() => {
                return self.cri.sandbox(id).await.ok().map(|_| Known::Ignored);
            }
            Err(err) => {
                log::info!("{err}");
                return None;
            }
        };
        if c.labels.get("io.cri-containerd.kind").map(String::as_str) == Some("sandbox") {
            return Some(Known::Ignored);
        }
        let sandbox = match self.sandboxes.get(&c.sandbox_id) {
            Some(sb) => Some(sb.clone()),
            None => match self.cri.sandbox(&c.sandbox_id).await {
                Ok(sb) => {
                    self.sandboxes.insert(c.sandbox_id.clone(), sb.clone());
                    Some(sb)
                }
                Err(_) => None,
            },
        };
        let tracked = self.tracked_of(c, sandbox.as_ref());
        // Images are matched by reference: the CRI names each container's image as pulled.
        let verdicts: Vec<bool> = self
            .filters
            .iter()
            .map(|f| f.matches(&tracked.info, &BTreeMap::new()))
            .collect();
        for (matched, verdict) in self.matched.iter_mut().zip(&verdicts) {
            *matched |= verdict;
        }
        if !verdicts.iter().all(|v| *v) {
            return Some(Known::Ignored);
        }
        Some(Known::Container(Box::new(tracked)))
    }

    /// The container as a watch records it: its pod's and its own labels, the profile it runs
    /// under (its base), the runtime it runs with.
    fn tracked_of(&self, c: CriContainer, sandbox: Option<&Sandbox>) -> Tracked {
        let mut labels = sandbox.map(|sb| sb.labels.clone()).unwrap_or_default();
        labels.extend(c.labels.clone());
        let name = match pods::pod_group(&labels) {
            Some(pod) => format!("{pod}-{}", c.id.get(..12).unwrap_or(&c.id)),
            None => c.name.clone(),
        };
        let base = match (&c.seccomp, c.spec_known) {
            (Some(json), _) => Some(match parse_profile(json, Path::new("runtime spec")) {
                Ok(profile) => Base::Profile {
                    profile: Box::new(profile),
                    label: format!("the profile {name} ran under"),
                },
                Err(_) => Base::DockerDefault,
            }),
            (None, true) => None,
            // The runtime does not show its spec: Docker's default bounds the profile.
            (None, false) => Some(Base::DockerDefault),
        };
        let runtime = Runtime::new(
            c.runtime_type.as_deref().unwrap_or("runc"),
            self.runc_version.as_deref(),
        )
        .with_binary(self.runc.clone());
        runtime.prepare();
        let info = ContainerInfo {
            id: c.id.clone(),
            name,
            pid: c.pid,
            running: c.state == api::ContainerState::ContainerRunning as i32,
            created: None,
            started_at: None,
            finished_at: None,
            image: c.image.clone(),
            image_id: None,
            labels,
            security_opt: Vec::new(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            runtime: c.runtime_type.clone(),
        };
        Tracked {
            info,
            base,
            runtime,
            snapshot: Default::default(),
            live: BTreeSet::new(),
            runs: 0,
            incomplete: Vec::new(),
        }
    }

    /// One look at the runtime: new containers are identified while they exist, adopted
    /// cgroups claimed by their container (or forgotten: sandboxes, filtered out), and the
    /// runs of containers that exited (or are gone) ended.
    async fn poll(&mut self) -> Result<(), CriError> {
        let listed = self.cri.containers().await?;
        let states: BTreeMap<&str, i32> = listed.iter().map(|c| (c.id.as_str(), c.state)).collect();
        for c in &listed {
            if !self.known.contains_key(&c.id)
                && let Some(known) = self.identify(&c.id).await
            {
                self.known.insert(c.id.clone(), known);
            }
        }
        for (cg, name) in self.recorder.adopted() {
            if self.done.contains(&cg) || self.tracked.values().any(|t| t.live.contains(&cg)) {
                continue;
            }
            if !self.known.contains_key(&name)
                && let Some(known) = self.identify(&name).await
            {
                self.known.insert(name.clone(), known);
            }
            match self.known.get(&name) {
                Some(Known::Ignored) => {
                    self.recorder.forget_adopted(cg);
                    self.done.insert(cg);
                }
                Some(Known::Container(t)) => {
                    let t = self
                        .tracked
                        .entry(name.clone())
                        .or_insert_with(|| (**t).clone());
                    t.runs += 1;
                    t.live.insert(cg);
                    self.first_seen.remove(&cg);
                }
                None => {}
            }
        }
        let exited = api::ContainerState::ContainerExited as i32;
        for (id, t) in self.tracked.iter_mut() {
            if !t.live.is_empty() && states.get(id.as_str()).is_none_or(|s| *s == exited) {
                self.done.extend(t.end_runs(&self.recorder));
            }
        }
        // A container the runtime no longer lists had its cgroup (if it ever started) adopted
        // and claimed above: the watch forgets it too, so a node's churn does not pile up here.
        self.known.retain(|id, _| states.contains_key(id.as_str()));
        Ok(())
    }
}

/// This host's name (the kernel's nodename): the node a watch's index names by default.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl ContainerEngine for CriWatcher {
    type Event = ();
    type StreamError = std::convert::Infallible;
    type EventError = CriError;

    /// A look every [`POLL`], and at once on each of the runtime's container events where it
    /// has them (`GetContainerEvents`; containerd 1.6 answers UNIMPLEMENTED).
    fn events(&self) -> impl Stream<Item = Result<(), Self::StreamError>> + Unpin + 'static {
        use futures_util::StreamExt as _;
        let tick = tokio::time::interval(POLL);
        let ticks = futures_util::stream::unfold(tick, |mut tick| async move {
            tick.tick().await;
            Some((Ok(()), tick))
        });
        let mut client = self.cri.client();
        let pushed = futures_util::stream::once(async move {
            match client.get_container_events(api::GetEventsRequest {}).await {
                Ok(events) => events.into_inner().map(|_| Ok(())).left_stream(),
                Err(status) => {
                    log::info!("no container events from the runtime ({status}): polling");
                    futures_util::stream::pending().right_stream()
                }
            }
        })
        .flatten();
        Box::pin(futures_util::stream::select(ticks, pushed))
    }

    async fn on_event(&mut self, _: &()) -> Result<(), CriError> {
        self.poll().await
    }

    fn forget_unclaimed(&mut self) {
        let now = Instant::now();
        for (cg, _) in self.recorder.adopted() {
            if self.tracked.values().any(|t| t.live.contains(&cg)) {
                continue;
            }
            let first = *self.first_seen.entry(cg).or_insert(now);
            if now.duration_since(first) > UNCLAIMED_GRACE {
                self.recorder.forget_adopted(cg);
                self.first_seen.remove(&cg);
            }
        }
    }

    fn finish(&mut self) {
        self.recorder.adopt_containers(false);
        for t in self.tracked.values_mut() {
            if !t.live.is_empty() {
                t.incomplete
                    .push("still running when watching ended: recorded up to then".into());
            }
        }
    }

    fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    fn tracked(&self) -> &BTreeMap<String, Tracked> {
        &self.tracked
    }

    fn unmatched_filters(&self) -> Vec<String> {
        self.filters
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(f, _)| f.to_string())
            .collect()
    }
}
