//! What stands behind each Service: the endpoints controller's job, done for one node.
//!
//! A Service with a selector is backed by the pods of its namespace whose labels match it. The
//! endpoints controller writes their IPs into an Endpoints object of the Service's name: ready
//! pods (their readiness probes pass) under `addresses`, the others under `notReadyAddresses`,
//! each with the port every Service port reaches on that pod (a named `targetPort` is looked up
//! in the pod's own container ports, so two pods may serve it on different ports). A Service
//! without a selector takes an Endpoints object written by hand. From these come the proxy's
//! service ports ([`service_ports`]) and the cluster's DNS records ([`dns_records`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerPort, EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
    ServicePort as ApiServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::proxy::dns::{self, DnsEndpoint, DnsPort, DnsRecords};
use crate::proxy::model::{self, Endpoint, ServicePortName};

/// How long a client sticks to one endpoint with `sessionAffinity: ClientIP` when the Service
/// does not say (three hours, the API server's default).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10800;

/// The label the endpoints controller puts on the Endpoints of a headless Service.
const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// What the endpoints controller needs to know about one pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `status.podIP`; None before the pod has its network.
    pub ip: Option<Ipv4Addr>,
    /// The pod's Ready condition is True.
    pub ready: bool,
    /// Being deleted (`metadata.deletionTimestamp` is set).
    pub terminating: bool,
    /// Finished for good (phase Succeeded or Failed): never an endpoint.
    pub terminal: bool,
    /// `spec.hostname` and `spec.subdomain`: a headless Service named like the subdomain gives
    /// the pod the DNS name `<hostname>.<service>.<namespace>.svc.<zone>`.
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
    /// The ports of all its containers (and of its sidecars: init containers with
    /// `restartPolicy: Always`), where named target ports are looked up.
    pub ports: Vec<ContainerPort>,
}

impl PodInfo {
    /// The facts of a pod with its status (Ready condition, podIP, phase, deletionTimestamp).
    pub fn of(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let ip = status
            .and_then(|s| s.pod_ip.as_deref().or_else(|| s.pod_ips.iter().flatten().map(|p| p.ip.as_str()).next()))
            .and_then(|ip| ip.parse().ok());
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let ports = spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .chain(sidecars)
            .flat_map(|c| c.ports.iter().flatten().cloned())
            .collect();
        let text = |v: Option<&String>| v.filter(|s| !s.is_empty()).cloned();
        PodInfo {
            namespace: namespace_of(meta).to_string(),
            name: meta.name.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            ip,
            ready,
            terminating: meta.deletion_timestamp.is_some(),
            terminal: matches!(phase, "Succeeded" | "Failed"),
            hostname: text(spec.and_then(|s| s.hostname.as_ref())),
            subdomain: text(spec.and_then(|s| s.subdomain.as_ref())),
            ports,
        }
    }
}

/// `metadata.namespace`, "default" when unset.
fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or("default")
}

/// A Service's selector, when it has one. An empty selector is none: the API server does not
/// store an empty map, so `selector: {}` reads back as no selector (it never selects every pod).
fn selector_of(spec: &ServiceSpec) -> Option<&BTreeMap<String, String>> {
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// The protocol of a port, "TCP" when unset (the API server's default).
fn protocol_of(protocol: Option<&String>) -> &str {
    protocol.map(String::as_str).filter(|p| !p.is_empty()).unwrap_or("TCP")
}

/// The port a Service port reaches on `pod`: its `targetPort` (the same as `port` when unset),
/// or, for a named one, the container port of that name and protocol. None when the pod has no
/// such port: the pod then serves nothing for this Service port, as upstream.
fn target_port(pod: &PodInfo, sp: &ApiServicePort) -> Option<u16> {
    let number = match &sp.target_port {
        None | Some(IntOrString::Int(0)) => sp.port,
        Some(IntOrString::String(name)) if name.is_empty() => sp.port,
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(name)) => {
            let protocol = protocol_of(sp.protocol.as_ref());
            let found = pod
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()) && protocol_of(p.protocol.as_ref()) == protocol)?;
            found.container_port
        }
    };
    u16::try_from(number).ok().filter(|p| *p != 0)
}

