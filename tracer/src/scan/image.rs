//! An image's executables, read from the engine's export of it (`docker save`: a tar of layer
//! tars and a manifest) as it streams: nothing runs, and memory holds one executable and the
//! layers' path lists at a time. Files a later layer removes (whiteouts) or replaces are left
//! out, as in the container's filesystem.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::{self, Read},
};

use futures_util::StreamExt as _;

use super::{Binary, MAX_EXECUTABLE, Scan, ScanError, program::is_elf, scan_bytes, too_large};
use crate::docker::{Engine, Pull};

/// Chunks of the export in flight between the engine and the reader.
const CHUNKS_IN_FLIGHT: usize = 16;

/// Scans the executables of `image` through the engine, pulling it first as `pull` says.
pub async fn scan_image(engine: &Engine, image: &str, pull: Pull) -> Result<Scan, ScanError> {
    let pulled = engine.ensure_image(image, pull).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let mut stream = Box::pin(engine.export_image(image));
    let reader = tokio::task::spawn_blocking(move || read_export(ChannelReader::new(rx)));
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break;
                }
            }
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    drop(tx);
    let archive = |message: String| ScanError::Archive {
        image: image.to_string(),
        message,
    };
    let read = reader
        .await
        .map_err(|e| archive(format!("the reader failed: {e}")))?;
    if let Some(err) = failure {
        return Err(err.into());
    }
    let (binaries, links) = read.map_err(archive)?;
    let mut scan = Scan::new(image.to_string(), binaries);
    scan.links = links;
    scan.pulled = pulled;
    Ok(scan)
}

/// A `Read` over the chunks a channel delivers.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What one layer holds: every path, what it removes, and the executables scanned in it.
#[derive(Default)]
struct Layer {
    paths: HashSet<String>,
    whiteouts: HashSet<String>,
    opaque: HashSet<String>,
    binaries: BTreeMap<String, Binary>,
    links: Vec<(String, String)>,
    /// Symbolic links, with their targets as written.
    symlinks: Vec<(String, String)>,
}

/// What an export holds: its executables, and the symbolic links its filesystem shows
/// (`/path` → target as written), by which a program may be exec'd.
pub type Export = (Vec<Binary>, BTreeMap<String, String>);

