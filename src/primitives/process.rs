//! Process attributes a container init sets just before it runs the container's program.
//!
//! *no_new_privs* makes `execve` unable to grant privileges (set-uid bits and file capabilities
//! are ignored) and is inherited by every child. *rlimits* cap resources per process (open files,
//! processes, core size...): a soft limit the process may raise up to the hard limit. *ids*:
//! supplementary groups, gid, then uid, in that order, since changing the uid gives up the
//! right to change the others. All three are shown in /proc/PID/status and /proc/PID/limits.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::{Gid, Uid};

use crate::error::{Error, IoContext, Result, SysContext};
use crate::explain;

/// Set no_new_privs for the caller and its future children; it can never be unset
/// (`setpriv --no-new-privs sh`).
pub fn set_no_new_privs() -> Result<()> {
    explain::say("setpriv --no-new-privs sh");
    nix::sys::prctl::set_no_new_privs().sys(|| "prctl(PR_SET_NO_NEW_PRIVS, 1)".into())
}

/// Whether a process (`None`: the caller) has no_new_privs set (`NoNewPrivs:` in its status).
pub fn no_new_privs(pid: Option<i32>) -> Result<bool> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = std::fs::read_to_string(&path).ctx("read", &path)?;
    match text.lines().find_map(|l| l.strip_prefix("NoNewPrivs:")).map(str::trim) {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        other => Err(Error::invalid(format!("{path}: unexpected NoNewPrivs line {other:?}"))),
    }
}

/// The OCI rlimit names (`process.rlimits[].type`), their kernel resource and the `prlimit` option.
const RLIMITS: [(&str, Resource, &str); 16] = [
    ("RLIMIT_AS", Resource::RLIMIT_AS, "--as"),
    ("RLIMIT_CORE", Resource::RLIMIT_CORE, "--core"),
    ("RLIMIT_CPU", Resource::RLIMIT_CPU, "--cpu"),
    ("RLIMIT_DATA", Resource::RLIMIT_DATA, "--data"),
    ("RLIMIT_FSIZE", Resource::RLIMIT_FSIZE, "--fsize"),
    ("RLIMIT_LOCKS", Resource::RLIMIT_LOCKS, "--locks"),
    ("RLIMIT_MEMLOCK", Resource::RLIMIT_MEMLOCK, "--memlock"),
    ("RLIMIT_MSGQUEUE", Resource::RLIMIT_MSGQUEUE, "--msgqueue"),
    ("RLIMIT_NICE", Resource::RLIMIT_NICE, "--nice"),
    ("RLIMIT_NOFILE", Resource::RLIMIT_NOFILE, "--nofile"),
    ("RLIMIT_NPROC", Resource::RLIMIT_NPROC, "--nproc"),
    ("RLIMIT_RSS", Resource::RLIMIT_RSS, "--rss"),
    ("RLIMIT_RTPRIO", Resource::RLIMIT_RTPRIO, "--rtprio"),
    ("RLIMIT_RTTIME", Resource::RLIMIT_RTTIME, "--rttime"),
    ("RLIMIT_SIGPENDING", Resource::RLIMIT_SIGPENDING, "--sigpending"),
    ("RLIMIT_STACK", Resource::RLIMIT_STACK, "--stack"),
];

