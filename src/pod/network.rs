//! The pod network: a bridge per node, a veth cable per pod, NAT at the node's edge.
//!
//! Each node has a bridge (podlab0), a virtual switch that holds the first address of the node's
//! pod CIDR: the pods' gateway. A pod gets a veth pair: `eth0` with the pod's IP in the pod's
//! network namespace, the other end (`pl` + a hash of the pod uid) plugged into the bridge, so the
//! pods of a node reach each other and the node. The node forwards (ip_forward) and masquerades
//! what leaves it; a hostPort is a DNAT rule that sends the node's port to the pod's IP and port.
//! This is what the CNI bridge, host-local and portmap plugins do for the kubelet.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::explain;
use crate::pod::ipam::{DEFAULT_CIDR, Ipam};
use crate::primitives::iptables::{self, Position};
use crate::primitives::{link, netns};

/// The node's bridge unless told otherwise.
pub const DEFAULT_BRIDGE: &str = "podlab0";
/// The nat chain that holds one DNAT rule per hostPort (like the kubelet's KUBE-HOSTPORTS).
pub const HOSTPORTS_CHAIN: &str = "PODLAB-HOSTPORTS";
/// The filter chain that lets traffic in and out of the bridge through FORWARD.
pub const FORWARD_CHAIN: &str = "PODLAB-FORWARD";
/// The cluster's DNS domain (the kubelet's --cluster-domain default).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Comments of the node's rules start with this; teardown_node removes exactly these.
const NODE_TAG: &str = "podlab node:";
/// Comments of hostPort rules: "podlab hostport pod=OWNER tcp 0.0.0.0:8080 -> 10.244.0.2:80".
const HOSTPORT_TAG: &str = "podlab hostport";
/// Held with flock in the IPAM directory while rules or the bridge change.
const LOCK: &str = "network.lock";
/// Longest pod owner (a uid is 36 characters); it goes into rule comments.
const MAX_OWNER: usize = 63;

/// The node side of the pod network: one bridge per node, in the node agent's network namespace.
/// One podlab node per network namespace (the chains are shared by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNetConfig {
    /// The bridge's name ("podlab0").
    pub bridge: String,
    /// The node's pod CIDR ("10.244.0.0/24"); its first address is the bridge's.
    pub cidr: String,
    /// Where the IP allocations (and the network lock) live.
    pub ipam_dir: PathBuf,
}

impl NodeNetConfig {
    /// The defaults (bridge podlab0, 10.244.0.0/24) with allocations in `ipam_dir`.
    pub fn new(ipam_dir: impl Into<PathBuf>) -> NodeNetConfig {
        NodeNetConfig { bridge: DEFAULT_BRIDGE.into(), cidr: DEFAULT_CIDR.into(), ipam_dir: ipam_dir.into() }
    }

    fn ipam(&self) -> Result<Ipam> {
        Ipam::open(&self.ipam_dir, &self.cidr)
    }
}

/// One `ports[].hostPort` of a pod's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPort {
    pub host_port: u16,
    pub container_port: u16,
    /// "TCP", "UDP" or "SCTP".
    pub protocol: String,
    /// Only this node address (`hostIP`); None: every address of the node.
    pub host_ip: Option<Ipv4Addr>,
}

/// What [`setup_pod`] gave a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNet {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// The node's end of the pod's veth pair, a port of the bridge.
    pub host_veth: String,
    /// The pod's network namespace (a name under /run/netns).
    pub netns: String,
}

