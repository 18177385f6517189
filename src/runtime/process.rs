//! The container's process: everything `process` in config.json asks for, in the right order.
//!
//! After the root filesystem is ready the init sets the hostname and sysctls, the rlimits and
//! OOM score, finds the program in the container's `PATH` (so a typo fails at `create`, as
//! with runc), then gives up privileges: supplementary groups, gid and uid (keeping the
//! capabilities across the uid change), the five capability sets, no_new_privs. The seccomp
//! filter comes last, just before `execve`, because it may forbid the calls made on the way;
//! without no_new_privs it must be loaded while CAP_SYS_ADMIN is still held, before the
//! capabilities are dropped. Every fd above 3 + `--preserve-fds` is closed on exec, so no
//! host file (a cgroup directory, the state directory) leaks in (CVE-2024-21626), and the
//! working directory is entered only after pivot_root, so it cannot point outside.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

use super::init::{Step, step};
use crate::error::{Error, Result};
use crate::explain;
use crate::primitives::{caps, process as pprocess, seccomp};

/// The program to exec, resolved and converted before privileges are dropped.
pub struct Program {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    filter: Option<seccomp::Filter>,
}

/// Container-wide settings (hostname, domainname, sysctls) and then the process's own.
pub fn setup_container(spec: &Spec, proc_: &Process) -> Step<()> {
    let new_uts = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).is_some_and(|n| {
        n.iter().any(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::Uts && ns.path().is_none())
    });
    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        if !new_uts {
            return Err((
                "set the hostname".into(),
                Error::invalid("hostname is set but there is no new UTS namespace"),
                1,
            ));
        }
        step("set the hostname", crate::primitives::namespace::set_hostname(name))?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        explain::say(format!("domainname {name}"));
        // SAFETY: setdomainname reads `len` bytes from a valid buffer.
        let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        if rc != 0 {
            return Err(("set the domain name".into(), Error::sys("setdomainname", nix::errno::Errno::last()), 1));
        }
    }
    for (key, value) in spec.linux().as_ref().and_then(|l| l.sysctl().clone()).unwrap_or_default() {
        step(&format!("set sysctl {key}"), sysctl(&key, &value))?;
    }
    setup_process(proc_)
}

fn sysctl(key: &str, value: &str) -> Result<()> {
    if key.contains("..") || key.contains('/') && key.contains('.') {
        return Err(Error::invalid(format!("sysctl name {key:?} is not valid")));
    }
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    explain::say(format!("sysctl -w {key}={value}"));
    std::fs::write(&path, value).map_err(|e| Error::io("write", &path, e))
}

/// The process with its user resolved: an image's `User` that names a user ("nginx",
/// "app:staff") is looked up in the container's /etc/passwd and /etc/group, which only exist
/// once the root filesystem is in place (see [`super::spec::UNRESOLVED_USER_ANNOTATION`]).
pub fn resolve_user(spec: &Spec, proc_: &Process) -> Step<Process> {
    let mut p = proc_.clone();
    let Some(name) = spec.annotations().as_ref().and_then(|a| a.get(super::spec::UNRESOLVED_USER_ANNOTATION)) else {
        return Ok(p);
    };
    let (user, group) = match name.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (name.as_str(), None),
    };
    let lookup = |file: &str, key: &str| -> Option<(u32, Option<u32>)> {
        std::fs::read_to_string(file).ok()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 || (f[0] != key && f[2] != key) {
                return None;
            }
            Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())))
        })
    };
    let (uid, primary) = lookup("/etc/passwd", user).ok_or_else(|| {
        (
            "resolve the user".to_string(),
            Error::invalid(format!("user {user:?} is not in the container's /etc/passwd")),
            1,
        )
    })?;
    let gid = match group {
        Some(g) => lookup("/etc/group", g).map(|(gid, _)| gid).ok_or_else(|| {
            (
                "resolve the group".to_string(),
                Error::invalid(format!("group {g:?} is not in the container's /etc/group")),
                1,
            )
        })?,
        None => primary.unwrap_or(0),
    };
    explain::say(format!("id {name}   # uid={uid} gid={gid} from the container's /etc/passwd"));
    let mut u = p.user().clone();
    u.set_uid(uid);
    u.set_gid(gid);
    p.set_user(u);
    Ok(p)
}

