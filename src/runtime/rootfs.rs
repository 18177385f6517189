//! The container's root filesystem: the spec's mounts, /dev, pivot_root, masked paths.
//!
//! In its new mount namespace the init makes `/` a slave (host mounts may still propagate in,
//! nothing propagates out), bind-mounts the bundle's rootfs onto itself and mounts every entry
//! of `mounts` under it (proc, sysfs, tmpfs /dev, devpts, mqueue, the cgroup tree, binds), makes
//! the standard device nodes in /dev, then pivots into it. Inside, `maskedPaths` are covered
//! (files with /dev/null, directories with an empty read-only tmpfs) and `readonlyPaths` are
//! remounted read-only, so /proc/kcore, /proc/sys and friends stay out of reach.
//!
//! The rootfs comes from an image, which anyone may have written. A symlink planted at a mount
//! destination (`/proc -> /`) must not redirect a mount onto the host (CVE-2021-30465), so every
//! destination is created and opened with `openat2(RESOLVE_IN_ROOT)` — the kernel resolves
//! `..` and symlinks as if the rootfs were `/` — and the mount goes onto that open file through
//! `/proc/self/fd/N`. /proc and /sys must be real directories (no symlink anywhere on the way)
//! and are checked to be procfs/sysfs after mounting.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::mount::MsFlags;
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespaceType, Mount, Spec};

use super::init::{CreateJob, Step, step};
use crate::error::{Error, Result};
use crate::explain;
use crate::primitives::mount as pmount;

/// The device nodes every container gets (runc's list): null, zero, full, random, urandom, tty.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// Mount everything, make /dev, pivot_root, mask. Runs in the container's pid 1.
/// `before_pivot` runs once everything is mounted, before pivot_root (the hooks' moment).
pub fn setup(job: &CreateJob, before_pivot: &mut dyn FnMut() -> Step<()>) -> Step<()> {
    let spec = &job.spec;
    let has_ns = |t: LinuxNamespaceType| {
        spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).is_some_and(|n| n.iter().any(|ns| ns.typ() == t))
    };
    if !has_ns(LinuxNamespaceType::Mount) {
        return Err(("set up the root filesystem".into(), Error::invalid("the spec needs a mount namespace"), 1));
    }
    let root = &job.rootfs;
    step("set mount propagation", propagation(spec))?;
    step("bind-mount the rootfs", pmount::bind(root, root, false))?;
    let root_fd = step("open the rootfs", open_root(root))?;
    let mut dev_is_bind = false;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination().to_string_lossy().to_string();
        if m.destination() == Path::new("/dev") && is_bind(m) {
            dev_is_bind = true;
        }
        step(
            &format!("mount {dest} (mounts[{i}])"),
            mount_one(&root_fd, root, &job.bundle, m, has_ns(LinuxNamespaceType::Cgroup)),
        )?;
    }
    if !dev_is_bind {
        step("create device nodes", devices(&root_fd, root, spec, has_ns(LinuxNamespaceType::User)))?;
        step("create /dev links", dev_links(&root_fd))?;
    }
    drop(root_fd);
    before_pivot()?;
    step("pivot_root", crate::primitives::chroot::pivot_into(root))?;
    let linux = spec.linux().as_ref();
    for path in linux.and_then(|l| l.readonly_paths().as_ref()).into_iter().flatten() {
        step(&format!("make {path} read-only"), readonly(Path::new(path)))?;
    }
    for path in linux.and_then(|l| l.masked_paths().as_ref()).into_iter().flatten() {
        step(&format!("mask {path}"), mask(Path::new(path)))?;
    }
    Ok(())
}

/// After the console is set up: make `/` read-only when `root.readonly` says so.
pub fn finish(spec: &Spec) -> Step<()> {
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        step("make the root read-only", remount(Path::new("/"), MsFlags::MS_RDONLY))?;
    }
    Ok(())
}

fn propagation(spec: &Spec) -> Result<()> {
    let wanted = spec.linux().as_ref().and_then(|l| l.rootfs_propagation().clone());
    let flags = match wanted.as_deref() {
        None | Some("") | Some("rslave") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some("slave") => MsFlags::MS_SLAVE,
        Some("private") => MsFlags::MS_PRIVATE,
        Some("rprivate") => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        Some("shared") => MsFlags::MS_SHARED,
        Some("rshared") => MsFlags::MS_SHARED | MsFlags::MS_REC,
        Some("unbindable") => MsFlags::MS_UNBINDABLE,
        Some("runbindable") => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        Some(other) => {
            return Err(Error::invalid(format!("linux.rootfsPropagation {other:?} is not a propagation mode")));
        }
    };
    explain::say(format!("mount --make-{} /", wanted.as_deref().unwrap_or("rslave")));
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(|e| Error::sys("set the propagation of /", e))
}