/// The bridge, its address, forwarding and podlab's NAT and filter rules; idempotent, and safe
/// to run from several processes at once (they take turns on a lock in `ipam_dir`).
pub fn ensure_node(cfg: &NodeNetConfig) -> Result<()> {
    let ipam = cfg.ipam()?;
    let _lock = lock(&cfg.ipam_dir)?;
    let bridge = cfg.bridge.as_str();
    match link::get(None, bridge)? {
        None => link::create_bridge(None, bridge)?,
        Some(l) if l.kind.as_deref() == Some("bridge") => {}
        Some(l) => {
            return Err(Error::invalid(format!(
                "{bridge} exists and is not a bridge (it is a {}): remove it, or give podlab another bridge name",
                l.kind.as_deref().unwrap_or("device")
            )));
        }
    }
    ensure_mac(bridge, bridge_mac(bridge, ipam.gateway()))?;
    link::add_addr(None, bridge, &format!("{}/{}", ipam.gateway(), ipam.prefix_len()))?;
    link::set_up(None, bridge)?;
    // Route between the bridge and the other links; let packets from 127.0.0.1 (DNATed to a pod
    // by a hostPort rule) leave through the bridge. Both are per network namespace.
    sysctl("net.ipv4.ip_forward", "1")?;
    sysctl("net.ipv4.conf.all.route_localnet", "1")?;

    let cidr = ipam.cidr();
    let tag = |what: &str| iptables::comment(&format!("{NODE_TAG} {what}"));
    iptables::ensure_chain("nat", HOSTPORTS_CHAIN)?;
    for hook in ["PREROUTING", "OUTPUT"] {
        let rule = [words(&["-m", "addrtype", "--dst-type", "LOCAL"]), tag("hostPorts"), jump(HOSTPORTS_CHAIN)];
        iptables::ensure_rule("nat", hook, Position::Append, &rule.concat())?;
    }
    let masquerade = [
        // Pods talking to the world leave with the node's address.
        [words(&["-s", &cidr, "!", "-o", bridge]), tag("pod traffic leaving the node"), jump("MASQUERADE")].concat(),
        // 127.0.0.1:hostPort DNATed to a pod: the pod cannot answer 127.0.0.1, so use the bridge's.
        [words(&["-s", "127.0.0.0/8", "-o", bridge]), tag("localhost to hostPorts"), jump("MASQUERADE")].concat(),
        // A pod reaching a hostPort of its own node: the answer must come back through the node.
        [
            words(&["-s", &cidr, "-d", &cidr, "-m", "conntrack", "--ctstate", "DNAT"]),
            tag("pods to hostPorts (hairpin)"),
            jump("MASQUERADE"),
        ]
        .concat(),
    ];
    for rule in &masquerade {
        iptables::ensure_rule("nat", "POSTROUTING", Position::Append, rule)?;
    }
    iptables::ensure_chain("filter", FORWARD_CHAIN)?;
    for (dir, what) in [("-i", "from pods"), ("-o", "to pods")] {
        let rule = [words(&[dir, bridge]), tag(what), jump("ACCEPT")].concat();
        iptables::ensure_rule("filter", FORWARD_CHAIN, Position::Append, &rule)?;
    }
    // First in FORWARD, so a DROP policy or rule of the host does not cut the pods off.
    iptables::ensure_rule("filter", "FORWARD", Position::First, &[tag("pod traffic"), jump(FORWARD_CHAIN)].concat())?;
    Ok(())
}

/// Remove podlab's node rules and chains (hostPort rules included) and the bridge. Leaves
/// ip_forward and route_localnet as they are (other software may need them), and the IPAM files.
pub fn teardown_node(cfg: &NodeNetConfig) -> Result<()> {
    std::fs::create_dir_all(&cfg.ipam_dir).ctx("create directory", &cfg.ipam_dir)?;
    let _lock = lock(&cfg.ipam_dir)?;
    let ours = |r: &iptables::Rule| {
        r.comment.as_deref().is_some_and(|c| c.starts_with(NODE_TAG) || c.starts_with(HOSTPORT_TAG))
    };
    for table in ["nat", "filter"] {
        iptables::delete_matching(table, ours)?;
    }
    iptables::delete_chain("nat", HOSTPORTS_CHAIN)?;
    iptables::delete_chain("filter", FORWARD_CHAIN)?;
    if link::get(None, &cfg.bridge)?.is_some_and(|l| l.kind.as_deref() == Some("bridge")) {
        link::delete(None, &cfg.bridge)?;
    }
    Ok(())
}

/// The hostPorts of a pod: `spec.containers[].ports[]` with a `hostPort`, as the kubelet takes
/// them (init containers have none). A `hostIP` that is not an IPv4 address is left out (the
/// manifest's validation refuses it first); 0.0.0.0 means every address, like no hostIP.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let mut ports = Vec::new();
    let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    for port in containers.iter().flat_map(|c| c.ports.iter().flatten()) {
        let Some(host_port) = port.host_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0) else {
            continue;
        };
        let Ok(container_port) = u16::try_from(port.container_port) else { continue };
        let host_ip = match port.host_ip.as_deref().map(str::trim).filter(|ip| !ip.is_empty()) {
            None => None,
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) if ip.is_unspecified() => None,
                Ok(ip) => Some(ip),
                Err(_) => continue,
            },
        };
        let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
        let hp = HostPort { host_port, container_port, protocol, host_ip };
        if !ports.contains(&hp) {
            ports.push(hp);
        }
    }
    ports
}

