//! Privileges: this process's credentials, what it may do with a file, and a missing privilege
//! named with the capability that grants it.
use std::{
    ffi::CString,
    fmt, fs, io,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::Path,
};

/// A capability `profile` may need (numbers from linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cap {
    DacOverride = 1,
    DacReadSearch = 2,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cap::DacOverride => "CAP_DAC_OVERRIDE",
            Cap::DacReadSearch => "CAP_DAC_READ_SEARCH",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        })
    }
}

/// Whether this process runs in the image `profile:<version>` (its Dockerfile sets
/// `PROFILE_IMAGE`): it then sees the host only through what `docker run` gave it. Files such
/// as `/.dockerenv` can't tell: hosts that are containers themselves have them too.
pub fn in_image() -> bool {
    std::env::var_os("PROFILE_IMAGE").is_some()
}

/// This process's effective user id and capabilities: what the kernel checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Creds {
    pub euid: u32,
    caps: u64,
}

impl Creds {
    /// The current process's, or `None` when /proc can't tell (then the kernel decides).
    pub fn current() -> Option<Self> {
        Self::parse(&fs::read_to_string("/proc/self/status").ok()?)
    }

    fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name));
        // Uid: real, effective, saved, filesystem.
        let euid = field("Uid:")?.split_whitespace().nth(1)?.parse().ok()?;
        let caps = u64::from_str_radix(field("CapEff:")?.trim(), 16).ok()?;
        Some(Creds { euid, caps })
    }

    pub fn has(&self, cap: Cap) -> bool {
        self.caps & (1u64 << cap as u32) != 0
    }

    /// What loading and attaching the eBPF programs needs that these credentials lack:
    /// CAP_BPF and CAP_PERFMON (tracing programs), or CAP_SYS_ADMIN, which implies both.
    pub fn missing_for_bpf(&self) -> Option<Missing> {
        if self.has(Cap::SysAdmin) {
            return None;
        }
        let caps: Vec<Cap> = [Cap::Bpf, Cap::Perfmon]
            .into_iter()
            .filter(|&c| !self.has(c))
            .collect();
        (!caps.is_empty()).then(|| Missing::new("loading the eBPF recorder", caps))
    }
}

/// Whether this process may access `path` with `mode` (`libc::R_OK`, `W_OK`, `X_OK`), as the
/// kernel would decide for its effective ids and capabilities.
pub fn may_access(path: &Path, mode: libc::c_int) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path; AT_EACCESS checks with the effective ids and
    // capabilities, which is what open() and mkdir() will use.
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c_path.as_ptr(), mode, libc::AT_EACCESS) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A file's owner, group and permission bits, for messages: `owner root, group docker, mode 0660`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAccess {
    pub owner: String,
    pub group: String,
    pub mode: u32,
}

impl FileAccess {
    pub fn of(path: &Path) -> Option<Self> {
        let meta = fs::metadata(path).ok()?;
        Some(FileAccess {
            owner: name_of("/etc/passwd", meta.uid()),
            group: name_of("/etc/group", meta.gid()),
            mode: meta.mode() & 0o7777,
        })
    }
}

impl fmt::Display for FileAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "owner {}, group {}, mode {:04o}",
            self.owner, self.group, self.mode
        )
    }
}

/// The name of user or group `id` in `db` (/etc/passwd or /etc/group), or the number.
fn name_of(db: &str, id: u32) -> String {
    fs::read_to_string(db)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)?.parse::<u32>().ok()? == id).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| id.to_string())
}

/// One thing this process may not do, and the capabilities (or the group) that would let it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// What can't be done, in words: `creating the command's cgroup in /sys/fs/cgroup`.
    pub needed_for: String,
    pub caps: Vec<Cap>,
    /// A group whose members may do it (the Docker socket's), where no capability is asked.
    pub group: Option<String>,
}

impl Missing {
    pub fn new(needed_for: impl Into<String>, caps: Vec<Cap>) -> Self {
        Missing {
            needed_for: needed_for.into(),
            caps,
            group: None,
        }
    }

    /// What only membership of `group` (or root) allows.
    pub fn group(needed_for: impl Into<String>, group: impl Into<String>) -> Self {
        Missing {
            needed_for: needed_for.into(),
            caps: Vec::new(),
            group: Some(group.into()),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{} needs membership of group {group}", self.needed_for),
            None => write!(f, "{} needs {}", self.needed_for, and_list(&self.caps)),
        }
    }
}

