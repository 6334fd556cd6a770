//! Recording every container an engine creates while `profile watch` runs: the kernel side
//! adopts each new container cgroup on creation (no race with the engine's events), and the
//! engine's events say whose it is, so that each container's syscalls are kept apart and
//! grouped by image, compose service or container.
use std::{
    collections::{BTreeMap, BTreeSet},
    str::FromStr,
    time::{Duration, Instant},
};

use bollard::models::EventMessage;
use futures_util::Stream;

use crate::{
    docker::Engine,
    error::Result,
    recorder::{Recorder, Snapshot},
    seccomp::{Context, Profile},
};

/// How long a cgroup the kernel adopted may stay unclaimed by a container event before it is
/// forgotten (cgroups named like container ids that no watched engine owns).
const UNCLAIMED_GRACE: Duration = Duration::from_secs(30);

/// Which containers are recorded, as `docker ps --filter` selects them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `name=NAME`: the name contains NAME.
    Name(String),
    /// `image=IMAGE`: the image as the container was created with, or its repository.
    Image(String),
}

impl FromStr for Filter {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected KEY=VALUE (label=, name= or image=)"))?;
        match key {
            "label" => Ok(match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            }),
            "name" => Ok(Filter::Name(value.to_string())),
            "image" => Ok(Filter::Image(value.to_string())),
            other => Err(format!(
                "{other:?}: unknown filter (label=K[=V], name=N or image=I)"
            )),
        }
    }
}

/// How recorded containers become profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Per {
    /// One profile per image: replicas and restarts merged.
    #[default]
    Image,
    /// One per compose service (`com.docker.compose.project` / `service` labels); containers
    /// without them by image.
    Service,
    /// One per container.
    Container,
}

/// The seccomp profile a container was created with: the base its profile must stay within.
#[derive(Clone, Debug)]
pub enum Base {
    /// The engine's default profile (Docker's default, resolved for its capabilities).
    Default,
    /// `seccomp=unconfined`: no filter. Its workload is recorded from the exec that hands over
    /// to it, and its profile stays within Docker's default.
    Unconfined,
    /// A profile given to the engine.
    Profile(Box<Profile>),
}

/// What the engine says about a container.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub base: Base,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// The container runtime it ran with, as the engine reports it.
    pub runtime: crate::runtime::Runtime,
}

impl ContainerInfo {
    pub fn matches(&self, filters: &[Filter]) -> bool {
        filters.iter().all(|f| match f {
            Filter::Label(k, v) => self
                .labels
                .get(k)
                .is_some_and(|have| v.as_ref().is_none_or(|want| want == have)),
            Filter::Name(n) => self.name.contains(n.as_str()),
            Filter::Image(i) => {
                self.image == *i || self.image.split(':').next() == Some(i.as_str())
            }
        })
    }

    /// The name of the profile this container's syscalls go into.
    pub fn group(&self, per: Per) -> String {
        let labels = (
            self.labels.get("com.docker.compose.project"),
            self.labels.get("com.docker.compose.service"),
        );
        match (per, labels) {
            (Per::Container, _) => self.name.clone(),
            (Per::Service, (Some(project), Some(service))) => format!("{project}-{service}"),
            _ => self.image.clone(),
        }
    }

    /// The capabilities the engine evaluates profiles under for this container.
    pub fn context(&self) -> std::result::Result<Context, String> {
        Context::with_caps(&self.cap_add, &self.cap_drop)
    }
}

/// One container seen while watching.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub info: ContainerInfo,
    /// What its finished runs recorded (a restart is another run of the same container).
    pub snapshot: Snapshot,
    /// Cgroups of its runs still going.
    pub live: BTreeSet<u64>,
    pub runs: u32,
    /// Why the recording of this container is incomplete, if it is.
    pub incomplete: Vec<String>,
}

