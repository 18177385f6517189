//! Namespaces: what a process can see.
//!
//! A namespace gives a process its own copy of one global resource: process ids (pid),
//! the mount table (mnt), hostname (uts), System V IPC (ipc), the network stack (net),
//! the cgroup root (cgroup) and user ids (user). `unshare` moves the caller into new
//! ones (a new pid namespace applies to the children it forks next); `setns` joins
//! existing ones through the files in /proc/PID/ns/.

use std::fmt;
use std::fs::File;
use std::os::fd::AsFd;
use std::str::FromStr;

use nix::sched::CloneFlags;

use crate::error::{Error, IoContext, Result, SysContext};
use crate::explain;

/// One kind of Linux namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    Pid,
    Mount,
    Uts,
    Ipc,
    Net,
    Cgroup,
    User,
}

impl Namespace {
    /// Every kind, in the order the kernel should create them (user first: it owns the rest).
    pub const ALL: [Namespace; 7] = [
        Namespace::User,
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Net,
        Namespace::Cgroup,
    ];

    /// The clone/unshare flag.
    pub fn flag(self) -> CloneFlags {
        match self {
            Namespace::Pid => CloneFlags::CLONE_NEWPID,
            Namespace::Mount => CloneFlags::CLONE_NEWNS,
            Namespace::Uts => CloneFlags::CLONE_NEWUTS,
            Namespace::Ipc => CloneFlags::CLONE_NEWIPC,
            Namespace::Net => CloneFlags::CLONE_NEWNET,
            Namespace::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Namespace::User => CloneFlags::CLONE_NEWUSER,
        }
    }

    /// The file name under /proc/PID/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Pid => "pid",
            Namespace::Mount => "mnt",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
            Namespace::Cgroup => "cgroup",
            Namespace::User => "user",
        }
    }

    /// The util-linux option (`unshare --mount`, `nsenter --net`).
    pub fn long_option(self) -> &'static str {
        match self {
            Namespace::Pid => "--pid",
            Namespace::Mount => "--mount",
            Namespace::Uts => "--uts",
            Namespace::Ipc => "--ipc",
            Namespace::Net => "--net",
            Namespace::Cgroup => "--cgroup",
            Namespace::User => "--user",
        }
    }

    /// Parse a comma-separated list such as `pid,mnt,uts`.
    pub fn parse_list(text: &str) -> Result<Vec<Namespace>> {
        let mut list = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let ns: Namespace = word.parse()?;
            if !list.contains(&ns) {
                list.push(ns);
            }
        }
        Ok(list)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

impl FromStr for Namespace {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pid" => Namespace::Pid,
            "mnt" | "mount" => Namespace::Mount,
            "uts" => Namespace::Uts,
            "ipc" => Namespace::Ipc,
            "net" | "network" => Namespace::Net,
            "cgroup" => Namespace::Cgroup,
            "user" => Namespace::User,
            other => {
                return Err(Error::invalid(format!(
                    "unknown namespace {other:?} (valid: pid, mnt, uts, ipc, net, cgroup, user)"
                )));
            }
        })
    }
}

fn flags_of(list: &[Namespace]) -> CloneFlags {
    list.iter().fold(CloneFlags::empty(), |acc, ns| acc | ns.flag())
}

/// Move the calling process into new namespaces (`unshare --pid --mount ...`). A new pid
/// namespace only applies to children forked afterwards; mount and user namespaces can
/// only be unshared by a single-threaded process.
pub fn unshare(list: &[Namespace]) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let options: Vec<&str> = list.iter().map(|n| n.long_option()).collect();
    explain::say(format!("unshare {}", options.join(" ")));
    nix::sched::unshare(flags_of(list)).sys(|| {
        let names: Vec<String> = list.iter().map(|n| n.to_string()).collect();
        format!("unshare({}) (mount and user namespaces need a single-threaded process)", names.join(","))
    })
}

/// Join the namespace `ns` of process `pid` (`nsenter --target PID --net`). Joining a mount
/// or user namespace needs a single-threaded process.
pub fn enter(pid: i32, ns: Namespace) -> Result<()> {
    enter_path(&format!("/proc/{pid}/ns/{}", ns.proc_name()), ns, &format!("--target {pid}"))
}

/// Join the namespace behind a file such as /run/netns/NAME or /proc/PID/ns/net; `target`
/// is how the explanation names it (`--target PID`, or the path itself).
pub fn enter_path(path: &str, ns: Namespace, target: &str) -> Result<()> {
    if target.starts_with('/') {
        explain::say(format!("nsenter {}={target}", ns.long_option()));
    } else {
        explain::say(format!("nsenter {target} {}", ns.long_option()));
    }
    let file = File::open(path).ctx("open namespace", path)?;
    nix::sched::setns(file.as_fd(), ns.flag()).sys(|| format!("setns({path})"))
}

/// Whether process `pid` shares namespace `ns` with process `other`.
pub fn same(pid: i32, other: i32, ns: Namespace) -> Result<bool> {
    Ok(super::proc::ns_inode(pid, ns.proc_name())? == super::proc::ns_inode(other, ns.proc_name())?)
}

/// Write a user namespace's id maps for process `pid`: `inside outside count` lines, as
/// `newuidmap` would. `setgroups` is denied first, as the kernel requires for gid maps
/// written without CAP_SETGID in the parent namespace.
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<()> {
    let write = |file: &str, text: &str| -> Result<()> {
        let path = format!("/proc/{pid}/{file}");
        explain::say(format!("echo {} > {path}", explain::quote(text)));
        std::fs::write(&path, text).ctx("write", &path)
    };
    write("setgroups", "deny")?;
    write("uid_map", uid_map)?;
    write("gid_map", gid_map)
}

/// The hostname of the UTS namespace of `pid`, read by joining it on a short-lived thread
/// (joining a UTS namespace is allowed in a threaded process and affects only that thread).
pub fn hostname_of(pid: i32) -> Result<String> {
    let path = format!("/proc/{pid}/ns/uts");
    std::thread::scope(|s| {
        s.spawn(|| -> Result<String> {
            let file = File::open(&path).ctx("open namespace", &path)?;
            nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWUTS).sys(|| format!("setns({path})"))?;
            let name = nix::unistd::gethostname().sys(|| "gethostname".into())?;
            Ok(name.to_string_lossy().into_owned())
        })
        .join()
        .unwrap_or_else(|_| Err(Error::invalid("hostname reader thread panicked")))
    })
}

/// Set the hostname of the caller's UTS namespace (`hostname NAME`).
pub fn set_hostname(name: &str) -> Result<()> {
    validate_hostname(name)?;
    explain::say(format!("hostname {name}"));
    nix::unistd::sethostname(name).sys(|| format!("sethostname({name})"))
}

/// A hostname is at most 64 bytes of letters, digits, '-' and '.' (RFC 1123 labels).
pub fn validate_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid hostname {name:?}: use up to 64 letters, digits, '-' and '.' (like web-1)"
        )))
    }
}