/// One address of an Endpoints object, with the ports it serves, before repacking.
struct Found {
    address: EndpointAddress,
    ready: bool,
    ports: BTreeSet<(String, i32, String)>,
}

/// The Endpoints object Kubernetes would show for `svc`: the matching pods of its namespace
/// with an IP, ready ones under `addresses` (every one with `publishNotReadyAddresses`), the
/// others under `notReadyAddresses`; pods being deleted are left out (unless
/// `publishNotReadyAddresses`), finished ones always. Addresses with the same ports share a
/// subset. None for a Service without a selector (its Endpoints are written by hand).
pub fn endpoints_of(svc: &Service, pods: &[PodInfo]) -> Option<Endpoints> {
    let spec = svc.spec.as_ref()?;
    let selector = selector_of(spec)?;
    let ns = namespace_of(&svc.metadata);
    let name = svc.metadata.name.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let ports = spec.ports.as_deref().unwrap_or_default();
    let mut found = Vec::new();
    for pod in pods.iter().filter(|p| p.namespace == ns && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))) {
        let Some(ip) = pod.ip else { continue };
        if pod.terminal || (pod.terminating && !publish) {
            continue;
        }
        let address = EndpointAddress {
            ip: ip.to_string(),
            hostname: pod.hostname.clone().filter(|_| pod.subdomain.as_deref() == Some(name.as_str())),
            node_name: None,
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                ..Default::default()
            }),
        };
        let served: BTreeSet<(String, i32, String)> = ports
            .iter()
            .filter_map(|sp| {
                let port = target_port(pod, sp)?;
                let name = sp.name.clone().unwrap_or_default();
                Some((name, i32::from(port), protocol_of(sp.protocol.as_ref()).to_string()))
            })
            .collect();
        // A pod serves the Service when it has one of its ports, or, for a headless Service
        // without ports, by being selected at all.
        if !served.is_empty() || (ports.is_empty() && headless) {
            found.push(Found { address, ready: publish || pod.ready, ports: served });
        }
    }
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if headless {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    let subsets = repack(found);
    Some(Endpoints {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns.to_string()),
            labels: (!labels.is_empty()).then_some(labels),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}

/// Group the addresses by the ports they serve: one subset per set of ports, addresses in IP
/// order (upstream's RepackSubsets).
fn repack(found: Vec<Found>) -> Vec<EndpointSubset> {
    type Addresses = (Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<BTreeSet<(String, i32, String)>, Addresses> = BTreeMap::new();
    for f in found {
        let (ready, not_ready) = groups.entry(f.ports).or_default();
        if f.ready { ready.push(f.address) } else { not_ready.push(f.address) }
    }
    let by_ip = |list: &mut Vec<EndpointAddress>| {
        list.sort_by_key(|a| a.ip.parse::<Ipv4Addr>().ok());
        list.dedup_by(|a, b| a.ip == b.ip);
    };
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            by_ip(&mut ready);
            by_ip(&mut not_ready);
            let ports: Vec<EndpointPort> = ports
                .into_iter()
                .map(|(name, port, protocol)| EndpointPort {
                    name: (!name.is_empty()).then_some(name),
                    port,
                    protocol: Some(protocol),
                    app_protocol: None,
                })
                .collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// A Service the proxy and DNS can serve: its ClusterIP (None for headless), or None when it
/// has no address yet (not allocated) or is an ExternalName (a DNS alias, not served here).
fn served_ip(svc: &Service) -> Option<Option<Ipv4Addr>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    match spec.cluster_ip.as_deref() {
        Some("None") => Some(None),
        Some(ip) if !ip.is_empty() => match ip.parse() {
            Ok(ip) => Some(Some(ip)),
            Err(_) => {
                tracing::warn!("service {}: clusterIP {ip:?} is not an IPv4 address: not served", key_of(svc));
                None
            }
        },
        _ => None,
    }
}

fn key_of(svc: &Service) -> String {
    format!("{}/{}", namespace_of(&svc.metadata), svc.metadata.name.as_deref().unwrap_or_default())
}

/// The Endpoints behind `svc`: computed from the pods for a selector, else the hand-written
/// object of the same namespace and name among `endpoints`.
fn endpoints_for(svc: &Service, pods: &[PodInfo], endpoints: &[Endpoints]) -> Option<Endpoints> {
    if svc.spec.as_ref().and_then(selector_of).is_some() {
        return endpoints_of(svc, pods);
    }
    let ns = namespace_of(&svc.metadata);
    endpoints.iter().find(|e| namespace_of(&e.metadata) == ns && e.metadata.name == svc.metadata.name).cloned()
}

/// The proxy's protocol of a port. SCTP is left out: podlab's proxy rules are TCP and UDP only
/// (kube-proxy also programs SCTP, which needs the kernel's sctp module on every node).
fn model_protocol(protocol: &str) -> Option<model::Protocol> {
    match protocol {
        "TCP" => Some(model::Protocol::Tcp),
        "UDP" => Some(model::Protocol::Udp),
        _ => None,
    }
}

/// `sessionAffinity: ClientIP`: the stickiness timeout (sessionAffinityConfig, default 3 h).
fn affinity_timeout(spec: &ServiceSpec) -> Option<u32> {
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let configured = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| *t > 0);
    Some(configured.unwrap_or(DEFAULT_AFFINITY_SECONDS))
}

/// The ready addresses of `eps` that serve the Service port `name`/`protocol`, with the port
/// each serves it on.
fn ready_endpoints(eps: Option<&Endpoints>, name: &str, protocol: &str) -> Vec<Endpoint> {
    let mut out = BTreeSet::new();
    for subset in eps.and_then(|e| e.subsets.as_ref()).into_iter().flatten() {
        let matching = subset
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or("") == name && protocol_of(p.protocol.as_ref()) == protocol);
        let Some(port) = matching.and_then(|p| u16::try_from(p.port).ok()).filter(|p| *p != 0) else { continue };
        for address in subset.addresses.iter().flatten() {
            match address.ip.parse::<Ipv4Addr>() {
                Ok(ip) => {
                    out.insert(Endpoint { ip, port });
                }
                Err(_) => tracing::warn!("endpoint address {:?} is not an IPv4 address: left out", address.ip),
            }
        }
    }
    out.into_iter().collect()
}

