//! Safe unpacking of OCI image layers.
//!
//! An image layer is a tar archive of file-system changes: the files, directories and links a
//! build step added or changed. Deletions are recorded as "whiteouts": an entry `.wh.NAME` deletes
//! NAME from the lower layers, and `.wh..wh..opq` makes its directory opaque (lower content hidden).
//! Layers come from the network, so every entry is treated as hostile until proven harmless.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::{cell::Cell, ffi::CString};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FileStat, Mode, SFlag, UtimensatFlags, fchmod, fstatat, futimens, makedev, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, mkfifoat, symlinkat, unlinkat};

use crate::error::{Error, Result};

/// How the layer's tar stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From an OCI or Docker layer media type (`application/vnd.oci.image.layer.v1.tar+gzip`,
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`, `...tar+zstd`). Unknown types give
    /// `None`; use [`Compression::sniff`] when in doubt.
    pub fn from_media_type(mt: &str) -> Compression {
        let mt = mt.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mt.ends_with("+gzip") || mt.ends_with(".gzip") || mt.ends_with("tar.gz") {
            Compression::Gzip
        } else if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// From the first bytes of the blob (gzip `1f 8b`, zstd `28 b5 2f fd`).
    pub fn sniff(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Whiteouts {
    /// Each layer gets its own directory, later stacked by overlayfs: `.wh.NAME` becomes a 0/0
    /// character device NAME, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y`.
    #[default]
    Overlay,
    /// Layers are flattened into one directory (like `umoci unpack`): whiteouts delete what the
    /// lower layers put there.
    Apply,
}

/// Bounds against hostile layers (decompression bombs, endless archives, huge paths).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
    pub max_path_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 16 << 30, max_entries: 1_000_000, max_path_len: 4096 }
    }
}

/// What an unpack did: tar entries seen, uncompressed tar bytes read, and harmless problems.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub entries: u64,
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// Unpacks one layer from `reader` into the existing directory `target`, the root of the layer.
///
/// Entry paths are normalised (a leading `/` or `./` is stripped) and refused when they contain
/// `..`, a NUL byte or are too long. Every write happens through file descriptors below `target`:
/// nothing outside it is ever written, whatever symlinks the layer contains.
///
/// On error the target is left partly written: unpack into a fresh temporary directory and
/// rename it into place only when this returns `Ok`.
pub fn unpack(
    reader: impl Read,
    compression: Compression,
    target: &Path,
    whiteouts: Whiteouts,
    limits: &Limits,
) -> Result<Report> {
    let root = nix::fcntl::open(target, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open layer directory", target, e.into()))?;
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| Error::invalid(format!("layer: cannot start the zstd decoder: {e}")))?,
        ),
    };
    let stream = Rc::new(Stream::default());
    let counted = Counted { inner: decoded, stream: stream.clone(), max: limits.max_bytes };
    let mut u = Unpacker {
        root,
        target,
        mode: whiteouts,
        limits,
        stream: stream.clone(),
        written: 0,
        report: Report::default(),
        touched: HashSet::new(),
        dirs: Vec::new(),
    };
    match u.open_dir(&[]) {
        Ok(_) => {}
        Err(Errno::ENOSYS) => {
            return Err(Error::Missing("openat2 (Linux 5.6 or newer) is needed to unpack layers".into()));
        }
        Err(e) => return Err(sys_err("open layer directory", target, e)),
    }
    let mut archive = tar::Archive::new(counted);
    let entries = archive.entries().map_err(|e| u.stream_error(e, "read the tar stream"))?;
    for entry in entries {
        let entry = entry.map_err(|e| u.stream_error(e, "read the next tar entry"))?;
        stream.between.set(0);
        u.report.entries += 1;
        if u.report.entries > limits.max_entries {
            return Err(Error::invalid(format!(
                "layer has more than {} entries: refusing it (raise Limits::max_entries if it is genuine)",
                limits.max_entries
            )));
        }
        u.entry(entry)?;
    }
    u.finish_dirs()?;
    u.report.bytes = stream.read.get();
    Ok(u.report)
}

/// Counts the *decompressed* bytes and fails as soon as they pass the limit, so a small gzip
/// blob that inflates to terabytes is stopped after `max` bytes, not after filling the disk.
struct Counted<R> {
    inner: R,
    stream: Rc<Stream>,
    max: u64,
}

