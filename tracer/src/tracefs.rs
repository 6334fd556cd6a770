//! tracefs: making sure it is mounted and reading field offsets of tracepoint records.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use crate::{
    mounts,
    privileges::{self, Cap, Creds, FileAccess, Missing},
};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Why tracefs could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and could not be mounted ({source}); fix it with: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    NotMounted { source: io::Error },
    #[error("tracepoint {name}: {reason}")]
    Format { name: String, reason: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Whether tracefs is mounted at [`TRACEFS`] (whether or not this process may read it).
fn is_mounted() -> bool {
    mounts::of_type("tracefs").is_ok_and(|points| points.iter().any(|p| p == Path::new(TRACEFS)))
}

/// What using tracefs needs that this process lacks: mounting it when it isn't mounted
/// (CAP_SYS_ADMIN), and reading it (root's alone, mode 0700, unless mounted otherwise).
pub fn missing_privileges(creds: &Creds) -> Vec<Missing> {
    let mut missing = Vec::new();
    if is_mounted() {
        let events = Path::new(TRACEFS).join("events");
        if privileges::may_access(&events, libc::R_OK | libc::X_OK)
            .is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
        {
            let access = FileAccess::of(Path::new(TRACEFS))
                .map(|a| format!(" ({a})"))
                .unwrap_or_default();
            missing.push(Missing::new(
                format!("reading tracefs at {TRACEFS}{access}"),
                vec![Cap::DacReadSearch],
            ));
        }
        return missing;
    }
    if !creds.has(Cap::SysAdmin) {
        missing.push(Missing::new(
            format!(
                "mounting tracefs at {TRACEFS} (or mount it beforehand: mount -t tracefs nodev {TRACEFS})"
            ),
            vec![Cap::SysAdmin],
        ));
    }
    if creds.euid != 0 && !creds.has(Cap::DacReadSearch) && !creds.has(Cap::DacOverride) {
        missing.push(Missing::new(
            format!("reading tracefs at {TRACEFS} (root's alone once mounted, mode 0700)"),
            vec![Cap::DacReadSearch],
        ));
    }
    missing
}

/// Mounts tracefs at its usual place when it is not there yet.
pub fn ensure_mounted() -> Result<(), TracefsError> {
    if is_mounted() || Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TracefsError::NotMounted {
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Whether the running kernel has tracepoint `category/name`.
pub fn has_event(category: &str, name: &str) -> bool {
    Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(name)
        .is_dir()
}

/// Byte offset of `field` in the records of tracepoint `category/name`.
pub fn field_offset(category: &str, name: &str, field: &str) -> Result<u32, TracefsError> {
    let path = Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text = fs::read_to_string(&path).map_err(|source| TracefsError::Io {
        path: path.clone(),
        source,
    })?;
    parse_field_offset(&text, field).ok_or_else(|| TracefsError::Format {
        name: format!("{category}:{name}"),
        reason: format!("no field `{field}` in {}", path.display()),
    })
}

fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';');
        let decl = parts.next()?.strip_prefix("field:")?;
        let name = decl.rsplit([' ', '\t']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        parts
            .find_map(|p| p.trim().strip_prefix("offset:"))?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::parse_field_offset;

    const FORK: &str = "name: sched_process_fork\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";

    #[test]
    fn finds_offsets() {
        assert_eq!(parse_field_offset(FORK, "child_pid"), Some(20));
        assert_eq!(parse_field_offset(FORK, "parent_comm"), Some(8));
        assert_eq!(parse_field_offset(FORK, "pid"), None);
    }
}
