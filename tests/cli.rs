//! The command line around the labs and boxes: doctor, completions, rootfs, reset.

mod common;

use common::*;

#[test]
fn doctor_checks_this_machine() {
    let t = TestRoot::new("doctor");
    let out = t.run(&["doctor"]);
    let stdout = text(&out.stdout);
    for name in ["root", "kernel", "namespaces", "cgroups", "overlayfs", "iptables", "commands", "busybox-static"] {
        assert!(stdout.contains(name), "doctor does not report {name}:\n{stdout}");
    }
    let version = if is_cgroup2() { "v2 (unified)" } else { "v1" };
    assert!(stdout.contains(version), "doctor names the cgroup version {version}:\n{stdout}");
    // The test machines are set up by scripts/install-deps.sh: every check passes.
    assert!(out.status.success(), "doctor found a problem on the test machine:\n{stdout}");
    assert!(stdout.contains("this machine can run podlab"));
}

#[test]
fn doctor_says_what_to_fix() {
    // With an empty PATH the required commands are missing: a FAIL line and a fix line.
    let t = TestRoot::new("doctor-fix");
    let out = t.cmd(&["doctor"]).env("PATH", "/nonexistent").output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] commands"), "{stdout}");
    assert!(stdout.contains("fix: apt-get install"), "{stdout}");
}

#[test]
fn completions_for_bash() {
    let t = TestRoot::new("completions");
    let out = t.run(&["completions", "bash"]);
    assert!(out.status.success());
    let script = text(&out.stdout);
    assert!(script.contains("complete") && script.contains("podlab"));
    for sub in ["box", "lab", "doctor", "reset"] {
        assert!(script.contains(sub), "completions lack {sub}");
    }
}

#[test]
fn rootfs_recipe_builds_a_working_busybox() {
    let t = TestRoot::new("rootfs");
    let rootfs = t.rootfs();
    for f in ["bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp"] {
        assert!(rootfs.join(f).exists(), "{f} missing from the BusyBox root filesystem");
    }
    let out =
        std::process::Command::new("chroot").arg(&rootfs).args(["/bin/sh", "-c", "echo hi; id -u"]).output().unwrap();
    assert_eq!(text(&out.stdout), "hi\n0\n", "{}", text(&out.stderr));
    // A bare recipe name works for --rootfs and is built under the state dir.
    let out = t.run(&["box", "--rootfs", "busybox", "--ns", "mnt,pid", "--", "cat", "/etc/hostname"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(t.dir.join("lib/rootfs/busybox/bin/busybox").exists());
    let bad = t.run(&["rootfs", "alpine", t.dir.join("x").to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(text(&bad.stderr).contains("no recipe named \"alpine\""), "{}", text(&bad.stderr));
}

#[test]
fn reset_with_nothing_to_do() {
    let t = TestRoot::new("reset-empty");
    let out = t.run(&["reset"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("nothing to remove"), "{}", text(&out.stdout));
}
