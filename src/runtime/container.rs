//! The lifecycle commands: create, start, state, kill, delete, run, exec, pause, resume, ps.
//!
//! `create` does all the slow work — cgroup, namespaces, mounts, privileges — and leaves the
//! container's pid 1 blocked on `start.sock`; `start` only connects to that socket, so the
//! program starts at a moment the caller chooses (a Kubernetes runtime creates every container
//! of a pod first). After `create` returns nothing of podlab keeps running: the container's
//! parent is whoever called us (conmon, containerd-shim, a subreaper) or init. `run` is create
//! + start + wait + delete in one process, which then waits as the container's subreaper.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxIdMapping, Process, Spec};

use super::init::{Command, CreateJob, ExecJob, Job, Report};
use super::state::{self, Container, Status};
use super::{cgroups, exe, hooks, spec as ocispec};
use crate::error::{Error, IoContext, Result};
use crate::primitives::channel::{Channel, FD_ENV};

/// Options shared by every command (runc's global flags).
#[derive(Debug, Clone)]
pub struct Runtime {
    /// Where container state lives (`--root`).
    pub root: PathBuf,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    pub explain: bool,
}

/// What `create` and `run` are given.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    /// The container's stdin, stdout and stderr (the caller's own when None). A supervisor
    /// passes pipes here to keep the container's output as logs.
    pub stdio: Option<[RawFd; 3]>,
}

/// The init process while `create` talks to it.
struct Spawned {
    channel: Channel,
    child: std::process::Child,
    /// id, bundle, rootfs, annotations: what the hooks' state needs.
    job: HookInfo,
}

#[derive(Default)]
struct HookInfo {
    id: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    annotations: std::collections::BTreeMap<String, String>,
}

/// The OCI state the hooks get on stdin.
fn hook_state(info: &HookInfo, pid: i32, status: Status) -> String {
    let s = state::OciState {
        oci_version: state::OCI_VERSION.to_string(),
        id: info.id.clone(),
        status,
        pid,
        bundle: info.bundle.clone(),
        rootfs: info.rootfs.clone(),
        created: state::now_rfc3339(),
        annotations: info.annotations.clone(),
        owner: "root".into(),
    };
    serde_json::to_string(&s).unwrap_or_default()
}

impl Runtime {
    fn state_dir(&self, id: &str) -> PathBuf {
        state::dir(&self.root, id)
    }