/// The name of the node's end of a pod's veth: "pl" and 8 hex digits of SHA-256(owner).
pub fn veth_name(owner: &str) -> String {
    let digest = Sha256::digest(owner.as_bytes());
    format!("pl{}", hex::encode(&digest[..4]))
}

/// Connect pod `owner` (its uid), whose network namespace `netns` exists already: an IP from
/// the node's range, a veth pair (eth0 inside, [`veth_name`] on the bridge), the default route via
/// the bridge, and a DNAT rule per hostPort. A hostPort another pod holds is refused. On any
/// error what this call did is undone. Call it in the node's network namespace, after
/// [`ensure_node`].
pub fn setup_pod(cfg: &NodeNetConfig, owner: &str, netns: &str, host_ports: &[HostPort]) -> Result<PodNet> {
    check_owner(owner)?;
    let mut wanted: Vec<&HostPort> = Vec::new();
    for hp in host_ports {
        check_host_port(hp)?;
        if !wanted.contains(&hp) {
            wanted.push(hp);
        }
    }
    for (i, a) in wanted.iter().enumerate() {
        if let Some(b) = wanted[i + 1..].iter().find(|b| overlap(a, b)) {
            return Err(Error::invalid(format!(
                "pod {owner} asks twice for hostPort {}: to container ports {} and {}",
                describe(a),
                a.container_port,
                b.container_port
            )));
        }
    }
    netns::open(netns)?;
    let ipam = cfg.ipam()?;
    let mut undo = Undo { cfg, owner, release_ip: ipam.lookup(owner).is_none(), veth: None, rules: false };
    match connect(cfg, &ipam, owner, netns, &wanted, &mut undo) {
        Ok(net) => Ok(net),
        Err(e) => {
            undo.run(&ipam);
            Err(e)
        }
    }
}

/// What [`setup_pod`] did so far, to take back when a later step fails.
struct Undo<'a> {
    cfg: &'a NodeNetConfig,
    owner: &'a str,
    /// The address was allocated by this call (not one the owner had already).
    release_ip: bool,
    /// The veth this call created.
    veth: Option<String>,
    /// Whether hostPort rules were added.
    rules: bool,
}

impl Undo<'_> {
    fn run(&self, ipam: &Ipam) {
        if self.rules {
            let _ = delete_host_ports(self.cfg, self.owner);
        }
        if let Some(veth) = &self.veth {
            let _ = link::delete(None, veth);
        }
        if self.release_ip {
            let _ = ipam.release(self.owner);
        }
    }
}

fn connect(
    cfg: &NodeNetConfig,
    ipam: &Ipam,
    owner: &str,
    ns: &str,
    host_ports: &[&HostPort],
    undo: &mut Undo,
) -> Result<PodNet> {
    let ip = ipam.allocate(owner)?;
    let (prefix_len, gateway, host_veth) = (ipam.prefix_len(), ipam.gateway(), veth_name(owner));
    if link::exists(None, &host_veth) {
        return Err(Error::invalid(format!(
            "{host_veth} (the veth of pod {owner}) exists already: is the pod set up twice? \
             (remove it with `ip link delete {host_veth}`)"
        )));
    }
    link::create_veth_with_mac(None, &host_veth, "eth0", Some(ns), Some(pod_mac(ip)))?;
    undo.veth = Some(host_veth.clone());
    link::add_addr(Some(ns), "eth0", &format!("{ip}/{prefix_len}"))?;
    link::set_up(Some(ns), "lo")?;
    link::set_up(Some(ns), "eth0")?;
    link::add_route(Some(ns), None, Some(gateway.into()), Some("eth0"))?;
    link::set_master(None, &host_veth, &cfg.bridge)?;
    // A pod reaching its own hostPort: the bridge sends the frame back out of the port it came in.
    set_hairpin(&host_veth)?;
    link::set_up(None, &host_veth)?;
    if !host_ports.is_empty() {
        undo.rules = true;
        add_host_ports(cfg, owner, ip, host_ports)?;
    }
    Ok(PodNet { ip, prefix_len, gateway, host_veth, netns: ns.to_string() })
}