impl Tracked {
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
pub struct Watch {
    pub recorder: Recorder,
    engine: Engine,
    filters: Vec<Filter>,
    pub tracked: BTreeMap<String, Tracked>,
    /// Containers the filters left out (their cgroups are forgotten as they start).
    ignored: BTreeSet<String>,
    /// Containers inspected at creation, before they start.
    created: BTreeMap<String, ContainerInfo>,
    /// Adopted cgroups whose runs ended (read and forgotten).
    done: BTreeSet<u64>,
    first_seen: BTreeMap<u64, Instant>,
    /// When adoption began (events are asked for from then on).
    started: std::time::SystemTime,
}

impl Watch {
    /// Starts adopting new container cgroups; containers that exist already are not recorded.
    pub fn new(recorder: Recorder, engine: Engine, filters: Vec<Filter>) -> Watch {
        let started = std::time::SystemTime::now();
        recorder.adopt_containers(true);
        Watch {
            recorder,
            engine,
            filters,
            tracked: BTreeMap::new(),
            ignored: BTreeSet::new(),
            created: BTreeMap::new(),
            done: BTreeSet::new(),
            first_seen: BTreeMap::new(),
            started,
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
    pub async fn on_event(&mut self, event: &EventMessage) -> Result<()> {
        let Some(id) = event.actor.as_ref().and_then(|a| a.id.clone()) else {
            return Ok(());
        };
        // Docker says create/start/die/destroy, Podman create/start/died/remove.
        match event.action.as_deref() {
            Some("create") => {
                // Inspected while it surely exists: a `--rm` container may be gone by the time
                // its start is reported.
                if !self.created.contains_key(&id) {
                    let info = match self.inspect(&id).await {
                        Ok(info) => info,
                        Err(_) => info_from_event(&id, event, self.engine.runtime(None)),
                    };
                    self.created.insert(id, info);
                }
                Ok(())
            }
            Some("start") => {
                if !self.created.contains_key(&id) && !self.tracked.contains_key(&id) {
                    let info = match self.inspect(&id).await {
                        Ok(info) => info,
                        Err(_) => info_from_event(&id, event, self.engine.runtime(None)),
                    };
                    self.created.insert(id.clone(), info);
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

    async fn on_start(&mut self, id: &str) -> Result<()> {
        if self.ignored.contains(id) {
            return Ok(());
        }
        let info = match (self.tracked.get(id), self.created.get(id)) {
            (Some(t), _) => t.info.clone(),
            (None, Some(info)) => info.clone(),
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
        if !info.matches(&self.filters) {
            self.ignored.insert(id.to_string());
            for cg in runs {
                self.recorder.forget_adopted(cg);
            }
            return Ok(());
        }
        let tracked = self
            .tracked
            .entry(id.to_string())
            .or_insert_with(|| Tracked {
                info,
                snapshot: Snapshot::default(),
                live: BTreeSet::new(),
                runs: 0,
                incomplete: Vec::new(),
            });
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
        for cg in std::mem::take(&mut tracked.live) {
            match self.recorder.snapshot_adopted(cg) {
                Ok(snap) => tracked.snapshot.merge(&snap),
                Err(err) => tracked
                    .incomplete
                    .push(format!("a run could not be read: {err}")),
            }
            self.recorder.forget_adopted(cg);
            self.done.insert(cg);
        }
    }

    /// Forgets adopted cgroups no container event has claimed within the grace period.
    pub fn forget_unclaimed(&mut self) {
        let claimed: BTreeSet<u64> = self
            .tracked
            .values()
            .flat_map(|t| t.live.iter().copied())
            .collect();
        let now = Instant::now();
        for (cg, _) in self.recorder.adopted() {
            if claimed.contains(&cg) {
                continue;
            }
            let first = *self.first_seen.entry(cg).or_insert(now);
            if now.duration_since(first) > UNCLAIMED_GRACE {
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

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let c = self.engine.container(id).await?;
        let base = c
            .security_opt
            .iter()
            .find_map(|o| o.strip_prefix("seccomp=").or(o.strip_prefix("seccomp:")))
            .map(|value| match value {
                "unconfined" => Base::Unconfined,
                json => match Profile::parse(json, std::path::Path::new("seccomp=")) {
                    Ok(p) => Base::Profile(Box::new(p)),
                    Err(_) => Base::Default,
                },
            })
            .unwrap_or(Base::Default);
        Ok(ContainerInfo {
            id: id.to_string(),
            name: c.name,
            image: c.image,
            labels: c.labels,
            base,
            cap_add: c.cap_add,
            cap_drop: c.cap_drop,
            runtime: self.engine.runtime(c.runtime.as_deref()),
        })
    }

    /// The engine's default runtime.
    pub fn default_runtime(&self) -> crate::runtime::Runtime {
        self.engine.runtime(None)
    }
}

/// What an event says of its container, when the container can't be inspected any more (a
/// `--rm` container that Podman removed before its events were read): name, image and labels,
/// which both engines put among the event's attributes; Docker's default profile as its base,
/// and the engine's default runtime.
fn info_from_event(
    id: &str,
    event: &EventMessage,
    runtime: crate::runtime::Runtime,
) -> ContainerInfo {
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
        labels: attrs
            .iter()
            .filter(|(k, _)| !NOT_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        base: Base::Default,
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        runtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, image: &str, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            id: "0".repeat(64),
            name: name.into(),
            image: image.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            base: Base::Default,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            runtime: crate::runtime::Runtime::default(),
        }
    }

    #[test]
    fn filters_as_docker_ps_takes_them() {
        let web = info("shop_web_1", "shop/web:1.0", &[("tier", "front")]);
        let f = |s: &str| s.parse::<Filter>().unwrap();
        assert!(web.matches(&[]));
        assert!(web.matches(&[f("label=tier")]));
        assert!(web.matches(&[f("label=tier=front")]));
        assert!(!web.matches(&[f("label=tier=back")]));
        assert!(web.matches(&[f("name=web")]));
        assert!(web.matches(&[f("image=shop/web")]));
        assert!(web.matches(&[f("image=shop/web:1.0")]));
        assert!(!web.matches(&[f("image=shop/db"), f("name=web")]));
        assert!("color=red".parse::<Filter>().is_err());
        assert!("label".parse::<Filter>().is_err());
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
        assert_eq!(svc.group(Per::Image), "img:1");
        assert_eq!(svc.group(Per::Service), "p-web");
        assert_eq!(svc.group(Per::Container), "p_web_1");
        assert_eq!(info("x", "img:2", &[]).group(Per::Service), "img:2");
    }
}
