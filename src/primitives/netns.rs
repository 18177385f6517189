//! Named network namespaces, the way `ip netns` keeps them.
//!
//! A network namespace is a separate network stack: its own interfaces, addresses, routes
//! and firewall rules. It lives as long as a process is in it or something holds it open;
//! `ip netns add NAME` keeps one alive without any process by bind-mounting its
//! /proc/.../ns/net file onto /run/netns/NAME. podlab does the same, so `ip netns list`,
//! `ip netns exec` and podlab see the same namespaces.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{Error, IoContext, Result, SysContext};
use crate::explain;

/// Where named network namespaces are kept (as iproute2 does).
pub const NETNS_DIR: &str = "/run/netns";

/// The file that holds namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn validate(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 64 || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid(format!(
            "invalid network namespace name {name:?}: use up to 64 characters without '/' (like podlab-lab04-a)"
        )));
    }
    Ok(())
}

/// Make /run/netns a shared mount point, as `ip netns add` does, so namespaces created
/// later also appear in mount namespaces that were copied from this one.
fn prepare_dir() -> Result<()> {
    std::fs::create_dir_all(NETNS_DIR).ctx("create directory", NETNS_DIR)?;
    let is_mount_point = super::mount::mountinfo(None)?.iter().any(|m| m.mount_point == Path::new(NETNS_DIR));
    if is_mount_point {
        return Ok(());
    }
    super::mount::bind(Path::new(NETNS_DIR), Path::new(NETNS_DIR), false)?;
    explain::say(format!("mount --make-shared {NETNS_DIR}"));
    nix::mount::mount(None::<&str>, NETNS_DIR, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
        .sys(|| format!("make {NETNS_DIR} shared"))
}

/// `ip netns add NAME`: a new, empty network namespace kept alive by a bind mount.
pub fn create(name: &str) -> Result<()> {
    validate(name)?;
    let file = path(name);
    if file.exists() {
        return Err(Error::invalid(format!("network namespace {name} exists already (ip netns delete {name})")));
    }
    explain::say(format!("ip netns add {name}"));
    prepare_dir()?;
    File::options().write(true).create_new(true).open(&file).ctx("create", &file)?;
    // unshare(CLONE_NEWNET) on a thread of its own: only that thread moves, and it ends
    // right after the bind mount has pinned the namespace.
    let bound = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).sys(|| "unshare(CLONE_NEWNET)".into())?;
            let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
            nix::mount::mount(Some(own.as_str()), &file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .sys(|| format!("bind {own} to {}", file.display()))
        })
        .join()
        .unwrap_or_else(|_| Err(Error::invalid("netns creator thread panicked")))
    });
    if let Err(e) = bound {
        let _ = std::fs::remove_file(&file);
        return Err(e);
    }
    Ok(())
}

/// `ip netns delete NAME`: unmount and remove the file. The namespace itself goes when
/// nothing else uses it. Deleting a namespace that is gone is not an error.
pub fn delete(name: &str) -> Result<()> {
    validate(name)?;
    let file = path(name);
    if !file.exists() {
        return Ok(());
    }
    explain::say(format!("ip netns delete {name}"));
    match nix::mount::umount2(&file, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("umount {}", file.display()), e)),
    }
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &file, e)),
    }
}

/// Whether the named namespace exists.
pub fn exists(name: &str) -> bool {
    validate(name).is_ok() && path(name).exists()
}

/// The names under /run/netns.
pub fn list() -> Result<Vec<String>> {
    let mut names: Vec<String> = match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("list", NETNS_DIR, e)),
    };
    names.sort();
    Ok(names)
}

/// The namespace's inode, to compare with `stat -L /proc/PID/ns/net`.
pub fn inode_of(name: &str) -> Result<u64> {
    validate(name)?;
    let file = path(name);
    Ok(std::fs::metadata(&file).ctx("stat", &file)?.ino())
}

/// Run `f` inside namespace `name` (on a new thread that joins it first), or right here
/// when `name` is None. Joining a network namespace only moves the calling thread.
pub fn run_in<T: Send, F: FnOnce() -> T + Send>(name: Option<&str>, f: F) -> Result<T> {
    let Some(name) = name else { return Ok(f()) };
    validate(name)?;
    let file = path(name);
    let ns = File::open(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing(format!("no network namespace {name} (ip netns add {name})")),
        _ => Error::io("open", &file, e),
    })?;
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET)
                .sys(|| format!("enter network namespace {name}"))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(Error::invalid(format!("thread in network namespace {name} panicked"))))
    })
}

/// `ip netns exec NAME ping -c 1 DST`: one ICMP echo over a raw socket, waiting for the
/// matching reply. Returns the round-trip time.
pub fn ping(name: Option<&str>, dst: Ipv4Addr, timeout: Duration) -> Result<Duration> {
    let prefix = name.map(|n| format!("ip netns exec {n} ")).unwrap_or_default();
    explain::say(format!("{prefix}ping -c 1 {dst}"));
    let place = name.map(|n| format!(" (netns {n})")).unwrap_or_default();
    run_in(name, || ping_here(dst, timeout))?.map_err(|e| match e {
        Error::Missing(_) => Error::Missing(format!("no reply from {dst} within {timeout:?}{place}")),
        other => other,
    })
}

fn ping_here(dst: Ipv4Addr, timeout: Duration) -> Result<Duration> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn, recv, sendto, socket};
    let sock = socket(AddressFamily::Inet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::Icmp)
        .sys(|| "open a raw ICMP socket (needs CAP_NET_RAW)".into())?;
    let id = (std::process::id() as u16) ^ (nix::unistd::gettid().as_raw() as u16);
    let mut packet = [0u8; 16];
    packet[0] = 8; // echo request
    packet[4..6].copy_from_slice(&id.to_be_bytes());
    packet[6..8].copy_from_slice(&1u16.to_be_bytes());
    packet[8..16].copy_from_slice(b"podlab!!");
    let sum = checksum(&packet);
    packet[2..4].copy_from_slice(&sum.to_be_bytes());
    let start = Instant::now();
    let to = SockaddrIn::from(std::net::SocketAddrV4::new(dst, 0));
    sendto(sock.as_raw_fd(), &packet, &to, nix::sys::socket::MsgFlags::empty())
        .sys(|| format!("send ping to {dst}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(Error::Missing(String::new()));
        }
        let tv = nix::sys::time::TimeVal::new(left.as_secs() as i64, left.subsec_micros() as i64);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .sys(|| "set the ping timeout".into())?;
        let n = match recv(sock.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("receive ping reply", e)),
        };
        // A raw socket hands us the IP header first; its length is in the low nibble.
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        if n < ihl + 8 {
            continue;
        }
        let icmp = &buf[ihl..n];
        let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        if icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && from == dst {
            return Ok(start.elapsed());
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksum_of_a_known_packet() {
        // An echo request with id 1, seq 1 and no payload.
        let packet = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(super::checksum(&packet), 0xf7fd);
    }

    #[test]
    fn names_are_validated() {
        assert!(super::validate("podlab-a").is_ok());
        for bad in ["", ".", "..", "a/b", &"x".repeat(65)] {
            assert!(super::validate(bad).is_err(), "{bad:?}");
        }
    }
}