fn and_list(caps: &[Cap]) -> String {
    let names: Vec<String> = caps.iter().map(Cap::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

/// Everything this process lacks for a command, named at once.
#[derive(Debug, thiserror::Error)]
pub struct MissingPrivileges {
    pub euid: u32,
    pub missing: Vec<Missing>,
}

impl MissingPrivileges {
    /// The capabilities to grant: all of those named, less CAP_DAC_READ_SEARCH when
    /// CAP_DAC_OVERRIDE (which covers reading) is among them.
    pub fn to_grant(&self) -> Vec<Cap> {
        let mut caps: Vec<Cap> = self.missing.iter().flat_map(|m| m.caps.clone()).collect();
        caps.sort();
        caps.dedup();
        if caps.contains(&Cap::DacOverride) {
            caps.retain(|&c| c != Cap::DacReadSearch);
        }
        caps.sort_by_key(|&c| std::cmp::Reverse(c as u32));
        caps
    }
}

impl fmt::Display for MissingPrivileges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.missing.iter().map(Missing::to_string).collect();
        let caps = self.to_grant();
        let mut grants: Vec<String> = Vec::new();
        if !caps.is_empty() {
            grants.push(format!("grant {}", and_list(&caps)));
        }
        let mut groups: Vec<&str> = self
            .missing
            .iter()
            .filter_map(|m| m.group.as_deref())
            .collect();
        groups.dedup();
        if !groups.is_empty() {
            grants.push(format!("join group {}", groups.join(" and ")));
        }
        let grant = grants.join(" and ");
        if self.euid == 0 {
            write!(
                f,
                "missing privileges (uid 0 without all capabilities): {}; {grant}, or run as root with all capabilities",
                items.join("; ")
            )
        } else {
            write!(
                f,
                "missing privileges (uid {}): {}; run as root, or {grant}",
                self.euid,
                items.join("; ")
            )
        }
    }
}

/// Fails, naming everything at once, when anything is missing.
pub fn require(creds: Option<Creds>, missing: Vec<Missing>) -> Result<(), MissingPrivileges> {
    match creds {
        Some(creds) if !missing.is_empty() => Err(MissingPrivileges {
            euid: creds.euid,
            missing,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(euid: u32, caps: &[Cap]) -> Creds {
        Creds {
            euid,
            caps: caps.iter().fold(0, |acc, &c| acc | 1 << c as u32),
        }
    }

    #[test]
    fn reads_effective_ids_and_caps() {
        let status = "Name:\tx\nUid:\t1000\t65534\t65534\t65534\nCapEff:\t000000c000000004\n";
        let c = Creds::parse(status).unwrap();
        assert_eq!(c.euid, 65534);
        assert!(c.has(Cap::Bpf) && c.has(Cap::Perfmon) && c.has(Cap::DacReadSearch));
        assert!(!c.has(Cap::SysAdmin) && !c.has(Cap::DacOverride));
        assert!(Creds::current().is_some());
    }

    #[test]
    fn bpf_needs_both_or_sys_admin() {
        assert_eq!(creds(0, &[Cap::SysAdmin]).missing_for_bpf(), None);
        assert_eq!(creds(1, &[Cap::Bpf, Cap::Perfmon]).missing_for_bpf(), None);
        assert_eq!(
            creds(1, &[Cap::Bpf]).missing_for_bpf().unwrap().caps,
            [Cap::Perfmon]
        );
        assert_eq!(
            creds(1, &[]).missing_for_bpf().unwrap().to_string(),
            "loading the eBPF recorder needs CAP_BPF and CAP_PERFMON"
        );
    }

    #[test]
    fn names_everything_and_what_to_grant() {
        let err = MissingPrivileges {
            euid: 65534,
            missing: vec![
                Missing::new("a", vec![Cap::Bpf, Cap::Perfmon]),
                Missing::new("b", vec![Cap::DacReadSearch]),
                Missing::new("c", vec![Cap::DacOverride]),
            ],
        };
        assert_eq!(
            err.to_string(),
            "missing privileges (uid 65534): a needs CAP_BPF and CAP_PERFMON; b needs \
             CAP_DAC_READ_SEARCH; c needs CAP_DAC_OVERRIDE; run as root, or grant CAP_BPF, \
             CAP_PERFMON and CAP_DAC_OVERRIDE"
        );
        assert!(require(None, err.missing.clone()).is_ok());
        let err = MissingPrivileges {
            euid: 1000,
            missing: vec![
                Missing::group("using the Docker daemon's socket /s", "docker"),
                Missing::new("a", vec![Cap::Bpf]),
            ],
        };
        assert_eq!(
            err.to_string(),
            "missing privileges (uid 1000): using the Docker daemon's socket /s needs membership \
             of group docker; a needs CAP_BPF; run as root, or grant CAP_BPF and join group docker"
        );
        assert!(require(Some(creds(0, &[])), Vec::new()).is_ok());
    }

    #[test]
    fn describes_files() {
        let access = FileAccess::of(Path::new("/")).unwrap();
        assert_eq!(access.owner, "root");
        assert!(
            access
                .to_string()
                .starts_with("owner root, group root, mode 0")
        );
        assert!(may_access(Path::new("/"), libc::R_OK).is_ok());
    }
}
