//! What the service proxy is told: one entry per port of a Service, with its ready endpoints.
//!
//! A Service gives a stable virtual IP (the cluster IP) to a changing set of pods. kube-proxy
//! does not see Services and EndpointSlices as such: it flattens them into "service ports"
//! (namespace/name:port, protocol), each with a cluster IP, an optional node port, and the
//! addresses of the ready pods behind it. These types are that flattened view; the caller
//! (the node agent) builds them from the API objects.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// The transport protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// "tcp" or "udp": lowercase, as kube-proxy puts it into chain-name hashes and rules.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which port of which Service: kube-proxy's `ServicePortName`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    /// The port's name, "" if the port is unnamed (a Service with a single port).
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    /// "ns/name:port", or "ns/name" for an unnamed port, as kube-proxy writes it (the protocol is
    /// not part of it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// One ready pod behind a service port: where to send the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    /// "10.244.1.2:8080", as kube-proxy writes it into hashes, comments and DNAT targets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// One port of one Service, with what the proxy needs to program it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    pub name: ServicePortName,
    /// The virtual IP; None for a headless Service (no rules at all).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service's port on the cluster IP.
    pub port: u16,
    /// The port opened on every node address (type NodePort or LoadBalancer).
    pub node_port: Option<u16>,
    /// `sessionAffinity: ClientIP`: a client sticks to one endpoint for this many seconds.
    pub affinity_timeout: Option<u32>,
    /// Ready endpoints only (the caller filters).
    pub endpoints: Vec<Endpoint>,
}

/// The node-wide settings of the proxy (kube-proxy's flags).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProxyConfig {
    /// The pods' address range ("10.244.0.0/16", kube-proxy's --cluster-cidr): traffic to a
    /// cluster IP from outside it is masqueraded. "" for none (no such rule).
    pub cluster_cidr: String,
    /// The packet-mark bit that asks for masquerading (kube-proxy's --iptables-masquerade-bit):
    /// 14 is mark 0x4000/0x4000.
    pub masquerade_bit: u8,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig { cluster_cidr: "10.244.0.0/16".into(), masquerade_bit: 14 }
    }
}
