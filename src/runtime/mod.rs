//! The OCI runtime: a *bundle* on disk becomes a running container, the job `runc` does.
//!
//! A bundle is a directory holding two things: `config.json` (the runtime spec: the process
//! to run, its user, environment and capabilities, the mounts, namespaces and cgroup limits)
//! and the root filesystem it names (usually `rootfs/`). A runtime reads the spec, creates the
//! namespaces and cgroup, mounts the root and pivots into it, then execs the process; it
//! knows nothing of images or pods, which is why Kubernetes can swap runtimes freely.
//!
//! Files: [`spec`] (config.json), [`state`] (the state directory and OCI states), [`container`]
//! (the lifecycle commands), [`init`] (the container's first process), [`rootfs`] and
//! [`cgroupfs`] (mounts), [`process`] (user, capabilities, seccomp, exec), [`cgroups`]
//! (resources), [`exe`] (the read-only re-exec), [`hooks`] (OCI hooks), [`cli`] (runc's
//! command line).

pub mod cgroupfs;
pub mod cgroups;
pub mod cli;
pub mod container;
pub mod exe;
pub mod features;
pub mod hooks;
pub mod init;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod state;
