//! Making and unmaking a pod's shared parts, in the kubelet's order.
//!
//! Before any container runs, the kubelet (through the CRI runtime) makes the pod's cgroup
//! below its QoS class, its network namespace wired to the node bridge (`RunPodSandbox`),
//! the pause process holding the namespaces, the volumes, and the pod's `/etc/hosts` and
//! `/etc/resolv.conf`. Teardown undoes it all; it works from names alone, so it also cleans
//! up after a supervisor that was killed half way.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::node_info::{self, NodeInfo, PAUSE_PID};
use super::qos::{self, QosClass};
use super::sandbox::{Sandbox, SandboxSpec};
use crate::error::{IoContext, Result};
use crate::primitives::{cgroup::Cgroup, netns};

/// The node network configuration of `node`.
pub fn net_config(node: &NodeInfo) -> super::network::NodeNetConfig {
    super::network::NodeNetConfig {
        bridge: node.bridge.clone(),
        cidr: node.cidr.clone(),
        ipam_dir: node.ipam_dir.clone(),
    }
}

/// `hostNetwork: true`.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

/// The pod's cgroup, made with the kubelet's values (the QoS class parents too).
pub fn make_cgroup(pod: &Pod, uid: &str) -> Result<(QosClass, Cgroup)> {
    let spec = pod.spec.as_ref().ok_or_else(|| crate::Error::invalid("pod has no spec"))?;
    let class = qos::class(spec);
    let values = qos::pod_cgroup(spec)?;
    // The class parents: BestEffort gets the minimum shares, as the kubelet's QoS manager does.
    for (c, shares) in [(QosClass::Burstable, None), (QosClass::BestEffort, Some(2))] {
        if c == class {
            let parent = Cgroup::new(qos::class_cgroup(c))?;
            parent.create()?;
            if let Some(s) = shares {
                parent.apply(&crate::primitives::cgroup::Limits { cpu_shares: Some(s), ..Default::default() })?;
            }
        }
    }
    let cg = Cgroup::new(qos::pod_cgroup_path(class, uid))?;
    cg.create()?;
    cg.apply(&values.limits())?;
    Ok((class, cg))
}

/// The pod network: its namespace, the veth into the node bridge and an IP. Returns the IP.
pub fn make_network(node: &NodeInfo, pod: &Pod, uid: &str) -> Result<Option<String>> {
    if host_network(pod) {
        return Ok(None);
    }
    let cfg = net_config(node);
    // The agent sets the node up when it starts; again only if the bridge is gone (each
    // iptables check is a process: doing it for every pod cost a fifth of a pod's start).
    if !crate::primitives::link::exists(None, &cfg.bridge) {
        super::network::ensure_node(&cfg)?;
    }
    let name = node_info::netns_name(uid);
    netns::create(&name)?;
    let net = super::network::setup_pod(&cfg, uid, &name, &super::network::host_ports(pod))?;
    Ok(Some(net.ip.to_string()))
}

/// The node's cluster DNS address; an address that is not IPv4 is an error naming node.json.
pub fn cluster_dns(node: &NodeInfo) -> Result<Option<std::net::Ipv4Addr>> {
    match node.cluster_dns.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            crate::Error::invalid(format!(
                "{}: clusterDns {text:?} is not an IPv4 address (the node agent writes it: restart it)",
                node_info::NODE_FILE
            ))
        }),
    }
}

/// `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` for the pod's containers.
pub fn write_files(node: &NodeInfo, pod: &Pod, pod_dir: &Path, ip: Option<&str>) -> Result<()> {
    let hostname = super::container::hostname(pod);
    let ip4 = ip.and_then(|i| i.parse().ok());
    let hosts = if host_network(pod) {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        super::network::hosts_file(ip4, &hostname, pod)
    };
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = super::network::resolv_conf(&host_resolv, pod, cluster_dns(node)?)?;
    for (name, text) in [("hosts", hosts), ("hostname", format!("{hostname}\n")), ("resolv.conf", resolv)] {
        let path = pod_dir.join(name);
        std::fs::write(&path, text).ctx("write", &path)?;
    }
    Ok(())
}

/// Start the pause process in the pod's namespaces, in a leaf cgroup `pod<uid>/pause` below
/// the pod's (cgroup v2 lets only leaves hold processes once controllers are enabled for
/// children: the containers' cgroups sit beside it, as containerd places the sandbox).
pub fn start_pause(pod: &Pod, pod_dir: &Path, uid: &str, cgroup: &Cgroup) -> Result<Sandbox> {
    let spec = pod.spec.as_ref();
    let host = host_network(pod);
    let leaf = Cgroup::new(cgroup.rel().join("pause"))?;
    leaf.create()?;
    let cgroup = &leaf;
    let sb = Sandbox::start(&SandboxSpec {
        hostname: super::container::hostname(pod),
        network: !host,
        netns: (!host).then(|| netns::path(&node_info::netns_name(uid))),
        share_pid: spec.and_then(|s| s.share_process_namespace).unwrap_or(false),
        cgroup: Some(cgroup.rel().to_path_buf()),
    })?;
    node_info::write_pid(&pod_dir.join(PAUSE_PID), sb.pid)?;
    Ok(sb)
}

/// Remove everything of the pod that lives outside its directory: its containers, the
/// pause, the network, the cgroup. Idempotent; errors are collected, not stopped at.
pub fn teardown(node: &NodeInfo, pod: &Pod, pod_dir: &Path, uid: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut note = |what: &str, r: Result<()>| {
        if let Err(e) = r {
            errors.push(format!("{what}: {e}"));
        }
    };
    let rt =
        crate::runtime::container::Runtime { root: node.runtime_root.clone(), systemd_cgroup: false, explain: false };
    let suffix = format!("_{}", node_info::short_uid(uid));
    if let Ok(list) = crate::runtime::state::list(&node.runtime_root) {
        for c in list.iter().filter(|c| c.id.starts_with("k8s_") && c.id.ends_with(&suffix)) {
            note(&format!("delete container {}", c.id), rt.delete(&c.id, true));
        }
    }
    if let Some(pid) = node_info::live_pid(&pod_dir.join(PAUSE_PID)) {
        let sb = Sandbox { pid, spec: SandboxSpec::default() };
        note("stop the pause process", sb.stop(std::time::Duration::from_secs(2)));
    }
    let _ = std::fs::remove_file(pod_dir.join(PAUSE_PID));
    if !host_network(pod) {
        note(
            "remove the pod network",
            super::network::teardown_pod(&net_config(node), uid, !super::network::host_ports(pod).is_empty()),
        );
        note("remove the network namespace", netns::delete(&node_info::netns_name(uid)));
    }
    note("remove the pod's volumes", super::volumes::teardown(pod_dir));
    if let Some(spec) = pod.spec.as_ref() {
        let class = qos::class(spec);
        if let Ok(cg) = Cgroup::new(qos::pod_cgroup_path(class, uid)) {
            note("remove the pod cgroup", cg.remove());
        }
    }
    errors
}
