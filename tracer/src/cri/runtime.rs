//! Which runc a CRI runtime starts containers with: the CRI names no low-level runtime, so it
//! is the runc the runtime's own process finds on its PATH, in the runtime's root (the host's,
//! seen from a DaemonSet's container through /proc).
use std::path::Path;

use crate::runtime::{Daemon, RuntimeBinary};

/// The runc binary of the runtime serving `socket`, when it can be found.
pub fn runc(socket: &Path) -> Option<RuntimeBinary> {
    Daemon::serving(socket)?.find("runc")
}
