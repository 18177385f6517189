//! The iptables rules of Services, in kube-proxy's layout (its "iptables" mode).
//!
//! Packets for a cluster IP enter `KUBE-SERVICES` (nat, from PREROUTING and OUTPUT), which sends
//! each service port to its own chain `KUBE-SVC-<hash>`. That chain picks an endpoint at random
//! (`-m statistic`: the first of n with probability 1/n, the next 1/(n-1)...) and jumps to the
//! endpoint's chain `KUBE-SEP-<hash>`, which DNATs to the pod. Node ports go through
//! `KUBE-NODEPORTS` and `KUBE-EXT-<hash>`. Packets that need a new source address are marked by
//! `KUBE-MARK-MASQ` and masqueraded in `KUBE-POSTROUTING`; a Service without endpoints is
//! REJECTed in the filter table so that clients get "connection refused" at once.
//!
//! Everything here is pure: rules are written exactly as `iptables-save` prints them back
//! (both backends print the same), so what is in the kernel can be compared with what should be.

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::model::{Endpoint, ProxyConfig, ServicePort, ServicePortName};
use crate::error::{Error, Result};

// Chains of both tables (kube-proxy's names).
pub const SERVICES: &str = "KUBE-SERVICES";
pub const EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
pub const NODEPORTS: &str = "KUBE-NODEPORTS";
pub const POSTROUTING: &str = "KUBE-POSTROUTING";
pub const MARK_MASQ: &str = "KUBE-MARK-MASQ";
pub const FORWARD: &str = "KUBE-FORWARD";
/// The kubelet's anti-martian chain, which kube-proxy also writes when node ports answer on
/// 127.0.0.1 (route_localnet): it drops outside packets sent to 127.0.0.0/8.
pub const FIREWALL: &str = "KUBE-FIREWALL";

/// Prefixes of the per-service chains. kube-proxy also has KUBE-SVL- (traffic policy Local) and
/// KUBE-FW- (load-balancer source ranges): podlab does not write them, but removes leftovers.
const SVC_PREFIX: &str = "KUBE-SVC-";
const EXT_PREFIX: &str = "KUBE-EXT-";
const SEP_PREFIX: &str = "KUBE-SEP-";
const SERVICE_CHAIN_PREFIXES: &[&str] = &[SVC_PREFIX, EXT_PREFIX, SEP_PREFIX, "KUBE-SVL-", "KUBE-FW-"];

/// Above this many endpoints in all, per-endpoint rules lose their comments, as kube-proxy's
/// "large cluster mode" does: the tables shrink by a third and restores get faster.
pub const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

/// What every jump from a built-in chain says, to find podlab's rules among others.
pub const JUMP_TAG: &str = "podlab: ";

/// The two tables the proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Filter,
    Nat,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Filter, Table::Nat];

    pub fn as_str(&self) -> &'static str {
        match self {
            Table::Filter => "filter",
            Table::Nat => "nat",
        }
    }
}

/// A chain and its rules, each rule as iptables-save prints it after `-A CHAIN `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub table: Table,
    pub name: String,
    pub rules: Vec<String>,
}

/// A shared chain that holds one rule per service port (KUBE-SERVICES, KUBE-NODEPORTS...), in
/// which the order of those rules does not matter: each matches its own address and port. Only
/// the chain's fixed tail (KUBE-SERVICES' jump to KUBE-NODEPORTS) must stay last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub table: Table,
    pub chain: &'static str,
    pub rule: String,
}

/// A node-wide chain of the proxy. For a dispatch chain, `rules` is only its fixed tail; the
/// service ports' rules come from [`ServiceRules::dispatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseChain {
    pub chain: Chain,
    pub dispatch: bool,
}

/// A rule in a built-in chain (PREROUTING, OUTPUT...) that leads to one of the proxy's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub table: Table,
    pub chain: &'static str,
    pub rule: String,
}

