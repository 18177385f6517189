//! Cluster-wide Service addresses: a ClusterIP from 10.96.0.0/12 and NodePorts from
//! 30000-32767, each given to one Service only.
//!
//! The real API server keeps bitmaps of the ranges in etcd; here the Services in the store
//! are the record: the server looks at what they hold (under a lock, so two creates never pick
//! the same address) and picks a random free one. 10.96.0.1 (the `kubernetes` Service) and
//! 10.96.0.10 (cluster DNS) are never handed out at random.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::crud::{Api, ListOptions};
use super::path::Target;
use super::resources;
use super::status::{ApiError, ApiResult};
use crate::proxy::alloc::{DNS_SERVICE_IP, NODE_PORT_RANGE, random_u32};

const FIRST: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SIZE: u32 = 1 << 20;

/// Give `svc` its ClusterIP and NodePorts (kept from `old` on an update).
pub(super) async fn assign(api: &Api, svc: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let name = svc["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let uid = svc["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let spec = &mut svc["spec"];
    if spec["type"] == "ExternalName" {
        return Ok(());
    }
    let (used_ips, used_ports) = in_use(api, &uid).await?;
    let invalid = |field: &str, msg: String| ApiError::invalid("Service", &name, &[(field.to_string(), msg)]);
    let old_ip = old.and_then(|o| o["spec"]["clusterIP"].as_str()).unwrap_or_default().to_string();
    let ip = match spec["clusterIP"].as_str().unwrap_or_default() {
        "" if !old_ip.is_empty() => old_ip.clone(),
        "" => pick_ip(&used_ips).ok_or_else(|| invalid("spec.clusterIP", "no free address in 10.96.0.0/12".into()))?,
        given => {
            if !old_ip.is_empty() && given != old_ip {
                return Err(invalid("spec.clusterIPs[0]", format!("Invalid value: {given:?}: field is immutable")));
            }
            if given != "None" && old_ip.is_empty() {
                let a: Ipv4Addr = given.parse().map_err(|_| {
                    invalid("spec.clusterIPs[0]", format!("Invalid value: {given:?}: must be a valid IP address"))
                })?;
                if u32::from(a).wrapping_sub(FIRST) >= SIZE {
                    return Err(invalid(
                        "spec.clusterIPs[0]",
                        format!(
                            "Invalid value: {given:?}: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"
                        ),
                    ));
                }
                if used_ips.contains(&a) {
                    return Err(invalid(
                        "spec.clusterIPs[0]",
                        format!("Invalid value: {given:?}: provided IP is already allocated"),
                    ));
                }
            }
            given.to_string()
        }
    };
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    let node_ports = spec["type"] == "NodePort" || spec["type"] == "LoadBalancer";
    let mut taken = used_ports;
    let old_ports: Vec<Value> = old.and_then(|o| o["spec"]["ports"].as_array().cloned()).unwrap_or_default();
    for (i, p) in spec["ports"].as_array_mut().into_iter().flatten().enumerate() {
        if !node_ports {
            continue;
        }
        let kept = old_ports
            .iter()
            .find(|o| o["port"] == p["port"] && o["protocol"] == p["protocol"])
            .and_then(|o| o["nodePort"].as_u64());
        let port = match p["nodePort"].as_u64() {
            Some(n) if n != 0 => {
                let n = u16::try_from(n).unwrap_or(0);
                if !NODE_PORT_RANGE.contains(&n) {
                    return Err(invalid(
                        &format!("spec.ports[{i}].nodePort"),
                        format!(
                            "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                        ),
                    ));
                }
                if Some(u64::from(n)) != kept && !taken.insert(n) {
                    return Err(invalid(
                        &format!("spec.ports[{i}].nodePort"),
                        format!("Invalid value: {n}: provided port is already allocated"),
                    ));
                }
                n
            }
            _ => match kept {
                Some(k) => k as u16,
                None => pick_port(&mut taken).ok_or_else(|| invalid("spec.ports", "no free NodePort".into()))?,
            },
        };
        p["nodePort"] = json!(port);
    }
    Ok(())
}

/// The ClusterIPs and NodePorts held by every Service but the one with `uid`.
async fn in_use(api: &Api, uid: &str) -> ApiResult<(HashSet<Ipv4Addr>, HashSet<u16>)> {
    let r = resources::find("", "services").ok_or_else(|| ApiError::internal("no services resource"))?;
    let t = Target { resource: r, namespace: None, name: None, subresource: None };
    let page = api.list(&t, &ListOptions::default()).await?;
    let (mut ips, mut ports) = (HashSet::new(), HashSet::new());
    for s in page.items.iter().filter(|s| s["metadata"]["uid"] != uid) {
        if let Some(a) = s["spec"]["clusterIP"].as_str().and_then(|a| a.parse().ok()) {
            ips.insert(a);
        }
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(n) = p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()) {
                ports.insert(n);
            }
        }
    }
    Ok((ips, ports))
}

fn pick_ip(used: &HashSet<Ipv4Addr>) -> Option<String> {
    let reserved = |a: Ipv4Addr| a == Ipv4Addr::new(10, 96, 0, 1) || a == DNS_SERVICE_IP;
    let start = random_u32() % SIZE;
    (0..SIZE)
        .map(|i| Ipv4Addr::from(FIRST + (start + i) % SIZE))
        .find(|a| {
            let off = u32::from(*a) - FIRST;
            off != 0 && off != SIZE - 1 && !reserved(*a) && !used.contains(a)
        })
        .map(|a| a.to_string())
}

fn pick_port(taken: &mut HashSet<u16>) -> Option<u16> {
    let (lo, n) = (*NODE_PORT_RANGE.start() as u32, (NODE_PORT_RANGE.end() - NODE_PORT_RANGE.start()) as u32 + 1);
    let start = random_u32() % n;
    let port = (0..n).map(|i| (lo + (start + i) % n) as u16).find(|p| !taken.contains(p))?;
    taken.insert(port);
    Some(port)
}
