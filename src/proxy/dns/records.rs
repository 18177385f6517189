//! The cluster's DNS records, built from Services and Pods, and the answer to one question.
//!
//! Every Service gets `<svc>.<ns>.svc.<zone>`: an A record to its ClusterIP, or, for a headless
//! Service (no ClusterIP), one A record per ready endpoint, which also gets a name of its own
//! (`<hostname>.<svc>.<ns>.svc.<zone>`). Each named port gets an SRV record
//! `_<port>._<proto>.<svc>.<ns>.svc.<zone>` saying which host and port serve it, and the IPs
//! get PTR records back to those names. Pods get `a-b-c-d.<ns>.pod.<zone>`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub use hickory_proto::rr::RecordType;

/// The cluster domain (`<zone>` of the Kubernetes DNS specification).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The version of the Kubernetes DNS schema served (the TXT record `dns-version.<zone>`).
pub const SCHEMA_VERSION: &str = "1.0.1";

/// The transport protocol of a Service port (`_tcp` or `_udp` in SRV names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "_tcp",
            Protocol::Udp => "_udp",
        }
    }
}

/// A ready endpoint of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    pub ip: Ipv4Addr,
    /// The pod's `spec.hostname` when the pod's `spec.subdomain` is this Service.
    pub hostname: Option<String>,
}

/// A port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPort {
    /// The port's name, "" when unnamed (an unnamed port has no SRV record).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// One resource record of an answer. Names are absolute (they end with a dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub data: RrData,
}

/// The data of a record; the TTL is the server's to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RrData {
    A(Ipv4Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Ptr(String),
    Txt(String),
    Ns(String),
    /// The SOA record of the zone named by the record (the server fills in its fields).
    Soa,
}

/// What the cluster DNS says about one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// NOERROR with these records.
    Found { answers: Vec<Rr>, additional: Vec<Rr> },
    /// The name exists but has no record of that type: NOERROR, no answers, `zone`'s SOA.
    NoData { zone: String },
    /// No such name: NXDOMAIN with `zone`'s SOA.
    NxDomain { zone: String },
    /// Not a cluster name: ask the upstream servers.
    Forward,
}

/// A record as stored: owner and target names are relative to the cluster domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    A(Ipv4Addr),
    Srv { port: u16, target: String },
}

/// The records of the cluster, without the cluster domain (given to [`DnsRecords::answer`]).
#[derive(Default, Clone, Debug)]
pub struct DnsRecords {
    /// Owner name (lowercase, relative to the zone) → its records.
    names: BTreeMap<String, Vec<Stored>>,
    /// Every name that exists: the owners and all their parents inside the zone, so that
    /// `ns.svc.<zone>` is answered "no data" rather than "no such name".
    existing: BTreeSet<String>,
    /// IP → the names (relative) its PTR records point to.
    reverse: BTreeMap<Ipv4Addr, Vec<String>>,
}

impl DnsRecords {
    /// The records of Service `namespace/name`. `cluster_ip` None means headless: the A
    /// records and SRV targets are then the `endpoints` (only the ready ones belong here).
    /// Endpoints of a Service with a ClusterIP get no records of their own.
    pub fn add_service(
        &mut self,
        namespace: &str,
        name: &str,
        cluster_ip: Option<Ipv4Addr>,
        ports: &[DnsPort],
        endpoints: &[DnsEndpoint],
    ) {
        if !is_label(namespace) || !is_label(name) {
            tracing::warn!("no DNS records for service {namespace}/{name}: not a DNS label");
            return;
        }
        let service = format!("{}.{}.svc", name.to_ascii_lowercase(), namespace.to_ascii_lowercase());
        let named_ports = ports.iter().filter(|p| is_label(&p.name));
        match cluster_ip {
            Some(ip) => {
                self.add(&service, Stored::A(ip));
                for p in named_ports {
                    self.add(&srv_owner(p, &service), Stored::Srv { port: p.port, target: service.clone() });
                }
                self.add_reverse(ip, &service);
            }
            None => {
                for ep in endpoints {
                    let host = match &ep.hostname {
                        Some(h) if is_label(h) => h.to_ascii_lowercase(),
                        _ => dashed(ep.ip),
                    };
                    let host = format!("{host}.{service}");
                    self.add(&service, Stored::A(ep.ip));
                    self.add(&host, Stored::A(ep.ip));
                    for p in named_ports.clone() {
                        self.add(&srv_owner(p, &service), Stored::Srv { port: p.port, target: host.clone() });
                    }
                    self.add_reverse(ep.ip, &host);
                }
            }
        }
    }

