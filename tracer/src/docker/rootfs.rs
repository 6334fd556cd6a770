//! What a container wrote in its root filesystem, as the engine sees it: its changes (`docker
//! diff`), the names in a directory of it (through the archive endpoint) and its image's user.
use std::collections::BTreeSet;

use bollard::{models::ChangeType, query_parameters::DownloadFromContainerOptionsBuilder};
use futures_util::StreamExt as _;

use super::{Engine, Result, api, bounded};
use crate::hardening::{Change, ChangeKind};

/// How much of a directory's archive is read to list it: past this, it is not listed (and no
/// tmpfs goes there).
const LISTING_BYTES: usize = 64 << 20;

impl Engine {
    /// The container's changes to its image's filesystem, sorted by path.
    pub async fn changes(&self, id: &str) -> Result<Vec<Change>> {
        let action = "listing the container's changes";
        let changes = bounded(action, self.limits.request, async {
            self.docker.container_changes(id).await.map_err(api(action))
        })
        .await?
        .unwrap_or_default();
        let mut changes: Vec<Change> = changes
            .into_iter()
            .map(|c| Change {
                kind: match c.kind {
                    ChangeType::_0 => ChangeKind::Changed,
                    ChangeType::_1 => ChangeKind::Added,
                    ChangeType::_2 => ChangeKind::Deleted,
                },
                path: c.path,
            })
            .collect();
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// The names directly in directory `dir` of the container (a stopped one too); `None` when
    /// it can't be read or is too large to read whole.
    pub async fn listing(&self, id: &str, dir: &str) -> Option<BTreeSet<String>> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(dir)
            .build();
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut archive = Vec::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                archive.extend_from_slice(&chunk.ok()?);
                if archive.len() > LISTING_BYTES {
                    return None;
                }
            }
            Some(())
        };
        tokio::time::timeout(self.limits.request, read)
            .await
            .ok()??;
        names_in(&archive)
    }

    /// The user `image` runs as (its USER; empty when it sets none).
    pub async fn image_user(&self, image: &str) -> Result<String> {
        let action = format!("inspecting image {image}");
        let inspect = bounded(&action, self.limits.request, async {
            self.docker
                .inspect_image(image)
                .await
                .map_err(api(action.as_str()))
        })
        .await?;
        Ok(inspect.config.and_then(|c| c.user).unwrap_or_default())
    }
}

/// The entries one level below the archive's top directory (`dir/x` gives `x`).
fn names_in(archive: &[u8]) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in tar::Archive::new(archive).entries().ok()? {
        let entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        let mut parts = path.trim_end_matches('/').splitn(3, '/');
        let (_top, name) = (parts.next(), parts.next());
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            names.insert(name.to_string());
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_lists_the_names_in_its_directory() {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in [
            ("tmp/", &b""[..]),
            ("tmp/x", b"1"),
            ("tmp/d/", b""),
            ("tmp/d/y", b"2"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_entry_type(if path.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            header.set_cksum();
            builder.append_data(&mut header, path, data).unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let names = names_in(&archive).unwrap();
        assert_eq!(names, ["d", "x"].map(String::from).into());
    }
}
