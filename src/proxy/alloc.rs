//! Service addresses: the ClusterIP and the NodePorts of each Service, handed out like the API
//! server's allocators do.
//!
//! A ClusterIP is a virtual address: no interface holds it, the proxy's iptables rules catch the
//! packets sent to it. Each Service gets one from the service range (kubeadm's 10.96.0.0/12), and
//! each port of a NodePort Service a port from 30000-32767 that every node opens. A value is
//! picked at random, first from the upper part of the range: the lower part (the first 256
//! addresses, the first 86 ports) is kept for values people write down, such as 10.96.0.10 for
//! the cluster DNS. Allocations live in one JSON file changed under `flock`, so two processes
//! never hand out one value, and a Service keeps its values for as long as it exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use nix::fcntl::FlockArg;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::pod::ipam::lock_file;
use crate::pod::status::write_atomic;

/// The service range (the API server's --service-cluster-ip-range, as kubeadm sets it).
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The cluster DNS Service's address (kube-system/kube-dns, as kubeadm picks it): the tenth
/// address of the range. Never handed out to another Service.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The ports a NodePort Service may get (the API server's --service-node-port-range).
pub const NODE_PORT_RANGE: RangeInclusive<u16> = 30000..=32767;

/// The API server's own Service (default/kubernetes) has the first address of the range.
const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
/// Addresses kept for one Service each, whether or not it exists yet.
const RESERVED: [(Ipv4Addr, &str); 2] =
    [(KUBERNETES_SERVICE_IP, "default/kubernetes"), (DNS_SERVICE_IP, "kube-system/kube-dns")];
/// 10.96.0.0/12 as a number and a prefix length.
const NETWORK: u32 = 0x0a60_0000;
const PREFIX: u32 = 12;
/// The static bands: values at the start of a range are only handed out at random once the
/// rest is full (upstream: range size / 16 within 16..=256 addresses, size / 32 within 16..=128
/// ports).
const STATIC_IPS: u32 = 256;
const STATIC_PORTS: u32 = 86;

/// The allocations file and its lock, in the allocator's directory.
const STATE_FILE: &str = "services.json";
const LOCK_FILE: &str = "services.lock";

/// The values one Service holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Held {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster_ip: Option<Ipv4Addr>,
    /// Port name ("" for a single unnamed port) → node port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    node_ports: BTreeMap<String, u16>,
}

/// The allocations file: "namespace/name" → what that Service holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    services: BTreeMap<String, Held>,
}

/// The ClusterIP and NodePort allocator of a cluster, stored in a directory.
#[derive(Debug, Clone)]
pub struct Allocator {
    dir: PathBuf,
}

impl Allocator {
    /// The allocator whose state lives in `dir/services.json` (the directory is made if missing).
    pub fn open(dir: &Path) -> Result<Allocator> {
        std::fs::create_dir_all(dir).ctx("create directory", dir)?;
        Ok(Allocator { dir: dir.to_path_buf() })
    }

    /// Fill in `spec.clusterIP`/`clusterIPs` and the `nodePort` of each port of a NodePort or
    /// LoadBalancer Service, as the API server does on create. Values the manifest asks for are
    /// kept when they are in range and free ([`Error::Invalid`] naming the Service that holds
    /// them otherwise); the same Service (namespace/name) asked again gets the same values;
    /// `clusterIP: None` stays headless (and gives up an address it held); an ExternalName
    /// Service gets nothing. Ports with the same number (53/TCP and 53/UDP) share a node port.
    /// On error neither `svc` nor the stored state changes.
    pub fn assign(&self, svc: &mut Service) -> Result<()> {
        let key = key_of(svc)?;
        let Some(mut spec) = svc.spec.clone() else {
            return Err(Error::invalid(format!("service {key}: spec: required (a Service needs spec.ports)")));
        };
        let _lock = lock_file(&self.dir.join(LOCK_FILE), FlockArg::LockExclusive)?;
        let mut state = self.read()?;
        if spec.type_.as_deref() == Some("ExternalName") {
            // A DNS alias: no address, no ports.
            if state.services.remove(&key).is_some() {
                self.write(&state)?;
            }
            return Ok(());
        }
        let old = state.services.get(&key).cloned().unwrap_or_default();
        let others = Others::of(&state, &key);
        let cluster_ip = assign_cluster_ip(&mut spec, &key, old.cluster_ip, &others)?;
        let node_ports = assign_node_ports(&mut spec, &key, &old.node_ports, &others)?;
        state.services.insert(key, Held { cluster_ip, node_ports });
        self.write(&state)?;
        svc.spec = Some(spec);
        Ok(())
    }

