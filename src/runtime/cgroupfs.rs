//! The `/sys/fs/cgroup` a container sees (a mount of type "cgroup" in config.json).
//!
//! On cgroup v2 it is one mount of the cgroup2 file system; inside a cgroup namespace its root
//! is the container's own cgroup. On cgroup v1 every controller is its own file system, so the
//! runtime mounts a small tmpfs at /sys/fs/cgroup and one cgroup file system per hierarchy the
//! host has (cpu,cpuacct, memory, pids, ...) under it, plus the `cpu` → `cpu,cpuacct` links. In a
//! cgroup namespace those mounts show the container's cgroup as the root; without one, the
//! container's own cgroup directories are bind-mounted instead (never the host's whole tree).

use std::path::Path;

use nix::mount::MsFlags;

use crate::error::{Error, Result};
use crate::primitives::cgroup::{self, Version};
use crate::primitives::mount as pmount;

/// Mount the cgroup tree at `at` (a `/proc/self/fd/N` path; `shown` is its readable name).
/// `reopen` opens the destination again: after the tmpfs is mounted, the old fd still
/// points at the directory underneath.
pub fn mount(
    at: &str,
    shown: &Path,
    flags: MsFlags,
    cgroup_ns: bool,
    reopen: &dyn Fn() -> Result<std::os::fd::OwnedFd>,
) -> Result<()> {
    let base = flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let ro = flags.contains(MsFlags::MS_RDONLY);
    if cgroup::detect() == Version::V2 {
        if cgroup_ns {
            return pmount::mount_fs_as("cgroup", Path::new(at), shown, Some("cgroup2"), flags, None);
        }
        let own = own_dir("0::")?;
        return bind(&Path::new(cgroup::ROOT).join(own), at, shown, ro, base);
    }
    pmount::mount_fs_as("tmpfs", Path::new(at), shown, Some("tmpfs"), base, Some("mode=755"))?;
    let tmpfs = reopen()?;
    let at = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&tmpfs));
    let at = at.as_str();
    let table = crate::primitives::mount::mountinfo(None)?;
    for m in table.iter().filter(|m| m.fstype == "cgroup" && m.mount_point.starts_with(cgroup::ROOT)) {
        let Some(name) = m.mount_point.file_name().map(|n| n.to_string_lossy().to_string()) else { continue };
        let dir = format!("{at}/{name}");
        std::fs::create_dir(&dir).map_err(|e| Error::io("create", shown.join(&name), e))?;
        let subsystems: Vec<&str> = m.super_options.split(',').filter(|o| *o != "rw" && *o != "ro").collect();
        if cgroup_ns {
            let mut f = base;
            if ro {
                f |= MsFlags::MS_RDONLY;
            }
            // Named hierarchies (name=systemd) show their name as the source, as with runc.
            let source = subsystems.iter().find_map(|s| s.strip_prefix("name=")).unwrap_or("cgroup");
            let here = shown.join(&name);
            pmount::mount_fs_as(source, Path::new(&dir), &here, Some("cgroup"), f, Some(&subsystems.join(",")))
                .map_err(|e| {
                    Error::invalid(format!("mount the {name} cgroup hierarchy at {}: {e}", shown.join(&name).display()))
                })?;
        } else {
            // /proc/self/cgroup names a hierarchy by its controllers or by "name=systemd".
            let key = subsystems.iter().find(|s| **s != "xattr").copied().unwrap_or(name.as_str());
            let own = own_v1_dir(key)?;
            bind(&m.mount_point.join(own), &dir, &shown.join(&name), ro, base)?;
        }
        // cpu,cpuacct is also reachable as cpu and cpuacct.
        if name.contains(',') {
            for part in name.split(',') {
                let _ = std::os::unix::fs::symlink(&name, format!("{at}/{part}"));
            }
        }
    }
    if ro {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | base;
        pmount::mount_fs_as("tmpfs", Path::new(at), shown, None, flags, Some("mode=755"))?;
    }
    Ok(())
}

fn bind(source: &Path, at: &str, shown: &Path, ro: bool, base: MsFlags) -> Result<()> {
    crate::explain::say(format!("mount --bind {} {}", source.display(), shown.display()));
    nix::mount::mount(Some(source), at, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::sys(format!("bind {} on {}", source.display(), shown.display()), e))?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base;
    if ro {
        flags |= MsFlags::MS_RDONLY;
    }
    nix::mount::mount(None::<&str>, at, None::<&str>, flags, None::<&str>)
        .map_err(|e| Error::sys(format!("remount {}", shown.display()), e))
}

/// Our own cgroup on v2 (the `0::/path` line of /proc/self/cgroup), relative.
fn own_dir(prefix: &str) -> Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|p| p.trim_start_matches('/').to_string())
        .ok_or_else(|| Error::invalid("no cgroup v2 line in /proc/self/cgroup"))
}

/// Our own cgroup in the v1 hierarchy that has `controller` (or `name=...`).
fn own_v1_dir(controller: &str) -> Result<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("read", "/proc/self/cgroup", e))?;
    text.lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
            names.split(',').any(|n| n == controller).then(|| path.trim_start_matches('/').to_string())
        })
        .ok_or_else(|| Error::invalid(format!("no {controller} line in /proc/self/cgroup")))
}
