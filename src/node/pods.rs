//! The node's pods as Kubernetes objects: each pod's manifest joined with the status its
//! supervisor wrote, as the kubelet reports them (`/pods` of the kubelet API).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::NodePaths;
use super::agent::{existing, key_of};
use crate::pod::node_info;
use crate::pod::status::PodRecord;

/// A pod of this node: its directory, the object with its status, and the raw record.
#[derive(Debug, Clone)]
pub struct NodePod {
    pub dir: PathBuf,
    pub pod: Pod,
    pub record: Option<PodRecord>,
}

impl NodePod {
    /// `spec.restartPolicy`, defaulted.
    pub fn restart_policy(&self) -> String {
        self.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into())
    }
}

/// Every pod on the node, sorted by namespace and name.
pub fn list(paths: &NodePaths) -> Vec<NodePod> {
    let mut pods: Vec<NodePod> = existing(&paths.pods_dir()).into_iter().map(|e| view(&e.dir, e.pod)).collect();
    pods.sort_by_key(|p| key_of(&p.pod));
    pods
}

/// One pod by namespace and name (the newest, when an old one is still being deleted).
pub fn get(paths: &NodePaths, namespace: &str, name: &str) -> Option<NodePod> {
    let key = format!("{namespace}/{name}");
    list(paths).into_iter().filter(|p| key_of(&p.pod) == key).max_by_key(|p| !p.dir.join("deleting").exists())
}

/// The pod with its status filled in from the supervisor's record.
pub fn view(dir: &Path, mut pod: Pod) -> NodePod {
    let record = PodRecord::load(dir).ok();
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    let mut status = record.as_ref().map(|r| r.to_status(&policy)).unwrap_or_default();
    if status.phase.is_none() {
        status.phase = Some("Pending".into());
    }
    let deleting = dir.join("deleting").exists() || record.as_ref().is_some_and(|r| r.deleting);
    if deleting {
        pod.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(crate::pod::status::timestamp_now()));
    }
    let supervisor = node_info::live_pid(&dir.join(node_info::SUPERVISOR_PID));
    if supervisor.is_none() && !record.as_ref().is_some_and(|r| r.finished) {
        status.reason = Some("SupervisorLost".into());
    }
    pod.status = Some(status);
    NodePod { dir: dir.to_path_buf(), pod, record }
}
