//! Records: everything podlab creates is written down before it is created.
//!
//! A crash (`kill -9`, a power cut) must not leave mounts, network namespaces, links or
//! cgroups behind for ever. So each owner (a box, a lab) appends one line per object to
//! `RUN/records/OWNER.jsonl` *before* creating it, and removal replays the record backwards.
//! Every removal is idempotent, so replaying a record twice, or for objects that were never
//! made, is harmless. `podlab reset` replays every record it finds.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// One object podlab created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Resource {
    /// A cgroup, relative to the cgroup root (`podlab/box-1a2b`).
    Cgroup { path: PathBuf },
    /// A named network namespace (`/run/netns/NAME`).
    Netns { name: String },
    /// A network link in the host namespace (a bridge, a veth end).
    Link { name: String },
    /// A mount point to unmount (lazily).
    Mount { path: PathBuf },
    /// A directory podlab made and owns entirely.
    Dir { path: PathBuf },
    /// A process, told apart from a later reuse of its pid by its start time.
    Process { pid: i32, start_time: u64 },
}

/// The append-only record of one owner.
#[derive(Debug)]
pub struct Record {
    file: PathBuf,
}

impl Record {
    /// Open (or start) the record of `owner` in `records_dir`.
    pub fn open(records_dir: &Path, owner: &str) -> Result<Record> {
        if owner.is_empty() || owner.contains('/') || owner.starts_with('.') {
            return Err(Error::invalid(format!("invalid record owner {owner:?}")));
        }
        fs::create_dir_all(records_dir).ctx("create directory", records_dir)?;
        Ok(Record { file: records_dir.join(format!("{owner}.jsonl")) })
    }

    /// The record file.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Write down `resource` (call before creating it). The line is flushed to the file
    /// before returning, so a crash right after still finds it.
    pub fn note(&self, resource: Resource) -> Result<()> {
        let mut line = serde_json::to_string(&resource).map_err(|e| Error::invalid(e.to_string()))?;
        line.push('\n');
        let mut f = OpenOptions::new().create(true).append(true).open(&self.file).ctx("open record", &self.file)?;
        f.write_all(line.as_bytes()).ctx("write record", &self.file)
    }

    /// What the record holds, in the order it was written.
    pub fn entries(&self) -> Result<Vec<Resource>> {
        read_entries(&self.file)
    }

    /// Remove everything in the record, newest first, then the record itself. Every step is
    /// tried; the first error is returned after all were tried.
    pub fn undo(self) -> Result<()> {
        undo_file(&self.file)
    }
}

fn read_entries(file: &Path) -> Result<Vec<Resource>> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read record", file, e)),
    };
    // A crash can cut the last line short: skip what does not parse.
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

fn undo_file(file: &Path) -> Result<()> {
    let mut first_error = None;
    for resource in read_entries(file)?.into_iter().rev() {
        if let Err(e) = remove(&resource) {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => match fs::remove_file(file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove record", file, e)),
        },
    }
}

/// Remove one object; removing what is gone already is not an error.
pub fn remove(resource: &Resource) -> Result<()> {
    match resource {
        Resource::Cgroup { path } => super::cgroup::Cgroup::new(path.clone())?.remove(),
        Resource::Netns { name } => super::netns::delete(name),
        Resource::Link { name } => super::link::delete(None, name),
        Resource::Mount { path } => super::mount::unmount_all_under(path),
        Resource::Dir { path } => match fs::remove_dir_all(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove directory", path, e)),
        },
        Resource::Process { pid, start_time } => {
            if super::proc::start_time(*pid) == Some(*start_time) {
                crate::explain::say(format!("kill -9 {pid}"));
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
            }
            Ok(())
        }
    }
}

/// Replay every record in `records_dir` (what `podlab reset` does). Returns the owners
/// that were cleaned and the errors met.
pub fn undo_all(records_dir: &Path) -> (Vec<String>, Vec<Error>) {
    let mut cleaned = Vec::new();
    let mut errors = Vec::new();
    let Ok(dir) = fs::read_dir(records_dir) else { return (cleaned, errors) };
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let owner = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        match undo_file(&path) {
            Ok(()) => cleaned.push(owner),
            Err(e) => errors.push(e),
        }
    }
    (cleaned, errors)
}
