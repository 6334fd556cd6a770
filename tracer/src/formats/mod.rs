//! The formats profiles are read and written in: Docker's seccomp JSON, the OCI runtime-spec
//! `linux.seccomp` object (alone or in a runtime config) and a Kubernetes Security Profiles
//! Operator `SeccompProfile` manifest (YAML).
mod oci;
mod place;
mod read;
mod write;

pub use oci::{OciSeccomp, OciSyscall, SPO_API_VERSION, SPO_KIND, SpoManifest, k8s_name};
pub use place::{Placement, partial_path, place};
pub use read::{ReadError, is_docker_default, origin, parse_profile, read_base, read_profile};
pub use write::{DefaultAction, Format, RenderError, Rendering, WriteError};