/// Shared between the counting reader and the unpacker.
#[derive(Default)]
struct Stream {
    /// Decompressed bytes read so far.
    read: Cell<u64>,
    /// Bytes the tar crate read on its own since it last handed us an entry: headers, padding,
    /// skipped data, and GNU long-name / PAX records, which it buffers in memory.
    between: Cell<u64>,
    /// True while we copy a file's content (those bytes are expected).
    in_content: Cell<bool>,
}

/// Bound on `Stream::between`: a long name or PAX record larger than this is a memory attack.
const MAX_BETWEEN: u64 = 1 << 20;

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)? as u64;
        let s = &self.stream;
        s.read.set(s.read.get() + n);
        if !s.in_content.get() {
            s.between.set(s.between.get() + n);
        }
        if s.read.get() > self.max || s.between.get() > MAX_BETWEEN {
            return Err(io::Error::other("layer limit exceeded"));
        }
        Ok(n as usize)
    }
}

/// Ownership, permissions, times and xattrs of one entry, applied after its content.
#[derive(Clone)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

type Comps = Vec<Vec<u8>>;

struct Unpacker<'a> {
    root: OwnedFd,
    target: &'a Path,
    mode: Whiteouts,
    limits: &'a Limits,
    stream: Rc<Stream>,
    written: u64,
    report: Report,
    /// Apply mode: paths this layer created, and all their ancestors (kept by whiteouts).
    touched: HashSet<Vec<u8>>,
    /// Directories whose metadata is applied at the end (creating children changes mtimes).
    dirs: Vec<(Comps, Meta)>,
}

