//! Seccomp filters from OCI specs, loaded for real (run as root).
//!
//! A loaded filter can never be removed, so every test that loads one forks first: the child
//! loads the filter, checks what the kernel answers and leaves with `_exit`; the parent (the
//! test harness) only waits. Filters are compiled before the fork, and the child sticks to
//! plain syscalls.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use podlab::error::Error;
use podlab::primitives::seccomp::{self, Filter};

type Check = Result<(), &'static str>;

/// Run `check` in a forked child and return how the child ended. The child writes the failure
/// message (if any) to stderr and exits 1; a panic in the child exits 2.
fn in_child(check: impl FnOnce() -> Check) -> WaitStatus {
    // SAFETY: the child only makes plain syscalls and leaves with _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)) {
                Ok(Ok(())) => 0,
                Ok(Err(msg)) => {
                    let line = [b"seccomp test child: ", msg.as_bytes(), b"\n"];
                    for part in line {
                        // SAFETY: writing a valid buffer to stderr.
                        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
                    }
                    1
                }
                Err(_) => 2,
            };
            // SAFETY: leave the child without running the harness's exit code.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

/// Load `filter` in a child, run `check` there and assert the child passed.
fn assert_in_child(filter: &Filter, check: impl FnOnce() -> Check) {
    let status = in_child(|| {
        filter.load().map_err(|_| "loading the filter failed")?;
        check()
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0), "the child failed (see its stderr)");
}

fn status_pid(status: &WaitStatus) -> nix::unistd::Pid {
    status.pid().expect("a child that ended has a pid")
}

/// The errno of the last failed call.
fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Expect a libc-style result `ret` (-1 on failure) to have failed with `want`.
fn fails_with(ret: i64, want: i32, what: &'static str) -> Check {
    if ret == -1 && errno() == want { Ok(()) } else { Err(what) }
}

/// Whether /proc/self/status holds `needle`, read into a stack buffer (no allocation).
fn status_has(needle: &[u8]) -> Check {
    let mut buf = [0u8; 16384];
    // SAFETY: a NUL-terminated path and a buffer we own.
    let fd = unsafe { libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err("cannot open /proc/self/status");
    }
    let mut len = 0;
    loop {
        // SAFETY: reading into the unused rest of `buf`.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
    if buf[..len].windows(needle.len()).any(|w| w == needle) { Ok(()) } else { Err("/proc/self/status lacks a line") }
}

/// A path under the temp dir that does not exist yet.
fn fresh_path(tag: &str) -> (PathBuf, CString) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let path = std::env::temp_dir().join(format!("podlab-seccomp-{tag}-{}-{nanos}", std::process::id()));
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
    (path, c)
}

fn rule(names: &[&str], action: LinuxSeccompAction, errno_ret: Option<u32>) -> LinuxSyscall {
    let builder = LinuxSyscallBuilder::default().names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
    let builder = builder.action(action);
    match errno_ret {
        Some(e) => builder.errno_ret(e).build().expect("syscall rule"),
        None => builder.build().expect("syscall rule"),
    }
}

fn with_args(mut syscall: LinuxSyscall, args: &[(usize, LinuxSeccompOperator, u64, u64)]) -> LinuxSyscall {
    let args = args
        .iter()
        .map(|&(index, op, value, value_two)| {
            LinuxSeccompArgBuilder::default()
                .index(index)
                .op(op)
                .value(value)
                .value_two(value_two)
                .build()
                .expect("arg")
        })
        .collect();
    syscall.set_args(Some(args));
    syscall
}

fn spec(default: LinuxSeccompAction, syscalls: Vec<LinuxSyscall>) -> LinuxSeccomp {
    LinuxSeccompBuilder::default().default_action(default).syscalls(syscalls).build().expect("seccomp spec")
}

const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;
const ERRNO: LinuxSeccompAction = LinuxSeccompAction::ScmpActErrno;

fn mkdir_blocked(errno_ret: u32) {
    let spec = spec(ALLOW, vec![rule(&["mkdirat", "mkdir"], ERRNO, Some(errno_ret))]);
    let filter = seccomp::compile(&spec).expect("compile");
    assert_eq!(filter.rules(), 2);
    assert!(filter.skipped().is_empty(), "{:?}", filter.skipped());
    let (path, cpath) = fresh_path("mkdir");
    assert_in_child(&filter, || {
        // SAFETY: a NUL-terminated path.
        fails_with(unsafe { libc::mkdir(cpath.as_ptr(), 0o700) } as i64, errno_ret as i32, "mkdir was not refused")?;
        // SAFETY: getpid cannot fail.
        if unsafe { libc::getpid() } <= 0 {
            return Err("getpid failed");
        }
        status_has(b"Seccomp:\t2\n")
    });
    assert!(!path.exists(), "the child created {}", path.display());
}