    /// `create`: build the container and leave it waiting for `start`.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<Container> {
        self.create_inner(id, opts, false).map(|(c, _)| c)
    }

    fn create_inner(&self, id: &str, opts: &CreateOptions, for_run: bool) -> Result<(Container, Option<Channel>)> {
        state::validate_id(id)?;
        let bundle = std::fs::canonicalize(&opts.bundle).ctx("find the bundle", &opts.bundle)?;
        let spec = ocispec::load(&bundle)?;
        ocispec::validate(&spec, &bundle)?;
        let root_path = spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_else(|| PathBuf::from("rootfs"));
        let rootfs = bundle.join(&root_path);
        let rootfs = std::fs::canonicalize(&rootfs).ctx("find the root filesystem", &rootfs)?;
        std::fs::create_dir_all(&self.root).ctx("create the runtime root", &self.root)?;
        let dir = self.state_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::invalid(format!("container {id:?} already exists")));
            }
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
        let cgroup_rel = match cgroups::path_for(&spec, id, self.systemd_cgroup) {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut made_cgroup = None;
        let result = (|| {
            let cg = cgroups::setup(&spec, &cgroup_rel)?;
            made_cgroup = Some(cg.clone());
            let console = connect_console(opts.console_socket.as_deref())?;
            let mut spawned = spawn(opts.preserve_fds, console.as_ref(), opts.stdio)?;
            let job = CreateJob {
                id: id.to_string(),
                spec: spec.clone(),
                bundle: bundle.clone(),
                rootfs: rootfs.clone(),
                state_dir: dir.clone(),
                cgroup: cgroup_rel.clone(),
                wait_on_channel: for_run,
                preserve_fds: opts.preserve_fds,
                console_fd: console.as_ref().map(|_| console_fd_number(opts.preserve_fds)),
                explain: self.explain,
            };
            drop(console);
            spawned.job = HookInfo {
                id: id.to_string(),
                bundle: bundle.clone(),
                rootfs: rootfs.clone(),
                annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
            };
            spawned.channel.send(&Job::Create(Box::new(job)))?;
            let pid = handshake(&mut spawned, &spec)?;
            let container = Container {
                id: id.to_string(),
                pid,
                pid_start: crate::primitives::proc::start_time(pid).unwrap_or(0),
                bundle: bundle.clone(),
                rootfs: rootfs.clone(),
                created: state::now_rfc3339(),
                cgroup: cgroup_rel.clone(),
                annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
                owner: nix::unistd::getuid().as_raw(),
            };
            container.save(&self.root)?;
            if let Some(file) = &opts.pid_file {
                write_pid_file(file, pid)?;
            }
            Ok((container, spawned.channel))
        })();
        match result {
            Ok((c, channel)) => Ok((c, for_run.then_some(channel))),
            Err(e) => {
                if let Some(cg) = made_cgroup {
                    let _ = cg.remove();
                }
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// `start`: let the created container's program run.
    pub fn start(&self, id: &str) -> Result<()> {
        let c = Container::load(&self.root, id)?;
        match c.status(&self.root) {
            Status::Created => {}
            other => return Err(Error::invalid(format!("cannot start container {id}: it is {other}, not created"))),
        }
        crate::explain::say(format!(
            "connect {}   # the waiting init execs the program",
            self.state_dir(id).join(state::START_SOCKET).display()
        ));
        let mut conn = super::init::connect_start(&self.state_dir(id))?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).ctx("read the answer of", self.state_dir(id).join(state::START_SOCKET))?;
        if answer.is_empty() {
            self.poststart(&c);
            return Ok(());
        }
        match serde_json::from_slice::<Report>(&answer) {
            Ok(Report::Failed { step, message, .. }) => Err(Error::Child { step, message }),
            _ => Err(Error::invalid(format!("container {id}: unexpected answer from its init"))),
        }
    }

    /// Run the poststart hooks (failures are warnings, as the spec says).
    fn poststart(&self, c: &Container) {
        if let Ok(spec) = ocispec::load(&c.bundle)
            && !hooks::of(&spec, hooks::Point::Poststart).is_empty()
        {
            let state = serde_json::to_string(&c.oci_state(&self.root)).unwrap_or_default();
            hooks::run_warn(&spec, hooks::Point::Poststart, &state);
        }
    }

    /// `state`: the OCI state document.
    pub fn state(&self, id: &str) -> Result<state::OciState> {
        Ok(Container::load(&self.root, id)?.oci_state(&self.root))
    }

    /// `kill`: send a signal to the init (or with `all`, to every process of the container).
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let c = Container::load(&self.root, id)?;
        if c.status(&self.root) == Status::Stopped {
            return Err(Error::invalid(format!("cannot kill container {id}: it is not running")));
        }
        crate::explain::say(format!("kill -{} {}", signal.as_str().trim_start_matches("SIG"), c.pid));
        if all {
            for pid in c.cgroup()?.procs() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
            }
            return Ok(());
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid), signal)
            .map_err(|e| Error::sys(format!("kill {}", c.pid), e))
    }

    /// `delete`: remove a stopped (or created) container; `force` kills a running one first.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let c = match Container::load(&self.root, id) {
            Ok(c) => c,
            Err(Error::Missing(_)) if force => {
                // Like runc: --force on a container that is gone succeeds (podman's cleanup
                // relies on it); a create that died half-way may have left a directory.
                let dir = self.state_dir(id);
                if dir.exists() {
                    return std::fs::remove_dir_all(&dir).ctx("remove", &dir);
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let status = c.status(&self.root);
        match status {
            Status::Running | Status::Paused if !force => {
                return Err(Error::invalid(format!("cannot delete container {id} that is not stopped: {status}")));
            }
            _ => {}
        }
        let cg = c.cgroup()?;
        if status == Status::Paused {
            let _ = cg.set_frozen(false);
        }
        if status != Status::Stopped {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid), Signal::SIGKILL);
        }
        // kill_all also catches processes `exec` started, then the directories go.
        cg.remove()?;
        wait_gone(&c);
        let dir = self.state_dir(id);
        std::fs::remove_dir_all(&dir).ctx("remove", &dir)?;
        if let Ok(spec) = ocispec::load(&c.bundle)
            && !hooks::of(&spec, hooks::Point::Poststop).is_empty()
        {
            let stopped = serde_json::to_string(&c.oci_state(&self.root)).unwrap_or_default();
            hooks::run_warn(&spec, hooks::Point::Poststop, &stopped);
        }
        Ok(())
    }

    /// `pause` / `resume`: freeze or thaw the container's cgroup.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let c = Container::load(&self.root, id)?;
        let status = c.status(&self.root);
        match (paused, status) {
            (true, Status::Running) | (false, Status::Paused) => c.cgroup()?.set_frozen(paused),
            (true, s) => Err(Error::invalid(format!("cannot pause container {id}: it is {s}"))),
            (false, s) => Err(Error::invalid(format!("cannot resume container {id}: it is {s}, not paused"))),
        }
    }

    /// `ps`: the host pids of the container's processes.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        Ok(Container::load(&self.root, id)?.cgroup()?.procs())
    }

    /// `run`: create, start, wait, delete; returns the exit code (128 + signal when killed).
    /// `detach`: return after start, leaving the container running.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
        if detach {
            self.create(id, opts)?;
            if let Err(e) = self.start(id) {
                let _ = self.delete(id, true);
                return Err(e);
            }
            return Ok(0);
        }
        // Orphans of our children (the container's pid 1, once the middle process exits)
        // become our children, so we can wait for it.
        let _ = nix::sys::prctl::set_child_subreaper(true);
        let (c, channel) = self.create_inner(id, opts, true)?;
        let Some(mut channel) = channel else { return Err(Error::invalid("run: no channel to the init")) };
        crate::primitives::process::forward_signals(c.pid);
        channel.send(&Command::Start)?;
        self.poststart(&c);
        let code = crate::primitives::process::wait_status(c.pid);
        // The init closes its end when exec succeeds; a failure report comes first.
        if let Ok(Some(Report::Failed { step, message, .. })) = channel.recv::<Report>() {
            let _ = self.delete(id, true);
            return Err(Error::Child { step, message });
        }
        if code == 137 && c.cgroup()?.stats().oom_kills > 0 {
            eprintln!("podlab: container {id} was killed by the OOM killer (memory limit reached)");
        }
        self.delete(id, true)?;
        Ok(code)
    }

    /// `exec`: run `process` in the running container; returns its exit code, or with
    /// `detach` its pid right after it started.
    pub fn exec(&self, id: &str, process: Process, opts: &ExecOptions) -> Result<i32> {
        let c = Container::load(&self.root, id)?;
        let status = c.status(&self.root);
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::invalid(format!("cannot exec in container {id}: it is {status}")));
        }
        let spec = ocispec::load(&c.bundle)?;
        let namespaces: Vec<String> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
            .iter()
            .map(|n| super::init::proc_name(n.typ()).to_string())
            // Only namespaces the init really has apart from ours (a shared one is skipped).
            .filter(|n| {
                use crate::primitives::proc::{ns_inode, own_ns_inode};
                matches!((ns_inode(c.pid, n), own_ns_inode(n)), (Ok(a), Ok(b)) if a != b)
            })
            .collect();
        let console = connect_console(opts.console_socket.as_deref())?;
        let mut spawned = spawn(opts.preserve_fds, console.as_ref(), opts.stdio)?;
        let job = ExecJob {
            pid: c.pid,
            cgroup: c.cgroup.clone(),
            namespaces,
            process,
            spec,
            wait: !opts.detach,
            preserve_fds: opts.preserve_fds,
            console_fd: console.as_ref().map(|_| console_fd_number(opts.preserve_fds)),
            explain: self.explain,
        };
        drop(console);
        spawned.channel.send(&Job::Exec(Box::new(job)))?;
        if opts.detach {
            let pid = match spawned.channel.recv::<Report>()? {
                Some(Report::Pid { pid }) => pid,
                Some(Report::Failed { step, message, .. }) => return Err(Error::Child { step, message }),
                _ => return Err(Error::invalid("exec: the process ended before it started")),
            };
            let _ = spawned.child.wait();
            // EOF: the program was exec'd (the channel is close-on-exec); or a failure report.
            if let Some(Report::Failed { step, message, .. }) = spawned.channel.recv::<Report>()? {
                return Err(Error::Child { step, message });
            }
            if let Some(file) = &opts.pid_file {
                write_pid_file(file, pid)?;
            }
            return Ok(0);
        }
        if !opts.keep_signals {
            crate::primitives::process::forward_signals(spawned.child.id() as i32);
        }
        let code = crate::primitives::process::wait_status(spawned.child.id() as i32);
        if let Ok(Some(Report::Failed { step, message, .. })) = spawned.channel.recv::<Report>() {
            return Err(Error::Child { step, message });
        }
        Ok(code)
    }
}

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    /// stdin, stdout and stderr of the process (the caller's own when None).
    pub stdio: Option<[RawFd; 3]>,
    /// Do not relay our signals to the process (`podlab exec` does; a long-running caller such
    /// as the node agent or a supervisor, running many execs, must keep its own handlers).
    pub keep_signals: bool,
}

