//! SIGINT and SIGTERM, caught for a whole command so that a container is never left behind
//! by the first one, while a second one always ends the wait.
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::error::SessionError;

pub struct Interrupt {
    int: Signal,
    term: Signal,
}

impl Interrupt {
    pub fn install() -> Result<Self, SessionError> {
        Ok(Interrupt {
            int: signal(SignalKind::interrupt()).map_err(|e| SessionError::Signals("SIGINT", e))?,
            term: signal(SignalKind::terminate())
                .map_err(|e| SessionError::Signals("SIGTERM", e))?,
        })
    }

    /// Waits for the next signal; returns its number.
    pub async fn recv(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }

    /// Runs `fut` unless a signal comes first.
    pub async fn guard<T>(
        &mut self,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, SessionError> {
        tokio::select! {
            biased;
            sig = self.recv() => Err(SessionError::Interrupted(sig)),
            out = fut => Ok(out),
        }
    }
}
