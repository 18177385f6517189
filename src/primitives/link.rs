//! Network links: veth pairs, bridges, addresses and routes, over netlink.
//!
//! A veth pair is a virtual cable: what goes in one end comes out of the other, and the
//! ends can live in different network namespaces. A bridge is a virtual switch that host
//! ends plug into. Addresses and routes make a link usable for IP. `ip link/addr/route`
//! speak to the kernel over an rtnetlink socket; so does this module (no `ip` is run).

use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as NlInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use super::netns;
use crate::error::{Error, Result};
use crate::explain;

/// A link as `ip -br addr` would show it.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    /// The administrative IFF_UP flag (`ip link set X up`).
    pub up: bool,
    /// `veth`, `bridge`... (None for physical devices and loopback).
    pub kind: Option<String>,
    /// The bridge it is plugged into.
    pub master: Option<String>,
    /// Addresses as `10.250.4.1/24`.
    pub addrs: Vec<String>,
}

/// Run `work` with a netlink handle inside `ns` (None: right here, on this thread).
fn with_handle<T, F, Fut>(ns: Option<&str>, action: &str, work: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: std::future::Future<Output = std::result::Result<T, rtnetlink::Error>>,
{
    let place = ns.map(|n| format!(" in netns {n}")).unwrap_or_default();
    netns::run_in(ns, || -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start", "netlink runtime", e))?;
        rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| Error::io("open", "netlink socket", e))?;
            let task = tokio::spawn(conn);
            let out = work(handle).await.map_err(|e| netlink_error(&format!("{action}{place}"), e));
            task.abort();
            out
        })
    })?
}

fn netlink_error(action: &str, e: rtnetlink::Error) -> Error {
    let message = match &e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
        other => other.to_string(),
    };
    Error::Netlink { action: action.to_string(), message }
}

fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn validate_name(name: &str) -> Result<()> {
    // IFNAMSIZ is 16 bytes with the terminating NUL.
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) || name == "." || name == ".." {
        return Err(Error::invalid(format!(
            "invalid interface name {name:?}: use 1 to 15 characters without '/' or spaces"
        )));
    }
    Ok(())
}

fn ip_n(ns: Option<&str>) -> String {
    ns.map(|n| format!("ip -n {n}")).unwrap_or_else(|| "ip".into())
}

async fn find(handle: &Handle, name: &str) -> std::result::Result<Option<LinkMessage>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn index_of(handle: &Handle, name: &str) -> std::result::Result<u32, rtnetlink::Error> {
    match find(handle, name).await? {
        Some(link) => Ok(link.header.index),
        None => Err(rtnetlink::Error::InvalidNla(format!("no interface named {name}"))),
    }
}

/// `ip link add NAME type veth peer name PEER [netns PEER_NS]`. The peer is created
/// directly inside its namespace, so its name (often eth0) never clashes with the host's.
pub fn create_veth(ns: Option<&str>, name: &str, peer: &str, peer_ns: Option<&str>) -> Result<()> {
    validate_name(name)?;
    validate_name(peer)?;
    let target = peer_ns.map(|p| format!(" netns {p}")).unwrap_or_default();
    explain::say(format!("{} link add {name} type veth peer name {peer}{target}", ip_n(ns)));
    let peer_file = match peer_ns {
        Some(p) => Some(
            std::fs::File::open(netns::path(p)).map_err(|e| Error::io("open network namespace", netns::path(p), e))?,
        ),
        None => None,
    };
    let peer_fd = peer_file.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    with_handle(ns, &format!("create veth pair {name}/{peer}"), |h| async move {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer.to_string());
        if let Some(fd) = peer_fd {
            peer_msg = peer_msg.setns_by_fd(fd);
        }
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        h.link().add(msg).execute().await
    })
}

/// `ip link add NAME type bridge`.
pub fn create_bridge(ns: Option<&str>, name: &str) -> Result<()> {
    validate_name(name)?;
    explain::say(format!("{} link add {name} type bridge", ip_n(ns)));
    with_handle(ns, &format!("create bridge {name}"), |h| async move {
        h.link().add(LinkBridge::new(name).build()).execute().await
    })
}

