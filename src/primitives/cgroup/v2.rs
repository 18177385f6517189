//! cgroup v2: one unified hierarchy.
//!
//! All controllers share a single tree at /sys/fs/cgroup. A parent lists the controllers
//! its children may use in `cgroup.subtree_control` (`echo +cpu +memory +pids > ...`), and
//! only leaves hold processes. Limits are `cpu.max` ("QUOTA PERIOD"), `cpu.weight`,
//! `memory.max`, `memory.swap.max` and `pids.max`; `memory.events` counts OOM kills.

use std::path::{Path, PathBuf};

use super::{Backend, Stats, Version, keyed, mkdir_p, read, read_procs, read_u64, shares_to_weight, write};
use crate::error::Result;

/// The controllers podlab enables for its cgroups.
pub const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// The cgroup v2 backend.
pub struct V2;

fn dir(rel: &Path) -> PathBuf {
    Path::new(super::ROOT).join(rel)
}

/// Enable our controllers for the children of `parent` where they are available and not
/// enabled yet (`echo '+cpu +memory +pids' > PARENT/cgroup.subtree_control`).
fn enable_controllers(parent: &Path) -> Result<()> {
    let available = read(&parent.join("cgroup.controllers")).unwrap_or_default();
    let enabled = read(&parent.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<String> = CONTROLLERS
        .iter()
        .filter(|c| available.split(' ').any(|a| a == **c) && !enabled.split(' ').any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(&parent.join("cgroup.subtree_control"), &missing.join(" "))
}

/// Walk down from the root, enabling controllers in each parent before making the child.
fn walk_down(rel: &Path) -> Result<()> {
    let mut current = PathBuf::from(super::ROOT);
    for part in rel.components() {
        enable_controllers(&current)?;
        current.push(part);
        mkdir_p(&current)?;
    }
    Ok(())
}

impl Backend for V2 {
    fn set_frozen(&self, rel: &Path, frozen: bool) -> Result<()> {
        write(&dir(rel).join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        // cgroup.events says "frozen 1" once every task has stopped.
        let want = u64::from(frozen);
        for _ in 0..1000 {
            if keyed(&dir(rel).join("cgroup.events"), "frozen") == Some(want) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(crate::error::Error::invalid(format!("{} did not become frozen={want}", rel.display())))
    }

    fn frozen(&self, rel: &Path) -> bool {
        read(&dir(rel).join("cgroup.freeze")).is_ok_and(|s| s == "1")
    }

    fn set_device_rules(&self, _rel: &Path, _rules: &[(bool, String)]) -> Result<()> {
        Err(crate::error::Error::Missing(
            "device rules on cgroup v2 need an eBPF program, which podlab does not load yet".into(),
        ))
    }

    fn version(&self) -> Version {
        Version::V2
    }

    fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        vec![dir(rel)]
    }

    fn create(&self, rel: &Path) -> Result<()> {
        // A shared parent (podlab/) may be removed by another cgroup's cleanup while we walk
        // down (it removes empty parents): start again from the root when a step finds it gone.
        let mut tries = 0;
        loop {
            match walk_down(rel) {
                Err(e) if e.errno() == Some(libc::ENOENT) && tries < 10 => tries += 1,
                other => return other,
            }
        }
    }

    fn join(&self, rel: &Path, pid: i32) -> Result<()> {
        write(&dir(rel).join("cgroup.procs"), &pid.to_string())
    }

    fn join_self(&self, rel: &Path) -> Result<()> {
        write(&dir(rel).join("cgroup.procs"), "0")
    }

    fn set_cpu_quota(&self, rel: &Path, quota_us: Option<u64>, period_us: u64) -> Result<()> {
        let quota = quota_us.map(|q| q.to_string()).unwrap_or_else(|| "max".into());
        write(&dir(rel).join("cpu.max"), &format!("{quota} {period_us}"))
    }

    fn cpu_quota(&self, rel: &Path) -> Result<(Option<u64>, u64)> {
        let text = read(&dir(rel).join("cpu.max"))?;
        let mut parts = text.split_whitespace();
        let quota = parts.next().and_then(|q| q.parse().ok());
        let period = parts.next().and_then(|p| p.parse().ok()).unwrap_or(super::DEFAULT_PERIOD_US);
        Ok((quota, period))
    }

    fn set_cpu_shares(&self, rel: &Path, shares: u64) -> Result<()> {
        write(&dir(rel).join("cpu.weight"), &shares_to_weight(shares).to_string())
    }

    fn set_memory_limit(&self, rel: &Path, bytes: Option<u64>, swap_off: bool) -> Result<()> {
        let value = bytes.map(|b| b.to_string()).unwrap_or_else(|| "max".into());
        write(&dir(rel).join("memory.max"), &value)?;
        let swap = dir(rel).join("memory.swap.max");
        if swap_off && swap.exists() {
            write(&swap, "0")?;
        }
        Ok(())
    }

    fn memory_limit(&self, rel: &Path) -> Result<Option<u64>> {
        Ok(read(&dir(rel).join("memory.max"))?.parse().ok())
    }

    fn swap_off(&self, rel: &Path) -> Result<bool> {
        let swap = dir(rel).join("memory.swap.max");
        // Without swap accounting (no swap support compiled in) there is no swap to use.
        Ok(!swap.exists() || read_u64(&swap) == Some(0))
    }

    fn set_pids_limit(&self, rel: &Path, max: Option<u64>) -> Result<()> {
        let value = max.map(|m| m.to_string()).unwrap_or_else(|| "max".into());
        write(&dir(rel).join("pids.max"), &value)
    }

    fn stats(&self, rel: &Path) -> Stats {
        let d = dir(rel);
        Stats {
            cpu_usage_ns: keyed(&d.join("cpu.stat"), "usage_usec").map(|us| us * 1000),
            memory_bytes: read_u64(&d.join("memory.current")),
            oom_kills: keyed(&d.join("memory.events"), "oom_kill").unwrap_or(0),
            pids: read_u64(&d.join("pids.current")),
        }
    }

    fn procs(&self, rel: &Path) -> Vec<i32> {
        read_procs(&dir(rel).join("cgroup.procs"))
    }

    fn cgroup_of(&self, pid: i32) -> Option<PathBuf> {
        // The v2 line is "0::/podlab/lab06".
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        text.lines().find_map(|l| l.strip_prefix("0::").map(|p| PathBuf::from(p.trim_start_matches('/'))))
    }
}