/// Every port of every Service (with its ClusterIP allocated, or headless), with its ready
/// endpoints, for the proxy: selector Services from `pods`, the others from the hand-written
/// `endpoints`. NodePort and LoadBalancer ports carry their node port; `sessionAffinity:
/// ClientIP` gives the affinity timeout. Sorted by service port name.
pub fn service_ports(services: &[Service], pods: &[PodInfo], endpoints: &[Endpoints]) -> Vec<model::ServicePort> {
    let mut out = Vec::new();
    for svc in services {
        let (Some(cluster_ip), Some(spec)) = (served_ip(svc), svc.spec.as_ref()) else { continue };
        let eps = endpoints_for(svc, pods, endpoints);
        let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let affinity = affinity_timeout(spec);
        for sp in spec.ports.iter().flatten() {
            let protocol_text = protocol_of(sp.protocol.as_ref());
            let (Some(protocol), Ok(port)) = (model_protocol(protocol_text), u16::try_from(sp.port)) else { continue };
            let port_name = sp.name.clone().unwrap_or_default();
            out.push(model::ServicePort {
                name: ServicePortName {
                    namespace: namespace_of(&svc.metadata).to_string(),
                    name: svc.metadata.name.clone().unwrap_or_default(),
                    port: port_name.clone(),
                    protocol,
                },
                cluster_ip,
                port,
                node_port: sp.node_port.filter(|_| node_ports).and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0),
                affinity_timeout: affinity,
                endpoints: ready_endpoints(eps.as_ref(), &port_name, protocol_text),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The cluster's DNS records: every Service (with its ClusterIP allocated, or headless: then
/// its ready endpoints, named by their hostname when the pod's subdomain is the Service) and
/// every pod with an IP. ExternalName Services get no record (no CNAME here).
pub fn dns_records(services: &[Service], pods: &[PodInfo], endpoints: &[Endpoints]) -> DnsRecords {
    let mut records = DnsRecords::default();
    for svc in services {
        let (Some(cluster_ip), Some(spec)) = (served_ip(svc), svc.spec.as_ref()) else { continue };
        let ports: Vec<DnsPort> = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|sp| {
                let protocol = match protocol_of(sp.protocol.as_ref()) {
                    "TCP" => dns::Protocol::Tcp,
                    "UDP" => dns::Protocol::Udp,
                    _ => return None, // SCTP: no SRV records (see model_protocol)
                };
                Some(DnsPort {
                    name: sp.name.clone().unwrap_or_default(),
                    protocol,
                    port: u16::try_from(sp.port).ok()?,
                })
            })
            .collect();
        let mut dns_endpoints: Vec<DnsEndpoint> = Vec::new();
        if cluster_ip.is_none() {
            let eps = endpoints_for(svc, pods, endpoints);
            for address in
                eps.iter().flat_map(|e| e.subsets.iter().flatten()).flat_map(|s| s.addresses.iter().flatten())
            {
                let Ok(ip) = address.ip.parse::<Ipv4Addr>() else { continue };
                if !dns_endpoints.iter().any(|e| e.ip == ip) {
                    let hostname = address.hostname.clone().filter(|h| !h.is_empty());
                    dns_endpoints.push(DnsEndpoint { ip, hostname });
                }
            }
        }
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        records.add_service(namespace_of(&svc.metadata), name, cluster_ip, &ports, &dns_endpoints);
    }
    for pod in pods.iter().filter(|p| !p.terminal) {
        if let Some(ip) = pod.ip {
            records.add_pod(&pod.namespace, ip);
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::dns::{Lookup, RecordType, RrData};
    use k8s_openapi::api::core::v1::{ClientIPConfig, SessionAffinityConfig};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn cport(name: &str, port: i32, protocol: Option<&str>) -> ContainerPort {
        ContainerPort {
            name: Some(name.into()),
            container_port: port,
            protocol: protocol.map(str::to_string),
            ..Default::default()
        }
    }

    fn pod(name: &str, ip: &str, app: &str, ready: bool) -> PodInfo {
        PodInfo {
            namespace: "shop".into(),
            name: name.into(),
            labels: labels(&[("app", app)]),
            ip: ip.parse().ok(),
            ready,
            ports: vec![cport("http", 8080, None)],
            ..Default::default()
        }
    }

    fn sport(name: &str, port: i32, target: Option<IntOrString>, protocol: &str) -> ApiServicePort {
        ApiServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            port,
            target_port: target,
            protocol: Some(protocol.into()),
            ..Default::default()
        }
    }

    fn service(name: &str, selector: Option<&[(&str, &str)]>, cluster_ip: &str, ports: Vec<ApiServicePort>) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("shop".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                selector: selector.map(labels),
                cluster_ip: (!cluster_ip.is_empty()).then(|| cluster_ip.to_string()),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint { ip: ip.parse().unwrap(), port }
    }

    fn ips(list: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        list.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn pod_info_of_a_pod_with_status() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "labels": {"app": "web"}, "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {
                "hostname": "web-0", "subdomain": "web", "containers": [
                    {"name": "a", "ports": [{"name": "http", "containerPort": 80}]},
                    {"name": "b", "ports": [{"containerPort": 81}]}
                ],
                "initContainers": [
                    {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                    {"name": "init", "ports": [{"name": "setup", "containerPort": 1}]}
                ]
            },
            "status": {"phase": "Running", "podIP": "10.244.0.7",
                       "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}
        }))
        .unwrap();
        let info = PodInfo::of(&pod);
        assert_eq!((info.namespace.as_str(), info.name.as_str()), ("default", "web-0"));
        assert_eq!(info.ip, Some(Ipv4Addr::new(10, 244, 0, 7)));
        assert!(info.ready && info.terminating && !info.terminal);
        assert_eq!((info.hostname.as_deref(), info.subdomain.as_deref()), (Some("web-0"), Some("web")));
        let ports: Vec<i32> = info.ports.iter().map(|p| p.container_port).collect();
        assert_eq!(ports, [80, 81, 9090], "containers and sidecars, not plain init containers");

        let bare = PodInfo::of(&Pod::default());
        assert_eq!((bare.ip, bare.ready, bare.terminating), (None, false, false));
        let mut done = pod.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(PodInfo::of(&done).terminal);
    }

    #[test]
    fn selector_and_readiness() {
        let pods = [
            pod("a", "10.244.0.3", "web", true),
            pod("b", "10.244.0.2", "web", false),
            pod("c", "10.244.0.4", "db", true),
            PodInfo { ip: None, ..pod("d", "", "web", true) },
            PodInfo { namespace: "other".into(), ..pod("e", "10.244.0.5", "web", true) },
            PodInfo { terminating: true, ..pod("f", "10.244.0.6", "web", true) },
            PodInfo { terminal: true, ..pod("g", "10.244.0.8", "web", false) },
        ];
        let svc = service(
            "web",
            Some(&[("app", "web")]),
            "10.96.1.1",
            vec![sport("", 80, Some(IntOrString::Int(8080)), "TCP")],
        );
        let e = endpoints_of(&svc, &pods).unwrap();
        assert_eq!((e.metadata.name.as_deref(), e.metadata.namespace.as_deref()), (Some("web"), Some("shop")));
        let subsets = e.subsets.unwrap();
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.244.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.244.0.2"]);
        let target = subsets[0].addresses.as_ref().unwrap()[0].target_ref.clone().unwrap();
        assert_eq!((target.kind.as_deref(), target.name.as_deref()), (Some("Pod"), Some("a")));
        let port = &subsets[0].ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port, port.protocol.as_deref()), (None, 8080, Some("TCP")));

        // publishNotReadyAddresses: every pod with an IP is ready, the terminating one too.
        let mut publish = svc.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let subsets = endpoints_of(&publish, &pods).unwrap().subsets.unwrap();
        assert_eq!(ips(&subsets[0].addresses), ["10.244.0.2", "10.244.0.3", "10.244.0.6"]);
        assert!(subsets[0].not_ready_addresses.is_none());

        // No matching pod: no subsets. No selector: no Endpoints at all.
        let none = service("x", Some(&[("app", "nope")]), "10.96.1.2", vec![sport("", 80, None, "TCP")]);
        assert_eq!(endpoints_of(&none, &pods).unwrap().subsets, None);
        assert!(endpoints_of(&service("x", None, "10.96.1.2", vec![]), &pods).is_none());
        assert!(endpoints_of(&service("x", Some(&[]), "10.96.1.2", vec![]), &pods).is_none(), "empty selector");

        let ports = service_ports(&[svc], &pods, &[]);
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].endpoints, [ep("10.244.0.3", 8080)], "ready ones only");
        assert_eq!(ports[0].name.to_string(), "shop/web");
        assert_eq!((ports[0].cluster_ip, ports[0].port), (Some(Ipv4Addr::new(10, 96, 1, 1)), 80));
    }

    #[test]
    fn named_target_ports_and_several_ports() {
        let mut alt = pod("alt", "10.244.0.9", "web", true);
        alt.ports = vec![cport("http", 9000, Some("TCP")), cport("dns", 5353, Some("UDP"))];
        let mut plain = pod("plain", "10.244.0.2", "web", true);
        plain.ports = vec![cport("dns", 5300, Some("TCP"))]; // wrong protocol for "dns"
        let pods = [pod("a", "10.244.0.3", "web", true), alt, plain];
        let svc = service(
            "web",
            Some(&[("app", "web")]),
            "10.96.1.1",
            vec![
                sport("http", 80, Some(IntOrString::String("http".into())), "TCP"),
                sport("dns", 53, Some(IntOrString::String("dns".into())), "UDP"),
                sport("raw", 81, None, "TCP"),
            ],
        );
        let subsets = endpoints_of(&svc, &pods).unwrap().subsets.unwrap();
        // Three sets of ports: {raw} (plain has no http), {http, raw} (a), {dns, http, raw} (alt).
        type Summary<'a> = Vec<(Vec<&'a str>, Vec<(String, i32)>)>;
        let summary: Summary<'_> = subsets
            .iter()
            .map(|s| {
                let ports = s.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port)).collect();
                (ips(&s.addresses), ports)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (vec!["10.244.0.9"], vec![("dns".into(), 5353), ("http".into(), 9000), ("raw".into(), 81)]),
                (vec!["10.244.0.3"], vec![("http".into(), 8080), ("raw".into(), 81)]),
                (vec!["10.244.0.2"], vec![("raw".into(), 81)]),
            ]
        );
        let ports = service_ports(&[svc], &pods, &[]);
        let by_name: BTreeMap<String, Vec<Endpoint>> =
            ports.iter().map(|p| (format!("{}/{}", p.name, p.name.protocol), p.endpoints.clone())).collect();
        assert_eq!(by_name["shop/web:dns/udp"], [ep("10.244.0.9", 5353)]);
        assert_eq!(by_name["shop/web:http/tcp"], [ep("10.244.0.3", 8080), ep("10.244.0.9", 9000)]);
        assert_eq!(by_name["shop/web:raw/tcp"], [ep("10.244.0.2", 81), ep("10.244.0.3", 81), ep("10.244.0.9", 81)]);
    }

    #[test]
    fn headless_services_and_dns() {
        let mut db0 = pod("db-0", "10.244.0.5", "db", true);
        db0.hostname = Some("db-0".into());
        db0.subdomain = Some("db".into());
        let mut other = pod("db-1", "10.244.0.6", "db", true);
        other.hostname = Some("db-1".into());
        other.subdomain = Some("elsewhere".into());
        let waiting = pod("db-2", "10.244.0.7", "db", false);
        let pods = [db0, other, waiting];
        let db = service("db", Some(&[("app", "db")]), "None", vec![sport("pg", 5432, None, "TCP")]);
        let bare = service("bare", Some(&[("app", "db")]), "None", vec![]);
        let e = endpoints_of(&db, &pods).unwrap();
        assert_eq!(e.metadata.labels.unwrap()[HEADLESS_LABEL], "");
        let subsets = e.subsets.unwrap();
        let hostnames: Vec<Option<&str>> =
            subsets[0].addresses.iter().flatten().map(|a| a.hostname.as_deref()).collect();
        assert_eq!(hostnames, [Some("db-0"), None], "a hostname only when the subdomain is the service");
        // A headless Service without ports still has its pods as endpoints (for DNS).
        let subsets = endpoints_of(&bare, &pods).unwrap().subsets.unwrap();
        assert_eq!((ips(&subsets[0].addresses), subsets[0].ports.clone()), (vec!["10.244.0.5", "10.244.0.6"], None));

        let ports = service_ports(&[db.clone(), bare.clone()], &pods, &[]);
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].cluster_ip, ports[0].endpoints.len()), (None, 2));

        let unallocated = service("new", Some(&[("app", "db")]), "", vec![sport("", 80, None, "TCP")]);
        let records = dns_records(&[db, bare, unallocated], &pods, &[]);
        let z = "cluster.local";
        let a = |name: &str| match records.answer(z, name, RecordType::A) {
            Lookup::Found { answers, .. } => answers
                .into_iter()
                .map(|r| match r.data {
                    RrData::A(ip) => ip.to_string(),
                    other => format!("{other:?}"),
                })
                .collect(),
            other => vec![format!("{other:?}")],
        };
        assert_eq!(a("db.shop.svc.cluster.local"), ["10.244.0.5", "10.244.0.6"]);
        assert_eq!(a("db-0.db.shop.svc.cluster.local"), ["10.244.0.5"]);
        assert_eq!(a("bare.shop.svc.cluster.local"), ["10.244.0.5", "10.244.0.6"]);
        assert_eq!(a("10-244-0-7.shop.pod.cluster.local"), ["10.244.0.7"]);
        assert!(matches!(records.answer(z, "new.shop.svc.cluster.local", RecordType::A), Lookup::NxDomain { .. }));
    }

    #[test]
    fn services_without_selector_take_their_endpoints_object() {
        let svc = service(
            "ext",
            None,
            "10.96.2.2",
            vec![sport("pg", 5432, None, "TCP"), sport("metrics", 9187, None, "TCP")],
        );
        let endpoints = Endpoints {
            metadata: ObjectMeta { name: Some("ext".into()), namespace: Some("shop".into()), ..Default::default() },
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![
                    EndpointAddress { ip: "192.0.2.10".into(), ..Default::default() },
                    EndpointAddress { ip: "192.0.2.11".into(), ..Default::default() },
                ]),
                not_ready_addresses: Some(vec![EndpointAddress { ip: "192.0.2.12".into(), ..Default::default() }]),
                ports: Some(vec![EndpointPort { name: Some("pg".into()), port: 15432, ..Default::default() }]),
            }]),
        };
        let elsewhere = Endpoints {
            metadata: ObjectMeta { name: Some("ext".into()), namespace: Some("other".into()), ..Default::default() },
            ..endpoints.clone()
        };
        let pods = [pod("a", "10.244.0.3", "web", true)];
        let ports = service_ports(std::slice::from_ref(&svc), &pods, &[elsewhere.clone(), endpoints]);
        let summary: Vec<(String, Vec<Endpoint>)> =
            ports.iter().map(|p| (p.name.to_string(), p.endpoints.clone())).collect();
        assert_eq!(
            summary,
            [
                ("shop/ext:metrics".to_string(), vec![]),
                ("shop/ext:pg".to_string(), vec![ep("192.0.2.10", 15432), ep("192.0.2.11", 15432)]),
            ]
        );
        // Without its Endpoints object: the ports, with no endpoints.
        let ports = service_ports(&[svc], &pods, &[elsewhere]);
        assert!(ports.iter().all(|p| p.endpoints.is_empty()) && ports.len() == 2);
    }

    #[test]
    fn node_ports_affinity_and_protocols() {
        let mut svc = service(
            "web",
            Some(&[("app", "web")]),
            "10.96.1.1",
            vec![
                sport("http", 80, Some(IntOrString::Int(8080)), "TCP"),
                sport("sig", 9, None, "SCTP"),
                sport("q", 53, None, "UDP"),
            ],
        );
        let spec = svc.spec.as_mut().unwrap();
        spec.type_ = Some("NodePort".into());
        spec.ports.as_mut().unwrap()[0].node_port = Some(30080);
        spec.session_affinity = Some("ClientIP".into());
        let ports = service_ports(&[svc.clone()], &[pod("a", "10.244.0.3", "web", true)], &[]);
        let summary: Vec<(String, Option<u16>, Option<u32>)> = ports
            .iter()
            .map(|p| (format!("{}/{}", p.name, p.name.protocol), p.node_port, p.affinity_timeout))
            .collect();
        assert_eq!(
            summary,
            [("shop/web:http/tcp".into(), Some(30080), Some(10800)), ("shop/web:q/udp".into(), None, Some(10800))],
            "SCTP left out"
        );
        let spec = svc.spec.as_mut().unwrap();
        spec.session_affinity_config =
            Some(SessionAffinityConfig { client_ip: Some(ClientIPConfig { timeout_seconds: Some(60) }) });
        spec.type_ = Some("ClusterIP".into());
        let ports = service_ports(&[svc.clone()], &[], &[]);
        assert_eq!(
            (ports[0].node_port, ports[0].affinity_timeout),
            (None, Some(60)),
            "a ClusterIP service has no node port"
        );
        svc.spec.as_mut().unwrap().session_affinity = Some("None".into());
        assert_eq!(service_ports(&[svc.clone()], &[], &[])[0].affinity_timeout, None);
        // ExternalName and services without an address yet are not served.
        svc.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(service_ports(&[svc.clone()], &[], &[]).is_empty());
        let mut new = svc.clone();
        new.spec.as_mut().unwrap().type_ = None;
        new.spec.as_mut().unwrap().cluster_ip = None;
        assert!(service_ports(&[new], &[], &[]).is_empty());
    }
}
