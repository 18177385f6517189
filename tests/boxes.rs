//! `podlab box` isolation, clean-up and errors, seen from outside.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn pid_inside_is_1_and_proc_shows_only_the_box() {
    let t = TestRoot::new("pid1");
    let rootfs = t.rootfs();
    let out = t.run(&[
        "box",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--ns",
        "pid,mnt",
        "--",
        "sh",
        "-c",
        "echo pid=$$; ls /proc | grep -c '^[0-9]'",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("pid=1\n"), "stdout: {stdout}");
    // sh (pid 1), ls and grep at most: never the host's hundreds of processes.
    let count: usize = stdout.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(count <= 3, "the box's /proc lists {count} processes");
    t.assert_clean();
}

#[test]
fn proc_is_private_without_a_rootfs_too() {
    let t = TestRoot::new("procnoroot");
    let out = t.run(&["box", "--ns", "pid,mnt", "--", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].parse::<usize>().unwrap() <= 3, "{stdout}");
    // The host's /proc is untouched: our own pid is still there.
    assert!(std::path::Path::new(&format!("/proc/{}", std::process::id())).exists());
    t.assert_clean();
}

#[test]
fn hostname_differs_and_the_host_keeps_its_own() {
    let t = TestRoot::new("uts");
    let host_before = nix::unistd::gethostname().unwrap();
    let out = t.run(&["box", "--ns", "uts", "--hostname", "boxy", "--", "hostname"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "boxy");
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
    t.assert_clean();
}

#[test]
fn all_namespaces_differ_from_the_host() {
    let t = TestRoot::new("allns");
    let out = t.run(&[
        "box",
        "--all-ns",
        "--",
        "sh",
        "-c",
        "for n in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$n; done",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    for line in text(&out.stdout).lines() {
        let kind = line.split(':').next().unwrap();
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        assert_ne!(host.to_str().unwrap(), line, "{kind} namespace is the host's");
    }
    // Only loopback in the new network namespace, and it is up.
    let out = t.run(&["box", "--ns", "net", "--", "cat", "/sys/class/net/lo/operstate", "/proc/net/dev"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let ifaces: Vec<&str> = stdout.lines().skip(3).map(|l| l.split(':').next().unwrap().trim()).collect();
    assert_eq!(ifaces, vec!["lo"], "{stdout}");
    t.assert_clean();
}

#[test]
fn pivot_root_leaves_no_old_root() {
    let t = TestRoot::new("pivot");
    let rootfs = t.rootfs();
    let out = t.run(&["box", "--rootfs", rootfs.to_str().unwrap(), "--all-ns", "--", "cat", "/proc/self/mountinfo"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let table = text(&out.stdout);
    // Only the new root and what we mounted into it: /, /proc, /dev (+ nodes), /sys.
    for line in table.lines() {
        let point = line.split(' ').nth(4).unwrap();
        assert!(
            point == "/" || point.starts_with("/proc") || point.starts_with("/dev") || point.starts_with("/sys"),
            "unexpected mount {point} inside the box:\n{table}"
        );
    }
    assert!(!table.contains(" - ext4 ") || table.lines().count() < 15, "{table}");
    t.assert_clean();
}

#[test]
fn exit_status_is_passed_through() {
    let t = TestRoot::new("exit");
    let out = t.run(&["box", "--ns", "pid", "--", "sh", "-c", "exit 42"]);
    assert_eq!(out.status.code(), Some(42));
    let out = t.run(&["box", "--ns", "pid", "--", "sh", "-c", "kill -9 $$"]);
    // pid 1 cannot be killed by SIGKILL from inside: sh survives to exit normally or reports it.
    assert!(out.status.code().is_some());
    t.assert_clean();
}

#[test]
fn explain_says_what_really_happened() {
    let t = TestRoot::new("explain");
    let id = box_id("explain");
    let out = t.run(&[
        "box",
        "--explain",
        "--id",
        &id,
        "--ns",
        "uts,pid,mnt",
        "--hostname",
        "explained",
        "--memory",
        "64Mi",
        "--",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let err = text(&out.stderr);
    let said: Vec<&str> = err.lines().filter_map(|l| l.strip_prefix("$ ")).collect();
    let mem_file = if is_cgroup2() { "memory.max" } else { "memory.limit_in_bytes" };
    let limit_line =
        said.iter().find(|l| l.ends_with(mem_file)).unwrap_or_else(|| panic!("no limit line in {said:#?}"));
    assert!(limit_line.starts_with("echo 67108864 > /sys/fs/cgroup/"), "{limit_line}");
    assert!(limit_line.contains(&format!("podlab/box-{id}/")), "{limit_line}");
    assert!(said.contains(&"hostname explained"), "{said:#?}");
    assert!(said.iter().any(|l| l.starts_with("unshare ") && l.contains("--uts") && l.contains("--pid")), "{said:#?}");
    assert!(said.contains(&"mount --make-rprivate /"), "{said:#?}");
    assert!(said.contains(&"exec cat /proc/self/cgroup"), "{said:#?}");
    // The command really ran in the cgroup the explanation named.
    let cgroups = text(&out.stdout);
    assert!(cgroups.contains(&format!("/podlab/box-{id}")), "{cgroups}");
    t.assert_clean();
}

#[test]
fn sigint_and_kill_9_leave_nothing_behind() {
    let t = TestRoot::new("signals");
    // Ctrl-C (SIGINT to podlab): the box is stopped and removed, exit 130.
    let id = box_id("sigint");
    let mut child = t.cmd(&["box", "--id", &id, "--ns", "pid", "--", "sleep", "100"]).spawn().unwrap();
    assert!(wait_until(10, || !box_cgroup_dirs(&id).is_empty()));
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGINT).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(box_cgroup_dirs(&id).is_empty());
    t.assert_clean();

    // kill -9 of podlab: the box dies with it (parent-death signal), the record stays,
    // and `podlab reset` removes the cgroup and the record.
    let id = box_id("kill9");
    let mut child =
        t.cmd(&["box", "--id", &id, "--ns", "pid", "--", "sleep", "100"]).stderr(Stdio::null()).spawn().unwrap();
    assert!(wait_until(10, || !box_cgroup_dirs(&id).is_empty()));
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!box_cgroup_dirs(&id).is_empty(), "after kill -9 the cgroup is still there (until reset)");
    let procs_file = box_cgroup_dirs(&id)[0].join("cgroup.procs");
    assert!(
        wait_until(5, || std::fs::read_to_string(&procs_file).unwrap_or_default().trim().is_empty()),
        "the box's processes died with podlab"
    );
    let out = t.run(&["reset"]);
    assert!(out.status.success(), "reset: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("box-{id}")), "{}", text(&out.stdout));
    assert!(box_cgroup_dirs(&id).is_empty());
    t.assert_clean();
}

#[test]
fn bad_input_names_the_problem_and_leaves_nothing() {
    let t = TestRoot::new("badinput");
    let cases: [(&[&str], &str); 6] = [
        (&["box", "--memory", "lots", "--", "true"], "invalid memory quantity \"lots\""),
        (&["box", "--cpus", "-1", "--", "true"], "invalid cpu quantity"),
        (&["box", "--ns", "pid,time", "--", "true"], "unknown namespace \"time\""),
        (&["box", "--rootfs", "/nonexistent/rootfs", "--", "true"], "/nonexistent/rootfs"),
        (&["box", "--hostname", "x", "--", "true"], "--hostname needs its own UTS namespace"),
        (&["box", "--id", "Bad/Id", "--", "true"], "--id"),
    ];
    for (args, expected) in cases {
        let out = t.run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: expected {expected:?} in {err}");
    }
    // A command missing from the root filesystem: 127 and a message naming it.
    let rootfs = t.rootfs();
    let out = t.run(&["box", "--rootfs", rootfs.to_str().unwrap(), "--ns", "pid,mnt", "--", "/bin/nope"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.contains("/bin/nope") && err.contains("No such file"), "{err}");
    t.assert_clean();
}

#[test]
fn user_namespace_maps_root_to_root_only() {
    let t = TestRoot::new("userns");
    let out = t.run(&["box", "--ns", "user,pid,mnt", "--", "sh", "-c", "cat /proc/self/uid_map; id -u"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let words: Vec<&str> = stdout.split_whitespace().collect();
    // One id mapped (root to root) instead of the host's whole 0..2^32 range.
    assert_eq!(words, ["0", "0", "1", "0"], "{stdout}");
    let host = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    assert!(host.contains("4294967295"), "the host's map is untouched: {host}");
    t.assert_clean();
}

#[test]
fn dev_has_shm_a_private_pts_and_mqueue() {
    let t = TestRoot::new("dev");
    let rootfs = t.rootfs();
    let script = "echo x > /dev/shm/f && cat /dev/shm/f; test -c /dev/pts/ptmx && echo pts; \
                  test -L /dev/fd && echo fd; echo err > /dev/stderr; \
                  grep -E ' /dev/(shm|pts|mqueue) ' /proc/self/mountinfo | cut -d' ' -f5,9 | sort";
    let out = t.run(&["box", "--rootfs", rootfs.to_str().unwrap(), "--all-ns", "--", "sh", "-c", script]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "x\npts\nfd\n/dev/mqueue mqueue\n/dev/pts devpts\n/dev/shm tmpfs\n");
    assert!(text(&out.stderr).ends_with("err\n"));
    // The box's pseudo-terminals are its own: the host's /dev/pts has no podlab mount.
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(rootfs.to_str().unwrap()));
    t.assert_clean();
}
