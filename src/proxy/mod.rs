//! The service proxy of a node: Services as the cluster's DNS names ([`dns`]).

pub mod dns;
pub mod model;
