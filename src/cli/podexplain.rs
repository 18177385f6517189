//! `--explain` for pods: the commands that made (and unmade) a pod, as they happen.
//!
//! The pod's supervisor, not the CLI, makes the pod's namespaces, veth, cgroups and mounts, so
//! it appends each command it explains to the pod's `explain.log`. `podlab --explain run` and
//! `podlab --explain delete` print the lines that appear there while they wait.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use podlab::node::NodePaths;
use podlab::pod::node_info::EXPLAIN_LOG;
use podlab::state::StateDirs;

/// Follows one pod's `explain.log`.
pub struct ExplainTail {
    path: PathBuf,
    file: Option<File>,
    /// The end of the file is skipped when it is first opened (what happened before).
    from_end: bool,
    /// A line not finished yet.
    partial: Vec<u8>,
}

impl ExplainTail {
    /// The log of the pod `uid`; `from_end` skips what is there already.
    pub fn new(dirs: &StateDirs, uid: &str, from_end: bool) -> ExplainTail {
        let path = NodePaths::new(dirs).pods_dir().join(uid).join(EXPLAIN_LOG);
        let mut tail = ExplainTail { path, file: None, from_end, partial: Vec::new() };
        tail.open();
        tail
    }

    fn open(&mut self) {
        if self.file.is_some() {
            return;
        }
        if let Ok(mut f) = File::open(&self.path) {
            if self.from_end {
                let _ = f.seek(SeekFrom::End(0));
            }
            self.file = Some(f);
        }
    }

    /// Print the complete lines written since the last call, on stderr.
    pub fn poll(&mut self) {
        self.open();
        let Some(f) = self.file.as_mut() else { return };
        let mut new = Vec::new();
        if f.read_to_end(&mut new).is_err() {
            return;
        }
        self.partial.extend_from_slice(&new);
        if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
            let lines: Vec<u8> = self.partial.drain(..=end).collect();
            eprint!("{}", String::from_utf8_lossy(&lines));
        }
    }
}
