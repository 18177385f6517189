//! `podlab __rtinit`: the container's first process, before it becomes the container.
//!
//! `create` re-executes podlab (read-only, see [`super::exe`]) as a fresh single-threaded
//! process and sends it a [`Job`] over a socketpair. For a new container the init:
//! 1. enters or creates the namespaces the spec lists (a new user namespace first; the parent
//!    writes its uid/gid maps), then forks, because a new pid namespace only applies to
//!    children: the child is the container's pid 1, the middle process exits;
//! 2. builds the root filesystem (see [`super::rootfs`]) and pivots into it;
//! 3. sets hostname, sysctls, rlimits, the user, capabilities and no_new_privs (see
//!    [`super::process`]), and reports "ready";
//! 4. waits on `start.sock` for `podlab runtime start` (or on the channel for `run`), loads the
//!    seccomp filter and execs the container's program.
//!
//! For `exec` it joins the namespaces of a running container instead and execs the new process.
//! Any failure is sent back as the step that failed and why, and `create` prints it.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::unistd::ForkResult;
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde::{Deserialize, Serialize};

use super::{hooks, process, rootfs, state};
use crate::error::{Error, Result};
use crate::primitives::channel::Channel;

/// What the init is asked to do.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    Create(Box<CreateJob>),
    Exec(Box<ExecJob>),
}

/// Build a new container.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreateJob {
    pub id: String,
    pub spec: Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The container's state directory (the start socket is made there).
    pub state_dir: PathBuf,
    /// The container's cgroup (relative to the cgroup root): the init moves itself in.
    pub cgroup: PathBuf,
    /// `run`: wait for `Command::Start` on the channel instead of a start socket.
    pub wait_on_channel: bool,
    /// Fd numbers 3.. the caller passes on to the container (`--preserve-fds`).
    pub preserve_fds: i32,
    /// An inherited fd connected to the `--console-socket` (for `terminal: true`).
    pub console_fd: Option<i32>,
    pub explain: bool,
}

/// Run one more process in a running container.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecJob {
    /// The container's init pid (its namespaces are joined through /proc/PID/ns).
    pub pid: i32,
    /// The container's cgroup (relative to the cgroup root).
    pub cgroup: PathBuf,
    pub namespaces: Vec<String>,
    pub process: Process,
    pub spec: Spec,
    /// Wait for the process and exit with its status (else report its pid and leave).
    pub wait: bool,
    pub preserve_fds: i32,
    pub console_fd: Option<i32>,
    pub explain: bool,
}

/// From the init to the runtime.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// A new user namespace exists: write its id maps, then answer `MapsWritten`.
    UserNs {
        pid: i32,
    },
    /// The container's process (host pid).
    Pid {
        pid: i32,
    },
    /// Mounted, before pivot_root: run the createRuntime hooks, then answer `Hooks`.
    CreateRuntime,
    /// Set up and waiting for start.
    Ready,
    Failed {
        step: String,
        message: String,
        exit_code: i32,
    },
}

/// From the runtime to the init.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    MapsWritten,
    /// The createRuntime hooks ran; `state` is the state JSON for the container's own hooks.
    Hooks {
        state: String,
    },
    Start,
}

/// A failed step: its name, the error, the exit code.
pub(crate) type Failure = (String, Error, i32);
pub(crate) type Step<T> = std::result::Result<T, Failure>;

/// Name the step a result belongs to.
pub(crate) fn step<T>(name: &str, r: Result<T>) -> Step<T> {
    r.map_err(|e| (name.to_string(), e, 1))
}

