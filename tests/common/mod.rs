//! Shared test helpers: a private `--root` per test, the podlab binary, a BusyBox root
//! filesystem, and leak checks. Tests run as root on the real kernel.
#![allow(dead_code)]

pub mod apiserver;
pub mod child;
pub mod etcd;
pub mod node;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The podlab binary under test; `PODLAB_BIN` overrides it (the cgroup v2 VM lane runs
/// copies of the binaries from a directory the VM can see).
pub fn podlab() -> String {
    std::env::var("PODLAB_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_podlab").to_string())
}

/// A test's own state directory (`--root`), removed at the end.
pub struct TestRoot {
    pub dir: PathBuf,
}

impl TestRoot {
    pub fn new(name: &str) -> TestRoot {
        let dir = PathBuf::from(format!("/tmp/podlab-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create test root");
        TestRoot { dir }
    }

    /// `podlab --root DIR ARGS...` as a Command.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(podlab());
        c.arg("--root").arg(&self.dir).args(args);
        c
    }

    /// Run podlab and collect its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run podlab")
    }

    /// A BusyBox root filesystem built by the recipe (via `podlab rootfs busybox`).
    pub fn rootfs(&self) -> PathBuf {
        let dest = self.dir.join("rootfs");
        if !dest.join("bin/sh").exists() {
            let out = self.run(&["rootfs", "busybox", dest.to_str().unwrap()]);
            assert!(out.status.success(), "rootfs build failed: {}", text(&out.stderr));
        }
        dest
    }

    /// Assert that nothing of this root is left: no records, no mounts below it.
    pub fn assert_clean(&self) {
        let records = self.dir.join("run/records");
        let left: Vec<_> =
            std::fs::read_dir(&records).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "records left behind in {}: {left:?}", records.display());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let ours: Vec<&str> = mounts.lines().filter(|l| l.contains(self.dir.to_str().unwrap())).collect();
        assert!(ours.is_empty(), "mounts left behind: {ours:#?}");
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A unique box id for this test.
pub fn box_id(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

/// Every directory of cgroup podlab/box-ID that still exists (v1: one per controller).
pub fn box_cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let rel = format!("podlab/box-{id}");
    let mut found = Vec::new();
    for base in cgroup_bases() {
        let d = base.join(&rel);
        if d.exists() {
            found.push(d);
        }
    }
    found
}

/// The roots of the cgroup trees: /sys/fs/cgroup on v2, each controller's mount on v1.
pub fn cgroup_bases() -> Vec<PathBuf> {
    if is_cgroup2() {
        return vec![PathBuf::from("/sys/fs/cgroup")];
    }
    // Every v1 hierarchy (podlab makes its cgroups in all of them), not the v2 "unified" one.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mounts
        .lines()
        .filter(|l| l.split(" - ").nth(1).is_some_and(|t| t.starts_with("cgroup ")))
        .filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .filter(|p| p.starts_with("/sys/fs/cgroup"))
        .collect()
}

pub fn is_cgroup2() -> bool {
    nix_statfs_is_cgroup2("/sys/fs/cgroup")
}

fn nix_statfs_is_cgroup2(path: &str) -> bool {
    let out = Command::new("stat").args(["-fc", "%T", path]).output().expect("stat");
    text(&out.stdout).trim() == "cgroup2fs"
}

/// The directory of controller `controller` (v1) or the unified tree (v2) for `rel`.
pub fn cgroup_dir(controller: &str, rel: &str) -> PathBuf {
    if is_cgroup2() {
        Path::new("/sys/fs/cgroup").join(rel)
    } else {
        Path::new("/sys/fs/cgroup").join(controller).join(rel)
    }
}

/// Wait until `cond` holds or `secs` pass.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}
