//! The ceilings of the programs a watch's containers ran: each image is read once for the
//! whole watch, by id, through the Docker engine's export; a signal ends a read at once.
use std::collections::{BTreeMap, BTreeSet};

use super::containers::Tracked;
use crate::{
    docker::Engine,
    recorder::Snapshot,
    scan::{
        Scan,
        coverage::{Ceilings, not_read, unknown},
        scan_image,
    },
    session::{Interrupt, SessionError},
};

/// The images read so far, by id: the scan, or why there is none.
#[derive(Debug, Default)]
pub(super) struct Images {
    scans: BTreeMap<String, Result<Scan, String>>,
    /// The signal that ended a read: no image is read after it.
    pub interrupted: Option<i32>,
}

impl Images {
    /// What the ceilings of the programs `snap` saw the group's containers (`members`) exec
    /// say of it, or why they are unknown; nothing when nothing was exec'd. `engine` exports
    /// the images (`None`: the engine exports none).
    pub async fn ceilings(
        &mut self,
        engine: Option<&Engine>,
        members: &[&Tracked],
        snap: &Snapshot,
        interrupt: &mut Interrupt,
    ) -> Result<Option<Ceilings>, String> {
        if snap.programs.is_empty() {
            return Ok(None);
        }
        let names: BTreeSet<&str> = members.iter().map(|t| t.info.image.as_str()).collect();
        let image = names.iter().copied().collect::<Vec<_>>().join(", ");
        if names.len() > 1 {
            return Err(unknown(
                &image,
                "the profile's containers ran several images, whose programs are not told apart",
            ));
        }
        let Some(engine) = engine else {
            return Err(unknown(
                &image,
                "the CRI exports no image to read them from",
            ));
        };
        let ids: BTreeSet<&str> = members
            .iter()
            .filter_map(|t| t.info.image_id.as_deref())
            .collect();
        let id = match Vec::from_iter(ids).as_slice() {
            [] => match self.guard(interrupt, engine.image_id(&image)).await {
                Some(Some(id)) => id,
                Some(None) => return Err(unknown(&image, "the engine no longer has the image")),
                None => return Err(not_read(&image, "interrupted")),
            },
            [id] => id.to_string(),
            _ => {
                return Err(unknown(
                    &image,
                    "the profile's containers ran different builds of it",
                ));
            }
        };
        if !self.scans.contains_key(&id) {
            match self
                .guard(
                    interrupt,
                    scan_image(engine, &id, crate::docker::Pull::Never),
                )
                .await
            {
                Some(scan) => {
                    self.scans
                        .insert(id.clone(), scan.map_err(|e| e.to_string()));
                }
                None => return Err(not_read(&image, "interrupted")),
            }
        }
        match self.scans.get(&id) {
            Some(Ok(scan)) => Ok(Ceilings::of(scan, snap)),
            Some(Err(why)) => Err(unknown(&image, why)),
            None => Err(not_read(&image, "interrupted")),
        }
    }

    /// Runs `fut` unless a signal comes first, or came during an earlier read: `None` then.
    async fn guard<T>(
        &mut self,
        interrupt: &mut Interrupt,
        fut: impl Future<Output = T>,
    ) -> Option<T> {
        if self.interrupted.is_some() {
            return None;
        }
        match interrupt.guard(fut).await {
            Ok(out) => Some(out),
            Err(SessionError::Interrupted(sig)) => {
                self.interrupted = Some(sig);
                None
            }
            Err(_) => None,
        }
    }
}
