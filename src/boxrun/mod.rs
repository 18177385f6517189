//! `podlab box`: the lab's primitives composed into one isolated, limited process.
//!
//! Each flag is one lab step: `--rootfs` (chroot/pivot_root), `--ns` (namespaces),
//! `--hostname` (UTS), `--cpus`/`--memory`/`--pids` (cgroups). The box runs in the
//! foreground and its exit status is returned; on the way out everything podlab made
//! (the cgroup, the processes) is removed, also after Ctrl-C or SIGTERM. What is made is
//! recorded first, so `podlab reset` can clean up even after `kill -9`.

pub mod init;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::primitives::cgroup::{Cgroup, Limits};
use crate::primitives::channel::{Channel, Report};
use crate::primitives::namespace::{self, Namespace};
use crate::primitives::record::{Record, Resource};
use crate::quantity;
use crate::state::StateDirs;

/// What the box is: sent to `podlab __init` over the channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BoxSpec {
    /// Root filesystem directory (pivot_root with a mount namespace, else chroot).
    pub rootfs: Option<PathBuf>,
    /// Namespaces to create.
    pub namespaces: Vec<Namespace>,
    /// Hostname inside the UTS namespace.
    pub hostname: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Print the equivalent shell commands.
    pub explain: bool,
    /// Running detached: stdio goes to /dev/null once the box is set up, so the caller can
    /// read the explanations on a pipe until EOF and then leave the box running.
    #[serde(default)]
    pub detach: bool,
    /// An image's layers stacked with overlayfs, mounted by the init inside its own mount
    /// namespace (so nothing of it is ever visible on the host); `rootfs` is its `merged`.
    #[serde(default)]
    pub overlay: Option<crate::image::rootfs::Overlay>,
    /// The command's environment (None: inherit podlab's).
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Working directory inside the root (None: /).
    #[serde(default)]
    pub cwd: Option<String>,
}

/// The box as the user asked for it, before validation.
#[derive(Debug, Clone, Default)]
pub struct BoxRequest {
    pub spec: BoxSpec,
    /// `--id`: the box's name (random when not given); its cgroup is podlab/box-ID.
    pub id: Option<String>,
    /// `--cpus` as a quantity (`0.5`, `500m`).
    pub cpus: Option<String>,
    /// `--memory` as a quantity (`64Mi`).
    pub memory: Option<String>,
    /// `--pids`.
    pub pids: Option<u64>,
    /// Unpacked image layers (bottom first) to stack as the root filesystem.
    pub image_layers: Option<Vec<PathBuf>>,
}

/// How a box ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxExit {
    /// Shell-style exit code: the command's code, or 128 + the signal that killed it.
    pub code: i32,
    /// How many processes the OOM killer killed in the box.
    pub oom_kills: u64,
    /// Set when podlab itself stopped the box because it got this signal.
    pub interrupted_by: Option<i32>,
    /// The box's id (its cgroup is podlab/box-ID).
    pub id: String,
    /// Set when a setup step inside the box failed: "step: error". `code` is then 125
    /// (podlab's error), 126 (command cannot run) or 127 (command not found).
    pub failed: Option<String>,
}