/// Everything one service port adds: its own chains (nat) and its rules in the dispatch chains.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceRules {
    /// In the order they must exist: endpoints, then the service chain, then the external one.
    pub chains: Vec<Chain>,
    pub dispatch: Vec<Dispatch>,
}

/// The settings the rules depend on, checked and in iptables' words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The cluster CIDR as iptables prints it (network address), if set.
    pub cluster_cidr: Option<String>,
    /// "0x4000".
    pub mark: String,
    /// Large cluster mode: no comments on per-endpoint rules.
    pub large: bool,
    /// The kernel accepts out-of-window TCP packets (nf_conntrack_tcp_be_liberal): then
    /// kube-proxy does not drop INVALID packets in KUBE-FORWARD.
    pub conntrack_liberal: bool,
}

impl Options {
    /// Check `config` and put it in iptables' words.
    pub fn new(config: &ProxyConfig) -> Result<Options> {
        if config.masquerade_bit > 31 {
            return Err(Error::invalid(format!(
                "masquerade bit {} is out of range: use a bit of the 32-bit packet mark, 0 to 31 (kube-proxy uses 14)",
                config.masquerade_bit
            )));
        }
        let cidr = config.cluster_cidr.trim();
        let cluster_cidr = if cidr.is_empty() { None } else { Some(network_of(cidr)?) };
        Ok(Options {
            cluster_cidr,
            mark: format!("{:#x}", 1u32 << config.masquerade_bit),
            large: false,
            conntrack_liberal: false,
        })
    }
}

/// "10.244.3.0/16" -> "10.244.0.0/16", as iptables stores and prints it.
fn network_of(cidr: &str) -> Result<String> {
    let bad =
        || Error::invalid(format!("invalid cluster CIDR {cidr:?}: write it as an IPv4 network, like 10.244.0.0/16"));
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok(format!("{}/{len}", Ipv4Addr::from(u32::from(addr) & mask)))
}

/// The first 16 characters of base32(sha256(text)): how kube-proxy names its chains (a chain
/// name may have at most 28 characters).
fn hash16(text: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(text.as_bytes());
    // 16 characters of 5 bits are the first 80 bits (10 bytes) of the digest.
    let mut bits = 0u128;
    for byte in &digest[..10] {
        bits = (bits << 8) | u128::from(*byte);
    }
    (0..16).map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize] as char).collect()
}

/// `KUBE-SVC-…` of a service port: sha256 of "ns/name:port" + "tcp" (kube-proxy's portProtoHash).
pub fn service_chain(name: &ServicePortName) -> String {
    format!("{SVC_PREFIX}{}", hash16(&format!("{name}{}", name.protocol.as_str())))
}

/// `KUBE-EXT-…`, the node-port entry of a service port (same hash as its KUBE-SVC chain).
pub fn external_chain(name: &ServicePortName) -> String {
    format!("{EXT_PREFIX}{}", hash16(&format!("{name}{}", name.protocol.as_str())))
}

/// `KUBE-SEP-…` of one endpoint: sha256 of "ns/name:port" + "tcp" + "10.244.1.2:8080".
pub fn endpoint_chain(name: &ServicePortName, endpoint: &Endpoint) -> String {
    format!("{SEP_PREFIX}{}", hash16(&format!("{name}{}{endpoint}", name.protocol.as_str())))
}

