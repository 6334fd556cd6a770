//! What the daemon says about a started container that matters for its exercise: its first
//! process, its published ports as bound, whether it has a health check; and the ports its
//! image EXPOSEs.
use std::{collections::HashMap, net::SocketAddr};

use bollard::models::PortBinding;

use super::{Engine, Result, api, bounded};

impl Engine {
    /// The ports the image EXPOSEs (`8080/tcp`), sorted.
    pub async fn exposed_ports(&self, image: &str) -> Result<Vec<String>> {
        let action = format!("inspecting image {image}");
        bounded(&action, self.limits.request, async {
            let inspected = self
                .docker
                .inspect_image(image)
                .await
                .map_err(api(action.as_str()))?;
            let mut ports = inspected
                .config
                .and_then(|c| c.exposed_ports)
                .unwrap_or_default();
            ports.sort();
            Ok(ports)
        })
        .await
    }
}

/// A published port as the daemon bound it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `8080/tcp`.
    pub container: String,
    /// The address to reach it at from this host (a wildcard binding becomes loopback).
    pub host: SocketAddr,
}

impl Published {
    /// The container port's number.
    pub fn container_port(&self) -> Option<u16> {
        self.container.split('/').next()?.parse().ok()
    }

    pub fn is_tcp(&self) -> bool {
        self.container.ends_with("/tcp")
    }
}

/// What a started container offers to be waited for.
#[derive(Clone, Debug, Default)]
pub struct Running {
    /// The host pid of its first process.
    pub pid: Option<u32>,
    pub ports: Vec<Published>,
    /// Whether it has a health check (the image's HEALTHCHECK or `--health-cmd`).
    pub healthcheck: bool,
}

/// Where to reach a binding from this host: wildcards become loopback.
pub(super) fn reachable(ip: Option<&str>, port: &str) -> Option<SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let ip = match ip.unwrap_or("") {
        "" | "0.0.0.0" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "::" => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip.parse().ok()?,
    };
    Some((ip, port).into())
}

/// The published ports of a port map, one per container port (IPv4 first), sorted.
pub(super) fn published(ports: &HashMap<String, Option<Vec<PortBinding>>>) -> Vec<Published> {
    let mut out: Vec<Published> = ports
        .iter()
        .filter_map(|(container, bindings)| {
            let mut hosts: Vec<SocketAddr> = bindings
                .iter()
                .flatten()
                .filter_map(|b| reachable(b.host_ip.as_deref(), b.host_port.as_deref()?))
                .collect();
            hosts.sort_by_key(|a| (a.is_ipv6(), *a));
            Some(Published {
                container: container.clone(),
                host: *hosts.first()?,
            })
        })
        .collect();
    out.sort_by(|a, b| a.container.cmp(&b.container));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_are_reached_on_loopback_for_wildcards() {
        let binding = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        };
        let ports = HashMap::from([
            (
                "8080/tcp".to_string(),
                Some(vec![binding("::", "18080"), binding("0.0.0.0", "18080")]),
            ),
            (
                "53/udp".to_string(),
                Some(vec![binding("127.0.0.2", "5353")]),
            ),
            ("9/tcp".to_string(), None),
        ]);
        let found = published(&ports);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].container, "53/udp");
        assert!(!found[0].is_tcp());
        assert_eq!(found[0].host.to_string(), "127.0.0.2:5353");
        assert_eq!(found[1].host.to_string(), "127.0.0.1:18080");
        assert_eq!(found[1].container_port(), Some(8080));
        assert_eq!(reachable(Some("::"), "1").unwrap().to_string(), "[::1]:1");
        assert_eq!(reachable(None, "0"), None);
    }
}