/// Take a pod off the network, from names alone (works after a crash, and twice): its hostPort
/// rules (looked for only when `host_ports`: the pod asks for some; reading the nat table costs
/// an `iptables-save`), the node's end of its veth (the pod's eth0 goes with it) and its IP.
/// Every step is tried; the first error is returned.
pub fn teardown_pod(cfg: &NodeNetConfig, owner: &str, host_ports: bool) -> Result<()> {
    check_owner(owner)?;
    let rules = if host_ports { delete_host_ports(cfg, owner) } else { Ok(()) };
    let veth = link::delete(None, &veth_name(owner));
    let ip = cfg.ipam().and_then(|ipam| ipam.release(owner));
    rules.and(veth).and(ip)
}

/// Check for hostPorts held by other pods and add the DNAT rules, under the network lock (two
/// pods asking for one port at once: exactly one gets it).
fn add_host_ports(cfg: &NodeNetConfig, owner: &str, ip: Ipv4Addr, host_ports: &[&HostPort]) -> Result<()> {
    let _lock = lock(&cfg.ipam_dir)?;
    if !iptables::chain_exists("nat", HOSTPORTS_CHAIN)? {
        return Err(Error::Missing(format!(
            "chain {HOSTPORTS_CHAIN} of table nat is missing: set the node's network up first (ensure_node)"
        )));
    }
    let held: Vec<(String, HostPort)> = iptables::list("nat")?
        .into_iter()
        .filter(|r| r.chain == HOSTPORTS_CHAIN)
        .filter_map(|r| parse_tag(r.comment.as_deref()?))
        .collect();
    for hp in host_ports {
        if let Some((other, _)) = held.iter().find(|(o, h)| o != owner && overlap(h, hp)) {
            return Err(Error::invalid(format!(
                "hostPort {} is already used by pod {other} on this node: choose another hostPort, \
                 or delete that pod first",
                describe(hp)
            )));
        }
    }
    for hp in host_ports {
        let proto = hp.protocol.to_ascii_lowercase();
        let mut rule = words(&["-p", &proto]);
        if let Some(addr) = hp.host_ip {
            rule.extend(words(&["-d", &format!("{addr}/32")]));
        }
        rule.extend(words(&["--dport", &hp.host_port.to_string()]));
        rule.extend(iptables::comment(&tag_of(owner, hp, ip)));
        rule.extend(words(&["-j", "DNAT", "--to-destination", &format!("{ip}:{}", hp.container_port)]));
        iptables::ensure_rule("nat", HOSTPORTS_CHAIN, Position::Append, &rule)?;
    }
    Ok(())
}

/// Remove every hostPort rule of `owner` (none, or no chain: fine).
fn delete_host_ports(cfg: &NodeNetConfig, owner: &str) -> Result<()> {
    std::fs::create_dir_all(&cfg.ipam_dir).ctx("create directory", &cfg.ipam_dir)?;
    let _lock = lock(&cfg.ipam_dir)?;
    let theirs = |r: &iptables::Rule| {
        r.chain == HOSTPORTS_CHAIN && r.comment.as_deref().and_then(parse_tag).is_some_and(|(o, _)| o == owner)
    };
    iptables::delete_matching("nat", theirs).map(drop)
}

/// "podlab hostport pod=OWNER tcp 0.0.0.0:8080 -> 10.244.0.2:80"
fn tag_of(owner: &str, hp: &HostPort, ip: Ipv4Addr) -> String {
    let host_ip = hp.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let proto = hp.protocol.to_ascii_lowercase();
    format!("{HOSTPORT_TAG} pod={owner} {proto} {host_ip}:{} -> {ip}:{}", hp.host_port, hp.container_port)
}

