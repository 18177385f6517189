//! The service proxy: Services become iptables rules, the way kube-proxy's iptables mode does.
//!
//! A Service's cluster IP is on no interface: the rules catch packets sent to it and DNAT them
//! to one of the Service's ready pods, chosen at random per connection (or by client, with
//! session affinity); node ports do the same for a port of every node address. The chains have
//! kube-proxy's names and layout, so `iptables-save` on a podlab node reads like a Kubernetes
//! node. Needs: `net.ipv4.ip_forward=1` (the pod network sets it), and for pods reaching a
//! Service whose endpoint is on their own bridge, `net.bridge.bridge-nf-call-iptables=1` (set
//! by the proxier, per network namespace) and hairpin mode on the bridge ports (set by the pod
//! network), so a pod can even reach itself through its Service.
//!
//! [`model`] is the input, [`rules`] the rules of one Service (pure), [`plan`] the difference
//! between two rule sets as iptables-restore input (pure), [`backend`] legacy or nft
//! iptables, and [`sync`] the [`Proxier`] that applies it all. [`alloc`] hands out cluster IPs
//! and node ports, [`endpoints`] works out which pods stand behind each Service (the
//! endpoints controller), and [`dns`] is the cluster DNS: Services as names
//! (`web.default.svc.cluster.local`).

pub mod alloc;
pub mod backend;
pub mod dns;
pub mod endpoints;
pub mod model;
pub mod plan;
pub mod rules;
pub mod sync;

pub use backend::Backend;
pub use model::{Endpoint, Protocol, ProxyConfig, ServicePort, ServicePortName};
pub use sync::{Proxier, SyncStats};