/// Check the request and turn it into a spec and limits, before anything is created.
pub fn validate(req: &BoxRequest) -> Result<(BoxSpec, Limits)> {
    let spec = &req.spec;
    if spec.command.is_empty() {
        return Err(Error::invalid("no command given: podlab box [OPTIONS] -- COMMAND [ARGS]"));
    }
    if let (Some(root), None) = (&spec.rootfs, &req.image_layers) {
        if !root.is_dir() {
            return Err(Error::Missing(format!("--rootfs {}: no such directory", root.display())));
        }
        if root.canonicalize().map(|r| r == std::path::Path::new("/")).unwrap_or(false) {
            return Err(Error::invalid("--rootfs /: the host's root is not a separate root filesystem"));
        }
    }
    if let Some(h) = &spec.hostname {
        namespace::validate_hostname(h)?;
        if !spec.namespaces.contains(&Namespace::Uts) {
            return Err(Error::invalid(
                "--hostname needs its own UTS namespace: add --ns uts (or --all-ns), or the host's name would change",
            ));
        }
    }
    let limits = Limits {
        cpu_millis: req.cpus.as_deref().map(quantity::parse_cpu).transpose()?,
        memory_bytes: req.memory.as_deref().map(quantity::parse_bytes).transpose()?,
        swap_off: req.memory.is_some(),
        pids: req.pids,
        cpu_shares: None,
    };
    if let Some(m) = limits.memory_bytes {
        if m < 4 << 20 {
            return Err(Error::invalid(format!(
                "--memory {}: at least 4Mi is needed to start a process",
                quantity::format_bytes(m)
            )));
        }
    }
    if let Some(id) = &req.id {
        let ok = !id.is_empty()
            && id.len() <= 40
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.starts_with('-');
        if !ok {
            return Err(Error::invalid(format!("--id {id:?}: use up to 40 lowercase letters, digits and '-'")));
        }
    }
    if req.pids == Some(0) {
        return Err(Error::invalid("--pids 0: the box needs at least 1 process"));
    }
    Ok((spec.clone(), limits))
}

static SIGNALLED: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_signal(sig: libc::c_int) {
    SIGNALLED.store(sig, Ordering::Relaxed);
}

