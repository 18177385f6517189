//! Seccomp: a filter the kernel runs on every system call a process makes.
//!
//! The filter is a small BPF program. On each syscall the kernel hands it the architecture,
//! the syscall number and the six arguments, and the program answers with an action: ALLOW,
//! ERRNO(n) (the call "fails" with errno n without ever running), KILL_THREAD / KILL_PROCESS,
//! TRAP (SIGSYS), TRACE (wake a ptrace tracer) or LOG. An OCI spec describes it as a *default
//! action* for every syscall plus *rules* that pick other actions for some syscalls, optionally
//! only when arguments match ("clone, if flags hold no CLONE_NEW* bit"). Container profiles are
//! allow lists: default `SCMP_ACT_ERRNO` (EPERM), then ALLOW for the few hundred ordinary calls.
//! libseccomp turns those rules into BPF, for several architectures at once.
//! A filter can never be removed, only stacked with stricter ones, and it survives `execve`. So
//! that a setuid program cannot be tricked by a filter, the kernel loads one only for a process
//! that has set no_new_privs (`prctl(PR_SET_NO_NEW_PRIVS)`) or holds CAP_SYS_ADMIN.
//! `grep Seccomp /proc/self/status` shows `Seccomp: 2` ("filter mode") once a filter is on.

use std::fmt;

use libseccomp::error::SeccompError;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use crate::error::{Error, Result};
use crate::explain;

/// The errno an `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE` action uses when the spec gives no `errnoRet`.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// The largest errno the kernel passes back (`MAX_ERRNO`); larger ERRNO data is clamped by it.
const MAX_ERRNO: u32 = 4095;

/// A compiled filter, built before the process forks/execs (compiling allocates; loading is one
/// prctl/seccomp syscall).
#[derive(Debug)]
pub struct Filter {
    ctx: ScmpFilterContext,
    rules: usize,
    skipped: Vec<String>,
    /// The `--explain` line, written at compile time so that `load` only has to say it.
    summary: String,
}

// SAFETY: a libseccomp filter context is plain heap memory owned by this value; it is not tied
// to the thread that created it. `Filter` hands out no shared mutable access (load takes &self
// and we do not implement Sync), so moving it to another thread is sound.
unsafe impl Send for Filter {}

/// Compile the spec's filter for the host architecture (+ the architectures the spec lists).
///
/// Syscall names that the host's libseccomp cannot resolve are skipped, as runc and crun do
/// (a profile written for a newer kernel names calls this one has never heard of); they are
/// listed by [`Filter::skipped`] so callers can log them. Rules whose action equals the default
/// action are dropped (they would change nothing, and libseccomp refuses them).
pub fn compile(spec: &LinuxSeccomp) -> Result<Filter> {
    let default = action(spec.default_action(), spec.default_errno_ret())
        .map_err(|why| Error::invalid(format!("seccomp: defaultAction: {why}")))?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| scmp_error("seccomp: create a filter context", e))?;
    // The runtime sets no_new_privs itself when process.noNewPrivileges asks for it; libseccomp
    // would otherwise set it on every load.
    ctx.set_ctl_nnp(false).map_err(|e| scmp_error("seccomp: turn off libseccomp's own no_new_privs", e))?;
    // Best effort: report the kernel's errno when loading fails instead of ECANCELED. Older
    // libseccomp versions lack the attribute; the filter works the same without it.
    let _ = ctx.set_api_sysrawrc(true);

    for (i, arch) in spec.architectures().iter().flatten().enumerate() {
        ctx.add_arch(scmp_arch(*arch)).map_err(|e| {
            Error::invalid(format!(
                "seccomp: unknown architecture {arch} in architectures[{i}]: the libseccomp on this host cannot \
                 filter it ({e})"
            ))
        })?;
    }

    let mut flag_names = Vec::new();
    for flag in spec.flags().iter().flatten() {
        let set = match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true).map(|_| ()),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(Error::invalid(format!(
                    "seccomp: flag {flag} is not supported: it only matters for SCMP_ACT_NOTIFY, which podlab \
                     does not support"
                )));
            }
        };
        set.map_err(|e| Error::invalid(format!("seccomp: flag {flag} is not supported here: {e}")))?;
        flag_names.push(flag.to_string());
    }

    let mut rules = 0;
    let mut skipped = Vec::new();
    for (i, syscall) in spec.syscalls().iter().flatten().enumerate() {
        rules += add_syscall(&mut ctx, default, i, syscall, &mut skipped)?;
    }

    let mut summary = format!("seccomp: load a BPF filter ({rules} syscall rules, default action {})", Show(default));
    if !flag_names.is_empty() {
        summary.push_str(&format!(", flags {}", flag_names.join(" ")));
    }
    Ok(Filter { ctx, rules, skipped, summary })
}

