//! Pods: a sandbox (the pause process and its namespaces), the pod's network, its cgroups by
//! QoS class, and the containers run by the OCI runtime inside them.
//!
//! The parts: [`manifest`] (YAML → validated Kubernetes objects), [`sandbox`] (the pause
//! process), [`network`] and [`ipam`] (bridge, veth, pod IPs, hostPorts), [`qos`] (QoS class,
//! the kubelet's cgroup tree and values), [`env`] and [`volumes`] (what a container sees),
//! [`container`] (a pod container as an OCI bundle), [`setup`] (the pod's shared parts),
//! [`probe`], [`restart`] and [`logs`], all driven by the per-pod [`supervisor`] whose
//! [`status`] the node agent reports.

pub mod container;
pub mod env;
pub mod ipam;
pub mod logs;
pub mod manifest;
pub mod network;
pub mod node_info;
pub mod probe;
pub mod qos;
pub mod restart;
pub mod sandbox;
pub mod setup;
pub mod status;
pub mod supervisor;
pub mod volumes;
