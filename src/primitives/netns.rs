//! Network namespaces: a private network stack.
//!
//! A network namespace has its own interfaces, addresses, routes, firewall rules and
//! sockets; a new one holds only a loopback device, down. The kernel frees it when nothing
//! refers to it, so `ip netns add NAME` keeps it alive by bind-mounting the namespace file
//! (/proc/self/ns/net) onto /run/netns/NAME. A thread joins it with `setns`; a socket
//! belongs to the namespace of the thread that created it.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn};

use crate::error::{Error, IoContext, Result, SysContext};
use crate::explain;

/// Where named network namespaces live (shared with iproute2's `ip netns`).
pub const NETNS_DIR: &str = "/run/netns";

/// The file that holds the namespace `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Check a namespace name: it becomes a file name under /run/netns.
fn validate(name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." {
        "\".\" and \"..\" are not file names"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name.len() > 64 {
        "it is longer than 64 characters"
    } else {
        return Ok(());
    };
    Err(Error::invalid(format!("invalid network namespace name {name:?}: {problem}")))
}

/// Open the namespace file of `name` (for `setns`, or to hand its fd to netlink).
pub fn open(name: &str) -> Result<File> {
    validate(name)?;
    let file = path(name);
    File::open(&file).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::Missing(format!("network namespace {name} does not exist (see `ip netns list`)"))
        }
        _ => Error::io("open network namespace", &file, e),
    })
}

/// `ip netns add NAME`: a new network namespace, kept alive by a bind mount.
pub fn create(name: &str) -> Result<()> {
    validate(name)?;
    explain::say(format!("ip netns add {name}"));
    share_dir()?;
    let file = path(name);
    match fs::OpenOptions::new().write(true).create_new(true).mode(0o000).open(&file) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::invalid(format!(
                "network namespace {name} already exists (remove it with `ip netns delete {name}`)"
            )));
        }
        Err(e) => return Err(Error::io("create", &file, e)),
    }
    // unshare() moves only the calling thread, so do it in a thread of its own.
    let bound = spawn_and_join(&format!("netns-add {name}"), || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).sys(|| "unshare(CLONE_NEWNET)".to_string())?;
        let source = "/proc/thread-self/ns/net";
        nix::mount::mount(Some(source), &file, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .sys(|| format!("bind-mount {source} on {}", file.display()))
    });
    if let Err(e) = bound.and_then(|r| r) {
        let _ = fs::remove_file(&file);
        return Err(e);
    }
    Ok(())
}

/// Make /run/netns a shared mount point, as iproute2 does, so that namespaces added by
/// either tool show up in every mount namespace that sees /run/netns.
/// Make /run/netns a shared mount (bound on itself), as `ip netns add` does the first time, so
/// namespaces pinned there later from another mount namespace are seen everywhere.
pub fn prepare_dir() -> Result<()> {
    share_dir()
}

fn share_dir() -> Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o755).create(NETNS_DIR).ctx("create directory", NETNS_DIR)?;
    let make_shared =
        || nix::mount::mount(None::<&str>, NETNS_DIR, Some("none"), MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match make_shared() {
        // EINVAL: not a mount point yet; bind it on itself first.
        Err(Errno::EINVAL) => {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            nix::mount::mount(Some(NETNS_DIR), NETNS_DIR, Some("none"), flags, None::<&str>)
                .sys(|| format!("bind-mount {NETNS_DIR} on itself"))?;
            make_shared().sys(|| format!("make {NETNS_DIR} a shared mount"))
        }
        other => other.sys(|| format!("make {NETNS_DIR} a shared mount")),
    }
}

/// `ip netns delete NAME`: detach the bind mount and remove the file. Deleting a
/// namespace that is not there is not an error. The kernel frees the namespace (and
/// the interfaces in it) once no process or mount refers to it any more.
pub fn delete(name: &str) -> Result<()> {
    validate(name)?;
    let file = path(name);
    if fs::symlink_metadata(&file).is_err() {
        return Ok(());
    }
    explain::say(format!("ip netns delete {name}"));
    match nix::mount::umount2(&file, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys(format!("unmount network namespace {}", file.display()), e)),
    }
    match fs::remove_file(&file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("remove", &file, e)),
        _ => Ok(()),
    }
}

