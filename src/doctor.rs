//! `podlab doctor`: can this machine build pods from primitives?
//!
//! Each check looks at the real system (the effective user, /proc, /sys/fs/cgroup, the
//! commands on PATH) and says what to do when something is missing, so a learner on a
//! fresh VM knows the next step instead of meeting a cryptic EPERM later.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::primitives::cgroup::{self, Version};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check: what was looked at, what was found, what to do about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

fn check(name: &'static str, ok: bool, detail: String, fix: &str) -> Check {
    Check { name, status: if ok { Status::Ok } else { Status::Fail }, detail, fix: (!ok).then(|| fix.to_string()) }
}

/// Run every check.
pub fn run_checks() -> Vec<Check> {
    vec![root(), kernel(), namespaces(), user_namespaces(), cgroups(), overlay(), iptables(), commands(), busybox()]
}

fn root() -> Check {
    let euid = nix::unistd::geteuid();
    check("root", euid.is_root(), format!("effective uid {euid}"), "run podlab as root: sudo podlab ...")
}

fn kernel() -> Check {
    let release = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    check(
        "kernel",
        (major, minor) >= (5, 4),
        format!("Linux {release}"),
        "podlab needs Linux 5.4 or newer (cgroup v2 features, pidfd); upgrade the kernel",
    )
}

fn namespaces() -> Check {
    let missing: Vec<&str> = ["pid", "mnt", "uts", "ipc", "net", "cgroup", "user"]
        .into_iter()
        .filter(|ns| !Path::new(&format!("/proc/self/ns/{ns}")).exists())
        .collect();
    check(
        "namespaces",
        missing.is_empty(),
        if missing.is_empty() {
            "pid mnt uts ipc net cgroup user".into()
        } else {
            format!("missing: {}", missing.join(" "))
        },
        "the kernel lacks namespace support (CONFIG_*_NS); use a distribution kernel",
    )
}

fn user_namespaces() -> Check {
    let max: u64 =
        fs::read_to_string("/proc/sys/user/max_user_namespaces").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let apparmor = fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if max == 0 {
        return check(
            "user namespaces",
            false,
            "user.max_user_namespaces = 0".into(),
            "sysctl -w user.max_user_namespaces=15000",
        );
    }
    if apparmor {
        return Check {
            name: "user namespaces",
            status: Status::Warn,
            detail: "AppArmor restricts unprivileged user namespaces (Ubuntu 24.04 default); root is not affected"
                .into(),
            fix: Some("for rootless experiments: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0".into()),
        };
    }
    check("user namespaces", true, format!("allowed (max {max})"), "")
}

fn cgroups() -> Check {
    let version = cgroup::detect();
    let (ok, detail) = match version {
        Version::V2 => {
            let have = fs::read_to_string(Path::new(cgroup::ROOT).join("cgroup.controllers")).unwrap_or_default();
            let missing: Vec<&str> =
                cgroup::v2::CONTROLLERS.into_iter().filter(|c| !have.split_whitespace().any(|h| h == *c)).collect();
            (missing.is_empty(), format!("v2 (unified); controllers: {}", have.trim()))
        }
        Version::V1 => {
            let missing: Vec<&str> =
                cgroup::v1::CONTROLLERS.into_iter().filter(|c| cgroup::v1::dir(c, Path::new("")).is_none()).collect();
            let detail = if missing.is_empty() {
                "v1 (hybrid or legacy); cpu cpuacct memory pids mounted".to_string()
            } else {
                format!("v1; missing controllers: {}", missing.join(" "))
            };
            (missing.is_empty(), detail)
        }
    };
    check(
        "cgroups",
        ok,
        detail,
        "mount the missing controllers, or boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2",
    )
}

fn overlay() -> Check {
    let listed = fs::read_to_string("/proc/filesystems").map(|f| f.contains("\toverlay")).unwrap_or(false);
    let module = Path::new("/sys/module/overlay").exists();
    let loadable = !listed
        && !module
        && Command::new("modprobe").args(["-n", "overlay"]).output().is_ok_and(|o| o.status.success());
    check(
        "overlayfs",
        listed || module || loadable,
        if listed || module {
            "available".into()
        } else if loadable {
            "module can be loaded".into()
        } else {
            "not available".into()
        },
        "modprobe overlay (Debian/Ubuntu kernels ship it)",
    )
}

fn iptables() -> Check {
    match Command::new("iptables").arg("--version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let backend = if text.contains("nf_tables") {
                "nft"
            } else if text.contains("legacy") {
                "legacy"
            } else {
                "unknown"
            };
            check("iptables", true, format!("{text} (backend: {backend})"), "")
        }
        _ => check("iptables", false, "iptables not found".into(), "apt-get install iptables"),
    }
}

fn commands() -> Check {
    let missing: Vec<&str> =
        ["ip", "unshare", "nsenter", "mount", "chroot", "sh"].into_iter().filter(|c| !on_path(c)).collect();
    check(
        "commands",
        missing.is_empty(),
        if missing.is_empty() {
            "ip unshare nsenter mount chroot sh".into()
        } else {
            format!("missing: {}", missing.join(" "))
        },
        "apt-get install iproute2 util-linux mount coreutils (or run scripts/install-deps.sh)",
    )
}

fn busybox() -> Check {
    check(
        "busybox-static",
        Path::new("/bin/busybox").exists(),
        "/bin/busybox for the lab root filesystems".into(),
        "apt-get install busybox-static",
    )
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file())).unwrap_or(false)
}