fn catch_signals() {
    // No SA_RESTART: a blocked read or waitpid returns EINTR so we can act on the signal.
    let action = SigAction::new(SigHandler::Handler(note_signal), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// A short random id (8 hex digits) from the kernel's random pool.
pub fn new_id() -> String {
    let mut buf = [0u8; 4];
    if !crate::primitives::random::fill(&mut buf) {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        buf = (t.subsec_nanos() ^ std::process::id()).to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run a box in the foreground and remove everything it made. Must be called from a
/// single-threaded process (it spawns the init with fork+exec and handles signals).
pub fn run(dirs: &StateDirs, req: &BoxRequest) -> Result<BoxExit> {
    let (spec, limits) = validate(req)?;
    let id = req.id.clone().unwrap_or_else(new_id);
    let cgroup = Cgroup::new(format!("{}/box-{id}", crate::primitives::cgroup::PARENT))?;
    if cgroup.exists() || dirs.records().join(format!("box-{id}.jsonl")).exists() {
        return Err(Error::invalid(format!(
            "a box named {id} exists already (running, or left over from a crash: podlab reset)"
        )));
    }
    let record = Record::open(&dirs.records(), &format!("box-{id}"))?;
    let mut spec = spec;
    let result = prepare_image(dirs, &record, &id, req, &mut spec)
        .and_then(|()| run_recorded(&record, &id, &cgroup, &spec, &limits));
    let cleanup = record.undo();
    let exit = result?;
    cleanup?;
    Ok(exit)
}

/// For `--image`: a directory for the overlay's upper, work and merged directories, recorded
/// for removal; the init mounts the overlay in its own mount namespace.
fn prepare_image(dirs: &StateDirs, record: &Record, id: &str, req: &BoxRequest, spec: &mut BoxSpec) -> Result<()> {
    let Some(layers) = &req.image_layers else { return Ok(()) };
    let dir = dirs.run.join("boxes").join(format!("box-{id}"));
    record.note(Resource::Dir { path: dir.clone() })?;
    let overlay = crate::image::rootfs::prepare(layers.clone(), &dir)?;
    spec.rootfs = Some(overlay.merged.clone());
    spec.overlay = Some(overlay);
    if !spec.namespaces.contains(&Namespace::Mount) {
        // The image's overlay must be mounted where only the box sees it.
        spec.namespaces.push(Namespace::Mount);
    }
    Ok(())
}

fn run_recorded(record: &Record, id: &str, cgroup: &Cgroup, spec: &BoxSpec, limits: &Limits) -> Result<BoxExit> {
    record.note(Resource::Cgroup { path: cgroup.rel().to_path_buf() })?;
    cgroup.create()?;
    cgroup.apply(limits)?;

    catch_signals();
    let (mut channel, child_end) = Channel::pair()?;
    let child = spawn_init(&child_end, false)?;
    drop(child_end);
    let pid = child.id() as i32;
    if let Some(start_time) = crate::primitives::proc::start_time(pid) {
        record.note(Resource::Process { pid, start_time })?;
    }
    // Join before the spec is sent: the init waits for it, so everything it starts is
    // inside the cgroup (and a cgroup namespace is rooted here).
    cgroup.join(pid)?;
    channel.send(&spec)?;

    let mut failure = None;
    loop {
        match channel.recv::<Report>() {
            Ok(Some(Report::Failed { step, message, exit_code })) => failure = Some((step, message, exit_code)),
            Ok(None) => break,
            Err(_) if SIGNALLED.load(Ordering::Relaxed) != 0 => break,
            Err(e) => return Err(e),
        }
    }
    let code = wait_interruptible(Pid::from_raw(pid), cgroup);
    let stats = cgroup.stats();
    let sig = SIGNALLED.load(Ordering::Relaxed);
    if let Some((step, message, exit_code)) = failure {
        return Ok(BoxExit {
            code: exit_code,
            oom_kills: 0,
            interrupted_by: None,
            id: id.to_string(),
            failed: Some(format!("{step}: {message}")),
        });
    }
    Ok(BoxExit {
        failed: None,
        code: if sig != 0 { 128 + sig } else { code },
        oom_kills: stats.oom_kills,
        interrupted_by: (sig != 0).then_some(sig),
        id: id.to_string(),
    })
}

/// Start a box in the background, detached from podlab (its own session, not killed when
/// podlab exits, no cgroup), and return the pid of its init once the command runs. Labs
/// use it to leave a namespaced process behind for the learner to inspect.
pub fn spawn_detached(spec: &BoxSpec) -> Result<i32> {
    let (mut channel, child_end) = Channel::pair()?;
    let mut child = spawn_init(&child_end, true)?;
    drop(child_end);
    channel.send(&BoxSpec { detach: true, ..spec.clone() })?;
    let report = channel.recv::<Report>()?;
    // The init's stderr carries its explanations; it is closed once the command runs.
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::copy(&mut stderr, &mut std::io::stderr());
    }
    if let Some(Report::Failed { step, message, .. }) = report {
        return Err(Error::Child { step: format!("box {step}"), message });
    }
    Ok(child.id() as i32)
}

fn spawn_init(child_end: &std::os::unix::net::UnixStream, detach: bool) -> Result<std::process::Child> {
    let fd = child_end.as_raw_fd();
    // Our own binary by its real path, so `ps` shows "podlab __init" (not "exe").
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut cmd = Command::new(exe);
    if detach {
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    }
    cmd.arg("__init").env(crate::primitives::channel::FD_ENV, crate::primitives::channel::CHILD_FD.to_string());
    // SAFETY: only async-signal-safe calls (dup2, fcntl, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == crate::primitives::channel::CHILD_FD {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            } else if libc::dup2(fd, crate::primitives::channel::CHILD_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if detach {
                libc::setsid();
            } else {
                // If podlab dies, the box dies with it (its cgroup stays for `podlab reset`).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| Error::io("start", "/proc/self/exe __init", e))
}

/// Wait for the init; on SIGINT/SIGTERM/SIGHUP kill everything in the box's cgroup.
fn wait_interruptible(pid: Pid, cgroup: &Cgroup) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    let mut killed = false;
    loop {
        if SIGNALLED.load(Ordering::Relaxed) != 0 && !killed {
            let _ = cgroup.kill_all();
            killed = true;
        }
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}