    /// The record `a-b-c-d.<namespace>.pod.<zone>` of a pod with IP a.b.c.d.
    pub fn add_pod(&mut self, namespace: &str, ip: Ipv4Addr) {
        if !is_label(namespace) {
            tracing::warn!("no DNS record for pod {ip} in namespace {namespace:?}: not a DNS label");
            return;
        }
        self.add(&format!("{}.{}.pod", dashed(ip), namespace.to_ascii_lowercase()), Stored::A(ip));
    }

    /// The answer to the question `name` (any case, with or without the final dot) of type
    /// `qtype`, for cluster domain `domain`. Answers keep the question's spelling of `name`.
    pub fn answer(&self, domain: &str, name: &str, qtype: RecordType) -> Lookup {
        let zone = normalize(domain);
        let qname = normalize(name);
        let owner = absolute(name);
        if let Some(ip) = reverse_ip(&qname) {
            return self.answer_reverse(ip, &owner, &zone, qtype);
        }
        let Some(rel) = relative(&qname, &zone) else { return Lookup::Forward };
        let no_data = || Lookup::NoData { zone: absolute(&zone) };
        let found = |answers: Vec<Rr>| Lookup::Found { answers, additional: Vec::new() };
        match (rel, qtype) {
            ("", RecordType::SOA) => return found(vec![Rr { name: owner, data: RrData::Soa }]),
            ("", RecordType::NS) => return found(vec![Rr { name: owner, data: RrData::Ns(ns_name(&zone)) }]),
            ("", _) => return no_data(),
            ("dns-version", RecordType::TXT) => {
                return found(vec![Rr { name: owner, data: RrData::Txt(SCHEMA_VERSION.to_string()) }]);
            }
            ("dns-version", _) => return no_data(),
            _ => {}
        }
        let Some(stored) = self.names.get(rel) else {
            return match self.existing.contains(rel) {
                true => no_data(),
                false => Lookup::NxDomain { zone: absolute(&zone) },
            };
        };
        let wanted = |s: &&Stored| match s {
            Stored::A(_) => matches!(qtype, RecordType::A | RecordType::ANY),
            Stored::Srv { .. } => matches!(qtype, RecordType::SRV | RecordType::ANY),
        };
        let picked: Vec<&Stored> = stored.iter().filter(wanted).collect();
        if picked.is_empty() {
            return no_data();
        }
        let srv_count = picked.iter().filter(|s| matches!(s, Stored::Srv { .. })).count();
        let weight = (100 / srv_count.max(1)).max(1) as u16;
        let mut answers = Vec::new();
        let mut additional = Vec::new();
        let mut targets = BTreeSet::new();
        for s in picked {
            match s {
                Stored::A(ip) => answers.push(Rr { name: owner.clone(), data: RrData::A(*ip) }),
                Stored::Srv { port, target } => {
                    let data = RrData::Srv { priority: 0, weight, port: *port, target: in_zone(target, &zone) };
                    answers.push(Rr { name: owner.clone(), data });
                    if targets.insert(target) {
                        additional.extend(self.addresses(target, &zone));
                    }
                }
            }
        }
        Lookup::Found { answers, additional }
    }

    fn answer_reverse(&self, ip: Ipv4Addr, owner: &str, zone: &str, qtype: RecordType) -> Lookup {
        let Some(targets) = self.reverse.get(&ip) else { return Lookup::Forward };
        if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
            return Lookup::NoData { zone: "in-addr.arpa.".to_string() };
        }
        let answers =
            targets.iter().map(|t| Rr { name: owner.to_string(), data: RrData::Ptr(in_zone(t, zone)) }).collect();
        Lookup::Found { answers, additional: Vec::new() }
    }

    /// The A records of a relative name, as absolute records (for the additional section).
    fn addresses(&self, rel: &str, zone: &str) -> Vec<Rr> {
        let name = in_zone(rel, zone);
        let stored = self.names.get(rel).map(Vec::as_slice).unwrap_or_default();
        stored
            .iter()
            .filter_map(|s| match s {
                Stored::A(ip) => Some(Rr { name: name.clone(), data: RrData::A(*ip) }),
                Stored::Srv { .. } => None,
            })
            .collect()
    }

    fn add(&mut self, owner: &str, record: Stored) {
        let records = self.names.entry(owner.to_string()).or_default();
        if !records.contains(&record) {
            records.push(record);
        }
        let mut name = owner;
        loop {
            self.existing.insert(name.to_string());
            match name.split_once('.') {
                Some((_, parent)) => name = parent,
                None => break,
            }
        }
    }

    fn add_reverse(&mut self, ip: Ipv4Addr, target: &str) {
        let targets = self.reverse.entry(ip).or_default();
        if !targets.iter().any(|t| t == target) {
            targets.push(target.to_string());
        }
    }
}

