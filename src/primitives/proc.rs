//! /proc: how the kernel shows processes and what they are bound to.
//!
//! Every process has a directory `/proc/PID` with its namespaces (`ns/pid`, `ns/mnt`...,
//! links whose inode identifies the namespace), its root (`root`), its cgroups (`cgroup`),
//! its mounts (`mountinfo`) and its ids in nested pid namespaces (`NSpid` in `status`).
//! Checks read these files to see the real state instead of trusting a record.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::error::{IoContext, Result};

/// All process ids visible in /proc.
pub fn pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// The inode of a namespace of a process (`stat -L /proc/PID/ns/NAME`); `ns` is the
/// file name: pid, mnt, uts, ipc, net, cgroup, user.
pub fn ns_inode(pid: i32, ns: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/ns/{ns}");
    Ok(fs::metadata(&path).ctx("stat", &path)?.ino())
}

/// The inode of one of our own namespaces: the reference "host" namespaces are compared
/// with (pid 1 may be out of reach, for example inside a sandbox).
pub fn own_ns_inode(ns: &str) -> Result<u64> {
    let path = format!("/proc/self/ns/{ns}");
    Ok(fs::metadata(&path).ctx("stat", &path)?.ino())
}

/// The root directory of a process as the host sees it (`readlink /proc/PID/root`).
pub fn root(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/root")).ok()
}

/// The working directory of a process (`readlink /proc/PID/cwd`).
pub fn cwd(pid: i32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// The command name of a process (`/proc/PID/comm`).
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim().to_string())
}

/// The process's ids from the outermost to its own pid namespace (`NSpid:` line).
pub fn ns_pids(pid: i32) -> Vec<i32> {
    status_field(pid, "NSpid")
        .map(|v| v.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// One field of /proc/PID/status.
pub fn status_field(pid: i32, name: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_string()))
}

/// CPU time (user + system) a process has used, in clock ticks, and its start time in ticks
/// after boot (fields 14, 15 and 22 of /proc/PID/stat).
pub fn cpu_ticks_and_start(pid: i32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some((utime + stime, start))
}

/// The start time of a process (to tell a pid apart from a later reuse of it).
pub fn start_time(pid: i32) -> Option<u64> {
    cpu_ticks_and_start(pid).map(|(_, s)| s)
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

/// True while the process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match status_field(pid, "State") {
        Some(state) => !state.starts_with('Z') && !state.starts_with('X'),
        None => false,
    }
}
