//! Container logs: what a container writes to stdout and stderr, kept in files `kubectl logs` reads.
//!
//! The supervisor holds the read ends of the container's stdout and stderr pipes. Every line read
//! from them becomes one record of the CRI log format, appended to one file per container start
//! (`<pod dir>/<container>/<restart count>.log`): `2024-05-01T10:00:00.123456789Z stdout F hello`,
//! that is a timestamp, the stream, a tag and the text. `F` ends a line; a line longer than 16 KiB
//! is cut into `P` (partial) records and a last `F`; text left without a newline when the pipe
//! closes becomes a final `P` record (containerd writes it so). Reading joins the parts again.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;

use crate::error::{Error, IoContext, Result};

/// The longest text of one record (containerd's default `max_container_log_line_size`).
pub const MAX_RECORD: usize = 16 * 1024;
/// How often `read` looks for new records while following.
pub const FOLLOW_POLL: Duration = Duration::from_millis(150);
/// A line being joined from `P` records is printed once it grows past this size, even unfinished,
/// so an endless line cannot fill the reader's memory.
const MAX_JOINED: usize = 1024 * 1024;
/// How much is read from a pipe or a log file at once.
const CHUNK: usize = 64 * 1024;

/// Which output of the container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The name in log records: `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The log file of one start of a container: `dir/<container>/<restart_count>.log`, the kubelet's
/// layout under a pod's log directory (see [`pod_log_dir`]).
pub fn log_path(dir: &Path, container: &str, restart_count: u32) -> PathBuf {
    dir.join(container).join(format!("{restart_count}.log"))
}

/// A pod's log directory under `root`: `root/<namespace>_<name>_<uid>`, as in `/var/log/pods`.
pub fn pod_log_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{name}_{uid}"))
}

/// Open (creating it and its directory) a log file for [`copy_stream`]: append-only, mode 0640.
pub fn create(path: &Path) -> Result<Arc<Mutex<File>>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx("create log directory", dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).mode(0o640).open(path).ctx("open log file", path)?;
    Ok(Arc::new(Mutex::new(file)))
}

// ---------------------------------------------------------------------------------------------
// Writing: pipe → records.
// ---------------------------------------------------------------------------------------------

/// A record's tag: the end of a line, or a part of a longer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Full,
    Partial,
}

/// Copy `from` (the read end of a container's stdout or stderr pipe) into the log file `to`, one
/// record per line, until the pipe is closed (every writer gone). Each record is one `write` to
/// the file, under the lock, so records of stdout and stderr never mix.
pub fn copy_stream(from: File, stream: Stream, to: Arc<Mutex<File>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut warned = false;
        let mut emit = |tag: Tag, content: &[u8]| {
            let record = format_record(&now(), stream, tag, content);
            let mut file = to.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Err(e) = file.write_all(&record) {
                // Go on reading: a container blocked on a full pipe would hang.
                if !warned {
                    tracing::warn!(%stream, error = %e, "cannot write container log record; dropping output");
                    warned = true;
                }
            }
        };
        if let Err(e) = split_lines(from, &mut emit) {
            tracing::warn!(%stream, error = %e, "reading container output failed; log ends here");
        }
    })
}

/// Cut what `from` yields into lines and lines into records of at most [`MAX_RECORD`] bytes.
fn split_lines(mut from: impl Read, emit: &mut dyn FnMut(Tag, &[u8])) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut line: Vec<u8> = Vec::new();
    let result = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        let mut chunk = &buf[..n];
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&chunk[..end]);
            chunk = &chunk[end + 1..];
            // Like containerd, "\r\n" ends a line as "\n" does.
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            emit_parts(&line, emit);
            line.clear();
        }
        line.extend_from_slice(chunk);
        // A long line is written in parts as it comes, not kept whole in memory.
        let full_parts = line.len().saturating_sub(1) / MAX_RECORD;
        if full_parts > 0 {
            for part in line[..full_parts * MAX_RECORD].chunks(MAX_RECORD) {
                emit(Tag::Partial, part);
            }
            line.drain(..full_parts * MAX_RECORD);
        }
    };
    if !line.is_empty() {
        emit(Tag::Partial, &line);
    }
    result
}

