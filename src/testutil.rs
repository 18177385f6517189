//! Helpers shared by the unit tests (compiled only for `cargo test`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory path under the system's temp dir (not created), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `podlab-KIND-PID-N-NAME`: unique per process and call.
    pub fn new(kind: &str, name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("podlab-{kind}-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
