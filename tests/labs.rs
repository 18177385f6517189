//! Every lab: check fails on a clean machine, solve makes it pass, reset removes every
//! trace (processes, mounts, namespaces, links, cgroups, files). Labs use fixed names that
//! learners type (podlab/lab05, podlab-lab04-a...), so they run one at a time.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn lab_cycle(n: u8, extra_clean: impl Fn()) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new(&format!("lab{n:02}"));
    let num = n.to_string();
    // Start from nothing, whatever an earlier failed run left.
    assert!(t.run(&["lab", "reset", &num]).status.success());

    let before = t.run(&["lab", "check", &num]);
    assert_eq!(before.status.code(), Some(1), "check must fail before solve:\n{}", text(&before.stdout));
    assert!(text(&before.stdout).contains("FAIL"));
    assert!(text(&before.stdout).contains("hint:"), "failed points carry a hint");

    let solve = t.run(&["lab", "solve", &num]);
    assert!(solve.status.success(), "solve {n}: {}", text(&solve.stderr));
    assert!(text(&solve.stderr).lines().any(|l| l.starts_with("$ ")), "solve prints the commands it runs");

    let after = t.run(&["lab", "check", &num]);
    assert_eq!(after.status.code(), Some(0), "check after solve:\n{}", text(&after.stdout));
    assert!(!text(&after.stdout).contains("FAIL"));

    let reset = t.run(&["lab", "reset", &num]);
    assert!(reset.status.success(), "reset {n}: {}", text(&reset.stderr));
    assert!(text(&reset.stdout).contains("reset"), "{}", text(&reset.stdout));

    let again = t.run(&["lab", "check", &num]);
    assert_eq!(again.status.code(), Some(1), "check must fail again after reset:\n{}", text(&again.stdout));
    let ws = t.dir.join("lib/labs");
    let left: Vec<_> = std::fs::read_dir(&ws).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "lab workspace left: {left:?}");
    extra_clean();
    t.assert_clean();
}

fn no_cgroup(rel: &str) {
    for base in cgroup_bases() {
        assert!(!base.join(rel).exists(), "cgroup {} left", base.join(rel).display());
    }
}

fn no_process_named_lab03() {
    let out = std::process::Command::new("sh")
        .args(["-c", "for p in /proc/[0-9]*; do nsenter -t ${p#/proc/} -u hostname 2>/dev/null; done"])
        .output()
        .unwrap();
    assert!(!text(&out.stdout).lines().any(|h| h == "lab03"), "a process with hostname lab03 is left");
}

#[test]
fn lab01_chroot() {
    lab_cycle(1, || {});
}

#[test]
fn lab02_mounts() {
    lab_cycle(2, || {});
}

#[test]
fn lab03_namespaces() {
    lab_cycle(3, no_process_named_lab03);
}

#[test]
fn lab04_network() {
    lab_cycle(4, || {
        for ns in ["podlab-lab04-a", "podlab-lab04-b"] {
            assert!(!Path::new("/run/netns").join(ns).exists(), "netns {ns} left");
        }
        for link in ["podlab-br04", "pl04a", "pl04b"] {
            assert!(!Path::new("/sys/class/net").join(link).exists(), "link {link} left");
        }
    });
}

#[test]
fn lab05_cgroup_cpu() {
    lab_cycle(5, || no_cgroup("podlab/lab05"));
}

#[test]
fn lab06_cgroup_memory() {
    lab_cycle(6, || no_cgroup("podlab/lab06"));
}

#[test]
fn lab07_images() {
    lab_cycle(7, || {
        // The same directory TestRoot::new("lab07") made for this test.
        let root = format!("/tmp/podlab-test-lab07-{}", std::process::id());
        // No overlay of the lab is left, in any form (merged, or a layer named in lowerdir).
        let ws = format!("{root}/lib/labs/07-images");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&ws)).collect();
        assert!(left.is_empty(), "lab 07 mounts left: {left:#?}");
        // Building the image left no half-made files in the store, and reset kept the image
        // (it belongs to the store, not to the lab).
        let tmp = Path::new(&root).join("lib/images/tmp");
        let temps: Vec<_> =
            std::fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(temps.is_empty(), "temporary files left in the store: {temps:?}");
        let refs = std::fs::read_to_string(Path::new(&root).join("lib/images/refs.json")).unwrap_or_default();
        assert!(refs.contains("docker.io/library/busybox:latest"), "the busybox image is kept: {refs}");
    });
}

