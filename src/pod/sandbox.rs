//! The pod sandbox: a pause process that holds the pod's namespaces.
//!
//! In Kubernetes every pod starts with an almost empty "pause" container. Its process does
//! nothing but exist: it owns the pod's network namespace (the pod's IP, its loopback shared
//! by all containers), its IPC namespace and its UTS namespace (the pod's hostname), and with
//! `shareProcessNamespace` its pid namespace, where it is pid 1 and reaps orphaned zombies.
//! The app containers are created *into* those namespaces (`/proc/PAUSE/ns/net` in their
//! config.json), so a container can crash and restart while the pod keeps its IP.
//!
//! podlab's pause is podlab itself, re-executed (from the same read-only copy the runtime
//! uses) as `podlab __pause`: it moves into the pod's cgroup, unshares the namespaces, forks
//! when it must be pid 1, sets the hostname, then sleeps in `sigsuspend`, reaping children on
//! SIGCHLD and exiting on SIGTERM or SIGINT.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::primitives::channel::{Channel, FD_ENV};

/// What the pause process is asked to make.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxSpec {
    /// The pod's hostname (its name, as Kubernetes sets it).
    pub hostname: String,
    /// A new network namespace (false with `hostNetwork: true`).
    pub network: bool,
    /// Join this network namespace (a `/run/netns/NAME` made beforehand, as CRI runtimes do,
    /// so the pod network can be wired before the pause starts) instead of making one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// A pid namespace shared by the containers (`shareProcessNamespace: true`).
    pub share_pid: bool,
    /// The pod's cgroup (relative to the cgroup root), joined before anything else.
    pub cgroup: Option<PathBuf>,
}

/// A running pause process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The pause process as the host sees it.
    pub pid: i32,
    pub spec: SandboxSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Report {
    /// The pause process's host pid (sent by the middle process when there is a pid namespace).
    Pid {
        pid: i32,
    },
    /// Namespaces, hostname and loopback are ready.
    Ready,
    Failed {
        step: String,
        message: String,
    },
}

impl Sandbox {
    /// Start a pause process (this binary, re-executed); returns once its namespaces exist.
    pub fn start(spec: &SandboxSpec) -> Result<Sandbox> {
        Self::start_from(Path::new("/proc/self/exe"), spec)
    }

