//! `cargo xtask dist`: the release artifacts in target/dist/ — one static executable, a
//! reproducible tarball (the executable, README, licences, shell completions, man pages) and
//! SHA256SUMS over both — and, with `--image`, the image `profile:<version>`.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};
use sha2::{Digest as _, Sha256};

use crate::root;

/// The Rust target of the shipped executable: musl, linked static-pie.
pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// The workspace's version, which the executable carries too.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `profile-<version>-x86_64-linux`: the executable's name, and the tarball's stem.
pub fn name() -> String {
    format!("profile-{VERSION}-x86_64-linux")
}

/// The image `cargo xtask dist --image` builds.
pub fn image() -> String {
    format!("profile:{VERSION}")
}

/// target/dist.
pub fn dir() -> PathBuf {
    crate::target_dir().join("dist")
}

pub fn dist(build_image: bool) -> anyhow::Result<()> {
    let out = dir();
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
    let executable = build()?;
    let name = name();
    let binary = fs::read(&executable).with_context(|| executable.display().to_string())?;
    write(&out.join(&name), &binary, 0o755)?;

    let mut files = vec![
        Entry::file("profile", binary, 0o755),
        Entry::file("README.md", read(&root().join("README.md"))?, 0o644),
    ];
    for licence in ["LICENSE-APACHE", "LICENSE-MIT"] {
        files.push(Entry::file(licence, read(&root().join(licence))?, 0o644));
    }
    files.extend(guide()?);
    files.extend(completions());
    files.extend(man_pages()?);
    let tarball = format!("{name}.tar.gz");
    write(
        &out.join(&tarball),
        &tarball_bytes(&name, files, mtime()?)?,
        0o644,
    )?;

    let mut sums = String::new();
    for file in [&name, &tarball] {
        let digest = Sha256::digest(read(&out.join(file))?);
        sums.push_str(&format!("{}  {file}\n", hex(&digest)));
    }
    write(&out.join("SHA256SUMS"), sums.as_bytes(), 0o644)?;
    print!("{sums}");
    if build_image {
        build_image_from(&out)?;
    }
    Ok(())
}

/// The guide's pages (docs/*.md), which the README links to, by name.
fn guide() -> anyhow::Result<Vec<Entry>> {
    let dir = root().join("docs");
    let mut pages = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md")
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            pages.push(Entry::file(format!("docs/{name}"), read(&path)?, 0o644));
        }
    }
    Ok(pages)
}

/// Builds the static executable; returns its path.
fn build() -> anyhow::Result<PathBuf> {
    let root = root();
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .context("CARGO_HOME or HOME")?;
    // No path of this machine in the executable (panic locations name source files): the same
    // commit builds the same bytes wherever it is checked out.
    let flags = format!(
        "target.{TARGET}.rustflags=[\"--remap-path-prefix={}=/build/profile\", \"--remap-path-prefix={}=/cargo\"]",
        root.display(),
        home.display()
    );
    crate::cargo(&[
        "build",
        "--locked",
        "--profile",
        "release-dist",
        "--target",
        TARGET,
        "-p",
        "tracer",
        "--bin",
        "profile",
        "--config",
        &flags,
    ])
    .with_context(|| {
        format!("building the static executable (needs `rustup target add {TARGET}` and musl-tools: scripts/host-setup.sh)")
    })?;
    Ok(crate::target_dir()
        .join(TARGET)
        .join("release-dist/profile"))
}

/// `docker build` of the repository's Dockerfile with target/dist as its context.
fn build_image_from(out: &Path) -> anyhow::Result<()> {
    let image = image();
    let status = Command::new("docker")
        .args(["build", "-q", "-t", &image, "--build-arg"])
        .arg(format!("VERSION={VERSION}"))
        .arg("-f")
        .arg(root().join("Dockerfile"))
        .arg(out)
        .env("DOCKER_BUILDKIT", "0")
        .status()
        .context("docker build (is the Docker CLI installed?)")?;
    ensure!(status.success(), "docker build {image} failed");
    println!("built {image}");
    Ok(())
}

/// One file of the tarball, by its path under the tarball's top folder.
struct Entry {
    path: String,
    bytes: Vec<u8>,
    mode: u32,
}

impl Entry {
    fn file(path: impl Into<String>, bytes: Vec<u8>, mode: u32) -> Self {
        Entry {
            path: path.into(),
            bytes,
            mode,
        }
    }
}

/// bash, zsh and fish completions, as `profile completions SHELL` prints them.
fn completions() -> Vec<Entry> {
    use tracer::cli::completions::{Shell, completions};
    [
        (Shell::Bash, "profile.bash"),
        (Shell::Zsh, "_profile"),
        (Shell::Fish, "profile.fish"),
    ]
    .into_iter()
    .map(|(shell, file)| Entry::file(format!("completions/{file}"), completions(shell), 0o644))
    .collect()
}

/// The man pages, as the tarball holds them.
fn man_pages() -> anyhow::Result<Vec<Entry>> {
    Ok(crate::man::pages()?
        .into_iter()
        .map(|(name, bytes)| Entry::file(format!("man/man1/{name}.1"), bytes, 0o644))
        .collect())
}

/// The time every tarball entry carries: SOURCE_DATE_EPOCH, else the commit's, so that the same
/// commit gives the same bytes.
fn mtime() -> anyhow::Result<u64> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        return epoch.parse().context("SOURCE_DATE_EPOCH");
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root())
        .output();
    Ok(out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0))
}

/// A gzipped tar of `files` under `top/`: sorted, owned by 0:0, one mtime, gzip without a
/// name or time of its own.
fn tarball_bytes(top: &str, mut files: Vec<Entry>, mtime: u64) -> anyhow::Result<Vec<u8>> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut dirs: Vec<String> = vec![String::new()];
    for file in &files {
        let mut parts: Vec<&str> = file.path.split('/').collect();
        parts.pop();
        for n in 1..=parts.len() {
            dirs.push(parts[..n].join("/"));
        }
    }
    dirs.sort();
    dirs.dedup();
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for dir in &dirs {
        let path = if dir.is_empty() {
            format!("{top}/")
        } else {
            format!("{top}/{dir}/")
        };
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, &path, std::io::empty())?;
    }
    for file in &files {
        let mut h = header(tar::EntryType::Regular, file.bytes.len() as u64, file.mode);
        tar.append_data(&mut h, format!("{top}/{}", file.path), &file.bytes[..])?;
    }
    Ok(tar.into_inner()?.finish()?)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| path.display().to_string())
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, bytes).with_context(|| path.display().to_string())?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| path.display().to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarball_is_the_same_for_the_same_files() {
        let files = || {
            vec![
                Entry::file("man/man1/profile.1", b"page".to_vec(), 0o644),
                Entry::file("profile", b"binary".to_vec(), 0o755),
            ]
        };
        let a = tarball_bytes("top", files(), 1_700_000_000).unwrap();
        let mut reversed = files();
        reversed.reverse();
        let b = tarball_bytes("top", reversed, 1_700_000_000).unwrap();
        assert_eq!(a, b);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&a[..]));
        let paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "top/",
                "top/man/",
                "top/man/man1/",
                "top/man/man1/profile.1",
                "top/profile"
            ]
        );
    }
}
