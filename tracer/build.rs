//! Builds the kernel side (tracer-ebpf) for the bpf target and leaves the object in OUT_DIR,
//! and generates the CRI client from the vendored proto (protoc: Debian's protobuf-compiler).
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;
use cargo_metadata::camino::Utf8Path;

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
    })
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