/// Entry point of `__rtinit`; never returns.
pub fn main() -> ! {
    let mut channel = Channel::from_env_or_exit("__rtinit", 1);
    let _ = super::exe::set_non_dumpable();
    // Until it execs the container's program, `ps` shows it as "podlab-init".
    let _ = nix::sys::prctl::set_name(c"podlab-init");
    let job: Job = match channel.recv() {
        Ok(Some(job)) => job,
        Ok(None) => std::process::exit(1),
        Err(e) => fail(&mut channel, &("read the job".into(), e, 1)),
    };
    let result = match job {
        Job::Create(job) => {
            crate::explain::set_enabled(job.explain);
            create(&job, &mut channel)
        }
        Job::Exec(job) => {
            crate::explain::set_enabled(job.explain);
            exec(&job, &mut channel)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(f) => fail(&mut channel, &f),
    }
}

fn fail(channel: &mut Channel, (step, error, code): &Failure) -> ! {
    let report = Report::Failed { step: step.clone(), message: error.to_string(), exit_code: *code };
    if channel.send(&report).is_err() {
        eprintln!("podlab: {step}: {error}");
    }
    std::process::exit(*code)
}

/// Namespaces of the spec: the ones to join (type, opened fd) and the flags to unshare.
fn namespaces(spec: &Spec) -> Step<(Vec<(LinuxNamespaceType, OwnedFd)>, CloneFlags)> {
    let mut join = Vec::new();
    let mut flags = CloneFlags::empty();
    let list = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    for ns in list {
        let flag = clone_flag(ns.typ());
        match ns.path() {
            Some(path) => {
                let fd = step(
                    "open the namespace to join",
                    std::fs::File::open(path)
                        .map(OwnedFd::from)
                        .map_err(|e| Error::io(format!("open {} namespace", ns.typ()), path, e)),
                )?;
                join.push((ns.typ(), fd));
            }
            None => flags |= flag,
        }
    }
    Ok((join, flags))
}

pub(crate) fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// `--mount --uts ...` as unshare(1) spells the flags.
fn flag_options(flags: CloneFlags) -> String {
    let names = [
        (CloneFlags::CLONE_NEWNS, "--mount"),
        (CloneFlags::CLONE_NEWUTS, "--uts"),
        (CloneFlags::CLONE_NEWIPC, "--ipc"),
        (CloneFlags::CLONE_NEWNET, "--net"),
        (CloneFlags::CLONE_NEWPID, "--pid"),
        (CloneFlags::CLONE_NEWCGROUP, "--cgroup"),
        (CloneFlags::CLONE_NEWUSER, "--user"),
    ];
    let mut list: Vec<&str> = names.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| *n).collect();
    if flags.bits() & libc::CLONE_NEWTIME != 0 {
        list.push("--time");
    }
    list.join(" ")
}

fn setns(fd: &OwnedFd, t: LinuxNamespaceType) -> Step<()> {
    crate::explain::say(format!("nsenter --{}=<path>", t.to_string().to_lowercase()));
    step(
        "join a namespace",
        nix::sched::setns(fd.as_fd(), clone_flag(t)).map_err(|e| Error::sys(format!("setns {t}"), e)),
    )
}

/// Move ourselves into the container's cgroup, before any namespace is made (a cgroup
/// namespace takes the cgroup we are in as its root) and before forking (children inherit it).
fn join_cgroup(rel: &std::path::Path) -> Step<()> {
    let cg = step("find the cgroup", crate::primitives::cgroup::Cgroup::new(rel))?;
    step("join the cgroup", cg.join_self())
}

fn create(job: &CreateJob, channel: &mut Channel) -> Step<i32> {
    join_cgroup(&job.cgroup)?;
    let (join, mut flags) = namespaces(&job.spec)?;
    // User namespace first: every other namespace is then owned by it.
    if let Some((t, fd)) = join.iter().find(|(t, _)| *t == LinuxNamespaceType::User) {
        setns(fd, *t)?;
    } else if flags.contains(CloneFlags::CLONE_NEWUSER) {
        crate::explain::say("unshare --user");
        step(
            "create the user namespace",
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| Error::sys("unshare(CLONE_NEWUSER)", e)),
        )?;
        step("ask for id maps", channel.send(&Report::UserNs { pid: std::process::id() as i32 }))?;
        match step("wait for id maps", channel.recv::<Command>())? {
            Some(Command::MapsWritten) => {}
            _ => return Err(("wait for id maps".into(), Error::invalid("the runtime went away"), 1)),
        }
        // Become root of the new namespace (uid 0 must be mapped).
        step("become root in the user namespace", crate::primitives::process::set_ids(0, 0, &[]))?;
        flags.remove(CloneFlags::CLONE_NEWUSER);
    }
    for (t, fd) in join.iter().filter(|(t, _)| *t != LinuxNamespaceType::User) {
        setns(fd, *t)?;
    }
    crate::explain::say(format!("unshare {}", flag_options(flags)));
    step("create namespaces", nix::sched::unshare(flags).map_err(|e| Error::sys(format!("unshare({flags:?})"), e)))?;
    let new_pid = flags.contains(CloneFlags::CLONE_NEWPID) || join.iter().any(|(t, _)| *t == LinuxNamespaceType::Pid);
    if !new_pid {
        step("report the pid", channel.send(&Report::Pid { pid: std::process::id() as i32 }))?;
        return container_init(job, channel);
    }
    // SAFETY: this process is single-threaded (a fresh exec), so fork is sound.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(("fork the container's pid 1".into(), Error::sys("fork", e), 1)),
        Ok(ForkResult::Child) => match container_init(job, channel) {
            Ok(code) => Ok(code),
            Err(f) => fail(channel, &f),
        },
        Ok(ForkResult::Parent { child }) => {
            step("report the pid", channel.send(&Report::Pid { pid: child.as_raw() }))?;
            Ok(0)
        }
    }
}

