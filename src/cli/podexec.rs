//! `podlab exec -i/-t`: an interactive command in a pod's container, run from this terminal.
//!
//! With a terminal (`-t`) the runtime makes a pseudo-terminal inside the container and hands
//! its master side over a Unix socket (runc's `--console-socket`); we put our own terminal in
//! raw mode and copy bytes both ways, as `kubectl exec -it` ends up doing through the kubelet.

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use podlab::node::NodePaths;
use podlab::runtime::container::{ExecOptions, Runtime};
use podlab::state::StateDirs;

/// Run `command` in `container` of `pod` with our stdin (and a terminal with `tty`).
pub fn interactive(dirs: &StateDirs, pod: &Pod, container: &str, command: &[String], tty: bool) -> anyhow::Result<i32> {
    let status = pod.status.clone().unwrap_or_default();
    let id = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == container && c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .and_then(|c| c.container_id.clone())
        .and_then(|id| id.strip_prefix("podlab://").map(String::from))
        .with_context(|| format!("container {container} is not running"))?;
    let rt = Runtime {
        root: NodePaths::new(dirs).runtime_root(),
        systemd_cgroup: false,
        explain: podlab::explain::enabled(),
    };
    let c = podlab::runtime::state::Container::load(&rt.root, &id)?;
    let spec = podlab::runtime::spec::load(&c.bundle)?;
    let mut process = spec.process().clone().context("container has no process")?;
    process.set_args(Some(command.to_vec()));
    process.set_terminal(Some(tty));
    if !tty {
        return Ok(rt.exec(&id, process, &ExecOptions::default())?);
    }
    let dir = std::env::temp_dir().join(format!("podlab-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("console.sock");
    let listener = UnixListener::bind(&sock)?;
    let receiver = std::thread::spawn(move || receive_master(&listener));
    let opts = ExecOptions { console_socket: Some(sock.clone()), ..Default::default() };
    let result = std::thread::scope(|scope| {
        let runner = scope.spawn(|| rt.exec(&id, process, &opts));
        let master = match receiver.join() {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(e),
            Err(_) => bail!("console receiver failed"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        let code = with_raw_terminal(|| proxy(&master, || runner.is_finished()));
        let code2 = runner.join().map_err(|_| anyhow::anyhow!("exec thread failed"))??;
        code?;
        Ok(code2)
    });
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("podlab-exec-{}", std::process::id())));
    result
}

/// Accept the runtime's connection and take the terminal master it sends.
fn receive_master(listener: &UnixListener) -> anyhow::Result<OwnedFd> {
    let (conn, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )?;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c
            && let Some(fd) = fds.first()
        {
            // SAFETY: the kernel just gave us this fd; we own it now.
            return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
        }
    }
    bail!("the runtime sent no terminal")
}

/// Our terminal in raw mode while `f` runs (when stdin is a terminal).
fn with_raw_terminal<T>(f: impl FnOnce() -> T) -> T {
    use nix::sys::termios;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(s) = &saved {
        let mut raw = s.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw);
    }
    let r = f();
    if let Some(s) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, s);
    }
    r
}

/// Copy stdin → master and master → stdout until the program ends.
fn proxy(master: &OwnedFd, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let mut m_read = std::fs::File::from(master.try_clone()?);
    let mut m_write = std::fs::File::from(master.try_clone()?);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || m_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut stdout = std::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [nix::poll::PollFd::new(m_read.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ready = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16)).unwrap_or(0);
        if ready > 0 {
            match m_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
            }
        } else if done() {
            break;
        }
    }
    Ok(())
}
