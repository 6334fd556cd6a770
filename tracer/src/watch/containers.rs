//! The containers of a watch: the kernel side adopts each new container cgroup on creation
//! (no race with the engine's events), and the engine's events say whose it is, so that each
//! container's syscalls are kept apart and grouped by image, compose service or container.
use std::{
    collections::{BTreeMap, BTreeSet},
    str::FromStr,
    time::{Duration, Instant},
};

use bollard::models::EventMessage;
use futures_util::Stream;

use crate::{
    docker::{ContainerInfo, DockerError, Engine},
    recorder::{Recorder, Snapshot},
    runtime::Runtime,
    seccomp::{Base, Bound, Context, Profile},
};

/// How long a cgroup the kernel adopted may stay unclaimed by a container event before it is
/// forgotten (cgroups named like container ids that no watched engine owns), once the events
/// read have caught up with its creation.
const UNCLAIMED_GRACE: Duration = Duration::from_secs(30);

/// How long an unclaimed cgroup is kept however far behind the events are.
const UNCLAIMED_LIMIT: Duration = Duration::from_secs(600);

/// Which containers are recorded, as `docker ps --filter` selects them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerFilter {
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `name=NAME`: the name contains NAME.
    Name(String),
    /// `image=IMAGE`: the container's image, as `docker ps --filter ancestor=` takes it: by
    /// name with or without its tag (`:latest` when none), by id or by digest.
    Image(String),
    /// `namespace=NS`: a Kubernetes pod's namespace.
    Namespace(String),
}

impl std::fmt::Display for ContainerFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerFilter::Label(k, None) => write!(f, "label={k}"),
            ContainerFilter::Label(k, Some(v)) => write!(f, "label={k}={v}"),
            ContainerFilter::Name(n) => write!(f, "name={n}"),
            ContainerFilter::Image(i) => write!(f, "image={i}"),
            ContainerFilter::Namespace(ns) => write!(f, "namespace={ns}"),
        }
    }
}

/// An image reference as the engine's name for it: without Docker Hub's default registry and
/// namespace, with `:latest` when it names no tag or digest.
fn image_key(reference: &str) -> String {
    let short = [
        "docker.io/library/",
        "index.docker.io/library/",
        "docker.io/",
    ]
    .iter()
    .find_map(|p| reference.strip_prefix(p))
    .unwrap_or(reference);
    let last = short.rsplit('/').next().unwrap_or(short);
    match last.contains(':') || short.contains('@') {
        true => short.to_string(),
        false => format!("{short}:latest"),
    }
}

impl FromStr for ContainerFilter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected KEY=VALUE (label=, name=, image= or namespace=)")
        })?;
        match key {
            "label" => Ok(match value.split_once('=') {
                Some((k, v)) => ContainerFilter::Label(k.to_string(), Some(v.to_string())),
                None => ContainerFilter::Label(value.to_string(), None),
            }),
            "name" => Ok(ContainerFilter::Name(value.to_string())),
            "image" => Ok(ContainerFilter::Image(value.to_string())),
            "namespace" => Ok(ContainerFilter::Namespace(value.to_string())),
            other => Err(format!(
                "{other:?}: unknown filter (label=K[=V], name=N, image=I or namespace=NS)"
            )),
        }
    }
}

/// How recorded containers become profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Per {
    /// One profile per image: replicas and restarts merged.
    #[default]
    Image,
    /// One per compose service (`com.docker.compose.project` / `service` labels); containers
    /// without them by image.
    Service,
    /// One per container.
    Container,
    /// One per Kubernetes workload's container (`<namespace>-<workload>-<container>`): replicas
    /// and restarts merged; containers of no pod by image.
    Workload,
    /// One per pod's container (`<namespace>-<pod>-<container>`): restarts merged.
    Pod,
}

impl ContainerFilter {
    /// Whether `c` is selected by this filter; `image_ids` holds the image ids the engine
    /// resolved references to (the filter's and the container's image).
    pub fn matches(&self, c: &ContainerInfo, image_ids: &BTreeMap<String, String>) -> bool {
        match self {
            ContainerFilter::Label(k, v) => c
                .labels
                .get(k)
                .is_some_and(|have| v.as_ref().is_none_or(|want| want == have)),
            ContainerFilter::Name(n) => c.name.contains(n.as_str()),
            ContainerFilter::Namespace(ns) => c.labels.get(super::pods::NAMESPACE) == Some(ns),
            ContainerFilter::Image(i) => {
                let same_id = matches!(
                    (image_ids.get(i), image_ids.get(&c.image)),
                    (Some(a), Some(b)) if a == b
                );
                same_id || image_key(i) == image_key(&c.image)
            }
        }
    }
}

