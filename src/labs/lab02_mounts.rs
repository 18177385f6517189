//! Lab 2, mounts: attach file systems and directories to the tree.
//!
//! A container's root is assembled from mounts: image layers stacked by overlayfs, a
//! fresh /proc, tmpfs scratch space, and host directories bound in (read-only when they
//! should not be written). This lab makes each kind by hand and looks at the mount table.

use std::fs;
use std::path::Path;

use super::{Ctx, Point, remove_workspace};
use crate::error::{IoContext, Result};
use crate::primitives::mount::{self, MountInfo};

const DIRS: [&str; 8] = ["lower", "upper", "work", "merged", "data", "ro", "proc", "scratch"];

fn find<'a>(table: &'a [MountInfo], at: &Path) -> Option<&'a MountInfo> {
    // The last mount on a path is the one that is visible.
    table.iter().rev().find(|m| m.mount_point == at)
}

/// A bind mount shows the very same directory: same device, same inode.
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default()
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let ws = &ctx.ws;
    let table = mount::mountinfo(None)?;
    let overlay = find(&table, &ws.join("merged"));
    let lower_opt = format!("lowerdir={}", ws.join("lower").display());
    let ro = find(&table, &ws.join("ro"));
    let data_suffix = ws.join("data");
    Ok(vec![
        Point::new(
            format!("overlay mounted at {} with lowerdir {}", ws.join("merged").display(), ws.join("lower").display()),
            overlay.is_some_and(|m| m.fstype == "overlay" && m.super_options.split(',').any(|o| o == lower_opt)),
            format!(
                "mount -t overlay overlay -o lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work {0}/merged",
                ws.display()
            ),
        ),
        Point::new(
            "writing through the overlay copied the file up (upper says changed, lower from-lower)",
            read(&ws.join("upper/hello.txt")) == "changed" && read(&ws.join("lower/hello.txt")) == "from-lower",
            format!(
                "echo from-lower > {0}/lower/hello.txt before mounting, then echo changed > {0}/merged/hello.txt",
                ws.display()
            ),
        ),
        Point::new(
            format!("{} is a read-only bind mount of {}", ws.join("ro").display(), data_suffix.display()),
            ro.is_some_and(|m| m.readonly()) && same_inode(&ws.join("ro"), &data_suffix),
            format!("mount --bind {0}/data {0}/ro && mount -o remount,bind,ro {0}/ro", ws.display()),
        ),
        Point::new(
            format!("proc mounted at {}", ws.join("proc").display()),
            find(&table, &ws.join("proc")).is_some_and(|m| m.fstype == "proc"),
            format!("mount -t proc proc {}/proc", ws.display()),
        ),
        Point::new(
            format!("tmpfs mounted at {}", ws.join("scratch").display()),
            find(&table, &ws.join("scratch")).is_some_and(|m| m.fstype == "tmpfs"),
            format!("mount -t tmpfs -o size=16m tmpfs {}/scratch", ws.display()),
        ),
    ])
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    let ws = &ctx.ws;
    for d in DIRS {
        fs::create_dir_all(ws.join(d)).ctx("create directory", ws.join(d))?;
    }
    crate::explain::say(format!("echo from-lower > {}/lower/hello.txt", ws.display()));
    fs::write(ws.join("lower/hello.txt"), "from-lower\n").ctx("write", ws.join("lower/hello.txt"))?;
    mount::overlay(&[ws.join("lower")], Some((&ws.join("upper"), &ws.join("work"))), &ws.join("merged"))?;
    crate::explain::say(format!("echo changed > {}/merged/hello.txt", ws.display()));
    fs::write(ws.join("merged/hello.txt"), "changed\n").ctx("write", ws.join("merged/hello.txt"))?;
    mount::bind(&ws.join("data"), &ws.join("ro"), true)?;
    mount::proc(&ws.join("proc"))?;
    mount::tmpfs(&ws.join("scratch"), Some("size=16m"))?;
    Ok(())
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    remove_workspace(&ctx.ws)
}