    /// Forget every Service not in `keep` (namespace, name): their values become free.
    pub fn retain(&self, keep: &[(String, String)]) -> Result<()> {
        let keep: HashSet<String> = keep.iter().map(|(ns, name)| format!("{ns}/{name}")).collect();
        let _lock = lock_file(&self.dir.join(LOCK_FILE), FlockArg::LockExclusive)?;
        let mut state = self.read()?;
        let before = state.services.len();
        state.services.retain(|key, _| keep.contains(key));
        if state.services.len() != before {
            self.write(&state)?;
        }
        Ok(())
    }

    fn read(&self) -> Result<State> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(format!(
                "{}: {e}: the Service allocations cannot be read (remove the file to start afresh: \
                 every Service then gets a new ClusterIP)",
                path.display()
            ))
        })
    }

    fn write(&self, state: &State) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
        write_atomic(&path, &bytes)
    }
}

/// "namespace/name" of a Service (namespace "default" when unset).
fn key_of(svc: &Service) -> Result<String> {
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(Error::invalid("service: metadata.name: required"));
    }
    let ns = svc.metadata.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or("default");
    Ok(format!("{ns}/{name}"))
}

/// What the other Services hold: value → holder.
struct Others<'a> {
    ips: HashMap<Ipv4Addr, &'a str>,
    ports: HashMap<u16, &'a str>,
}