/// Rlimits and the OOM score (also for `exec`).
pub fn setup_process(proc_: &Process) -> Step<()> {
    for r in proc_.rlimits().iter().flatten() {
        let name = r.typ().to_string();
        step(&format!("set {name}"), pprocess::set_rlimit(&name, r.soft(), r.hard()))?;
    }
    if let Some(score) = proc_.oom_score_adj() {
        explain::say(format!("echo {score} > /proc/self/oom_score_adj"));
        step(
            "set the OOM score",
            std::fs::write("/proc/self/oom_score_adj", score.to_string())
                .map_err(|e| Error::io("write", "/proc/self/oom_score_adj", e)),
        )?;
    }
    Ok(())
}

/// Resolve the program in the container's PATH and convert args and env; compile the filter.
pub fn prepare(spec: &Spec, proc_: &Process) -> Step<Program> {
    let to_c = |s: &str| CString::new(s).map_err(|_| Error::invalid(format!("{s:?} contains a NUL byte")));
    let args_list = proc_.args().clone().unwrap_or_default();
    let Some(first) = args_list.first() else {
        return Err(("find the program".into(), Error::invalid("process.args is empty"), 1));
    };
    let mut env_list = proc_.env().clone().unwrap_or_default();
    if !env_list.iter().any(|e| e.starts_with("HOME=")) {
        // Like runc: HOME from the container's /etc/passwd for the uid, else "/".
        env_list.push(format!("HOME={}", home_of(proc_.user().uid())));
    }
    let path_var = env_list.iter().rev().find_map(|e| e.strip_prefix("PATH=")).map(str::to_string);
    let path =
        step("find the program", lookup(first, path_var.as_deref(), proc_.cwd())).map_err(|(s, e, _)| (s, e, 127))?;
    let args = step("prepare the arguments", args_list.iter().map(|a| to_c(a)).collect::<Result<Vec<_>>>())?;
    let env = step("prepare the environment", env_list.iter().map(|a| to_c(a)).collect::<Result<Vec<_>>>())?;
    let path = step("prepare the program path", to_c(&path.to_string_lossy()))?;
    let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(step("compile the seccomp filter", seccomp::compile(profile))?),
        None => None,
    };
    Ok(Program { path, args, env, filter })
}

/// The home directory of `uid` in the container's /etc/passwd ("/" when unknown).
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 5 && f[2] == uid.to_string()).then(|| f[5].to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// Find `name` the way execvp would, in `path` (the process's PATH) — or the default.
fn lookup(name: &str, path: Option<&str>, cwd: &Path) -> Result<PathBuf> {
    let runnable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if name.contains('/') {
        let p = if Path::new(name).is_absolute() { PathBuf::from(name) } else { cwd.join(name) };
        if runnable(&p) {
            return Ok(p);
        }
        // runc's wording: podman maps "no such file or directory" to exit code 127.
        let why = if p.exists() { "permission denied" } else { "no such file or directory" };
        return Err(Error::invalid(format!("exec: {name:?}: stat {}: {why}", p.display())));
    }
    let search = path.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if runnable(&p) {
            return Ok(p);
        }
    }
    Err(Error::invalid(format!("exec: {name:?}: executable file not found in $PATH")))
}

/// Drop to the spec's user and capabilities, set no_new_privs, enter the working directory,
/// mark every fd past the preserved ones close-on-exec.
pub fn before_exec(proc_: &Process, program: &Program, preserve_fds: i32) -> Step<()> {
    let nnp = proc_.no_new_privileges().unwrap_or(false);
    if !nnp && let Some(filter) = &program.filter {
        step("load the seccomp filter", filter.load())?;
    }
    let user = proc_.user();
    let (uid, gid) = (user.uid(), user.gid());
    let groups = user.additional_gids().clone().unwrap_or_default();
    step("keep capabilities across setuid", pprocess::keep_caps(true))?;
    step("set the user", pprocess::set_ids(uid, gid, &groups))?;
    if let Some(mask) = user.umask() {
        explain::say(format!("umask {mask:o}"));
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    let sets = proc_.capabilities().as_ref().map(cap_sets).unwrap_or_default();
    step("set capabilities", caps::apply(&sets))?;
    step("keep capabilities across setuid", pprocess::keep_caps(false))?;
    if nnp {
        step("set no_new_privs", pprocess::set_no_new_privs())?;
    }
    let cwd = proc_.cwd();
    explain::say(format!("cd {}", cwd.display()));
    step(
        "enter the working directory",
        nix::unistd::chdir(cwd).map_err(|e| Error::sys(format!("chdir {}", cwd.display()), e)),
    )?;
    let first = 3 + preserve_fds.max(0) as u32;
    // SAFETY: close_range only changes fd flags; CLOSE_RANGE_CLOEXEC keeps them open until exec.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc != 0 {
        return Err(("mark fds close-on-exec".into(), Error::sys("close_range", nix::errno::Errno::last()), 1));
    }
    Ok(())
}

