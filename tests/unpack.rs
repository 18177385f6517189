//! Integration tests of the layer unpacker. They run as root on the real kernel: they create
//! device nodes, set trusted.* xattrs and mount overlayfs in a private mount namespace.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use podlab::image::unpack::{Compression, Limits, Report, Whiteouts, unpack};
use tar::{EntryType, Header};

/// A directory under /tmp, removed when dropped.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let p = PathBuf::from(format!("/tmp/podlab-unpack-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Builds tar layers with raw headers, so hostile names go in unchecked.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }
    fn entry(
        &mut self,
        kind: EntryType,
        path: &str,
        link: &str,
        mode: u32,
        owner: (u64, u64),
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn file(&mut self, path: &str, data: &str) -> &mut Self {
        self.entry(EntryType::Regular, path, "", 0o644, (0, 0), data.as_bytes())
    }
    fn dir(&mut self, path: &str) -> &mut Self {
        self.entry(EntryType::Directory, path, "", 0o755, (0, 0), b"")
    }
    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Symlink, path, target, 0o777, (0, 0), b"")
    }
    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entry(EntryType::Link, path, target, 0o644, (0, 0), b"")
    }
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.0.append_pax_extensions(records.iter().copied()).unwrap();
        self
    }
    fn bytes(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        self.0.get_ref().clone()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn run(tar: &[u8], target: &Path, mode: Whiteouts) -> podlab::Result<Report> {
    unpack(tar, Compression::None, target, mode, &Limits::default())
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given size.
    let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

/// All paths (and file contents) under `dir`, to prove it was not touched.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            out.push((p.clone(), Vec::new()));
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), fs::read(&p).unwrap_or_default()));
        }
    }
    out.sort();
    out
}

fn basic_layer() -> Vec<u8> {
    let mut l = Layer::new();
    l.entry(EntryType::Directory, "./", "", 0o750, (0, 0), b"")
        .dir("etc/")
        .entry(EntryType::Regular, "etc/hello", "", 0o640, (1000, 1001), b"hello\n")
        .entry(EntryType::Directory, "bin/", "", 0o755, (0, 0), b"")
        .entry(EntryType::Regular, "bin/su", "", 0o4755, (0, 0), b"#!/bin/true\n")
        .entry(EntryType::Regular, "bin/owned-su", "", 0o6755, (1000, 1000), b"x")
        .entry(EntryType::Directory, "tmp/", "", 0o1777, (0, 0), b"")
        .symlink("bin/sh", "/bin/busybox")
        .symlink("bin/up", "../../..")
        .hardlink("bin/hello2", "etc/hello")
        .entry(EntryType::Fifo, "run/fifo", "", 0o600, (1000, 1000), b"")
        .pax(&[("SCHILY.xattr.user.podlab", b"yes")])
        .file("etc/xattr", "x")
        .file("././deep//nested/file", "implicit parents");
    l.bytes()
}

