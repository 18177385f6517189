//! `--explain`: the shell command a person would type for each kernel-visible action.
//!
//! Every primitive calls [`say`] with the equivalent command (`mount -t proc proc /proc`,
//! `echo 50000 > .../cpu.cfs_quota_us`) just before it acts. With `--explain` the line is
//! printed on stderr as `$ command`; tests can also record the lines and compare them with
//! what really happened, so the explanation cannot drift away from the code.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);
static RECORDING: AtomicBool = AtomicBool::new(false);
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOGGING: AtomicBool = AtomicBool::new(false);
static LOG: Mutex<Option<File>> = Mutex::new(None);

/// Turn printing of explanations on or off for this process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether explanations are printed.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Record the explanation of one action: print it when enabled, keep it when recording.
pub fn say(command: impl AsRef<str>) {
    let command = command.as_ref();
    if enabled() {
        eprintln!("$ {command}");
    }
    if RECORDING.load(Ordering::Relaxed) {
        if let Ok(mut lines) = RECORDED.lock() {
            lines.push(command.to_string());
        }
    }
    if LOGGING.load(Ordering::Relaxed)
        && let Ok(mut log) = LOG.lock()
        && let Some(file) = log.as_mut()
    {
        // One write per line, so readers never see half a line from this process.
        let _ = file.write_all(format!("$ {command}\n").as_bytes());
    }
}

/// Also append every explanation, as `$ command` lines, to `file` (opened for appending).
/// A pod's supervisor keeps its pod's `explain.log` this way, whether or not anyone watches:
/// `podlab --explain run` and `delete` print it as it grows.
pub fn log_to(file: File) {
    if let Ok(mut log) = LOG.lock() {
        *log = Some(file);
        LOGGING.store(true, Ordering::Relaxed);
    }
}

/// Start keeping every explained command (for tests).
pub fn start_recording() {
    if let Ok(mut lines) = RECORDED.lock() {
        lines.clear();
    }
    RECORDING.store(true, Ordering::Relaxed);
}

/// Stop recording and return what was said since [`start_recording`].
pub fn take_recorded() -> Vec<String> {
    RECORDING.store(false, Ordering::Relaxed);
    RECORDED.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
}

/// Quote a word for a shell command line, only when needed.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

/// Quote and join a command line.
pub fn join(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}