/// The container's pid 1: build the root, set up the process, wait for start, exec.
fn container_init(job: &CreateJob, channel: &mut Channel) -> Step<i32> {
    let spec = &job.spec;
    let proc_ = spec
        .process()
        .as_ref()
        .ok_or_else(|| ("read the spec".to_string(), Error::invalid("config.json has no process"), 1))?;
    step("start a session", nix::unistd::setsid().map(|_| ()).map_err(|e| Error::sys("setsid", e)))?;
    let state_dir = step("open the state directory", open_dir(&job.state_dir))?;
    let listener =
        if job.wait_on_channel { None } else { Some(step("listen on the start socket", listen(&state_dir))?) };
    let mut hook_state = String::new();
    let mut before_pivot = || -> Step<()> {
        // The state for the container's own hooks comes back with the createRuntime answer,
        // so ask whenever any of the three will run.
        if [hooks::Point::CreateRuntime, hooks::Point::CreateContainer, hooks::Point::StartContainer]
            .iter()
            .all(|p| hooks::of(spec, *p).is_empty())
        {
            return Ok(());
        }
        step("ask for the createRuntime hooks", channel.send(&Report::CreateRuntime))?;
        match step("wait for the createRuntime hooks", channel.recv::<Command>())? {
            Some(Command::Hooks { state }) => hook_state = state,
            _ => return Err(("createRuntime hooks".into(), Error::invalid("the runtime went away"), 1)),
        }
        // createContainer: in the container's namespaces, the path still the host's.
        step("run the createContainer hooks", hooks::run(spec, hooks::Point::CreateContainer, &hook_state))
    };
    rootfs::setup(job, &mut before_pivot)?;
    if proc_.terminal().unwrap_or(false) {
        let pty = step("open a terminal", process::open_pty())?;
        step("send the terminal to the console socket", process::send_console(job.console_fd, pty))?;
    }
    rootfs::finish(spec)?;
    let resolved = process::resolve_user(spec, proc_)?;
    let proc_ = &resolved;
    process::setup_container(spec, proc_)?;
    let program = process::prepare(spec, proc_)?;
    process::before_exec(proc_, &program, job.preserve_fds)?;
    step("report ready", channel.send(&Report::Ready))?;
    let mut conn = match listener {
        None => {
            match step("wait for start", channel.recv::<Command>())? {
                Some(Command::Start) => None,
                _ => return Ok(1), // the runtime went away before starting us
            }
        }
        Some(listener) => {
            let (conn, _) =
                step("wait for start", listener.accept().map_err(|e| Error::io("accept on", state::START_SOCKET, e)))?;
            let _ = nix::unistd::unlinkat(&state_dir, state::START_SOCKET, nix::unistd::UnlinkatFlags::NoRemoveDir);
            drop(listener);
            Some(conn)
        }
    };
    drop(state_dir);
    if !hooks::of(spec, hooks::Point::StartContainer).is_empty() {
        let state = match serde_json::from_str::<state::OciState>(&hook_state) {
            Ok(mut s) => {
                s.status = state::Status::Created;
                serde_json::to_string(&s).unwrap_or(hook_state)
            }
            Err(_) => hook_state,
        };
        if let Err(e) = hooks::run(spec, hooks::Point::StartContainer, &state) {
            let failure = ("run the startContainer hooks".to_string(), e, 1);
            if let Some(conn) = conn.as_mut() {
                let report = Report::Failed { step: failure.0.clone(), message: failure.1.to_string(), exit_code: 1 };
                let _ = serde_json::to_writer(&mut *conn, &report);
            }
            return Err(failure);
        }
    }
    let failure = match process::seccomp_and_exec(proc_, &program) {
        Err(f) => f,
        Ok(never) => match never {},
    };
    // Tell whoever started us why the exec failed.
    if let Some(conn) = conn.as_mut() {
        let report = Report::Failed { step: failure.0.clone(), message: failure.1.to_string(), exit_code: failure.2 };
        let _ = serde_json::to_writer(&mut *conn, &report);
    }
    Err(failure)
}

fn open_dir(dir: &std::path::Path) -> Result<OwnedFd> {
    use nix::fcntl::{OFlag, open};
    open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
        .map_err(|e| Error::io("open", dir, e.into()))
}

