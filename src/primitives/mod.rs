//! Linux primitives: each file wraps one kernel concept (chroot, mounts, namespaces,
//! network namespaces, links, cgroups) as small sync functions that explain themselves.
//! Nothing here knows about boxes, pods or labs.

pub mod caps;
pub mod cgroup;
pub mod channel;
pub mod chroot;
pub mod iptables;
pub mod link;
pub mod mount;
pub mod namespace;
pub mod netns;
pub mod proc;
pub mod process;
pub mod random;
pub mod record;
pub mod seccomp;
