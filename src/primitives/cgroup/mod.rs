//! Control groups: limits and accounting for groups of processes.
//!
//! A cgroup is a directory in a special file system; writing a pid to its `cgroup.procs`
//! moves the process in, and the controller files beside it set limits (`cpu.max`,
//! `memory.max`, `pids.max`) and report usage. cgroup v1 has one tree per controller
//! (/sys/fs/cgroup/cpu, /sys/fs/cgroup/memory...); cgroup v2 has a single tree where a
//! parent enables controllers for its children in `cgroup.subtree_control`. One trait,
//! [`Backend`], hides the difference; [`Cgroup`] is the handle the rest of podlab uses.

pub mod v1;
pub mod v2;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::explain;

/// Where cgroup file systems are mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Every podlab cgroup sits under this parent, so nothing else on the host is touched.
pub const PARENT: &str = "podlab";

/// The CFS period podlab uses (the kubelet's default, 100 ms).
pub const DEFAULT_PERIOD_US: u64 = 100_000;

/// cgroup v1 (a tree per controller) or v2 (one unified tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Version {
    V1,
    V2,
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
    }
}

/// Which version the host uses: v2 when /sys/fs/cgroup itself is a cgroup2 file system.
pub fn detect() -> Version {
    match nix::sys::statfs::statfs(ROOT) {
        Ok(s) if s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => Version::V2,
        _ => Version::V1,
    }
}

/// The backend for the host's cgroup version.
pub fn backend() -> &'static dyn Backend {
    match detect() {
        Version::V2 => &v2::V2,
        Version::V1 => &v1::V1,
    }
}

/// Limits to apply to a cgroup; `None` leaves a limit unset (unlimited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU limit in millicores (`500m` = half a CPU): quota = millis × period / 1000.
    pub cpu_millis: Option<u64>,
    /// CPU weight as v1 shares (1024 = one CPU's worth of requests).
    pub cpu_shares: Option<u64>,
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// Forbid swap (Kubernetes' default: memory limits are not stretched by swap).
    pub swap_off: bool,
    /// Most processes (and threads) alive at once.
    pub pids: Option<u64>,
}

/// What the kernel counts for a cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// CPU time used by all processes, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// Memory in use now, in bytes.
    pub memory_bytes: Option<u64>,
    /// Times the OOM killer killed a process here.
    pub oom_kills: u64,
    /// Processes (tasks) alive now.
    pub pids: Option<u64>,
}

/// The operations podlab needs from a cgroup version. `rel` is the path below the
/// cgroup root, such as `podlab/box-1a2b3c4d`.
pub trait Backend: Send + Sync {
    /// v1 or v2.
    fn version(&self) -> Version;
    /// Every directory that makes up this cgroup (one per controller on v1).
    fn dirs(&self, rel: &Path) -> Vec<PathBuf>;
    /// `mkdir -p` the cgroup (v2: enabling the controllers on the way down).
    fn create(&self, rel: &Path) -> Result<()>;
    /// Move a process in (`echo PID > cgroup.procs`).
    fn join(&self, rel: &Path, pid: i32) -> Result<()>;
    /// Move the calling *single-threaded* process in. v1 writes "0" (the caller) to `tasks`:
    /// moving only the current thread lets the kernel skip the global threadgroup lock,
    /// whose RCU synchronisation makes a `cgroup.procs` write take milliseconds. v2 has no
    /// such file for domain cgroups and writes `cgroup.procs`.
    fn join_self(&self, rel: &Path) -> Result<()>;
    /// CPU quota per period in µs (`None` quota: unlimited).
    fn set_cpu_quota(&self, rel: &Path, quota_us: Option<u64>, period_us: u64) -> Result<()>;
    /// Read back (quota µs or None for unlimited, period µs).
    fn cpu_quota(&self, rel: &Path) -> Result<(Option<u64>, u64)>;
    /// CPU weight from v1 shares (v2 converts to cpu.weight).
    fn set_cpu_shares(&self, rel: &Path, shares: u64) -> Result<()>;
    /// Memory limit in bytes (`None`: unlimited), and no swap when `swap_off`.
    fn set_memory_limit(&self, rel: &Path, bytes: Option<u64>, swap_off: bool) -> Result<()>;
    /// Read back the memory limit (`None`: unlimited).
    fn memory_limit(&self, rel: &Path) -> Result<Option<u64>>;
    /// Whether the cgroup may not use swap.
    fn swap_off(&self, rel: &Path) -> Result<bool>;
    /// Most tasks at once (`None`: unlimited).
    fn set_pids_limit(&self, rel: &Path, max: Option<u64>) -> Result<()>;
    /// Usage counters.
    fn stats(&self, rel: &Path) -> Stats;
    /// The processes in the cgroup itself (not its children).
    fn procs(&self, rel: &Path) -> Vec<i32>;
    /// The cgroup of `pid` on this version's tree, relative to the root.
    fn cgroup_of(&self, pid: i32) -> Option<PathBuf>;
    /// Freeze (`true`) or thaw every process in the cgroup: v1 `freezer.state`
    /// FROZEN/THAWED, v2 `cgroup.freeze` 1/0. Returns once the kernel reports the new state.
    fn set_frozen(&self, rel: &Path, frozen: bool) -> Result<()>;
    /// Whether the cgroup is frozen.
    fn frozen(&self, rel: &Path) -> bool;
    /// Device access rules in order, each (allow?, `type major:minor access`), e.g.
    /// (false, `a`) then (true, `c 1:3 rwm`). v1 writes `devices.deny`/`devices.allow`; v2 has
    /// no files for this (it needs an eBPF program) and reports [`Error::Missing`].
    fn set_device_rules(&self, rel: &Path, rules: &[(bool, String)]) -> Result<()>;
}