/// The owner and hostPort of a rule's comment written by [`tag_of`].
fn parse_tag(comment: &str) -> Option<(String, HostPort)> {
    let rest = comment.strip_prefix(HOSTPORT_TAG)?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let [pod, proto, host, "->", dest] = words.as_slice() else { return None };
    let owner = pod.strip_prefix("pod=")?.to_string();
    let (host_ip, host_port) = host.rsplit_once(':')?;
    let host_ip: Ipv4Addr = host_ip.parse().ok()?;
    let container_port = dest.rsplit_once(':')?.1.parse().ok()?;
    let hp = HostPort {
        host_port: host_port.parse().ok()?,
        container_port,
        protocol: proto.to_ascii_uppercase(),
        host_ip: Some(host_ip).filter(|ip| !ip.is_unspecified()),
    };
    Some((owner, hp))
}

/// Two hostPorts collide when protocol and port are the same and their addresses meet (one of
/// them on every address, or both on the same one), as the scheduler counts them.
fn overlap(a: &HostPort, b: &HostPort) -> bool {
    a.protocol.eq_ignore_ascii_case(&b.protocol)
        && a.host_port == b.host_port
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
}

/// "8080/TCP", or "8080/TCP on 192.0.2.10".
fn describe(hp: &HostPort) -> String {
    let on = hp.host_ip.map(|ip| format!(" on {ip}")).unwrap_or_default();
    format!("{}/{}{on}", hp.host_port, hp.protocol.to_ascii_uppercase())
}

fn check_host_port(hp: &HostPort) -> Result<()> {
    if !["TCP", "UDP", "SCTP"].contains(&hp.protocol.to_ascii_uppercase().as_str()) {
        return Err(Error::invalid(format!(
            "hostPort {}: unsupported protocol {:?}: use TCP, UDP or SCTP",
            hp.host_port, hp.protocol
        )));
    }
    if hp.host_port == 0 || hp.container_port == 0 {
        return Err(Error::invalid(format!(
            "hostPort {} to container port {}: ports are 1 to 65535",
            hp.host_port, hp.container_port
        )));
    }
    Ok(())
}

/// The owner (a pod uid) goes into interface-name hashes, IPAM files and rule comments.
fn check_owner(owner: &str) -> Result<()> {
    let ok = !owner.is_empty()
        && owner.len() <= MAX_OWNER
        && owner.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "invalid pod owner {owner:?}: use the pod's uid (1 to {MAX_OWNER} letters, digits, '-', '_' or '.')"
    )))
}

/// `ip link set LINK type bridge_slave hairpin on`: the bridge may send a frame back out of the
/// port it came in on (needed when a pod's packet to a hostPort is DNATed back to the pod).
fn set_hairpin(name: &str) -> Result<()> {
    use rtnetlink::LinkUnspec;
    use rtnetlink::packet_core::{NLM_F_ACK, NLM_F_REQUEST};
    use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};

    let index = index_of(name)?;
    explain::say(format!("ip link set {name} type bridge_slave hairpin on"));
    netlink(&format!("cannot turn hairpin mode on for {name}"), |handle| async move {
        let message = LinkUnspec::new_with_index(index)
            .set_port_kind(InfoPortKind::Bridge)
            .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(true)]))
            .build();
        // RTM_NEWLINK on an existing link changes it (what `ip link set ... type` sends).
        handle.link().add(message).set_flags(NLM_F_REQUEST | NLM_F_ACK).execute().await
    })
}

/// The bridge's own MAC address: locally administered, from its name and gateway. Without one a
/// bridge takes the lowest MAC of its ports, so the gateway's MAC changes when a pod leaves and
/// the other pods' ARP caches point at nothing until they expire.
fn bridge_mac(bridge: &str, gateway: Ipv4Addr) -> [u8; 6] {
    let d = Sha256::digest(format!("podlab bridge {bridge} {gateway}").as_bytes());
    [0x02, d[0], d[1], d[2], d[3], d[4]]
}

/// A pod's eth0 MAC address, from its IP: 0a:58 and the four bytes of the address (locally
/// administered, unicast). An address taken again by a new pod (a repaired pod keeps its IP)
/// comes with the same MAC, so the bridge's ARP entry for it stays right; with a random MAC
/// the node would send to the old one until the entry went stale (15 to 45 s and more).
pub fn pod_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x0a, 0x58, o[0], o[1], o[2], o[3]]
}

