//! The least-privilege section of a training's report: each setting of the recipe, what it
//! takes away, and the evidence (capability, syscall, program, path).
use std::fmt::Write as _;

use crate::{
    hardening::{CapabilityUse, Recipe},
    seccomp::resolve::DOCKER_DEFAULT_CAPS,
};

/// The lines of the section, as `(setting, what it says)`, in order.
fn lines(r: &Recipe) -> Vec<(&'static str, String)> {
    let e = &r.evidence;
    let mut out = Vec::new();
    let kept = match r.capabilities.add.is_empty() {
        true => "none".to_string(),
        false => uses(&e.used),
    };
    let taken: Vec<&str> = DOCKER_DEFAULT_CAPS
        .iter()
        .map(|c| c.trim_start_matches("CAP_"))
        .filter(|c| !r.capabilities.add.iter().any(|a| a == c))
        .collect();
    out.push((
        "capabilities",
        format!(
            "drop {}, keep {kept}; takes away {} of Docker's {} ({})",
            r.capabilities.drop.join(", "),
            taken.len(),
            DOCKER_DEFAULT_CAPS.len(),
            taken.join(", ")
        ),
    ));
    if !e.wanted.is_empty() {
        out.push((
            "wanted, not granted",
            format!(
                "{} (the container did not have them in training either)",
                uses(&e.wanted)
            ),
        ));
    }
    if !e.low_ports.is_empty() {
        let ports: Vec<String> = e.low_ports.iter().map(u16::to_string).collect();
        out.push((
            "ports below 1024",
            format!(
                "binds {}: NET_BIND_SERVICE is kept where the container's unprivileged ports start at 1024 (Docker starts them at 0)",
                ports.join(", ")
            ),
        ));
    }
    out.push((
        "root filesystem",
        match (r.read_only_rootfs, &e.writable_because) {
            (true, _) if r.tmpfs.is_empty() => "read-only; it wrote nothing there".into(),
            (true, _) => format!(
                "read-only, with tmpfs at {} for what it wrote ({})",
                r.tmpfs.join(", "),
                e.writes.join(", ")
            ),
            (false, because) => format!(
                "left writable: it {}",
                because.as_deref().unwrap_or("writes there")
            ),
        },
    ));
    out.push((
        "no-new-privileges",
        match r.no_new_privileges {
            true => "set: no exec changed its credentials".into(),
            false => format!(
                "not set: {} changed its credentials on exec (setuid, setgid or file capabilities)",
                e.privileged_execs.join(", ")
            ),
        },
    ));
    out.push((
        "user",
        match &r.user {
            Some(u) => format!("{u}: {}", e.user_because),
            None => format!("as the image says: {}", e.user_because),
        },
    ));
    out.push((
        "verified",
        match r.verified {
            true => "a run under all of it, the seccomp profile included, passed".into(),
            false => "no run under all of it passed: not recommended".into(),
        },
    ));
    out
}

/// `CHOWN (fchown, by nginx), SETUID (setuid)`.
fn uses(list: &[CapabilityUse]) -> String {
    list.iter()
        .map(|u| {
            let mut s = u.name.clone();
            if !u.syscalls.is_empty() || !u.programs.is_empty() {
                let mut parts = Vec::new();
                if !u.syscalls.is_empty() {
                    parts.push(format!("in {}", u.syscalls.join(", ")));
                }
                if !u.programs.is_empty() {
                    parts.push(format!("by {}", u.programs.join(", ")));
                }
                let _ = write!(s, " ({})", parts.join(" "));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn text(out: &mut String, r: &Recipe) {
    let _ = writeln!(out, "  least privilege:");
    for (setting, words) in lines(r) {
        let _ = writeln!(out, "    {setting}: {words}");
    }
    if r.verified {
        let _ = writeln!(out, "    docker run {}", r.docker_run_options.join(" "));
    }
}

pub(super) fn markdown(out: &mut String, r: &Recipe) {
    let _ = writeln!(out, "## Least privilege\n");
    let _ = writeln!(out, "| setting | what training showed |");
    let _ = writeln!(out, "|---|---|");
    for (setting, words) in lines(r) {
        let _ = writeln!(out, "| {setting} | {} |", words.replace('|', "\\|"));
    }
    if r.verified {
        let _ = writeln!(
            out,
            "\n```sh\ndocker run {} {}\n```",
            r.docker_run_options.join(" "),
            r.image
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardening::{Capabilities, Evidence};

    #[test]
    fn each_setting_says_what_it_takes_away_and_why() {
        let r = Recipe {
            image: "nginx".into(),
            verified: true,
            capabilities: Capabilities {
                drop: vec!["ALL".into()],
                add: vec!["CHOWN".into()],
            },
            read_only_rootfs: true,
            tmpfs: vec!["/run".into()],
            no_new_privileges: true,
            user: None,
            docker_run_options: vec!["--cap-drop=ALL".into()],
            evidence: Evidence {
                used: vec![CapabilityUse {
                    name: "CHOWN".into(),
                    syscalls: vec!["fchown".into()],
                    programs: vec!["nginx".into()],
                    checks: 3,
                }],
                writes: vec!["/run/nginx.pid".into()],
                user_because: "it uses CHOWN as root".into(),
                ..Evidence::default()
            },
            ..Recipe::default()
        };
        let mut out = String::new();
        text(&mut out, &r);
        for want in [
            "capabilities: drop ALL, keep CHOWN (in fchown by nginx); takes away 13 of Docker's 14",
            "root filesystem: read-only, with tmpfs at /run for what it wrote (/run/nginx.pid)",
            "no-new-privileges: set",
            "user: as the image says: it uses CHOWN as root",
            "docker run --cap-drop=ALL",
        ] {
            assert!(out.contains(want), "{want} in\n{out}");
        }
        let mut md = String::new();
        markdown(&mut md, &r);
        assert!(md.contains("| root filesystem | read-only"), "{md}");
    }
}
