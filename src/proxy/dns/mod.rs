//! Cluster DNS: the names of Services and Pods, like CoreDNS's `kubernetes` plugin.
//!
//! A pod's /etc/resolv.conf points at the cluster DNS, which answers the names under the
//! cluster domain (`web.shop.svc.cluster.local` → the Service's ClusterIP) from the API
//! objects ([`records`]), and forwards every other name to the node's own name servers
//! ([`server`], which asks them in `upstream`). DNS is one question in a UDP datagram (or, when an answer is too big for one,
//! a TCP stream), answered with records that carry a time-to-live for client caches.

pub mod records;
pub mod server;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use records::{
    CLUSTER_DOMAIN, DnsEndpoint, DnsPort, DnsRecords, Lookup, Protocol, RecordType, Rr, RrData, SCHEMA_VERSION,
};
pub use server::{DnsServer, SharedRecords, serve};

/// How the cluster DNS serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The cluster domain ([`CLUSTER_DOMAIN`]).
    pub domain: String,
    /// Where other names are asked, in order.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of the cluster's records (CoreDNS's `kubernetes` plugin: 5 s).
    pub ttl: u32,
    /// How long to wait for one upstream before asking the next.
    pub upstream_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            domain: CLUSTER_DOMAIN.to_string(),
            upstreams: Vec::new(),
            ttl: 5,
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

impl DnsConfig {
    /// The default config, forwarding to the `nameserver` lines of a resolv.conf (the node's
    /// /etc/resolv.conf), port 53. Lines it cannot use (an IPv6 address with a `%zone`) are
    /// skipped. [`serve`] leaves out an upstream that is the server's own address, so a node
    /// whose resolv.conf names the cluster DNS does not forward to itself.
    pub fn from_resolv_conf(text: &str) -> DnsConfig {
        let mut upstreams = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                continue;
            }
            let Some(word) = words.next() else { continue };
            match word.parse::<IpAddr>() {
                Ok(ip) => {
                    let addr = SocketAddr::new(ip, 53);
                    if !upstreams.contains(&addr) {
                        upstreams.push(addr);
                    }
                }
                Err(_) => tracing::warn!("resolv.conf: nameserver {word:?} is not an IP address: not used"),
            }
        }
        DnsConfig { upstreams, ..DnsConfig::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_become_upstreams() {
        let text = "# generated\nsearch example.test\nnameserver 10.0.0.2\nnameserver  ::1 # local\n\
                    ;nameserver 10.0.0.9\nnameserver fe80::1%eth0\nnameserver\nnameserver 10.0.0.2\n\
                    options ndots:5\n";
        let c = DnsConfig::from_resolv_conf(text);
        let want: Vec<SocketAddr> = vec!["10.0.0.2:53".parse().unwrap(), "[::1]:53".parse().unwrap()];
        assert_eq!(c.upstreams, want);
        assert_eq!((c.domain.as_str(), c.ttl), ("cluster.local", 5));
        assert!(DnsConfig::from_resolv_conf("").upstreams.is_empty());
    }
}