fn open_root(root: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::io("open", root, e.into()))
}

/// Mount flags and the remaining data string from a mount's options.
pub(crate) struct Options {
    pub flags: MsFlags,
    pub clear: MsFlags,
    pub propagation: MsFlags,
    pub data: Vec<String>,
    pub bind: bool,
    pub recursive: bool,
}

pub(crate) fn parse_options(options: &[String]) -> Options {
    let mut o = Options {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: Vec::new(),
        bind: false,
        recursive: false,
    };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                o.propagation |= match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "shared" => MsFlags::MS_SHARED,
                    "slave" => MsFlags::MS_SLAVE,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                if opt.starts_with('r') {
                    o.propagation |= MsFlags::MS_REC;
                }
                continue;
            }
            // Options runc accepts that change nothing here.
            "tmpcopyup" | "defaults" => continue,
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags |= set;
        o.flags &= !clear;
        o.clear |= clear;
    }
    o
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

fn mount_one(root_fd: &OwnedFd, root: &Path, bundle: &Path, m: &Mount, cgroup_ns: bool) -> Result<()> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(Error::invalid(format!("mount destination {} is not absolute", dest.display())));
    }
    let typ = m.typ().clone().unwrap_or_default();
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let shown = root.join(dest.strip_prefix("/").unwrap_or(dest));
    if is_bind(m) {
        let source = m
            .source()
            .as_ref()
            .ok_or_else(|| Error::invalid(format!("bind mount {} has no source", dest.display())))?;
        let source = if source.is_absolute() { source.clone() } else { bundle.join(source) };
        let meta = std::fs::metadata(&source).map_err(|e| Error::io("find the bind source", &source, e))?;
        let target = resolve(root_fd, dest, if meta.is_dir() { Kind::Dir } else { Kind::File }, false)?;
        let at = fd_path(&target);
        let mut flags = MsFlags::MS_BIND;
        if opts.recursive {
            flags |= MsFlags::MS_REC;
        }
        explain::say(format!(
            "mount --{} {} {}",
            if opts.recursive { "rbind" } else { "bind" },
            source.display(),
            shown.display()
        ));
        nix::mount::mount(Some(&source), at.as_str(), None::<&str>, flags, None::<&str>)
            .map_err(|e| Error::sys(format!("bind {} on {}", source.display(), shown.display()), e))?;
        // The fd still holds what is under the new mount: open the mount itself.
        let target = resolve(root_fd, dest, if meta.is_dir() { Kind::Dir } else { Kind::File }, false)?;
        let at = fd_path(&target);
        if !opts.flags.is_empty() {
            // A bind mount takes its flags only on a remount; keep the ones the source has locked.
            let locked = locked_flags(&source);
            explain::say(format!("mount -o remount,bind,{} {}", flag_names(opts.flags), shown.display()));
            nix::mount::mount(
                None::<&str>,
                at.as_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | opts.flags | locked,
                None::<&str>,
            )
            .map_err(|e| Error::sys(format!("remount {} with {}", shown.display(), flag_names(opts.flags)), e))?;
        }
        return propagate(&at, &shown, opts.propagation);
    }
    if typ == "cgroup" || typ == "cgroup2" {
        let target = resolve(root_fd, dest, Kind::Dir, false)?;
        let reopen = || resolve(root_fd, dest, Kind::Dir, false);
        return super::cgroupfs::mount(&fd_path(&target), &shown, opts.flags, cgroup_ns, &reopen);
    }
    // proc and sysfs: no symlink anywhere on the way, and check what got mounted.
    let strict = typ == "proc" || typ == "sysfs";
    let target = resolve(root_fd, dest, Kind::Dir, strict)?;
    let at = fd_path(&target);
    let source = m.source().as_ref().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| typ.clone());
    let data = opts.data.join(",");
    pmount::mount_fs_as(&source, Path::new(&at), &shown, Some(&typ), opts.flags, Some(&data))?;
    let now = resolve(root_fd, dest, Kind::Dir, strict)?;
    if strict {
        let want = if typ == "proc" { nix::sys::statfs::PROC_SUPER_MAGIC } else { nix::sys::statfs::SYSFS_MAGIC };
        let fs = nix::sys::statfs::fstatfs(&now).map_err(|e| Error::sys(format!("statfs {}", shown.display()), e))?;
        if fs.filesystem_type() != want {
            return Err(Error::invalid(format!(
                "{} is not {typ} after mounting it: refusing to go on",
                shown.display()
            )));
        }
    }
    propagate(&fd_path(&now), &shown, opts.propagation)
}

