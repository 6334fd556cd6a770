//! `cargo xtask runtime-removals`: each call of the runtime's tail taken out of a trained
//! profile by hand, one at a time, and the container started again and again under it with
//! `profile verify`, under CPU contention and with a large environment (runc's init then grows
//! its Go heap after the filter): how many starts fail, and whether verify names the runtime.
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, ensure};

use super::{Hogs, Setup, shown, text};
use crate::is_root;

/// How the starts under one profile went.
#[derive(Default)]
struct Outcome {
    starts: usize,
    /// Starts whose runtime was denied the removed call (verify's `runtime_denied`).
    named: usize,
    /// Starts that failed for another reason (another denial, no start at all).
    other: usize,
    /// Whether verify said the profile lacks the removed call, whatever the run did.
    lacking: bool,
    /// The programs verify named as denied the call.
    programs: BTreeMap<String, usize>,
}

pub(crate) fn runtime_removals(runtime: &str, starts: usize, at_once: usize) -> anyhow::Result<()> {
    ensure!(is_root(), "recording needs root");
    ensure!(
        at_once > 0 && starts > 0,
        "--starts and --at-once must be positive"
    );
    let setup = Setup::new(runtime, "runtime-removals")?;
    let cmd = ["sh", "-c", "ls / >/dev/null"];
    let base = setup.dir.join("trained.json");
    let out = setup.profile_cmd(&[
        "train",
        "--image",
        &setup.image,
        "--network",
        "none",
        "-o",
        &base.display().to_string(),
        "--",
        cmd[0],
        cmd[1],
        cmd[2],
    ])?;
    ensure!(out.status.success(), "training: {}", text(&out.stderr));
    let trained: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&base)?)?;
    let env = environment(&setup.large_env)?;
    let mut rows: Vec<(&'static str, bool, Outcome)> = Vec::new();
    let hogs = Hogs::start(2)?;
    for (call, _) in &setup.tail.calls {
        let Some(removed) = without(&trained, call) else {
            println!("{call}: not in the trained profile (its base denies it), skipped");
            continue;
        };
        let path = setup.dir.join(format!("without-{call}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&removed)?)?;
        let outcome = setup.starts_under(&path, call, &env, &cmd, starts, at_once)?;
        println!(
            "{call}: {} of {} starts failed, {} named the runtime",
            outcome.named + outcome.other,
            outcome.starts,
            outcome.named
        );
        rows.push((call, setup.tail.from_binary.contains(call), outcome));
    }
    drop(hogs);
    let report = render(&setup, starts, &rows);
    let file = setup.dir.join("result.md");
    std::fs::write(&file, &report)?;
    println!("\n{report}\nwritten to {}", shown(&file));
    Ok(())
}

/// `profile` minus every rule's mention of `call`; `None` when it doesn't allow it.
fn without(profile: &serde_json::Value, call: &str) -> Option<serde_json::Value> {
    let mut p = profile.clone();
    let rules = p["syscalls"].as_array_mut()?;
    let before = rules.len();
    let mut found = false;
    for rule in rules.iter_mut() {
        let allows = rule["action"] == "SCMP_ACT_ALLOW";
        if let Some(names) = rule["names"].as_array_mut() {
            let n = names.len();
            names.retain(|v| v != call);
            found |= allows && names.len() < n;
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|n| !n.is_empty()));
    (found && before > 0).then_some(p)
}

/// The large environment as variables of `profile verify`'s own, passed on by name with `-e`.
fn environment(file: &Path) -> anyhow::Result<Vec<(String, String)>> {
    Ok(std::fs::read_to_string(file)?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

impl Setup {
    fn profile_cmd(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Command::new(&self.profile)
            .args(args)
            .env("DOCKER_HOST", &self.docker.host)
            .output()
            .context("running profile")
    }

    /// `starts` verifications of `profile`, `at_once` at a time, each its own container.
    fn starts_under(
        &self,
        profile: &Path,
        call: &str,
        env: &[(String, String)],
        cmd: &[&str],
        starts: usize,
        at_once: usize,
    ) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome::default();
        let mut done = 0;
        while done < starts {
            let batch = at_once.min(starts - done);
            let runs: Vec<(Child, PathBuf)> = (0..batch)
                .map(|i| {
                    let report = self.dir.join(format!("verify-{call}-{}.json", done + i));
                    let _ = std::fs::remove_file(&report);
                    let mut c = Command::new(&self.profile);
                    c.args(["verify", "--image", &self.image, "--network", "none"])
                        .arg("--profile")
                        .arg(profile)
                        .arg("--report")
                        .arg(&report)
                        .env("DOCKER_HOST", &self.docker.host)
                        .envs(env.iter().map(|(k, v)| (k, v)));
                    for (k, _) in env {
                        c.args(["-e", k]);
                    }
                    c.arg("--").args(cmd);
                    let child = c
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .context("profile verify")?;
                    Ok((child, report))
                })
                .collect::<anyhow::Result<_>>()?;
            for (mut child, report) in runs {
                let _ = child.wait();
                outcome.starts += 1;
                let v: serde_json::Value = match std::fs::read_to_string(&report) {
                    Ok(t) => serde_json::from_str(&t)?,
                    Err(_) => {
                        outcome.other += 1;
                        continue;
                    }
                };
                outcome.lacking |= v["runtime_lacking"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|n| n == call));
                let denied = v["runtime_denied"].as_array().cloned().unwrap_or_default();
                let to_runtime = denied.iter().find(|d| d["name"] == call);
                if let Some(d) = to_runtime {
                    outcome.named += 1;
                    let program = d["first_program"].as_str().unwrap_or("?").to_string();
                    *outcome.programs.entry(program).or_default() += 1;
                } else if !denied.is_empty() || v["stopped_by"] == "start_failed" {
                    outcome.other += 1;
                }
            }
            done += batch;
        }
        Ok(outcome)
    }
}

fn render(setup: &Setup, starts: usize, rows: &[(&str, bool, Outcome)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "runtime: {}\neach call removed from a profile trained on `hello`; {starts} starts per removal under CPU contention (two busy loops per CPU) with a 1.4 MB environment, through `profile verify`\n",
        setup.version.lines().collect::<Vec<_>>().join("; ")
    );
    let _ = writeln!(
        out,
        "| removed | from the binary | starts failed | named as the runtime's | verify: profile lacks it |\n|---|---|---:|---|---|"
    );
    for (call, from_binary, o) in rows {
        let named = match o.programs.is_empty() {
            true => "—".to_string(),
            false => o
                .programs
                .iter()
                .map(|(p, n)| format!("{n}× `{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "| `{call}` | {} | {} of {} | {named} | {} |",
            if *from_binary { "yes" } else { "" },
            o.named + o.other,
            o.starts,
            if o.lacking { "yes" } else { "no" }
        );
    }
    out
}
