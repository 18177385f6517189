//! The channel between podlab and an init process it re-executes (box or container).
//!
//! The kernel refuses to move a multi-threaded process into a new mount or user namespace,
//! so the process that builds the box is a fresh, single-threaded `podlab __init`. Parent
//! and child talk over a socketpair passed as fd 3, one JSON message per line. The child's
//! end is close-on-exec: when the command's `exec` succeeds the parent simply reads EOF;
//! when a step fails the child sends the step and the error first.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The fd number the child finds its end of the channel on.
pub const CHILD_FD: RawFd = 3;

/// The environment variable that tells `podlab __init` which fd to use.
pub const FD_ENV: &str = "_PODLAB_INIT_FD";

/// Messages from the init back to podlab.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Report {
    /// A step failed; the init exits with `exit_code` after sending this.
    Failed { step: String, message: String, exit_code: i32 },
}

/// One end of the channel.
pub struct Channel {
    reader: BufReader<UnixStream>,
}

impl Channel {
    /// A connected pair: (parent end, child end).
    pub fn pair() -> Result<(Channel, UnixStream)> {
        let (a, b) = UnixStream::pair().map_err(|e| Error::io("create socketpair", "(channel)", e))?;
        Ok((Channel { reader: BufReader::new(a) }, b))
    }

    /// The child's end, from the fd named in the environment. Marks it close-on-exec.
    pub fn from_env() -> Result<Channel> {
        let fd: RawFd = std::env::var(FD_ENV).ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
            Error::Missing(format!("{FD_ENV} is not set: `podlab __init` is started by podlab itself"))
        })?;
        // SAFETY: the parent placed an open socket at this fd for us, and nothing else owns it.
        let stream = unsafe { UnixStream::from_raw_fd(fd) };
        let flags = nix::fcntl::FdFlag::FD_CLOEXEC;
        nix::fcntl::fcntl(&stream, nix::fcntl::FcntlArg::F_SETFD(flags))
            .map_err(|e| Error::sys("mark the init channel close-on-exec", e))?;
        Ok(Channel { reader: BufReader::new(stream) })
    }

    /// [`Channel::from_env`] for a re-executed entry point (`podlab __init` ...): on failure
    /// print why, naming `who`, and exit with `code` (it was not started by podlab).
    pub fn from_env_or_exit(who: &str, code: i32) -> Channel {
        match Channel::from_env() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("podlab {who}: {e}");
                std::process::exit(code);
            }
        }
    }

    /// Send one message.
    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<()> {
        let mut line = serde_json::to_vec(message).map_err(|e| Error::invalid(e.to_string()))?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line).map_err(|e| Error::io("send on", "init channel", e))
    }

    /// Receive one message; `None` at EOF (the other end closed, for example by exec).
    pub fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>> {
        let mut line = String::new();
        loop {
            match self.reader.read_line(&mut line) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read from", "init channel", e)),
            }
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| Error::invalid(format!("bad message on the init channel: {e}")))
    }

    /// The raw fd (to close it in a forked child that must not hold it).
    pub fn raw_fd(&self) -> RawFd {
        self.reader.get_ref().as_raw_fd()
    }
}