/// Connect to `--console-socket` (the init sends the terminal's master fd over it).
fn connect_console(path: Option<&Path>) -> Result<Option<OwnedFd>> {
    path.map(|p| std::os::unix::net::UnixStream::connect(p).ctx("connect to the console socket", p).map(OwnedFd::from))
        .transpose()
}

/// Where the init finds the console socket: right after the channel.
fn console_fd_number(preserve_fds: i32) -> RawFd {
    4 + preserve_fds.max(0)
}

/// Start `podlab __rtinit` from the read-only copy of our binary, with the channel at fd
/// 3 + preserve_fds and the console socket (if any) after it.
fn spawn(preserve_fds: i32, console: Option<&OwnedFd>, stdio: Option<[RawFd; 3]>) -> Result<Spawned> {
    let (channel, child_end) = Channel::pair()?;
    let sealed = exe::sealed_self()?;
    // Move our own fds out of the way of the numbers the child needs.
    let high = |fd: RawFd| -> Result<OwnedFd> {
        // SAFETY: F_DUPFD_CLOEXEC returns a new fd we then own.
        let n = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
        if n < 0 {
            return Err(Error::sys("dup an fd", nix::errno::Errno::last()));
        }
        // SAFETY: n is a fresh fd from fcntl.
        Ok(unsafe { OwnedFd::from_raw_fd(n) })
    };
    let sealed = high(sealed.as_raw_fd())?;
    let child_end = high(child_end.as_raw_fd())?;
    let console = console.map(|c| high(c.as_raw_fd())).transpose()?;
    let channel_fd = 3 + preserve_fds.max(0);
    let console_fd = console_fd_number(preserve_fds);
    let mut cmd = std::process::Command::new(exe::path_of(&sealed));
    cmd.arg0("podlab").arg("__rtinit").env(FD_ENV, channel_fd.to_string());
    if let Some([stdin, stdout, stderr]) = stdio {
        let dup = |fd: RawFd| -> Result<std::process::Stdio> {
            // SAFETY: the caller keeps `fd` open for the duration of this call.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let owned = borrowed.try_clone_to_owned().map_err(|e| Error::io("dup", format!("fd {fd}"), e))?;
            Ok(std::process::Stdio::from(owned))
        };
        cmd.stdin(dup(stdin)?).stdout(dup(stdout)?).stderr(dup(stderr)?);
    }
    let (from_channel, from_console) = (child_end.as_raw_fd(), console.as_ref().map(|c| c.as_raw_fd()));
    // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A caller that blocks signals (a supervisor taking them with sigwait) must not
            // pass its mask on: the container's processes start with none blocked, as in runc.
            crate::primitives::process::unblock_all_signals();
            if libc::dup2(from_channel, channel_fd) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = from_console
                && libc::dup2(fd, console_fd) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::io("start", "podlab __rtinit", e))?;
    Ok(Spawned { channel, child, job: HookInfo::default() })
}