/// Reads an export: `docker save`'s layout (`<id>/layer.tar`) or the OCI one
/// (`blobs/sha256/<digest>`), either order of manifest and layers.
pub fn read_export(reader: impl Read) -> Result<Export, String> {
    let mut outer = tar::Archive::new(reader);
    let mut layers: HashMap<String, Layer> = HashMap::new();
    let mut manifest: Option<Vec<String>> = None;
    let entries = outer
        .entries()
        .map_err(|e| format!("reading the export: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("reading the export: {e}"))?;
        let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        if name == "manifest.json" {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| format!("reading manifest.json: {e}"))?;
            manifest = Some(layer_order(&text)?);
            continue;
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut head = vec![0u8; 512];
        let n = read_full(&mut entry, &mut head).map_err(|e| format!("{name}: {e}"))?;
        head.truncate(n);
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        let tar = head.get(257..262) == Some(b"ustar");
        let chained = io::Cursor::new(head).chain(entry);
        let layer = match (gzip, tar) {
            (true, _) => read_layer(flate2::read::GzDecoder::new(chained)),
            (false, true) => read_layer(chained),
            _ => continue,
        };
        layers.insert(
            name.clone(),
            layer.map_err(|e| format!("layer {name}: {e}"))?,
        );
    }
    let order = manifest.ok_or("the export has no manifest.json")?;
    let mut stack = Vec::new();
    for name in &order {
        let layer = layers
            .remove(&clean(name))
            .ok_or_else(|| format!("layer {name} is in the manifest but not in the export"))?;
        stack.push(layer);
    }
    Ok(visible(stack))
}

/// The executables the top of the layer stack still shows, with their hard links, and its
/// symbolic links.
fn visible(mut stack: Vec<Layer>) -> Export {
    let mut out = Vec::new();
    let mut symlinks = BTreeMap::new();
    for i in 0..stack.len() {
        let (below, above) = stack.split_at_mut(i + 1);
        let layer = &mut below[i];
        for (link, target) in std::mem::take(&mut layer.symlinks) {
            if !above.iter().any(|l| hides(l, &link)) {
                symlinks.insert(format!("/{link}"), target);
            }
        }
        let binaries = std::mem::take(&mut layer.binaries);
        for (path, mut binary) in binaries {
            if above.iter().any(|l| hides(l, &path)) {
                continue;
            }
            // Links to it, in its layer or later ones, that nothing above removes.
            let layers = std::iter::once(&*layer).chain(above.iter());
            binary.aliases = layers
                .enumerate()
                .flat_map(|(k, l)| l.links.iter().map(move |link| (k, link)))
                .filter(|(_, (_, target))| *target == path)
                .filter(|(k, (link, _))| !above[*k..].iter().any(|l| hides(l, link)))
                .map(|(_, (link, _))| format!("/{link}"))
                .collect();
            binary.aliases.sort();
            out.push(binary);
        }
    }
    (out, symlinks)
}

/// Whether a later layer removes or replaces `path`.
fn hides(layer: &Layer, path: &str) -> bool {
    if layer.paths.contains(path) || layer.whiteouts.contains(path) {
        return true;
    }
    ancestors(path).any(|dir| layer.whiteouts.contains(dir) || layer.opaque.contains(dir))
}

fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

fn read_layer(reader: impl Read) -> io::Result<Layer> {
    let mut archive = tar::Archive::new(reader);
    let mut layer = Layer::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        let (dir, file) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if file == ".wh..wh..opq" {
            layer.opaque.insert(dir.to_string());
            continue;
        }
        if let Some(gone) = file.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                gone.to_string()
            } else {
                format!("{dir}/{gone}")
            };
            layer.whiteouts.insert(gone);
            continue;
        }
        layer.paths.insert(path.clone());
        let header = entry.header();
        let kind = header.entry_type();
        if kind == tar::EntryType::Symlink {
            if let Some(target) = entry.link_name_bytes() {
                let target = String::from_utf8_lossy(&target).into_owned();
                layer.symlinks.push((path, target));
            }
            continue;
        }
        if kind == tar::EntryType::Link {
            if let Some(target) = entry.link_name_bytes() {
                let target = clean(&String::from_utf8_lossy(&target));
                layer.links.push((path, target));
            }
            continue;
        }
        let executable = header.mode().is_ok_and(|m| m & 0o111 != 0);
        let size = header.size().unwrap_or(0);
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous)
            || !executable
            || size < 4
        {
            continue;
        }
        let mut magic = [0u8; 4];
        entry.read_exact(&mut magic)?;
        if !is_elf(&magic) {
            continue;
        }
        let label = format!("/{path}");
        let binary = if size > MAX_EXECUTABLE {
            too_large(&label, size)
        } else {
            let mut bytes = Vec::with_capacity(size as usize);
            bytes.extend_from_slice(&magic);
            entry.read_to_end(&mut bytes)?;
            scan_bytes(&label, &bytes)
        };
        layer.binaries.insert(path, binary);
    }
    Ok(layer)
}

/// The layers of the (first) image in a manifest, bottom first.
fn layer_order(manifest: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    let items: Vec<Item> =
        serde_json::from_str(manifest).map_err(|e| format!("manifest.json: {e}"))?;
    items
        .into_iter()
        .next()
        .map(|i| i.layers)
        .ok_or_else(|| "manifest.json lists no image".into())
}