/// `ip link set LINK address MAC`, unless it has that address already.
fn ensure_mac(name: &str, mac: [u8; 6]) -> Result<()> {
    use futures::TryStreamExt;
    use rtnetlink::LinkUnspec;
    use rtnetlink::packet_route::link::LinkAttribute;

    let index = index_of(name)?;
    let current = netlink(&format!("cannot read the MAC address of {name}"), |handle| async move {
        let link = handle.link().get().match_index(index).execute().try_next().await?;
        Ok(link.and_then(|l| {
            l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Address(mac) => Some(mac),
                _ => None,
            })
        }))
    })?;
    if current.as_deref() == Some(mac.as_slice()) {
        return Ok(());
    }
    explain::say(format!("ip link set {name} address {}", link::mac_text(&mac)));
    netlink(&format!("cannot set the MAC address of {name}"), |handle| async move {
        handle.link().set(LinkUnspec::new_with_index(index).address(mac.to_vec()).build()).execute().await
    })
}

fn index_of(name: &str) -> Result<u32> {
    Ok(link::get(None, name)?.ok_or_else(|| Error::Missing(format!("link {name} vanished while being set up")))?.index)
}

/// Netlink requests in this thread's network namespace, on a private current-thread runtime
/// (link.rs's helper is private; these two requests are the ones it does not offer).
fn netlink<T, F, Fut>(action: &str, work: F) -> Result<T>
where
    F: FnOnce(rtnetlink::Handle) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, rtnetlink::Error>>,
{
    let failed = |message: String| Error::Netlink { action: action.to_string(), message };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| failed(e.to_string()))?;
    runtime.block_on(async {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| failed(e.to_string()))?;
        tokio::spawn(connection);
        work(handle).await.map_err(|e| match e {
            rtnetlink::Error::NetlinkError(m) => failed(Errno::from_raw(m.raw_code().abs()).desc().to_string()),
            other => failed(other.to_string()),
        })
    })
}

/// `sysctl -w NAME=VALUE` of this thread's network namespace (skipped when already so).
fn sysctl(name: &str, value: &str) -> Result<()> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    explain::say(format!("sysctl -w {name}={value}"));
    std::fs::write(&path, value).ctx("write", &path)
}

