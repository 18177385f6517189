//! The binary that enters the container must not be writable from inside it (CVE-2019-5736).
//!
//! The container's init starts as a copy of podlab itself (a re-exec, so it is a fresh
//! single-threaded process). In 2019 runc learned the hard way that this is dangerous: a
//! process in the container can open `/proc/PID/exe` of a runtime process that entered it
//! (or make the runtime exec `/proc/self/exe` through a `#!` line), keep that handle, and write
//! to the runtime's binary on the host once it exits — the next container start runs the
//! attacker's code as root on the host.
//!
//! podlab re-executes itself through a **read-only, detached bind mount of its own binary**:
//! `open_tree(OPEN_TREE_CLONE)` clones the mount of just that one file, `mount_setattr` makes
//! the clone read-only, and `execve("/proc/self/fd/N")` runs it. `/proc/PID/exe` then points
//! into a read-only mount that exists nowhere in any mount table, so opening it for writing
//! fails with EROFS however the handle was obtained. It costs two system calls (no copy). On
//! kernels without `mount_setattr` (before 5.12) podlab falls back to runc's fix: a sealed
//! memfd copy of the binary (`memfd_create` + `F_SEAL_WRITE`). The init also makes itself
//! non-dumpable, so container processes cannot open its `/proc/PID/*` at all.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::explain;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A handle on a copy of podlab's own binary that cannot be written through; exec it with
/// [`path_of`].
pub fn sealed_self() -> Result<OwnedFd> {
    sealed(Path::new("/proc/self/exe"))
}

/// The same for another podlab binary (tests start the real `podlab`, not themselves).
pub fn sealed(binary: &Path) -> Result<OwnedFd> {
    if let Ok(fd) = read_only_clone(binary) {
        return Ok(fd);
    }
    // open_tree clones only mounts of our own mount namespace. `/proc/self/exe` still points
    // into the namespace the binary was started in (a pod supervisor has since made its own):
    // the same file by its path is in ours. A binary deleted since it started has no path.
    if let Ok(path) = std::fs::read_link(binary)
        && path.is_absolute()
        && path.exists()
        && let Ok(fd) = read_only_clone(&path)
    {
        return Ok(fd);
    }
    sealed_memfd(binary)
}

/// The path that execs the binary behind `fd` (`/proc/self/fd/N`, resolved by execve).
pub fn path_of(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn read_only_clone(binary: &Path) -> Result<OwnedFd> {
    let path = std::ffi::CString::new(binary.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid(format!("{} contains a NUL byte", binary.display())))?;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree takes a NUL-terminated path and flags; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::sys(format!("open_tree {}", binary.display()), nix::errno::Errno::last()));
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: mount_setattr reads `size` bytes of `attr`, a live repr(C) struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(Error::sys("mount_setattr read-only", nix::errno::Errno::last()));
    }
    // Said once it worked: a failed attempt falls back to another way, explained in its turn.
    explain::say(format!(
        "open_tree({}, OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_RDONLY)   # a read-only copy of podlab's binary to re-exec",
        binary.display()
    ));
    Ok(fd)
}

fn sealed_memfd(binary: &Path) -> Result<OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    explain::say(format!(
        "memfd_create podlab + copy {} + F_SEAL_WRITE   # a sealed copy to re-exec",
        binary.display()
    ));
    let fd = memfd_create(c"podlab", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .map_err(|e| Error::sys("memfd_create", e))?;
    let mut out = File::from(fd);
    let mut exe = File::open(binary).ctx("open", binary)?;
    std::io::copy(&mut exe, &mut out).ctx("copy into a memfd", binary)?;
    let seals = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
    fcntl(&out, FcntlArg::F_ADD_SEALS(seals)).map_err(|e| Error::sys("seal the memfd copy", e))?;
    Ok(OwnedFd::from(out))
}

/// Make this process non-dumpable: its /proc/PID files (exe, fd, mem, environ) are then
/// only for processes with CAP_SYS_PTRACE, which containers do not get. exec of the
/// container's program resets it.
pub fn set_non_dumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).map_err(|e| Error::sys("prctl(PR_SET_DUMPABLE, 0)", e))
}
