//! Links, addresses and routes: the plumbing between network namespaces.
//!
//! A veth pair is a virtual cable: what goes into one end comes out of the other, and the
//! two ends may sit in different network namespaces. A bridge is a virtual switch: the
//! links enslaved to it ("master") forward frames to each other. An address on a link
//! makes the kernel answer for it and adds a route to its subnet; other routes say
//! which link (and which gateway) reaches the rest. All of it is set over netlink, the
//! socket `ip` talks to the kernel through.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroI32;
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_core::ErrorMessage;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{Error, Result};
use crate::explain;
use crate::primitives::netns;

/// One network interface, as `ip addr` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    /// The administrative state (IFF_UP, set by `ip link set NAME up`).
    pub up: bool,
    /// "veth", "bridge"... (None for physical devices and loopback).
    pub kind: Option<String>,
    /// The bridge this link is a port of.
    pub master: Option<String>,
    /// Addresses with prefix length: "10.250.4.1/24".
    pub addrs: Vec<String>,
}

type Nl<T> = std::result::Result<T, rtnetlink::Error>;

/// Run netlink requests in `netns` (None: the caller's namespace, on the caller's thread)
/// on a private current-thread tokio runtime. The outer error is about getting there.
fn netlink<T, F, Fut>(netns: Option<&str>, work: F) -> Result<Nl<T>>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Nl<T>>,
{
    let cannot = |e: std::io::Error| Error::Netlink {
        action: format!("cannot open a netlink socket{}", place(netns)),
        message: e.to_string(),
    };
    netns::run_in(netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(cannot)?;
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().map_err(cannot)?;
            tokio::spawn(connection);
            Ok(work(handle).await)
        })
    })?
}

/// The kernel's error number in a netlink answer.
fn errno(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(Errno::from_raw(m.raw_code().abs())),
        _ => None,
    }
}

/// "cannot ACTION: File exists".
fn failed(action: String, e: rtnetlink::Error) -> Error {
    let message = match errno(&e) {
        Some(n) => n.desc().to_string(),
        None => e.to_string(),
    };
    Error::Netlink { action, message }
}

/// " in netns NAME", or nothing for the caller's namespace.
fn place(netns: Option<&str>) -> String {
    netns.map(|n| format!(" in netns {n}")).unwrap_or_default()
}

/// `ip` or `ip -n NAME`.
fn ip(netns: Option<&str>) -> String {
    netns.map(|n| format!("ip -n {n}")).unwrap_or_else(|| "ip".to_string())
}

/// Interface names are at most 15 bytes (IFNAMSIZ is 16 with the final NUL).
fn check_name(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        "it is empty"
    } else if name.len() > 15 {
        "it is longer than 15 bytes (the kernel's limit)"
    } else if name == "." || name == ".." {
        "\".\" and \"..\" are reserved"
    } else if name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        "it contains '/', ':' or a space"
    } else {
        return Ok(());
    };
    Err(Error::invalid(format!("invalid interface name {name:?}: {problem}")))
}

/// Parse "10.250.4.1/24" or "fd00::1/64".
pub fn parse_cidr(cidr: &str) -> Result<(IpAddr, u8)> {
    let bad = || Error::invalid(format!("invalid address {cidr:?}: expected ADDRESS/PREFIX like 10.250.4.1/24"));
    let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(Error::invalid(format!("invalid address {cidr:?}: the prefix length is at most {max}")));
    }
    Ok((addr, prefix))
}

/// The index of link `name` (ENODEV from the kernel when there is none).
async fn index(handle: &Handle, name: &str) -> Nl<u32> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await? {
        Some(link) => Ok(link.header.index),
        None => {
            let mut e = ErrorMessage::default();
            e.code = NonZeroI32::new(-libc::ENODEV);
            Err(rtnetlink::Error::NetlinkError(e))
        }
    }
}

/// `ip link add NAME type veth peer name PEER [netns PEER_NETNS]`: a veth pair. With
/// `peer_netns` the kernel creates the peer directly in that namespace (so it may be
/// named like a host interface, e.g. eth0); with None both ends stay in `netns`.
pub fn create_veth(netns: Option<&str>, name: &str, peer: &str, peer_netns: Option<&str>) -> Result<()> {
    create_veth_with_mac(netns, name, peer, peer_netns, None)
}

/// [`create_veth`], the peer with the MAC address `peer_mac` instead of a random one
/// (`... peer name PEER address MAC`).
pub fn create_veth_with_mac(
    netns: Option<&str>,
    name: &str,
    peer: &str,
    peer_netns: Option<&str>,
    peer_mac: Option<[u8; 6]>,
) -> Result<()> {
    check_name(name)?;
    check_name(peer)?;
    let target = peer_netns.map(netns::open).transpose()?;
    let target_fd = target.as_ref().map(|f| f.as_raw_fd());
    let moved = peer_netns.map(|n| format!(" netns {n}")).unwrap_or_default();
    let mac = peer_mac.map(|m| format!(" address {}", mac_text(&m))).unwrap_or_default();
    explain::say(format!("{} link add {name} type veth peer name {peer}{mac}{moved}", ip(netns)));
    let result = netlink(netns, |handle| async move {
        let mut peer_msg = LinkUnspec::new_with_name(peer);
        if let Some(fd) = target_fd {
            peer_msg = peer_msg.setns_by_fd(fd);
        }
        if let Some(mac) = peer_mac {
            peer_msg = peer_msg.address(mac.to_vec());
        }
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(name.to_string())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        handle.link().add(message).execute().await
    })?;
    result.map_err(|e| {
        let peer_place = place(peer_netns.or(netns));
        failed(format!("cannot create veth {name}{} with peer {peer}{peer_place}", place(netns)), e)
    })
}

