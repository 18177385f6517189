//! The guided labs: each one builds one piece of a pod by hand.
//!
//! A lab has a guide (`labs/NN-topic/README.md`, compiled in), and three actions that use
//! the same primitives as the runtime: `check` inspects the real kernel state the learner
//! made and grades it point by point, `solve` does the lab with podlab's primitives while
//! printing the commands, and `reset` removes everything the lab (or the learner) made.

mod lab01_chroot;
mod lab02_mounts;
mod lab03_namespaces;
mod lab04_network;
mod lab05_cgroup_cpu;
mod lab06_cgroup_memory;
mod lab07_images;
mod lab08_runtime;
mod lab09_pod;
mod lab10_service;
mod lab11_kubelet;
mod lab12_api;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::primitives::cgroup::Cgroup;
use crate::state::StateDirs;

/// One lab.
#[derive(Debug)]
pub struct Lab {
    pub number: u8,
    /// Directory name under labs/ and under the lab workspace root.
    pub slug: &'static str,
    pub title: &'static str,
    /// The guide (Markdown).
    pub guide: &'static str,
    check: fn(&Ctx) -> Result<Vec<Point>>,
    solve: fn(&Ctx) -> Result<()>,
    reset: fn(&Ctx) -> Result<bool>,
}

/// What a lab's actions get: where its workspace is.
pub struct Ctx {
    /// `/var/lib/podlab/labs/NN-topic` (or under --root).
    pub ws: PathBuf,
    pub dirs: StateDirs,
}

/// One graded point of a check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    pub name: String,
    pub passed: bool,
    /// What to do when it failed (or what was seen when it passed).
    pub hint: String,
}

impl Point {
    pub fn new(name: impl Into<String>, passed: bool, hint: impl Into<String>) -> Point {
        Point { name: name.into(), passed, hint: hint.into() }
    }
}

static LABS: [Lab; 12] = [
    Lab {
        number: 1,
        slug: "01-chroot",
        title: "chroot: a process with its own root directory",
        guide: include_str!("../../labs/01-chroot/README.md"),
        check: lab01_chroot::check,
        solve: lab01_chroot::solve,
        reset: lab01_chroot::reset,
    },
    Lab {
        number: 2,
        slug: "02-mounts",
        title: "mounts: proc, bind, read-only, tmpfs and overlay",
        guide: include_str!("../../labs/02-mounts/README.md"),
        check: lab02_mounts::check,
        solve: lab02_mounts::solve,
        reset: lab02_mounts::reset,
    },
    Lab {
        number: 3,
        slug: "03-namespaces",
        title: "namespaces with unshare: pid 1, hostname, private mounts",
        guide: include_str!("../../labs/03-namespaces/README.md"),
        check: lab03_namespaces::check,
        solve: lab03_namespaces::solve,
        reset: lab03_namespaces::reset,
    },
    Lab {
        number: 4,
        slug: "04-network",
        title: "network namespaces: veth pairs, a bridge, ping",
        guide: include_str!("../../labs/04-network/README.md"),
        check: lab04_network::check,
        solve: lab04_network::solve,
        reset: lab04_network::reset,
    },
    Lab {
        number: 5,
        slug: "05-cgroup-cpu",
        title: "cgroup CPU: a quota of half a CPU",
        guide: include_str!("../../labs/05-cgroup-cpu/README.md"),
        check: lab05_cgroup_cpu::check,
        solve: lab05_cgroup_cpu::solve,
        reset: lab05_cgroup_cpu::reset,
    },
    Lab {
        number: 6,
        slug: "06-cgroup-memory",
        title: "cgroup memory: a 64 MiB limit and the OOM killer",
        guide: include_str!("../../labs/06-cgroup-memory/README.md"),
        check: lab06_cgroup_memory::check,
        solve: lab06_cgroup_memory::solve,
        reset: lab06_cgroup_memory::reset,
    },
    Lab {
        number: 7,
        slug: "07-images",
        title: "images and layers: an OCI layout, a whiteout, an overlay stack",
        guide: include_str!("../../labs/07-images/README.md"),
        check: lab07_images::check,
        solve: lab07_images::solve,
        reset: lab07_images::reset,
    },
    Lab {
        number: 8,
        slug: "08-runtime",
        title: "the runtime: one bundle run by runc and by podlab",
        guide: include_str!("../../labs/08-runtime/README.md"),
        check: lab08_runtime::check,
        solve: lab08_runtime::solve,
        reset: lab08_runtime::reset,
    },
    Lab {
        number: 9,
        slug: "09-pod",
        title: "the pod: a pause process, shared namespaces, a veth to the node",
        guide: include_str!("../../labs/09-pod/README.md"),
        check: lab09_pod::check,
        solve: lab09_pod::solve,
        reset: lab09_pod::reset,
    },
    Lab {
        number: 10,
        slug: "10-service-vip",
        title: "the service VIP: DNAT rules, a random pick, conntrack",
        guide: include_str!("../../labs/10-service-vip/README.md"),
        check: lab10_service::check,
        solve: lab10_service::solve,
        reset: lab10_service::reset,
    },
    Lab {
        number: 11,
        slug: "11-kubelet",
        title: "the kubelet: restarts, CrashLoopBackOff, probes, static pods",
        guide: include_str!("../../labs/11-kubelet/README.md"),
        check: lab11_kubelet::check,
        solve: lab11_kubelet::solve,
        reset: lab11_kubelet::reset,
    },
    Lab {
        number: 12,
        slug: "12-api-server",
        title: "the API server, part 1: resources, watch, the store",
        guide: include_str!("../../labs/12-api-server/README.md"),
        check: lab12_api::check,
        solve: lab12_api::solve,
        reset: lab12_api::reset,
    },
];

