//! When a started container is ready for its exercise: Docker reports it healthy when it has a
//! health check; otherwise every published TCP port has a listener in the container and takes
//! a connection on the host that the other side keeps open (docker-proxy accepts on the host
//! even when nothing listens inside, then closes at once).
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::docker::{Engine, Published, Running};

/// Whether and how long to wait before the exercise starts.
#[derive(Clone, Copy, Debug)]
pub struct ReadyOptions {
    /// Wait at all (`--no-wait` turns it off).
    pub wait: bool,
    pub timeout: Duration,
}

impl Default for ReadyOptions {
    fn default() -> Self {
        ReadyOptions {
            wait: true,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A container never ready for the exercise: the run wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// What was still not ready when the wait ended.
    pub reason: String,
    /// The container was kept (`--keep`), to be looked at.
    pub kept: bool,
    /// The container exited while it was waited for: waiting longer would not help.
    pub exited: bool,
    /// What never ran: `the exercise` or `the HTTP probe`.
    pub exercise: &'static str,
}

impl NotReady {
    /// Why `run` was never ready, if it wasn't.
    pub fn of(run: &super::RecordedRun, options: &super::RunOptions) -> Option<NotReady> {
        Some(NotReady {
            reason: run.not_ready.clone()?,
            kept: options.keep,
            exited: run.exited_before_ready,
            exercise: options.exercise_words(),
        })
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; {} never ran and nothing was written",
            self.reason, self.exercise
        )?;
        let kept = if self.kept {
            "the container was kept; "
        } else {
            ""
        };
        match self.exited {
            true if self.kept => write!(f, " (the container was kept)"),
            true => Ok(()),
            false => write!(
                f,
                " ({kept}--ready-timeout waits longer, --no-wait starts {} at once)",
                self.exercise
            ),
        }
    }
}

/// How long a probe connection must stay open to count: docker-proxy closes within
/// microseconds when it can't reach the container.
const HOLD: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause between two rounds of probes.
pub const PAUSE: Duration = Duration::from_millis(100);

/// What readiness means for one container.
#[derive(Clone, Debug)]
pub enum Target {
    /// Docker runs a health check: wait until it reports `healthy`.
    Health,
    /// Every published TCP port; `pid` is the container's first process (its network
    /// namespace shows the listeners).
    Ports {
        ports: Vec<Published>,
        pid: Option<u32>,
    },
    /// Ports were published, but the container stopped before they could be read: it never
    /// becomes ready.
    Stopped,
}

impl Target {
    /// What `running` is waited for: its health check, or its published TCP ports (`published`
    /// says whether any were asked for: a container that stopped at once shows none).
    pub fn of(running: &Running, published: bool) -> Option<Target> {
        if running.healthcheck {
            return Some(Target::Health);
        }
        let ports: Vec<Published> = running
            .ports
            .iter()
            .filter(|p| p.is_tcp())
            .cloned()
            .collect();
        if ports.is_empty() {
            return published.then_some(Target::Stopped);
        }
        Some(Target::Ports {
            ports,
            pid: running.pid,
        })
    }

    /// What is waited for, for the progress line.
    pub fn describe(&self) -> String {
        match self {
            Target::Health => "the health check".into(),
            Target::Stopped => "the container".into(),
            Target::Ports { ports, .. } => ports
                .iter()
                .map(|p| p.host.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// One round of checks: `Ok` when ready, otherwise what is not ready yet and why.
pub async fn check(engine: &Engine, id: &str, target: &Target) -> Result<(), String> {
    match target {
        Target::Health => match engine.health(id).await {
            Ok(Some(status)) if status == "healthy" => Ok(()),
            Ok(Some(status)) => Err(format!("the health check reports {status}")),
            Ok(None) => Err("the health check has not reported yet".into()),
            Err(err) => Err(format!("the health check: {err}")),
        },
        Target::Stopped => Err("the container is not running".into()),
        Target::Ports { ports, pid } => {
            for port in ports {
                probe(port, *pid)
                    .await
                    .map_err(|why| format!("{}: {why}", port.host))?;
            }
            Ok(())
        }
    }
}

async fn probe(port: &Published, pid: Option<u32>) -> Result<(), String> {
    if let (Some(pid), Some(number)) = (pid, port.container_port())
        && listening(pid, number) == Some(false)
    {
        return Err(format!("nothing listens on port {number} in the container"));
    }
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(port.host));
    let mut stream = match connect.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) if crate::privileges::in_image() => {
            return Err(format!(
                "no connection: {err} (profile runs in a container: it reaches the host's published ports only with docker run --network=host)"
            ));
        }
        Ok(Err(err)) => return Err(format!("no connection: {err}")),
        Err(_) => return Err("no connection within a second".into()),
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(HOLD, stream.read(&mut byte)).await {
        // It spoke first (a banner): something answers.
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(_) => Err("the connection was closed at once".into()),
        // Kept open: a server holds it and waits for the client.
        Err(_) => Ok(()),
    }
}

/// Whether a TCP socket listens on `port` in the network namespace of `pid`, or None when
/// that can't be read.
fn listening(pid: u32, port: u16) -> Option<bool> {
    let mut readable = false;
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            readable = true;
            if listens_in(&text, port) {
                return Some(true);
            }
        }
    }
    readable.then_some(false)
}

/// Whether a `/proc/net/tcp{,6}` table has a socket in state LISTEN (0A) on `port`.
fn listens_in(table: &str, port: u16) -> bool {
    const LISTEN: &str = "0A";
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields
            .get(1)
            .and_then(|local| local.rsplit_once(':'))
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
        local_port == Some(port) && fields.get(3) == Some(&LISTEN)
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0050 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";

    #[test]
    fn listeners_are_read_from_the_namespace_table() {
        assert!(listens_in(TCP, 8080));
        // Port 80 has only an established connection.
        assert!(!listens_in(TCP, 80));
        assert!(!listens_in("", 8080));
        let tcp6 =
            "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 0";
        assert!(listens_in(tcp6, 6379));
    }

    #[test]
    fn this_process_sees_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listening(std::process::id(), port), Some(true));
        drop(listener);
        assert_eq!(listening(std::process::id(), port), Some(false));
        assert_eq!(listening(u32::MAX, port), None);
    }

    fn published(port: u16) -> Published {
        Published {
            container: format!("{port}/tcp"),
            host: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[tokio::test]
    async fn a_connection_closed_at_once_is_not_ready() {
        // What docker-proxy does when nothing listens in the container.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let closer = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        });
        let err = probe(&published(port), None).await.unwrap_err();
        assert!(err.contains("closed at once"), "{err}");
        closer.abort();
    }

    #[tokio::test]
    async fn a_connection_held_open_or_answered_is_ready() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        assert_eq!(
            probe(&published(port), Some(std::process::id())).await,
            Ok(())
        );
        server.abort();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let banner = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"+OK\r\n").await;
            }
        });
        assert_eq!(probe(&published(port), None).await, Ok(()));
        banner.abort();
    }

    #[tokio::test]
    async fn nothing_listening_is_not_ready() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = probe(&published(port), Some(std::process::id()))
            .await
            .unwrap_err();
        assert!(err.contains("nothing listens on port"), "{err}");
        let err = probe(&published(port), None).await.unwrap_err();
        assert!(err.contains("no connection"), "{err}");
    }
}
