//! The bound a profile must stay within, and the error that says it doesn't: every profile
//! `profile` writes is checked against it before it is written.
use super::compare::Widening;

/// A profile that would allow what its bound forbids: never written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} would allow what {bound} forbids: {}; nothing was written",
    widenings.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("; ")
)]
pub struct NotWithin {
    /// The profile, in words (`the learned profile`).
    pub what: String,
    /// The bound, in words (`docker-default`).
    pub bound: String,
    pub widenings: Vec<Widening>,
}
