//! The service proxy of a node: Services as the cluster's DNS names ([`dns`]), the addresses
//! Services get ([`alloc`]), and what stands behind each of them ([`endpoints`], flattened into
//! the proxy's [`model`]).

pub mod alloc;
pub mod dns;
pub mod endpoints;
pub mod model;
