//! A Docker Engine for tests, on a Unix socket: it knows images by name, "pulls" one by adding
//! it to what it knows, and exports any it knows as an empty image. No registry is reached.
use std::time::Duration;

use bollard::Docker;

use super::{Engine, Limits};

/// A client of the daemon at `socket`, with short limits.
pub(crate) fn engine_at(socket: &std::path::Path) -> Engine {
    let docker = Docker::connect_with_unix(
        socket.to_str().expect("utf-8"),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("client");
    let limits = Limits {
        request: Duration::from_millis(300),
        ping: Duration::from_millis(200),
        pull: Duration::from_millis(300),
    };
    Engine {
        docker,
        limits,
        podman: false,
        runtimes: Default::default(),
    }
}

/// An engine that knows images by name and "pulls" one by adding it to what it knows: it
/// answers image inspection, export and `POST /images/create`, and keeps the request lines
/// it got.
pub(crate) struct ImageStore {
    present: std::sync::Mutex<std::collections::BTreeSet<String>>,
    requests: std::sync::Mutex<Vec<String>>,
}

impl ImageStore {
    /// Serves on DIR/docker.sock until the test ends.
    pub(crate) fn serving(
        dir: &std::path::Path,
        present: &[&str],
    ) -> (Engine, std::sync::Arc<Self>) {
        let socket = dir.join("docker.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let store = std::sync::Arc::new(ImageStore {
            present: std::sync::Mutex::new(present.iter().map(|s| s.to_string()).collect()),
            requests: Default::default(),
        });
        let served = store.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = served.clone();
                std::thread::spawn(move || store.answer(stream));
            }
        });
        (engine_at(&socket), store)
    }

    /// The request lines so far, without the API version: `GET /images/app/json`.
    pub(crate) fn requests(&self) -> Vec<String> {
        let requests = self.requests.lock().expect("not poisoned");
        requests
            .iter()
            .map(|r| {
                let mut parts = r.splitn(2, ' ');
                let method = parts.next().unwrap_or_default();
                let path = parts.next().unwrap_or_default();
                let path = path.split_once("/images").map_or(path, |(_, p)| p);
                format!("{method} /images{path}")
            })
            .collect()
    }

    /// Answers one connection's requests, kept alive as the client asks.
    fn answer(&self, stream: std::os::unix::net::UnixStream) {
        use std::io::{BufRead as _, Read as _, Write as _};
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = std::io::BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let mut length = 0;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let target = parts.next().unwrap_or_default().to_string();
            self.requests
                .lock()
                .expect("not poisoned")
                .push(format!("{method} {target}"));
            let (status, body) = self.reply(&method, &target);
            let body = body.into_bytes();
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            if writer
                .write_all(head.as_bytes())
                .and_then(|()| writer.write_all(&body))
                .is_err()
            {
                return;
            }
        }
    }

    fn reply(&self, method: &str, target: &str) -> (&'static str, Body) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut present = self.present.lock().expect("not poisoned");
        if method == "POST" && path.ends_with("/images/create") {
            let value = |key: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or_default()
                    .replace("%2F", "/")
            };
            present.insert(format!("{}:{}", value("fromImage"), value("tag")));
            return (
                "200 OK",
                Body::Json(r#"{"status":"Downloaded newer image"}"#),
            );
        }
        let Some((image, what)) = path
            .split_once("/images/")
            .and_then(|(_, rest)| rest.rsplit_once('/'))
        else {
            return ("404 Not Found", Body::Json(r#"{"message":"not served"}"#));
        };
        match (present.contains(&image.replace("%2F", "/")), what) {
            (true, "json") => ("200 OK", Body::Json("{}")),
            (true, "get") => ("200 OK", Body::Export),
            _ => (
                "404 Not Found",
                Body::Json(r#"{"message":"No such image"}"#),
            ),
        }
    }
}

/// What the engine answers.
enum Body {
    Json(&'static str),
    /// `docker save` of an image with no layers.
    Export,
}

impl Body {
    fn into_bytes(self) -> Vec<u8> {
        match self {
            Body::Json(text) => text.as_bytes().to_vec(),
            Body::Export => {
                let manifest = br#"[{"Config":"config.json","RepoTags":[],"Layers":[]}]"#;
                let mut header = tar::Header::new_gnu();
                header.set_size(manifest.len() as u64);
                header.set_mode(0o644);
                let mut archive = tar::Builder::new(Vec::new());
                archive
                    .append_data(&mut header, "manifest.json", &manifest[..])
                    .and_then(|()| archive.into_inner())
                    .expect("a tar in memory")
            }
        }
    }
}