impl Filter {
    /// Load the filter into the calling thread/process (must be the last thing before execve when
    /// no_new_privs is set, since every later syscall is filtered). The caller is single-threaded:
    /// this is a plain load, threads are synchronised only if the spec's flags ask for TSYNC.
    pub fn load(&self) -> Result<()> {
        explain::say(&self.summary);
        self.ctx
            .load()
            .map_err(|e| scmp_error("seccomp: load the filter (the kernel wants no_new_privs set or CAP_SYS_ADMIN)", e))
    }

    /// Syscall names the host's libseccomp does not know, which were left out of the filter.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Number of rules added (one per syscall name and argument condition).
    pub fn rules(&self) -> usize {
        self.rules
    }
}

/// Add the rules of `syscalls[index]`; returns how many were added.
fn add_syscall(
    ctx: &mut ScmpFilterContext,
    default: ScmpAction,
    index: usize,
    syscall: &LinuxSyscall,
    skipped: &mut Vec<String>,
) -> Result<usize> {
    let act = action(syscall.action(), syscall.errno_ret())
        .map_err(|why| Error::invalid(format!("seccomp: syscalls[{index}]: {why}")))?;
    if act == default {
        return Ok(0);
    }
    let conditions = conditions(syscall.args().as_deref().unwrap_or_default())
        .map_err(|why| Error::invalid(format!("seccomp: syscalls[{index}]: {why}")))?;

    let mut added = 0;
    for name in syscall.names() {
        // Resolve against the host's own architecture; libseccomp translates the number for
        // every other architecture in the filter. A name it cannot resolve at all is skipped.
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            if !skipped.contains(name) {
                skipped.push(name.clone());
            }
            continue;
        };
        for group in &conditions {
            ctx.add_rule_conditional(act, nr, group).map_err(|e| {
                Error::invalid(format!("seccomp: cannot add the rule for syscall {name:?} in syscalls[{index}]: {e}"))
            })?;
            added += 1;
        }
    }
    Ok(added)
}

/// The libseccomp action for an OCI action; `errno_ret` is the ERRNO value or the TRACE message.
fn action(action: LinuxSeccompAction, errno_ret: Option<u32>) -> std::result::Result<ScmpAction, String> {
    let value = errno_ret.unwrap_or(DEFAULT_ERRNO);
    Ok(match action {
        // SCMP_ACT_KILL is the old name of KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            if value > MAX_ERRNO {
                return Err(format!("errnoRet {value} is not an errno (0..={MAX_ERRNO})"));
            }
            ScmpAction::Errno(value as i32)
        }
        LinuxSeccompAction::ScmpActTrace => match u16::try_from(value) {
            Ok(msg) => ScmpAction::Trace(msg),
            Err(_) => return Err(format!("errnoRet {value} of SCMP_ACT_TRACE does not fit in 16 bits")),
        },
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err("SCMP_ACT_NOTIFY (hand the call to a user-space agent) is not supported by podlab".into());
        }
    })
}