impl<'a> Others<'a> {
    fn of(state: &'a State, key: &str) -> Others<'a> {
        let mut others = Others { ips: HashMap::new(), ports: HashMap::new() };
        for (holder, held) in state.services.iter().filter(|(k, _)| *k != key) {
            if let Some(ip) = held.cluster_ip {
                others.ips.insert(ip, holder);
            }
            for port in held.node_ports.values() {
                others.ports.insert(*port, holder);
            }
        }
        others
    }

    /// Who else has `ip`: a Service that holds it, or the one it is reserved for.
    fn ip_holder(&self, ip: Ipv4Addr, key: &str) -> Option<String> {
        if let Some(holder) = self.ips.get(&ip) {
            return Some(format!("service {holder}"));
        }
        RESERVED
            .iter()
            .find(|(r, owner)| *r == ip && *owner != key)
            .map(|(_, owner)| format!("reserved for service {owner}"))
    }
}

/// What `spec` asks for: headless, one address, or any.
enum Wanted {
    Headless,
    Ip(Ipv4Addr),
    Any,
}

fn wanted_cluster_ip(spec: &ServiceSpec, key: &str) -> Result<Wanted> {
    let bad = |path: &str, value: &str, why: &str| {
        Error::invalid(format!("service {key}: {path}: invalid value {value:?}: {why}"))
    };
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if ips.len() > 1 {
        return Err(bad("spec.clusterIPs", &ips.join(","), "podlab has IPv4 only: give at most one address"));
    }
    let text = match (spec.cluster_ip.as_deref().filter(|s| !s.is_empty()), ips.first()) {
        (Some(ip), Some(first)) if ip != first => {
            return Err(bad("spec.clusterIPs[0]", first, &format!("must match spec.clusterIP ({ip:?})")));
        }
        (Some(ip), _) => ip,
        (None, Some(first)) if !first.is_empty() => first.as_str(),
        _ => return Ok(Wanted::Any),
    };
    if text == "None" {
        return Ok(Wanted::Headless);
    }
    match text.parse::<Ipv4Addr>() {
        Ok(ip) => Ok(Wanted::Ip(ip)),
        Err(_) => Err(bad("spec.clusterIP", text, "must be an IPv4 address such as 10.96.0.20, or None")),
    }
}

/// Whether `ip` can be a ClusterIP: inside the range, not its network or broadcast address.
fn in_service_range(ip: Ipv4Addr) -> bool {
    let (first, last) = ip_bounds();
    (first..=last).contains(&u32::from(ip))
}

/// The first and last address a Service can get.
fn ip_bounds() -> (u32, u32) {
    (NETWORK + 1, (NETWORK | (u32::MAX >> PREFIX)) - 1)
}

/// The ClusterIP of the Service `key`, written into `spec`.
fn assign_cluster_ip(
    spec: &mut ServiceSpec,
    key: &str,
    old: Option<Ipv4Addr>,
    others: &Others<'_>,
) -> Result<Option<Ipv4Addr>> {
    let ip = match wanted_cluster_ip(spec, key)? {
        Wanted::Headless => {
            spec.cluster_ip = Some("None".to_string());
            spec.cluster_ips = Some(vec!["None".to_string()]);
            return Ok(None);
        }
        Wanted::Ip(ip) => {
            if !in_service_range(ip) {
                return Err(Error::invalid(format!(
                    "service {key}: spec.clusterIP: invalid value \"{ip}\": provided IP is not in the valid range. \
                     The range of valid IPs is {SERVICE_CIDR}"
                )));
            }
            if let Some(holder) = others.ip_holder(ip, key) {
                return Err(Error::invalid(format!(
                    "service {key}: spec.clusterIP: invalid value \"{ip}\": provided IP is already allocated \
                     ({holder}): leave clusterIP out to get a free one"
                )));
            }
            ip
        }
        Wanted::Any => {
            let usable = |ip: Ipv4Addr| in_service_range(ip) && others.ip_holder(ip, key).is_none();
            let reserved = RESERVED.iter().find(|(_, owner)| *owner == key).map(|(ip, _)| *ip);
            match old.or(reserved).filter(|ip| usable(*ip)) {
                Some(ip) => ip,
                None => {
                    let (first, last) = ip_bounds();
                    let taken = |n: u32| !usable(Ipv4Addr::from(n));
                    let n = pick(first, last, STATIC_IPS, taken).ok_or_else(|| {
                        Error::invalid(format!(
                            "service {key}: no free ClusterIP in {SERVICE_CIDR}: delete Services that are not needed"
                        ))
                    })?;
                    Ipv4Addr::from(n)
                }
            }
        }
    };
    spec.cluster_ip = Some(ip.to_string());
    spec.cluster_ips = Some(vec![ip.to_string()]);
    if spec.ip_families.is_none() {
        spec.ip_families = Some(vec!["IPv4".to_string()]);
    }
    if spec.ip_family_policy.is_none() {
        spec.ip_family_policy = Some("SingleStack".to_string());
    }
    Ok(Some(ip))
}

/// The node ports of the Service `key`, written into `spec.ports`; port name → node port.
fn assign_node_ports(
    spec: &mut ServiceSpec,
    key: &str,
    old: &BTreeMap<String, u16>,
    others: &Others<'_>,
) -> Result<BTreeMap<String, u16>> {
    let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
    if !matches!(service_type, "NodePort" | "LoadBalancer") {
        return Ok(BTreeMap::new());
    }
    let allocate = service_type == "NodePort" || spec.allocate_load_balancer_node_ports != Some(false);
    let ports = spec.ports.get_or_insert_with(Vec::new);
    // The ports asked for, checked first so that none is given to a port that asks for nothing.
    let mut used: HashSet<u16> = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let Some(asked) = port.node_port.filter(|n| *n != 0) else { continue };
        let path = format!("service {key}: spec.ports[{i}].nodePort: invalid value {asked}");
        let range = format!("{}-{}", NODE_PORT_RANGE.start(), NODE_PORT_RANGE.end());
        let asked = u16::try_from(asked).ok().filter(|p| NODE_PORT_RANGE.contains(p)).ok_or_else(|| {
            Error::invalid(format!(
                "{path}: provided port is not in the valid range. The range of valid ports is {range}"
            ))
        })?;
        if let Some(holder) = others.ports.get(&asked) {
            return Err(Error::invalid(format!(
                "{path}: provided port is already allocated (service {holder}): leave nodePort out to get a free one"
            )));
        }
        used.insert(asked);
    }
    // Ports with the same number share one node port (upstream: 53/TCP and 53/UDP of a DNS server).
    let mut by_number: HashMap<i32, u16> = HashMap::new();
    let mut held = BTreeMap::new();
    let numbers: Vec<(i32, Option<u16>)> =
        ports.iter().map(|p| (p.port, p.node_port.filter(|n| *n != 0).and_then(|n| u16::try_from(n).ok()))).collect();
    for port in ports.iter_mut() {
        let name = port.name.clone().unwrap_or_default();
        let asked = port.node_port.filter(|n| *n != 0).and_then(|n| u16::try_from(n).ok());
        let node_port = match asked {
            Some(asked) => asked,
            None if !allocate => continue,
            None => match by_number.get(&port.port).copied() {
                Some(shared) => shared,
                None => {
                    let sibling = numbers.iter().find(|(n, asked)| *n == port.port && asked.is_some());
                    let previous = old
                        .get(&name)
                        .copied()
                        .filter(|p| NODE_PORT_RANGE.contains(p) && !others.ports.contains_key(p) && !used.contains(p));
                    match sibling.and_then(|(_, asked)| *asked).or(previous) {
                        Some(p) => p,
                        None => free_node_port(key, others, &used)?,
                    }
                }
            },
        };
        by_number.entry(port.port).or_insert(node_port);
        used.insert(node_port);
        port.node_port = Some(i32::from(node_port));
        held.insert(name, node_port);
    }
    Ok(held)
}

