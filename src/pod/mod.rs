//! Pods: a sandbox (the pause process and its namespaces), the pod's network, its cgroups by
//! QoS class, and the containers run by the OCI runtime inside them.

pub mod manifest;
pub mod sandbox;
