//! OCI hooks: programs the runtime runs at fixed points of a container's life.
//!
//! A hook is a path, argv, environment and timeout in `config.json` (`hooks.createRuntime`,
//! ...). It gets the container's state JSON on stdin and must exit 0. The points:
//! - `prestart` (deprecated) and `createRuntime`: during `create`, once the namespaces and
//!   mounts exist but before `pivot_root`, run by the runtime in the host's namespaces —
//!   where network plugins configure the container's network namespace;
//! - `createContainer`: right after, in the container's namespaces (still before pivot_root);
//! - `startContainer`: during `start`, inside the container, just before its program;
//! - `poststart`: after the program started, on the host; a failure is only a warning;
//! - `poststop`: when the container is deleted, on the host; a failure is only a warning.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

use crate::error::{Error, Result};

/// Which hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

/// The hooks of `spec` at `point` (for `CreateRuntime`: the deprecated prestart ones first).
pub fn of(spec: &Spec, point: Point) -> Vec<Hook> {
    let Some(h) = spec.hooks().as_ref() else { return Vec::new() };
    let list = |v: &Option<Vec<Hook>>| v.clone().unwrap_or_default();
    match point {
        Point::CreateRuntime => {
            #[allow(deprecated)]
            let mut all = list(h.prestart());
            all.extend(list(h.create_runtime()));
            all
        }
        Point::CreateContainer => list(h.create_container()),
        Point::StartContainer => list(h.start_container()),
        Point::Poststart => list(h.poststart()),
        Point::Poststop => list(h.poststop()),
    }
}

/// Run every hook of `point` in order with `state` (JSON) on stdin; stop at the first failure.
pub fn run(spec: &Spec, point: Point, state: &str) -> Result<()> {
    for (i, hook) in of(spec, point).iter().enumerate() {
        run_one(hook, state).map_err(|e| Error::Child {
            step: format!("{point:?} hook {i} ({})", hook.path().display()),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Like [`run`], but only warn about failures (poststart, poststop).
pub fn run_warn(spec: &Spec, point: Point, state: &str) {
    if let Err(e) = run(spec, point, state) {
        eprintln!("podlab-runtime: warning: {e}");
    }
}

fn run_one(hook: &Hook, state: &str) -> Result<()> {
    let args = hook.args().clone().unwrap_or_default();
    crate::explain::say(format!("{}   # hook, with the state on stdin", crate::explain::join(&args)));
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
    }
    cmd.args(args.iter().skip(1)).env_clear().stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().map_err(|e| Error::io("run the hook", hook.path(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook.timeout().filter(|t| *t > 0).map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait().map_err(|e| Error::io("wait for the hook", hook.path(), e))? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(Error::invalid(format!("{status}: {}", err.trim())));
            }
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::invalid(format!("timed out after {} s", hook.timeout().unwrap_or(0))));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
