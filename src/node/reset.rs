//! Removing a node's pods at once (`podlab reset`): no grace period, nothing left behind.
//!
//! A kubelet that is removed from a node leaves its pods running; `podlab reset` is the
//! opposite: it stops the agent, kills each pod's supervisor, then removes what the pod had
//! (containers, pause, network, volumes, cgroups) from the records in its directory.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{NodeConfig, NodePaths, agent};
use crate::error::Error;
use crate::pod::node_info::{self, NodeInfo};
use crate::state::StateDirs;

fn stop(pid: i32, signal: Signal, wait: Duration) {
    let _ = kill(Pid::from_raw(pid), signal);
    let deadline = Instant::now() + wait;
    while crate::primitives::proc::alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stop the agent and remove every pod of `dirs`; returns what was removed and what failed.
pub fn reset(dirs: &StateDirs) -> (Vec<String>, Vec<Error>) {
    let paths = NodePaths::new(dirs);
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    if let Some(pid) = agent::running(&paths) {
        stop(pid, Signal::SIGTERM, Duration::from_secs(5));
        if crate::primitives::proc::alive(pid) {
            stop(pid, Signal::SIGKILL, Duration::from_secs(2));
        }
        removed.push(format!("node agent (pid {pid})"));
    }
    let config: Option<NodeConfig> = node_info::read_json(&paths.config_file()).ok();
    for e in agent::existing(&paths.pods_dir()) {
        if let Some(pid) = node_info::live_pid(&e.dir.join(node_info::SUPERVISOR_PID)) {
            stop(pid, Signal::SIGKILL, Duration::from_secs(2));
        }
        let uid = e.pod.metadata.uid.clone().unwrap_or_default();
        let node: Option<NodeInfo> = node_info::read_json(&e.dir.join(node_info::NODE_FILE)).ok();
        if let Some(node) = node {
            // The pod's network lives in the agent's network namespace.
            let netns = config.as_ref().and_then(|c| c.netns.clone()).filter(|n| crate::primitives::netns::exists(n));
            let failures = match crate::primitives::netns::run_in(netns.as_deref(), || {
                crate::pod::setup::teardown(&node, &e.pod, &e.dir, &uid)
            }) {
                Ok(f) => f,
                Err(err) => vec![err.to_string()],
            };
            errors.extend(failures.into_iter().map(Error::invalid));
        }
        match std::fs::remove_dir_all(&e.dir) {
            Ok(()) => removed.push(format!("pod {} ({uid})", agent::key_of(&e.pod))),
            Err(err) => errors.push(Error::io("remove", &e.dir, err)),
        }
    }
    if let Some(c) = &config {
        let netns = c.netns.clone();
        if netns.as_deref().is_none_or(crate::primitives::netns::exists) {
            let cfg = crate::pod::network::NodeNetConfig {
                bridge: c.bridge.clone(),
                cidr: c.pod_cidr.clone(),
                ipam_dir: paths.ipam_dir(),
            };
            match crate::primitives::netns::run_in(netns.as_deref(), || crate::pod::network::teardown_node(&cfg)) {
                Ok(Ok(())) => removed.push(format!("node network (bridge {})", c.bridge)),
                Ok(Err(e)) | Err(e) => errors.push(e),
            }
            match crate::primitives::netns::run_in(netns.as_deref(), || super::services::cleanup_rules(&c.pod_cidr)) {
                Ok(Ok(())) => removed.push("service rules (KUBE-* chains)".into()),
                Ok(Err(e)) | Err(e) => errors.push(e),
            }
        }
    }
    for p in [paths.run_dir(), paths.manifests(), paths.services_dir()] {
        if p.exists() {
            match std::fs::remove_dir_all(&p) {
                Ok(()) => removed.push(p.display().to_string()),
                Err(err) => errors.push(Error::io("remove", &p, err)),
            }
        }
    }
    (removed, errors)
}
