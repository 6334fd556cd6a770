//! The bench's scale row: `profile watch --per container` over many containers started a batch
//! at a time and alive together (a large Kubernetes node's pods), every one recorded, with the
//! watch's peak memory and what its kernel maps take.
use std::{
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::root;

/// getppid calls each container makes before it waits to be killed.
const CALLS: &str = "1000";
const IMAGE: &str = "profile-bench/hold:latest";

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .context("docker (is the Docker CLI installed?)")?;
    ensure!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `FROM scratch` plus the static loop.
fn build_image(sysloop: &Path) -> anyhow::Result<()> {
    let ctx = root().join("target/release/bench-hold-image");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(sysloop, ctx.join("sysloop"))?;
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY sysloop /sysloop\nCMD [\"/sysloop\", \"hold\", \"1000\", \"600000\"]\n",
    )?;
    let out = Command::new("docker")
        .args(["build", "-q", "-t", IMAGE])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .context("docker build")?;
    ensure!(
        out.status.success(),
        "docker build {IMAGE}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The ids of the running containers carrying `label`.
fn running(label: &str) -> anyhow::Result<Vec<String>> {
    Ok(docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label={label}"),
    ])?
    .lines()
    .map(String::from)
    .collect())
}

/// Bytes the kernel charges for the eBPF maps process `pid` holds (their `memlock`).
fn map_bytes(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf-map")
        })
        .filter_map(|e| {
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .ok()?;
            info.lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// The only child of process `pid` (GNU time's command).
fn child_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Kills every container with `label`, and waits until none runs.
fn kill_all(label: &str) -> anyhow::Result<()> {
    let ids = running(label)?;
    for chunk in ids.chunks(50) {
        let mut args = vec!["kill"];
        args.extend(chunk.iter().map(String::as_str));
        let _ = docker(&args);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running(label)?.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "containers labelled {label} still run"
        );
        thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Runs the scale row and prints it.
pub(crate) fn scale(
    profile: &Path,
    sysloop: &Path,
    containers: usize,
    at_once: usize,
) -> anyhow::Result<()> {
    if containers == 0 {
        return Ok(());
    }
    ensure!(at_once > 0, "--at-once must be at least 1");
    if docker(&["version"]).is_err() {
        println!("\n| scale: `watch` over {containers} containers | Docker not running | |");
        return Ok(());
    }
    build_image(sysloop)?;
    let label = format!("profile-bench-scale-{}", std::process::id());
    let out = root().join("target/release/bench-scale");
    let _ = std::fs::remove_dir_all(&out);
    let peak = root().join("target/release/bench-scale-peak-rss");
    let mut time = Command::new("/usr/bin/time");
    time.args(["-f", "%M", "-o"])
        .arg(&peak)
        .arg(profile)
        .args(["watch", "--per", "container", "--filter"])
        .arg(format!("label={label}"))
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut timed = time.spawn().context("/usr/bin/time profile watch")?;
    let result = drive(&label, containers, at_once, timed.id());
    let killed = kill_all(&label);
    if let Some(watch) = child_of(timed.id()) {
        // SAFETY: kill(2) on the watch GNU time runs for us.
        unsafe { libc::kill(watch as i32, libc::SIGINT) };
    }
    let status = timed.wait()?;
    let (started, maps) = result?;
    killed?;
    // Ended by its SIGINT: the shell's 130.
    ensure!(
        status.code() == Some(130),
        "profile watch ended with {status}"
    );
    let peak_kib: f64 = std::fs::read_to_string(&peak)?
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time's report")?;
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("index.json"))?)?;
    let rows = index["profiles"].as_array().cloned().unwrap_or_default();
    let recorded = rows
        .iter()
        .filter(|r| r["complete"] == true)
        .filter(|r| {
            r["file"].as_str().is_some_and(|f| {
                std::fs::read_to_string(out.join(f)).is_ok_and(|p| p.contains("\"getppid\""))
            })
        })
        .count();
    println!(
        "\nscale: `profile watch --per container` while {containers} containers start, {at_once} at a time, and stay up together (each made {CALLS} getppid calls)\n"
    );
    println!(
        "| containers | started | profiles, complete, with getppid | peak RSS of watch | kernel maps of watch |"
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {containers} | {started} | {recorded} | {:.1} MiB | {:.1} MiB |",
        peak_kib / 1024.0,
        maps as f64 / (1 << 20) as f64
    );
    ensure!(
        recorded == containers,
        "{recorded} of {containers} containers were recorded"
    );
    Ok(())
}

/// Starts the containers a batch at a time once the watch runs, waits until all of them are
/// up together and reads the watch's map memory then; returns how many started and it.
fn drive(
    label: &str,
    containers: usize,
    at_once: usize,
    time_pid: u32,
) -> anyhow::Result<(usize, u64)> {
    // The watch is ready once its maps exist.
    let deadline = Instant::now() + Duration::from_secs(30);
    let watch = loop {
        if let Some(pid) = child_of(time_pid)
            && map_bytes(pid) > 0
        {
            break pid;
        }
        ensure!(Instant::now() < deadline, "profile watch never loaded");
        thread::sleep(Duration::from_millis(100));
    };
    thread::sleep(Duration::from_secs(1));
    let mut started = 0;
    while started < containers {
        let batch = at_once.min(containers - started);
        let handles: Vec<_> = (0..batch)
            .map(|_| {
                let label = label.to_string();
                thread::spawn(move || {
                    docker(&[
                        "run",
                        "-d",
                        "--rm",
                        "--network",
                        "none",
                        "--label",
                        &label,
                        IMAGE,
                        "/sysloop",
                        "hold",
                        CALLS,
                        "600000",
                    ])
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(Ok(_)) => started += 1,
                Ok(Err(err)) => bail!("starting a container: {err:#}"),
                Err(_) => bail!("a starting thread panicked"),
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while running(label)?.len() < containers {
        ensure!(
            Instant::now() < deadline,
            "not all {containers} containers are up"
        );
        thread::sleep(Duration::from_millis(500));
    }
    // Each container's calls are made at its start; give the last ones a moment.
    thread::sleep(Duration::from_secs(2));
    Ok((started, map_bytes(watch)))
}