/// Bind `start.sock` in the state directory (through the directory's fd, so long paths work).
fn listen(state_dir: &OwnedFd) -> Result<UnixListener> {
    let here = open_dir(std::path::Path::new("."))?;
    nix::unistd::fchdir(state_dir).map_err(|e| Error::sys("enter the state directory", e))?;
    let listener = UnixListener::bind(state::START_SOCKET);
    nix::unistd::fchdir(&here).map_err(|e| Error::sys("leave the state directory", e))?;
    listener.map_err(|e| Error::io("listen on", state::START_SOCKET, e))
}

/// Connect to a container's start socket (used by `start`).
pub fn connect_start(state_dir: &std::path::Path) -> Result<UnixStream> {
    let dir = open_dir(state_dir)?;
    let here = open_dir(std::path::Path::new("."))?;
    nix::unistd::fchdir(&dir).map_err(|e| Error::sys("enter the state directory", e))?;
    let stream = UnixStream::connect(state::START_SOCKET);
    nix::unistd::fchdir(&here).map_err(|e| Error::sys("leave the state directory", e))?;
    stream.map_err(|e| Error::io("connect to", state_dir.join(state::START_SOCKET), e))
}

fn exec(job: &ExecJob, channel: &mut Channel) -> Step<i32> {
    join_cgroup(&job.cgroup)?;
    // Open every namespace first: once the mount namespace is joined, /proc/PID is another view.
    let mut fds = Vec::new();
    for name in &job.namespaces {
        let t = ns_type(name)
            .ok_or_else(|| ("join namespaces".to_string(), Error::invalid(format!("unknown namespace {name}")), 1))?;
        let path = format!("/proc/{}/ns/{}", job.pid, proc_name(t));
        let fd = step(
            "open the container's namespaces",
            std::fs::File::open(&path).map(OwnedFd::from).map_err(|e| Error::io("open", &path, e)),
        )?;
        fds.push((t, fd));
    }
    // user first, mount last (after it, paths are the container's).
    fds.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    for (t, fd) in &fds {
        setns(fd, *t)?;
    }
    drop(fds);
    let pid_ns = job.namespaces.iter().any(|n| n == "pid");
    let run_child = |channel: &mut Channel| -> Step<i32> {
        let proc_ = &job.process;
        if job.console_fd.is_some() {
            step("start a session", nix::unistd::setsid().map(|_| ()).map_err(|e| Error::sys("setsid", e)))?;
            let pty = step("open a terminal", process::open_pty())?;
            step("send the terminal to the console socket", process::send_console(job.console_fd, pty))?;
        }
        process::setup_process(proc_)?;
        let program = process::prepare(&job.spec, proc_)?;
        process::before_exec(proc_, &program, job.preserve_fds)?;
        if !job.wait && !pid_ns {
            // Without a pid namespace our own pid is the host's view.
            step("report the pid", channel.send(&Report::Pid { pid: std::process::id() as i32 }))?;
        }
        match process::seccomp_and_exec(proc_, &program) {
            Err(f) => Err(f),
            Ok(never) => match never {},
        }
    };
    if !pid_ns {
        return run_child(channel);
    }
    // SAFETY: single-threaded (a fresh exec), so fork is sound.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(("fork into the pid namespace".into(), Error::sys("fork", e), 1)),
        Ok(ForkResult::Child) => match run_child(channel) {
            Ok(code) => Ok(code),
            Err(f) => fail(channel, &f),
        },
        Ok(ForkResult::Parent { child }) => {
            if !job.wait {
                // The child's pid as the host sees it (inside, it has another number). It is
                // reparented to the caller's subreaper (conmon) when we exit.
                step("report the pid", channel.send(&Report::Pid { pid: child.as_raw() }))?;
                return Ok(0);
            }
            // Stay to pass signals on and to hand the exit status up.
            let _ = nix::unistd::close(channel.raw_fd());
            crate::primitives::process::forward_signals(child.as_raw());
            Ok(crate::primitives::process::wait_status(child.as_raw()))
        }
    }
}

fn ns_type(name: &str) -> Option<LinuxNamespaceType> {
    Some(match name {
        "mount" | "mnt" => LinuxNamespaceType::Mount,
        "cgroup" => LinuxNamespaceType::Cgroup,
        "uts" => LinuxNamespaceType::Uts,
        "ipc" => LinuxNamespaceType::Ipc,
        "user" => LinuxNamespaceType::User,
        "pid" => LinuxNamespaceType::Pid,
        "network" | "net" => LinuxNamespaceType::Network,
        "time" => LinuxNamespaceType::Time,
        _ => return None,
    })
}

/// The file name under /proc/PID/ns.
pub(crate) fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}
