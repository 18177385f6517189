//! `podlab box` resource limits on the real kernel: OOM kill, CPU quota, pids limit.
//! These run on the host (cgroup v1 here) and again in the cgroup v2 VM lane.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

/// These tests measure or load the CPU (a busy loop, a fork bomb): run them one at a time,
/// so one does not steal the CPU time another measures.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn memory_limit_oom_kills_with_137_and_says_so() {
    let _serial = serial();
    let t = TestRoot::new("oom");
    let rootfs = t.rootfs();
    let id = box_id("oom");
    // dd allocates its 64 MiB block buffer and fills it: over the 32Mi limit.
    let out = t.run(&[
        "box",
        "--id",
        &id,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--all-ns",
        "--memory",
        "32Mi",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "stderr: {err}");
    assert!(err.contains("killed by the OOM killer"), "stderr: {err}");
    assert!(err.contains("32Mi"), "the message names the limit: {err}");
    assert!(box_cgroup_dirs(&id).is_empty(), "cgroup left: {:?}", box_cgroup_dirs(&id));
    t.assert_clean();
}

#[test]
fn under_the_memory_limit_nothing_is_killed() {
    let _serial = serial();
    let t = TestRoot::new("nooom");
    let rootfs = t.rootfs();
    let out = t.run(&[
        "box",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--ns",
        "pid,mnt",
        "--memory",
        "64Mi",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=8M",
        "count=4",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("OOM"));
    t.assert_clean();
}

/// Find the cgroup dir of a running box by its id, waiting for it to appear.
fn wait_for_cgroup(controller: &str, id: &str) -> std::path::PathBuf {
    let dir = cgroup_dir(controller, &format!("podlab/box-{id}"));
    assert!(
        wait_until(10, || dir.join("cgroup.procs").exists()
            && !std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().trim().is_empty()),
        "box cgroup {} never got processes",
        dir.display()
    );
    dir
}

fn cpu_usage_ns(id: &str) -> u64 {
    if is_cgroup2() {
        let stat = std::fs::read_to_string(cgroup_dir("cpu", &format!("podlab/box-{id}")).join("cpu.stat")).unwrap();
        let us: u64 = stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).unwrap().trim().parse().unwrap();
        us * 1000
    } else {
        let f = cgroup_dir("cpuacct", &format!("podlab/box-{id}")).join("cpuacct.usage");
        std::fs::read_to_string(f).unwrap().trim().parse().unwrap()
    }
}

#[test]
fn half_a_cpu_is_half_a_cpu() {
    let _serial = serial();
    let t = TestRoot::new("cpu");
    let id = box_id("cpu");
    let mut child = t
        .cmd(&["box", "--id", &id, "--ns", "pid", "--cpus", "0.5", "--", "sh", "-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_cgroup("cpu", &id);
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_usage_ns(&id);
    let start = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = (cpu_usage_ns(&id) - before) as f64 / start.elapsed().as_nanos() as f64;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!((used - 0.5).abs() <= 0.05, "a busy loop under --cpus 0.5 used {used:.3} CPU");
    assert_eq!(status.code(), Some(143), "SIGTERM ends the box with 128+15");
    assert!(box_cgroup_dirs(&id).is_empty(), "cgroup left: {:?}", box_cgroup_dirs(&id));
    t.assert_clean();
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let _serial = serial();
    let t = TestRoot::new("pids");
    let rootfs = t.rootfs();
    let id = box_id("pids");
    let mut child = t
        .cmd(&[
            "box",
            "--id",
            &id,
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--ns",
            "pid,mnt",
            "--pids",
            "20",
            "--",
            "sh",
            "-c",
            "bomb() { bomb | bomb & }; bomb; sleep 30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = wait_for_cgroup("pids", &id);
    std::thread::sleep(Duration::from_secs(2));
    let current: u64 = std::fs::read_to_string(dir.join("pids.current")).unwrap().trim().parse().unwrap();
    let events = std::fs::read_to_string(dir.join("pids.events")).unwrap();
    let refused: u64 = events.lines().find_map(|l| l.strip_prefix("max ")).unwrap_or("0").trim().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(current <= 20, "pids.current = {current} over the limit of 20");
    assert!(refused > 0, "the kernel never refused a fork: pids.events = {events:?}");
    assert_eq!(status.code(), Some(143));
    assert!(box_cgroup_dirs(&id).is_empty(), "cgroup left after the fork bomb: {:?}", box_cgroup_dirs(&id));
    t.assert_clean();
}
