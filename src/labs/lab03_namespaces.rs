//! Lab 3, namespaces: a process that is pid 1, has its own hostname and private mounts.
//!
//! `unshare` creates new namespaces and runs a program in them. In a new pid namespace the
//! first process is pid 1; a new UTS namespace has its own hostname; a new mount namespace
//! starts as a copy of the host's table, made private so that mounts made inside (like a
//! fresh /proc) never show up outside. This is the isolation half of a container.

use std::fs;

use super::{Ctx, Point, kill_and_wait, remove_workspace};
use crate::boxrun::{self, BoxSpec};
use crate::error::Result;
use crate::primitives::mount;
use crate::primitives::namespace::{self, Namespace};
use crate::primitives::proc;

const HOSTNAME: &str = "lab03";

/// Processes in a UTS namespace other than the host's whose hostname is lab03.
fn lab_processes() -> Vec<i32> {
    let Ok(host_uts) = proc::own_ns_inode("uts") else { return Vec::new() };
    proc::pids()
        .into_iter()
        .filter(|p| proc::ns_inode(*p, "uts").is_ok_and(|i| i != host_uts))
        .filter(|p| namespace::hostname_of(*p).is_ok_and(|h| h == HOSTNAME))
        .collect()
}

pub fn check(_ctx: &Ctx) -> Result<Vec<Point>> {
    let procs = lab_processes();
    // The one that is pid 1 of its own pid namespace (NSpid ends in 1).
    let init = procs.iter().copied().find(|p| {
        let ids = proc::ns_pids(*p);
        ids.len() > 1 && ids.last() == Some(&1)
    });
    let differs = |ns: &str| init.is_some_and(|p| proc::ns_inode(p, ns).ok() != proc::own_ns_inode(ns).ok());
    let private_root = init.is_some_and(|p| {
        mount::mountinfo(Some(p))
            .map(|t| {
                t.iter()
                    .filter(|m| m.mount_point == std::path::Path::new("/"))
                    .all(|m| !m.propagation.contains("shared:"))
            })
            .unwrap_or(false)
    });
    // Through /proc/PID/root we see its /proc: only the namespace's processes are listed.
    let own_proc = init.is_some_and(|p| {
        let listed: Vec<i32> = fs::read_dir(format!("/proc/{p}/root/proc"))
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        listed.contains(&1) && listed.len() < 20 && !listed.contains(&p)
    });
    let start = "unshare --pid --fork --mount-proc --mount --uts --ipc sh -c 'hostname lab03; exec sleep 3600' &";
    Ok(vec![
        Point::new(
            "a process with hostname lab03 in its own UTS namespace",
            !procs.is_empty(),
            format!("start it: {start}"),
        ),
        Point::new(
            "it is pid 1 of its own pid namespace",
            init.is_some() && differs("pid"),
            "use unshare --pid --fork: the forked child is pid 1 (exec sleep keeps it pid 1)",
        ),
        Point::new(
            "it has its own mount namespace with private propagation",
            differs("mnt") && private_root,
            "use unshare --mount (util-linux makes the mounts private by default)",
        ),
        Point::new(
            "its /proc lists only the processes of its namespace",
            own_proc,
            "mount a new /proc inside: unshare --mount-proc does it",
        ),
    ])
}

pub fn solve(_ctx: &Ctx) -> Result<()> {
    let spec = BoxSpec {
        rootfs: None,
        namespaces: vec![Namespace::Pid, Namespace::Mount, Namespace::Uts, Namespace::Ipc],
        hostname: Some(HOSTNAME.to_string()),
        command: vec!["sleep".into(), "3600".into()],
        explain: crate::explain::enabled(),
        detach: true,
        ..Default::default()
    };
    boxrun::spawn_detached(&spec)?;
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let procs = lab_processes();
    kill_and_wait(&procs);
    Ok(remove_workspace(&ctx.ws)? || !procs.is_empty())
}
