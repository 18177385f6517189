//! The control plane: what `podlab server` runs for a cluster.
//!
//! Kubernetes' control plane is an API server in front of a store (etcd): every component —
//! kubectl, the scheduler, the controllers, each node's kubelet — reads and writes objects
//! through the API server's REST interface and watches it for changes. Nothing talks to
//! anything else directly; the store is the one shared truth.

pub mod api;
pub mod server;
pub mod store;