/// Every lab, in order.
pub fn all() -> &'static [Lab] {
    &LABS
}

/// The lab numbered `number`.
pub fn find(number: u8) -> Result<&'static Lab> {
    LABS.iter().find(|l| l.number == number).ok_or_else(|| {
        let numbers: Vec<String> = LABS.iter().map(|l| l.number.to_string()).collect();
        Error::invalid(format!("no lab {number}: the labs are {} (podlab lab list)", numbers.join(", ")))
    })
}

fn ctx(dirs: &StateDirs, lab: &Lab) -> Ctx {
    Ctx { ws: dirs.labs().join(lab.slug), dirs: dirs.clone() }
}

/// The lab's workspace directory.
pub fn workspace(dirs: &StateDirs, lab: &Lab) -> PathBuf {
    ctx(dirs, lab).ws
}

/// Grade the learner's work.
pub fn check(dirs: &StateDirs, lab: &Lab) -> Result<Vec<Point>> {
    (lab.check)(&ctx(dirs, lab))
}

/// Do the lab with podlab's primitives (explaining each step when --explain is on).
pub fn solve(dirs: &StateDirs, lab: &Lab) -> Result<()> {
    (lab.solve)(&ctx(dirs, lab))
}

/// Remove everything of the lab; true when something was there.
pub fn reset(dirs: &StateDirs, lab: &Lab) -> Result<bool> {
    (lab.reset)(&ctx(dirs, lab))
}

/// Build the BusyBox root filesystem at `dest` unless it is there.
pub(crate) fn ensure_rootfs(dest: &Path) -> Result<()> {
    if dest.join("bin/sh").exists() {
        return Ok(());
    }
    crate::image::recipe::build("busybox", dest)
}

/// Start `argv` in the background, detached from podlab (its own session, no stdio), inside
/// `cgroup` when given: the child writes itself into cgroup.procs before exec, as
/// `sh -c 'echo $$ > cgroup.procs; exec CMD'` does. Returns the pid.
pub(crate) fn spawn_detached(argv: &[&str], cgroup: Option<&Cgroup>, root: Option<&Path>) -> Result<i32> {
    let mut procs_files = Vec::new();
    if let Some(cg) = cgroup {
        for dir in cg.dirs() {
            let file = dir.join("cgroup.procs");
            if file.exists() {
                procs_files.push(OpenOptions::new().write(true).open(&file).map_err(|e| Error::io("open", &file, e))?);
            }
        }
    }
    let fds: Vec<i32> = procs_files.iter().map(|f| f.as_raw_fd()).collect();
    let root_c = root
        .map(|r| std::ffi::CString::new(r.as_os_str().as_encoded_bytes()))
        .transpose()
        .map_err(|_| Error::invalid("root path contains a NUL byte"))?;
    let shown = crate::explain::join(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    match (cgroup, root) {
        (Some(cg), _) => {
            let dirs: Vec<String> = cg.dirs().iter().map(|d| format!("{}/cgroup.procs", d.display())).collect();
            let joins: Vec<String> = dirs.iter().map(|d| format!("echo $$ > {d}")).collect();
            crate::explain::say(format!("sh -c '{}; exec {shown}' &", joins.join("; ")));
        }
        (None, Some(r)) => crate::explain::say(format!("chroot {} {shown} &", r.display())),
        (None, None) => crate::explain::say(format!("{shown} &")),
    }
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (setsid, write, chroot, chdir) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            for fd in &fds {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(root) = &root_c {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::io("start", argv[0], e))?;
    Ok(child.id() as i32)
}

/// Kill processes (SIGKILL) and wait briefly until they are gone.
pub(crate) fn kill_and_wait(pids: &[i32]) {
    for pid in pids {
        crate::explain::say(format!("kill -9 {pid}"));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pids.iter().any(|p| crate::primitives::proc::alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Reset a cgroup lab: kill what runs in the cgroup, remove it and the workspace.
pub(crate) fn reset_cgroup_lab(ctx: &Ctx, rel: &str) -> Result<bool> {
    let cg = Cgroup::new(rel)?;
    let existed = cg.exists();
    cg.remove()?;
    Ok(remove_workspace(&ctx.ws)? || existed)
}

/// Unmount everything under `dir`, then remove it; refuses to delete while anything is
/// still mounted below (deleting through a bind mount would delete its source).
pub(crate) fn remove_workspace(dir: &Path) -> Result<bool> {
    if !dir.exists() {
        return Ok(false);
    }
    crate::primitives::mount::unmount_all_under(dir)?;
    if !crate::primitives::mount::mounts_under(dir)?.is_empty() {
        return Err(Error::invalid(format!("{} still has mounts; not removing it", dir.display())));
    }
    crate::explain::say(format!("rm -rf {}", dir.display()));
    std::fs::remove_dir_all(dir).map_err(|e| Error::io("remove", dir, e))?;
    Ok(true)
}

/// A minimal HTTP/1.0 GET (BusyBox httpd speaks it), with short timeouts: the status code and
/// the body, in the calling thread's network namespace.
pub(crate) fn http_get(addr: SocketAddrV4) -> std::result::Result<(u16, String), String> {
    let timeout = Duration::from_secs(2);
    let mut stream =
        TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout).map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .map_err(|e| format!("send the request to {addr}: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("read the answer of {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr} answered something that is not HTTP: {:?}", head.lines().next()))?;
    Ok((code, body.to_string()))
}
