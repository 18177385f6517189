//! Changing the root directory: chroot and pivot_root.
//!
//! `chroot DIR` changes where "/" resolves for one process, but the old root stays
//! reachable (a root process can climb out). `pivot_root` instead swaps the whole mount
//! namespace's root for a mount point, after which the old root can be unmounted so it is
//! gone, not hidden. Containers use pivot_root inside a private mount namespace.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result, SysContext};
use crate::explain;

/// `chroot DIR; cd /`.
pub fn chroot(dir: &Path) -> Result<()> {
    explain::say(format!("chroot {}", dir.display()));
    nix::unistd::chroot(dir).sys(|| format!("chroot {}", dir.display()))?;
    nix::unistd::chdir("/").sys(|| "chdir /".to_string())
}

/// Make `new_root` the root of the caller's mount namespace and detach the old root.
///
/// Must run in a private mount namespace. `new_root` is bind-mounted on itself first
/// because pivot_root needs a mount point. Uses `pivot_root . .`: the old root ends up
/// stacked under the new one at "/", and the lazy unmount of "." removes it.
pub fn pivot_root(new_root: &Path) -> Result<()> {
    if !new_root.is_dir() {
        return Err(Error::Missing(format!("root filesystem {} is not a directory", new_root.display())));
    }
    super::mount::bind(new_root, new_root, false)?;
    pivot_into(new_root)
}

/// pivot_root into `new_root`, which must already be a mount point (the runtime bind-mounts
/// the rootfs recursively and mounts the spec's mounts under it before pivoting).
pub fn pivot_into(new_root: &Path) -> Result<()> {
    explain::say(format!("cd {}", new_root.display()));
    nix::unistd::chdir(new_root).sys(|| format!("chdir {}", new_root.display()))?;
    explain::say("pivot_root . .");
    nix::unistd::pivot_root(".", ".").sys(|| format!("pivot_root {}", new_root.display()))?;
    explain::say("umount -l .   # detach the old root, now stacked under the new one");
    nix::mount::umount2(".", MntFlags::MNT_DETACH).sys(|| "umount the old root".to_string())?;
    nix::unistd::chdir("/").sys(|| "chdir /".to_string())?;
    // Keep the new root private too, so nothing mounted here propagates anywhere.
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .sys(|| "make the new root private".to_string())
}