fn check_basic(root: &Path, report: &Report) {
    let m = |p: &str| fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(fs::read_to_string(root.join("etc/hello")).unwrap(), "hello\n");
    assert_eq!((m("etc/hello").mode() & 0o7777, m("etc/hello").uid(), m("etc/hello").gid()), (0o640, 1000, 1001));
    assert_eq!(m("etc/hello").mtime(), 1_600_000_000);
    assert_eq!(m("bin/su").mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(m("bin/owned-su").mode() & 0o7777, 0o6755, "chmod after chown keeps setuid/setgid");
    assert_eq!(m("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(m("etc").mtime(), 1_600_000_000, "directory mtime applied after its content");
    assert_eq!(m("").mode() & 0o7777, 0o750, "the ./ entry sets the root's mode");
    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    assert_eq!(fs::read_link(root.join("bin/up")).unwrap(), Path::new("../../.."));
    assert_eq!(m("bin/sh").mtime(), 1_600_000_000);
    assert_eq!(m("bin/hello2").ino(), m("etc/hello").ino());
    assert_eq!(m("etc/hello").nlink(), 2);
    assert!(m("run/fifo").file_type().is_fifo());
    assert_eq!((m("run/fifo").mode() & 0o7777, m("run/fifo").uid()), (0o600, 1000));
    assert_eq!(m("run").mode() & 0o7777, 0o755, "implicit parent");
    assert_eq!(fs::read_to_string(root.join("deep/nested/file")).unwrap(), "implicit parents");
    match get_xattr(&root.join("etc/xattr"), "user.podlab") {
        Some(v) => assert_eq!(v, b"yes"),
        None => assert!(report.warnings.iter().any(|w| w.contains("user.podlab")), "{:?}", report.warnings),
    }
    assert_eq!(report.entries, 13);
}

#[test]
fn normal_entries_plain_gzip_zstd() {
    let tmp = Tmp::new("basic");
    let tar = basic_layer();
    let variants = [
        (Compression::None, tar.clone()),
        (Compression::Gzip, gzip(&tar)),
        (Compression::Zstd, zstd::encode_all(tar.as_slice(), 3).unwrap()),
    ];
    for (i, (c, blob)) in variants.iter().enumerate() {
        assert_eq!(Compression::sniff(blob), *c);
        let dir = tmp.sub(&format!("v{i}"));
        let report = unpack(blob.as_slice(), *c, &dir, Whiteouts::Overlay, &Limits::default()).unwrap();
        check_basic(&dir, &report);
        assert_eq!(report.bytes, tar.len() as u64 - 512); // reading stops at the first zero block
    }
}

#[test]
fn media_types() {
    use Compression::*;
    assert_eq!(Compression::from_media_type("application/vnd.oci.image.layer.v1.tar"), None);
    assert_eq!(Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip"), Gzip);
    assert_eq!(Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"), Gzip);
    assert_eq!(Compression::from_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"), Zstd);
    assert_eq!(Compression::sniff(b"ustar"), None);
}

#[test]
fn overlay_whiteouts_and_real_mount() {
    let tmp = Tmp::new("overlay");
    let (lower, upper, merged) = (tmp.sub("lower"), tmp.sub("upper"), tmp.sub("merged"));
    let l1 = Layer::new()
        .dir("a/")
        .file("a/old", "old")
        .dir("b/")
        .file("b/keep", "k")
        .file("b/gone", "g")
        .file("gone", "g")
        .dir("c/")
        .file("c/old", "old")
        .dir("d/")
        .file("d/old", "old")
        .bytes();
    let l2 = Layer::new()
        .file(".wh.gone", "")
        .dir("a/")
        .file("a/.wh..wh..opq", "")
        .file("a/new", "new")
        .file("b/.wh.gone", "")
        .dir("c/") // a directory of this layer, then whited out: stays, but opaque
        .file("c/new", "new")
        .file(".wh.c", "")
        .file(".wh.d", "") // whiteout first, then a new directory: opaque too
        .dir("d/")
        .pax(&[("SCHILY.xattr.trusted.overlay.opaque", b"y")])
        .dir("b/")
        .bytes();
    run(&l1, &lower, Whiteouts::Overlay).unwrap();
    let report = run(&l2, &upper, Whiteouts::Overlay).unwrap();
    assert!(is_whiteout(&upper.join("gone")));
    assert!(is_whiteout(&upper.join("b/gone")));
    assert!(!upper.join(".wh.gone").exists() && !upper.join("a/.wh..wh..opq").exists());
    for d in ["a", "c", "d"] {
        assert_eq!(get_xattr(&upper.join(d), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]), "{d}");
    }
    assert_eq!(get_xattr(&upper.join("b"), "trusted.overlay.opaque"), None, "forged overlay xattr refused");
    assert!(report.warnings.iter().any(|w| w.contains("trusted.overlay.opaque")), "{:?}", report.warnings);

    // Stack them with overlayfs in a private mount namespace and look through.
    let script = format!(
        "set -e; mount -t overlay overlay -o lowerdir={u}:{l} {m}; cd {m}; \
         test ! -e gone; test ! -e a/old; test -f a/new; test -f b/keep; test ! -e b/gone; \
         test -f c/new; test ! -e c/old; test -d d; test ! -e d/old; echo ok",
        u = upper.display(),
        l = lower.display(),
        m = merged.display()
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            let flags = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE;
            nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)?;
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_eq!(fs::read_dir(&merged).unwrap().count(), 0, "the mount stayed in the child's namespace");
}

#[test]
fn apply_mode_flattens_layers() {
    let tmp = Tmp::new("apply");
    let root = tmp.sub("root");
    let l1 = Layer::new()
        .dir("a/")
        .file("a/old", "old")
        .dir("a/sub/")
        .file("a/sub/deep", "deep")
        .dir("a/lower/")
        .file("a/lower/x", "x")
        .dir("gone/")
        .file("gone/x", "x")
        .file("f", "f")
        .dir("same/")
        .file("same/x", "x")
        .dir("x/")
        .file("x/y", "y")
        .file("z", "z")
        .bytes();
    let l2 = Layer::new()
        .dir("a/")
        .file("a/new", "new")
        .file("a/sub/fresh", "fresh")
        .file("a/.wh..wh..opq", "")
        .file("a/later", "later")
        .file(".wh.gone", "")
        .file(".wh.f", "")
        .file(".wh.never-existed", "")
        .file("same/y", "y")
        .file(".wh.same", "")
        .file("nodir/.wh.x", "")
        .file("x", "now a file")
        .dir("z/")
        .file("z/w", "w")
        .bytes();
    run(&l1, &root, Whiteouts::Apply).unwrap();
    run(&l2, &root, Whiteouts::Apply).unwrap();
    let mut names: Vec<String> =
        snapshot(&root).into_iter().map(|(p, _)| p.strip_prefix(&root).unwrap().display().to_string()).collect();
    names.sort();
    // Opaque "a": lower content gone, this layer's entries (before and after the marker) kept.
    // ".wh.same" in the same layer as "same/y": lower "same/x" deleted, "same/y" kept.
    assert_eq!(names, ["a", "a/later", "a/new", "a/sub", "a/sub/fresh", "same", "same/y", "x", "z", "z/w"]);
    assert!(!root.join(".wh.gone").exists());
}

#[test]
fn hostile_entries_stay_inside() {
    let tmp = Tmp::new("hostile");
    let outside = tmp.sub("OUTSIDE");
    fs::write(outside.join("canary"), "canary").unwrap();
    let before = snapshot(&outside);
    let passwd = fs::read("/etc/passwd").unwrap();
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    let out = outside.display().to_string();
    let mut n = 0;
    let mut target = || {
        n += 1;
        tmp.sub(&format!("t{n}"))
    };
    let err = |tar: &[u8], t: &Path, mode: Whiteouts| run(tar, t, mode).unwrap_err().to_string();

    for (path, mode) in [("../x", Whiteouts::Overlay), ("a/../../x", Whiteouts::Apply), ("ok/..", Whiteouts::Overlay)] {
        let e = err(&Layer::new().file(path, "x").bytes(), &target(), mode);
        assert_eq!(e, format!("layer entry {path:?}: path leaves the layer (\"..\")"));
    }

    // Absolute paths are made relative, as tar does.
    let t = target();
    run(&Layer::new().file("/etc/podlab-unpack-test", "x").bytes(), &t, Whiteouts::Overlay).unwrap();
    assert!(t.join("etc/podlab-unpack-test").is_file());
    assert!(!Path::new("/etc/podlab-unpack-test").exists());

    // A symlink out of the layer, then an entry through it: never written outside.
    for mode in [Whiteouts::Overlay, Whiteouts::Apply] {
        let t = target();
        let res = run(&Layer::new().symlink("evil", &out).file("evil/pwned", "pwned").bytes(), &t, mode);
        // Refused: the link resolves (inside the layer) to a directory the layer does not have.
        let e = res.unwrap_err().to_string();
        assert_eq!(e, "layer entry \"evil/pwned\": parent \"evil\" is a symlink to a directory missing from the layer");
        assert!(!outside.join("pwned").exists());
        let t = target();
        run(&Layer::new().symlink("evil", &out).dir(&out[1..]).file("evil/pwned", "p").bytes(), &t, mode).unwrap();
        assert_eq!(fs::read_to_string(t.join(&out[1..]).join("pwned")).unwrap(), "p", "resolved inside the layer");
    }
    // `a -> /etc` then `a/passwd`: lands on the layer's etc/passwd.
    let t = target();
    run(&Layer::new().dir("etc/").symlink("a", "/etc").file("a/passwd", "root::0:0").bytes(), &t, Whiteouts::Apply)
        .unwrap();
    assert_eq!(fs::read_to_string(t.join("etc/passwd")).unwrap(), "root::0:0");
    // A chain of ".." symlinks is clamped at the layer root.
    let t = target();
    let layer = Layer::new().symlink("a", "../../..").symlink("b", "a/../..").file("b/escaped", "e").bytes();
    run(&layer, &t, Whiteouts::Overlay).unwrap();
    assert!(t.join("escaped").is_file());
    assert!(!tmp.0.join("escaped").exists() && !Path::new("/escaped").exists());
    // Replacing the symlink with a file writes the file, not through the link.
    let t = target();
    run(&Layer::new().symlink("f", &format!("{out}/canary")).file("f", "mine").bytes(), &t, Whiteouts::Overlay)
        .unwrap();
    assert_eq!(fs::read_to_string(t.join("f")).unwrap(), "mine");

    // Hard links must point into the layer.
    let e = err(&Layer::new().hardlink("h", "/etc/passwd").bytes(), &target(), Whiteouts::Apply);
    assert_eq!(e, "layer entry \"h\": hard link target \"/etc/passwd\" is not in the layer");
    let e = err(&Layer::new().hardlink("h", "../outside").bytes(), &target(), Whiteouts::Apply);
    assert!(e.contains("path leaves the layer"), "{e}");
    let e = err(&Layer::new().symlink("s", "/etc").hardlink("h", "s/passwd").bytes(), &target(), Whiteouts::Apply);
    assert!(e.contains("is not in the layer"), "{e}");
    let e = err(&Layer::new().dir("d/").hardlink("h", "d").bytes(), &target(), Whiteouts::Apply);
    assert!(e.contains("hard link to a directory"), "{e}");
    // A hard link to a symlink links the symlink itself, never what it points to.
    let t = target();
    run(&Layer::new().symlink("s", "/etc/passwd").hardlink("h", "s").bytes(), &t, Whiteouts::Apply).unwrap();
    assert_eq!(fs::read_link(t.join("h")).unwrap(), Path::new("/etc/passwd"));

    // Whiteout names.
    for mode in [Whiteouts::Overlay, Whiteouts::Apply] {
        let e = err(&Layer::new().file(".wh...", "").bytes(), &target(), mode);
        assert_eq!(e, "layer entry \".wh...\": path leaves the layer (\"..\")");
        let e = err(&Layer::new().file("dir/.wh.../x", "").bytes(), &target(), mode);
        assert!(e.contains("a whiteout name cannot be a directory"), "{e}");
    }
    // Apply-mode whiteouts through a symlink act inside the layer only.
    let t = target();
    let layer = Layer::new().symlink("s", &out).file("s/.wh.canary", "").file("s/.wh..wh..opq", "").bytes();
    run(&layer, &t, Whiteouts::Apply).unwrap();

    // Devices are skipped with a warning; NUL bytes and long paths are refused.
    let t = target();
    let layer = Layer::new().entry(EntryType::Char, "dev/null", "", 0o666, (0, 0), b"").bytes();
    let report = run(&layer, &t, Whiteouts::Overlay).unwrap();
    assert!(!t.join("dev/null").exists());
    assert_eq!(
        report.warnings,
        ["layer entry \"dev/null\": device node skipped (containers get /dev from the runtime)"]
    );
    let e = err(&Layer::new().pax(&[("path", b"a\0b")]).file("a", "").bytes(), &target(), Whiteouts::Overlay);
    assert!(e.contains("NUL"), "{e}");
    let mut long = Layer::new();
    let name = "x/".repeat(2100) + "f";
    let mut h = Header::new_gnu();
    h.set_size(0);
    long.0.append_data(&mut h, &name, io::empty()).unwrap();
    let e = err(&long.bytes(), &target(), Whiteouts::Overlay);
    assert!(e.contains("path is longer than 4096 bytes"), "{e}");

    assert_eq!(snapshot(&outside), before, "the canary directory outside the layers is untouched");
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
}

/// Reader that counts how much of the compressed blob was consumed.
struct Tally<R>(R, Arc<AtomicU64>);

impl<R: Read> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[test]
fn gzip_bomb_stops_early() {
    let tmp = Tmp::new("bomb");
    let t = tmp.sub("t");
    // One 200 MiB file of zeros, as concatenated gzip members (gunzip reads them as one stream):
    // the header, then the same 1 MiB-of-zeros member 200 times. About 200 KiB compressed.
    let mut h = Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(200 << 20);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    let mut blob = gzip(h.as_bytes());
    let chunk = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..200 {
        blob.extend_from_slice(&chunk);
    }
    let used = Arc::new(AtomicU64::new(0));
    let limits = Limits { max_bytes: 64 << 20, ..Limits::default() };
    let reader = Tally(blob.as_slice(), used.clone());
    let e = unpack(reader, Compression::Gzip, &t, Whiteouts::Overlay, &limits).unwrap_err().to_string();
    assert_eq!(e, "layer exceeds 64 MiB uncompressed: refusing a possible decompression bomb");
    assert!(used.load(Ordering::Relaxed) < blob.len() as u64 / 2, "stopped early");
    assert!(fs::metadata(t.join("zeros")).unwrap().len() <= 64 << 20);
}

#[test]
fn too_many_entries() {
    let tmp = Tmp::new("entries");
    let mut l = Layer::new();
    for i in 0..20 {
        l.file(&format!("f{i}"), "");
    }
    let limits = Limits { max_entries: 10, ..Limits::default() };
    let e = unpack(l.bytes().as_slice(), Compression::None, &tmp.sub("t"), Whiteouts::Apply, &limits).unwrap_err();
    assert!(e.to_string().contains("more than 10 entries"), "{e}");
}

#[test]
fn huge_long_name_record_is_refused() {
    // A GNU long-name record is buffered in memory by the tar reader: it must be bounded.
    let tmp = Tmp::new("longname");
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::GNULongName);
    h.set_path("././@LongLink").unwrap();
    h.set_size(8 << 20);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.resize(512 + (8 << 20), b'a');
    let e = run(&tar, &tmp.sub("t"), Whiteouts::Overlay).unwrap_err().to_string();
    assert!(e.contains("larger than 1024 KiB"), "{e}");
}

#[test]
fn corrupt_and_truncated_archives() {
    let tmp = Tmp::new("corrupt");
    let tar = Layer::new().file("a", &"x".repeat(10_000)).file("b", "b").bytes();
    let e = run(&tar[..3000], &tmp.sub("t1"), Whiteouts::Overlay).unwrap_err().to_string();
    assert_eq!(e, "layer entry \"a\": archive is truncated (file content ends early)");
    let mut bad = tar.clone();
    bad[10] ^= 0xff; // inside the first header's name: the checksum no longer matches
    let e = run(&bad, &tmp.sub("t2"), Whiteouts::Overlay).unwrap_err().to_string();
    assert!(e.contains("corrupt or truncated") && e.contains("checksum"), "{e}");
    let gz = gzip(&tar);
    let e = unpack(&gz[..gz.len() / 2], Compression::Gzip, &tmp.sub("t3"), Whiteouts::Overlay, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    let e = unpack(&tar[..], Compression::Gzip, &tmp.sub("t4"), Whiteouts::Overlay, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupt or truncated"), "{e}");
    let missing = tmp.0.join("missing");
    let e = run(&tar, &missing, Whiteouts::Overlay).unwrap_err().to_string();
    assert!(e.starts_with("cannot open layer directory"), "{e}");
}
