//! Mounts: attaching file systems to the tree.
//!
//! `mount` attaches a file system (proc, sysfs, tmpfs, overlay...) or another part of the
//! tree (a bind mount) at a directory. Each mount namespace has its own table, and
//! "propagation" decides whether mounts made in one namespace appear in others: making
//! `/` recursively private (`mount --make-rprivate /`) keeps a container's mounts inside.
//! overlayfs stacks read-only lower directories under a writable upper one: image layers.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result, SysContext};
use crate::explain;

fn mount_raw(source: &str, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    nix::mount::mount(Some(source), target, fstype, flags, data).sys(|| {
        format!("mount {} on {} ({})", fstype.unwrap_or(source), target.display(), data.unwrap_or("no options"))
    })
}

/// `mount -t FSTYPE -o DATA SOURCE TARGET` with raw mount flags: the general form the
/// runtime uses for the mounts a config.json lists.
pub fn mount_fs(source: &str, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    mount_fs_as(source, target, target, fstype, flags, data)
}

/// [`mount_fs`] onto `target` (often `/proc/self/fd/N`, an fd opened safely inside a root
/// filesystem) while explaining it with the path a person would type, `shown`.
pub fn mount_fs_as(
    source: &str,
    target: &Path,
    shown: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let mut opts = flag_names(flags);
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        opts = if opts.is_empty() { d.to_string() } else { format!("{opts},{d}") };
    }
    explain::say(format!(
        "mount{}{} {source} {}",
        fstype.map(|t| format!(" -t {t}")).unwrap_or_default(),
        if opts.is_empty() { String::new() } else { format!(" -o {opts}") },
        shown.display()
    ));
    mount_raw(source, target, fstype, flags, data).map_err(|e| match e {
        Error::Sys { source: errno, .. } => Error::sys(
            format!("mount {} on {} ({})", fstype.unwrap_or(source), shown.display(), data.unwrap_or("no options")),
            errno,
        ),
        other => other,
    })
}

/// Mount flags as `mount -o` names them, comma-separated ("" for none).
pub fn flag_names(flags: MsFlags) -> String {
    let list: Vec<&str> = FLAG_NAMES.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| *n).collect();
    list.join(",")
}

const FLAG_NAMES: [(MsFlags, &str); 10] = [
    (MsFlags::MS_REMOUNT, "remount"),
    (MsFlags::MS_BIND, "bind"),
    (MsFlags::MS_RDONLY, "ro"),
    (MsFlags::MS_NOSUID, "nosuid"),
    (MsFlags::MS_NODEV, "nodev"),
    (MsFlags::MS_NOEXEC, "noexec"),
    (MsFlags::MS_NOATIME, "noatime"),
    (MsFlags::MS_RELATIME, "relatime"),
    (MsFlags::MS_STRICTATIME, "strictatime"),
    (MsFlags::MS_SYNCHRONOUS, "sync"),
];

/// `mount --make-rprivate PATH` (or `--make-private` when not recursive).
pub fn make_private(path: &Path, recursive: bool) -> Result<()> {
    let flag = if recursive { "--make-rprivate" } else { "--make-private" };
    explain::say(format!("mount {flag} {}", path.display()));
    let mut flags = MsFlags::MS_PRIVATE;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
        .sys(|| format!("make {} private", path.display()))
}

/// `mount -t proc proc TARGET`: shows the processes of the caller's pid namespace.
pub fn proc(target: &Path) -> Result<()> {
    explain::say(format!("mount -t proc proc {}", target.display()));
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_raw("proc", target, Some("proc"), flags, None)
}

/// `mount -t sysfs sysfs TARGET` (read-only, as containers get it).
pub fn sysfs(target: &Path) -> Result<()> {
    explain::say(format!("mount -t sysfs -o ro sysfs {}", target.display()));
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    mount_raw("sysfs", target, Some("sysfs"), flags, None)
}

/// `mount -t tmpfs -o OPTIONS tmpfs TARGET` (options like `size=16m,mode=755`).
pub fn tmpfs(target: &Path, options: Option<&str>) -> Result<()> {
    match options {
        Some(o) => explain::say(format!("mount -t tmpfs -o {o} tmpfs {}", target.display())),
        None => explain::say(format!("mount -t tmpfs tmpfs {}", target.display())),
    }
    mount_raw("tmpfs", target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, options)
}

