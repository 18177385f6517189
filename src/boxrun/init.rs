//! `podlab __init`: the single-threaded process that becomes the box.
//!
//! It reads the box spec from the channel, unshares the namespaces (a new pid namespace
//! only applies to children, so it forks: the child is pid 1), then the child makes mount
//! propagation private, moves into the root filesystem with pivot_root, mounts /proc, /dev
//! and /sys, sets the hostname, brings up loopback and finally execs the command. The
//! parent in the middle forwards signals and passes the exit status up.

use std::ffi::CString;
use std::path::Path;

use nix::unistd::ForkResult;

use super::BoxSpec;
use crate::error::{Error, Result};
use crate::primitives::channel::{Channel, Report};
use crate::primitives::namespace::{self, Namespace};
use crate::primitives::{chroot, mount};

/// Entry point of `podlab __init`; never returns.
pub fn main() -> ! {
    let mut channel = Channel::from_env_or_exit("__init", 125);
    let spec: BoxSpec = match channel.recv() {
        Ok(Some(spec)) => spec,
        Ok(None) => std::process::exit(125), // the parent went away
        Err(e) => fail(&mut channel, "read the box spec", e, 125),
    };
    crate::explain::set_enabled(spec.explain);
    let code = match run(&spec, &mut channel) {
        Ok(code) => code,
        Err((step, e, code)) => fail(&mut channel, &step, e, code),
    };
    std::process::exit(code)
}

fn fail(channel: &mut Channel, step: &str, error: Error, exit_code: i32) -> ! {
    let report = Report::Failed { step: step.to_string(), message: error.to_string(), exit_code };
    if channel.send(&report).is_err() {
        eprintln!("podlab: {step}: {error}");
    }
    std::process::exit(exit_code)
}

type StepResult<T> = std::result::Result<T, (String, Error, i32)>;

fn step<T>(name: &str, r: Result<T>) -> StepResult<T> {
    r.map_err(|e| (name.to_string(), e, 125))
}

fn run(spec: &BoxSpec, channel: &mut Channel) -> StepResult<i32> {
    if spec.namespaces.contains(&Namespace::User) {
        step("create the user namespace", namespace::unshare(&[Namespace::User]))?;
        // Map root inside to our own (root) user outside: the one mapping a process may
        // write for itself.
        step("map user ids", namespace::write_id_maps(std::process::id() as i32, "0 0 1", "0 0 1"))?;
    }
    let others: Vec<Namespace> = spec.namespaces.iter().copied().filter(|n| *n != Namespace::User).collect();
    step("create namespaces", namespace::unshare(&others))?;
    if !spec.namespaces.contains(&Namespace::Pid) {
        return setup_and_exec(spec);
    }
    // SAFETY: this process is single-threaded (a fresh exec of podlab), so fork is sound.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(("fork pid 1".into(), Error::sys("fork", e), 125)),
        Ok(ForkResult::Child) => {
            set_parent_death_signal();
            match setup_and_exec(spec) {
                Ok(code) => Ok(code),
                Err((step, e, code)) => fail(channel, &step, e, code),
            }
        }
        Ok(ForkResult::Parent { child }) => {
            // Only the box's pid 1 and the exec should hold the channel now: closing our
            // copy lets podlab see EOF the moment the command starts.
            let _ = nix::unistd::close(channel.raw_fd());
            if spec.detach {
                to_dev_null(&[0, 1, 2]);
            }
            crate::primitives::process::forward_signals(child.as_raw());
            Ok(crate::primitives::process::wait_status(child.as_raw()))
        }
    }
}

/// Everything inside the namespaces, then exec. Returns only on failure.
fn setup_and_exec(spec: &BoxSpec) -> StepResult<i32> {
    let has = |ns| spec.namespaces.contains(&ns);
    if has(Namespace::Mount) {
        step("make mounts private", mount::make_private(Path::new("/"), true))?;
    }
    if let Some(overlay) = &spec.overlay {
        if !has(Namespace::Mount) {
            return Err(("mount the image".into(), Error::invalid("an image root needs a mount namespace"), 125));
        }
        step("mount the image's layers", overlay.mount())?;
    }
    match (&spec.rootfs, has(Namespace::Mount)) {
        (Some(root), true) => {
            step("mount the root filesystem", setup_rootfs(root, has(Namespace::Pid), has(Namespace::Ipc)))?;
            step("pivot_root", chroot::pivot_root(root))?;
        }
        (Some(root), false) => step("chroot", chroot::chroot(root))?,
        (None, true) if has(Namespace::Pid) => {
            // A fresh /proc over the host's so ps and /proc show only the box's processes.
            step("mount /proc", mount::proc(Path::new("/proc")))?;
        }
        (None, _) => {}
    }
    if has(Namespace::Uts) {
        let name = spec.hostname.as_deref().unwrap_or("podlab-box");
        step("set the hostname", namespace::set_hostname(name))?;
    }
    if has(Namespace::Net) {
        step("bring up loopback", crate::primitives::link::set_up(None, "lo"))?;
    }
    exec(spec)
}