/// The argument conditions of one OCI rule, as groups of comparators: each group becomes one
/// libseccomp rule, and the comparators of a group must all match (AND).
///
/// libseccomp can compare each argument only once per rule. When a spec compares the same
/// argument twice, runc and crun add one rule per condition instead (OR); we do the same, so
/// profiles written for them keep their meaning.
fn conditions(args: &[LinuxSeccompArg]) -> std::result::Result<Vec<Vec<ScmpArgCompare>>, String> {
    let compares = args.iter().map(compare).collect::<std::result::Result<Vec<_>, _>>()?;
    let mut seen = [false; 6];
    let repeated = args.iter().any(|a| std::mem::replace(&mut seen[a.index()], true));
    Ok(if repeated { compares.into_iter().map(|c| vec![c]).collect() } else { vec![compares] })
}

/// One argument condition: `args[index] OP value` (`args[index] & value == valueTwo` for MaskedEqual).
fn compare(arg: &LinuxSeccompArg) -> std::result::Result<ScmpArgCompare, String> {
    let index = arg.index();
    if index > 5 {
        return Err(format!("args index {index} is out of range: a syscall has arguments 0 to 5"));
    }
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(
                index as u32,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            ));
        }
    };
    Ok(ScmpArgCompare::new(index as u32, op, arg.value()))
}

/// The libseccomp architecture token for an OCI architecture name.
fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// A libseccomp failure during `step`: a system error when libseccomp names an errno.
fn scmp_error(step: &str, e: SeccompError) -> Error {
    match e.sysrawrc() {
        Some(rc) if rc < 0 => Error::sys(step, nix::Error::from_raw(-rc)),
        _ => Error::invalid(format!("{step}: {e}")),
    }
}

/// An action as a person reads it: `ERRNO(EPERM)`, `ALLOW`, `KILL_PROCESS`.
struct Show(ScmpAction);

impl fmt::Display for Show {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ScmpAction::KillProcess => f.write_str("KILL_PROCESS"),
            ScmpAction::KillThread => f.write_str("KILL_THREAD"),
            ScmpAction::Trap => f.write_str("TRAP"),
            ScmpAction::Notify => f.write_str("NOTIFY"),
            ScmpAction::Errno(n) => match nix::errno::Errno::from_raw(n) {
                nix::errno::Errno::UnknownErrno => write!(f, "ERRNO({n})"),
                known => write!(f, "ERRNO({known:?})"),
            },
            ScmpAction::Trace(n) => write!(f, "TRACE({n})"),
            ScmpAction::Log => f.write_str("LOG"),
            ScmpAction::Allow => f.write_str("ALLOW"),
            _ => f.write_str("UNKNOWN"),
        }
    }
}

