//! Lab 1, chroot: a process whose "/" is a directory of ours.
//!
//! `chroot DIR` changes where path lookups start for one process and its children. It is
//! the oldest isolation trick and the first step of a container: the process only finds
//! the programs of its own root filesystem. It is not a security boundary on its own.

use std::path::PathBuf;

use super::{Ctx, Point, ensure_rootfs, kill_and_wait, remove_workspace, spawn_detached};
use crate::error::Result;
use crate::primitives::proc;

fn rootfs(ctx: &Ctx) -> PathBuf {
    ctx.ws.join("rootfs")
}

/// Processes whose root directory is the lab's root filesystem.
fn chrooted(ctx: &Ctx) -> Vec<i32> {
    let root = rootfs(ctx);
    let root = root.canonicalize().unwrap_or(root);
    proc::pids().into_iter().filter(|p| proc::root(*p).is_some_and(|r| r == root)).collect()
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let root = rootfs(ctx);
    let has_shell = root.join("bin/sh").exists();
    let pids = chrooted(ctx);
    let cwd_ok =
        pids.iter().any(|p| proc::cwd(*p).is_some_and(|c| c.starts_with(root.canonicalize().unwrap_or(root.clone()))));
    Ok(vec![
        Point::new(
            format!("a root filesystem with a shell at {}", root.join("bin/sh").display()),
            has_shell,
            format!("build it: podlab rootfs busybox {}", root.display()),
        ),
        Point::new(
            format!("a process runs with its root at {}", root.display()),
            !pids.is_empty(),
            format!("start one: chroot {} /bin/sleep 3600 &", root.display()),
        ),
        Point::new(
            "that process works inside its new root (cwd is /)",
            cwd_ok,
            "chroot changes the directory to the new / for you; start the process with chroot, not by cd",
        ),
    ])
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    let root = rootfs(ctx);
    ensure_rootfs(&root)?;
    spawn_detached(&["/bin/sleep", "3600"], None, Some(&root))?;
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let pids = chrooted(ctx);
    kill_and_wait(&pids);
    Ok(remove_workspace(&ctx.ws)? || !pids.is_empty())
}
