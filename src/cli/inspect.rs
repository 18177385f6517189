//! `podlab inspect pod NAME`: the X-ray of a pod, read from the kernel, each part with the
//! command that shows the same by hand.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use podlab::node::NodePaths;
use podlab::pod::node_info;
use podlab::primitives::cgroup::{self, Version};
use podlab::state::StateDirs;

const NAMESPACES: [&str; 5] = ["net", "ipc", "uts", "pid", "mnt"];

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_else(|_| "-".into())
}

/// The limit files of a cgroup, as `name=value` pairs.
fn cgroup_values(rel: &str) -> (String, String) {
    match cgroup::detect() {
        Version::V2 => {
            let base = format!("/sys/fs/cgroup/{rel}");
            let v = format!(
                "cpu.weight={} cpu.max={} memory.max={}",
                read(&format!("{base}/cpu.weight")),
                read(&format!("{base}/cpu.max")),
                read(&format!("{base}/memory.max"))
            );
            (v, format!("cat {base}/{{cpu.weight,cpu.max,memory.max}}"))
        }
        _ => {
            let cpu = format!("/sys/fs/cgroup/cpu/{rel}");
            let mem = format!("/sys/fs/cgroup/memory/{rel}");
            let v = format!(
                "cpu.shares={} cpu.cfs_quota_us={} memory.limit_in_bytes={}",
                read(&format!("{cpu}/cpu.shares")),
                read(&format!("{cpu}/cpu.cfs_quota_us")),
                read(&format!("{mem}/memory.limit_in_bytes"))
            );
            (v, format!("cat {cpu}/cpu.{{shares,cfs_quota_us}} {mem}/memory.limit_in_bytes"))
        }
    }
}

pub fn run(dirs: &StateDirs, pod: &Pod) -> anyhow::Result<String> {
    let paths = NodePaths::new(dirs);
    let uid = pod.metadata.uid.clone().context("the pod has no uid")?;
    let dir = paths.pods_dir().join(&uid);
    let status = pod.status.clone().unwrap_or_default();
    let mut out = String::new();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "Pod {}/{name}  uid {uid}\n  QoS class {}, IP {}, directory {}",
        pod.metadata.namespace.clone().unwrap_or_default(),
        status.qos_class.clone().unwrap_or_default(),
        status.pod_ip.clone().unwrap_or_else(|| "<none>".into()),
        dir.display()
    );
    let sup = node_info::live_pid(&dir.join(node_info::SUPERVISOR_PID));
    let pause = node_info::live_pid(&dir.join(node_info::PAUSE_PID));
    let mut procs: Vec<(String, i32)> = vec![];
    if let Some(p) = pause {
        procs.push(("pause".into(), p));
    }
    let record = podlab::pod::status::PodRecord::load(&dir).ok();
    for c in record.iter().flat_map(|r| r.init_containers.iter().chain(r.containers.iter())) {
        if let Some(pid) = c.pid() {
            procs.push((c.name.clone(), pid));
        }
    }
    let _ = writeln!(out, "\nProcesses                                   $ ps -o pid,comm,args -p PID");
    if let Some(s) = sup {
        let _ = writeln!(out, "  supervisor  pid {s:<8} {}", cmdline(s));
    }
    for (n, pid) in &procs {
        let _ = writeln!(out, "  {n:<11} pid {pid:<8} {}", cmdline(*pid));
    }

    let _ = writeln!(out, "\nNamespaces (inode numbers; equal = shared)  $ ls -l /proc/PID/ns");
    let mut header = format!("  {:<14}", "PROCESS");
    for ns in NAMESPACES {
        let _ = write!(header, " {ns:<11}");
    }
    let _ = writeln!(out, "{}", header.trim_end());
    for (n, pid) in &procs {
        let mut line = format!("  {:<14}", format!("{n} ({pid})"));
        for ns in NAMESPACES {
            let inode =
                podlab::primitives::proc::ns_inode(*pid, ns).map(|i| i.to_string()).unwrap_or_else(|_| "-".into());
            let _ = write!(line, " {inode:<11}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }

    let _ = writeln!(out, "\nCgroups");
    if let Some(spec) = pod.spec.as_ref() {
        let class = podlab::pod::qos::class(spec);
        let pod_rel = podlab::pod::qos::pod_cgroup_path(class, &uid).display().to_string();
        let (v, cmd) = cgroup_values(&pod_rel);
        let _ = writeln!(out, "  pod        {pod_rel}\n             {v}\n             $ {cmd}");
        for c in &spec.containers {
            let rel = podlab::pod::qos::container_cgroup_path(class, &uid, &c.name).display().to_string();
            if Path::new("/sys/fs/cgroup").join(&rel).exists() || Path::new("/sys/fs/cgroup/cpu").join(&rel).exists() {
                let (v, _) = cgroup_values(&rel);
                let _ = writeln!(out, "  {:<10} {rel}\n             {v}", c.name);
            }
        }
    }

    let _ = writeln!(out, "\nNetwork");
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        let _ = writeln!(out, "  hostNetwork: the pod uses the node's network namespace");
    } else {
        let netns = node_info::netns_name(&uid);
        let cfg: Option<podlab::node::NodeConfig> = node_info::read_json(&paths.config_file()).ok();
        let bridge = cfg.map(|c| c.bridge).unwrap_or_else(|| podlab::node::DEFAULT_BRIDGE.into());
        let veth = podlab::pod::network::veth_name(&uid);
        let _ = writeln!(out, "  netns {netns}   $ ip netns list; ip -n {netns} addr");
        let _ = writeln!(
            out,
            "  veth pair: {veth} (node side, port of bridge {bridge}) <-> eth0 (pod side)   $ ip link show master {bridge}"
        );
        match podlab::primitives::link::list(Some(&netns)) {
            Ok(links) => {
                for l in links {
                    let _ = writeln!(
                        out,
                        "    pod {:<6} {} {}",
                        l.name,
                        if l.up { "UP" } else { "DOWN" },
                        l.addrs.join(" ")
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "    ({e})");
            }
        }
        if let Ok(routes) = podlab::primitives::link::routes(Some(&netns)) {
            for r in routes {
                let _ = writeln!(out, "    route {r}");
            }
        }
    }

    for (n, pid) in procs.iter().filter(|(n, _)| n != "pause") {
        let _ = writeln!(out, "\nMounts of {n}                                $ cat /proc/{pid}/mountinfo");
        if let Ok(mounts) = podlab::primitives::mount::mountinfo(Some(*pid)) {
            for m in mounts {
                let _ = writeln!(out, "  {:<28} {:<8} {}", m.mount_point.display(), m.fstype, m.source);
            }
        }
    }
    Ok(out)
}