/// The network lock of a node: its IPAM directory's `network.lock`, held until dropped.
fn lock(dir: &Path) -> Result<Flock<File>> {
    super::ipam::lock_file(&dir.join(LOCK), FlockArg::LockExclusive)
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn jump(target: &str) -> Vec<String> {
    words(&["-j", target])
}

// ---- /etc/hosts and /etc/resolv.conf, as the kubelet writes them for a pod ----

/// The kubelet's managed /etc/hosts of a pod: localhost lines, the pod's IP with its hostname
/// (and `HOSTNAME.SUBDOMAIN.NAMESPACE.svc.cluster.local` first when `spec.subdomain` is set),
/// then `spec.hostAliases`.
pub fn hosts_file(ip: Option<Ipv4Addr>, hostname: &str, pod: &Pod) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    let spec = pod.spec.as_ref();
    if let Some(ip) = ip {
        match spec.and_then(|s| s.subdomain.as_deref()).filter(|s| !s.is_empty()) {
            Some(sub) => {
                let namespace = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
                out.push_str(&format!("{ip}\t{hostname}.{sub}.{namespace}.svc.{CLUSTER_DOMAIN}\t{hostname}\n"));
            }
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_deref()).unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// Most nameservers a resolver reads (glibc's MAXNS; the API server's limit too).
const MAX_NAMESERVERS: usize = 3;
/// The API server's limits on search domains.
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;
const MAX_DOMAIN_CHARS: usize = 253;

/// A resolver configuration: nameservers, search domains, options ("ndots:5", "rotate").
#[derive(Debug, Default)]
struct Dns {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

/// The pod's /etc/resolv.conf, from the node's resolv.conf text (`host_resolv`, what the kubelet's
/// --resolv-conf names: on systemd-resolved hosts /run/systemd/resolve/resolv.conf, not the stub
/// at 127.0.0.53, which a pod cannot reach), the cluster DNS address (the kubelet's
/// --cluster-dns) and the pod's `dnsPolicy` and `dnsConfig`, merged as the kubelet does; laid out
/// as containerd writes it (search, nameservers, options).
///
/// `ClusterFirst` (the default) asks the cluster DNS only, with the search domains of the pod's
/// namespace before the node's (`web` finds `web.<ns>.svc.cluster.local`) and `ndots:5`, so that
/// short names try the cluster first. A `hostNetwork` pod gets the node's settings instead, unless
/// it says `ClusterFirstWithHostNet`. Without a cluster DNS both fall back to the node's settings,
/// as the kubelet does (with a MissingClusterDNS event).
pub fn resolv_conf(host_resolv: &str, pod: &Pod, cluster_dns: Option<Ipv4Addr>) -> Result<String> {
    let spec = pod.spec.as_ref();
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut dns = match (policy, cluster_dns) {
        ("None", _) => Dns::default(),
        ("Default", _) => parse_resolv(host_resolv)?,
        ("ClusterFirst", _) if host_network => parse_resolv(host_resolv)?,
        ("ClusterFirst" | "ClusterFirstWithHostNet", Some(server)) => {
            let node = parse_resolv(host_resolv)?;
            let ns = pod.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
            let mut searches =
                vec![format!("{ns}.svc.{CLUSTER_DOMAIN}"), format!("svc.{CLUSTER_DOMAIN}"), CLUSTER_DOMAIN.to_string()];
            append_unique(&mut searches, &node.searches);
            Dns { nameservers: vec![server.to_string()], searches, options: vec!["ndots:5".to_string()] }
        }
        ("ClusterFirst" | "ClusterFirstWithHostNet", None) => parse_resolv(host_resolv)?,
        (other, _) => {
            return Err(Error::invalid(format!(
                "spec.dnsPolicy: unsupported value {other:?}: supported values: \"ClusterFirst\", \
                 \"ClusterFirstWithHostNet\", \"Default\", \"None\""
            )));
        }
    };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        let servers = config.nameservers.as_deref().unwrap_or_default();
        let searches = config.searches.as_deref().unwrap_or_default();
        check_dns_config(servers, searches, config.options.as_deref().unwrap_or_default())?;
        append_unique(&mut dns.nameservers, servers);
        append_unique(&mut dns.searches, searches);
        for option in config.options.iter().flatten() {
            let name = option.name.as_deref().unwrap_or_default();
            let text = match option.value.as_deref() {
                Some(v) if !v.is_empty() => format!("{name}:{v}"),
                _ => name.to_string(),
            };
            // An option of the pod replaces the node's option of the same name, in place.
            match dns.options.iter_mut().find(|o| option_name(o) == name) {
                Some(slot) => *slot = text,
                None => dns.options.push(text),
            }
        }
    }
    if policy == "None" && dns.nameservers.is_empty() {
        return Err(Error::invalid(
            "spec.dnsConfig.nameservers: required: must provide at least one DNS nameserver when dnsPolicy is None",
        ));
    }
    // The kubelet cuts what a resolver cannot use (and tells with an event).
    dns.nameservers.truncate(MAX_NAMESERVERS);
    fit_searches(&mut dns.searches);

    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.nameservers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(out)
}

/// Read a resolv.conf as the kubelet does: nameservers add up, the last `search` and the last
/// `options` line win, "." and trailing dots are dropped from search domains.
fn parse_resolv(text: &str) -> Result<Dns> {
    let mut dns = Dns::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", server, ..] => dns.nameservers.push(server.to_string()),
            ["nameserver"] => {
                return Err(Error::invalid(format!(
                    "the node's resolv.conf, line {}: \"nameserver\" without an address",
                    n + 1
                )));
            }
            ["search", domains @ ..] => {
                dns.searches =
                    domains.iter().filter(|d| **d != ".").map(|d| d.trim_end_matches('.').to_string()).collect()
            }
            ["options", options @ ..] => dns.options = options.iter().map(|o| o.to_string()).collect(),
            _ => {}
        }
    }
    Ok(dns)
}

