//! Privilege checks: loading tracing programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN).
use std::fs;

use crate::error::{Error, Result};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
fn effective() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Fails with one line naming what is missing.
pub fn check() -> Result<()> {
    let Some(caps) = effective() else {
        return Ok(()); // can't tell: let the kernel decide
    };
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let who = if unsafe { libc::geteuid() } == 0 {
        "running as root without"
    } else {
        "not root, and without"
    };
    Err(Error::Privileges {
        missing: format!("{who} {}", missing.join(" and ")),
    })
}