fn propagate(at: &str, shown: &Path, flags: MsFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    explain::say(format!("mount --make-{flags:?} {}", shown.display()));
    nix::mount::mount(None::<&str>, at, None::<&str>, flags, None::<&str>)
        .map_err(|e| Error::sys(format!("set propagation of {}", shown.display()), e))
}

/// The flags a bind mount of `source` must keep (the kernel refuses to clear them in a remount
/// when they are locked, and they are a property of the source mount).
fn locked_flags(source: &Path) -> MsFlags {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let mut flags = MsFlags::empty();
    if let Ok(st) = statvfs(source) {
        let f = st.flags();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        ] {
            if f.contains(fs) {
                flags |= ms;
            }
        }
    }
    flags
}

fn flag_names(flags: MsFlags) -> String {
    let names = pmount::flag_names(flags);
    if names.is_empty() { "defaults".into() } else { names }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Dir,
    File,
}

/// `/proc/self/fd/N`: mounting there mounts onto exactly the file the fd holds.
fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn how(strict: bool) -> OpenHow {
    let mut resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    if strict {
        resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
    }
    OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC).resolve(resolve)
}

/// Open `dest` inside the root, creating missing directories (and the last component as a
/// file for `Kind::File`) on the way, every step resolved by the kernel inside the root.
fn resolve(root_fd: &OwnedFd, dest: &Path, kind: Kind, strict: bool) -> Result<OwnedFd> {
    let comps: Vec<&std::ffi::OsStr> = dest
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if dest.components().any(|c| c == Component::ParentDir) {
        return Err(Error::invalid(format!("mount destination {} contains \"..\"", dest.display())));
    }
    let mut path = PathBuf::from("/");
    for (i, name) in comps.iter().enumerate() {
        path.push(name);
        let last = i + 1 == comps.len();
        match openat2(root_fd, path.as_path(), how(strict)) {
            Ok(fd) => {
                if last {
                    return Ok(fd);
                }
                continue;
            }
            Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("open {} in the rootfs", path.display()), e)),
        }
        // Create it inside its (safely opened) parent.
        let parent = openat2(root_fd, path.parent().unwrap_or(Path::new("/")), how(strict))
            .map_err(|e| Error::sys(format!("open {} in the rootfs", path.display()), e))?;
        let dirfd = nix::fcntl::openat(&parent, ".", OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys(format!("open the parent of {}", path.display()), e))?;
        let made = if last && kind == Kind::File {
            nix::fcntl::openat(
                &dirfd,
                *name,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            nix::sys::stat::mkdirat(&dirfd, *name, Mode::from_bits_truncate(0o755))
        };
        match made {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("create {} in the rootfs", path.display()), e)),
        }
        let fd = openat2(root_fd, path.as_path(), how(strict))
            .map_err(|e| Error::sys(format!("open {} in the rootfs", path.display()), e))?;
        if last {
            return Ok(fd);
        }
    }
    // dest is "/" itself.
    openat2(root_fd, "/", how(strict)).map_err(|e| Error::sys("open the rootfs", e))
}

