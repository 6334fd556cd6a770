//! Builds the static C workloads and the Go workload the end-to-end tests and benchmarks run.
use std::{env, path::PathBuf, process::Command};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, env_name) in [
        ("sysloop", "SYSLOOP"),
        ("attack", "ATTACK"),
        ("int80", "INT80"),
        ("empty", "EMPTY"),
        ("calls", "CALLS"),
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
    build_go(&out);
}

/// Builds the Go workloads (`workloads/gofiles`, `workloads/goserve`) with Debian's Go
/// (static: CGO_ENABLED=0), with caches of their own under OUT_DIR so that nothing outside the
/// build directory is needed or touched.
fn build_go(out: &std::path::Path) {
    for (name, env_name) in [("gofiles", "GOFILES"), ("goserve", "GOSERVE")] {
        let bin = out.join(name);
        for file in ["main.go", "go.mod"] {
            println!("cargo:rerun-if-changed=workloads/{name}/{file}");
        }
        let status = Command::new(env::var("GO").unwrap_or_else(|_| "go".into()))
            .args(["build", "-trimpath", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(format!("workloads/{name}"))
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", out.join("go-cache"))
            .env("GOPATH", out.join("go-path"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .status()
            .expect("running go (apt-get install golang-go)");
        assert!(status.success(), "building workloads/{name} failed");
        println!("cargo:rustc-env={env_name}={}", bin.display());
    }
}
