//! A scan as a report: each executable's syscall ceiling and their union, as text, Markdown
//! and JSON.
use std::fmt::Write as _;

use super::Render;
use crate::scan::{Binary, Ceiling, Kind, Scan};

impl Render for Scan {
    fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scan of {}: {} executable(s)",
            self.target,
            self.binaries.len()
        );
        for b in &self.binaries {
            let _ = writeln!(out, "\n{}  ({}, {})", b.path, kind(b), size(b.size));
            for alias in &b.aliases {
                let _ = writeln!(out, "  also {alias}");
            }
            match &b.ceiling {
                None => {
                    let _ = writeln!(out, "  {}", b.note.as_deref().unwrap_or("no ceiling"));
                }
                Some(c) => ceiling_text(&mut out, c),
            }
        }
        let u = &self.union;
        let _ = writeln!(
            out,
            "\nunion of the ceilings: {} syscall(s), {}",
            u.syscalls.values().map(Vec::len).sum::<usize>(),
            if u.sound { "SOUND" } else { "NOT SOUND" }
        );
        for (abi, names) in &u.syscalls {
            let _ = writeln!(out, "  {abi} ({}): {}", names.len(), names.join(" "));
        }
        for path in &u.not_sound {
            let _ = writeln!(out, "  not sound: {path}");
        }
        for n in &u.no_ceiling {
            let _ = writeln!(out, "  {}: {}", n.path, n.why);
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Syscall ceiling of `{}`\n", self.target);
        let _ = writeln!(
            out,
            "| executable | kind | size | ceiling | resolved | sound |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---|");
        for b in &self.binaries {
            let (n, rate, sound) = match &b.ceiling {
                Some(c) => (
                    c.len().to_string(),
                    format!("{:.1} %", c.resolution() * 100.0),
                    if c.sound { "yes" } else { "**no**" }.to_string(),
                ),
                None => ("—".into(), "—".into(), b.note.clone().unwrap_or_default()),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {n} | {rate} | {sound} |",
                b.path,
                kind(b),
                size(b.size)
            );
        }
        for b in &self.binaries {
            let Some(c) = &b.ceiling else { continue };
            let _ = writeln!(out, "\n## `{}`\n", b.path);
            let _ = writeln!(out, "```");
            ceiling_text(&mut out, c);
            let _ = writeln!(out, "```");
        }
        let u = &self.union;
        let _ = writeln!(
            out,
            "\n## Union: {}\n",
            if u.sound { "sound" } else { "**not sound**" }
        );
        for (abi, names) in &u.syscalls {
            let _ = writeln!(out, "- {abi} ({}): `{}`", names.len(), names.join("`, `"));
        }
        for path in &u.not_sound {
            let _ = writeln!(out, "- not sound: `{path}`");
        }
        for n in &u.no_ceiling {
            let _ = writeln!(out, "- `{}`: {}", n.path, n.why);
        }
        out
    }

    fn json(&self) -> serde_json::Result<String> {
        crate::output::json(self)
    }
}

fn ceiling_text(out: &mut String, c: &Ceiling) {
    let s = &c.sites;
    let _ = writeln!(
        out,
        "  ceiling: {} syscall(s), {}",
        c.len(),
        if c.sound { "SOUND" } else { "NOT SOUND" }
    );
    for why in &c.not_sound {
        let _ = writeln!(out, "    not sound: {why}");
    }
    let _ = writeln!(
        out,
        "  sites: {} instruction(s): {} constant, {} from an argument, {} unresolved; {} call site(s) of wrappers: {} constant, {} passed on, {} replaying a resolved call, {} unresolved ({:.1} % resolved)",
        s.instructions,
        s.constant,
        s.from_argument,
        s.unresolved_instructions,
        s.call_sites,
        s.call_sites_constant,
        s.call_sites_from_argument,
        s.replayed,
        s.unresolved_call_sites,
        c.resolution() * 100.0
    );
    for (abi, names) in &c.syscalls {
        let _ = writeln!(out, "  {abi} ({}): {}", names.len(), names.join(" "));
    }
    for (abi, names) in &c.implied {
        let _ = writeln!(
            out,
            "  implied ({abi}, by the kernel or vDSO): {}",
            names.join(" ")
        );
    }
    for w in &c.wrappers {
        let _ = writeln!(
            out,
            "  number from an argument: {} ({}), {} call site(s){}",
            w.function,
            w.argument,
            w.call_sites,
            if w.called_through_pointer {
                ", also called through a pointer"
            } else {
                ""
            }
        );
    }
    for u in &c.unresolved {
        let _ = writeln!(
            out,
            "  UNRESOLVED: {} site(s) in {}: {}",
            u.sites,
            u.function,
            u.why.join(", ")
        );
    }
}

fn kind(b: &Binary) -> String {
    let linking = if b.is_static { "static" } else { "dynamic" };
    match (b.kind, &b.go) {
        (Kind::Go, Some(go)) => format!(
            "Go {}, {linking}",
            go.version.as_deref().unwrap_or("(version unknown)")
        ),
        (Kind::Static, _) => "static".into(),
        (Kind::Dynamic, _) => "dynamic".into(),
        _ => "other".into(),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1048576 => format!("{:.0} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1048576.0),
    }
}
