//! Running a test case in a forked child: the child may unshare namespaces, drop
//! capabilities or change ids (single-threaded after fork, and nothing of it comes back to
//! the test process); it reports through its exit status and a pipe.
#![allow(dead_code)]

use std::fs;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;

/// Run `f` in a forked child; panic here with its message if it failed.
pub fn in_child(f: impl FnOnce() -> Result<(), String>) {
    let (read, write) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only runs `f` and exits with _exit; it never returns into the harness.
    match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            drop(read);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let (code, msg) = match outcome {
                Ok(Ok(())) => (0, String::new()),
                Ok(Err(m)) => (1, m),
                Err(_) => (2, "panicked".to_string()),
            };
            let _ = nix::unistd::write(&write, msg.as_bytes());
            // SAFETY: leave without running the harness's destructors or atexit handlers.
            unsafe { libc::_exit(code) };
        }
        ForkResult::Parent { child } => {
            drop(write);
            let status = waitpid(child, None).unwrap();
            let mut msg = String::new();
            let _ = std::io::Read::read_to_string(&mut fs::File::from(read), &mut msg);
            assert_eq!(status, WaitStatus::Exited(child, 0), "child failed: {msg}");
        }
    }
}

pub fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

pub fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_string()) }
}