impl Per {
    /// The name of the profile `c`'s syscalls go into.
    pub fn group(self, c: &ContainerInfo) -> String {
        let labels = (
            c.labels.get("com.docker.compose.project"),
            c.labels.get("com.docker.compose.service"),
        );
        let pod = match self {
            Per::Workload => super::pods::workload_group(&c.labels),
            Per::Pod => super::pods::pod_group(&c.labels),
            _ => None,
        };
        if let Some(pod) = pod {
            return pod;
        }
        match (self, labels) {
            (Per::Container, _) => c.name.clone(),
            (Per::Service, (Some(project), Some(service))) => format!("{project}-{service}"),
            _ => c.image.clone(),
        }
    }
}

/// The profile a container was created with, the base its learned profile stays within:
/// `None` for `seccomp=unconfined` (no filter: its workload is recorded from the exec that
/// hands over to it, and its profile stays within Docker's default).
fn base_of(c: &ContainerInfo) -> Option<Base> {
    let value = c
        .security_opt
        .iter()
        .find_map(|o| o.strip_prefix("seccomp=").or(o.strip_prefix("seccomp:")));
    match value {
        None => Some(Base::DockerDefault),
        Some("unconfined") => None,
        Some(json) => Some(
            match Profile::parse(json, std::path::Path::new("seccomp=")) {
                Ok(profile) => Base::Profile {
                    profile: Box::new(profile),
                    label: format!("{}'s profile", c.name),
                },
                Err(_) => Base::DockerDefault,
            },
        ),
    }
}

/// One container seen while watching.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub info: ContainerInfo,
    /// The profile it was created with (`None`: unconfined).
    pub base: Option<Base>,
    /// The container runtime it runs with: its tail goes into the profile.
    pub runtime: Runtime,
    /// What its finished runs recorded (a restart is another run of the same container).
    pub snapshot: Snapshot,
    /// Cgroups of its runs still going.
    pub live: BTreeSet<u64>,
    pub runs: u32,
    /// Why the recording of this container is incomplete, if it is.
    pub incomplete: Vec<String>,
}

impl Tracked {
    fn new(info: ContainerInfo, engine: &Engine) -> Self {
        let runtime = engine.runtime(info.runtime.as_deref());
        runtime.prepare();
        Tracked {
            base: base_of(&info),
            runtime,
            info,
            snapshot: Snapshot::default(),
            live: BTreeSet::new(),
            runs: 0,
            incomplete: Vec::new(),
        }
    }

    /// Its run that began before watching did, recorded from now on in cgroup `cg`.
    pub fn running_before(&mut self, cg: u64) {
        self.incomplete
            .push("running before watching began: recorded from then on".into());
        self.runs += 1;
        self.live.insert(cg);
    }

    /// What its learned profile stays within: the profile it was created with, Docker's
    /// default when it ran unconfined.
    pub fn bound(&self) -> Bound {
        match &self.base {
            Some(base) => base.bound(false),
            None => Bound {
                label: "docker-default (the container ran unconfined)".into(),
                ..Base::DockerDefault.bound(false)
            },
        }
    }

    /// The capabilities the engine evaluates profiles under for this container.
    pub fn context(&self) -> Result<Context, String> {
        Context::with_caps(&self.info.cap_add, &self.info.cap_drop)
    }

    /// Keeps what its runs recorded and has the kernel side forget their cgroups, which it
    /// returns: the runs ended.
    pub fn end_runs(&mut self, recorder: &Recorder) -> BTreeSet<u64> {
        let ended = std::mem::take(&mut self.live);
        for cg in &ended {
            match recorder.snapshot_adopted(*cg) {
                Ok(snap) => self.snapshot.merge(&snap),
                Err(err) => self
                    .incomplete
                    .push(format!("a run could not be read: {err}")),
            }
            recorder.forget_adopted(*cg);
        }
        ended
    }

    /// Everything recorded so far, runs still going included.
    pub fn recorded(&self, recorder: &Recorder) -> Snapshot {
        let mut snap = self.snapshot.clone();
        for id in &self.live {
            if let Ok(s) = recorder.snapshot_adopted(*id) {
                snap.merge(&s);
            }
        }
        snap
    }
}