const OPAQUE: &[u8] = b".wh..wh..opq";
const WH: &[u8] = b".wh.";

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut e: tar::Entry<R>) -> Result<()> {
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let mut xattrs = Vec::new();
        let mut pax_mtime = None;
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if ext.key_bytes() == b"mtime" {
                    pax_mtime = ext.value().ok().and_then(parse_pax_time);
                }
            }
        }
        let raw = e.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = self.normalise(&raw, &shown)?;
        let h = e.header();
        let bad_header =
            |what: &str, err: io::Error| Error::invalid(format!("layer entry {shown:?}: bad {what}: {err}"));
        let uid = u32::try_from(h.uid().map_err(|e| bad_header("uid", e))?)
            .map_err(|_| Error::invalid(format!("layer entry {shown:?}: uid out of range")))?;
        let gid = u32::try_from(h.gid().map_err(|e| bad_header("gid", e))?)
            .map_err(|_| Error::invalid(format!("layer entry {shown:?}: gid out of range")))?;
        let mode = h.mode().map_err(|e| bad_header("mode", e))? & 0o7777;
        let secs = i64::try_from(h.mtime().map_err(|e| bad_header("mtime", e))?).unwrap_or(i64::MAX);
        let mtime = pax_mtime.unwrap_or(TimeSpec::new(secs, 0));
        let meta = Meta { uid, gid, mode, mtime, xattrs };

        if let Some(pos) = comps.iter().position(|c| c.starts_with(WH)) {
            if pos + 1 != comps.len() {
                return Err(self.bad(&shown, "a whiteout name cannot be a directory"));
            }
            return self.whiteout(comps, &shown);
        }
        let Some((name, dir)) = comps.split_last() else {
            // "./" or "/": the layer root itself. Only a directory makes sense there.
            if kind.is_dir() {
                self.dirs.push((Vec::new(), meta));
                return Ok(());
            }
            return Err(self.bad(&shown, "only a directory can be the layer root"));
        };
        let path = self.target.join(String::from_utf8_lossy(&comps.join(&b'/')).as_ref());
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let parent = self.parent(dir, &path)?;
                let old = self.clear(&parent, name, true, &path)?;
                if !old.is_some_and(|st| is(st.st_mode, SFlag::S_IFDIR)) {
                    mkdirat(&parent, name.as_slice(), Mode::from_bits_truncate(0o700))
                        .map_err(|e| sys_err("create directory", &path, e))?;
                }
                // Overlay: a directory replacing a whiteout of this layer must hide lower content.
                if self.mode == Whiteouts::Overlay && old.is_some_and(|st| is_whiteout(&st)) {
                    let fd = self.open_dir(&comps).map_err(|e| sys_err("open directory", &path, e))?;
                    set_opaque(fd.as_fd(), &path)?;
                }
                self.dirs.push((comps.clone(), meta));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let parent = self.parent(dir, &path)?;
                self.clear(&parent, name, false, &path)?;
                let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = openat(&parent, name.as_slice(), flags, Mode::from_bits_truncate(0o600))
                    .map_err(|e| sys_err("create file", &path, e))?;
                let mut file = File::from(fd);
                let copied = self.copy(&mut e, &mut file, &path)?;
                if kind != T::GNUSparse && copied != e.size() {
                    return Err(self.bad(&shown, "archive is truncated (file content ends early)"));
                }
                self.apply_meta(file.as_fd(), &meta, &path)?;
            }
            T::Symlink => {
                let Some(link) = e.link_name_bytes().map(|l| l.into_owned()) else {
                    return Err(self.bad(&shown, "symlink without a target"));
                };
                if link.len() > self.limits.max_path_len || link.contains(&0) {
                    return Err(self.bad(&shown, "symlink target is too long or contains a NUL byte"));
                }
                let parent = self.parent(dir, &path)?;
                self.clear(&parent, name, false, &path)?;
                // Stored as is: it is resolved later, inside the container. We never follow it here.
                symlinkat(link.as_slice(), &parent, name.as_slice())
                    .map_err(|e| sys_err("create symlink", &path, e))?;
                fchownat(
                    &parent,
                    name.as_slice(),
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| sys_err("change owner of symlink", &path, e))?;
                utimensat(&parent, name.as_slice(), &meta.mtime, &meta.mtime, UtimensatFlags::NoFollowSymlink)
                    .map_err(|e| sys_err("set times of symlink", &path, e))?;
                if !meta.xattrs.is_empty() {
                    self.warn(format!("layer entry {shown:?}: xattrs on symlinks are not applied"));
                }
            }
            T::Link => {
                let Some(link) = e.link_name_bytes().map(|l| l.into_owned()) else {
                    return Err(self.bad(&shown, "hard link without a target"));
                };
                self.hardlink(&comps, &link, &shown, &path)?;
            }
            T::Fifo => {
                let parent = self.parent(dir, &path)?;
                self.clear(&parent, name, false, &path)?;
                mkfifoat(&parent, name.as_slice(), Mode::from_bits_truncate(0o600))
                    .map_err(|e| sys_err("create fifo", &path, e))?;
                // Opening a fifo read-only and non-blocking returns at once; O_NOFOLLOW as always.
                let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = openat(&parent, name.as_slice(), flags, Mode::empty())
                    .map_err(|e| sys_err("open fifo", &path, e))?;
                self.apply_meta(fd.as_fd(), &meta, &path)?;
            }
            T::Char | T::Block => {
                self.warn(format!("layer entry {shown:?}: device node skipped (containers get /dev from the runtime)"));
            }
            other => {
                self.warn(format!("layer entry {shown:?}: unsupported tar entry type {other:?} skipped"));
            }
        }
        if self.mode == Whiteouts::Apply {
            self.touch(&comps);
        }
        Ok(())
    }

    /// Splits an entry path into components: strips leading "/" and "./", drops "." and empty
    /// components, refuses "..", NUL bytes and paths longer than the limit.
    fn normalise(&self, raw: &[u8], shown: &str) -> Result<Comps> {
        if raw.len() > self.limits.max_path_len {
            return Err(self.bad(shown, &format!("path is longer than {} bytes", self.limits.max_path_len)));
        }
        if raw.contains(&0) {
            return Err(self.bad(shown, "path contains a NUL byte"));
        }
        let mut comps = Vec::new();
        for c in raw.split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(self.bad(shown, "path leaves the layer (\"..\")")),
                _ => comps.push(c.to_vec()),
            }
        }
        Ok(comps)
    }

    fn whiteout(&mut self, mut comps: Comps, shown: &str) -> Result<()> {
        let Some(last) = comps.pop() else { return Ok(()) };
        let dir_path = self.target.join(String::from_utf8_lossy(&comps.join(&b'/')).as_ref());
        if last == OPAQUE {
            return match self.mode {
                Whiteouts::Overlay => {
                    let fd = self.parent(&comps, &dir_path)?;
                    set_opaque(fd.as_fd(), &dir_path)
                }
                Whiteouts::Apply => match self.open_dir(&comps) {
                    Ok(fd) => self.remove_children(&fd, &mut comps, &dir_path),
                    Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(sys_err("open directory", &dir_path, e)),
                },
            };
        }
        let name = last[WH.len()..].to_vec();
        match name.as_slice() {
            b".." => return Err(self.bad(shown, "path leaves the layer (\"..\")")),
            b"" | b"." => return Err(self.bad(shown, "whiteout without a name")),
            n if n.starts_with(WH) => {
                // Other `.wh..wh.*` names are aufs bookkeeping (hard-link dirs): not part of the image.
                self.warn(format!("layer entry {shown:?}: unknown whiteout meta-entry skipped"));
                return Ok(());
            }
            _ => {}
        }
        let path = dir_path.join(String::from_utf8_lossy(&name).as_ref());
        match self.mode {
            Whiteouts::Overlay => {
                let parent = self.parent(&comps, &path)?;
                match fstatat(&parent, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Err(Errno::ENOENT) => {
                        mknodat(&parent, name.as_slice(), SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                            .map_err(|e| sys_err("create whiteout device", &path, e))
                    }
                    // A whiteout only hides lower layers. A directory this layer made stays but
                    // must hide the lower one; any other entry of this layer simply stays.
                    Ok(st) if is(st.st_mode, SFlag::S_IFDIR) => {
                        comps.push(name);
                        let fd = self.open_dir(&comps).map_err(|e| sys_err("open directory", &path, e))?;
                        set_opaque(fd.as_fd(), &path)
                    }
                    Ok(_) => Ok(()),
                    Err(e) => Err(sys_err("inspect", &path, e)),
                }
            }
            Whiteouts::Apply => match self.open_dir(&comps) {
                Ok(parent) => {
                    comps.push(name);
                    self.remove_lower(&parent, &mut comps, &path)
                }
                Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(sys_err("open directory", &dir_path, e)),
            },
        }
    }

    /// Hard link: its target must be an entry already inside the layer directory.
    fn hardlink(&mut self, comps: &[Vec<u8>], link: &[u8], shown: &str, path: &Path) -> Result<()> {
        let src = self.normalise(link, shown)?;
        let Some((src_name, src_dir)) = src.split_last() else {
            return Err(self.bad(shown, "hard link to the layer root"));
        };
        if src == comps {
            return Ok(()); // a link to itself: nothing to do (replacing it would delete it)
        }
        let missing = || {
            let target = String::from_utf8_lossy(link);
            Error::invalid(format!("layer entry {shown:?}: hard link target {target:?} is not in the layer"))
        };
        // The source's parent is resolved inside the root, and its last component is never
        // followed (linkat without AT_SYMLINK_FOLLOW links a symlink itself): it cannot escape.
        let src_parent = match self.open_dir(src_dir) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Err(missing()),
            Err(e) => return Err(sys_err("open directory of hard link target", path, e)),
        };
        match fstatat(&src_parent, src_name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is(st.st_mode, SFlag::S_IFDIR) => return Err(self.bad(shown, "hard link to a directory")),
            Ok(_) => {}
            Err(Errno::ENOENT) => return Err(missing()),
            Err(e) => return Err(sys_err("inspect hard link target of", path, e)),
        }
        let (name, dir) = comps.split_last().ok_or_else(missing)?;
        let parent = self.parent(dir, path)?;
        self.clear(&parent, name, false, path)?;
        linkat(&src_parent, src_name.as_slice(), &parent, name.as_slice(), AtFlags::empty())
            .map_err(|e| sys_err("create hard link", path, e))
    }

    /// Opens a directory of the layer for use as the parent of `*at` calls.
    ///
    /// Why openat2(RESOLVE_IN_ROOT) rather than walking components with O_NOFOLLOW: the kernel
    /// resolves the whole path as if `root` were `/`, so `..` and absolute symlinks (even ones a
    /// layer made a moment ago, `a -> /etc`) stay inside the layer, atomically, with no window
    /// for races (CVE-2018-15664). A userspace walk would have to refuse every symlinked parent,
    /// which real images use (`/lib -> usr/lib`). Cost: Linux 5.6 or newer.
    fn open_dir(&self, comps: &[Vec<u8>]) -> nix::Result<OwnedFd> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let how =
            OpenHow::new().flags(flags).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let path = if comps.is_empty() { b".".to_vec() } else { comps.join(&b'/') };
        let mut tries = 0;
        loop {
            match openat2(&self.root, path.as_slice(), how) {
                // EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry.
                Err(Errno::EAGAIN) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    /// The parent directory of an entry, creating missing ancestors (0755, like tar does).
    fn parent(&mut self, dir: &[Vec<u8>], path: &Path) -> Result<OwnedFd> {
        match self.open_dir(dir) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys_err("open parent directory of", path, e)),
        }
        let mut fd = self.open_dir(&[]).map_err(|e| sys_err("open layer root for", path, e))?;
        for i in 0..dir.len() {
            fd = match self.open_dir(&dir[..=i]) {
                Ok(next) => next,
                Err(Errno::ENOENT) => {
                    match mkdirat(&fd, dir[i].as_slice(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EEXIST) => {
                            let entry = path.strip_prefix(self.target).unwrap_or(path);
                            let link = String::from_utf8_lossy(&dir[..=i].join(&b'/')).into_owned();
                            let what = format!("parent {link:?} is a symlink to a directory missing from the layer");
                            return Err(self.bad(&entry.display().to_string(), &what));
                        }
                        Err(e) => return Err(sys_err("create parent directory of", path, e)),
                    }
                    if self.mode == Whiteouts::Apply {
                        self.touch(&dir[..=i]);
                    }
                    let fd = self.open_dir(&dir[..=i]).map_err(|e| sys_err("open parent directory of", path, e))?;
                    // Explicit mode: the process umask must not decide it.
                    fchmod(&fd, Mode::from_bits_truncate(0o755)).map_err(|e| sys_err("change mode of", path, e))?;
                    fd
                }
                Err(e) => return Err(sys_err("open parent directory of", path, e)),
            };
        }
        Ok(fd)
    }

    /// Makes room for a new entry `name`: an existing directory is kept when `keep_dir`,
    /// anything else is removed (recursively for directories). Returns what was there.
    fn clear(&self, parent: &OwnedFd, name: &[u8], keep_dir: bool, path: &Path) -> Result<Option<FileStat>> {
        let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(sys_err("inspect", path, e)),
        };
        if !(keep_dir && is(st.st_mode, SFlag::S_IFDIR)) {
            remove_all(parent.as_fd(), name).map_err(|e| sys_err("remove existing", path, e))?;
        }
        Ok(Some(st))
    }

    /// Apply mode: removes `comps` (a child of `parent`) except what this layer created.
    fn remove_lower(&self, parent: &OwnedFd, comps: &mut Comps, path: &Path) -> Result<()> {
        let Some(name) = comps.last().cloned() else { return Ok(()) };
        if !self.touched.contains(&comps.join(&b'/')) {
            return match remove_all(parent.as_fd(), &name) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(sys_err("remove", path, e)),
            };
        }
        match fstatat(parent, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is(st.st_mode, SFlag::S_IFDIR) => {}
            _ => return Ok(()), // made by this layer: it stays
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(parent, name.as_slice(), flags, Mode::empty()).map_err(|e| sys_err("open", path, e))?;
        self.remove_children(&fd, comps, path)
    }

    /// Apply mode: empties the directory `fd` (at `comps`) of what lower layers put there.
    fn remove_children(&self, fd: &OwnedFd, comps: &mut Comps, path: &Path) -> Result<()> {
        for child in list_dir(fd).map_err(|e| sys_err("list directory", path, e))? {
            let child_path = path.join(String::from_utf8_lossy(&child).as_ref());
            comps.push(child);
            let res = self.remove_lower(fd, comps, &child_path);
            comps.pop();
            res?;
        }
        Ok(())
    }

    /// Records `comps` and its ancestors (which are recorded together, so stop at the first known).
    fn touch(&mut self, comps: &[Vec<u8>]) {
        for i in (1..=comps.len()).rev() {
            if !self.touched.insert(comps[..i].join(&b'/')) && i < comps.len() {
                break;
            }
        }
    }

    /// Streams the entry's content into `out`, counting towards the byte limit (a GNU sparse
    /// entry can expand to far more than the archive holds).
    fn copy<R: Read>(&mut self, from: &mut tar::Entry<R>, out: &mut File, path: &Path) -> Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            self.stream.in_content.set(true);
            let res = from.read(&mut buf);
            self.stream.in_content.set(false);
            let n = match res {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.stream_error(e, "read file content")),
            };
            total += n as u64;
            self.written += n as u64;
            if self.written > self.limits.max_bytes {
                return Err(self.bomb());
            }
            out.write_all(&buf[..n]).map_err(|e| Error::io("write", path, e))?;
        }
    }

    /// chown, then chmod (chown clears setuid/setgid), then xattrs, then times (last, as
    /// every other change would bump them).
    fn apply_meta(&mut self, fd: BorrowedFd, meta: &Meta, path: &Path) -> Result<()> {
        fchown(fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(|e| sys_err("change owner of", path, e))?;
        fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(|e| sys_err("change mode of", path, e))?;
        for (key, value) in &meta.xattrs {
            let shown = String::from_utf8_lossy(key);
            if key.starts_with(b"trusted.overlay.") {
                // Forged overlay xattrs could fake whiteouts or redirects: only `.wh.` entries may.
                self.warn(format!("{}: xattr {shown} from the layer refused", path.display()));
                continue;
            }
            if let Err(e) = set_xattr(fd, key, value) {
                self.warn(format!("{}: xattr {shown} not set: {e}", path.display()));
            }
        }
        futimens(fd, &meta.mtime, &meta.mtime).map_err(|e| sys_err("set times of", path, e))
    }

    /// Directory metadata, last entry for a path wins; skipped when the path is no longer a
    /// directory (a later entry replaced it).
    fn finish_dirs(&mut self) -> Result<()> {
        let mut done = HashSet::new();
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, meta) in dirs.iter().rev() {
            if !done.insert(comps.as_slice()) {
                continue;
            }
            let path = self.target.join(String::from_utf8_lossy(&comps.join(&b'/')).as_ref());
            let how = OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            let name = if comps.is_empty() { b".".to_vec() } else { comps.join(&b'/') };
            match openat2(&self.root, name.as_slice(), how) {
                Ok(fd) => self.apply_meta(fd.as_fd(), meta, &path)?,
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => {}
                Err(e) => return Err(sys_err("open directory", &path, e)),
            }
        }
        Ok(())
    }

    /// A read error of the tar stream: the byte limit, a truncated or corrupt archive.
    fn stream_error(&self, e: io::Error, action: &str) -> Error {
        if self.stream.read.get() > self.limits.max_bytes {
            return self.bomb();
        }
        if self.stream.between.get() > MAX_BETWEEN {
            return Error::invalid(format!(
                "layer: a tar header record (long name, PAX or skipped data) is larger than {} KiB: refusing it",
                MAX_BETWEEN >> 10
            ));
        }
        Error::invalid(format!("layer: cannot {action} (corrupt or truncated archive?): {e}"))
    }

    fn bomb(&self) -> Error {
        let max = self.limits.max_bytes;
        let size = match max {
            m if m % (1 << 30) == 0 => format!("{} GiB", m >> 30),
            m if m % (1 << 20) == 0 => format!("{} MiB", m >> 20),
            m => format!("{m} bytes"),
        };
        Error::invalid(format!("layer exceeds {size} uncompressed: refusing a possible decompression bomb"))
    }

    fn bad(&self, shown: &str, what: &str) -> Error {
        Error::invalid(format!("layer entry {shown:?}: {what}"))
    }

    fn warn(&mut self, msg: String) {
        self.report.warnings.push(msg);
    }
}