/// Whether `chain` is a per-service chain of kube-proxy's naming (podlab's to delete when stale).
pub fn is_service_chain(chain: &str) -> bool {
    SERVICE_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// The probability of picking endpoint i of n, for `-m statistic --mode random`, as iptables-save
/// prints it: the kernel keeps 1/k as a 31-bit fraction, so 1/3 reads back as 0.33333333349
/// (kube-proxy writes "%0.10f", 0.3333333333, which the kernel stores the same).
pub fn probability(k: usize) -> String {
    let scale = f64::from(0x8000_0000u32);
    let stored = (scale / k as f64).round();
    format!("{:.11}", stored / scale)
}

/// `-m comment --comment "TEXT"`, quoted as iptables-save quotes it.
fn comment(text: &str) -> String {
    format!("-m comment --comment \"{text}\"")
}

/// The masquerade mark as `--mark` and `--set-xmark` print it: "0x4000/0x4000".
fn mark_mask(opts: &Options) -> String {
    format!("{0}/{0}", opts.mark)
}

/// The node-wide chains, in the order to create them: KUBE-MARK-MASQ first (every service
/// chain jumps to it), the dispatch chains with their fixed tails.
pub fn base_chains(opts: &Options) -> Vec<BaseChain> {
    let masq = mark_mask(opts);
    let fixed = |table, name: &str, rules: Vec<String>| BaseChain {
        chain: Chain { table, name: name.to_string(), rules },
        dispatch: false,
    };
    let dispatch = |table, name: &str, rules: Vec<String>| BaseChain {
        chain: Chain { table, name: name.to_string(), rules },
        dispatch: true,
    };
    let mut forward = Vec::new();
    if !opts.conntrack_liberal {
        forward.push("-m conntrack --ctstate INVALID -j DROP".to_string());
    }
    forward.push(format!("{} -m mark --mark {masq} -j ACCEPT", comment("kubernetes forwarding rules")));
    forward.push(format!(
        "{} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        comment("kubernetes forwarding conntrack rule")
    ));
    vec![
        fixed(Table::Nat, MARK_MASQ, vec![format!("-j MARK --set-xmark {masq}")]),
        fixed(
            Table::Nat,
            POSTROUTING,
            vec![
                format!("-m mark ! --mark {masq} -j RETURN"),
                // kube-proxy writes --xor-mark 0x4000: clear the bit, so a packet that goes through
                // the stack again is not masqueraded twice.
                format!("-j MARK --set-xmark {}/0x0", opts.mark),
                format!("{} -j MASQUERADE --random-fully", comment("kubernetes service traffic requiring SNAT")),
            ],
        ),
        dispatch(Table::Nat, NODEPORTS, Vec::new()),
        dispatch(
            Table::Nat,
            SERVICES,
            vec![format!(
                "{} -m addrtype --dst-type LOCAL -j {NODEPORTS}",
                comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
            )],
        ),
        fixed(Table::Filter, FORWARD, forward),
        fixed(
            Table::Filter,
            FIREWALL,
            vec![format!(
                "! -s 127.0.0.0/8 -d 127.0.0.0/8 {} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
                comment("block incoming localnet connections")
            )],
        ),
        dispatch(Table::Filter, SERVICES, Vec::new()),
        dispatch(Table::Filter, EXTERNAL_SERVICES, Vec::new()),
    ]
}

/// The node-wide chains podlab makes, by table (they go in a cleanup).
pub fn owned_chains() -> Vec<(Table, &'static str)> {
    vec![
        (Table::Nat, MARK_MASQ),
        (Table::Nat, POSTROUTING),
        (Table::Nat, NODEPORTS),
        (Table::Nat, SERVICES),
        (Table::Filter, FORWARD),
        (Table::Filter, FIREWALL),
        (Table::Filter, SERVICES),
        (Table::Filter, EXTERNAL_SERVICES),
    ]
}

/// The rules in built-in chains that lead to the proxy's chains, in the order they should read
/// at the top of each built-in chain (kube-proxy's iptablesJumpChains, with podlab's tag).
pub fn jumps() -> Vec<Jump> {
    let new = "-m conntrack --ctstate NEW ";
    let to = |table, chain, matches: &str, what: &str, target: &str| Jump {
        table,
        chain,
        rule: format!("{matches}{} -j {target}", comment(&format!("{JUMP_TAG}{what}"))),
    };
    let external = "kubernetes externally-visible service portals";
    let portals = "kubernetes service portals";
    let localnet = "block incoming localnet connections";
    vec![
        to(Table::Filter, "INPUT", new, external, EXTERNAL_SERVICES),
        to(Table::Filter, "INPUT", "", localnet, FIREWALL),
        to(Table::Filter, "FORWARD", new, external, EXTERNAL_SERVICES),
        to(Table::Filter, "FORWARD", new, portals, SERVICES),
        to(Table::Filter, "FORWARD", "", "kubernetes forwarding rules", FORWARD),
        to(Table::Filter, "OUTPUT", new, portals, SERVICES),
        to(Table::Filter, "OUTPUT", "", localnet, FIREWALL),
        to(Table::Nat, "PREROUTING", "", portals, SERVICES),
        to(Table::Nat, "OUTPUT", "", portals, SERVICES),
        to(Table::Nat, "POSTROUTING", "", "kubernetes postrouting rules", POSTROUTING),
    ]
}

/// Whether a rule of a built-in chain is one of podlab's jumps (any version of it).
pub fn is_our_jump(rule: &str) -> bool {
    rule.contains(&format!("--comment \"{JUMP_TAG}")) && rule.contains(" -j KUBE-")
}

/// Check a service port before anything is written: its names go into comments and hashes.
pub fn validate(svc: &ServicePort) -> Result<()> {
    let name = &svc.name;
    let bad = |what: String| Err(Error::invalid(format!("service port {name}: {what}")));
    for (field, value, max) in
        [("namespace", &name.namespace, 63), ("name", &name.name, 63), ("port name", &name.port, 63)]
    {
        let ok = value.len() <= max
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok || (field != "port name" && value.is_empty()) {
            return bad(format!(
                "invalid {field} {value:?}: use 1 to {max} lowercase letters, digits, '-' or '.' (a Kubernetes name)"
            ));
        }
    }
    if svc.cluster_ip.is_some() && svc.port == 0 {
        return bad("port 0: a service port is 1 to 65535".into());
    }
    if svc.node_port == Some(0) {
        return bad("node port 0: leave it out, or use a port of the node-port range (30000-32767)".into());
    }
    if let Some(t) = svc.affinity_timeout.filter(|t| !(1..=86400).contains(t)) {
        return bad(format!("session affinity timeout {t}s: use 1 to 86400 seconds"));
    }
    if let Some(ep) = svc.endpoints.iter().find(|e| e.port == 0) {
        return bad(format!("endpoint {ep}: port 0 is not a port"));
    }
    Ok(())
}

/// The endpoints as kube-proxy orders them: without duplicates, sorted by "ip:port" text, so
/// the same set always gives the same rules.
fn ordered(endpoints: &[Endpoint]) -> Vec<(Endpoint, String)> {
    let mut list: Vec<(Endpoint, String)> = endpoints.iter().map(|e| (*e, e.to_string())).collect();
    list.sort_by(|a, b| a.1.cmp(&b.1));
    list.dedup_by(|a, b| a.0 == b.0);
    list
}

/// The rules of one service port (nothing for a headless one).
pub fn service_rules(svc: &ServicePort, opts: &Options) -> ServiceRules {
    let Some(vip) = svc.cluster_ip else { return ServiceRules::default() };
    let name = &svc.name;
    let proto = name.protocol.as_str();
    let endpoints = ordered(&svc.endpoints);
    let mut out = ServiceRules::default();
    let vip_match = format!("-d {vip}/32 -p {proto}");

    if endpoints.is_empty() {
        // No chains in nat; REJECT in filter, so that a client is told at once.
        let no_endpoints = comment(&format!("{name} has no endpoints"));
        let reject = "-j REJECT --reject-with icmp-port-unreachable";
        out.dispatch.push(Dispatch {
            table: Table::Filter,
            chain: SERVICES,
            rule: format!("{vip_match} {no_endpoints} -m {proto} --dport {} {reject}", svc.port),
        });
        if let Some(node_port) = svc.node_port {
            out.dispatch.push(Dispatch {
                table: Table::Filter,
                chain: EXTERNAL_SERVICES,
                rule: format!(
                    "-p {proto} {no_endpoints} -m addrtype --dst-type LOCAL -m {proto} --dport {node_port} {reject}"
                ),
            });
        }
        return out;
    }

    let svc_chain = service_chain(name);
    let sep_chains: Vec<String> = endpoints.iter().map(|(e, _)| endpoint_chain(name, e)).collect();
    let per_endpoint = |text: &str| if opts.large { String::new() } else { format!("{} ", comment(text)) };

    // One chain per endpoint: masquerade a pod that reaches itself through its Service
    // (hairpin: the answer must come back through the node), then DNAT.
    for ((endpoint, text), chain) in endpoints.iter().zip(&sep_chains) {
        let tag = per_endpoint(&name.to_string());
        let recent = match svc.affinity_timeout {
            Some(_) => format!("-m recent --set --name {chain} --mask 255.255.255.255 --rsource "),
            None => String::new(),
        };
        out.chains.push(Chain {
            table: Table::Nat,
            name: chain.clone(),
            rules: vec![
                format!("-s {}/32 {tag}-j {MARK_MASQ}", endpoint.ip),
                format!("-p {proto} {tag}{recent}-m {proto} -j DNAT --to-destination {text}"),
            ],
        });
    }

    // The service chain: masquerade what comes from outside the cluster, keep a client on its
    // endpoint (session affinity), else pick one at random.
    let cluster_ip = comment(&format!("{name} cluster IP"));
    let mut rules = Vec::new();
    if let Some(cidr) = &opts.cluster_cidr {
        rules.push(format!("! -s {cidr} {vip_match} {cluster_ip} -m {proto} --dport {} -j {MARK_MASQ}", svc.port));
    }
    if let Some(seconds) = svc.affinity_timeout {
        for ((_, text), chain) in endpoints.iter().zip(&sep_chains) {
            rules.push(format!(
                "{}-m recent --rcheck --seconds {seconds} --reap --name {chain} --mask 255.255.255.255 --rsource -j {chain}",
                per_endpoint(&format!("{name} -> {text}"))
            ));
        }
    }
    let n = endpoints.len();
    for (i, ((_, text), chain)) in endpoints.iter().zip(&sep_chains).enumerate() {
        let pick = if i + 1 < n {
            format!("-m statistic --mode random --probability {} ", probability(n - i))
        } else {
            String::new()
        };
        rules.push(format!("{}{pick}-j {chain}", per_endpoint(&format!("{name} -> {text}"))));
    }
    out.chains.push(Chain { table: Table::Nat, name: svc_chain.clone(), rules });
    out.dispatch.push(Dispatch {
        table: Table::Nat,
        chain: SERVICES,
        rule: format!("{vip_match} {cluster_ip} -m {proto} --dport {} -j {svc_chain}", svc.port),
    });

    // Node port: through the external chain, always masqueraded (the endpoint may be on another
    // node, and the answer must come back through this one).
    if let Some(node_port) = svc.node_port {
        let ext = external_chain(name);
        out.chains.push(Chain {
            table: Table::Nat,
            name: ext.clone(),
            rules: vec![
                format!("{} -j {MARK_MASQ}", comment(&format!("masquerade traffic for {name} external destinations"))),
                format!("-j {svc_chain}"),
            ],
        });
        out.dispatch.push(Dispatch {
            table: Table::Nat,
            chain: NODEPORTS,
            rule: format!("-p {proto} {} -m {proto} --dport {node_port} -j {ext}", comment(&name.to_string())),
        });
    }
    out
}

/// Large cluster mode, decided as kube-proxy does: by the number of endpoints of all services.
pub fn large_cluster(services: &[ServicePort]) -> bool {
    let total: usize = services.iter().filter(|s| s.cluster_ip.is_some()).map(|s| s.endpoints.len()).sum();
    total > LARGE_CLUSTER_ENDPOINTS
}

/// The whole rule set as one iptables-restore input, the way kube-proxy sends a full sync:
/// every chain declared (flushed) then filled, nothing deleted, no jumps from built-in chains.
/// Used to compare podlab's sync with a plain `iptables-restore` of the same rules.
pub fn full_restore_text(services: &[ServicePort], opts: &Options) -> String {
    let base = base_chains(opts);
    let rules: Vec<ServiceRules> = services.iter().map(|s| service_rules(s, opts)).collect();
    let mut out = String::new();
    for table in Table::ALL {
        out.push_str(&format!("*{}\n", table.as_str()));
        let own = rules.iter().flat_map(|r| &r.chains).filter(|c| c.table == table);
        let chains: Vec<&Chain> = base.iter().map(|b| &b.chain).filter(|c| c.table == table).chain(own).collect();
        for chain in &chains {
            out.push_str(&format!(":{} - [0:0]\n", chain.name));
        }
        for b in base.iter().filter(|b| b.chain.table == table) {
            // A dispatch chain: its service rules, then its tail.
            if b.dispatch {
                for d in rules.iter().flat_map(|r| &r.dispatch).filter(|d| d.table == table && d.chain == b.chain.name)
                {
                    out.push_str(&format!("-A {} {}\n", d.chain, d.rule));
                }
            }
            for rule in &b.chain.rules {
                out.push_str(&format!("-A {} {rule}\n", b.chain.name));
            }
        }
        for chain in rules.iter().flat_map(|r| &r.chains).filter(|c| c.table == table) {
            for rule in &chain.rules {
                out.push_str(&format!("-A {} {rule}\n", chain.name));
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::model::Protocol;

    fn spn(ns: &str, name: &str, port: &str) -> ServicePortName {
        ServicePortName { namespace: ns.into(), name: name.into(), port: port.into(), protocol: Protocol::Tcp }
    }

    fn ep(ip: &str, port: u16) -> Endpoint {
        Endpoint { ip: ip.parse().unwrap(), port }
    }

    fn opts() -> Options {
        Options::new(&ProxyConfig { cluster_cidr: "10.0.0.0/24".into(), masquerade_bit: 14 }).unwrap()
    }

    fn svc(name: ServicePortName, vip: &str, port: u16, endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            name,
            cluster_ip: Some(vip.parse().unwrap()),
            port,
            node_port: None,
            affinity_timeout: None,
            endpoints,
        }
    }

    #[test]
    fn chain_names_are_kube_proxys() {
        // The names in upstream's proxier_test.go for ns1/svc1:p80 and its endpoint 10.180.0.1:80.
        let name = spn("ns1", "svc1", "p80");
        assert_eq!(service_chain(&name), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(external_chain(&name), "KUBE-EXT-XPGD46QRK7WJZT7O");
        assert_eq!(endpoint_chain(&name, &ep("10.180.0.1", 80)), "KUBE-SEP-SXIVWICOYRO3J4NJ");
        assert_eq!(service_chain(&spn("ns2", "svc2", "p80")), "KUBE-SVC-GNZBNJ2PO5MGZ6GT");
        let udp = ServicePortName { protocol: Protocol::Udp, ..name.clone() };
        assert_ne!(service_chain(&udp), service_chain(&name), "the protocol is part of the hash");
        assert_eq!(name.to_string(), "ns1/svc1:p80");
        assert_eq!(spn("ns", "web", "").to_string(), "ns/web");
        assert!(is_service_chain("KUBE-SEP-SXIVWICOYRO3J4NJ") && is_service_chain("KUBE-FW-X"));
        assert!(!is_service_chain(SERVICES) && !is_service_chain(MARK_MASQ));
    }

    #[test]
    fn probabilities_read_back_as_iptables_save_prints_them() {
        assert_eq!(probability(2), "0.50000000000");
        assert_eq!(probability(3), "0.33333333349");
        assert_eq!(probability(4), "0.25000000000");
        assert_eq!(probability(5), "0.20000000019");
        assert_eq!(probability(7), "0.14285714272");
    }

    #[test]
    fn cluster_ip_service_in_kube_proxy_layout() {
        let name = spn("ns1", "svc1", "p80");
        let rules =
            service_rules(&svc(name, "10.20.30.41", 80, vec![ep("10.180.0.2", 80), ep("10.180.0.1", 80)]), &opts());
        assert_eq!(
            rules.dispatch,
            vec![Dispatch {
                table: Table::Nat,
                chain: SERVICES,
                rule: "-d 10.20.30.41/32 -p tcp -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp --dport 80 \
                       -j KUBE-SVC-XPGD46QRK7WJZT7O"
                    .into(),
            }]
        );
        let names: Vec<&str> = rules.chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[0], "KUBE-SEP-SXIVWICOYRO3J4NJ", "endpoints sorted, their chains first");
        assert_eq!(names[2], "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(
            rules.chains[0].rules,
            [
                "-s 10.180.0.1/32 -m comment --comment \"ns1/svc1:p80\" -j KUBE-MARK-MASQ",
                "-p tcp -m comment --comment \"ns1/svc1:p80\" -m tcp -j DNAT --to-destination 10.180.0.1:80",
            ]
        );
        let svc_rules = &rules.chains[2].rules;
        assert_eq!(
            svc_rules[0],
            "! -s 10.0.0.0/24 -d 10.20.30.41/32 -p tcp -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp \
             --dport 80 -j KUBE-MARK-MASQ"
        );
        assert_eq!(
            svc_rules[1],
            "-m comment --comment \"ns1/svc1:p80 -> 10.180.0.1:80\" -m statistic --mode random --probability \
             0.50000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
        assert!(svc_rules[2].starts_with("-m comment --comment \"ns1/svc1:p80 -> 10.180.0.2:80\" -j KUBE-SEP-"));
        assert_eq!(svc_rules.len(), 3);
    }

    #[test]
    fn affinity_node_port_udp_and_large_mode() {
        let name = ServicePortName { protocol: Protocol::Udp, ..spn("kube-system", "dns", "") };
        let mut port = svc(name, "10.96.0.10", 53, vec![ep("10.244.0.5", 53)]);
        port.affinity_timeout = Some(10800);
        port.node_port = Some(30053);
        let rules = service_rules(&port, &opts());
        let sep = &rules.chains[0];
        assert!(sep.rules[1].contains("-m recent --set --name KUBE-SEP-"), "{:?}", sep.rules);
        assert!(
            sep.rules[1].starts_with("-p udp ")
                && sep.rules[1].ends_with("-m udp -j DNAT --to-destination 10.244.0.5:53")
        );
        let svc_chain = &rules.chains[1];
        assert!(svc_chain.rules[1].contains(&format!(
            "-m recent --rcheck --seconds 10800 --reap --name {} --mask 255.255.255.255 --rsource -j {}",
            sep.name, sep.name
        )));
        let ext = &rules.chains[2];
        assert!(ext.name.starts_with("KUBE-EXT-") && ext.rules[1] == format!("-j {}", svc_chain.name));
        assert_eq!(
            rules.dispatch[1].rule,
            format!("-p udp -m comment --comment \"kube-system/dns\" -m udp --dport 30053 -j {}", ext.name)
        );
        let large = service_rules(&port, &Options { large: true, ..opts() });
        assert_eq!(large.chains[0].rules[0], "-s 10.244.0.5/32 -j KUBE-MARK-MASQ");
        assert!(!large.chains[1].rules[1].contains("comment"), "{:?}", large.chains[1].rules);
        assert!(large.chains[1].rules[0].contains("cluster IP"), "the masquerade rule keeps its comment");
    }

    #[test]
    fn no_endpoints_is_rejected_in_filter_and_headless_is_nothing() {
        let mut port = svc(spn("ns", "empty", "http"), "10.96.0.20", 80, vec![]);
        port.node_port = Some(30080);
        let rules = service_rules(&port, &opts());
        assert!(rules.chains.is_empty());
        assert_eq!(rules.dispatch.len(), 2);
        assert_eq!(
            rules.dispatch[0].rule,
            "-d 10.96.0.20/32 -p tcp -m comment --comment \"ns/empty:http has no endpoints\" -m tcp --dport 80 \
             -j REJECT --reject-with icmp-port-unreachable"
        );
        assert_eq!((rules.dispatch[1].table, rules.dispatch[1].chain), (Table::Filter, EXTERNAL_SERVICES));
        let headless = ServicePort { cluster_ip: None, ..port };
        assert_eq!(service_rules(&headless, &opts()), ServiceRules::default());
    }

    #[test]
    fn options_and_names_are_checked() {
        let o = Options::new(&ProxyConfig { cluster_cidr: "10.244.7.0/16".into(), masquerade_bit: 14 }).unwrap();
        assert_eq!((o.cluster_cidr.as_deref(), o.mark.as_str()), (Some("10.244.0.0/16"), "0x4000"));
        assert_eq!(
            Options::new(&ProxyConfig { cluster_cidr: "".into(), masquerade_bit: 0 }).unwrap().cluster_cidr,
            None
        );
        for bad in ["10.244.0.0", "10.244.0.0/33", "nope/8"] {
            let e = Options::new(&ProxyConfig { cluster_cidr: bad.into(), masquerade_bit: 14 }).unwrap_err();
            assert!(e.to_string().contains("invalid cluster CIDR"), "{e}");
        }
        assert!(Options::new(&ProxyConfig { cluster_cidr: "".into(), masquerade_bit: 32 }).is_err());
        let ok = svc(spn("ns", "web", "http"), "10.96.0.1", 80, vec![]);
        assert!(validate(&ok).is_ok());
        let quoted = svc(spn("ns", "we\"b", "http"), "10.96.0.1", 80, vec![]);
        assert!(validate(&quoted).unwrap_err().to_string().contains("invalid name"));
        let unnamed_ns = svc(spn("", "web", ""), "10.96.0.1", 80, vec![]);
        assert!(validate(&unnamed_ns).is_err());
        let zero = ServicePort { endpoints: vec![ep("10.1.1.1", 0)], ..ok };
        assert!(validate(&zero).unwrap_err().to_string().contains("port 0"));
    }

    #[test]
    fn base_chains_and_jumps() {
        let base = base_chains(&opts());
        let masq = &base[0].chain;
        assert_eq!((masq.name.as_str(), masq.rules[0].as_str()), (MARK_MASQ, "-j MARK --set-xmark 0x4000/0x4000"));
        let services = base.iter().find(|b| b.chain.table == Table::Nat && b.chain.name == SERVICES).unwrap();
        assert!(
            services.dispatch
                && services.chain.rules.len() == 1
                && services.chain.rules[0].ends_with("-j KUBE-NODEPORTS")
        );
        let jumps = jumps();
        assert!(jumps.iter().all(|j| is_our_jump(&j.rule)), "{jumps:?}");
        assert!(jumps.iter().any(|j| j.chain == "PREROUTING"
            && j.rule == "-m comment --comment \"podlab: kubernetes service portals\" -j KUBE-SERVICES"));
        assert!(!is_our_jump("-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"));
        assert!(!is_our_jump("-m comment --comment \"podlab node: hostPorts\" -j PODLAB-HOSTPORTS"));
    }

    #[test]
    fn full_text_declares_then_fills_every_chain() {
        let services = vec![svc(spn("ns1", "svc1", "p80"), "10.20.30.41", 80, vec![ep("10.180.0.1", 80)])];
        let text = full_restore_text(&services, &opts());
        assert!(text.starts_with("*filter\n:KUBE-FORWARD - [0:0]\n"), "{text}");
        assert!(text.contains(":KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]\n"));
        let nat = text.split("*nat\n").nth(1).unwrap();
        let services_rules: Vec<&str> = nat.lines().filter(|l| l.starts_with("-A KUBE-SERVICES ")).collect();
        assert_eq!(services_rules.len(), 2);
        assert!(services_rules[1].ends_with("-j KUBE-NODEPORTS"), "the tail stays last");
        assert!(text.ends_with("COMMIT\n"));
    }
}
