//! The node agent (`podlab node`): podlab's kubelet.
//!
//! A kubelet owns every pod on its host. It takes the pods it should run from *sources* — a
//! static manifest directory (how kubeadm starts the control plane) and, in a cluster, the API
//! server — and makes the host match: it starts a supervisor for each new pod, stops the pods
//! that are gone, and restarts a supervisor that died. It serves a small HTTP API (pods, logs,
//! exec) on a local socket, which `podlab get/logs/exec` use, as `kubectl` uses the kubelet's
//! through the API server.

pub mod agent;
pub mod api;
pub mod client;
pub mod pods;
pub mod reset;
pub mod services;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::state::StateDirs;

/// Where a node agent keeps its files.
#[derive(Debug, Clone)]
pub struct NodePaths {
    pub dirs: StateDirs,
}

impl NodePaths {
    pub fn new(dirs: &StateDirs) -> Self {
        NodePaths { dirs: dirs.clone() }
    }
    /// `run/node`: the agent's socket, pid, log and configuration.
    pub fn run_dir(&self) -> PathBuf {
        self.dirs.run.join("node")
    }
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("kubelet.sock")
    }
    /// A Unix datagram socket: any datagram makes the agent run a pass at once (supervisors
    /// send one when a pod's readiness changes).
    pub fn poke_socket(&self) -> PathBuf {
        self.run_dir().join("poke.sock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir().join("agent.pid")
    }
    pub fn log_file(&self) -> PathBuf {
        self.run_dir().join("agent.log")
    }
    pub fn config_file(&self) -> PathBuf {
        self.run_dir().join("config.json")
    }
    pub fn ipam_dir(&self) -> PathBuf {
        self.run_dir().join("ipam")
    }
    /// The default static manifest directory (`lib/manifests`), where `podlab run -f` puts pods.
    pub fn manifests(&self) -> PathBuf {
        self.dirs.lib.join("manifests")
    }
    /// `lib/pods/<uid>`: one directory per pod.
    pub fn pods_dir(&self) -> PathBuf {
        self.dirs.lib.join("pods")
    }
    /// The service proxy's allocations (ClusterIPs, nodePorts).
    pub fn services_dir(&self) -> PathBuf {
        self.dirs.lib.join("services")
    }
    /// The OCI runtime's state (shared with `podlab runtime`).
    pub fn runtime_root(&self) -> PathBuf {
        self.dirs.run.join("runtime")
    }
}

/// How a node agent runs (saved in `run/node/config.json` for the CLI and for restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeConfig {
    pub node_name: String,
    pub manifests: PathBuf,
    pub pod_cidr: String,
    pub bridge: String,
    pub host_ip: String,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub explain: bool,
    /// The named network namespace the agent runs in (`--netns`), None for the caller's.
    #[serde(default)]
    pub netns: Option<String>,
    /// The cluster DNS Service's IP, when this node serves it (pods' resolv.conf names it).
    #[serde(default)]
    pub cluster_dns: Option<String>,
}

/// The default pod CIDR and bridge.
pub const DEFAULT_BRIDGE: &str = "podlab0";
