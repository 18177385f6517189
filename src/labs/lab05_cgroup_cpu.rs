//! Lab 5, cgroup CPU: hold a busy loop to half a CPU.
//!
//! The CPU controller's bandwidth limit gives a cgroup a quota of CPU time per period:
//! 50 ms every 100 ms is half a CPU, which is what `resources.limits.cpu: 500m` becomes.
//! When the group has used its quota it is throttled until the next period starts.

use std::time::{Duration, Instant};

use super::{Ctx, Point, reset_cgroup_lab, spawn_detached};
use crate::error::Result;
use crate::primitives::cgroup::{Cgroup, Limits};
use crate::primitives::proc;

pub(crate) const CGROUP: &str = "podlab/lab05";

/// CPU used by `pids` over `window`, in CPUs (1.0 = one core busy), from /proc/PID/stat.
pub(crate) fn measure_cpus(pids: &[i32], window: Duration) -> f64 {
    let ticks =
        |pids: &[i32]| -> u64 { pids.iter().filter_map(|p| proc::cpu_ticks_and_start(*p)).map(|(t, _)| t).sum() };
    let before = ticks(pids);
    let start = Instant::now();
    std::thread::sleep(window);
    let used = ticks(pids).saturating_sub(before) as f64 / proc::clock_ticks() as f64;
    used / start.elapsed().as_secs_f64()
}

pub fn check(_ctx: &Ctx) -> Result<Vec<Point>> {
    let cg = Cgroup::new(CGROUP)?;
    let exists = cg.exists();
    let quota = if exists { cg.backend().cpu_quota(cg.rel()).ok() } else { None };
    let half = quota.is_some_and(|(q, p)| q.is_some_and(|q| q * 2 == p));
    let procs = if exists { cg.procs() } else { Vec::new() };
    let used = if procs.is_empty() { 0.0 } else { measure_cpus(&procs, Duration::from_secs(1)) };
    let dir = cg.dirs().first().map(|d| d.display().to_string()).unwrap_or_default();
    Ok(vec![
        Point::new(
            format!("cgroup {CGROUP} exists"),
            exists,
            format!("mkdir -p {dir} (see the guide for cgroup v1 and v2)"),
        ),
        Point::new(
            "its CPU quota is half a CPU (quota = period / 2)",
            half,
            format!(
                "seen quota/period {quota:?}; v1: echo 50000 > cpu.cfs_quota_us, v2: echo '50000 100000' > cpu.max"
            ),
        ),
        Point::new(
            "a process runs in it",
            !procs.is_empty(),
            "sh -c 'echo $$ > CGROUP/cgroup.procs; while :; do :; done' &",
        ),
        Point::new(
            format!("its processes use 0.5 CPU ± 0.1 (measured {used:.2} over 1 s)"),
            (used - 0.5).abs() <= 0.1,
            "run a busy loop in the cgroup; if it uses less, is something else busy on this machine?",
        ),
    ])
}

pub fn solve(_ctx: &Ctx) -> Result<()> {
    let cg = Cgroup::new(CGROUP)?;
    cg.create()?;
    cg.apply(&Limits { cpu_millis: Some(500), ..Limits::default() })?;
    spawn_detached(&["/bin/sh", "-c", "while :; do :; done"], Some(&cg), None)?;
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    reset_cgroup_lab(ctx, CGROUP)
}
