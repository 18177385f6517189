//! The cgroup backends on the real kernel (v1 on the dev hosts, v2 in the VM lane and on
//! classroom machines): create, limit, read back, join, count, remove.

mod common;

use std::process::{Command, Stdio};

use podlab::primitives::cgroup::{self, Cgroup, Limits, Version};

fn name(test: &str) -> String {
    format!("podlab/t{}-{test}", std::process::id())
}

#[test]
fn the_detected_version_matches_the_mounted_file_system() {
    let expected = if common::is_cgroup2() { Version::V2 } else { Version::V1 };
    assert_eq!(cgroup::detect(), expected);
    assert_eq!(cgroup::backend().version(), expected);
}

#[test]
fn limits_are_written_and_read_back() {
    let cg = Cgroup::new(name("limits")).unwrap();
    cg.create().unwrap();
    assert!(cg.exists());
    cg.apply(&Limits {
        cpu_millis: Some(250),
        cpu_shares: Some(512),
        memory_bytes: Some(48 << 20),
        swap_off: true,
        pids: Some(33),
    })
    .unwrap();
    let b = cg.backend();
    assert_eq!(b.cpu_quota(cg.rel()).unwrap(), (Some(25_000), 100_000));
    assert_eq!(b.memory_limit(cg.rel()).unwrap(), Some(48 << 20));
    assert!(b.swap_off(cg.rel()).unwrap());
    let pids_max = cg.dirs().iter().map(|d| d.join("pids.max")).find(|f| f.exists()).unwrap();
    assert_eq!(std::fs::read_to_string(pids_max).unwrap().trim(), "33");
    let weight_file = if b.version() == Version::V2 { "cpu.weight" } else { "cpu.shares" };
    let weight = cg.dirs().iter().map(|d| d.join(weight_file)).find(|f| f.exists()).unwrap();
    let expected = if b.version() == Version::V2 { cgroup::shares_to_weight(512).to_string() } else { "512".into() };
    assert_eq!(std::fs::read_to_string(weight).unwrap().trim(), expected);
    cg.remove().unwrap();
    assert!(!cg.exists());
}

#[test]
fn join_counts_and_remove_kills_what_is_left() {
    let cg = Cgroup::new(name("join")).unwrap();
    cg.create().unwrap();
    cg.apply(&Limits { memory_bytes: Some(64 << 20), ..Limits::default() }).unwrap();
    // Memory is charged where it is allocated: start the real work only once inside.
    let mut child = Command::new("sh").args(["-c", "read x; exec sleep 60"]).stdin(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    cg.join(pid).unwrap();
    drop(child.stdin.take());
    assert!(common::wait_until(5, || podlab::primitives::proc::comm(pid).as_deref() == Some("sleep")));
    assert_eq!(cg.procs(), vec![pid]);
    assert_eq!(cg.backend().cgroup_of(pid).unwrap(), std::path::PathBuf::from(name("join")));
    let stats = cg.stats();
    assert_eq!(stats.pids, Some(1));
    assert!(stats.memory_bytes.is_some_and(|m| m > 0), "{stats:?}");
    assert!(stats.cpu_usage_ns.is_some(), "{stats:?}");
    assert_eq!(stats.oom_kills, 0);
    cg.remove().unwrap();
    // remove() killed the sleep: reap it and see SIGKILL.
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    assert!(!cg.exists());
}

#[test]
fn oom_kills_are_counted() {
    let cg = Cgroup::new(name("oom")).unwrap();
    cg.create().unwrap();
    cg.apply(&Limits { memory_bytes: Some(16 << 20), swap_off: true, ..Limits::default() }).unwrap();
    // dd's 64 MiB buffer cannot fit in 16 MiB: the kernel kills it.
    let mut child = Command::new("sh")
        .args(["-c", "read x; exec dd if=/dev/zero of=/dev/null bs=64M count=1"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    cg.join(child.id() as i32).unwrap();
    drop(child.stdin.take()); // EOF: `read` returns and dd starts inside the cgroup
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status:?}");
    assert!(cg.stats().oom_kills >= 1, "{:?}", cg.stats());
    cg.remove().unwrap();
}

#[test]
fn nested_cgroups_are_removed_children_first() {
    let parent = Cgroup::new(name("tree")).unwrap();
    let child = Cgroup::new(format!("{}/a/b", name("tree"))).unwrap();
    child.create().unwrap();
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    child.join(sleeper.id() as i32).unwrap();
    assert_eq!(parent.procs(), vec![sleeper.id() as i32], "procs() sees the whole tree");
    parent.remove().unwrap();
    sleeper.wait().unwrap();
    assert!(!parent.exists() && !child.exists());
}

#[test]
fn explain_lines_name_the_real_files() {
    // One test owns the process-wide explanation recorder.
    podlab::explain::start_recording();
    let cg = Cgroup::new(name("explain")).unwrap();
    cg.create().unwrap();
    cg.apply(&Limits { cpu_millis: Some(500), ..Limits::default() }).unwrap();
    let said = podlab::explain::take_recorded();
    cg.remove().unwrap();
    let ours: Vec<&String> = said.iter().filter(|l| l.contains(&name("explain"))).collect();
    let quota_line = ours.iter().find(|l| l.contains("cpu.cfs_quota_us") || l.contains("cpu.max")).unwrap();
    let (value, file) = quota_line.strip_prefix("echo ").unwrap().split_once(" > ").unwrap();
    let expected = if file.ends_with("cpu.max") { "'50000 100000'" } else { "50000" };
    assert_eq!(value, expected, "{quota_line}");
    assert!(ours.iter().any(|l| l.starts_with("mkdir /sys/fs/cgroup/")), "{ours:?}");
}