/// One complete line: `P` records of [`MAX_RECORD`] bytes while more than that is left, then `F`.
fn emit_parts(line: &[u8], emit: &mut dyn FnMut(Tag, &[u8])) {
    let mut rest = line;
    while rest.len() > MAX_RECORD {
        emit(Tag::Partial, &rest[..MAX_RECORD]);
        rest = &rest[MAX_RECORD..];
    }
    emit(Tag::Full, rest);
}

fn format_record(time: &Timestamp, stream: Stream, tag: Tag, content: &[u8]) -> Vec<u8> {
    // Go's RFC3339Nano: UTC, trailing zeros of the fraction dropped (jiff's default display).
    let head = format!("{time} {stream} {} ", if tag == Tag::Full { 'F' } else { 'P' });
    let mut record = Vec::with_capacity(head.len() + content.len() + 1);
    record.extend_from_slice(head.as_bytes());
    record.extend_from_slice(content);
    record.push(b'\n');
    record
}

fn now() -> Timestamp {
    to_timestamp(SystemTime::now())
}

fn to_timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp::new(d.as_secs().try_into().unwrap_or(i64::MAX), d.subsec_nanos() as i32)
            .unwrap_or(Timestamp::MAX),
        Err(_) => Timestamp::UNIX_EPOCH,
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: records → lines, like the kubelet's ReadLogs.
// ---------------------------------------------------------------------------------------------

/// What [`read`] prints: the options of `kubectl logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last N lines (`--tail`); all when `None`.
    pub tail: Option<usize>,
    /// Keep printing new lines as they are written (`-f`), while `keep_following()` is true.
    pub follow: bool,
    /// Start each line with its timestamp, RFC 3339 with 9 fraction digits (`--timestamps`).
    pub timestamps: bool,
    /// Skip lines written before this time (`--since-time`; `--since` is now minus a duration).
    pub since_time: Option<SystemTime>,
    /// Stop after printing this many bytes, timestamps included (`--limit-bytes`).
    pub limit_bytes: Option<u64>,
}

/// Print the log at `path` to `out` as `kubectl logs` shows it.
///
/// Records are decoded and `P` parts joined into lines (a line's timestamp is that of its first
/// part); stdout and stderr are printed in the order they were written. A record still being
/// written (no newline yet) is not printed until it is complete. Records that do not parse are
/// skipped with a warning. With `follow`, new records are read every [`FOLLOW_POLL`] until
/// `keep_following()` returns false; then what was written meanwhile is printed and `read` returns.
///
/// `tail` counts lines, `P` parts joined (the kubelet counts records, so a long line cut in
/// parts counts once per part there).
pub fn read(path: &Path, opts: &ReadOptions, out: &mut dyn Write, keep_following: &dyn Fn() -> bool) -> Result<()> {
    let mut file = File::open(path).ctx("open container log", path)?;
    let mut reader = LogReader::new(path, opts, out);
    reader.read_available(&mut file)?;
    if !opts.follow {
        reader.flush_pending()?;
        reader.end_tail()?;
        return reader.flush();
    }
    reader.end_tail()?;
    loop {
        reader.flush()?;
        if reader.done {
            return Ok(());
        }
        if !keep_following() {
            reader.read_available(&mut file)?;
            reader.flush_pending()?;
            return reader.flush();
        }
        std::thread::sleep(FOLLOW_POLL);
        reader.read_available(&mut file)?;
    }
}

/// A decoded record.
#[derive(Debug, PartialEq, Eq)]
struct Record<'a> {
    time: Timestamp,
    stream: Stream,
    partial: bool,
    content: &'a [u8],
}

