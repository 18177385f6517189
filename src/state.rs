//! Where podlab keeps its state on disk.
//!
//! Like runc (`/run/runc`) podlab keeps runtime state in `/run/podlab` (gone after a
//! reboot, as the processes are) and data that must survive (images, lab workspaces,
//! pod data) in `/var/lib/podlab`. `--root DIR` moves both under DIR (`DIR/run`,
//! `DIR/lib`) so tests and simulated nodes never share state.

use std::path::{Path, PathBuf};

/// The two state directories of one podlab instance.
#[derive(Debug, Clone)]
pub struct StateDirs {
    /// Runtime state: records of created objects, sockets, pid files.
    pub run: PathBuf,
    /// Persistent data: images, lab workspaces.
    pub lib: PathBuf,
}

impl StateDirs {
    /// The system-wide default: `/run/podlab` and `/var/lib/podlab`.
    pub fn system() -> Self {
        StateDirs { run: "/run/podlab".into(), lib: "/var/lib/podlab".into() }
    }

    /// Both directories under `root` (`--root DIR`).
    pub fn under(root: &Path) -> Self {
        StateDirs { run: root.join("run"), lib: root.join("lib") }
    }

    /// `--root` if given, else the system default.
    pub fn from_option(root: Option<&Path>) -> Self {
        root.map(Self::under).unwrap_or_else(Self::system)
    }

    /// Records of created objects (see `primitives::record`).
    pub fn records(&self) -> PathBuf {
        self.run.join("records")
    }

    /// The image content store (`/var/lib/podlab/images`).
    pub fn images(&self) -> PathBuf {
        self.lib.join("images")
    }

    /// Lab workspaces (`/var/lib/podlab/labs/NN-topic`).
    pub fn labs(&self) -> PathBuf {
        self.lib.join("labs")
    }
}