fn cap_sets(c: &oci_spec::runtime::LinuxCapabilities) -> caps::CapSets {
    let names = |set: &Option<oci_spec::runtime::Capabilities>| -> Vec<String> {
        let mut v: Vec<String> = set.iter().flatten().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    let (inheritable, permitted) = (names(c.inheritable()), names(c.permitted()));
    // The kernel raises an ambient capability only when it is permitted and inheritable. runc
    // raises what it can and warns about the rest (its own `runc spec` lists ambient caps
    // without inheritable ones); podlab does the same rather than refusing the spec.
    let (ambient, dropped): (Vec<String>, Vec<String>) =
        names(c.ambient()).into_iter().partition(|a| inheritable.contains(a) && permitted.contains(a));
    if !dropped.is_empty() {
        tracing::warn!("ambient capabilities {dropped:?} are not both permitted and inheritable: not raised");
    }
    caps::CapSets { bounding: names(c.bounding()), effective: names(c.effective()), permitted, inheritable, ambient }
}

/// Load the filter (when no_new_privs allowed waiting until now) and exec. Returns only on failure.
pub fn seccomp_and_exec(proc_: &Process, program: &Program) -> Step<std::convert::Infallible> {
    if proc_.no_new_privileges().unwrap_or(false)
        && let Some(filter) = &program.filter
    {
        step("load the seccomp filter", filter.load())?;
    }
    explain::say(format!("exec {}", program.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")));
    // Rust programs start with SIGPIPE ignored, and an ignored signal stays ignored across
    // exec: give the container's program the default (`yes | head` ends quietly), as runc does.
    // SAFETY: setting a signal's disposition to the default has no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let err = match nix::unistd::execve(&program.path, &program.args, &program.env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let code = if err == nix::errno::Errno::ENOENT { 127 } else { 126 };
    Err(("exec".into(), Error::sys(format!("exec {}", program.path.to_string_lossy()), err), code))
}

/// Open a new pseudo-terminal in the container's /dev/pts, make its slave our stdio and
/// controlling terminal and /dev/console; return the master for the console socket.
pub fn open_pty() -> Result<(OwnedFd, String)> {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    explain::say("open /dev/ptmx   # a new terminal; its slave becomes stdin/stdout/stderr");
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("open /dev/ptmx", e))?;
    grantpt(&master).map_err(|e| Error::sys("grantpt", e))?;
    unlockpt(&master).map_err(|e| Error::sys("unlockpt", e))?;
    let name = ptsname_r(&master).map_err(|e| Error::sys("ptsname", e))?;
    let slave = nix::fcntl::open(name.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, nix::sys::stat::Mode::empty())
        .map_err(|e| Error::sys(format!("open {name}"), e))?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard fds; `slave` stays open for the call.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return Err(Error::sys("dup2 the terminal", nix::errno::Errno::last()));
        }
    }
    // SAFETY: TIOCSCTTY takes an int argument; fd 0 is the terminal just installed.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Error::sys("make the terminal the controlling terminal", nix::errno::Errno::last()));
    }
    let console = Path::new("/dev/console");
    if !console.exists() {
        let _ = std::fs::File::create(console);
    }
    if console.exists() {
        crate::primitives::mount::bind(Path::new(&name), console, false)?;
    }
    Ok((OwnedFd::from(master), name))
}

/// Send the terminal's master to the `--console-socket` (SCM_RIGHTS, with the pty name as data).
pub fn send_console(console_fd: Option<i32>, (master, name): (OwnedFd, String)) -> Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let Some(fd) = console_fd else {
        return Err(Error::invalid("process.terminal is true but no --console-socket was given"));
    };
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(fd, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(|e| Error::sys("send the terminal over the console socket", e))?;
    let _ = nix::unistd::close(fd);
    Ok(())
}
