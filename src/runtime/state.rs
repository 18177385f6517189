//! Container state on disk, and the OCI state machine.
//!
//! A runtime is not a daemon: `create`, `start`, `kill` and `delete` are separate processes, so
//! everything they share lives in a directory per container under the runtime's root
//! (`/run/podlab/runtime/ID`, like `/run/runc/ID`). The OCI runtime spec defines the states a
//! container moves through — creating → created → running → stopped — and `state ID` prints
//! them as JSON. Only some of it is stored: "running" or "stopped" is read from the kernel
//! (is the init pid still alive, with the same start time?), "created" means the init is still
//! waiting on its start socket, and "paused" is the cgroup freezer's state.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::primitives::cgroup::Cgroup;
use crate::primitives::proc;

/// The file inside a container's directory holding [`Container`].
pub const STATE_FILE: &str = "state.json";

/// The unix socket the waiting init listens on until `start` connects.
pub const START_SOCKET: &str = "start.sock";

/// The OCI version podlab reports in `state`.
pub const OCI_VERSION: &str = "1.0.2";

/// The states of the OCI runtime spec (plus runc's "paused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What `create` writes down about a container for the later commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    /// The container's init, as seen from the host.
    pub pid: i32,
    /// Its start time (field 22 of /proc/PID/stat), to tell it from a later reuse of the pid.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// The cgroup below the cgroup root (for example `podlab/runtime/ID`).
    pub cgroup: PathBuf,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The user that created it (uid).
    pub owner: u32,
}

/// The OCI state document that `state ID` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty", default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    pub owner: String,
}

/// Refuse ids that are not a plain file name (runc's rule: letters, digits, `_+-.`).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container id {id:?}: use letters, digits and _+-. only")))
    }
}

/// The directory of container `id` under `root`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl Container {
    /// Read the state of `id`; a clear error when there is no such container.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let file = dir(root, id).join(STATE_FILE);
        let text = match fs::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Missing(format!(
                    "container {id:?} does not exist (runtime root {})",
                    root.display()
                )));
            }
            Err(e) => return Err(Error::io("read", &file, e)),
        };
        serde_json::from_slice(&text).map_err(|e| Error::invalid(format!("{}: {e}", file.display())))
    }

    /// Write the state atomically (a temporary file renamed over the old one).
    pub fn save(&self, root: &Path) -> Result<()> {
        let file = dir(root, &self.id).join(STATE_FILE);
        let tmp = file.with_extension("json.tmp");
        let text = serde_json::to_vec(self).map_err(|e| Error::invalid(e.to_string()))?;
        fs::write(&tmp, text).ctx("write", &tmp)?;
        fs::rename(&tmp, &file).ctx("rename into place", &file)
    }

    /// Whether the init process is still the one `create` started.
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && proc::alive(self.pid) && proc::start_time(self.pid) == Some(self.pid_start)
    }

    /// The container's cgroup handle.
    pub fn cgroup(&self) -> Result<Cgroup> {
        Cgroup::new(&self.cgroup)
    }

    /// The current status, read from the kernel.
    pub fn status(&self, root: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if dir(root, &self.id).join(START_SOCKET).exists() {
            return Status::Created;
        }
        if self.cgroup().map(|c| c.frozen()).unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state document.
    pub fn oci_state(&self, root: &Path) -> OciState {
        let status = self.status(root);
        OciState {
            oci_version: OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: self.annotations.clone(),
            owner: user_name(self.owner),
        }
    }
}

/// Every container under `root`, sorted by id (directories without a readable state are skipped).
pub fn list(root: &Path) -> Result<Vec<Container>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", root, e)),
    };
    let mut found: Vec<Container> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|id| Container::load(root, &id).ok())
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// The name of a uid from /etc/passwd, or the number.
fn user_name(uid: u32) -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// Now as RFC 3339 in UTC with nanoseconds (what runc writes in `created`).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Seconds since the epoch as `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ` (proleptic Gregorian calendar).
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days: shift the era to start on 1 March 0000.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_435_200, 0), "2026-11-23T12:00:00.000000000Z");
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
