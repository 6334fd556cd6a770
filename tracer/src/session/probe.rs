//! The built-in HTTP probe: once a service is ready, it sends each published TCP port that
//! speaks HTTP (or HTTPS) the requests servers handle differently, and follows same-origin
//! links in the pages it gets — so that `train` learns a web service without an exercise
//! script. It talks only to the loopback ports the run published.
use std::{collections::BTreeSet, time::Duration};

use reqwest::{Client, Method, Url, header};
use serde::Serialize;

use crate::docker::Published;

/// How far the probe goes.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Paths requested besides `/` and the links found (`--probe-url`).
    pub paths: Vec<String>,
    /// Link depth followed from `/`.
    pub depth: usize,
    /// Requests per port, at most.
    pub max_requests: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            paths: Vec::new(),
            depth: 3,
            max_requests: 200,
        }
    }
}

/// One request the probe made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProbeRequest {
    pub method: String,
    pub url: String,
    /// What the request varied (`keep-alive`, `connection: close`, `range`, `gzip`, `body`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The response's status, or None when the request failed (see `error`).
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the probe did, port by port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProbeReport {
    pub requests: Vec<ProbeRequest>,
    /// Ports that did not speak HTTP or HTTPS, with what was tried.
    pub skipped: Vec<String>,
}

/// The loopback address a published TCP port is reached at from the host, or None when it
/// is published elsewhere only (the probe never talks to another host).
fn loopback(port: &Published) -> Option<String> {
    (port.is_tcp() && port.host.ip().is_loopback()).then(|| port.host.to_string())
}

fn client(keep_alive: bool) -> reqwest::Result<Client> {
    let mut b = Client::builder()
        .timeout(Duration::from_secs(5))
        // Self-signed certificates are the rule on a service under test.
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if !keep_alive {
        b = b.pool_max_idle_per_host(0);
    }
    b.build()
}

/// Probes every published TCP port on loopback; `on_request` is told of each request.
pub async fn probe(
    ports: &[Published],
    options: &ProbeOptions,
    mut on_request: impl FnMut(usize),
) -> ProbeReport {
    let mut report = ProbeReport::default();
    let (Ok(keep), Ok(close)) = (client(true), client(false)) else {
        report.skipped.push("no HTTP client could be built".into());
        return report;
    };
    let mut seen_ports = BTreeSet::new();
    for port in ports {
        let Some(addr) = loopback(port) else {
            report.skipped.push(format!(
                "{} ({}): not published on loopback, or not TCP",
                port.host, port.container
            ));
            continue;
        };
        if !seen_ports.insert(addr.clone()) {
            continue;
        }
        let Some(base) = detect(&keep, &addr).await else {
            report.skipped.push(format!(
                "{addr} ({}): speaks neither HTTP nor HTTPS",
                port.container
            ));
            continue;
        };
        probe_origin(&keep, &close, &base, options, &mut report, &mut on_request).await;
    }
    report
}

/// `http://ADDR/` or `https://ADDR/`, whichever the port answers.
async fn detect(client: &Client, addr: &str) -> Option<Url> {
    for scheme in ["http", "https"] {
        let url = Url::parse(&format!("{scheme}://{addr}/")).ok()?;
        if client.get(url.clone()).send().await.is_ok() {
            return Some(url);
        }
    }
    None
}

