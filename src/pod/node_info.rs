//! What a pod's supervisor needs to know about its node, and where a pod's files live.
//!
//! The node agent writes `node.json` (this node's name, address, pod network and state
//! directories) next to the pod's manifest in the pod directory before it starts the pod's
//! supervisor, so a supervisor never needs to ask the agent anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// The node, as a pod's supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub node_name: String,
    pub host_ip: String,
    /// The node's pod CIDR (`10.244.0.0/24`).
    pub cidr: String,
    /// The node's bridge (`podlab0`).
    pub bridge: String,
    /// Pod IP claims.
    pub ipam_dir: PathBuf,
    /// The OCI runtime's state directory.
    pub runtime_root: PathBuf,
    /// The image store.
    pub images: PathBuf,
    /// CrashLoopBackOff: first delay and cap, in milliseconds (10 s and 300 s in Kubernetes).
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Print the explanation of each action into the supervisor's log.
    #[serde(default)]
    pub explain: bool,
    /// The cluster DNS server's address (the kubelet's --cluster-dns, such as 10.96.0.10): the
    /// only name server of pods with `dnsPolicy: ClusterFirst`. None: they use the node's.
    #[serde(default)]
    pub cluster_dns: Option<String>,
    /// The node agent's poke socket (a Unix datagram socket): a datagram there makes it look
    /// at its pods at once.
    #[serde(default)]
    pub poke: Option<PathBuf>,
}

/// The files of a pod directory.
pub const POD_FILE: &str = "pod.json";
pub const OBJECTS_FILE: &str = "objects.json";
pub const NODE_FILE: &str = "node.json";
pub const SUPERVISOR_PID: &str = "supervisor.pid";
pub const PAUSE_PID: &str = "pause.pid";
pub const SUPERVISOR_LOG: &str = "supervisor.log";
/// Every command the supervisor explained for this pod (`$ ip link add ...`), in order.
pub const EXPLAIN_LOG: &str = "explain.log";

/// Read a JSON file of a pod directory.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).ctx("read", path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

/// Write a JSON file atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    super::status::write_atomic(path, &bytes)
}

/// A process recorded as "pid starttime", alive only when both still match.
pub fn write_pid(path: &Path, pid: i32) -> Result<()> {
    let start = crate::primitives::proc::start_time(pid).unwrap_or(0);
    super::status::write_atomic(path, format!("{pid} {start}").as_bytes())
}

/// The recorded process if it is still the same one.
pub fn live_pid(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let pid: i32 = words.next()?.parse().ok()?;
    let start: u64 = words.next()?.parse().ok()?;
    (crate::primitives::proc::alive(pid) && crate::primitives::proc::start_time(pid) == Some(start)).then_some(pid)
}

/// The short form of a pod uid used in kernel object names (netns, container ids).
pub fn short_uid(uid: &str) -> String {
    uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect()
}

/// The pod's network namespace name (`podlab-<uid8>`).
pub fn netns_name(uid: &str) -> String {
    format!("podlab-{}", short_uid(uid))
}

/// The runtime id of a pod's container, in the kubelet's old dockershim style:
/// `k8s_<container>_<pod>_<namespace>_<uid8>`.
pub fn container_id(container: &str, pod: &str, namespace: &str, uid: &str) -> String {
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' }).collect::<String>()
    };
    format!("k8s_{}_{}_{}_{}", clean(container), clean(pod), clean(namespace), short_uid(uid))
}
