//! The node's service proxy: what kube-proxy and CoreDNS do for the pods of one node.
//!
//! A Service is a name and a virtual IP for a changing set of pods (those its selector picks
//! that are Ready). Each pass of the agent loop works out, from the Services, the Endpoints
//! objects and the pods' labels and readiness, which pod IPs stand behind which VIP, hands that
//! to the proxier (iptables DNAT rules in kube-proxy's layout, rewritten only where something
//! changed) and to the cluster DNS (`web.default.svc.cluster.local`). The DNS server is itself
//! a Service, `kube-system/kube-dns` on 10.96.0.10, whose one endpoint is the node's address
//! on the pod network, where the agent answers port 53.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::ServiceSpec;
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::Result;
use crate::proxy::alloc::{Allocator, DNS_SERVICE_IP};
use crate::proxy::dns::SharedRecords;
use crate::proxy::endpoints::{self, PodInfo};
use crate::proxy::model::{self, ProxyConfig};
use crate::proxy::sync::Proxier;

/// The namespace and name of the cluster DNS Service, as kubeadm names it.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");
/// Its port.
pub const DNS_PORT: u16 = 53;

/// The Services and Endpoints as the node serves them (for `podlab get services/endpoints`).
#[derive(Debug, Clone, Default)]
pub struct ServiceView {
    /// Services with their allocated clusterIP and nodePorts filled in.
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    /// The last error of the proxier or the allocator, if the last pass had one.
    pub error: Option<String>,
}

/// Shared between the agent loop (writer) and the API (reader).
pub type SharedView = Arc<RwLock<ServiceView>>;

/// The proxy's state between passes of the agent loop.
pub struct ServiceProxy {
    alloc: Allocator,
    proxier: Proxier,
    dns: Option<SharedRecords>,
    /// The node's address on the pod network, where the DNS server listens.
    dns_endpoint: Option<Ipv4Addr>,
    view: SharedView,
    /// What the proxier was given last: no iptables work when nothing changed.
    last: Option<Vec<model::ServicePort>>,
    /// Allocation errors already logged (once per change).
    reported: Vec<String>,
}

impl ServiceProxy {
    /// A proxy keeping its allocations in `state_dir`; `dns` is the running DNS server's records
    /// and address (None: no cluster DNS on this node).
    pub fn new(
        state_dir: &Path,
        cluster_cidr: &str,
        dns: Option<(SharedRecords, Ipv4Addr)>,
        view: SharedView,
    ) -> Result<ServiceProxy> {
        let alloc = Allocator::open(state_dir)?;
        let proxier = Proxier::new(ProxyConfig { cluster_cidr: cluster_cidr.to_string(), masquerade_bit: 14 })?;
        let (dns, dns_endpoint) = match dns {
            Some((records, ip)) => (Some(records), Some(ip)),
            None => (None, None),
        };
        Ok(ServiceProxy { alloc, proxier, dns, dns_endpoint, view, last: None, reported: Vec::new() })
    }