/// A cgroup on the host's backend: create, limit, join, watch and remove it.
#[derive(Clone)]
pub struct Cgroup {
    backend: &'static dyn Backend,
    rel: PathBuf,
}

impl Cgroup {
    /// A handle for `rel` (for example `podlab/box-1a2b`) on the host's cgroup version.
    pub fn new(rel: impl Into<PathBuf>) -> Result<Self> {
        Self::with_backend(backend(), rel)
    }

    /// A handle on an explicit backend.
    pub fn with_backend(backend: &'static dyn Backend, rel: impl Into<PathBuf>) -> Result<Self> {
        let rel = rel.into();
        let safe = rel.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        if rel.as_os_str().is_empty() || !safe {
            return Err(Error::invalid(format!("invalid cgroup path {:?}: use a relative path like podlab/name", rel)));
        }
        Ok(Cgroup { backend, rel })
    }

    /// The path below the cgroup root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The backend in use.
    pub fn backend(&self) -> &'static dyn Backend {
        self.backend
    }

    /// The directories that make up the cgroup.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.backend.dirs(&self.rel)
    }

    /// Whether the cgroup exists.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.is_dir())
    }

    /// Create the cgroup.
    pub fn create(&self) -> Result<()> {
        self.backend.create(&self.rel)
    }

    /// Apply limits; unset ones are left as they are.
    pub fn apply(&self, limits: &Limits) -> Result<()> {
        let b = self.backend;
        if let Some(millis) = limits.cpu_millis {
            // The kernel refuses quotas under 1 ms.
            let quota = (millis * DEFAULT_PERIOD_US / 1000).max(1000);
            b.set_cpu_quota(&self.rel, Some(quota), DEFAULT_PERIOD_US)?;
        }
        if let Some(shares) = limits.cpu_shares {
            b.set_cpu_shares(&self.rel, shares)?;
        }
        if limits.memory_bytes.is_some() || limits.swap_off {
            b.set_memory_limit(&self.rel, limits.memory_bytes, limits.swap_off)?;
        }
        if let Some(pids) = limits.pids {
            b.set_pids_limit(&self.rel, Some(pids))?;
        }
        Ok(())
    }

    /// Move process `pid` into the cgroup.
    pub fn join(&self, pid: i32) -> Result<()> {
        self.backend.join(&self.rel, pid)
    }

    /// Move the calling single-threaded process in (see [`Backend::join_self`]).
    pub fn join_self(&self) -> Result<()> {
        self.backend.join_self(&self.rel)
    }

    /// Usage counters.
    pub fn stats(&self) -> Stats {
        self.backend.stats(&self.rel)
    }

    /// Freeze or thaw the cgroup (`podlab runtime pause/resume`).
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        self.backend.set_frozen(&self.rel, frozen)
    }

    /// Whether the cgroup is frozen.
    pub fn frozen(&self) -> bool {
        self.backend.frozen(&self.rel)
    }

    /// Allow and deny device access (see [`Backend::set_device_rules`]).
    pub fn set_device_rules(&self, rules: &[(bool, String)]) -> Result<()> {
        self.backend.set_device_rules(&self.rel, rules)
    }

    /// Processes in the cgroup and all its children.
    pub fn procs(&self) -> Vec<i32> {
        self.procs_in(&self.tree())
    }

    fn procs_in(&self, tree: &[PathBuf]) -> Vec<i32> {
        let mut all = Vec::new();
        for rel in tree {
            all.extend(self.backend.procs(rel));
        }
        all.sort_unstable();
        all.dedup();
        all
    }

    /// This cgroup and every child below it, deepest first.
    fn tree(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in self.dirs() {
            collect_children(&dir, &self.rel, &mut found);
        }
        found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        found.dedup();
        found.push(self.rel.clone());
        found
    }

    /// Kill every process in the cgroup tree (SIGKILL) and wait until it is empty.
    pub fn kill_all(&self) -> Result<()> {
        self.kill_tree(&self.tree())
    }

    fn kill_tree(&self, tree: &[PathBuf]) -> Result<()> {
        let mut procs = self.procs_in(tree);
        // cgroup v2 (Linux 5.14+) kills the whole tree in one atomic write, fork bombs included.
        if self.backend.version() == Version::V2 && !procs.is_empty() {
            let kill = Path::new(ROOT).join(&self.rel).join("cgroup.kill");
            if kill.exists() {
                write(&kill, "1")?;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if procs.is_empty() {
                return Ok(());
            }
            for pid in &procs {
                explain::say(format!("kill -9 {pid}"));
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
            }
            if Instant::now() > deadline {
                return Err(Error::invalid(format!(
                    "processes {procs:?} in cgroup {} did not die after SIGKILL",
                    self.rel.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
            procs = self.procs_in(tree);
        }
    }

    /// Kill what is left, remove the cgroup and its children, then remove empty parents up
    /// to and including `podlab`. Removing a cgroup that is gone is not an error.
    pub fn remove(&self) -> Result<()> {
        let tree = self.tree();
        self.kill_tree(&tree)?;
        for rel in &tree {
            for dir in self.backend.dirs(rel) {
                rmdir_retry(&dir)?;
            }
        }
        // Parents are shared with other cgroups: remove them only when they are empty.
        for parent in self.rel.ancestors().skip(1) {
            if parent.as_os_str().is_empty() || !parent.starts_with(PARENT) {
                break;
            }
            for dir in self.backend.dirs(parent) {
                if fs::remove_dir(&dir).is_ok() {
                    explain::say(format!("rmdir {}", dir.display()));
                }
            }
        }
        Ok(())
    }
}

fn collect_children(dir: &Path, rel: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let child_rel = rel.join(entry.file_name());
            collect_children(&entry.path(), &child_rel, found);
            found.push(child_rel);
        }
    }
}

/// `rmdir DIR`, retrying while the kernel still tears down the last processes (EBUSY).
fn rmdir_retry(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    if dir.is_dir() {
        explain::say(format!("rmdir {}", dir.display()));
    }
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::io("remove cgroup", dir, e)),
        }
    }
}