fn free_node_port(key: &str, others: &Others<'_>, used: &HashSet<u16>) -> Result<u16> {
    let (first, last) = (u32::from(*NODE_PORT_RANGE.start()), u32::from(*NODE_PORT_RANGE.end()));
    let taken = |n: u32| u16::try_from(n).ok().is_none_or(|p| others.ports.contains_key(&p) || used.contains(&p));
    pick(first, last, STATIC_PORTS, taken).and_then(|n| u16::try_from(n).ok()).ok_or_else(|| {
        Error::invalid(format!(
            "service {key}: no free node port in {}-{}: delete NodePort Services that are not needed",
            NODE_PORT_RANGE.start(),
            NODE_PORT_RANGE.end()
        ))
    })
}

/// A free value in `first..=last`: from a random start, the first one not `taken`, looking in
/// the dynamic band (after the first `static_len` values) before the static band.
fn pick(first: u32, last: u32, static_len: u32, taken: impl Fn(u32) -> bool) -> Option<u32> {
    let split = first.saturating_add(static_len).min(last);
    for (lo, hi) in [(split, last), (first, split.saturating_sub(1))] {
        if hi < lo {
            continue;
        }
        let size = hi - lo + 1;
        let start = random_u32() % size;
        if let Some(n) = (0..size).map(|i| lo + (start + i) % size).find(|n| !taken(*n)) {
            return Some(n);
        }
    }
    None
}