/// The watched engine's containers and the recorder that counts their syscalls.
pub struct Watcher {
    pub recorder: Recorder,
    engine: Engine,
    filters: Vec<ContainerFilter>,
    pub tracked: BTreeMap<String, Tracked>,
    /// Containers the filters left out (their cgroups are forgotten as they start).
    ignored: BTreeSet<String>,
    /// Containers inspected at creation, before they start.
    created: BTreeMap<String, Tracked>,
    /// Adopted cgroups whose runs ended (read and forgotten).
    done: BTreeSet<u64>,
    /// When each unclaimed adopted cgroup was first seen.
    first_seen: BTreeMap<u64, (Instant, std::time::SystemTime)>,
    /// When the engine sent the latest event read: a start reported after a cgroup appeared
    /// is read only once the events have caught up (many large containers inspected at once
    /// keep them far behind).
    events_upto: Option<std::time::SystemTime>,
    /// When the latest event was read.
    event_read: Option<Instant>,
    /// When adoption began (events are asked for from then on).
    started: std::time::SystemTime,
    /// Image references the engine resolved to image ids (the filters' and the containers').
    image_ids: BTreeMap<String, String>,
    /// Per filter: whether it matched a container that started.
    matched: Vec<bool>,
}

impl Watcher {
    /// Starts adopting new container cgroups; containers that exist already are not recorded.
    pub fn new(recorder: Recorder, engine: Engine, filters: Vec<ContainerFilter>) -> Watcher {
        let started = std::time::SystemTime::now();
        recorder.adopt_containers(true);
        Watcher {
            recorder,
            engine,
            tracked: BTreeMap::new(),
            ignored: BTreeSet::new(),
            created: BTreeMap::new(),
            done: BTreeSet::new(),
            first_seen: BTreeMap::new(),
            events_upto: None,
            event_read: None,
            started,
            image_ids: BTreeMap::new(),
            matched: vec![false; filters.len()],
            filters,
        }
    }

    /// Records the containers running now that the filters select, from now on (their
    /// profiles are marked partial).
    pub async fn adopt_existing(&mut self) -> Result<(), DockerError> {
        let running = self.engine.running_containers().await?;
        // One that started since watching began was adopted on its cgroup's creation, and is
        // recorded whole when its start is reported.
        let adopted: BTreeSet<String> = self
            .recorder
            .adopted()
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        for id in running {
            if adopted.contains(&id) {
                continue;
            }
            let Ok(info) = self.engine.container(&id).await else {
                continue; // gone since it was listed
            };
            if !self.selects(&info).await {
                continue;
            }
            let cg = match self.recorder.adopt_running(&id) {
                Ok(cg) => cg,
                Err(err) => {
                    log::warn!("{}: not recorded: {err}", info.name);
                    continue;
                }
            };
            let mut t = Tracked::new(info, &self.engine);
            t.running_before(cg);
            self.tracked.insert(id, t);
        }
        Ok(())
    }