/// Namespace flags a default-profile `clone` may not carry: creating namespaces is a job for the
/// runtime, and inside a container it opens up kernel code that root-only used to guard.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `personality` values the default profile allows: PER_LINUX, PER_LINUX32, UNAME26,
/// PER_LINUX32|UNAME26 and 0xffffffff (which only queries the current value).
/// Everything else (e.g. ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC) would weaken the process.
const SAFE_PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The syscalls the default profile allows without conditions.
///
/// Left out on purpose (they fail with EPERM): mounting and the new mount API, pivot_root,
/// namespaces (unshare, setns), modules and kexec, reboot, swap, bpf, perf_event_open, ptrace
/// and cross-process memory access, the kernel keyring, clock setting, raw I/O ports, quotas,
/// file handles (open_by_handle_at can escape a bind mount), userfaultfd, io_uring (a large
/// attack surface that bypasses this filter for the I/O it queues), syslog, acct, vhangup,
/// modify_ldt and vm86, and obsolete or unimplemented calls.
const ALLOWED: &[&str] = &[
    // Files: open, read, write, seek, close.
    "open",
    "openat",
    "openat2",
    "creat",
    "close",
    "close_range",
    "read",
    "readv",
    "pread64",
    "preadv",
    "preadv2",
    "write",
    "writev",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "lseek",
    "_llseek",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "fcntl64",
    "flock",
    "ioctl",
    "pipe",
    "pipe2",
    "sendfile",
    "sendfile64",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "readahead",
    "fadvise64",
    "fadvise64_64",
    "arm_fadvise64_64",
    "fallocate",
    "truncate",
    "truncate64",
    "ftruncate",
    "ftruncate64",
    "fsync",
    "fdatasync",
    "sync",
    "syncfs",
    "sync_file_range",
    "sync_file_range2",
    "arm_sync_file_range",
    "memfd_create",
    // Directories, links and names.
    "getcwd",
    "chdir",
    "fchdir",
    "chroot",
    "mkdir",
    "mkdirat",
    "rmdir",
    "mknod",
    "mknodat",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "readlink",
    "readlinkat",
    "getdents",
    "getdents64",
    // File metadata: stat, modes, owners, times, extended attributes.
    "stat",
    "stat64",
    "lstat",
    "lstat64",
    "fstat",
    "fstat64",
    "newfstatat",
    "fstatat64",
    "statx",
    "statfs",
    "statfs64",
    "fstatfs",
    "fstatfs64",
    "access",
    "faccessat",
    "faccessat2",
    "umask",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "chown32",
    "fchown",
    "fchown32",
    "lchown",
    "lchown32",
    "fchownat",
    "utime",
    "utimes",
    "futimesat",
    "utimensat",
    "utimensat_time64",
    "getxattr",
    "lgetxattr",
    "fgetxattr",
    "getxattrat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "setxattrat",
    "listxattr",
    "llistxattr",
    "flistxattr",
    "listxattrat",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "removexattrat",
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "inotify_rm_watch",
    "cachestat",
    // Asynchronous I/O (the old AIO interface, not io_uring).
    "io_setup",
    "io_destroy",
    "io_submit",
    "io_cancel",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    // Memory.
    "brk",
    "mmap",
    "mmap2",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "mincore",
    "msync",
    "mlock",
    "mlock2",
    "munlock",
    "mlockall",
    "munlockall",
    "membarrier",
    "remap_file_pages",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "get_mempolicy",
    "set_mempolicy",
    "map_shadow_stack",
    "mseal",
    // Processes and threads (clone, clone3 and personality have rules of their own below).
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "waitpid",
    "getpid",
    "getppid",
    "gettid",
    "getpgid",
    "setpgid",
    "getpgrp",
    "getsid",
    "setsid",
    "set_tid_address",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "arch_prctl",
    "prctl",
    "get_thread_area",
    "set_thread_area",
    "set_tls",
    "cacheflush",
    "breakpoint",
    "restart_syscall",
    "seccomp",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "pidfd_open",
    "pidfd_send_signal",
    // Users, groups and capabilities (what they may change is up to the capability sets).
    "getuid",
    "getuid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getegid",
    "getegid32",
    "getresuid",
    "getresuid32",
    "getresgid",
    "getresgid32",
    "getgroups",
    "getgroups32",
    "setuid",
    "setuid32",
    "setgid",
    "setgid32",
    "setreuid",
    "setreuid32",
    "setregid",
    "setregid32",
    "setresuid",
    "setresuid32",
    "setresgid",
    "setresgid32",
    "setfsuid",
    "setfsuid32",
    "setfsgid",
    "setfsgid32",
    "setgroups",
    "setgroups32",
    "capget",
    "capset",
    // Scheduling, priorities and resource limits.
    "sched_yield",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_getattr",
    "sched_setattr",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "getpriority",
    "setpriority",
    "nice",
    "ioprio_get",
    "ioprio_set",
    "getrlimit",
    "ugetrlimit",
    "setrlimit",
    "prlimit64",
    "getrusage",
    "times",
    "getcpu",
    // System information and the (per-namespace) host name.
    "uname",
    "sysinfo",
    "getrandom",
    "sethostname",
    "setdomainname",
    // Signals.
    "kill",
    "tkill",
    "tgkill",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigpending",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaction",
    "sigprocmask",
    "sigreturn",
    "sigpending",
    "sigsuspend",
    "signal",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "pause",
    "alarm",
    // Time: reading clocks, sleeping, timers (not setting the clock).
    "time",
    "gettimeofday",
    "clock_gettime",
    "clock_gettime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "nanosleep",
    "getitimer",
    "setitimer",
    "timer_create",
    "timer_settime",
    "timer_settime64",
    "timer_gettime",
    "timer_gettime64",
    "timer_getoverrun",
    "timer_delete",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_settime64",
    "timerfd_gettime",
    "timerfd_gettime64",
    // Waiting for events: poll, select, epoll, eventfd, futexes.
    "poll",
    "ppoll",
    "ppoll_time64",
    "select",
    "_newselect",
    "pselect6",
    "pselect6_time64",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "eventfd",
    "eventfd2",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futex_wake",
    "futex_wait",
    "futex_requeue",
    // Sockets (socketcall is how 32-bit x86 reaches all of them).
    "socket",
    "socketpair",
    "socketcall",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "shutdown",
    "getsockname",
    "getpeername",
    "getsockopt",
    "setsockopt",
    "send",
    "sendto",
    "sendmsg",
    "sendmmsg",
    "recv",
    "recvfrom",
    "recvmsg",
    "recvmmsg",
    "recvmmsg_time64",
    // System V and POSIX IPC (ipc is the 32-bit x86 entry point for System V).
    "ipc",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_notify",
    "mq_getsetattr",
];

