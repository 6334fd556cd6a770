//! The built-in HTTP probe: a web service trained with no exercise still learns serving.
use std::time::Duration;

use profile_tests::*;

/// The status line of one request to 127.0.0.1:`port`.
fn request(port: u16, head: &str) -> String {
    let response = http_request(port, head);
    match response.lines().next() {
        Some(line) => line.to_string(),
        None => "no answer".into(),
    }
}

/// Serves the test image's /www under `profile` on a fresh port; returns the status lines of
/// GET, HEAD and a 404.
fn serve_under(profile: &std::path::Path, test: &str) -> Vec<String> {
    let httpd = Httpd::under(profile, test);
    vec![
        request(httpd.port, "GET / HTTP/1.0"),
        request(httpd.port, "HEAD / HTTP/1.0"),
        request(httpd.port, "GET /nope HTTP/1.0"),
    ]
}

#[test]
fn the_probe_teaches_a_web_service_to_serve() {
    if !privileged("the_probe_teaches_a_web_service_to_serve") {
        return;
    }
    let dir = Scratch::new("probe-web");
    let port = free_port().to_string();
    let publish = format!("127.0.0.1:{port}:8080");
    let cmd = ["httpd", "-f", "-p", "8080", "-h", "/www"];
    let (probed, report, out) = train(
        &dir,
        "probed",
        &["-p", &publish, "--stop-timeout", "1"],
        &cmd,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let report = report.expect("report");
    assert_eq!(report["stopped_by"], "probe");
    let requests = report["probe"]["requests"].as_array().expect("requests");
    let methods: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["method"].as_str())
        .collect();
    for m in ["GET", "HEAD", "OPTIONS", "POST"] {
        assert!(methods.contains(&m), "{m}: {methods:?}");
    }
    assert!(requests.iter().any(|r| r["status"] == 404));
    let phases = report["phases"].to_string();
    assert!(phases.contains("sendfile"), "{phases}");
    let lines = serve_under(&probed, "probe-served");
    assert!(lines[0].contains("200"), "{lines:?}");
    assert!(lines[1].contains("200"), "{lines:?}");
    assert!(lines[2].contains("404"), "{lines:?}");
    // Without the probe nothing is served while training: the profile can't serve.
    let port = free_port().to_string();
    let publish = format!("127.0.0.1:{port}:8080");
    let (plain, _, out) = train(
        &dir,
        "plain",
        &[
            "-p",
            &publish,
            "--probe",
            "none",
            "--duration",
            "3s",
            "--stop-timeout",
            "1",
        ],
        &cmd,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let names = allowed_names(&plain);
    assert!(!names.contains("sendfile"), "{names:?}");
    let lines = serve_under(&plain, "probe-plain");
    assert!(!lines[0].contains("200"), "{lines:?}");
}

#[test]
fn other_ports_and_other_hosts_are_left_alone() {
    if !privileged("other_ports_and_other_hosts_are_left_alone") {
        return;
    }
    let dir = Scratch::new("probe-links");
    let site = dir.path("site");
    std::fs::create_dir_all(&site).unwrap();
    let web = free_port();
    std::fs::write(
        site.join("index.html"),
        format!(
            "<html><a href=\"/a.html\">a</a> <a href=\"http://127.0.0.2:{web}/evil.html\">x</a></html>"
        ),
    )
    .unwrap();
    std::fs::write(site.join("a.html"), "<html><a href=\"b.html\">b</a></html>").unwrap();
    std::fs::write(site.join("b.html"), "<html>b</html>").unwrap();
    let echo = free_port();
    let volume = format!("{}:/site:ro", site.display());
    let (_, report, out) = train(
        &dir,
        "links",
        &[
            "-p",
            &format!("127.0.0.1:{web}:8080"),
            "-p",
            &format!("127.0.0.1:{echo}:9000"),
            "-v",
            &volume,
            "--stop-timeout",
            "1",
        ],
        &[
            "sh",
            "-c",
            "nc -ll -p 9000 -e cat & exec httpd -f -p 8080 -h /site",
        ],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let report = report.expect("report");
    let urls: Vec<String> = report["probe"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["url"].as_str().map(String::from))
        .collect();
    assert!(urls.iter().any(|u| u.ends_with("/a.html")), "{urls:?}");
    assert!(urls.iter().any(|u| u.ends_with("/b.html")), "{urls:?}");
    assert!(urls.iter().all(|u| !u.contains("127.0.0.2")), "{urls:?}");
    assert!(
        urls.iter().all(|u| !u.contains(&format!(":{echo}/"))),
        "{urls:?}"
    );
    let skipped = report["probe"]["skipped"].to_string();
    assert!(
        skipped.contains(&echo.to_string()) && skipped.contains("neither HTTP"),
        "{skipped}"
    );
}

/// The probe speaks HTTPS to a port that answers TLS, self-signed certificate and all (an
/// `openssl s_server` on the host stands in for a container's TLS port).
#[test]
fn the_probe_speaks_https_with_self_signed_certificates() {
    let dir = Scratch::new("probe-tls");
    let (cert, key) = (dir.path("cert.pem"), dir.path("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
        ])
        .arg("/CN=localhost")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{}", output_text(&made));
    let port = free_port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    wait_until(
        "openssl s_server listening",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    );
    let ports = [tracer::docker::Published {
        container: "443/tcp".into(),
        host: format!("127.0.0.1:{port}").parse().unwrap(),
    }];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(tracer::session::probe(
        &ports,
        &tracer::session::ProbeOptions::default(),
        |_| {},
    ));
    let _ = server.kill();
    let _ = server.wait();
    assert!(report.skipped.is_empty(), "{report:?}");
    let first = &report.requests[0];
    assert!(first.url.starts_with("https://127.0.0.1:"), "{report:?}");
    assert_eq!(first.status, Some(200), "{report:?}");
}