/// `ip link set LINK master BRIDGE`.
pub fn set_master(ns: Option<&str>, link: &str, bridge: &str) -> Result<()> {
    validate_name(link)?;
    validate_name(bridge)?;
    explain::say(format!("{} link set {link} master {bridge}", ip_n(ns)));
    with_handle(ns, &format!("plug {link} into {bridge}"), |h| async move {
        let master = index_of(&h, bridge).await?;
        h.link().set(LinkUnspec::new_with_name(link).controller(master).build()).execute().await
    })
}

fn set_state(ns: Option<&str>, link: &str, up: bool) -> Result<()> {
    validate_name(link)?;
    let word = if up { "up" } else { "down" };
    explain::say(format!("{} link set {link} {word}", ip_n(ns)));
    with_handle(ns, &format!("set {link} {word}"), |h| async move {
        let b = LinkUnspec::new_with_name(link);
        h.link().set(if up { b.up() } else { b.down() }.build()).execute().await
    })
}

/// `ip link set LINK up`.
pub fn set_up(ns: Option<&str>, link: &str) -> Result<()> {
    set_state(ns, link, true)
}

/// `ip link set LINK down`.
pub fn set_down(ns: Option<&str>, link: &str) -> Result<()> {
    set_state(ns, link, false)
}

/// Parse `10.250.4.1/24` (or an IPv6 CIDR).
pub fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8)> {
    let bad = || Error::invalid(format!("invalid address {cidr:?}: write it as ADDRESS/PREFIX, like 10.250.4.1/24"));
    let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((addr, prefix))
}

/// `ip addr add CIDR dev LINK`; an address that is there already is fine.
pub fn add_addr(ns: Option<&str>, link: &str, cidr: &str) -> Result<()> {
    validate_name(link)?;
    let (addr, prefix) = parse_cidr(cidr)?;
    explain::say(format!("{} addr add {cidr} dev {link}", ip_n(ns)));
    with_handle(ns, &format!("add address {cidr} to {link}"), |h| async move {
        let index = index_of(&h, link).await?;
        match h.address().add(index, addr, prefix).execute().await {
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
            other => other,
        }
    })
}

/// `ip route add DST|default [via GATEWAY] [dev DEV]`.
pub fn add_route(ns: Option<&str>, dst: Option<&str>, gateway: Option<IpAddr>, dev: Option<&str>) -> Result<()> {
    let dest = dst.map(parse_cidr).transpose()?;
    let mut words = vec![dst.unwrap_or("default").to_string()];
    if let Some(g) = gateway {
        words.push(format!("via {g}"));
    }
    if let Some(d) = dev {
        validate_name(d)?;
        words.push(format!("dev {d}"));
    }
    explain::say(format!("{} route add {}", ip_n(ns), words.join(" ")));
    let v6 = dest.map(|(a, _)| a.is_ipv6()).or(gateway.map(|g| g.is_ipv6())).unwrap_or(false);
    with_handle(ns, &format!("add route {}", words.join(" ")), |h| async move {
        let oif = match dev {
            Some(d) => Some(index_of(&h, d).await?),
            None => None,
        };
        let bad = |e: &dyn std::fmt::Display| rtnetlink::Error::InvalidNla(e.to_string());
        // The route's address family comes from its destination or gateway.
        let mut msg = if v6 {
            let mut r = RouteMessageBuilder::<std::net::Ipv6Addr>::new();
            if let Some((IpAddr::V6(a), p)) = dest {
                r = r.destination_prefix(a, p);
            }
            if let Some(IpAddr::V6(g)) = gateway {
                r = r.gateway(g);
            }
            r.build()
        } else {
            let mut r = RouteMessageBuilder::<std::net::Ipv4Addr>::new();
            match dest {
                Some((IpAddr::V4(a), p)) => r = r.destination_prefix(a, p),
                Some(_) => return Err(bad(&"destination and gateway are of different IP versions")),
                None => {}
            }
            match gateway {
                Some(IpAddr::V4(g)) => r = r.gateway(g),
                Some(_) => return Err(bad(&"destination and gateway are of different IP versions")),
                None => {}
            }
            r.build()
        };
        if let Some(i) = oif {
            msg.attributes.push(rtnetlink::packet_route::route::RouteAttribute::Oif(i));
        }
        h.route().add(msg).execute().await
    })
}

/// `ip link delete LINK`; deleting a link that is gone is fine.
pub fn delete(ns: Option<&str>, link: &str) -> Result<()> {
    validate_name(link)?;
    if ns.is_some_and(|n| !netns::exists(n)) {
        return Ok(());
    }
    let found = with_handle(ns, &format!("delete {link}"), |h| async move {
        let Some(msg) = find(&h, link).await? else { return Ok(false) };
        match h.link().del(msg.header.index).execute().await {
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => Ok(true),
        }
    })?;
    if found {
        explain::say(format!("{} link delete {link}", ip_n(ns)));
    }
    Ok(())
}