/// Set a resource limit of the caller, named as in OCI ("RLIMIT_NOFILE"); `u64::MAX` means
/// unlimited (`prlimit --pid $$ --nofile=SOFT:HARD`). Raising the hard limit needs
/// CAP_SYS_RESOURCE; lowering it is allowed to anyone and cannot be undone.
pub fn set_rlimit(name: &str, soft: u64, hard: u64) -> Result<()> {
    let Some((name, resource, option)) = RLIMITS.iter().find(|(n, _, _)| *n == name) else {
        let names: Vec<&str> = RLIMITS.iter().map(|(n, _, _)| *n).collect();
        return Err(Error::invalid(format!("unknown rlimit {name:?} (valid: {})", names.join(", "))));
    };
    if soft > hard {
        return Err(Error::invalid(format!(
            "{name}: soft limit {soft} is above hard limit {hard} (the soft limit must not exceed the hard one)"
        )));
    }
    let show = |v: u64| if v == u64::MAX { "unlimited".to_string() } else { v.to_string() };
    explain::say(format!("prlimit --pid $$ {option}={}:{}", show(soft), show(hard)));
    let (_, old_hard) = getrlimit(*resource).sys(|| format!("getrlimit({name})"))?;
    match setrlimit(*resource, soft, hard) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) if hard > old_hard => {
            let has_sys_resource =
                caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_RESOURCE).unwrap_or(false);
            if has_sys_resource && *name == "RLIMIT_NOFILE" {
                Err(Error::invalid(format!(
                    "cannot raise RLIMIT_NOFILE hard limit to {}: above the kernel's maximum /proc/sys/fs/nr_open",
                    show(hard)
                )))
            } else {
                Err(Error::invalid(format!(
                    "cannot raise {name} hard limit above {} without CAP_SYS_RESOURCE (asked for {}; \
                     this process does not hold it: see CapEff in /proc/self/status)",
                    show(old_hard),
                    show(hard)
                )))
            }
        }
        Err(e) => Err(Error::sys(format!("setrlimit({name}, {}, {})", show(soft), show(hard)), e)),
    }
}

/// Keep the permitted capabilities when the uid changes from 0 to non-zero (`capsh --keep=1`).
/// runc sets it before [`set_ids`] and then applies the container's capability sets again,
/// because the kernel empties the effective (and, without keep-caps, permitted) set then.
pub fn keep_caps(on: bool) -> Result<()> {
    explain::say(format!("capsh --keep={}", u8::from(on)));
    nix::sys::prctl::set_keepcaps(on).sys(|| format!("prctl(PR_SET_KEEPCAPS, {})", u8::from(on)))
}

/// Become `uid`:`gid` with exactly `additional_gids` as supplementary groups: setgroups, then
/// setgid, then setuid (`setpriv --reuid U --regid G --groups G1,G2 sh`). Real, effective and
/// saved ids all change. The ambient capability set is emptied by the uid change: call
/// [`keep_caps`] before and `caps::apply` after, as runc does.
pub fn set_ids(uid: u32, gid: u32, additional_gids: &[u32]) -> Result<()> {
    let groups = match additional_gids {
        [] => "--clear-groups".to_string(),
        list => format!("--groups={}", list.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",")),
    };
    explain::say(format!("setpriv --reuid={uid} --regid={gid} {groups} sh"));
    let gids: Vec<Gid> = additional_gids.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).sys(|| format!("setgroups({additional_gids:?}) (needs CAP_SETGID)"))?;
    nix::unistd::setgid(Gid::from_raw(gid)).sys(|| format!("setgid({gid}) (needs CAP_SETGID)"))?;
    nix::unistd::setuid(Uid::from_raw(uid)).sys(|| format!("setuid({uid}) (needs CAP_SETUID)"))
}

static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn relay(sig: libc::c_int) {
    let pid = CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Pass terminal and termination signals (INT, TERM, HUP, QUIT, USR1, USR2) on to `pid`,
/// as a container's parent does for its pid 1.
pub fn forward_signals(pid: i32) {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    CHILD.store(pid, std::sync::atomic::Ordering::Relaxed);
    let action = SigAction::new(SigHandler::Handler(relay), SaFlags::SA_RESTART, SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2] {
        // SAFETY: the handler only calls kill, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// Wait for child `pid` and turn its end into a shell-style exit code: the exit status, or
/// 128 + the signal that killed it (125 if it cannot be waited for).
pub fn wait_status(pid: i32) -> i32 {
    use nix::sys::wait::{WaitStatus, waitpid};
    let pid = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 125,
        }
    }
}

/// Unblock every signal of the calling thread (async-signal-safe: for `pre_exec`). Blocked
/// signals are inherited across fork and exec, so a child of a process that takes signals
/// with `sigwait` would otherwise ignore SIGTERM.
pub fn unblock_all_signals() {
    // SAFETY: sigemptyset fills the set we own; sigprocmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