async fn probe_origin(
    keep: &Client,
    close: &Client,
    base: &Url,
    options: &ProbeOptions,
    report: &mut ProbeReport,
    on_request: &mut impl FnMut(usize),
) {
    let budget = options.max_requests;
    let mut made = 0usize;
    let mut send =
        async |report: &mut ProbeReport,
               client: &Client,
               method: Method,
               url: Url,
               variant: Option<&str>,
               build: &(dyn Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder + Sync)|
               -> Option<String> {
            if made >= budget {
                return None;
            }
            made += 1;
            let request = build(client.request(method.clone(), url.clone()));
            let (status, error, body) = match request.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let html = resp
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|t| t.contains("html"));
                    let body = if html && method == Method::GET {
                        resp.text().await.ok()
                    } else {
                        let _ = resp.bytes().await;
                        None
                    };
                    (Some(status), None, body)
                }
                Err(err) => (None, Some(err.to_string()), None),
            };
            report.requests.push(ProbeRequest {
                method: method.to_string(),
                url: url.to_string(),
                variant: variant.map(String::from),
                status,
                error,
            });
            on_request(report.requests.len());
            body
        };
    let plain = |b: reqwest::RequestBuilder| b;
    // The crawl: `/`, the given paths, and same-origin links, breadth first.
    let mut visited: BTreeSet<String> = BTreeSet::new();
    let mut frontier: Vec<Url> = std::iter::once(base.clone())
        .chain(options.paths.iter().filter_map(|p| base.join(p).ok()))
        .collect();
    for _ in 0..=options.depth {
        let mut next = Vec::new();
        for url in std::mem::take(&mut frontier) {
            if !visited.insert(url.as_str().to_string()) {
                continue;
            }
            if let Some(body) = send(report, keep, Method::GET, url.clone(), None, &plain).await {
                next.extend(
                    links(&body)
                        .iter()
                        .filter_map(|l| url.join(l).ok())
                        .filter(|l| same_origin(l, base)),
                );
            }
        }
        frontier = next;
    }
    // The requests servers handle differently: (closed connection, method, the 404 path, what
    // varies, how the request is shaped).
    type Shape = fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder;
    let variants: [(bool, Method, bool, Option<&str>, Shape); 8] = [
        (false, Method::HEAD, false, None, |b| b),
        (false, Method::OPTIONS, false, None, |b| b),
        (false, Method::GET, true, Some("not found"), |b| b),
        (false, Method::POST, false, Some("body"), |b| {
            b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("profile=probe")
        }),
        (false, Method::GET, false, Some("range"), |b| {
            b.header(header::RANGE, "bytes=0-0")
        }),
        (false, Method::GET, false, Some("gzip"), |b| {
            b.header(header::ACCEPT_ENCODING, "gzip")
        }),
        (false, Method::GET, false, Some("keep-alive"), |b| b),
        (true, Method::GET, false, Some("connection: close"), |b| {
            b.header(header::CONNECTION, "close")
        }),
    ];
    let missing = base
        .join("/profile-probe-does-not-exist")
        .unwrap_or_else(|_| base.clone());
    for (closed, method, not_found, variant, shape) in variants {
        let client = if closed { close } else { keep };
        let url = if not_found {
            missing.clone()
        } else {
            base.clone()
        };
        send(report, client, method, url, variant, &shape).await;
    }
}

fn same_origin(url: &Url, base: &Url) -> bool {
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
}

/// The targets of `href` and `src` attributes in an HTML page.
pub fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = html.to_ascii_lowercase();
    for attr in ["href=", "src="] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(attr) {
            let start = from + i + attr.len();
            from = start;
            let rest = &html[start..];
            let (quote, rest) = match rest.chars().next() {
                Some(q @ ('"' | '\'')) => (Some(q), &rest[1..]),
                _ => (None, rest),
            };
            let end = rest
                .find(|c: char| match quote {
                    Some(q) => c == q,
                    None => c.is_whitespace() || c == '>',
                })
                .unwrap_or(rest.len());
            let link = rest[..end].trim();
            if !link.is_empty() && !link.starts_with('#') && !link.starts_with("javascript:") {
                out.push(link.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_pages() {
        let page = r##"<a href="/a.html">a</a> <A HREF='b.html'>b</A> <img src=c.png>
            <a href="http://127.0.0.2:80/x">elsewhere</a> <a href="#top">top</a>"##;
        assert_eq!(
            links(page),
            ["/a.html", "b.html", "http://127.0.0.2:80/x", "c.png"]
        );
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        let other = base.join("http://127.0.0.2:8080/x").unwrap();
        assert!(!same_origin(&other, &base));
        assert!(same_origin(&base.join("/a.html").unwrap(), &base));
        assert!(!same_origin(
            &Url::parse("https://127.0.0.1:8080/").unwrap(),
            &base
        ));
    }

    #[test]
    fn only_loopback_ports() {
        let port = |host: &str, container: &str| Published {
            container: container.into(),
            host: host.parse().unwrap(),
        };
        assert_eq!(
            loopback(&port("127.0.0.1:8080", "80/tcp")).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            loopback(&port("[::1]:8080", "80/tcp")).as_deref(),
            Some("[::1]:8080")
        );
        assert_eq!(loopback(&port("10.1.2.3:8080", "80/tcp")), None);
        assert_eq!(loopback(&port("127.0.0.1:8080", "53/udp")), None);
    }
}