/// Mount /proc, /dev (a tmpfs with the standard device nodes bound from the host, the
/// /proc/self/fd links, /dev/shm, a private /dev/pts, /dev/mqueue with an IPC namespace)
/// and /sys inside the new root, before pivoting into it.
fn setup_rootfs(root: &Path, new_pid: bool, new_ipc: bool) -> Result<()> {
    let proc_dir = root.join("proc");
    ensure_dir(&proc_dir)?;
    if new_pid {
        mount::proc(&proc_dir)?;
    } else {
        mount::bind(Path::new("/proc"), &proc_dir, false)?;
    }
    let dev = root.join("dev");
    ensure_dir(&dev)?;
    mount::tmpfs(&dev, Some("mode=755,size=65536k"))?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let target = dev.join(node);
        std::fs::File::create(&target).map_err(|e| Error::io("create device node mount point", &target, e))?;
        mount::bind(&Path::new("/dev").join(node), &target, false)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(to, &dev.join(link))?;
    }
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mount::tmpfs(&shm, Some("mode=1777,size=65536k"))?;
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mount::devpts(&pts)?;
    symlink("pts/ptmx", &dev.join("ptmx"))?;
    if new_ipc {
        let mq = dev.join("mqueue");
        mkdir(&mq)?;
        mount::mqueue(&mq)?;
    }
    // A fresh read-only sysfs: it shows the box's network namespace, and none of the
    // host's submounts (/sys/fs/cgroup...) come along as they would with a bind mount.
    let sys = root.join("sys");
    if sys.is_dir() {
        mount::sysfs(&sys)?;
    }
    Ok(())
}

/// `mkdir DIR` inside the box's fresh /dev tmpfs.
fn mkdir(dir: &Path) -> Result<()> {
    crate::explain::say(format!("mkdir {}", dir.display()));
    std::fs::create_dir(dir).map_err(|e| Error::io("create directory", dir, e))
}

/// `ln -s TO LINK` inside the box's fresh /dev tmpfs.
fn symlink(to: &str, link: &Path) -> Result<()> {
    crate::explain::say(format!("ln -s {to} {}", link.display()));
    std::os::unix::fs::symlink(to, link).map_err(|e| Error::io("create symlink", link, e))
}

fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(Error::Missing(format!(
        "{} is missing in the root filesystem (a root filesystem needs /proc and /dev directories)",
        dir.display()
    )))
}

fn exec(spec: &BoxSpec) -> StepResult<i32> {
    let to_c = |s: &String| {
        CString::new(s.as_bytes()).map_err(|_| Error::invalid(format!("argument {s:?} contains a NUL byte")))
    };
    let args: Vec<CString> = step("prepare the command", spec.command.iter().map(to_c).collect())?;
    let Some(program) = args.first() else {
        return Err(("exec".into(), Error::invalid("no command given"), 125));
    };
    // SAFETY (set_var/remove_var): single-threaded here; nothing reads the environment concurrently.
    if let Some(env) = &spec.env {
        for (key, _) in std::env::vars_os() {
            unsafe { std::env::remove_var(key) };
        }
        for kv in env {
            if let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) {
                unsafe { std::env::set_var(k, v) };
            }
        }
    }
    if spec.rootfs.is_some() && (spec.env.is_none() || std::env::var_os("PATH").is_none()) {
        // The host's PATH means nothing inside another root filesystem.
        unsafe { std::env::set_var("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") };
    }
    if let Some(dir) = &spec.cwd {
        crate::explain::say(format!("cd {dir}"));
        step(
            "change to the working directory",
            nix::unistd::chdir(dir.as_str()).map_err(|e| Error::sys(format!("chdir {dir}"), e)),
        )?;
    }
    crate::explain::say(format!("exec {}", crate::explain::join(&spec.command)));
    if spec.detach {
        to_dev_null(&[0, 1, 2]);
    }
    let err = nix::unistd::execvp(program, &args).unwrap_err();
    let code = if err == nix::errno::Errno::ENOENT { 127 } else { 126 };
    let where_ = match &spec.rootfs {
        Some(r) => format!(" in the root filesystem {}", r.display()),
        None => String::new(),
    };
    Err(("exec".into(), Error::invalid(format!("{}: {}{where_}", spec.command[0], err.desc())), code))
}

/// Point the given fds at /dev/null (a detached box must not hold its starter's pipes).
fn to_dev_null(fds: &[i32]) {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in fds {
            // SAFETY: dup2 onto a standard fd; `null` stays open until the end of this block.
            unsafe { libc::dup2(null.as_raw_fd(), *fd) };
        }
    }
}

fn set_parent_death_signal() {
    // If the init above us dies, so do we (and with pid 1, the whole pid namespace).
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a plain signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
}