/// The default profile podlab gives pod containers that ask for `RuntimeDefault`.
///
/// Like Docker's and containerd's: every syscall fails with EPERM unless allowed. The allow list
/// ([`ALLOWED`]) holds what ordinary programs use; `clone` is allowed only without namespace
/// flags, `personality` only with harmless values, and `clone3` answers ENOSYS (its flags sit in
/// memory, where a filter cannot look) so that glibc falls back to `clone`. Architectures are the
/// host's and its compat modes: x86_64 + x86 + x32 on amd64, aarch64 + arm on arm64.
pub fn default_profile() -> LinuxSeccomp {
    let rule = |names: Vec<String>, action: LinuxSeccompAction, errno_ret: Option<u32>, args: Vec<LinuxSeccompArg>| {
        let mut syscall = LinuxSyscall::default();
        syscall.set_names(names).set_action(action).set_errno_ret(errno_ret);
        if !args.is_empty() {
            syscall.set_args(Some(args));
        }
        syscall
    };
    let arg0 = |op: LinuxSeccompOperator, value: u64, value_two: u64| {
        LinuxSeccompArgBuilder::default()
            .index(0usize)
            .op(op)
            .value(value)
            .value_two(value_two)
            .build()
            .expect("seccomp arg: every field has a default")
    };
    let allow = LinuxSeccompAction::ScmpActAllow;

    let mut syscalls = vec![rule(ALLOWED.iter().map(|s| s.to_string()).collect(), allow, None, Vec::new())];
    // clone: allowed when (flags & CLONE_NEW*) == 0.
    syscalls.push(rule(
        vec!["clone".into()],
        allow,
        None,
        vec![arg0(LinuxSeccompOperator::ScmpCmpMaskedEq, CLONE_NAMESPACE_FLAGS, 0)],
    ));
    // personality: one rule per safe value (several rules for one syscall are OR'ed).
    for value in SAFE_PERSONALITIES {
        syscalls.push(rule(
            vec!["personality".into()],
            allow,
            None,
            vec![arg0(LinuxSeccompOperator::ScmpCmpEq, value, 0)],
        ));
    }
    syscalls.push(rule(vec!["clone3".into()], LinuxSeccompAction::ScmpActErrno, Some(libc::ENOSYS as u32), Vec::new()));

    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(DEFAULT_ERRNO))
        .set_architectures(host_architectures())
        .set_syscalls(Some(syscalls));
    profile
}

