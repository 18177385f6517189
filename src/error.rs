//! Errors of the podlab library.
//!
//! Every error says what failed, on what (a path, a name, a field) and, where a
//! learner can act on it, what to do next. The binary wraps these with `anyhow`
//! context; the library keeps them typed so callers can match on them.

use std::io;
use std::path::{Path, PathBuf};

/// The error type of the podlab library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system or kernel-file operation failed on a path.
    #[error("cannot {action} {}: {}{}", path.display(), source, hint(source))]
    Io {
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{action}: {}{}", source.desc(), errno_hint(*source))]
    Sys {
        action: String,
        #[source]
        source: nix::Error,
    },
    /// A netlink request (links, addresses, routes) failed.
    #[error("{action}: {message}")]
    Netlink { action: String, message: String },
    /// Input from the user was not valid.
    #[error("{0}")]
    Invalid(String),
    /// Something the operation needs is missing (a file, a command, a kernel feature).
    #[error("{0}")]
    Missing(String),
    /// A registry request failed (after retries, or with an answer we cannot use).
    #[error("{action}: {message}")]
    Registry { action: String, message: String },
    /// A child process (container init, helper) reported a failure.
    #[error("{step}: {message}")]
    Child { step: String, message: String },
}

/// Result with the podlab [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path` while doing `action` ("create directory", "write").
    pub fn io(action: impl Into<String>, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { action: action.into(), path: path.as_ref().to_path_buf(), source }
    }

    /// A failed system call described by `action` ("unshare(CLONE_NEWPID)").
    pub fn sys(action: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys { action: action.into(), source }
    }

    /// Invalid user input.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    /// The raw OS error number, when there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Sys { source, .. } => Some(*source as i32),
            _ => None,
        }
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(code) => errno_hint(nix::Error::from_raw(code)),
        None => "",
    }
}

fn errno_hint(e: nix::Error) -> &'static str {
    use nix::errno::Errno;
    match e {
        Errno::EPERM | Errno::EACCES | Errno::EROFS => " (are you root? see `podlab doctor`)",
        _ => "",
    }
}

/// Adds `.ctx(action, path)` to `io::Result` so call sites stay one line long.
pub trait IoContext<T> {
    fn ctx(self, action: &str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}

/// Adds `.sys(action)` to `nix::Result`.
pub trait SysContext<T> {
    fn sys(self, action: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, action: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(action(), e))
    }
}