/// A MAC address as `ip` prints it: "0a:58:0a:f4:00:02".
pub fn mac_text(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// `ip link add NAME type bridge` (left down, like `ip` does).
pub fn create_bridge(netns: Option<&str>, name: &str) -> Result<()> {
    check_name(name)?;
    explain::say(format!("{} link add {name} type bridge", ip(netns)));
    let message = LinkMessageBuilder::<LinkBridge>::new(name).build();
    netlink(netns, |handle| async move { handle.link().add(message).execute().await })?
        .map_err(|e| failed(format!("cannot create bridge {name}{}", place(netns)), e))
}

/// `ip link set LINK master BRIDGE`: make LINK a port of BRIDGE.
pub fn set_master(netns: Option<&str>, link: &str, bridge: &str) -> Result<()> {
    check_name(link)?;
    check_name(bridge)?;
    explain::say(format!("{} link set {link} master {bridge}", ip(netns)));
    netlink(netns, |handle| async move {
        let port = index(&handle, link).await?;
        let master = index(&handle, bridge).await?;
        handle.link().set(LinkUnspec::new_with_index(port).controller(master).build()).execute().await
    })?
    .map_err(|e| failed(format!("cannot attach {link} to bridge {bridge}{}", place(netns)), e))
}

/// `ip link set LINK up`.
pub fn set_up(netns: Option<&str>, link: &str) -> Result<()> {
    set_state(netns, link, true)
}

/// `ip link set LINK down`.
pub fn set_down(netns: Option<&str>, link: &str) -> Result<()> {
    set_state(netns, link, false)
}

fn set_state(netns: Option<&str>, link: &str, up: bool) -> Result<()> {
    check_name(link)?;
    let state = if up { "up" } else { "down" };
    explain::say(format!("{} link set {link} {state}", ip(netns)));
    netlink(netns, |handle| async move {
        let builder = LinkUnspec::new_with_index(index(&handle, link).await?);
        let builder = if up { builder.up() } else { builder.down() };
        handle.link().set(builder.build()).execute().await
    })?
    .map_err(|e| failed(format!("cannot set {link} {state}{}", place(netns)), e))
}

/// `ip addr add CIDR dev LINK` (IPv4 or IPv6). An address that is already there is fine.
pub fn add_addr(netns: Option<&str>, link: &str, cidr: &str) -> Result<()> {
    check_name(link)?;
    let (addr, prefix) = parse_cidr(cidr)?;
    explain::say(format!("{} addr add {cidr} dev {link}", ip(netns)));
    let result = netlink(netns, |handle| async move {
        let index = index(&handle, link).await?;
        handle.address().add(index, addr, prefix).execute().await
    })?;
    match result {
        Err(e) if errno(&e) != Some(Errno::EEXIST) => {
            Err(failed(format!("cannot add address {cidr} to {link}{}", place(netns)), e))
        }
        _ => Ok(()),
    }
}

/// `ip route add DST|default [via GATEWAY] [dev DEV]` in the main table.
pub fn add_route(
    netns: Option<&str>,
    dst_cidr: Option<&str>,
    gateway: Option<IpAddr>,
    dev: Option<&str>,
) -> Result<()> {
    let mut what = vec![dst_cidr.unwrap_or("default").to_string()];
    what.extend(gateway.map(|g| format!("via {g}")));
    what.extend(dev.map(|d| format!("dev {d}")));
    let what = what.join(" ");
    let action = format!("cannot add route {what}{}", place(netns));
    if gateway.is_none() && dev.is_none() {
        return Err(Error::invalid(format!("{action}: a route needs a gateway or a device")));
    }
    let mut route = RouteMessageBuilder::<IpAddr>::new().protocol(RouteProtocol::Boot);
    match dst_cidr {
        Some(cidr) => {
            let (addr, prefix) = parse_cidr(cidr)?;
            let net = network(addr, prefix);
            if net != addr {
                return Err(Error::invalid(format!("{action}: host bits are set (did you mean {net}/{prefix}?)")));
            }
            route = route.destination_prefix(addr, prefix).map_err(|e| Error::invalid(format!("{action}: {e}")))?;
        }
        None => {
            let v6 = gateway.is_some_and(|g| g.is_ipv6());
            route.get_mut().header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
        }
    }
    match gateway {
        Some(g) => route = route.gateway(g).map_err(|e| Error::invalid(format!("{action}: {e}")))?,
        None => route = route.scope(RouteScope::Link), // on the link itself, as `ip` does
    }
    if let Some(d) = dev {
        check_name(d)?;
    }
    explain::say(format!("{} route add {what}", ip(netns)));
    netlink(netns, |handle| async move {
        let mut route = route;
        if let Some(d) = dev {
            route = route.output_interface(index(&handle, d).await?);
        }
        handle.route().add(route.build()).execute().await
    })?
    .map_err(|e| failed(action.clone(), e))
}

/// The network address of `addr/prefix` (host bits cleared).
fn network(addr: IpAddr, prefix: u8) -> IpAddr {
    let mask = |bits: u32| u128::MAX.checked_shl(bits - u32::from(prefix)).unwrap_or(0);
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask(32) as u32)),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & mask(128)).into()),
    }
}