/// `_<port>._<proto>.<service>`.
fn srv_owner(port: &DnsPort, service: &str) -> String {
    format!("_{}.{}.{service}", port.name.to_ascii_lowercase(), port.protocol.label())
}

/// `1-2-3-4` for 1.2.3.4: the name of a pod, and of an endpoint without a hostname.
fn dashed(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a}-{b}-{c}-{d}")
}

/// A DNS label: 1 to 63 letters, digits, '-' or '_' (no dot).
fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lowercase, without the final dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The name with one final dot.
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// `rel.<zone>.`
fn in_zone(rel: &str, zone: &str) -> String {
    format!("{rel}.{zone}.")
}

/// `ns.dns.<zone>.`, the name CoreDNS gives the cluster's name server.
pub(super) fn ns_name(zone: &str) -> String {
    in_zone("ns.dns", zone.trim_end_matches('.'))
}

/// The part of `name` before `.zone` ("" for the zone itself); None outside the zone.
fn relative<'a>(name: &'a str, zone: &str) -> Option<&'a str> {
    if name == zone {
        return Some("");
    }
    name.strip_suffix(zone)?.strip_suffix('.').filter(|rel| !rel.is_empty())
}

/// The IP of `d.c.b.a.in-addr.arpa` (lowercase, no final dot).
fn reverse_ip(name: &str) -> Option<Ipv4Addr> {
    let digits = name.strip_suffix(".in-addr.arpa")?;
    // Plain decimal octets only: no "+1", no "010".
    let plain = |o: &str| o.bytes().all(|b| b.is_ascii_digit()) && (o == "0" || !o.starts_with('0'));
    let octets: Vec<u8> = digits.split('.').filter(|o| plain(o)).filter_map(|o| o.parse().ok()).collect();
    match octets[..] {
        [d, c, b, a] if digits.split('.').count() == 4 => Some(Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Z: &str = "cluster.local";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn port(name: &str, protocol: Protocol, port: u16) -> DnsPort {
        DnsPort { name: name.to_string(), protocol, port }
    }

    fn ep(addr: &str, hostname: Option<&str>) -> DnsEndpoint {
        DnsEndpoint { ip: ip(addr), hostname: hostname.map(str::to_string) }
    }

    fn a(name: &str, addr: &str) -> Rr {
        Rr { name: name.to_string(), data: RrData::A(ip(addr)) }
    }

    fn srv(name: &str, weight: u16, port: u16, target: &str) -> Rr {
        Rr { name: name.to_string(), data: RrData::Srv { priority: 0, weight, port, target: target.to_string() } }
    }

    fn nxdomain() -> Lookup {
        Lookup::NxDomain { zone: "cluster.local.".to_string() }
    }

    fn nodata() -> Lookup {
        Lookup::NoData { zone: "cluster.local.".to_string() }
    }

    /// web (ClusterIP 10.96.0.10, ports http/tcp 80, dns/udp 53, unnamed 8080), db (headless,
    /// endpoints db-0 10.244.1.5 and 10.244.1.6 without hostname), empty (headless, no
    /// endpoints), and a pod 10.244.1.7 in namespace "shop".
    fn cluster() -> DnsRecords {
        let mut r = DnsRecords::default();
        let ports = [port("http", Protocol::Tcp, 80), port("dns", Protocol::Udp, 53), port("", Protocol::Tcp, 8080)];
        r.add_service("shop", "web", Some(ip("10.96.0.10")), &ports, &[ep("10.244.1.9", Some("ignored"))]);
        let db_ports = [port("pg", Protocol::Tcp, 5432)];
        r.add_service("shop", "db", None, &db_ports, &[ep("10.244.1.5", Some("db-0")), ep("10.244.1.6", None)]);
        r.add_service("shop", "empty", None, &db_ports, &[]);
        r.add_pod("shop", ip("10.244.1.7"));
        r
    }

    fn found(answers: Vec<Rr>, additional: Vec<Rr>) -> Lookup {
        Lookup::Found { answers, additional }
    }

    #[test]
    fn service_a_is_the_cluster_ip_in_any_case() {
        let r = cluster();
        let q = "web.shop.svc.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.96.0.10")], vec![]));
        let q = "WeB.Shop.SVC.Cluster.Local";
        assert_eq!(
            r.answer("Cluster.Local.", q, RecordType::A),
            found(vec![a("WeB.Shop.SVC.Cluster.Local.", "10.96.0.10")], vec![])
        );
        // Endpoints of a ClusterIP service have no names of their own.
        assert_eq!(r.answer(Z, "ignored.web.shop.svc.cluster.local", RecordType::A), nxdomain());
    }

    #[test]
    fn headless_service_a_is_every_ready_endpoint() {
        let r = cluster();
        let q = "db.shop.svc.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.244.1.5"), a(q, "10.244.1.6")], vec![]));
        // No ready endpoints: NXDOMAIN, as the specification says, for every type.
        assert_eq!(r.answer(Z, "empty.shop.svc.cluster.local", RecordType::A), nxdomain());
        assert_eq!(r.answer(Z, "_pg._tcp.empty.shop.svc.cluster.local", RecordType::SRV), nxdomain());
    }

    #[test]
    fn endpoint_names_of_a_headless_service() {
        let r = cluster();
        let q = "db-0.db.shop.svc.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.244.1.5")], vec![]));
        // Without a hostname the endpoint is named after its IP.
        let q = "10-244-1-6.db.shop.svc.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.244.1.6")], vec![]));
        assert_eq!(r.answer(Z, "db-1.db.shop.svc.cluster.local", RecordType::A), nxdomain());
    }

    #[test]
    fn srv_of_a_cluster_ip_service_points_at_the_service() {
        let r = cluster();
        let q = "_http._tcp.web.shop.svc.cluster.local.";
        let target = "web.shop.svc.cluster.local.";
        assert_eq!(
            r.answer(Z, q, RecordType::SRV),
            found(vec![srv(q, 100, 80, target)], vec![a(target, "10.96.0.10")])
        );
        let q = "_dns._udp.web.shop.svc.cluster.local.";
        assert_eq!(
            r.answer(Z, q, RecordType::SRV),
            found(vec![srv(q, 100, 53, target)], vec![a(target, "10.96.0.10")])
        );
        // Wrong protocol, unknown port: no such name. The _tcp level exists (no data).
        assert_eq!(r.answer(Z, "_http._udp.web.shop.svc.cluster.local", RecordType::SRV), nxdomain());
        assert_eq!(r.answer(Z, "_x._tcp.web.shop.svc.cluster.local", RecordType::SRV), nxdomain());
        assert_eq!(r.answer(Z, "_tcp.web.shop.svc.cluster.local", RecordType::SRV), nodata());
        // A at an SRV name: no data.
        assert_eq!(r.answer(Z, "_http._tcp.web.shop.svc.cluster.local", RecordType::A), nodata());
    }

    #[test]
    fn srv_of_a_headless_service_has_one_record_per_endpoint() {
        let r = cluster();
        let q = "_pg._tcp.db.shop.svc.cluster.local.";
        let (t0, t1) = ("db-0.db.shop.svc.cluster.local.", "10-244-1-6.db.shop.svc.cluster.local.");
        assert_eq!(
            r.answer(Z, q, RecordType::SRV),
            found(vec![srv(q, 50, 5432, t0), srv(q, 50, 5432, t1)], vec![a(t0, "10.244.1.5"), a(t1, "10.244.1.6")])
        );
    }

    #[test]
    fn pod_a_records() {
        let r = cluster();
        let q = "10-244-1-7.shop.pod.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.244.1.7")], vec![]));
        // Only pods that exist, in their own namespace.
        assert_eq!(r.answer(Z, "10-244-1-7.other.pod.cluster.local", RecordType::A), nxdomain());
        assert_eq!(r.answer(Z, "10-244-1-8.shop.pod.cluster.local", RecordType::A), nxdomain());
    }

    #[test]
    fn ptr_records_for_cluster_ips_and_headless_endpoints() {
        let r = cluster();
        let ptr = |name: &str, target: &str| Rr { name: name.to_string(), data: RrData::Ptr(target.to_string()) };
        let q = "10.0.96.10.in-addr.arpa.";
        assert_eq!(r.answer(Z, q, RecordType::PTR), found(vec![ptr(q, "web.shop.svc.cluster.local.")], vec![]));
        let q = "5.1.244.10.IN-ADDR.ARPA";
        assert_eq!(
            r.answer(Z, q, RecordType::PTR),
            found(vec![ptr("5.1.244.10.IN-ADDR.ARPA.", "db-0.db.shop.svc.cluster.local.")], vec![])
        );
        let q = "6.1.244.10.in-addr.arpa.";
        assert_eq!(
            r.answer(Z, q, RecordType::PTR),
            found(vec![ptr(q, "10-244-1-6.db.shop.svc.cluster.local.")], vec![])
        );
        assert_eq!(
            r.answer(Z, "10.0.96.10.in-addr.arpa", RecordType::A),
            Lookup::NoData { zone: "in-addr.arpa.".to_string() }
        );
        // IPs that are not ours, and partial or odd reverse names, go upstream.
        assert_eq!(r.answer(Z, "1.0.0.127.in-addr.arpa", RecordType::PTR), Lookup::Forward);
        assert_eq!(r.answer(Z, "0.96.10.in-addr.arpa", RecordType::PTR), Lookup::Forward);
        assert_eq!(r.answer(Z, "010.0.96.10.in-addr.arpa", RecordType::PTR), Lookup::Forward);
        assert_eq!(r.answer(Z, "+10.0.96.10.in-addr.arpa", RecordType::PTR), Lookup::Forward);
    }

    #[test]
    fn aaaa_and_other_types_of_known_names_are_no_data() {
        let r = cluster();
        for q in ["web.shop.svc.cluster.local", "db.shop.svc.cluster.local", "10-244-1-7.shop.pod.cluster.local"] {
            assert_eq!(r.answer(Z, q, RecordType::AAAA), nodata(), "{q}");
            assert_eq!(r.answer(Z, q, RecordType::MX), nodata(), "{q}");
        }
        // Names that exist only as parents of others.
        for q in ["svc.cluster.local", "shop.svc.cluster.local", "pod.cluster.local", "shop.pod.cluster.local"] {
            assert_eq!(r.answer(Z, q, RecordType::A), nodata(), "{q}");
        }
    }

    #[test]
    fn unknown_cluster_names_are_nxdomain() {
        let r = cluster();
        for q in [
            "nope.shop.svc.cluster.local",
            "web.other.svc.cluster.local",
            "x.cluster.local",
            "a.b.web.shop.svc.cluster.local",
        ] {
            assert_eq!(r.answer(Z, q, RecordType::A), nxdomain(), "{q}");
        }
        assert_eq!(DnsRecords::default().answer(Z, "svc.cluster.local", RecordType::A), nxdomain());
    }

    #[test]
    fn zone_apex_and_schema_version() {
        let r = DnsRecords::default();
        let soa = Rr { name: "cluster.local.".to_string(), data: RrData::Soa };
        assert_eq!(r.answer(Z, "cluster.local", RecordType::SOA), found(vec![soa], vec![]));
        let ns = Rr { name: "cluster.local.".to_string(), data: RrData::Ns("ns.dns.cluster.local.".to_string()) };
        assert_eq!(r.answer(Z, "cluster.local.", RecordType::NS), found(vec![ns], vec![]));
        assert_eq!(r.answer(Z, "cluster.local.", RecordType::A), nodata());
        let q = "dns-version.cluster.local.";
        let txt = Rr { name: q.to_string(), data: RrData::Txt("1.0.1".to_string()) };
        assert_eq!(r.answer(Z, q, RecordType::TXT), found(vec![txt], vec![]));
        assert_eq!(r.answer(Z, q, RecordType::A), nodata());
    }

    #[test]
    fn other_names_are_forwarded() {
        let r = cluster();
        for q in ["example.com.", "cluster.local.example.com", "xcluster.local", "local", "."] {
            assert_eq!(r.answer(Z, q, RecordType::A), Lookup::Forward, "{q}");
        }
        // Another cluster domain.
        assert_eq!(r.answer("k8s.test", "web.shop.svc.cluster.local", RecordType::A), Lookup::Forward);
        let q = "web.shop.svc.k8s.test.";
        assert_eq!(r.answer("k8s.test", q, RecordType::A), found(vec![a(q, "10.96.0.10")], vec![]));
    }

    #[test]
    fn bad_names_make_no_records_and_duplicates_one() {
        let mut r = DnsRecords::default();
        r.add_service("a.b", "web", Some(ip("10.96.0.1")), &[], &[]);
        r.add_service("ns", "", Some(ip("10.96.0.2")), &[], &[]);
        r.add_pod("", ip("10.244.0.1"));
        assert!(r.names.is_empty() && r.reverse.is_empty());
        let eps = [ep("10.244.0.2", Some("bad.host")), ep("10.244.0.2", Some("bad.host"))];
        r.add_service("ns", "h", None, &[], &eps);
        let q = "h.ns.svc.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.244.0.2")], vec![]));
        let q = "10-244-0-2.h.ns.svc.cluster.local.";
        assert_eq!(r.answer(Z, q, RecordType::A), found(vec![a(q, "10.244.0.2")], vec![]));
    }
}