/// Decode one record (without its newline), as the kubelet's `parseCRILog` does.
fn parse_record(record: &[u8]) -> std::result::Result<Record<'_>, &'static str> {
    let mut fields = record.splitn(4, |&b| b == b' ');
    let time = fields.next().ok_or("no timestamp")?;
    let time = std::str::from_utf8(time)
        .ok()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or("the timestamp is not RFC 3339")?;
    let stream = match fields.next() {
        Some(b"stdout") => Stream::Stdout,
        Some(b"stderr") => Stream::Stderr,
        _ => return Err("the stream is neither stdout nor stderr"),
    };
    // Tags are ':'-separated; only the first (P or F) means something today.
    let tag = fields.next().ok_or("no tag")?;
    let partial = tag.split(|&b| b == b':').next() == Some(b"P");
    let content = fields.next().ok_or("no space after the tag")?;
    Ok(Record { time, stream, partial, content })
}

/// One line to print: joined parts, ending in a newline unless it was left unfinished.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    time: Timestamp,
    stream: Stream,
    text: Vec<u8>,
}

struct LogReader<'a> {
    path: &'a Path,
    out: &'a mut dyn Write,
    timestamps: bool,
    since: Option<Timestamp>,
    /// Bytes left under `limit_bytes`.
    remain: Option<u64>,
    /// Set once `limit_bytes` is reached.
    done: bool,
    /// Bytes read from the file that do not yet form a whole record.
    unread: Vec<u8>,
    /// A line of each stream whose `P` parts arrived but not its `F`.
    pending: [Option<Line>; 2],
    /// The last lines, kept until the end of the first pass when `tail` is set.
    tail: Option<(usize, VecDeque<Line>)>,
}

impl<'a> LogReader<'a> {
    fn new(path: &'a Path, opts: &ReadOptions, out: &'a mut dyn Write) -> Self {
        LogReader {
            path,
            out,
            timestamps: opts.timestamps,
            since: opts.since_time.map(to_timestamp),
            remain: opts.limit_bytes,
            done: opts.limit_bytes == Some(0),
            unread: Vec::new(),
            pending: [None, None],
            tail: opts.tail.map(|n| (n, VecDeque::with_capacity(n.min(4096)))),
        }
    }