/// Answer the init's requests until it is ready; returns the container's pid.
fn handshake(spawned: &mut Spawned, spec: &Spec) -> Result<i32> {
    let mut pid = None;
    loop {
        match spawned.channel.recv::<Report>()? {
            Some(Report::UserNs { pid: p }) => {
                write_id_maps(p, spec)?;
                spawned.channel.send(&Command::MapsWritten)?;
            }
            Some(Report::Pid { pid: p }) => pid = Some(p),
            Some(Report::CreateRuntime) => {
                let state = hook_state(&spawned.job, pid.unwrap_or(0), state::Status::Creating);
                hooks::run(spec, hooks::Point::CreateRuntime, &state)?;
                spawned.channel.send(&Command::Hooks { state })?;
            }
            Some(Report::Ready) => break,
            Some(Report::Failed { step, message, .. }) => {
                let _ = spawned.child.wait();
                return Err(Error::Child { step, message });
            }
            None => {
                let _ = spawned.child.wait();
                return Err(Error::Child {
                    step: "create".into(),
                    message: "the container's init exited before it was ready".into(),
                });
            }
        }
    }
    let pid = pid.ok_or_else(|| Error::invalid("the init did not report its pid"))?;
    // The middle process (when there is a pid namespace) exits now; reap it.
    if pid != spawned.child.id() as i32 {
        let _ = spawned.child.wait();
    }
    Ok(pid)
}

fn write_id_maps(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let lines = |m: Option<&Vec<LinuxIdMapping>>| -> String {
        m.into_iter().flatten().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
    };
    let uid = lines(linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = lines(linux.and_then(|l| l.gid_mappings().as_ref()));
    if uid.is_empty() || gid.is_empty() {
        return Err(Error::invalid("a new user namespace needs linux.uidMappings and linux.gidMappings"));
    }
    crate::primitives::namespace::write_id_maps(pid, uid.trim_end(), gid.trim_end())
}

/// Write the pid file the way runc does: the number, no newline, renamed into place.
fn write_pid_file(file: &Path, pid: i32) -> Result<()> {
    let tmp =
        file.with_file_name(format!(".{}.tmp", file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    std::fs::write(&tmp, pid.to_string()).ctx("write the pid file", &tmp)?;
    std::fs::rename(&tmp, file).ctx("write the pid file", file)
}

/// Wait (up to ~2 s) until the init is gone or a zombie.
fn wait_gone(c: &Container) {
    for _ in 0..400 {
        if !c.init_alive() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
