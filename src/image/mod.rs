//! Images: the root filesystems containers start from.
//!
//! For now a local recipe builds a BusyBox root filesystem from the host's
//! `busybox-static` package (`images/busybox/build.sh`); pulling OCI images comes next.

pub mod recipe;