/// The architectures a host of this build's target can run: the native one and its compat modes.
fn host_architectures() -> Option<Vec<Arch>> {
    if cfg!(target_arch = "x86_64") {
        Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32])
    } else if cfg!(target_arch = "aarch64") {
        Some(vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm])
    } else {
        // Only the native architecture, which every filter covers anyway.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(index: usize, op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
        let builder = LinuxSeccompArgBuilder::default().index(index).op(op).value(value);
        match value_two {
            Some(two) => builder.value_two(two).build().unwrap(),
            None => builder.build().unwrap(),
        }
    }

    #[test]
    fn actions_map_to_libseccomp() {
        use LinuxSeccompAction::*;
        assert_eq!(action(ScmpActKill, None), Ok(ScmpAction::KillThread));
        assert_eq!(action(ScmpActKillThread, None), Ok(ScmpAction::KillThread));
        assert_eq!(action(ScmpActKillProcess, None), Ok(ScmpAction::KillProcess));
        assert_eq!(action(ScmpActTrap, None), Ok(ScmpAction::Trap));
        assert_eq!(action(ScmpActAllow, Some(5)), Ok(ScmpAction::Allow));
        assert_eq!(action(ScmpActLog, None), Ok(ScmpAction::Log));
        assert_eq!(action(ScmpActErrno, None), Ok(ScmpAction::Errno(libc::EPERM)));
        assert_eq!(action(ScmpActErrno, Some(95)), Ok(ScmpAction::Errno(95)));
        assert_eq!(action(ScmpActErrno, Some(0)), Ok(ScmpAction::Errno(0)));
        assert_eq!(action(ScmpActTrace, None), Ok(ScmpAction::Trace(1)));
        assert_eq!(action(ScmpActTrace, Some(4242)), Ok(ScmpAction::Trace(4242)));
    }

    #[test]
    fn bad_actions_are_named() {
        use LinuxSeccompAction::*;
        assert!(action(ScmpActNotify, None).is_err_and(|e| e.contains("SCMP_ACT_NOTIFY")));
        assert!(action(ScmpActErrno, Some(4096)).is_err_and(|e| e.contains("4096")));
        assert!(action(ScmpActTrace, Some(70000)).is_err_and(|e| e.contains("70000")));
    }

    #[test]
    fn operators_map_to_libseccomp() {
        use LinuxSeccompOperator::*;
        let cases = [
            (ScmpCmpNe, ScmpCompareOp::NotEqual),
            (ScmpCmpLt, ScmpCompareOp::Less),
            (ScmpCmpLe, ScmpCompareOp::LessOrEqual),
            (ScmpCmpEq, ScmpCompareOp::Equal),
            (ScmpCmpGe, ScmpCompareOp::GreaterEqual),
            (ScmpCmpGt, ScmpCompareOp::Greater),
        ];
        for (op, want) in cases {
            assert_eq!(compare(&arg(2, op, 7, Some(9))), Ok(ScmpArgCompare::new(2, want, 7)), "{op}");
        }
        // MaskedEqual: value is the mask, valueTwo what the masked argument must equal.
        assert_eq!(
            compare(&arg(0, ScmpCmpMaskedEq, 0xf0, Some(0x30))),
            Ok(ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xf0), 0x30))
        );
        assert_eq!(
            compare(&arg(0, ScmpCmpMaskedEq, 0xf0, None)),
            Ok(ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xf0), 0))
        );
        assert!(compare(&arg(6, ScmpCmpEq, 0, None)).is_err_and(|e| e.contains("index 6")));
    }

    #[test]
    fn distinct_arguments_are_and_repeated_ones_or() {
        use LinuxSeccompOperator::*;
        let and = conditions(&[arg(0, ScmpCmpEq, 1, None), arg(1, ScmpCmpEq, 2, None)]).unwrap();
        assert_eq!(and.len(), 1);
        assert_eq!(and[0].len(), 2);
        let or = conditions(&[arg(0, ScmpCmpEq, 1, None), arg(0, ScmpCmpEq, 2, None)]).unwrap();
        assert_eq!(
            or,
            vec![
                vec![compare(&arg(0, ScmpCmpEq, 1, None)).unwrap()],
                vec![compare(&arg(0, ScmpCmpEq, 2, None)).unwrap()]
            ]
        );
        assert_eq!(conditions(&[]).unwrap(), vec![Vec::<ScmpArgCompare>::new()]);
    }

    #[test]
    fn actions_read_well() {
        assert_eq!(Show(ScmpAction::Errno(1)).to_string(), "ERRNO(EPERM)");
        assert_eq!(Show(ScmpAction::Errno(38)).to_string(), "ERRNO(ENOSYS)");
        assert_eq!(Show(ScmpAction::Errno(4000)).to_string(), "ERRNO(4000)");
        assert_eq!(Show(ScmpAction::Allow).to_string(), "ALLOW");
        assert_eq!(Show(ScmpAction::Trace(3)).to_string(), "TRACE(3)");
    }

    #[test]
    fn every_oci_architecture_has_a_token() {
        assert_eq!(scmp_arch(Arch::ScmpArchX86_64), ScmpArch::X8664);
        assert_eq!(scmp_arch(Arch::ScmpArchX32), ScmpArch::X32);
        assert_eq!(scmp_arch(Arch::ScmpArchAarch64), ScmpArch::Aarch64);
        assert_eq!(scmp_arch(Arch::ScmpArchArm), ScmpArch::Arm);
    }

    #[test]
    fn default_profile_leaves_out_the_dangerous_calls() {
        let dangerous = [
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "swapon",
            "swapoff",
            "reboot",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "setns",
            "open_by_handle_at",
            "name_to_handle_at",
            "acct",
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "clock_adjtime",
            "clock_adjtime64",
            "adjtimex",
            "iopl",
            "ioperm",
            "lookup_dcookie",
            "quotactl",
            "quotactl_fd",
            "userfaultfd",
            "fsopen",
            "fsmount",
            "fsconfig",
            "fspick",
            "open_tree",
            "move_mount",
            "mount_setattr",
            "syslog",
            "vhangup",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "nfsservctl",
            "uselib",
            "personality",
            "clone",
            "clone3",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "modify_ldt",
            "vm86",
            "vm86old",
            "_sysctl",
        ];
        for name in dangerous {
            assert!(!ALLOWED.contains(&name), "{name} must not be allowed unconditionally");
        }
        let mut sorted = ALLOWED.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALLOWED.len(), "ALLOWED has duplicates");
    }

    #[test]
    fn default_profile_shape() {
        let profile = default_profile();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(1));
        let syscalls = profile.syscalls().as_ref().unwrap();
        let clone3 = syscalls.iter().find(|s| s.names() == &["clone3"]).unwrap();
        assert_eq!((clone3.action(), clone3.errno_ret()), (LinuxSeccompAction::ScmpActErrno, Some(38)));
        let clone = syscalls.iter().find(|s| s.names() == &["clone"]).unwrap();
        let mask = clone.args().as_ref().unwrap()[0];
        assert_eq!(
            (mask.op(), mask.value(), mask.value_two()),
            (LinuxSeccompOperator::ScmpCmpMaskedEq, 0x7e02_0000, Some(0))
        );
        let personalities: Vec<u64> = syscalls
            .iter()
            .filter(|s| s.names() == &["personality"])
            .map(|s| s.args().as_ref().unwrap()[0].value())
            .collect();
        assert_eq!(personalities, SAFE_PERSONALITIES);
        // The profile survives a trip through config.json.
        let json = serde_json::to_string(&profile).unwrap();
        assert_eq!(serde_json::from_str::<LinuxSeccomp>(&json).unwrap(), profile);
    }
}
