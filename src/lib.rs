//! podlab: a Kubernetes pod built from Linux primitives.
//!
//! Layers (each uses only those before it): `primitives` (syscalls and kernel files),
//! then `image`, the OCI `runtime`, `pod` (sandbox, network, QoS cgroups), the composed
//! tools (`boxrun` for `podlab box`), the `labs`, and the checks
//! (`doctor`, `reset`). See `design.md` in the project's shared notes and the README.

pub mod boxrun;
pub mod control;
pub mod doctor;
pub mod error;
pub mod explain;
pub mod image;
pub mod labs;
pub mod node;
pub mod pod;
pub mod primitives;
pub mod proxy;
pub mod quantity;
pub mod reset;
pub mod runtime;
pub mod state;
#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