    /// [`Sandbox::start`] with another podlab binary as the pause.
    pub fn start_from(podlab: &Path, spec: &SandboxSpec) -> Result<Sandbox> {
        crate::primitives::namespace::validate_hostname(&spec.hostname)?;
        let (mut channel, child_end) = Channel::pair()?;
        let exe = crate::runtime::exe::sealed(podlab)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&child_end);
        let mut cmd = std::process::Command::new(crate::runtime::exe::path_of(&exe));
        cmd.arg0("podlab").arg("__pause").env(FD_ENV, "3");
        // No stdio of the caller: the pause outlives it, and must not hold its pipes open.
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2, setsid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                crate::primitives::process::unblock_all_signals();
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Its own session: the pause must outlive whoever started it.
                libc::setsid();
                Ok(())
            });
        }
        crate::explain::say(format!(
            "podlab __pause   # {}unshare{}{} --ipc --uts, hostname {}",
            spec.netns.as_ref().map(|p| format!("nsenter --net={} ", p.display())).unwrap_or_default(),
            if spec.network && spec.netns.is_none() { " --net" } else { "" },
            if spec.share_pid { " --pid --fork" } else { "" },
            spec.hostname
        ));
        let mut child = cmd.spawn().map_err(|e| Error::io("start", "podlab __pause", e))?;
        drop(child_end);
        channel.send(spec)?;
        let mut pid = child.id() as i32;
        // With a pid namespace two processes report: the middle one (pid 1's host pid) and
        // pid 1 (ready). Their messages may come in either order: wait for both.
        let (mut got_pid, mut ready) = (!spec.share_pid, false);
        while !(got_pid && ready) {
            match channel.recv::<Report>() {
                Ok(Some(Report::Pid { pid: p })) => {
                    pid = p;
                    got_pid = true;
                }
                Ok(Some(Report::Ready)) => ready = true,
                Ok(Some(Report::Failed { step, message })) => {
                    let _ = child.wait();
                    return Err(Error::Child { step, message });
                }
                Ok(None) | Err(_) => {
                    let _ = child.wait();
                    return Err(Error::Child { step: "start the pause process".into(), message: "it exited".into() });
                }
            }
        }
        // With a pid namespace the middle process exits once pid 1 is ready: reap it.
        if pid != child.id() as i32 {
            let _ = child.wait();
        }
        Ok(Sandbox { pid, spec: spec.clone() })
    }

    /// `/proc/PID/ns/NAME` of the pause process (net, ipc, uts, pid), for a container's spec.
    pub fn ns_path(&self, name: &str) -> PathBuf {
        Path::new("/proc").join(self.pid.to_string()).join("ns").join(name)
    }

    /// Whether the pause process is still there.
    pub fn alive(&self) -> bool {
        crate::primitives::proc::alive(self.pid)
    }

    /// SIGTERM, then SIGKILL after `grace`; waits until it is gone.
    pub fn stop(&self, grace: std::time::Duration) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        crate::explain::say(format!("kill -TERM {}", self.pid));
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + grace;
        while self.alive() {
            if std::time::Instant::now() > deadline {
                crate::explain::say(format!("kill -KILL {}", self.pid));
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                std::thread::sleep(std::time::Duration::from_millis(10));
                if std::time::Instant::now() > deadline + std::time::Duration::from_secs(5) {
                    return Err(Error::invalid(format!("pause process {} did not exit", self.pid)));
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Entry point of `podlab __pause`; never returns.
pub fn main() -> ! {
    let mut channel = Channel::from_env_or_exit("__pause", 1);
    let _ = crate::runtime::exe::set_non_dumpable();
    // `ps` and `top` show it as "pause" (the exec'd path is /proc/self/fd/N).
    let _ = nix::sys::prctl::set_name(c"pause");
    let spec: SandboxSpec = match channel.recv() {
        Ok(Some(s)) => s,
        _ => std::process::exit(1),
    };
    match setup(&spec, &mut channel) {
        Ok(()) => {
            drop(channel);
            std::process::exit(pause_loop())
        }
        Err((step, e)) => {
            let _ = channel.send(&Report::Failed { step, message: e.to_string() });
            std::process::exit(1)
        }
    }
}

type Step<T> = std::result::Result<T, (String, Error)>;

fn step<T>(name: &str, r: Result<T>) -> Step<T> {
    r.map_err(|e| (name.to_string(), e))
}

fn setup(spec: &SandboxSpec, channel: &mut Channel) -> Step<()> {
    if let Some(rel) = &spec.cgroup {
        let cg = step("find the pod cgroup", crate::primitives::cgroup::Cgroup::new(rel))?;
        step("join the pod cgroup", cg.join_self())?;
    }
    if let Some(path) = &spec.netns {
        let target = path.display().to_string();
        step(
            "join the pod's network namespace",
            crate::primitives::namespace::enter_path(&target, crate::primitives::namespace::Namespace::Net, &target),
        )?;
    }
    let mut flags = CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if spec.network && spec.netns.is_none() {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if spec.share_pid {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    step("create the pod's namespaces", nix::sched::unshare(flags).map_err(|e| Error::sys("unshare", e)))?;
    if spec.share_pid {
        // A new pid namespace applies to children: fork so the pause is its pid 1.
        // SAFETY: single-threaded (a fresh exec), so fork is sound.
        match unsafe { nix::unistd::fork() } {
            Err(e) => return Err(("fork pid 1".into(), Error::sys("fork", e))),
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                // The middle process: report the host pid of pid 1 (which reports "ready" itself).
                let _ = channel.send(&Report::Pid { pid: child.as_raw() });
                std::process::exit(0);
            }
            Ok(nix::unistd::ForkResult::Child) => {}
        }
    }
    step("set the pod's hostname", crate::primitives::namespace::set_hostname(&spec.hostname))?;
    if spec.network {
        step("bring up loopback", crate::primitives::link::set_up(None, "lo"))?;
    }
    step("report ready", channel.send(&Report::Ready))?;
    Ok(())
}

/// Sleep until SIGTERM/SIGINT; reap every child that exits meanwhile. Returns the exit code.
fn pause_loop() -> i32 {
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD, Signal::SIGHUP] {
        mask.add(sig);
    }
    // Block them and take them one at a time with sigwait: no handler runs in this process.
    let _ = mask.thread_block();
    loop {
        match mask.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => return 0,
            _ => {}
        }
    }
}

/// Collect every exited child (zombies reparented to pid 1 of the pod).
fn reap() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}
