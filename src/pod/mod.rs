//! Pods: a sandbox (the pause process and its namespaces), the pod's network, its cgroups by
//! QoS class, and the containers run by the OCI runtime inside them.
//!
//! So far (issue 6 is under way): [`manifest`] (YAML → validated Kubernetes objects),
//! [`sandbox`] (the pause process), [`qos`] (QoS class, the kubelet's cgroup tree and values),
//! [`ipam`] (pod IP addresses). The node agent, the pod network and the containers come next.

pub mod env;
pub mod ipam;
pub mod logs;
pub mod manifest;
pub mod network;
pub mod probe;
pub mod qos;
pub mod restart;
pub mod sandbox;
pub mod volumes;