#[test]
fn errno_rule_refuses_mkdir_and_allows_the_rest() {
    mkdir_blocked(libc::EPERM as u32);
}

#[test]
fn errno_ret_other_than_eperm_is_returned() {
    mkdir_blocked(libc::EOPNOTSUPP as u32);
}

#[test]
fn argument_rule_on_kill_signal() {
    // kill(pid, 0) only asks whether pid exists: refuse it with EACCES, let real signals through.
    let kill = with_args(rule(&["kill"], ERRNO, Some(13)), &[(1, LinuxSeccompOperator::ScmpCmpEq, 0, 0)]);
    let filter = seccomp::compile(&spec(ALLOW, vec![kill])).expect("compile");
    assert_in_child(&filter, || {
        // SAFETY: signal 0 sends nothing.
        let me = unsafe { libc::getpid() };
        fails_with(unsafe { libc::kill(me, 0) } as i64, libc::EACCES, "kill(self, 0) was not refused")?;
        // SAFETY: SIGCONT to ourselves only resumes a process that is running anyway.
        if unsafe { libc::kill(me, libc::SIGCONT) } != 0 {
            return Err("kill(self, SIGCONT) was refused");
        }
        Ok(())
    });
}

#[test]
fn several_arguments_in_one_rule_must_all_match() {
    // Refuse kill(parent, 0) only: both arguments have to match.
    let parent = std::process::id() as u64;
    let kill = with_args(
        rule(&["kill"], ERRNO, Some(13)),
        &[(0, LinuxSeccompOperator::ScmpCmpEq, parent, 0), (1, LinuxSeccompOperator::ScmpCmpEq, 0, 0)],
    );
    let filter = seccomp::compile(&spec(ALLOW, vec![kill])).expect("compile");
    assert_eq!(filter.rules(), 1);
    assert_in_child(&filter, || {
        // SAFETY: signal 0 sends nothing.
        let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
        fails_with(unsafe { libc::kill(parent, 0) } as i64, libc::EACCES, "kill(parent, 0) was not refused")?;
        // SAFETY: as above.
        if unsafe { libc::kill(me, 0) } != 0 {
            return Err("kill(self, 0) was refused though only the signal matched");
        }
        Ok(())
    });
}

#[test]
fn every_comparison_operator() {
    use LinuxSeccompOperator::*;
    // (operator, a pid it matches, a pid it does not), compared with 1000; kill(pid, 0) sends nothing.
    let cases = [
        (ScmpCmpNe, 1001, 1000),
        (ScmpCmpLt, 999, 1000),
        (ScmpCmpLe, 1000, 1001),
        (ScmpCmpEq, 1000, 999),
        (ScmpCmpGe, 1000, 999),
        (ScmpCmpGt, 1001, 1000),
    ];
    for (op, hit, miss) in cases {
        let kill = with_args(rule(&["kill"], ERRNO, Some(13)), &[(0, op, 1000, 0)]);
        let filter = seccomp::compile(&spec(ALLOW, vec![kill])).expect("compile");
        let status = in_child(|| {
            filter.load().map_err(|_| "load failed")?;
            // SAFETY: signal 0 sends nothing.
            fails_with(unsafe { libc::kill(hit, 0) } as i64, libc::EACCES, "the matching pid was not refused")?;
            // SAFETY: as above; the pid may not exist (ESRCH), but must not be refused.
            let ret = unsafe { libc::kill(miss, 0) };
            if ret == -1 && errno() == libc::EACCES { Err("the other pid was refused") } else { Ok(()) }
        });
        assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0), "operator {op}");
    }
}

#[test]
fn masked_equal_on_umask() {
    // Refuse umask when the group bits are all set: (mask & 0o070) == 0o070.
    let umask =
        with_args(rule(&["umask"], ERRNO, Some(42)), &[(0, LinuxSeccompOperator::ScmpCmpMaskedEq, 0o070, 0o070)]);
    let filter = seccomp::compile(&spec(ALLOW, vec![umask])).expect("compile");
    assert_in_child(&filter, || {
        // SAFETY: umask only changes this child's file creation mask.
        fails_with(unsafe { libc::syscall(libc::SYS_umask, 0o077) }, 42, "umask(077) was not refused")?;
        // SAFETY: as above.
        if unsafe { libc::syscall(libc::SYS_umask, 0o022) } < 0 {
            return Err("umask(022) was refused");
        }
        Ok(())
    });
}