/// A random number from the kernel (getrandom), or from the clock if that fails.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if crate::primitives::random::fill(&mut b) {
        return u32::from_ne_bytes(b);
    }
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    t.subsec_nanos() ^ std::process::id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use k8s_openapi::api::core::v1::ServicePort;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A fresh directory under the system's temp dir, removed on drop.
    fn temp_dir(name: &str) -> TempDir {
        TempDir::new("alloc", name)
    }

    fn port(name: &str, number: i32, protocol: &str, node_port: Option<i32>) -> ServicePort {
        ServicePort {
            name: (!name.is_empty()).then(|| name.to_string()),
            port: number,
            protocol: Some(protocol.to_string()),
            node_port,
            ..Default::default()
        }
    }

    fn service(ns: &str, name: &str, type_: &str, cluster_ip: Option<&str>, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some(ns.into()), ..Default::default() },
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                cluster_ip: cluster_ip.map(str::to_string),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ip_of(svc: &Service) -> String {
        svc.spec.as_ref().unwrap().cluster_ip.clone().unwrap()
    }

    fn node_ports(svc: &Service) -> Vec<i32> {
        svc.spec.as_ref().unwrap().ports.iter().flatten().map(|p| p.node_port.unwrap_or(0)).collect()
    }

    #[test]
    fn constants_agree() {
        assert_eq!(format!("{}/{PREFIX}", Ipv4Addr::from(NETWORK)), SERVICE_CIDR);
        let (first, last) = ip_bounds();
        assert_eq!(
            (Ipv4Addr::from(first), Ipv4Addr::from(last)),
            ("10.96.0.1".parse().unwrap(), "10.111.255.254".parse().unwrap())
        );
        assert!(in_service_range(DNS_SERVICE_IP) && in_service_range(KUBERNETES_SERVICE_IP));
        assert!(!in_service_range("10.96.0.0".parse().unwrap()) && !in_service_range("10.112.0.1".parse().unwrap()));
    }

    #[test]
    fn random_values_come_from_the_dynamic_band_and_stay() {
        let tmp = temp_dir("basic");
        let a = Allocator::open(&tmp.0).unwrap();
        let mut web = service("shop", "web", "NodePort", None, vec![port("http", 80, "TCP", None)]);
        a.assign(&mut web).unwrap();
        let ip: Ipv4Addr = ip_of(&web).parse().unwrap();
        assert!(in_service_range(ip) && u32::from(ip) >= NETWORK + 1 + STATIC_IPS, "{ip}");
        let spec = web.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ips, Some(vec![ip.to_string()]));
        assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
        let np = node_ports(&web)[0];
        assert!((30086..=32767).contains(&np), "{np}");
        // Asked again, even without the values filled in: the same ones.
        let mut again = service("shop", "web", "NodePort", None, vec![port("http", 80, "TCP", None)]);
        a.assign(&mut again).unwrap();
        assert_eq!((ip_of(&again), node_ports(&again)), (ip.to_string(), vec![np]));
        // Another service gets other values.
        let mut other = service("shop", "api", "NodePort", None, vec![port("http", 80, "TCP", None)]);
        a.assign(&mut other).unwrap();
        assert_ne!(ip_of(&other), ip.to_string());
        assert_ne!(node_ports(&other), vec![np]);
        // A reopened allocator reads the same state.
        let b = Allocator::open(&tmp.0).unwrap();
        let mut third = service("shop", "web", "NodePort", None, vec![port("http", 80, "TCP", None)]);
        b.assign(&mut third).unwrap();
        assert_eq!((ip_of(&third), node_ports(&third)), (ip.to_string(), vec![np]));
    }

    #[test]
    fn requested_values_are_checked() {
        let tmp = temp_dir("requested");
        let a = Allocator::open(&tmp.0).unwrap();
        let mut db = service("shop", "db", "NodePort", Some("10.96.5.5"), vec![port("pg", 5432, "TCP", Some(30100))]);
        a.assign(&mut db).unwrap();
        assert_eq!((ip_of(&db), node_ports(&db)), ("10.96.5.5".to_string(), vec![30100]));

        let mut thief = service("web", "db2", "ClusterIP", Some("10.96.5.5"), vec![port("", 80, "TCP", None)]);
        let err = a.assign(&mut thief).unwrap_err().to_string();
        assert!(err.contains("service web/db2: spec.clusterIP: invalid value \"10.96.5.5\": provided IP is already allocated (service shop/db)"), "{err}");
        assert_eq!(ip_of(&thief), "10.96.5.5", "unchanged on error");
        let mut thief = service("web", "db2", "NodePort", None, vec![port("", 80, "TCP", Some(30100))]);
        let err = a.assign(&mut thief).unwrap_err().to_string();
        assert!(
            err.contains(
                "spec.ports[0].nodePort: invalid value 30100: provided port is already allocated (service shop/db)"
            ),
            "{err}"
        );

        for (ip, why) in
            [("10.0.0.1", "not in the valid range"), ("10.96.0.0", "not in the valid range"), ("fd00::1", "IPv4")]
        {
            let mut s = service("web", "x", "ClusterIP", Some(ip), vec![port("", 80, "TCP", None)]);
            let err = a.assign(&mut s).unwrap_err().to_string();
            assert!(err.contains("spec.clusterIP") && err.contains(why), "{ip}: {err}");
        }
        let mut s = service("web", "x", "NodePort", None, vec![port("", 80, "TCP", Some(8080))]);
        let err = a.assign(&mut s).unwrap_err().to_string();
        assert!(err.contains("nodePort: invalid value 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"), "{err}");
        // Nothing of the failed requests was kept: x has no state.
        let state = a.read().unwrap();
        assert_eq!(state.services.keys().collect::<Vec<_>>(), ["shop/db"]);
    }

    #[test]
    fn reserved_addresses() {
        let tmp = temp_dir("reserved");
        let a = Allocator::open(&tmp.0).unwrap();
        let mut s = service("default", "mine", "ClusterIP", Some("10.96.0.10"), vec![port("", 53, "UDP", None)]);
        let err = a.assign(&mut s).unwrap_err().to_string();
        assert!(err.contains("already allocated (reserved for service kube-system/kube-dns)"), "{err}");
        let mut s = service("default", "mine", "ClusterIP", Some("10.96.0.1"), vec![port("", 443, "TCP", None)]);
        assert!(a.assign(&mut s).unwrap_err().to_string().contains("reserved for service default/kubernetes"));
        // The owners get them, asked for or not.
        let mut dns = service("kube-system", "kube-dns", "ClusterIP", None, vec![port("dns", 53, "UDP", None)]);
        a.assign(&mut dns).unwrap();
        assert_eq!(ip_of(&dns), "10.96.0.10");
        let mut k =
            service("default", "kubernetes", "ClusterIP", Some("10.96.0.1"), vec![port("https", 443, "TCP", None)]);
        a.assign(&mut k).unwrap();
        assert_eq!(ip_of(&k), "10.96.0.1");
    }

    #[test]
    fn headless_and_external_name() {
        let tmp = temp_dir("headless");
        let a = Allocator::open(&tmp.0).unwrap();
        let mut s = service("shop", "db", "ClusterIP", Some("10.96.7.7"), vec![port("", 5432, "TCP", None)]);
        a.assign(&mut s).unwrap();
        // Made headless: the address is given up, for anyone.
        let mut s = service("shop", "db", "ClusterIP", Some("None"), vec![port("", 5432, "TCP", None)]);
        a.assign(&mut s).unwrap();
        assert_eq!(s.spec.as_ref().unwrap().cluster_ips, Some(vec!["None".to_string()]));
        let mut other = service("shop", "x", "ClusterIP", Some("10.96.7.7"), vec![port("", 80, "TCP", None)]);
        a.assign(&mut other).unwrap();
        let mut ext = service("shop", "ext", "ExternalName", None, vec![]);
        a.assign(&mut ext).unwrap();
        assert_eq!(ext.spec.as_ref().unwrap().cluster_ip, None);
        let mut both = service("shop", "y", "ClusterIP", Some("10.96.7.8"), vec![port("", 80, "TCP", None)]);
        both.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.7.9".into()]);
        assert!(
            a.assign(&mut both)
                .unwrap_err()
                .to_string()
                .contains("spec.clusterIPs[0]: invalid value \"10.96.7.9\": must match spec.clusterIP")
        );
        let mut from_list = service("shop", "z", "ClusterIP", None, vec![port("", 80, "TCP", None)]);
        from_list.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.96.7.10".into()]);
        a.assign(&mut from_list).unwrap();
        assert_eq!(ip_of(&from_list), "10.96.7.10");
    }

    #[test]
    fn node_ports_by_port_number_and_name() {
        let tmp = temp_dir("ports");
        let a = Allocator::open(&tmp.0).unwrap();
        let ports =
            || vec![port("dns", 53, "UDP", None), port("dns-tcp", 53, "TCP", None), port("metrics", 9153, "TCP", None)];
        let mut s = service("kube-system", "dns", "NodePort", None, ports());
        a.assign(&mut s).unwrap();
        let got = node_ports(&s);
        assert_eq!(got[0], got[1], "53/UDP and 53/TCP share a node port");
        assert_ne!(got[0], got[2]);
        // A port asked for by its sibling is shared too.
        let mut t = service(
            "kube-system",
            "dns2",
            "NodePort",
            None,
            vec![port("dns", 53, "UDP", None), port("dns-tcp", 53, "TCP", Some(30053))],
        );
        a.assign(&mut t).unwrap();
        assert_eq!(node_ports(&t), vec![30053, 30053]);
        // Ports reordered: each keeps its own by name.
        let mut reordered = service("kube-system", "dns", "NodePort", None, ports().into_iter().rev().collect());
        a.assign(&mut reordered).unwrap();
        assert_eq!(node_ports(&reordered), vec![got[2], got[1], got[0]]);
        // Back to ClusterIP: the node ports are given up.
        let mut plain = service("kube-system", "dns", "ClusterIP", None, ports());
        a.assign(&mut plain).unwrap();
        assert_eq!(node_ports(&plain), vec![0, 0, 0]);
        assert!(a.read().unwrap().services["kube-system/dns"].node_ports.is_empty());
        // LoadBalancer without node ports: only those asked for.
        let mut lb = service(
            "shop",
            "lb",
            "LoadBalancer",
            None,
            vec![port("a", 80, "TCP", None), port("b", 81, "TCP", Some(30081))],
        );
        lb.spec.as_mut().unwrap().allocate_load_balancer_node_ports = Some(false);
        a.assign(&mut lb).unwrap();
        assert_eq!(node_ports(&lb), vec![0, 30081]);
    }

    #[test]
    fn retain_frees_what_is_gone() {
        let tmp = temp_dir("retain");
        let a = Allocator::open(&tmp.0).unwrap();
        let mut s = service("shop", "db", "NodePort", Some("10.96.9.9"), vec![port("", 5432, "TCP", Some(30200))]);
        a.assign(&mut s).unwrap();
        let mut keep = service("shop", "web", "ClusterIP", None, vec![port("", 80, "TCP", None)]);
        a.assign(&mut keep).unwrap();
        a.retain(&[("shop".to_string(), "web".to_string())]).unwrap();
        let mut other = service("other", "db", "NodePort", Some("10.96.9.9"), vec![port("", 5432, "TCP", Some(30200))]);
        a.assign(&mut other).unwrap();
        let state = a.read().unwrap();
        assert_eq!(state.services.keys().collect::<Vec<_>>(), ["other/db", "shop/web"]);
    }

    #[test]
    fn broken_state_file_is_reported() {
        let tmp = temp_dir("broken");
        let a = Allocator::open(&tmp.0).unwrap();
        std::fs::write(tmp.0.join(STATE_FILE), "{not json").unwrap();
        let mut s = service("shop", "web", "ClusterIP", None, vec![port("", 80, "TCP", None)]);
        let err = a.assign(&mut s).unwrap_err().to_string();
        assert!(err.contains("services.json") && err.contains("remove the file"), "{err}");
        let mut nameless = s.clone();
        nameless.metadata.name = None;
        assert!(a.assign(&mut nameless).unwrap_err().to_string().contains("metadata.name: required"));
    }

    #[test]
    fn pick_prefers_the_dynamic_band() {
        for _ in 0..50 {
            let n = pick(0, 99, 10, |_| false).unwrap();
            assert!((10..=99).contains(&n), "{n}");
        }
        assert_eq!(pick(0, 99, 10, |n| n != 3), Some(3), "the static band when the rest is full");
        assert_eq!(pick(0, 99, 10, |_| true), None);
        assert_eq!(pick(5, 5, 10, |_| false), Some(5));
    }
}