/// `ip link delete LINK`. A link that is not there (or whose namespace is gone) is fine;
/// deleting one end of a veth pair deletes both.
pub fn delete(netns: Option<&str>, link: &str) -> Result<()> {
    check_name(link)?;
    if netns.is_some_and(|n| !netns::exists(n)) {
        return Ok(());
    }
    let command = format!("{} link delete {link}", ip(netns));
    let result = netlink(netns, |handle| async move {
        let index = index(&handle, link).await?;
        explain::say(command);
        handle.link().del(index).execute().await
    })?;
    match result {
        Err(e) if errno(&e) != Some(Errno::ENODEV) => {
            Err(failed(format!("cannot delete link {link}{}", place(netns)), e))
        }
        _ => Ok(()),
    }
}

/// Whether link `link` exists in `netns` (false when the namespace does not).
pub fn exists(netns: Option<&str>, link: &str) -> bool {
    matches!(get(netns, link), Ok(Some(_)))
}

/// One link by name, or None.
pub fn get(netns: Option<&str>, link: &str) -> Result<Option<LinkInfo>> {
    Ok(list(netns)?.into_iter().find(|l| l.name == link))
}

/// Every link with its state, kind, bridge and addresses (`ip addr`).
pub fn list(netns: Option<&str>) -> Result<Vec<LinkInfo>> {
    let (links, addrs): (Vec<LinkMessage>, Vec<AddressMessage>) = netlink(netns, |handle| async move {
        let links = handle.link().get().execute().try_collect().await?;
        let addrs = handle.address().get().execute().try_collect().await?;
        Ok((links, addrs))
    })?
    .map_err(|e| failed(format!("cannot list links{}", place(netns)), e))?;

    let name_of = |link: &LinkMessage| {
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
    };
    let names: Vec<(u32, String)> = links.iter().filter_map(|l| Some((l.header.index, name_of(l)?))).collect();
    let name_by_index = |i: u32| names.iter().find(|(index, _)| *index == i).map(|(_, n)| n.clone());

    let mut infos = Vec::new();
    for link in &links {
        let index = link.header.index;
        let mut info = LinkInfo {
            name: name_of(link).unwrap_or_default(),
            index,
            up: link.header.flags.contains(LinkFlags::Up),
            kind: None,
            master: None,
            addrs: Vec::new(),
        };
        for attr in &link.attributes {
            match attr {
                LinkAttribute::Controller(m) => info.master = name_by_index(*m),
                LinkAttribute::LinkInfo(parts) => {
                    info.kind = parts.iter().find_map(|p| match p {
                        rtnetlink::packet_route::link::LinkInfo::Kind(k) => Some(k.to_string()),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        for addr in addrs.iter().filter(|a| a.header.index == index) {
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer's on point-to-point links.
            let local = addr.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let any = addr.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(any) {
                info.addrs.push(format!("{ip}/{}", addr.header.prefix_len));
            }
        }
        infos.push(info);
    }
    Ok(infos)
}

/// The IPv4 routes of the main table, like `ip route`: "default via 10.250.4.1 dev eth0",
/// "10.250.4.0/24 dev eth0".
pub fn routes(netns: Option<&str>) -> Result<Vec<String>> {
    let links = list(netns)?;
    let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let messages: Vec<_> =
        netlink(netns, |handle| async move { handle.route().get(request).execute().try_collect().await })?
            .map_err(|e| failed(format!("cannot list routes{}", place(netns)), e))?;
    let mut lines = Vec::new();
    for route in messages {
        let table = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        });
        if table.unwrap_or(u32::from(route.header.table)) != u32::from(RouteHeader::RT_TABLE_MAIN) {
            continue;
        }
        let mut line = String::from("default");
        let mut via = String::new();
        for attr in &route.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => {
                    line = format!("{d}/{}", route.header.destination_prefix_length)
                }
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = format!(" via {g}"),
                _ => {}
            }
        }
        line += &via;
        let oif = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        if let Some(dev) = oif.and_then(|i| links.iter().find(|l| l.index == i)) {
            line += &format!(" dev {}", dev.name);
        }
        lines.push(line);
    }
    Ok(lines)
}