/// `mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts TARGET`: a private set of
/// pseudo-terminals, so the box's terminals are not the host's.
pub fn devpts(target: &Path) -> Result<()> {
    let options = "newinstance,ptmxmode=0666,mode=0620";
    explain::say(format!("mount -t devpts -o {options} devpts {}", target.display()));
    mount_raw("devpts", target, Some("devpts"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some(options))
}

/// `mount -t mqueue mqueue TARGET`: POSIX message queues of the caller's IPC namespace.
pub fn mqueue(target: &Path) -> Result<()> {
    explain::say(format!("mount -t mqueue mqueue {}", target.display()));
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_raw("mqueue", target, Some("mqueue"), flags, None)
}

/// `mount --bind SOURCE TARGET`, then `mount -o remount,bind,ro TARGET` when `readonly`
/// (the kernel ignores MS_RDONLY on the first bind call, so read-only takes a remount).
pub fn bind(source: &Path, target: &Path, readonly: bool) -> Result<()> {
    explain::say(format!("mount --bind {} {}", source.display(), target.display()));
    let src = source.to_str().ok_or_else(|| Error::invalid(format!("path {:?} is not UTF-8", source)))?;
    mount_raw(src, target, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    if readonly {
        explain::say(format!("mount -o remount,bind,ro {}", target.display()));
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .sys(|| format!("remount {} read-only", target.display()))?;
    }
    Ok(())
}

/// `mount -t overlay overlay -o lowerdir=L1:L2,upperdir=U,workdir=W TARGET`. The first
/// lower directory is the top one. Without upper and work the overlay is read-only.
pub fn overlay(lower: &[PathBuf], upper_work: Option<(&Path, &Path)>, target: &Path) -> Result<()> {
    if lower.is_empty() {
        return Err(Error::invalid("overlay needs at least one lower directory"));
    }
    for dir in lower {
        // ':' and ',' separate overlay options; such paths cannot be passed safely.
        if dir.to_string_lossy().contains([':', ',']) {
            return Err(Error::invalid(format!("overlay layer path {} contains ':' or ','", dir.display())));
        }
    }
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let mut options = format!("lowerdir={}", lowers.join(":"));
    if let Some((upper, work)) = upper_work {
        options.push_str(&format!(",upperdir={},workdir={}", upper.display(), work.display()));
    }
    explain::say(format!("mount -t overlay overlay -o {options} {}", target.display()));
    mount_raw("overlay", target, Some("overlay"), MsFlags::empty(), Some(&options))
}

/// `umount [-l] TARGET`; unmounting something that is not mounted is not an error.
pub fn unmount(target: &Path, lazy: bool) -> Result<()> {
    explain::say(format!("umount {}{}", if lazy { "-l " } else { "" }, target.display()));
    let flags = if lazy { MntFlags::MNT_DETACH } else { MntFlags::empty() };
    match nix::mount::umount2(target, flags) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::sys(format!("umount {}", target.display()), e)),
    }
}

/// One line of /proc/PID/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Where it is mounted (as the reading process sees it).
    pub mount_point: PathBuf,
    /// The directory of the source file system that is mounted there (bind mounts: the subdir).
    pub root: PathBuf,
    /// Per-mount options (`rw`, `ro`, `nosuid`...).
    pub options: String,
    /// Propagation tags (`shared:1`, `master:2`); empty for private mounts.
    pub propagation: String,
    /// File system type (`proc`, `overlay`, `tmpfs`, `ext4`...).
    pub fstype: String,
    /// Source (`overlay`, `/dev/vda`...).
    pub source: String,
    /// Super-block options (for overlay: `lowerdir=...,upperdir=...`).
    pub super_options: String,
}

impl MountInfo {
    /// Whether the mount is read-only.
    pub fn readonly(&self) -> bool {
        self.options.split(',').any(|o| o == "ro")
    }
}

/// Parse the mount table of a process (`pid` None: our own).
pub fn mountinfo(pid: Option<i32>) -> Result<Vec<MountInfo>> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/mountinfo"),
        None => "/proc/self/mountinfo".to_string(),
    };
    let text = fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.splitn(3, ' ').collect();
    Some(MountInfo {
        root: unescape(l.get(3)?).into(),
        mount_point: unescape(l.get(4)?).into(),
        options: l.get(5)?.to_string(),
        propagation: l.get(6..).map(|t| t.join(" ")).unwrap_or_default(),
        fstype: r.first()?.to_string(),
        source: unescape(r.get(1)?),
        super_options: r.get(2).map(|s| unescape(s)).unwrap_or_default(),
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal `\040`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points at or below `dir` in our own table, deepest first (the order to
/// unmount them in).
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut points: Vec<PathBuf> =
        mountinfo(None)?.into_iter().map(|m| m.mount_point).filter(|p| p.starts_with(dir)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    Ok(points)
}

/// Unmount everything at or below `dir` (lazily), deepest first.
pub fn unmount_all_under(dir: &Path) -> Result<()> {
    // A path can be mounted over several times: repeat until none is left.
    for _ in 0..16 {
        let points = mounts_under(dir)?;
        if points.is_empty() {
            return Ok(());
        }
        for p in points {
            unmount(&p, true)?;
        }
    }
    Err(Error::invalid(format!("mounts under {} keep coming back", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let line = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";
        let m = parse_mountinfo_line(line).unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt 2"));
        assert_eq!(m.root, PathBuf::from("/mnt1"));
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.propagation, "master:1");
        assert_eq!(m.super_options, "rw,errors=continue");
        assert!(!m.readonly());
    }
}