/// Write a control file, explaining it as `echo VALUE > FILE`.
pub(crate) fn write(file: &Path, value: &str) -> Result<()> {
    explain::say(format!("echo {} > {}", explain::quote(value), file.display()));
    fs::write(file, value).ctx(&format!("write {value:?} to"), file)
}

/// Read a control file, trimmed.
pub(crate) fn read(file: &Path) -> Result<String> {
    Ok(fs::read_to_string(file).ctx("read", file)?.trim().to_string())
}

/// Read a control file as a number, if it exists and is one.
pub(crate) fn read_u64(file: &Path) -> Option<u64> {
    read(file).ok()?.parse().ok()
}

/// The value of `key` in a flat keyed file such as memory.events (`oom_kill 1`).
pub(crate) fn keyed(file: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key { v.trim().parse().ok() } else { None }
    })
}

/// `mkdir -p` with an explanation for each directory made.
pub(crate) fn mkdir_p(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdir_p(parent)?;
    }
    explain::say(format!("mkdir {}", dir.display()));
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create cgroup", dir, e)),
    }
}

/// The pids listed in a `cgroup.procs` file.
pub(crate) fn read_procs(file: &Path) -> Vec<i32> {
    fs::read_to_string(file).map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect()).unwrap_or_default()
}

/// Convert v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), the kubelet's formula.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn refuses_escaping_paths() {
        assert!(Cgroup::new("../etc").is_err());
        assert!(Cgroup::new("/podlab/x").is_err());
        assert!(Cgroup::new("").is_err());
        assert!(Cgroup::new("podlab/ok").is_ok());
    }
}