/// Every cgroup directory named `name` in the first levels of the cgroup trees (runc puts a
/// container without cgroupsPath below its own cgroup, so the place is not fixed).
fn cgroups_named(name: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, name: &str, depth: u32, found: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name() == name {
                found.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), name, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 6, &mut found);
    found
}

#[test]
fn lab08_runtime() {
    lab_cycle(8, || {
        // Both containers are gone: no process of theirs, no cgroup, no state in the default roots.
        no_cgroup("podlab/runtime/lab08-podlab");
        for id in ["lab08-runc", "lab08-podlab"] {
            let left = cgroups_named(id);
            assert!(left.is_empty(), "cgroups of {id} left: {left:?}");
        }
        for dir in ["/run/runc/lab08-runc", "/run/podlab/runtime/lab08-podlab"] {
            assert!(!Path::new(dir).exists(), "{dir}: the lab must keep its containers in its workspace");
        }
        let running: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("/out/see.sh"))
            .collect();
        assert!(running.is_empty(), "a container process of lab 8 is left: {running:?}");
    });
}

/// Lab 8's check compares what the two containers saw and names the first line that differs.
#[test]
fn lab08_check_names_the_first_difference() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab08-diff");
    let solve = t.run(&["lab", "solve", "8"]);
    assert!(solve.status.success(), "{}", text(&solve.stderr));
    assert_eq!(t.run(&["lab", "check", "8"]).status.code(), Some(0));
    let file = t.dir.join("lib/labs/08-runtime/out/podlab.txt");
    let seen = std::fs::read_to_string(&file).unwrap();
    let eff = seen.lines().find(|l| l.starts_with("CapEff:")).unwrap().to_string();
    std::fs::write(&file, seen.replace(&eff, "CapEff:\t000001ffffffffff")).unwrap();
    let check = t.run(&["lab", "check", "8"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
    let out = text(&check.stdout);
    assert!(out.contains("podlab.txt \"CapEff: 000001ffffffffff\""), "the hint names the line: {out}");
    assert!(t.run(&["lab", "reset", "8"]).status.success());
    t.assert_clean();
}

/// Content addressing is what lab 7's check relies on: one changed byte in a blob fails it.
#[test]
fn lab07_check_catches_a_tampered_blob() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab07-tamper");
    assert!(t.run(&["lab", "solve", "7"]).status.success());
    assert_eq!(t.run(&["lab", "check", "7"]).status.code(), Some(0));
    let layout = t.dir.join("lib/labs/07-images/layout");
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layout.join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(&manifest)).unwrap()).unwrap();
    let config =
        layout.join("blobs/sha256").join(m["config"]["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&config).unwrap();
    bytes.push(b' ');
    std::fs::write(&config, bytes).unwrap();
    let check = t.run(&["lab", "check", "7"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
    let out = text(&check.stdout);
    let layout_line = out.lines().find(|l| l.contains("OCI image layout")).unwrap();
    assert!(layout_line.starts_with("[FAIL]"), "{out}");
    assert!(out.contains("not to its name"), "the hint says which blob is wrong: {out}");
    assert!(t.run(&["lab", "reset", "7"]).status.success());
    t.assert_clean();
}

#[test]
fn lab_commands_list_show_and_refuse_unknown_labs() {
    let t = TestRoot::new("labcli");
    let list = text(&t.run(&["lab", "list"]).stdout);
    for slug in [
        "01-chroot",
        "02-mounts",
        "03-namespaces",
        "04-network",
        "05-cgroup-cpu",
        "06-cgroup-memory",
        "07-images",
        "08-runtime",
    ] {
        assert!(list.contains(slug), "{list}");
    }
    let show = t.run(&["lab", "show", "5"]);
    assert!(show.status.success());
    assert!(text(&show.stdout).contains("cpu"), "the guide is printed");
    let bad = t.run(&["lab", "check", "42"]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(text(&bad.stderr).contains("no lab 42"), "{}", text(&bad.stderr));
}
