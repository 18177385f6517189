//! Lab 6, cgroup memory: a 64 MiB limit and the OOM killer.
//!
//! The memory controller charges every page a cgroup's processes use. At the limit the
//! kernel first reclaims, then its OOM killer kills a process of that cgroup (SIGKILL: exit
//! status 137). Kubernetes reports exactly this as `OOMKilled`. Swap is turned off so the
//! limit is real.

use super::{Ctx, Point, reset_cgroup_lab, spawn_detached};
use crate::error::{Error, Result};
use crate::primitives::cgroup::{Cgroup, Limits};

pub(crate) const CGROUP: &str = "podlab/lab06";
const LIMIT: u64 = 64 << 20;

pub fn check(_ctx: &Ctx) -> Result<Vec<Point>> {
    let cg = Cgroup::new(CGROUP)?;
    let exists = cg.exists();
    let b = cg.backend();
    let limit = if exists { b.memory_limit(cg.rel()).ok().flatten() } else { None };
    let swap_off = exists && b.swap_off(cg.rel()).unwrap_or(false);
    let stats = cg.stats();
    let procs = if exists { cg.procs() } else { Vec::new() };
    let dir = cg.dirs().into_iter().find(|d| d.to_string_lossy().contains("memory")).or_else(|| cg.dirs().pop());
    let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
    Ok(vec![
        Point::new(format!("cgroup {CGROUP} exists"), exists, format!("mkdir -p {dir}")),
        Point::new(
            "its memory limit is 64 MiB",
            limit == Some(LIMIT),
            format!("seen {limit:?}; v1: echo 64M > {dir}/memory.limit_in_bytes, v2: echo 64M > {dir}/memory.max"),
        ),
        Point::new(
            "swap is off for it",
            swap_off,
            "v1: echo 0 > memory.swappiness (and memsw = limit); v2: echo 0 > memory.swap.max",
        ),
        Point::new(
            format!("the OOM killer has killed a process in it (count {})", stats.oom_kills),
            stats.oom_kills >= 1,
            format!("sh -c 'echo $$ > {dir}/cgroup.procs; exec dd if=/dev/zero of=/dev/null bs=100M count=1'"),
        ),
        Point::new(
            "a process still lives in it",
            !procs.is_empty(),
            format!("sh -c 'echo $$ > {dir}/cgroup.procs; exec sleep 3600' &"),
        ),
    ])
}

pub fn solve(_ctx: &Ctx) -> Result<()> {
    let cg = Cgroup::new(CGROUP)?;
    cg.create()?;
    cg.apply(&Limits { memory_bytes: Some(LIMIT), swap_off: true, ..Limits::default() })?;
    spawn_detached(&["/bin/sleep", "3600"], Some(&cg), None)?;
    let hog = spawn_detached(&["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"], Some(&cg), None)?;
    // Wait for the kernel to kill it (it is our child: reap it).
    let code = crate::primitives::process::wait_status(hog);
    if code != 137 || cg.stats().oom_kills == 0 {
        return Err(Error::invalid(format!("expected the OOM killer to kill dd (exit 137), got exit {code}")));
    }
    crate::explain::say("# dd was killed by the OOM killer: exit status 137 = 128 + SIGKILL");
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    reset_cgroup_lab(ctx, CGROUP)
}
