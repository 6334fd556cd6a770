//! Builds the kernel side (tracer-ebpf) for the bpf target and leaves the object in OUT_DIR,
//! generates the CRI client from the vendored proto (protoc: Debian's protobuf-compiler), and
//! names the build for `profile --version`: the git commit and the embedded object's SHA-256.
use std::{path::Path, process::Command};

use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;
use cargo_metadata::camino::Utf8Path;
use sha2::Digest as _;

fn main() -> anyhow::Result<()> {
    println!("cargo::rerun-if-changed=proto/cri-api.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/cri-api.proto"], &["proto"])
        .context("generating the CRI client (protoc missing? apt-get install protobuf-compiler)")?;
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "tracer-ebpf")
        .ok_or_else(|| anyhow!("tracer-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let toolchain = pinned_toolchain(root_dir)?;
    let package = aya_build::Package {
        name: ebpf.name.as_str(),
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    // aya-build turns every line the nested cargo prints into a cargo warning; quiet keeps
    // the "Compiling …" status lines out, while rustc's diagnostics still come through.
    // SAFETY: no other thread of this build script exists yet to read the environment.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    aya_build::build_ebpf([package], Toolchain::Custom(&toolchain)).with_context(|| {
        format!("building tracer-ebpf with {toolchain} (scripts/host-setup.sh installs it)")
    })?;
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR")?;
    let object = std::fs::read(Path::new(&out_dir).join("tracer")).context("the eBPF object")?;
    let digest = sha2::Sha256::digest(&object);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo::rustc-env=PROFILE_EBPF_SHA256={hex}");
    println!(
        "cargo::rustc-env=PROFILE_COMMIT={}",
        commit(root_dir.as_std_path())
    );
    println!(
        "cargo::rustc-env=PROFILE_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    Ok(())
}

/// The checkout's commit (`PROFILE_COMMIT` overrides it, for builds from a source archive);
/// `unknown` outside a git checkout.
fn commit(dir: &Path) -> String {
    println!("cargo::rerun-if-env-changed=PROFILE_COMMIT");
    if let Ok(commit) = std::env::var("PROFILE_COMMIT") {
        return commit;
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return "unknown".into();
    };
    // Rebuilt when HEAD moves: HEAD itself, the branch it names, and packed refs.
    for path in ["HEAD", "packed-refs"]
        .into_iter()
        .filter_map(|name| git(&["rev-parse", "--git-path", name]))
        .chain(
            git(&["symbolic-ref", "-q", "HEAD"])
                .and_then(|r| git(&["rev-parse", "--git-path", &r])),
        )
    {
        let path = dir.join(path);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    head
}

/// The nightly named by `channel` in the eBPF crate's rust-toolchain.toml.
fn pinned_toolchain(root_dir: &Utf8Path) -> anyhow::Result<String> {
    let path = root_dir.join("rust-toolchain.toml");
    println!("cargo::rerun-if-changed={path}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_string())
        .find(|value| !value.is_empty())
        .ok_or_else(|| anyhow!("{path} names no channel"))
}
