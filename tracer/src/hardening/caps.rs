//! Capabilities by number and by the name Docker gives them (`CHOWN`, no `CAP_` prefix).
use crate::seccomp::resolve::{ALL_CAPS, DOCKER_DEFAULT_CAPS};

/// Docker's name of capability `n` (`CHOWN` for 0), if the kernel defines it.
pub fn name(n: u16) -> Option<&'static str> {
    ALL_CAPS
        .get(usize::from(n))
        .map(|c| c.trim_start_matches("CAP_"))
}

/// The number of a capability named as Docker accepts it (`chown`, `CHOWN`, `CAP_CHOWN`).
pub fn number(name: &str) -> Option<u16> {
    let full = crate::seccomp::resolve::capability(name)?;
    ALL_CAPS.iter().position(|c| *c == full).map(|n| n as u16)
}

/// Whether a container has capability `name` (Docker's spelling) under Docker's defaults.
pub fn docker_default(name: &str) -> bool {
    DOCKER_DEFAULT_CAPS
        .iter()
        .any(|c| c.trim_start_matches("CAP_") == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_agree() {
        assert_eq!(name(0), Some("CHOWN"));
        assert_eq!(name(10), Some("NET_BIND_SERVICE"));
        assert_eq!(name(21), Some("SYS_ADMIN"));
        assert_eq!(name(40), Some("CHECKPOINT_RESTORE"));
        assert_eq!(name(41), None);
        for n in 0..41 {
            assert_eq!(number(name(n).unwrap()), Some(n));
        }
        assert_eq!(number("cap_setuid"), Some(7));
        assert_eq!(number("NOPE"), None);
        assert!(docker_default("NET_RAW") && !docker_default("SYS_ADMIN"));
    }
}
