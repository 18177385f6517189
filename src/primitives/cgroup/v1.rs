//! cgroup v1: one hierarchy per controller.
//!
//! Each controller has its own tree (/sys/fs/cgroup/cpu, /sys/fs/cgroup/memory, ...; some
//! distributions co-mount cpu and cpuacct as `cpu,cpuacct`), so one podlab cgroup is a
//! directory in each tree and a process joins by being written into each. CPU limits are
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us`, memory `memory.limit_in_bytes`, OOM kills are
//! counted in `memory.oom_control`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Backend, Stats, Version, keyed, mkdir_p, read, read_procs, read_u64, write};
use crate::error::{Error, Result};

/// The controllers podlab needs on v1.
pub const CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];

/// The cgroup v1 backend.
pub struct V1;

/// One v1 hierarchy: its controllers (or `name=systemd`) and where it is mounted.
struct Hierarchy {
    controllers: Vec<String>,
    mount_point: PathBuf,
}

/// Every v1 hierarchy mounted under /sys/fs/cgroup, read once from /proc/self/mountinfo.
///
/// A podlab cgroup is a directory in *every* hierarchy, not only in those it sets limits in
/// (cpu, memory, pids), for the same reason runc does it: a process that was never moved in a
/// hierarchy stays in that hierarchy's root, and a container's /sys/fs/cgroup (a cgroup
/// namespace, or bind mounts of its own cgroups) would then show the host's whole tree there.
fn mounts() -> &'static Vec<Hierarchy> {
    static MOUNTS: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    MOUNTS.get_or_init(|| {
        let table = crate::primitives::mount::mountinfo(None).unwrap_or_default();
        let mut found: Vec<Hierarchy> = Vec::new();
        for m in table.iter().filter(|m| m.fstype == "cgroup" && m.root == Path::new("/")) {
            if !m.mount_point.starts_with(super::ROOT) || found.iter().any(|h| h.mount_point == m.mount_point) {
                continue;
            }
            let controllers: Vec<String> = m
                .super_options
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"))
                .filter(|o| !o.starts_with("release_agent="))
                .map(str::to_string)
                .collect();
            found.push(Hierarchy { controllers, mount_point: m.mount_point.clone() });
        }
        found
    })
}

/// The directory of controller `controller` for cgroup `rel`.
pub fn dir(controller: &str, rel: &Path) -> Option<PathBuf> {
    mounts().iter().find(|h| h.controllers.iter().any(|c| c == controller)).map(|h| h.mount_point.join(rel))
}

fn need(controller: &str, rel: &Path) -> Result<PathBuf> {
    dir(controller, rel).ok_or_else(|| {
        Error::Missing(format!(
            "the cgroup v1 {controller} controller is not mounted under {} (see `podlab doctor`)",
            super::ROOT
        ))
    })
}

/// `mkdir -p` in the cpuset hierarchy: a new cpuset cgroup starts with no CPUs and no memory
/// nodes, and a process cannot join it until they are copied from the parent.
/// A directory made by another process a moment ago may not have its values yet: only a
/// cgroup whose CPUs and memory nodes are set counts as done.
fn mkdir_cpuset(dir: &Path) -> Result<()> {
    let filled =
        |d: &Path| ["cpuset.cpus", "cpuset.mems"].iter().all(|f| read(&d.join(f)).is_ok_and(|v| !v.is_empty()));
    if dir.is_dir() && filled(dir) {
        return Ok(());
    }
    let parent = dir.parent().ok_or_else(|| Error::invalid(format!("{} has no parent", dir.display())))?;
    mkdir_cpuset(parent)?;
    mkdir_p(dir)?;
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read(&dir.join(file)).is_ok_and(|v| v.is_empty()) {
            write(&dir.join(file), &read(&parent.join(file))?)?;
        }
    }
    Ok(())
}

impl Backend for V1 {
    fn version(&self) -> Version {
        Version::V1
    }

    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        mounts().iter().map(|h| h.mount_point.join(rel)).collect()
    }

    fn create(&self, rel: &Path) -> Result<()> {
        for controller in CONTROLLERS {
            need(controller, rel)?;
        }
        for h in mounts() {
            let dir = h.mount_point.join(rel);
            if h.controllers.iter().any(|c| c == "cpuset") {
                mkdir_cpuset(&dir)?;
            } else {
                mkdir_p(&dir)?;
            }
        }
        Ok(())
    }

    fn join(&self, rel: &Path, pid: i32) -> Result<()> {
        for dir in self.dirs(rel) {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn join_self(&self, rel: &Path) -> Result<()> {
        for dir in self.dirs(rel) {
            write(&dir.join("tasks"), "0")?;
        }
        Ok(())
    }

    fn set_cpu_quota(&self, rel: &Path, quota_us: Option<u64>, period_us: u64) -> Result<()> {
        let dir = need("cpu", rel)?;
        write(&dir.join("cpu.cfs_period_us"), &period_us.to_string())?;
        let quota = quota_us.map(|q| q.to_string()).unwrap_or_else(|| "-1".into());
        write(&dir.join("cpu.cfs_quota_us"), &quota)
    }

    fn cpu_quota(&self, rel: &Path) -> Result<(Option<u64>, u64)> {
        let dir = need("cpu", rel)?;
        let quota: i64 = read(&dir.join("cpu.cfs_quota_us"))?.parse().unwrap_or(-1);
        let period = read_u64(&dir.join("cpu.cfs_period_us")).unwrap_or(super::DEFAULT_PERIOD_US);
        Ok((u64::try_from(quota).ok(), period))
    }

    fn set_cpu_shares(&self, rel: &Path, shares: u64) -> Result<()> {
        write(&need("cpu", rel)?.join("cpu.shares"), &shares.clamp(2, 262_144).to_string())
    }

    fn set_memory_limit(&self, rel: &Path, bytes: Option<u64>, swap_off: bool) -> Result<()> {
        let dir = need("memory", rel)?;
        let value = bytes.map(|b| b.to_string()).unwrap_or_else(|| "-1".into());
        // memsw (memory + swap) must stay >= the memory limit: raise it first when growing.
        let memsw = dir.join("memory.memsw.limit_in_bytes");
        let has_memsw = memsw.exists();
        if has_memsw && swap_off {
            write(&memsw, "-1")?;
        }
        write(&dir.join("memory.limit_in_bytes"), &value)?;
        if swap_off {
            if has_memsw {
                write(&memsw, &value)?;
            }
            write(&dir.join("memory.swappiness"), "0")?;
        }
        Ok(())
    }

    fn memory_limit(&self, rel: &Path) -> Result<Option<u64>> {
        let limit = read_u64(&need("memory", rel)?.join("memory.limit_in_bytes"));
        // "Unlimited" reads as a huge page-rounded number (PAGE_COUNTER_MAX pages).
        Ok(limit.filter(|&l| l < (1u64 << 62)))
    }

    fn swap_off(&self, rel: &Path) -> Result<bool> {
        let dir = need("memory", rel)?;
        let memsw = read_u64(&dir.join("memory.memsw.limit_in_bytes"));
        let limit = read_u64(&dir.join("memory.limit_in_bytes"));
        let swappiness = read_u64(&dir.join("memory.swappiness"));
        Ok(match memsw {
            Some(m) => Some(m) == limit,
            None => swappiness == Some(0),
        })
    }

    fn set_pids_limit(&self, rel: &Path, max: Option<u64>) -> Result<()> {
        let value = max.map(|m| m.to_string()).unwrap_or_else(|| "max".into());
        write(&need("pids", rel)?.join("pids.max"), &value)
    }

    fn stats(&self, rel: &Path) -> Stats {
        let file = |controller: &str, name: &str| dir(controller, rel).map(|d| d.join(name));
        Stats {
            cpu_usage_ns: file("cpuacct", "cpuacct.usage").and_then(|f| read_u64(&f)),
            memory_bytes: file("memory", "memory.usage_in_bytes").and_then(|f| read_u64(&f)),
            oom_kills: file("memory", "memory.oom_control").and_then(|f| keyed(&f, "oom_kill")).unwrap_or(0),
            pids: file("pids", "pids.current").and_then(|f| read_u64(&f)),
        }
    }

    fn procs(&self, rel: &Path) -> Vec<i32> {
        let mut all: Vec<i32> = self.dirs(rel).iter().flat_map(|d| read_procs(&d.join("cgroup.procs"))).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    fn set_frozen(&self, rel: &Path, frozen: bool) -> Result<()> {
        let file = need("freezer", rel)?.join("freezer.state");
        let want = if frozen { "FROZEN" } else { "THAWED" };
        // Freezing may pass through FREEZING while tasks stop; ask again until it settles.
        for _ in 0..1000 {
            write(&file, want)?;
            if read(&file)? == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::invalid(format!("{} did not become {want}", file.display())))
    }

    fn frozen(&self, rel: &Path) -> bool {
        dir("freezer", rel).and_then(|d| read(&d.join("freezer.state")).ok()).is_some_and(|s| s != "THAWED")
    }

    fn set_device_rules(&self, rel: &Path, rules: &[(bool, String)]) -> Result<()> {
        let d = need("devices", rel)?;
        for (allow, rule) in rules {
            write(&d.join(if *allow { "devices.allow" } else { "devices.deny" }), rule)?;
        }
        Ok(())
    }

    fn cgroup_of(&self, pid: i32) -> Option<PathBuf> {
        // Lines look like "4:memory:/podlab/lab06"; the memory tree is the one we limit.
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        text.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers.split(',').any(|c| c == "memory").then(|| PathBuf::from(path.trim_start_matches('/')))
        })
    }
}
