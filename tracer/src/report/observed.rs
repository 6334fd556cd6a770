//! The syscalls a recording saw, one line each, as reports list them.
use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use crate::{
    names::{Abi, AbiName, SyscallId},
    recorder::Observed,
};

/// One syscall a recording saw: how often, and the first program to make it.
#[derive(Clone, Debug, Serialize)]
pub struct SyscallLine {
    pub name: String,
    pub abi: Abi,
    pub count: u64,
    pub first_program: Option<String>,
    pub first_pid: Option<u32>,
}

impl SyscallLine {
    /// One line per native call the container runtime made before it handed over.
    pub fn runtime(map: &BTreeMap<u32, Observed>) -> Vec<SyscallLine> {
        let native: BTreeMap<SyscallId, Observed> = map
            .iter()
            .map(|(nr, obs)| {
                let id = SyscallId {
                    abi: Abi::X86_64,
                    nr: *nr,
                };
                (id, obs.clone())
            })
            .collect();
        SyscallLine::all(&native)
    }

    /// One line per syscall, sorted by ABI and name.
    pub fn all(map: &BTreeMap<SyscallId, Observed>) -> Vec<SyscallLine> {
        let mut lines: Vec<SyscallLine> = map
            .iter()
            .map(|(id, obs)| SyscallLine {
                name: id.name(),
                abi: id.abi,
                count: obs.count,
                first_program: obs.first.as_ref().map(|f| f.comm.clone()),
                first_pid: obs.first.as_ref().map(|f| f.pid),
            })
            .collect();
        lines.sort_by(|a, b| (a.abi, &a.name).cmp(&(b.abi, &b.name)));
        lines
    }
}

/// How a report's table names a line's syscall: `name (abi)` off x86_64.
pub fn table_name(s: &SyscallLine) -> String {
    AbiName(s.abi, &s.name).to_string()
}

/// `lines` as an aligned text table under `heading` (`syscall`, `denied`).
pub fn text_table(out: &mut String, heading: &str, lines: &[SyscallLine]) {
    let _ = writeln!(out, "  {heading:<24} {:>12}  first program", "calls");
    for s in lines {
        let _ = writeln!(
            out,
            "  {:<24} {:>12}  {}",
            table_name(s),
            s.count,
            s.first_program.as_deref().unwrap_or("?")
        );
    }
}

/// `lines` as a Markdown table whose first column is headed `heading`.
pub fn markdown_table(out: &mut String, heading: &str, lines: &[SyscallLine]) {
    let _ = writeln!(out, "| {heading} | calls | first program |");
    let _ = writeln!(out, "|---|---:|---|");
    for s in lines {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} |",
            table_name(s),
            s.count,
            s.first_program.as_deref().unwrap_or("?")
        );
    }
}