fn sys_err(action: &str, path: &Path, e: Errno) -> Error {
    Error::io(action, path, e.into())
}

fn is(mode: libc::mode_t, kind: SFlag) -> bool {
    mode & SFlag::S_IFMT.bits() == kind.bits()
}

fn is_whiteout(st: &FileStat) -> bool {
    is(st.st_mode, SFlag::S_IFCHR) && st.st_rdev == 0
}

fn set_opaque(fd: BorrowedFd, path: &Path) -> Result<()> {
    set_xattr(fd, b"trusted.overlay.opaque", b"y").map_err(|e| {
        Error::io("set xattr trusted.overlay.opaque (needs root and a file system with trusted xattrs) on", path, e)
    })
}

fn set_xattr(fd: BorrowedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let key = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `key` is NUL-terminated and `value` is a valid slice for the given length.
    let rc = unsafe { libc::fsetxattr(fd.as_raw_fd(), key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Names in a directory (without "." and "..").
fn list_dir(fd: &OwnedFd) -> nix::Result<Vec<Vec<u8>>> {
    let mut dir = Dir::from_fd(fd.try_clone().map_err(|_| Errno::EMFILE)?)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes `name` in `parent`, recursively for directories, never following symlinks.
fn remove_all(parent: BorrowedFd, name: &[u8]) -> nix::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        other => return other,
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(parent, name, flags, Mode::empty())?;
    for child in list_dir(&fd)? {
        remove_all(fd.as_fd(), &child)?;
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

/// A PAX time, "1700000000.123456789" (seconds, optional fraction).
fn parse_pax_time(s: &str) -> Option<TimeSpec> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos: i64 = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    // "-1.25" is 1.25 s before the epoch: -2 s + 0.75 s.
    Some(if s.starts_with('-') && nanos > 0 {
        TimeSpec::new(secs - 1, 1_000_000_000 - nanos)
    } else {
        TimeSpec::new(secs, nanos)
    })
}