#[test]
fn kill_process_action_ends_the_child_with_sigsys() {
    let filter = seccomp::compile(&spec(ALLOW, vec![rule(&["getppid"], LinuxSeccompAction::ScmpActKillProcess, None)]))
        .expect("compile");
    let status = in_child(|| {
        // No core file for the expected SIGSYS.
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        filter.load().map_err(|_| "load failed")?;
        // SAFETY: getppid has no arguments.
        unsafe { libc::getppid() };
        Err("getppid returned instead of killing the process")
    });
    assert!(matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)), "{status:?}");
}

#[test]
fn default_profile_blocks_namespaces_and_mounts_but_not_ordinary_work() {
    let profile = seccomp::default_profile();
    let filter = seccomp::compile(&profile).expect("compile the default profile");
    assert!(filter.rules() > 250, "only {} rules", filter.rules());
    eprintln!("default profile: {} rules; skipped by this libseccomp: {:?}", filter.rules(), filter.skipped());
    assert_in_child(&filter, || {
        // SAFETY: each call below either fails (what we check) or, for fork, is handled.
        unsafe {
            fails_with(libc::unshare(libc::CLONE_NEWUTS) as i64, libc::EPERM, "unshare(CLONE_NEWUTS) allowed")?;
            let ret = libc::mount(
                c"none".as_ptr(),
                c"/nonexistent-podlab-seccomp".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            );
            fails_with(ret as i64, libc::EPERM, "mount allowed")?;
            // bpf with a bogus command: EINVAL if it got through, EPERM from the filter.
            fails_with(libc::syscall(libc::SYS_bpf, 9999, 0, 0), libc::EPERM, "bpf allowed")?;
            // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) would just read an id.
            fails_with(libc::syscall(libc::SYS_keyctl, 0, -3, 0), libc::EPERM, "keyctl allowed")?;
            // clone3 answers ENOSYS, so that glibc falls back to clone.
            fails_with(libc::syscall(libc::SYS_clone3, 0, 0), libc::ENOSYS, "clone3 did not answer ENOSYS")?;
            // personality: querying (0xffffffff) works, turning off address randomization does not.
            if libc::personality(0xffff_ffff) == -1 {
                return Err("personality(0xffffffff) refused");
            }
            fails_with(libc::personality(0x0040000) as i64, libc::EPERM, "personality(ADDR_NO_RANDOMIZE) allowed")?;
            // clone with a namespace flag is refused; if it ever got through, the new child leaves at once.
            let ret = libc::syscall(libc::SYS_clone, (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0);
            if ret == 0 {
                libc::_exit(0);
            }
            fails_with(ret, libc::EPERM, "clone(CLONE_NEWUTS) allowed")?;
            // A plain fork (clone without namespace flags) works.
            match libc::fork() {
                0 => libc::_exit(7),
                -1 => return Err("fork refused"),
                pid => {
                    let mut status = 0;
                    if libc::waitpid(pid, &mut status, 0) != pid
                        || !libc::WIFEXITED(status)
                        || libc::WEXITSTATUS(status) != 7
                    {
                        return Err("the forked grandchild did not exit 7");
                    }
                }
            }
            if libc::getpid() <= 0 {
                return Err("getpid failed");
            }
        }
        // Opening and reading a file works.
        status_has(b"Seccomp:\t2\n")
    });
}

#[test]
fn loads_without_no_new_privs_as_root() {
    if status_has(b"NoNewPrivs:\t1\n").is_ok() {
        eprintln!("skipped: this test process already has no_new_privs set");
        return;
    }
    let spec = LinuxSeccompBuilder::default()
        .default_action(ALLOW)
        .flags(vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog])
        .syscalls(vec![rule(&["mkdirat", "mkdir"], ERRNO, None)])
        .build()
        .expect("spec");
    let filter = seccomp::compile(&spec).expect("compile");
    let status = in_child(|| {
        status_has(b"NoNewPrivs:\t0\n").map_err(|_| "no_new_privs was already set")?;
        filter.load().map_err(|_| "load failed without no_new_privs (CAP_SYS_ADMIN should be enough)")?;
        status_has(b"Seccomp:\t2\n")?;
        // libseccomp must not have set no_new_privs on its own.
        status_has(b"NoNewPrivs:\t0\n").map_err(|_| "loading set no_new_privs")
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0), "the child failed (see its stderr)");
}

#[test]
fn load_without_no_new_privs_or_cap_sys_admin_fails_with_eacces() {
    let filter = seccomp::compile(&spec(ALLOW, vec![rule(&["mkdir"], ERRNO, None)])).expect("compile");
    let status = in_child(|| {
        // Become nobody: leaving uid 0 clears every capability, CAP_SYS_ADMIN included.
        // SAFETY: changes only this child's credentials.
        if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
            return Err("cannot become nobody");
        }
        match filter.load() {
            Ok(()) => Err("the kernel loaded a filter for an unprivileged process without no_new_privs"),
            Err(e) if e.errno() == Some(libc::EACCES) => Ok(()),
            Err(_) => Err("load failed, but not with EACCES"),
        }
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0), "the child failed (see its stderr)");
}

