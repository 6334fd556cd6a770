//! Builds the static C workload the end-to-end tests and benchmarks run.
use std::{env, path::PathBuf, process::Command};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bin = out.join("sysloop");
    println!("cargo:rerun-if-changed=workloads/sysloop.c");
    let status = Command::new(env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&bin)
        .arg("workloads/sysloop.c")
        .status()
        .expect("running the C compiler");
    assert!(
        status.success(),
        "compiling workloads/sysloop.c failed (needs libc6-dev's libc.a)"
    );
    println!("cargo:rustc-env=SYSLOOP={}", bin.display());
}
