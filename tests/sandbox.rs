//! The pod sandbox: a pause process holding the pod's namespaces, seen from outside.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{text, wait_until};
use podlab::pod::sandbox::{Sandbox, SandboxSpec};
use podlab::primitives::proc;

/// A pause process that is stopped even when the test fails half-way.
struct Pause(Sandbox);

impl std::ops::Deref for Pause {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.0
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        let _ = self.0.stop(Duration::from_secs(2));
    }
}

fn start(spec: &SandboxSpec) -> Pause {
    Pause(Sandbox::start_from(Path::new(&common::podlab()), spec).expect("start the pause process"))
}

fn ns(pid: i32, name: &str) -> u64 {
    proc::ns_inode(pid, name).unwrap()
}

/// Run `cmd` inside the sandbox's namespaces with nsenter (as a container joins them).
fn nsenter(sb: &Pause, args: &[&str], cmd: &[&str]) -> String {
    let out = Command::new("nsenter").arg("-t").arg(sb.pid.to_string()).args(args).args(cmd).output().unwrap();
    assert!(out.status.success(), "nsenter {args:?} {cmd:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn pause_holds_new_namespaces_and_exits_on_sigterm() {
    let me = std::process::id() as i32;
    let sb =
        start(&SandboxSpec { hostname: "web-0".into(), network: true, share_pid: false, cgroup: None, netns: None });
    assert!(sb.alive());
    for name in ["net", "ipc", "uts"] {
        assert_ne!(ns(sb.pid, name), ns(me, name), "{name} namespace is not new");
    }
    assert_eq!(ns(sb.pid, "pid"), ns(me, "pid"), "no pid namespace without shareProcessNamespace");
    assert_eq!(ns(sb.pid, "mnt"), ns(me, "mnt"), "the pause has no root filesystem of its own");
    assert_eq!(nsenter(&sb, &["--uts"], &["hostname"]).trim(), "web-0");
    // Only loopback, and it is up.
    let links = nsenter(&sb, &["--net"], &["ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    assert_eq!(sb.ns_path("net"), Path::new(&format!("/proc/{}/ns/net", sb.pid)));
    // The pause is podlab, non-dumpable, from a read-only copy.
    assert_eq!(proc::comm(sb.pid).as_deref(), Some("pause"));
    sb.stop(Duration::from_secs(5)).unwrap();
    assert!(!sb.alive());
}

#[test]
fn shared_pid_namespace_makes_pause_pid_1_and_it_reaps_orphans() {
    let sb =
        start(&SandboxSpec { hostname: "shared".into(), network: false, share_pid: true, cgroup: None, netns: None });
    assert_ne!(ns(sb.pid, "pid"), ns(std::process::id() as i32, "pid"));
    assert_eq!(ns(sb.pid, "net"), ns(std::process::id() as i32, "net"), "hostNetwork: the host's network namespace");
    assert_eq!(
        proc::status_field(sb.pid, "NSpid").map(|s| s.split_whitespace().last().unwrap_or("").to_string()),
        Some("1".into())
    );
    // An orphan in the pod's pid namespace (its parent exits at once) is reparented to the
    // pause, which must reap it: no zombie stays.
    let said = nsenter(&sb, &["--pid"], &["sh", "-c", "sleep 0.5 </dev/null >/dev/null 2>&1 & echo started"]);
    assert_eq!(said.trim(), "started");
    // The orphaned sleep is now the pause's child.
    let children = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
            .filter(|p| proc::status_field(*p, "PPid").as_deref() == Some(&sb.pid.to_string()))
            .count()
    };
    let sleeps: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|p| proc::comm(*p).as_deref() == Some("sleep"))
        .map(|p| format!("{p} ppid={:?} nspid={:?}", proc::status_field(p, "PPid"), proc::status_field(p, "NSpid")))
        .collect();
    assert!(children() >= 1, "the orphan was not reparented to the pause {}: {sleeps:?}", sb.pid);
    // Once it exits it must be reaped: a child left behind would be a zombie of the pause.
    assert!(wait_until(5, || children() == 0), "the pause did not reap its orphaned child");
    sb.stop(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_bad_hostname_is_refused_before_anything_starts() {
    let err = Sandbox::start_from(
        Path::new(&common::podlab()),
        &SandboxSpec { hostname: "Not_Valid!".into(), ..Default::default() },
    )
    .unwrap_err();
    assert!(err.to_string().contains("Not_Valid!"), "{err}");
}