#[test]
fn load_explains_itself() {
    let filter = seccomp::compile(&seccomp::default_profile()).expect("compile");
    let rules = filter.rules();
    let status = in_child(|| {
        podlab::explain::start_recording();
        filter.load().map_err(|_| "load failed")?;
        let said = podlab::explain::take_recorded();
        let want = format!("seccomp: load a BPF filter ({rules} syscall rules, default action ERRNO(EPERM))");
        if said == [want] { Ok(()) } else { Err("load did not say the expected line") }
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(&status), 0), "the child failed (see its stderr)");
}

fn invalid_message(result: Result<Filter, Error>) -> String {
    match result {
        Err(Error::Invalid(msg)) => msg,
        Err(other) => panic!("expected Error::Invalid, got {other:?}"),
        Ok(_) => panic!("expected Error::Invalid, got a filter"),
    }
}

#[test]
fn unknown_architecture_is_invalid_and_named() {
    // The OCI type only holds known names; libseccomp releases before 2.6 do not know m68k.
    let mut bad = spec(ERRNO, vec![rule(&["read"], ALLOW, None)]);
    bad.set_architectures(Some(vec![Arch::ScmpArchX86_64, Arch::ScmpArchM68k]));
    match seccomp::compile(&bad) {
        Ok(filter) => eprintln!("this libseccomp knows m68k ({} rules)", filter.rules()),
        Err(e) => {
            let msg = invalid_message(Err(e));
            assert!(msg.contains("SCMP_ARCH_M68K") && msg.contains("architectures[1]"), "{msg}");
        }
    }
}

#[test]
fn notify_is_not_supported() {
    let msg = invalid_message(seccomp::compile(&spec(LinuxSeccompAction::ScmpActNotify, vec![])));
    assert!(msg.contains("defaultAction") && msg.contains("SCMP_ACT_NOTIFY"), "{msg}");
    let rules = vec![rule(&["read"], ALLOW, None), rule(&["ioctl"], LinuxSeccompAction::ScmpActNotify, None)];
    let msg = invalid_message(seccomp::compile(&spec(ERRNO, rules)));
    assert!(msg.contains("syscalls[1]") && msg.contains("not supported"), "{msg}");
}

#[test]
fn unknown_syscall_names_are_skipped_and_listed() {
    let rules = vec![
        rule(&["read", "podlab_no_such_syscall", "write"], ALLOW, None),
        rule(&["podlab_no_such_syscall"], ALLOW, None),
    ];
    let filter = seccomp::compile(&spec(ERRNO, rules)).expect("unknown names are skipped");
    assert_eq!(filter.skipped(), ["podlab_no_such_syscall"]);
    assert_eq!(filter.rules(), 2);
}

#[test]
fn other_bad_specs_are_invalid() {
    let index6 = with_args(rule(&["kill"], ERRNO, None), &[(6, LinuxSeccompOperator::ScmpCmpEq, 0, 0)]);
    let msg = invalid_message(seccomp::compile(&spec(ALLOW, vec![index6])));
    assert!(msg.contains("syscalls[0]") && msg.contains("index 6"), "{msg}");

    let msg = invalid_message(seccomp::compile(&spec(ALLOW, vec![rule(&["kill"], ERRNO, Some(70000))])));
    assert!(msg.contains("70000"), "{msg}");

    let mut waitkill = spec(ALLOW, vec![]);
    waitkill.set_flags(Some(vec![LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv]));
    let msg = invalid_message(seccomp::compile(&waitkill));
    assert!(msg.contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"), "{msg}");
}

#[test]
fn rules_with_the_default_action_are_dropped() {
    let filter = seccomp::compile(&spec(ALLOW, vec![rule(&["read", "write"], ALLOW, None)])).expect("compile");
    assert_eq!(filter.rules(), 0);
    // The same action with another errno is a different action.
    let mut eperm = spec(ERRNO, vec![rule(&["read"], ERRNO, None), rule(&["write"], ERRNO, Some(5))]);
    eperm.set_default_errno_ret(Some(1));
    assert_eq!(seccomp::compile(&eperm).expect("compile").rules(), 1);
}

#[test]
fn spec_allow_flag_and_json_specs() {
    // A profile as it appears in config.json.
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
             "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}]},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
            {"names": ["swapon"], "action": "SCMP_ACT_TRAP"},
            {"names": ["sync"], "action": "SCMP_ACT_LOG"}
        ]
    }"#;
    let spec: LinuxSeccomp = serde_json::from_str(json).expect("parse");
    let filter = seccomp::compile(&spec).expect("compile");
    assert_eq!(filter.rules(), 9);
}