/// Whether a link of that name exists.
pub fn exists(ns: Option<&str>, link: &str) -> bool {
    get(ns, link).is_ok_and(|l| l.is_some())
}

/// One link by name.
pub fn get(ns: Option<&str>, link: &str) -> Result<Option<LinkInfo>> {
    validate_name(link)?;
    Ok(list(ns)?.into_iter().find(|l| l.name == link))
}

/// Every link with its addresses (`ip -br addr`).
pub fn list(ns: Option<&str>) -> Result<Vec<LinkInfo>> {
    let (links, addrs) = with_handle(ns, "list links", |h| async move {
        let links: Vec<LinkMessage> = h.link().get().execute().try_collect().await?;
        let addrs: Vec<_> = h.address().get().execute().try_collect().await?;
        Ok((links, addrs))
    })?;
    let name_of = |index: u32| {
        links.iter().find(|l| l.header.index == index).and_then(|l| {
            l.attributes.iter().find_map(|a| if let LinkAttribute::IfName(n) = a { Some(n.clone()) } else { None })
        })
    };
    let mut out = Vec::new();
    for l in &links {
        let mut info = LinkInfo {
            name: String::new(),
            index: l.header.index,
            up: l.header.flags.contains(LinkFlags::Up),
            kind: None,
            master: None,
            addrs: Vec::new(),
        };
        for attr in &l.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Controller(i) => info.master = name_of(*i),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let NlInfo::Kind(kind) = i {
                            info.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        for a in addrs.iter().filter(|a| a.header.index == l.header.index) {
            // IFA_LOCAL is the interface's own address on point-to-point links; else IFA_ADDRESS.
            let ip = a
                .attributes
                .iter()
                .find_map(|x| if let AddressAttribute::Local(ip) = x { Some(*ip) } else { None })
                .or_else(|| {
                    a.attributes
                        .iter()
                        .find_map(|x| if let AddressAttribute::Address(ip) = x { Some(*ip) } else { None })
                });
            if let Some(ip) = ip {
                info.addrs.push(format!("{ip}/{}", a.header.prefix_len));
            }
        }
        out.push(info);
    }
    Ok(out)
}

/// The main IPv4 routing table as `ip route` prints it (`default via X dev Y`, `CIDR dev Y`).
pub fn routes(ns: Option<&str>) -> Result<Vec<String>> {
    use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
    let links = list(ns)?;
    let found: Vec<RouteMessage> = with_handle(ns, "list routes", |h| async move {
        h.route().get(RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()).execute().try_collect().await
    })?;
    let mut out = Vec::new();
    for r in found.iter().filter(|r| r.header.table == 254) {
        let mut dst = None;
        let mut via = None;
        let mut dev = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = Some(format!("{d:?}")),
                RouteAttribute::Gateway(g) => via = Some(format!("{g:?}")),
                RouteAttribute::Oif(i) => dev = links.iter().find(|l| l.index == *i).map(|l| l.name.clone()),
                _ => {}
            }
        }
        let mut line = match dst {
            Some(d) => format!("{}/{}", clean_addr(&d), r.header.destination_prefix_length),
            None => "default".to_string(),
        };
        if let Some(v) = via {
            line.push_str(&format!(" via {}", clean_addr(&v)));
        }
        if let Some(d) = dev {
            line.push_str(&format!(" dev {d}"));
        }
        out.push(line);
    }
    Ok(out)
}

/// `Inet(10.0.0.1)` → `10.0.0.1` (route addresses print through their Debug form).
fn clean_addr(debug: &str) -> String {
    debug.trim_start_matches("Inet6(").trim_start_matches("Inet(").trim_end_matches(')').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.250.4.1/24").unwrap(), ("10.250.4.1".parse().unwrap(), 24));
        assert!(parse_cidr("fd00::1/64").is_ok());
        for bad in ["10.0.0.1", "10.0.0.1/33", "x/24", "10.0.0.1/"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn interface_names() {
        assert!(validate_name("pl04a").is_ok());
        assert!(validate_name("a-very-long-name-x").is_err());
        assert!(validate_name("a/b").is_err());
    }
}
