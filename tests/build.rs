//! Builds the static C workloads the end-to-end tests and benchmarks run.
use std::{env, path::PathBuf, process::Command};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, env_name) in [
        ("sysloop", "SYSLOOP"),
        ("attack", "ATTACK"),
        ("int80", "INT80"),
    ] {
        let bin = out.join(name);
        let src = format!("workloads/{name}.c");
        println!("cargo:rerun-if-changed={src}");
        let status = Command::new(env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O2", "-static", "-pthread", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("running the C compiler");
        assert!(
            status.success(),
            "compiling {src} failed (needs libc6-dev's libc.a)"
        );
        println!("cargo:rustc-env={env_name}={}", bin.display());
    }
}