/// What the API server checks in `spec.dnsConfig`.
fn check_dns_config(
    servers: &[String],
    searches: &[String],
    options: &[k8s_openapi::api::core::v1::PodDNSConfigOption],
) -> Result<()> {
    let path = "spec.dnsConfig";
    if servers.len() > MAX_NAMESERVERS {
        return Err(Error::invalid(format!(
            "{path}.nameservers: must not have more than {MAX_NAMESERVERS} nameservers (has {})",
            servers.len()
        )));
    }
    for (i, server) in servers.iter().enumerate() {
        if server.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(format!(
                "{path}.nameservers[{i}]: invalid value {server:?}: must be a valid IP address"
            )));
        }
    }
    if searches.len() > MAX_SEARCHES {
        return Err(Error::invalid(format!(
            "{path}.searches: must not have more than {MAX_SEARCHES} search paths (has {})",
            searches.len()
        )));
    }
    for (i, search) in searches.iter().enumerate() {
        let name = search.strip_suffix('.').unwrap_or(search);
        let valid = !name.is_empty()
            && name.len() <= MAX_DOMAIN_CHARS
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err(Error::invalid(format!(
                "{path}.searches[{i}]: invalid value {search:?}: must be a lowercase DNS name such as \
                 \"ns1.svc.cluster.local\""
            )));
        }
    }
    let total = searches.join(" ").len();
    if total > MAX_SEARCH_CHARS {
        return Err(Error::invalid(format!(
            "{path}.searches: must not have more than {MAX_SEARCH_CHARS} characters (including spaces), has {total}"
        )));
    }
    for (i, option) in options.iter().enumerate() {
        match option.name.as_deref() {
            None | Some("") => return Err(Error::invalid(format!("{path}.options[{i}].name: required"))),
            Some(name) if name.contains(|c: char| c.is_whitespace() || c == ':') => {
                return Err(Error::invalid(format!(
                    "{path}.options[{i}].name: invalid value {name:?}: no spaces or ':'"
                )));
            }
            _ => {}
        }
        if let Some(value) = option.value.as_deref().filter(|v| v.contains(char::is_whitespace)) {
            return Err(Error::invalid(format!("{path}.options[{i}].value: invalid value {value:?}: no spaces")));
        }
    }
    Ok(())
}

fn append_unique(list: &mut Vec<String>, more: &[String]) {
    for item in more {
        if !list.contains(item) {
            list.push(item.clone());
        }
    }
}

/// "ndots" of "ndots:5".
fn option_name(option: &str) -> &str {
    option.split_once(':').map(|(n, _)| n).unwrap_or(option)
}

/// The kubelet's cut of search domains: at most 32, none longer than 253, 2048 characters in all.
fn fit_searches(searches: &mut Vec<String>) {
    searches.truncate(MAX_SEARCHES);
    searches.retain(|s| s.len() <= MAX_DOMAIN_CHARS);
    while searches.join(" ").len() > MAX_SEARCH_CHARS {
        searches.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostport_tags_round_trip() {
        let hp = HostPort { host_port: 8080, container_port: 80, protocol: "TCP".into(), host_ip: None };
        let tag = tag_of("uid-1", &hp, Ipv4Addr::new(10, 244, 0, 2));
        assert_eq!(tag, "podlab hostport pod=uid-1 tcp 0.0.0.0:8080 -> 10.244.0.2:80");
        assert_eq!(parse_tag(&tag), Some(("uid-1".to_string(), hp.clone())));
        let on = HostPort { host_ip: Some(Ipv4Addr::new(192, 0, 2, 1)), protocol: "UDP".into(), ..hp.clone() };
        assert_eq!(parse_tag(&tag_of("u", &on, Ipv4Addr::new(10, 244, 0, 3))), Some(("u".to_string(), on.clone())));
        assert_eq!(parse_tag("podlab node: hostPorts"), None);
        assert!(!overlap(&hp, &on), "different protocols");
        let tcp_on = HostPort { protocol: "TCP".into(), ..on.clone() };
        assert!(overlap(&hp, &tcp_on), "every address meets one address");
        let elsewhere = HostPort { host_ip: Some(Ipv4Addr::new(192, 0, 2, 2)), ..tcp_on.clone() };
        assert!(!overlap(&tcp_on, &elsewhere));
    }

    #[test]
    fn owners_are_checked() {
        assert!(check_owner("0b7c1f3e-2a9d-4c3e-9f2e-5d8f1a2b3c4d").is_ok());
        for bad in ["", "a b", "a\"b", "a/b", &"x".repeat(64)] {
            assert!(check_owner(bad).unwrap_err().to_string().contains("invalid pod owner"), "{bad:?}");
        }
    }
}