    /// One pass: allocate, work out endpoints, update the rules and the DNS records. Returns
    /// the Services served, with their allocated addresses.
    pub fn sync(&mut self, services: &[Service], endpoint_objects: &[Endpoints], pods: &[Pod]) -> Vec<Service> {
        let mut services: Vec<Service> = services.to_vec();
        let mut endpoint_objects: Vec<Endpoints> = endpoint_objects.to_vec();
        if let Some(ip) = self.dns_endpoint {
            services.push(dns_service());
            endpoint_objects.push(dns_endpoints(ip));
        }
        let mut errors = Vec::new();
        let mut served = Vec::new();
        for mut svc in services {
            match self.alloc.assign(&mut svc) {
                Ok(()) => served.push(svc),
                Err(e) => errors.push(format!("service {}: {e}", key(&svc.metadata))),
            }
        }
        for e in &errors {
            if !self.reported.contains(e) {
                tracing::warn!("{e}");
            }
        }
        self.reported = errors.clone();
        let keep: Vec<(String, String)> = served.iter().map(|s| ns_name(&s.metadata)).collect();
        if let Err(e) = self.alloc.retain(&keep) {
            errors.push(format!("allocations: {e}"));
        }

        let pods: Vec<PodInfo> = pods.iter().map(PodInfo::of).collect();
        let ports = endpoints::service_ports(&served, &pods, &endpoint_objects);
        if self.last.as_ref() != Some(&ports) {
            match self.proxier.sync(&ports) {
                Ok(stats) => {
                    tracing::debug!(
                        "proxy: {} sync, {} chains, {} rules in {:?}",
                        if stats.full { "full" } else { "partial" },
                        stats.chains_written,
                        stats.rules_written,
                        stats.elapsed
                    );
                    self.last = Some(ports);
                }
                Err(e) => {
                    errors.push(format!("proxy: {e}"));
                    // Full sync next time: the rules may be half what they should be.
                    self.proxier.force_full_sync();
                    self.last = None;
                }
            }
        }
        if let Some(records) = &self.dns {
            let fresh = endpoints::dns_records(&served, &pods, &endpoint_objects);
            if let Ok(mut r) = records.write() {
                *r = fresh;
            }
        }
        // Endpoints as Kubernetes shows them: computed for selector services, given for others.
        let mut shown: Vec<Endpoints> = served.iter().filter_map(|s| endpoints::endpoints_of(s, &pods)).collect();
        for e in &endpoint_objects {
            if !shown.iter().any(|s| ns_name(&s.metadata) == ns_name(&e.metadata)) {
                shown.push(e.clone());
            }
        }
        if let Ok(mut v) = self.view.write() {
            *v = ServiceView { services: served.clone(), endpoints: shown, error: errors.first().cloned() };
        }
        served
    }

    /// Remove every rule of the proxy (the node is going away).
    pub fn cleanup(&mut self) -> Result<()> {
        self.last = None;
        self.proxier.cleanup()
    }
}

/// Remove the proxy's rules from the calling thread's network namespace, without its state
/// (`podlab reset`, a node that crashed).
pub fn cleanup_rules(cluster_cidr: &str) -> Result<()> {
    Proxier::new(ProxyConfig { cluster_cidr: cluster_cidr.to_string(), masquerade_bit: 14 })?.cleanup()
}

fn ns_name(meta: &ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_else(|| "default".into()), meta.name.clone().unwrap_or_default())
}

fn key(meta: &ObjectMeta) -> String {
    let (ns, name) = ns_name(meta);
    format!("{ns}/{name}")
}

/// `kube-system/kube-dns`: the cluster DNS as a Service (UDP and TCP port 53 on 10.96.0.10).
fn dns_service() -> Service {
    let port = |name: &str, protocol: &str| ServicePort {
        name: Some(name.into()),
        protocol: Some(protocol.into()),
        port: i32::from(DNS_PORT),
        target_port: Some(IntOrString::Int(i32::from(DNS_PORT))),
        ..Default::default()
    };
    Service {
        metadata: ObjectMeta {
            namespace: Some(DNS_SERVICE.0.into()),
            name: Some(DNS_SERVICE.1.into()),
            labels: Some([("k8s-app".to_string(), "kube-dns".to_string())].into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(DNS_SERVICE_IP.to_string()),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Its endpoint: the node agent's DNS server on the node's pod-network address.
fn dns_endpoints(ip: Ipv4Addr) -> Endpoints {
    let port = |name: &str, protocol: &str| EndpointPort {
        name: Some(name.into()),
        protocol: Some(protocol.into()),
        port: i32::from(DNS_PORT),
        ..Default::default()
    };
    Endpoints {
        metadata: ObjectMeta {
            namespace: Some(DNS_SERVICE.0.into()),
            name: Some(DNS_SERVICE.1.into()),
            ..Default::default()
        },
        subsets: Some(vec![EndpointSubset {
            addresses: Some(vec![EndpointAddress { ip: ip.to_string(), ..Default::default() }]),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            ..Default::default()
        }]),
    }
}
