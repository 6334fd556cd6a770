//! The exercise: a host command (`sh -c`) run against the container in a process group of its
//! own, so that whatever it started ends with it.
use std::{io, os::fd::AsFd as _, process::Stdio};

use crate::docker::Published;

/// A running exercise; its whole process group is killed when it is dropped.
pub struct Exercise {
    child: tokio::process::Child,
    group: i32,
}

impl Exercise {
    /// Starts `cmd` with `env` added; its output goes to our stderr, keeping stdout for the
    /// report.
    pub fn start(cmd: &str, env: &[(String, String)]) -> io::Result<Self> {
        let stdout = std::io::stderr().as_fd().try_clone_to_owned()?;
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .ok_or_else(|| io::Error::other("the exercise has no pid"))?;
        Ok(Exercise { child, group })
    }

    /// Waits for the command to finish (cancel-safe); returns its exit code, the shell's way.
    /// What it left running in its group is killed then.
    pub async fn wait(&mut self) -> io::Result<i32> {
        let status = self.child.wait().await?;
        self.kill_group();
        Ok(crate::launch::exit_code(status))
    }

    fn kill_group(&self) {
        // SAFETY: kill(2) on the process group the exercise's shell leads; ESRCH when it is
        // already empty is harmless.
        unsafe { libc::kill(-self.group, libc::SIGKILL) };
    }
}

impl Drop for Exercise {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// The exercise's environment: the container's id and name, and `PROFILE_PORT_<port>` (with
/// `_UDP`/`_SCTP` for those protocols) for each published port, holding the host port.
pub fn environment(id: &str, name: &str, ports: &[Published]) -> Vec<(String, String)> {
    let mut env = vec![
        ("PROFILE_CONTAINER_ID".to_string(), id.to_string()),
        ("PROFILE_CONTAINER_NAME".to_string(), name.to_string()),
    ];
    for port in ports {
        let (number, proto) = port
            .container
            .split_once('/')
            .unwrap_or((&port.container, "tcp"));
        let key = match proto {
            "tcp" => format!("PROFILE_PORT_{number}"),
            other => format!("PROFILE_PORT_{number}_{}", other.to_ascii_uppercase()),
        };
        env.push((key, port.host.port().to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_named_by_container_port() {
        let ports = [
            Published {
                container: "8080/tcp".into(),
                host: "127.0.0.1:18080".parse().unwrap(),
            },
            Published {
                container: "53/udp".into(),
                host: "127.0.0.1:5353".parse().unwrap(),
            },
        ];
        let env = environment("abc", "n", &ports);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PROFILE_CONTAINER_ID"), Some("abc"));
        assert_eq!(get("PROFILE_CONTAINER_NAME"), Some("n"));
        assert_eq!(get("PROFILE_PORT_8080"), Some("18080"));
        assert_eq!(get("PROFILE_PORT_53_UDP"), Some("5353"));
    }

    #[tokio::test]
    async fn what_the_exercise_started_ends_with_it() {
        let dir = std::env::temp_dir().join(format!("profile-exercise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("pid");
        let cmd = format!("sleep 97 & echo $! > {}; exit 3", pidfile.display());
        let mut exercise = Exercise::start(&cmd, &[]).unwrap();
        assert_eq!(exercise.wait().await.unwrap(), 3);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The killed sleep is a zombie until init reaps it: it must not be running.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| !s.split_whitespace().nth(2).is_some_and(|st| st == "Z"))
        {
            assert!(std::time::Instant::now() < deadline, "sleep 97 still runs");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