/// Whether /run/netns/NAME exists.
pub fn exists(name: &str) -> bool {
    validate(name).is_ok() && path(name).exists()
}

/// The names under /run/netns, sorted (`ip netns list`).
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", NETNS_DIR, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.ctx("read directory", NETNS_DIR)?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// The inode of the namespace (compare with `stat -L -c %i /proc/PID/ns/net`).
pub fn inode_of(name: &str) -> Result<u64> {
    Ok(open(name)?.metadata().ctx("stat", path(name))?.ino())
}

/// Run `f` inside network namespace `name`, on a new thread that joins it first
/// (`setns` of a network namespace moves only the calling thread). With `None`,
/// run `f` right here, in the caller's namespace, without creating a thread.
pub fn run_in<T: Send, F: FnOnce() -> T + Send>(name: Option<&str>, f: F) -> Result<T> {
    let Some(name) = name else { return Ok(f()) };
    let file = open(name)?;
    spawn_and_join(&format!("netns {name}"), move || {
        nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
            .sys(|| format!("setns into network namespace {name}"))?;
        Ok(f())
    })?
}

/// Run `f` on a new scoped thread and wait for it; a panic in `f` carries on here.
fn spawn_and_join<T: Send>(what: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("podlab-netns".into())
            .spawn_scoped(scope, f)
            .map_err(|e| Error::Missing(format!("cannot start a thread for {what}: {e}")))?;
        match worker.join() {
            Ok(value) => Ok(value),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// `ip netns exec NAME ping -c 1 DST`: one ICMP echo request from inside the namespace;
/// returns the round-trip time of the matching echo reply.
pub fn ping(name: Option<&str>, dst: Ipv4Addr, timeout: Duration) -> Result<Duration> {
    match name {
        Some(ns) => explain::say(format!("ip netns exec {ns} ping -c 1 {dst}")),
        None => explain::say(format!("ping -c 1 {dst}")),
    }
    let place = match name {
        Some(ns) => format!("netns {ns}"),
        None => "this network namespace".to_string(),
    };
    run_in(name, || echo(dst, timeout))?.map_err(|e| match e {
        Some(errno) => Error::sys(format!("cannot ping {dst} from {place}"), errno),
        None => Error::Missing(format!("no reply from {dst} within {timeout:?} ({place})")),
    })
}

static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// Send one echo request on a raw ICMP socket and wait for its reply.
/// Err(Some(errno)) when a system call fails, Err(None) on timeout.
fn echo(dst: Ipv4Addr, timeout: Duration) -> std::result::Result<Duration, Option<Errno>> {
    let sock = socket::socket(AddressFamily::Inet, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::Icmp)?;
    let id = (std::process::id() as u16) ^ NEXT_ID.fetch_add(0x9e37, Ordering::Relaxed);
    let seq: u16 = 1;
    let mut request = [0u8; 24]; // type 8 (echo request), code 0, checksum, id, seq, payload
    request[0] = 8;
    request[4..6].copy_from_slice(&id.to_be_bytes());
    request[6..8].copy_from_slice(&seq.to_be_bytes());
    request[8..].copy_from_slice(b"podlab ping 0123");
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());

    let start = Instant::now();
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    socket::sendto(sock.as_raw_fd(), &request, &to, MsgFlags::empty())?;
    let mut buf = [0u8; 1500];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(None);
        }
        let wait = PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, wait)? == 0 {
            continue;
        }
        let n = socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        // A raw socket gets the whole IP packet: skip the IP header (IHL words of 4 bytes).
        let packet = &buf[..n];
        let Some(ihl) = packet.first().map(|b| usize::from(b & 0x0f) * 4) else { continue };
        let (Some(src), Some(icmp)) = (packet.get(12..16), packet.get(ihl..ihl + 8)) else { continue };
        let reply = icmp[0] == 0 && icmp[1] == 0; // type 0: echo reply
        if reply && src == dst.octets() && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes() {
            return Ok(start.elapsed());
        }
    }
}

/// The Internet checksum (RFC 1071): one's complement of the one's-complement sum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