    /// The engine whose containers are watched.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The filters that matched no container that started, in words (`image=app`).
    pub fn unmatched_filters(&self) -> Vec<String> {
        self.filters
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(f, _)| f.to_string())
            .collect()
    }

    /// Whether every filter selects `c`; each filter that does is marked as having matched.
    async fn selects(&mut self, c: &ContainerInfo) -> bool {
        self.resolve_images(c).await;
        let mut all = true;
        for (filter, matched) in self.filters.iter().zip(self.matched.iter_mut()) {
            let verdict = filter.matches(c, &self.image_ids);
            *matched |= verdict;
            all &= verdict;
        }
        all
    }

    /// Resolves the image references `c` is filtered by, its own among them, to image ids
    /// (a reference the engine doesn't know is asked again at the next start).
    async fn resolve_images(&mut self, c: &ContainerInfo) {
        let mut references: Vec<&str> = self
            .filters
            .iter()
            .filter_map(|f| match f {
                ContainerFilter::Image(i) => Some(i.as_str()),
                _ => None,
            })
            .collect();
        if references.is_empty() {
            return;
        }
        references.push(&c.image);
        for reference in references {
            if !self.image_ids.contains_key(reference)
                && let Some(id) = self.engine.image_id(reference).await
            {
                self.image_ids.insert(reference.to_string(), id);
            }
        }
    }

    /// The engine's container events since watching began.
    pub fn events(
        &self,
    ) -> impl Stream<Item = std::result::Result<EventMessage, bollard::errors::Error>> + use<> {
        self.engine.container_events(self.started)
    }

    /// Handles one event: a container started (record it, or forget it if filtered out) or
    /// died (keep what its run recorded).
    pub async fn on_event(&mut self, event: &EventMessage) -> Result<(), DockerError> {
        if let Some(nanos) = event.time_nano.and_then(|n| u64::try_from(n).ok()) {
            let at = std::time::UNIX_EPOCH + Duration::from_nanos(nanos);
            self.events_upto = self.events_upto.max(Some(at));
        }
        self.event_read = Some(Instant::now());
        let Some(id) = event.actor.as_ref().and_then(|a| a.id.clone()) else {
            return Ok(());
        };
        // Docker says create/start/die/destroy, Podman create/start/died/remove.
        match event.action.as_deref() {
            Some("create") => {
                // Inspected while it surely exists: a `--rm` container may be gone by the time
                // its start is reported.
                if !self.created.contains_key(&id) {
                    let info = match self.engine.container(&id).await {
                        Ok(info) => info,
                        Err(_) => info_from_event(&id, event),
                    };
                    self.created.insert(id, Tracked::new(info, &self.engine));
                }
                Ok(())
            }
            Some("start") => {
                if !self.created.contains_key(&id) && !self.tracked.contains_key(&id) {
                    let info = match self.engine.container(&id).await {
                        Ok(info) => info,
                        Err(_) => info_from_event(&id, event),
                    };
                    self.created
                        .insert(id.clone(), Tracked::new(info, &self.engine));
                }
                self.on_start(&id).await
            }
            Some("die") | Some("died") => {
                self.on_die(&id);
                Ok(())
            }
            Some("destroy") | Some("remove") => {
                self.ignored.remove(&id);
                self.created.remove(&id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn on_start(&mut self, id: &str) -> Result<(), DockerError> {
        if self.ignored.contains(id) {
            return Ok(());
        }
        let fresh = match (self.tracked.contains_key(id), self.created.get(id)) {
            (true, _) => None,
            (false, Some(t)) => Some(t.clone()),
            (false, None) => return Ok(()),
        };
        let info = match (&fresh, self.tracked.get(id)) {
            (Some(t), _) | (None, Some(t)) => t.info.clone(),
            (None, None) => return Ok(()),
        };
        // The kernel side adopted the run's cgroup when it was created, under the container's
        // id; the cgroup itself may be gone already (a container that exits at once).
        let claimed: BTreeSet<u64> = self
            .tracked
            .values()
            .flat_map(|t| t.live.iter().copied())
            .chain(self.done.iter().copied())
            .collect();
        let runs: Vec<u64> = self
            .recorder
            .adopted()
            .into_iter()
            .filter(|(cg, name)| name == id && !claimed.contains(cg))
            .map(|(cg, _)| cg)
            .collect();
        if !self.selects(&info).await {
            self.ignored.insert(id.to_string());
            for cg in runs {
                self.recorder.forget_adopted(cg);
            }
            return Ok(());
        }
        let tracked = self
            .tracked
            .entry(id.to_string())
            .or_insert_with(|| fresh.unwrap_or_else(|| Tracked::new(info, &self.engine)));
        tracked.runs += 1;
        if runs.is_empty() {
            tracked.incomplete.push(
                "its cgroup was not adopted on creation (created before watching began, or not named by its id): not recorded".into(),
            );
        }
        for cg in runs {
            tracked.live.insert(cg);
            self.first_seen.remove(&cg);
        }
        Ok(())
    }

    fn on_die(&mut self, id: &str) {
        let Some(tracked) = self.tracked.get_mut(id) else {
            return;
        };
        self.done.extend(tracked.end_runs(&self.recorder));
    }

    /// Forgets adopted cgroups no container event has claimed within the grace period.
    pub fn forget_unclaimed(&mut self) {
        let claimed: BTreeSet<u64> = self
            .tracked
            .values()
            .flat_map(|t| t.live.iter().copied())
            .collect();
        let now = Instant::now();
        let wall = std::time::SystemTime::now();
        for (cg, _) in self.recorder.adopted() {
            if claimed.contains(&cg) {
                continue;
            }
            let (first, first_wall) = *self.first_seen.entry(cg).or_insert((now, wall));
            let waited = now.duration_since(first);
            // Events sent since it appeared were read, or none came for a while: any start
            // that claims it has been read.
            let caught_up = self.events_upto.is_some_and(|upto| upto > first_wall)
                || self
                    .event_read
                    .is_none_or(|read| now.duration_since(read) > UNCLAIMED_GRACE);
            if (waited > UNCLAIMED_GRACE && caught_up) || waited > UNCLAIMED_LIMIT {
                self.recorder.forget_adopted(cg);
                self.first_seen.remove(&cg);
            }
        }
    }

    /// Stops adopting; containers still running are marked as recorded up to now.
    pub fn finish(&mut self) {
        self.recorder.adopt_containers(false);
        for t in self.tracked.values_mut() {
            if !t.live.is_empty() {
                t.incomplete
                    .push("still running when watching ended: recorded up to then".into());
            }
        }
    }
}

/// What an event says of its container, when the container can't be inspected any more (a
/// `--rm` container that Podman removed before its events were read): name, image and labels,
/// which both engines put among the event's attributes (no `seccomp=` option: Docker's
/// default profile as its base).
fn info_from_event(id: &str, event: &EventMessage) -> ContainerInfo {
    const NOT_LABELS: [&str; 5] = ["image", "name", "exitCode", "containerExitCode", "podId"];
    let attrs = event
        .actor
        .as_ref()
        .and_then(|a| a.attributes.clone())
        .unwrap_or_default();
    ContainerInfo {
        id: id.to_string(),
        name: attrs
            .get("name")
            .cloned()
            .unwrap_or_else(|| id[..12.min(id.len())].to_string()),
        image: attrs.get("image").cloned().unwrap_or_default(),
        image_id: None,
        labels: attrs
            .iter()
            .filter(|(k, _)| !NOT_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        pid: None,
        running: false,
        created: None,
        started_at: None,
        finished_at: None,
        security_opt: Vec::new(),
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        runtime: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, image: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        let mut info = info_from_event(&"0".repeat(64), &EventMessage::default());
        info.name = name.into();
        info.image = image.into();
        info.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        info
    }

    #[test]
    fn filters_as_docker_ps_takes_them() {
        let web = info("shop_web_1", "shop/web:1.0", &[("tier", "front")]);
        let all = |filters: &[&str]| {
            filters
                .iter()
                .map(|s| s.parse::<ContainerFilter>().unwrap())
                .all(|f| f.matches(&web, &BTreeMap::new()))
        };
        assert!(all(&[]));
        assert!(all(&["label=tier"]));
        assert!(all(&["label=tier=front"]));
        assert!(!all(&["label=tier=back"]));
        assert!(all(&["name=web"]));
        assert!(all(&["image=shop/web:1.0"]));
        // As `docker ps --filter ancestor=`: no tag is `:latest`.
        assert!(!all(&["image=shop/web"]));
        let hello = info("h", "profile-example/hello", &[]);
        let ids: BTreeMap<String, String> = [
            (
                "profile-example/hello".to_string(),
                "sha256:39947".to_string(),
            ),
            ("39947".to_string(), "sha256:39947".to_string()),
        ]
        .into();
        let by = |filter: &str, ids: &BTreeMap<String, String>| {
            filter
                .parse::<ContainerFilter>()
                .unwrap()
                .matches(&hello, ids)
        };
        for name in [
            "image=profile-example/hello",
            "image=profile-example/hello:latest",
            "image=docker.io/profile-example/hello:latest",
        ] {
            assert!(by(name, &BTreeMap::new()), "{name}");
        }
        assert!(by("image=39947", &ids), "by the id the engine resolved");
        assert!(!by("image=39947", &BTreeMap::new()));
        assert!(!by("image=profile-example/hello:1.0", &BTreeMap::new()));
        assert_eq!(image_key("busybox"), "busybox:latest");
        assert_eq!(image_key("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(image_key("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(image_key("app@sha256:ab"), "app@sha256:ab");
        assert!(!all(&["image=shop/db", "name=web"]));
        assert!("color=red".parse::<ContainerFilter>().is_err());
        assert!("label".parse::<ContainerFilter>().is_err());
    }

    #[test]
    fn groups() {
        let svc = info(
            "p_web_1",
            "img:1",
            &[
                ("com.docker.compose.project", "p"),
                ("com.docker.compose.service", "web"),
            ],
        );
        assert_eq!(Per::Image.group(&svc), "img:1");
        assert_eq!(Per::Service.group(&svc), "p-web");
        assert_eq!(Per::Container.group(&svc), "p_web_1");
        assert_eq!(Per::Service.group(&info("x", "img:2", &[])), "img:2");
    }

    #[test]
    fn a_container_is_bound_by_the_profile_it_was_created_with() {
        let mut web = info("web", "img", &[]);
        assert_eq!(base_of(&web), Some(Base::DockerDefault));
        web.security_opt = vec!["seccomp=unconfined".into()];
        assert_eq!(base_of(&web), None);
        web.security_opt = vec![r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#.into()];
        let Some(Base::Profile { label, .. }) = base_of(&web) else {
            panic!("{:?}", base_of(&web))
        };
        assert_eq!(label, "web's profile");
    }
}