    /// Read up to the current end of the file and print every whole record.
    fn read_available(&mut self, file: &mut File) -> Result<()> {
        let mut buf = vec![0u8; CHUNK];
        while !self.done {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read container log", self.path, e)),
            };
            self.unread.extend_from_slice(&buf[..n]);
            self.decode()?;
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<()> {
        let unread = std::mem::take(&mut self.unread);
        let mut rest = &unread[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let record = &rest[..end];
            rest = &rest[end + 1..];
            match parse_record(record) {
                Ok(r) => self.push(r)?,
                Err(why) => {
                    tracing::warn!(path = %self.path.display(), record = %String::from_utf8_lossy(record), "skipping log record: {why}");
                }
            }
            if self.done {
                return Ok(());
            }
        }
        self.unread = rest.to_vec();
        Ok(())
    }

    fn push(&mut self, r: Record<'_>) -> Result<()> {
        let slot = &mut self.pending[r.stream.index()];
        let line = slot.get_or_insert_with(|| Line { time: r.time, stream: r.stream, text: Vec::new() });
        line.text.extend_from_slice(r.content);
        if !r.partial {
            line.text.push(b'\n');
        } else if line.text.len() < MAX_JOINED {
            return Ok(());
        }
        match slot.take() {
            Some(line) => self.emit(line),
            None => Ok(()),
        }
    }

    /// Print the lines whose last part has not come (in the order they started).
    fn flush_pending(&mut self) -> Result<()> {
        let mut lines: Vec<Line> = self.pending.iter_mut().filter_map(Option::take).collect();
        lines.sort_by_key(|l| l.time);
        for line in lines {
            self.emit(line)?;
        }
        Ok(())
    }

    fn emit(&mut self, line: Line) -> Result<()> {
        match &mut self.tail {
            Some((n, kept)) => {
                kept.push_back(line);
                while kept.len() > *n {
                    kept.pop_front();
                }
                Ok(())
            }
            None => self.print(&line),
        }
    }

    /// Print the kept last lines; from now on lines are printed as they come.
    fn end_tail(&mut self) -> Result<()> {
        if let Some((_, kept)) = self.tail.take() {
            for line in kept {
                self.print(&line)?;
            }
        }
        Ok(())
    }

    fn print(&mut self, line: &Line) -> Result<()> {
        if self.done || self.since.is_some_and(|since| line.time < since) {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(line.text.len() + 32);
        if self.timestamps {
            // The kubelet's RFC3339NanoFixed: always 9 fraction digits.
            bytes.extend_from_slice(format!("{:.9} ", line.time).as_bytes());
        }
        bytes.extend_from_slice(&line.text);
        if let Some(remain) = &mut self.remain {
            let keep = bytes.len().min(usize::try_from(*remain).unwrap_or(usize::MAX));
            bytes.truncate(keep);
            *remain -= keep as u64;
            self.done = *remain == 0;
        }
        self.out.write_all(&bytes).ctx("copy container log to the output, from", self.path)
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().ctx("copy container log to the output, from", self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::fd::{FromRawFd, IntoRawFd};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A fresh directory under the system's temp dir, removed on drop.
    fn temp_dir(name: &str) -> TempDir {
        let t = TempDir::new("logs", name);
        std::fs::create_dir_all(&t.0).unwrap();
        t
    }

    /// A kernel pipe: (read end, write end).
    fn pipe() -> (File, File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the descriptors are fresh and owned by nobody else.
        unsafe { (File::from_raw_fd(r.into_raw_fd()), File::from_raw_fd(w.into_raw_fd())) }
    }

    /// The records `split_lines` makes of `input` when it arrives in pieces of `piece` bytes.
    fn split(input: &[u8], piece: usize) -> Vec<(Tag, Vec<u8>)> {
        struct Pieces<'a>(&'a [u8], usize);
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        split_lines(Pieces(input, piece), &mut |tag, content| out.push((tag, content.to_vec()))).unwrap();
        out
    }

    fn read_all(path: &Path, opts: &ReadOptions) -> String {
        let mut out = Vec::new();
        read(path, opts, &mut out, &|| false).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn layout_of_log_files() {
        assert_eq!(
            log_path(Path::new("/var/log/pods/default_web_u1"), "app", 3),
            PathBuf::from("/var/log/pods/default_web_u1/app/3.log")
        );
        assert_eq!(
            pod_log_dir(Path::new("/var/log/pods"), "default", "web", "u1"),
            PathBuf::from("/var/log/pods/default_web_u1")
        );
    }

    #[test]
    fn lines_become_full_and_partial_records() {
        use Tag::{Full, Partial};
        for piece in [1, 7, 4096, CHUNK] {
            assert_eq!(
                split(b"a\nbc\r\n\nlast", piece),
                [(Full, b"a".to_vec()), (Full, b"bc".to_vec()), (Full, b"".to_vec()), (Partial, b"last".to_vec())]
            );
        }
        let exact = vec![b'x'; MAX_RECORD];
        for piece in [1000, 4096, CHUNK] {
            let mut input = exact.clone();
            input.push(b'\n');
            assert_eq!(split(&input, piece), [(Full, exact.clone())], "piece {piece}");
            let mut long = vec![b'y'; 2 * MAX_RECORD + 5];
            long.push(b'\n');
            assert_eq!(
                split(&long, piece),
                [(Partial, vec![b'y'; MAX_RECORD]), (Partial, vec![b'y'; MAX_RECORD]), (Full, vec![b'y'; 5])]
            );
            // Exactly two records' worth, then the pipe closes: two P records, no empty F.
            assert_eq!(
                split(&vec![b'z'; 2 * MAX_RECORD], piece),
                [(Partial, vec![b'z'; MAX_RECORD]), (Partial, vec![b'z'; MAX_RECORD])]
            );
        }
        assert!(split(b"", 10).is_empty());
    }

    #[test]
    fn records_parse_like_the_kubelet() {
        let r = parse_record(b"2016-10-06T00:17:09.669794202Z stdout P log content 1").unwrap();
        assert_eq!(r.stream, Stream::Stdout);
        assert!(r.partial);
        assert_eq!(r.content, b"log content 1");
        assert_eq!(r.time.subsec_nanosecond(), 669_794_202);
        let r = parse_record(b"2016-10-06T02:17:09+02:00 stderr F:x ").unwrap();
        assert_eq!((r.stream, r.partial, r.content), (Stream::Stderr, false, &b""[..]));
        assert_eq!(r.time.as_second(), 1_475_713_029);
        assert!(parse_record(b"yesterday stdout F x").is_err());
        assert!(parse_record(b"2016-10-06T00:17:09Z stdin F x").is_err());
        assert!(parse_record(b"2016-10-06T00:17:09Z stdout F").is_err());
    }

    #[test]
    fn written_records_read_back_through_a_pipe() {
        let dir = temp_dir("pipe");
        let path = log_path(&dir.0, "app", 0);
        let file = create(&path).unwrap();
        let (out_r, mut out_w) = pipe();
        let (err_r, mut err_w) = pipe();
        let out_thread = copy_stream(out_r, Stream::Stdout, file.clone());
        let err_thread = copy_stream(err_r, Stream::Stderr, file.clone());
        let before = SystemTime::now();
        out_w.write_all(b"hello\n").unwrap();
        out_w.flush().unwrap();
        let long = "L".repeat(MAX_RECORD + 10);
        err_w.write_all(format!("{long}\n").as_bytes()).unwrap();
        out_w.write_all(b"no newline").unwrap();
        drop(out_w);
        drop(err_w);
        out_thread.join().unwrap();
        err_thread.join().unwrap();

        let raw = fs::read_to_string(&path).unwrap();
        let records: Vec<&str> = raw.lines().collect();
        assert_eq!(records.len(), 4, "{records:?}");
        for r in &records {
            let parsed = parse_record(r.as_bytes()).unwrap();
            assert!(parsed.time >= to_timestamp(before) && parsed.time <= now(), "{r}");
            assert!(r.split(' ').next().unwrap().ends_with('Z'), "UTC: {r}");
        }
        assert!(records.iter().any(|r| r.ends_with(" stdout F hello")));
        assert!(records.iter().any(|r| r.ends_with(" stdout P no newline")));
        assert!(records.iter().any(|r| r.contains(" stderr P L") && r.len() > MAX_RECORD));
        assert!(records.iter().any(|r| r.ends_with(&format!(" stderr F {}", "L".repeat(10)))));
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o640);

        // Parts are joined; the unfinished last line is printed as it is.
        let text = read_all(&path, &ReadOptions::default());
        assert!(text.contains("hello\n"));
        assert!(text.contains(&format!("{long}\n")));
        assert!(text.contains("no newline"));
        assert_eq!(text.len(), "hello\n".len() + long.len() + 1 + "no newline".len());
    }

    /// Write records by hand, with chosen times.
    fn write_log(path: &Path, records: &[&str]) {
        let mut text = String::new();
        for r in records {
            text.push_str(r);
            text.push('\n');
        }
        fs::write(path, text).unwrap();
    }

    #[test]
    fn tail_since_timestamps_and_limit() {
        let dir = temp_dir("tail");
        let path = dir.0.join("0.log");
        write_log(
            &path,
            &[
                "2024-01-01T00:00:01Z stdout F one",
                "2024-01-01T00:00:02.5Z stderr P tw",
                "2024-01-01T00:00:02.6Z stdout F three",
                "2024-01-01T00:00:02.7Z stderr F o",
                "not a record",
                "2024-01-01T00:00:04Z stdout F four",
                "2024-01-01T00:00:05Z stdout F five",
            ],
        );
        let all = read_all(&path, &ReadOptions::default());
        assert_eq!(all, "one\nthree\ntwo\nfour\nfive\n");

        let tail = |n| read_all(&path, &ReadOptions { tail: Some(n), ..Default::default() });
        assert_eq!(tail(2), "four\nfive\n");
        assert_eq!(tail(3), "two\nfour\nfive\n");
        assert_eq!(tail(0), "");
        assert_eq!(tail(100), all);

        let stamped = read_all(&path, &ReadOptions { tail: Some(3), timestamps: true, ..Default::default() });
        assert_eq!(
            stamped,
            "2024-01-01T00:00:02.500000000Z two\n2024-01-01T00:00:04.000000000Z four\n\
             2024-01-01T00:00:05.000000000Z five\n"
        );

        let since = UNIX_EPOCH + Duration::from_secs(1_704_067_202) + Duration::from_millis(550);
        let after = read_all(&path, &ReadOptions { since_time: Some(since), ..Default::default() });
        // "two" started at 02.5, before since: skipped like the kubelet skips its first part.
        assert_eq!(after, "three\nfour\nfive\n");

        let limited = read_all(&path, &ReadOptions { limit_bytes: Some(7), ..Default::default() });
        assert_eq!(limited, "one\nthr");
        assert_eq!(read_all(&path, &ReadOptions { limit_bytes: Some(0), ..Default::default() }), "");
    }

    #[test]
    fn a_half_written_record_waits_for_its_end() {
        let dir = temp_dir("half");
        let path = dir.0.join("0.log");
        fs::write(&path, "2024-01-01T00:00:01Z stdout F one\n2024-01-01T00:00:02Z stdout F tw").unwrap();
        assert_eq!(read_all(&path, &ReadOptions::default()), "one\n");
        assert_eq!(read_all(&path, &ReadOptions { tail: Some(1), ..Default::default() }), "one\n");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let dir = temp_dir("missing");
        let path = dir.0.join("nope.log");
        let err = read(&path, &ReadOptions::default(), &mut Vec::new(), &|| false).unwrap_err();
        assert!(err.to_string().contains("nope.log"), "{err}");
    }

    /// A `Write` shared between the reader thread and the test.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn follow_prints_new_lines_until_told_to_stop() {
        let dir = temp_dir("follow");
        let path = log_path(&dir.0, "app", 1);
        let file = create(&path).unwrap();
        let (r, mut w) = pipe();
        let writer = copy_stream(r, Stream::Stdout, file);
        w.write_all(b"old 1\nold 2\n").unwrap();
        wait_for("the first records", || fs::read_to_string(&path).unwrap().lines().count() == 2);

        let out = Shared::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, mut out, stop) = (path.clone(), out.clone(), stop.clone());
            std::thread::spawn(move || {
                let opts = ReadOptions { follow: true, tail: Some(1), ..Default::default() };
                read(&path, &opts, &mut out, &|| !stop.load(Ordering::SeqCst))
            })
        };
        wait_for("the tail", || out.text() == "old 2\n");
        w.write_all(b"new 1\n").unwrap();
        wait_for("a followed line", || out.text() == "old 2\nnew 1\n");
        // A long line arrives in parts; the reader prints it once, whole.
        let long = "x".repeat(MAX_RECORD * 2 + 3);
        w.write_all(format!("{long}\nnew 3\n").as_bytes()).unwrap();
        wait_for("the joined long line", || out.text().ends_with("new 3\n"));
        assert_eq!(out.text(), format!("old 2\nnew 1\n{long}\nnew 3\n"));

        // Written just before the stop: still printed, then `read` returns.
        w.write_all(b"last").unwrap();
        drop(w);
        writer.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap().unwrap();
        assert_eq!(out.text(), format!("old 2\nnew 1\n{long}\nnew 3\nlast"));
    }
}