/// mknod the default and the spec's devices in the container's /dev (bind-mount them from the
/// host inside a user namespace, where mknod is not allowed).
fn devices(root_fd: &OwnedFd, root: &Path, spec: &Spec, userns: bool) -> Result<()> {
    let mut list: Vec<(String, SFlag, u64, u64, u32, u32, u32)> = DEFAULT_DEVICES
        .iter()
        .map(|(n, ma, mi)| (format!("/dev/{n}"), SFlag::S_IFCHR, *ma, *mi, 0o666, 0, 0))
        .collect();
    for d in spec.linux().as_ref().and_then(|l| l.devices().clone()).unwrap_or_default() {
        list.retain(|x| Path::new(&x.0) != d.path());
        list.push(spec_device(&d)?);
    }
    for (path, kind, major, minor, mode, uid, gid) in list {
        let dest = Path::new(&path);
        let parent = resolve(root_fd, dest.parent().unwrap_or(Path::new("/dev")), Kind::Dir, false)?;
        let dirfd = nix::fcntl::openat(&parent, ".", OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| Error::sys(format!("open the directory of {path}"), e))?;
        let name = dest.file_name().ok_or_else(|| Error::invalid(format!("device path {path} has no name")))?;
        let _ = nix::unistd::unlinkat(&dirfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        let shown = root.join(path.trim_start_matches('/'));
        if userns {
            let target = resolve(root_fd, dest, Kind::File, false)?;
            pmount::bind(Path::new(&path), Path::new(&fd_path(&target)), false)?;
            continue;
        }
        let kind_char = if kind == SFlag::S_IFBLK {
            'b'
        } else if kind == SFlag::S_IFIFO {
            'p'
        } else {
            'c'
        };
        explain::say(format!("mknod -m {mode:o} {} {kind_char} {major} {minor}", shown.display()));
        let dev = nix::sys::stat::makedev(major, minor);
        nix::sys::stat::mknodat(&dirfd, name, kind, Mode::from_bits_truncate(mode), dev)
            .map_err(|e| Error::sys(format!("mknod {}", shown.display()), e))?;
        // mknod applies the umask; set the exact mode and owner.
        nix::sys::stat::fchmodat(
            &dirfd,
            name,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .map_err(|e| Error::sys(format!("chmod {}", shown.display()), e))?;
        nix::unistd::fchownat(
            &dirfd,
            name,
            Some(uid.into()),
            Some(gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::sys(format!("chown {}", shown.display()), e))?;
    }
    Ok(())
}

type DeviceEntry = (String, SFlag, u64, u64, u32, u32, u32);

fn spec_device(d: &LinuxDevice) -> Result<DeviceEntry> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => return Err(Error::invalid(format!("device {} has type \"a\"", d.path().display()))),
    };
    if !d.path().starts_with("/dev") {
        return Err(Error::invalid(format!("device path {} is not under /dev", d.path().display())));
    }
    Ok((
        d.path().to_string_lossy().to_string(),
        kind,
        u64::try_from(d.major()).unwrap_or(0),
        u64::try_from(d.minor()).unwrap_or(0),
        d.file_mode().unwrap_or(0o666),
        d.uid().unwrap_or(0),
        d.gid().unwrap_or(0),
    ))
}

/// /dev/fd, stdin, stdout, stderr and /dev/ptmx → pts/ptmx.
fn dev_links(root_fd: &OwnedFd) -> Result<()> {
    let Ok(dev) = openat2(root_fd, "/dev", how(false)) else { return Ok(()) };
    let dirfd = nix::fcntl::openat(&dev, ".", OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys("open /dev in the rootfs", e))?;
    let mut links = vec![
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("core", "/proc/kcore")); // as runc does
    }
    for (link, to) in links {
        if link == "ptmx" {
            let _ = nix::unistd::unlinkat(&dirfd, link, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        explain::say(format!("ln -s {to} /dev/{link}"));
        match nix::unistd::symlinkat(to, &dirfd, link) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("symlink /dev/{link}"), e)),
        }
    }
    Ok(())
}

/// Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("look at", path, e)),
    };
    if meta.is_dir() {
        pmount::mount_fs("tmpfs", path, Some("tmpfs"), MsFlags::MS_RDONLY, None)
    } else {
        explain::say(format!("mount --bind /dev/null {}", path.display()));
        nix::mount::mount(Some("/dev/null"), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::sys(format!("mask {} with /dev/null", path.display()), e))
    }
}

/// Bind a path onto itself and remount it read-only.
fn readonly(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    explain::say(format!("mount --rbind {0} {0}", path.display()));
    nix::mount::mount(Some(path), path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| Error::sys(format!("bind {} onto itself", path.display()), e))?;
    remount(path, MsFlags::MS_RDONLY)
}

fn remount(path: &Path, flags: MsFlags) -> Result<()> {
    let locked = locked_flags(path);
    explain::say(format!("mount -o remount,bind,{} {}", flag_names(flags | locked), path.display()));
    nix::mount::mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked,
        None::<&str>,
    )
    .map_err(|e| Error::sys(format!("remount {} {}", path.display(), flag_names(flags)), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = parse_options(&[
            "nosuid".into(),
            "noexec".into(),
            "ro".into(),
            "mode=755".into(),
            "rbind".into(),
            "rslave".into(),
        ]);
        assert!(o.flags.contains(MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY));
        assert_eq!(o.data, vec!["mode=755".to_string()]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        let o = parse_options(&["ro".into(), "rw".into()]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
    }
}