/// A path inside an archive, without `./` or `/` in front.
fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scan_says_it_pulled_its_image() {
        let dir = std::env::temp_dir().join(format!("profile-scan-pull-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory");
        let (engine, _store) = crate::docker::stub::ImageStore::serving(&dir, &["here:1"]);
        let scan = scan_image(&engine, "away:1", Pull::Missing).await;
        let scan = scan.expect("pulled, then scanned");
        assert_eq!(
            scan.pulled_notice().as_deref(),
            Some("pulled away:1 before scanning it")
        );
        let scan = scan_image(&engine, "here:1", Pull::Missing).await;
        assert_eq!(scan.expect("scanned").pulled_notice(), None);
        let refused = scan_image(&engine, "gone:1", Pull::Never).await;
        assert!(
            matches!(
                refused,
                Err(ScanError::Docker(
                    crate::docker::DockerError::ImageMissing { .. }
                ))
            ),
            "{refused:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An executable's bytes: an ELF header is enough to be listed.
    const ELF: &[u8] = b"\x7fELF not really";

    /// A path, its contents (none: a directory) and the file it is a hard link to.
    type Item<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>);

    fn tar_of(entries: &[Item<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            match (data, link) {
                (_, Some(target)) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, path, target).expect("link");
                }
                (Some(data), None) => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, *data).expect("file");
                }
                (None, None) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, path, &[][..]).expect("dir");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn layers_apply_in_the_manifest_order() {
        let base = tar_of(&[
            ("bin/", None, None),
            ("bin/a", Some(ELF), None),
            ("bin/b", Some(ELF), None),
            ("bin/script", Some(b"#!/bin/sh\n"), None),
            ("opt/tool/", None, None),
            ("opt/tool/c", Some(ELF), None),
            ("usr/bin/d", Some(ELF), None),
        ]);
        let top = tar_of(&[
            ("bin/.wh.b", Some(b""), None),
            ("bin/a2", None, Some("bin/a")),
            ("opt/tool/.wh..wh..opq", Some(b""), None),
            ("usr/bin/d", Some(b"replaced by a script"), None),
        ]);
        let top_link = tar_of(&[("bin/a3", None, Some("bin/a")), ("bin/e", Some(ELF), None)]);
        // The OCI layout: blobs first, then the manifest; one layer gzipped.
        let manifest = r#"[{"Config":"blobs/sha256/c","Layers":["blobs/sha256/1","blobs/sha256/2","blobs/sha256/3"]}]"#;
        let export = tar_of(&[
            ("blobs/sha256/3", Some(&top_link), None),
            ("blobs/sha256/1", Some(&gzip(&base)), None),
            ("blobs/sha256/c", Some(b"{}"), None),
            ("blobs/sha256/2", Some(&top), None),
            ("manifest.json", Some(manifest.as_bytes()), None),
        ]);
        let (binaries, _) = read_export(&export[..]).expect("read");
        let listed: Vec<(&str, Vec<&str>)> = binaries
            .iter()
            .map(|b| {
                (
                    b.path.as_str(),
                    b.aliases.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [("/bin/a", vec!["/bin/a2", "/bin/a3"]), ("/bin/e", vec![])],
            "b whited out, c under an opaque directory, d replaced"
        );
        let missing = tar_of(&[("manifest.json", Some(manifest.as_bytes()), None)]);
        assert!(read_export(&missing[..]).is_err());
    }

    #[test]
    fn hard_links_in_a_layer_are_aliases() {
        let layer = tar_of(&[
            ("bin/a", Some(ELF), None),
            ("bin/a2", None, Some("bin/a")),
            ("./bin/a3", None, Some("./bin/a")),
        ]);
        let export = tar_of(&[
            ("abc/layer.tar", Some(&layer), None),
            (
                "manifest.json",
                Some(br#"[{"Layers":["abc/layer.tar"]}]"#),
                None,
            ),
        ]);
        let (binaries, _) = read_export(&export[..]).expect("read");
        assert_eq!(binaries.len(), 1);
        assert_eq!(binaries[0].aliases, ["/bin/a2", "/bin/a3"]);
    }
}
