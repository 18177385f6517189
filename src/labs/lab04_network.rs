//! Lab 4, network namespaces: two "pods" on a bridge that ping each other.
//!
//! A network namespace has its own interfaces, addresses, routes and firewall. A veth
//! pair is a virtual cable: one end stays on the host, the other moves into the namespace
//! as eth0. Plugging the host ends into a bridge (a virtual switch) connects namespaces the
//! way a node's bridge connects its pods.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{Ctx, Point, remove_workspace};
use crate::error::Result;
use crate::primitives::{link, netns};

const NS_A: &str = "podlab-lab04-a";
const NS_B: &str = "podlab-lab04-b";
const BRIDGE: &str = "podlab-br04";
/// (namespace, host end of the veth, address of eth0)
const ENDS: [(&str, &str, &str); 2] = [(NS_A, "pl04a", "10.250.4.1/24"), (NS_B, "pl04b", "10.250.4.2/24")];

pub fn check(_ctx: &Ctx) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for (ns, _, _) in ENDS {
        points.push(Point::new(
            format!("network namespace {ns} exists"),
            netns::exists(ns),
            format!("ip netns add {ns}"),
        ));
    }
    let bridge = link::get(None, BRIDGE).ok().flatten();
    points.push(Point::new(
        format!("bridge {BRIDGE} exists and is up"),
        bridge.as_ref().is_some_and(|b| b.up && b.kind.as_deref() == Some("bridge")),
        format!("ip link add {BRIDGE} type bridge && ip link set {BRIDGE} up"),
    ));
    for (ns, host_end, addr) in ENDS {
        let port = link::get(None, host_end).ok().flatten();
        points.push(Point::new(
            format!("{host_end} is plugged into {BRIDGE} and up"),
            port.is_some_and(|p| p.up && p.master.as_deref() == Some(BRIDGE)),
            format!(
                "ip link add {host_end} type veth peer name eth0 netns {ns}; ip link set {host_end} master {BRIDGE} up"
            ),
        ));
        let inside = if netns::exists(ns) { link::list(Some(ns)).unwrap_or_default() } else { Vec::new() };
        let eth0_ok = inside.iter().any(|l| l.name == "eth0" && l.up && l.addrs.iter().any(|a| a == addr));
        let lo_ok = inside.iter().any(|l| l.name == "lo" && l.up);
        points.push(Point::new(
            format!("in {ns}: eth0 is up with {addr}, and lo is up"),
            eth0_ok && lo_ok,
            format!("ip -n {ns} addr add {addr} dev eth0; ip -n {ns} link set eth0 up; ip -n {ns} link set lo up"),
        ));
    }
    let ping =
        netns::exists(NS_A) && netns::ping(Some(NS_A), Ipv4Addr::new(10, 250, 4, 2), Duration::from_secs(1)).is_ok();
    points.push(Point::new(
        format!("{NS_A} reaches 10.250.4.2 (ping)"),
        ping,
        format!(
            "ip netns exec {NS_A} ping -c 3 10.250.4.2 (see the troubleshooting note on bridge netfilter in the guide)"
        ),
    ));
    Ok(points)
}

pub fn solve(_ctx: &Ctx) -> Result<()> {
    link::create_bridge(None, BRIDGE)?;
    link::set_up(None, BRIDGE)?;
    for (ns, host_end, addr) in ENDS {
        netns::create(ns)?;
        link::create_veth(None, host_end, "eth0", Some(ns))?;
        link::set_master(None, host_end, BRIDGE)?;
        link::set_up(None, host_end)?;
        link::add_addr(Some(ns), "eth0", addr)?;
        link::set_up(Some(ns), "eth0")?;
        link::set_up(Some(ns), "lo")?;
    }
    netns::ping(Some(NS_A), Ipv4Addr::new(10, 250, 4, 2), Duration::from_secs(2))?;
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let mut found = false;
    for (ns, host_end, _) in ENDS {
        found |= netns::exists(ns) || link::exists(None, host_end);
        netns::delete(ns)?;
        link::delete(None, host_end)?;
    }
    found |= link::exists(None, BRIDGE);
    link::delete(None, BRIDGE)?;
    Ok(remove_workspace(&ctx.ws)? || found)
}
