//! Every lab: check fails on a clean machine, solve makes it pass, reset removes every
//! trace (processes, mounts, namespaces, links, cgroups, files). Labs use fixed names that
//! learners type (podlab/lab05, podlab-lab04-a...), so they run one at a time.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

fn lab_cycle(n: u8, extra_clean: impl Fn()) {
    lab_cycle_with(n, |_| (), |()| extra_clean());
}

/// [`lab_cycle`] that also looks at what solve made (`seen`, before the check after solve),
/// so that `extra_clean` can tell that exactly those things are gone after reset.
fn lab_cycle_with<T>(n: u8, seen: impl Fn(&TestRoot) -> T, extra_clean: impl Fn(T)) {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new(&format!("lab{n:02}"));
    let _reset = ResetOnPanic(&t, n);
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
    let made = seen(&t);

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
    extra_clean(made);
    t.assert_clean();
}

/// Resets lab N when a test fails half way: a solve that failed leaves processes running
/// (node agents, pods), and the test root is about to be removed under them.
struct ResetOnPanic<'a>(&'a TestRoot, u8);

impl Drop for ResetOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.run(&["lab", "reset", &self.1.to_string()]);
        }
    }
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

/// Command lines of every process whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

fn alive(pid: i32) -> bool {
    // A zombie has no command line: count it as gone, as kill -0 would not.
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn no_netns(names: &[&str]) {
    for ns in names {
        assert!(!Path::new("/run/netns").join(ns).exists(), "netns {ns} left");
    }
}

/// What lab 9 made: the pids of its pause, web and client.
fn lab09_pids(t: &TestRoot) -> Vec<i32> {
    let ws = t.dir.join("lib/labs/09-pod");
    ["pause", "web", "client"]
        .iter()
        .map(|r| std::fs::read_to_string(ws.join(format!("{r}.pid"))).unwrap().trim().parse().unwrap())
        .collect()
}

fn lab09_clean(t_dir: &Path, pids: &[i32]) {
    no_netns(&["lab09-node", "lab09-pod"]);
    no_cgroup("podlab/lab09-pod");
    let running: Vec<&i32> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(running.is_empty(), "processes of lab 9 left: {running:?}");
    let mentioning = processes_mentioning(t_dir.to_str().unwrap());
    assert!(mentioning.is_empty(), "processes of the lab's workspace left: {mentioning:?}");
}

#[test]
fn lab09_pod() {
    let dir = format!("/tmp/podlab-test-lab09-{}", std::process::id());
    lab_cycle_with(9, lab09_pids, |pids| lab09_clean(Path::new(&dir), &pids));
}

/// The shell commands of the ```sh blocks of a guide, from heading `from` to heading `to`.
fn guide_commands(guide: &str, from: &str, to: &str) -> String {
    let start = guide.find(from).unwrap_or_else(|| panic!("no {from:?} in the guide"));
    let end = start + guide[start..].find(to).unwrap_or_else(|| panic!("no {to:?} after {from:?}"));
    let mut script = String::new();
    let mut inside = false;
    for line in guide[start..end].lines() {
        match (inside, line.trim_start()) {
            (false, "```sh") => inside = true,
            (true, "```") => inside = false,
            (true, _) => script.push_str(&format!("{line}\n")),
            _ => {}
        }
    }
    script
}

/// Run guide commands with bash -e, `$LAB` in the test's root and the podlab under test first
/// in PATH; the output goes to a file (the background processes keep their stdout open).
fn run_guide(t: &TestRoot, slug: &str, script: &str, name: &str) -> String {
    let ws = t.dir.join("lib/labs").join(slug);
    // Each part starts from a new shell, as a learner coming back later would: LAB is set
    // first, so that `podlab --root $LAB/root` can never mean /root.
    let script = format!("export LAB={}\n{script}", ws.display())
        .replace(&format!("/var/lib/podlab/labs/{slug}"), ws.to_str().unwrap());
    let bin = std::path::PathBuf::from(podlab());
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let log = t.dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let status = std::process::Command::new("bash")
        .args(["-e", "-c", &format!("set -o pipefail\n{script}")])
        .env("PATH", path)
        .env_remove("PODLAB_ROOT")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .status()
        .unwrap();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "the guide's commands ({name}) failed:\n{script}\n--- output:\n{output}");
    output
}

/// Lab 9 by hand: the guide's steps, typed as they are written, pass the check; the guide's
/// last part runs the same pod from YAML, and `inspect` shows what the guide explains.
#[test]
fn lab09_guide_by_hand_and_as_yaml() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab09-guide");
    let _reset = ResetOnPanic(&t, 9);
    assert!(t.run(&["lab", "reset", "9"]).status.success());
    let guide = include_str!("../labs/09-pod/README.md");

    run_guide(&t, "09-pod", &guide_commands(guide, "## Steps", "## Check your work"), "steps");
    let check = t.run(&["lab", "check", "9"]);
    assert_eq!(check.status.code(), Some(0), "the guide's steps pass the check:\n{}", text(&check.stdout));
    let pids = lab09_pids(&t);

    let yaml =
        run_guide(&t, "09-pod", &guide_commands(guide, "## The same pod, as Kubernetes YAML", "```text"), "yaml");
    assert!(yaml.contains("pod/lab09 is Running (2/2 ready"), "{yaml}");
    assert!(yaml.contains("hello from pod lab09"), "the client fetched over the pod's localhost: {yaml}");
    // inspect: net, ipc and uts equal for pause, web and client; pid and mnt their own.
    let rows: Vec<Vec<&str>> = ["pause (", "web (", "client ("]
        .iter()
        .map(|p| {
            let line =
                yaml.lines().find(|l| l.trim_start().starts_with(p)).unwrap_or_else(|| panic!("{p} row: {yaml}"));
            line.split_whitespace().skip(2).collect()
        })
        .collect();
    for col in 0..3 {
        assert!(rows.iter().all(|r| r[col] == rows[0][col]), "net, ipc, uts are shared: {rows:?}");
    }
    assert_ne!(rows[1][3], rows[2][3], "each container has its own pid namespace: {rows:?}");
    assert!(yaml.contains("port of bridge podlab0"), "{yaml}");
    assert!(yaml.contains("podlab/kubepods/besteffort/pod"), "{yaml}");
    assert!(yaml.contains("route default via 10.244.0.1"), "{yaml}");
    let uid = yaml.lines().find_map(|l| l.strip_prefix("Pod default/lab09  uid ")).unwrap().trim().to_string();
    // The comparison commands of the guide's last part run too.
    run_guide(&t, "09-pod", &guide_commands(guide, "Both bridges sit in `lab09-node`", "```text"), "bridges");
    // The hand-made pod is still there, next to the node agent's.
    assert_eq!(t.run(&["lab", "check", "9"]).status.code(), Some(0));

    let reset = t.run(&["lab", "reset", "9"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert_eq!(t.run(&["lab", "check", "9"]).status.code(), Some(1));
    lab09_clean(&t.dir, &pids);
    let left = cgroups_named(&format!("pod{uid}"));
    assert!(left.is_empty(), "the YAML pod's cgroups are gone: {left:?}");
    no_netns(&[&format!("podlab-{}", &uid.replace('-', "")[..8])]);
    t.assert_clean();
}

/// Lab 10's network namespaces (lab10-node2 is the node agent's, in the guide's last part).
const LAB10_NETNS: [&str; 5] = ["lab10-node", "lab10-a", "lab10-b", "lab10-client", "lab10-node2"];

/// What lab 10 made: the pids of every process in its namespaces (the two servers).
fn lab10_pids(_: &TestRoot) -> Vec<i32> {
    let mut pids = Vec::new();
    for ns in LAB10_NETNS {
        let out = std::process::Command::new("ip").args(["netns", "pids", ns]).output().unwrap();
        pids.extend(text(&out.stdout).split_whitespace().map(|p| p.parse::<i32>().unwrap()));
    }
    assert_eq!(pids.len(), 2, "the two httpd servers: {pids:?}");
    pids
}

/// Nothing of lab 10 is left: namespaces (and with lab10-node its bridge, veths and rules),
/// servers, LAB10- chains typed into this machine's own nat table.
fn lab10_clean(t_dir: &Path, pids: &[i32]) {
    no_netns(&LAB10_NETNS);
    let running: Vec<&i32> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(running.is_empty(), "processes of lab 10 left: {running:?}");
    let mentioning = processes_mentioning(t_dir.to_str().unwrap());
    assert!(mentioning.is_empty(), "processes of the lab's workspace left: {mentioning:?}");
    let nat = std::process::Command::new("iptables-save").args(["-t", "nat"]).output().unwrap();
    let left: Vec<String> = text(&nat.stdout).lines().filter(|l| l.contains("LAB10-")).map(String::from).collect();
    assert!(left.is_empty(), "LAB10 rules left in this machine's nat table: {left:?}");
}

#[test]
fn lab10_service_vip() {
    let dir = format!("/tmp/podlab-test-lab10-{}", std::process::id());
    lab_cycle_with(10, lab10_pids, |pids| lab10_clean(Path::new(&dir), &pids));
}

/// Lab 10's check names what is wrong: a bridge that skips iptables, a last rule that leaves
/// connections without a DNAT.
#[test]
fn lab10_check_says_what_is_wrong() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab10-hints");
    let _reset = ResetOnPanic(&t, 10);
    let solve = t.run(&["lab", "solve", "10"]);
    assert!(solve.status.success(), "{}", text(&solve.stderr));
    let pids = lab10_pids(&t);
    let in_node = |cmd: &str| {
        let out =
            std::process::Command::new("ip").args(["netns", "exec", "lab10-node", "sh", "-c", cmd]).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", text(&out.stderr));
    };
    // The line after the point `name`, which must have failed.
    let failed_hint = |name: &str| -> String {
        let check = t.run(&["lab", "check", "10"]);
        assert_eq!(check.status.code(), Some(1));
        let out = text(&check.stdout);
        let lines: Vec<&str> = out.lines().collect();
        let at = lines.iter().position(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {out}"));
        assert!(lines[at].starts_with("[FAIL]"), "{out}");
        lines[at + 1].to_string()
    };

    in_node("sysctl -qw net.bridge.bridge-nf-call-iptables=0");
    let hint = failed_hint("from lab10-client is answered");
    assert!(hint.contains("net.bridge.bridge-nf-call-iptables is 0 in lab10-node"), "{hint}");
    in_node("sysctl -qw net.bridge.bridge-nf-call-iptables=1");

    in_node("iptables -t nat -R LAB10-SVC 2 -m statistic --mode random --probability 0.5 -j LAB10-SEP-B");
    let hint = failed_hint("LAB10-SVC jumps to both endpoint chains");
    assert!(hint.contains("-R LAB10-SVC 2 -j LAB10-SEP-B"), "{hint}");

    assert!(t.run(&["lab", "reset", "10"]).status.success());
    lab10_clean(&t.dir, &pids);
    t.assert_clean();
}

/// The counts of the `uniq -c` lines right after the line `marker`: pod a's and pod b's.
fn uniq_counts(out: &str, marker: &str) -> (usize, usize) {
    let start = out.find(marker).unwrap_or_else(|| panic!("no {marker:?} in:\n{out}"));
    let mut counts = (0, 0);
    for line in out[start..].lines().skip(1) {
        let Some((n, rest)) = line.trim().split_once(' ') else { break };
        let Ok(n) = n.parse::<usize>() else { break };
        match rest {
            "hello from pod a" => counts.0 = n,
            "hello from pod b" => counts.1 = n,
            _ => break,
        }
    }
    counts
}

/// Lab 10 by hand: the guide's steps, typed as they are written, show what the guide says
/// (both pods answer, the nat table counts one packet per connection, a rule with other odds,
/// a missing endpoint, the hairpin) and pass the check. The guide's last part (podlab's node
/// agent) is not run here.
#[test]
fn lab10_guide_by_hand() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab10-guide");
    let _reset = ResetOnPanic(&t, 10);
    assert!(t.run(&["lab", "reset", "10"]).status.success());
    let guide = include_str!("../labs/10-service-vip/README.md");
    let script = guide_commands(guide, "## Steps", "## Check your work");
    // Each request loop announces itself, so that its output can be found.
    let marked: String = script
        .lines()
        .map(|l| if l.starts_with("for i in") { format!("echo '== {l}'\n{l}\n") } else { format!("{l}\n") })
        .collect();
    let out = run_guide(&t, "10-service-vip", &marked, "steps");
    let twenty = "== for i in $(seq 20); do";

    let first = out.find(twenty).unwrap();
    let (a, b) = uniq_counts(&out[first..], twenty);
    assert_eq!(a + b, 20, "twenty answers: {out}");
    assert!(a > 0 && b > 0, "both pods answer (a {a}, b {b}): {out}");
    // The nat table saw one packet per connection: 20 on the PREROUTING rule.
    let prerouting = out.lines().find(|l| l.contains("LAB10-SVC") && l.contains("dpt:80")).unwrap();
    assert_eq!(prerouting.split_whitespace().next(), Some("20"), "{prerouting}");
    assert!(out.contains("dst=10.96.10.10"), "conntrack lines: {out}");
    assert!(out.contains("no answer"), "bridge-nf-call-iptables=0 breaks the VIP: {out}");
    assert!(out.contains("Network is unreachable"), "the node without a route: {out}");
    // Other odds.
    let (a9, b9) = uniq_counts(&out[first + twenty.len()..], twenty);
    assert_eq!(a9 + b9, 20, "{out}");
    assert!(a9 >= 13, "probability 0.9: pod a {a9} of 20: {out}");
    assert!(out.contains("--probability 0.89999999991"), "{out}");
    // Without b's rule and with the odds of one endpoint: six times a.
    let six = "== for i in $(seq 6); do";
    let sixes: Vec<usize> = out.match_indices(six).map(|(i, _)| i).collect();
    assert_eq!(sixes.len(), 3, "{out}");
    assert_eq!(uniq_counts(&out[sixes[1]..], six), (6, 0), "{out}");
    // The hairpin: twelve answers; pod a's connections to itself come back through the node.
    let (ha, hb) = uniq_counts(&out, "== for i in $(seq 12); do");
    assert_eq!(ha + hb, 12, "{out}");
    assert!(out.contains("src=10.210.0.2 dst=10.210.0.1 "), "masqueraded hairpin: {out}");
    assert!(out.contains("-A LAB10-SEP-A -s 10.210.0.2/32 -j LAB10-MARK-MASQ"), "{out}");

    let check = t.run(&["lab", "check", "10"]);
    assert_eq!(check.status.code(), Some(0), "the guide's steps pass the check:\n{}", text(&check.stdout));
    let pids = lab10_pids(&t);
    let reset = t.run(&["lab", "reset", "10"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert_eq!(t.run(&["lab", "check", "10"]).status.code(), Some(1));
    lab10_clean(&t.dir, &pids);
    t.assert_clean();
}

/// Lab 10's last part: the same Service from YAML through podlab's node agent, typed as the
/// guide says; the outputs it tells the learner to look at are there.
#[test]
fn lab10_guide_with_podlab() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab10-podlab");
    let _reset = ResetOnPanic(&t, 10);
    let guide = include_str!("../labs/10-service-vip/README.md");
    let script = guide_commands(guide, "## The same Service with podlab", "## Cleanup");
    let out = run_guide(&t, "10-service-vip", &script, "podlab");
    // kube-dns is a Service of its own; web got a VIP; both pods answer on it, and by name.
    assert!(
        out.lines().any(|l| l.starts_with("kube-system") && l.contains("kube-dns") && l.contains("10.96.0.10")),
        "{out}"
    );
    let answers = out
        .lines()
        .filter(|l| l.trim_start().chars().next().is_some_and(|c| c.is_ascii_digit()) && l.contains("hello from web-"))
        .count();
    assert_eq!(answers, 2, "10 requests, both pods (uniq -c lines): {out}");
    assert!(
        out.contains("nameserver 10.96.0.10")
            && out.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{out}"
    );
    assert!(out.contains("--probability 0.50000000000"), "{out}");
    assert!(out.contains("net.bridge.bridge-nf-call-iptables = 1") && out.contains("hairpin on"), "{out}");
    // Readiness: web-b's endpoint went, then came back.
    let web_b = out.find("0/1").unwrap_or_else(|| panic!("web-b not ready after its probe failed: {out}"));
    let rest = &out[web_b..];
    assert!(rest.lines().any(|l| l.starts_with("web ") && l.matches(":8080").count() == 1), "one endpoint: {rest}");
    assert!(
        rest.lines().rfind(|l| l.starts_with("web ")).is_some_and(|l| l.matches(":8080").count() == 2),
        "two again: {rest}"
    );
    let reset = t.run(&["lab", "reset", "10"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    no_netns(&["lab10-node2"]);
    let mentioning = processes_mentioning(t.dir.to_str().unwrap());
    assert!(mentioning.is_empty(), "processes of the lab's workspace left: {mentioning:?}");
    t.assert_clean();
}

/// What lab 11 made: its pods' uids, and the pids of the agent, supervisors and pauses.
fn lab11_made(t: &TestRoot) -> (Vec<String>, Vec<i32>) {
    let root = t.dir.join("lib/labs/11-kubelet/root");
    let pid_of = |f: &Path| -> Option<i32> { std::fs::read_to_string(f).ok()?.split_whitespace().next()?.parse().ok() };
    let mut pids: Vec<i32> = pid_of(&root.join("run/node/agent.pid")).into_iter().collect();
    let mut uids = Vec::new();
    for e in std::fs::read_dir(root.join("lib/pods")).unwrap().flatten() {
        uids.push(e.file_name().to_string_lossy().into_owned());
        pids.extend(pid_of(&e.path().join("supervisor.pid")));
        pids.extend(pid_of(&e.path().join("pause.pid")));
    }
    assert_eq!(uids.len(), 3, "crashy, alive, ready: {uids:?}");
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");
    (uids, pids)
}

#[test]
fn lab11_kubelet() {
    let dir = format!("/tmp/podlab-test-lab11-{}", std::process::id());
    lab_cycle_with(11, lab11_made, |(uids, pids)| {
        no_netns(&["lab11-node"]);
        for uid in &uids {
            no_netns(&[&format!("podlab-{}", &uid.replace('-', "")[..8])]);
            let left = cgroups_named(&format!("pod{uid}"));
            assert!(left.is_empty(), "cgroups of pod {uid} left: {left:?}");
        }
        let running: Vec<&i32> = pids.iter().filter(|p| alive(**p)).collect();
        assert!(running.is_empty(), "agent, supervisors or pauses of lab 11 left: {running:?}");
        let mentioning = processes_mentioning(&dir);
        assert!(mentioning.is_empty(), "processes of the lab's workspace left: {mentioning:?}");
    });
}

/// Lab 11's check grades behaviour, not files: a crashy pod whose container does not crash
/// fails, with a hint that says what was seen.
#[test]
fn lab11_check_says_what_it_saw() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab11-seen");
    let _reset = ResetOnPanic(&t, 11);
    assert!(t.run(&["lab", "reset", "11"]).status.success());
    let ws = t.dir.join("lib/labs/11-kubelet");
    let root = ws.join("root");
    let ok = |out: std::process::Output| assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    // The lab's node, as the guide starts it: podlab --root $LAB/root ...
    let node =
        |args: &[&str]| std::process::Command::new(podlab()).arg("--root").arg(&root).args(args).output().unwrap();
    ok(std::process::Command::new("ip").args(["netns", "add", "lab11-node"]).output().unwrap());
    ok(node(&["image", "build", "busybox"]));
    ok(node(&["node", "--netns", "lab11-node", "--detach", "--backoff-initial", "1s"]));
    let calm = ws.join("calm.yaml");
    std::fs::write(
        &calm,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: crashy\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: app\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    \
         command: [\"sleep\", \"3600\"]\n",
    )
    .unwrap();
    ok(node(&["run", "-f", calm.to_str().unwrap(), "--wait", "--timeout", "60s"]));
    let check = t.run(&["lab", "check", "11"]);
    assert_eq!(check.status.code(), Some(1));
    let out = text(&check.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let agent = lines.iter().position(|l| l.contains("node agent of")).unwrap();
    assert!(lines[agent].starts_with("[pass]"), "the agent runs in lab11-node: {out}");
    let crashy = lines.iter().position(|l| l.contains("pod crashy")).unwrap();
    assert!(lines[crashy].starts_with("[FAIL]"), "{out}");
    assert!(lines[crashy + 1].contains("RESTARTS 0 and no BackOff event"), "the hint says what was seen: {out}");
    assert!(out.contains("there is no pod alive"), "{out}");
    assert!(t.run(&["lab", "reset", "11"]).status.success());
    no_netns(&["lab11-node"]);
    assert!(processes_mentioning(t.dir.to_str().unwrap()).is_empty());
    t.assert_clean();
}

/// Lab 11 by hand: the guide's steps, as written (with their own waits), pass the check.
#[test]
#[ignore = "slow: the guide's own waits add up to about a minute (cargo test --test labs -- --ignored lab11)"]
fn lab11_guide_by_hand() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab11-guide");
    let _reset = ResetOnPanic(&t, 11);
    assert!(t.run(&["lab", "reset", "11"]).status.success());
    let guide = include_str!("../labs/11-kubelet/README.md");
    let out = run_guide(&t, "11-kubelet", &guide_commands(guide, "## Steps", "## Check your work"), "steps");
    assert!(out.contains("CrashLoopBackOff"), "{out}");
    assert!(out.contains("Completed") && out.contains("Error"), "the other restart policies: {out}");
    assert!(out.contains("static-web"), "{out}");
    let check = t.run(&["lab", "check", "11"]);
    assert_eq!(check.status.code(), Some(0), "the guide's steps pass the check:\n{}", text(&check.stdout));
    assert!(t.run(&["lab", "reset", "11"]).status.success());
    no_netns(&["lab11-node"]);
    assert!(processes_mentioning(t.dir.to_str().unwrap()).is_empty());
    t.assert_clean();
}

#[test]
fn lab09_and_lab11_are_listed_and_shown() {
    let t = TestRoot::new("lab0911cli");
    let list = text(&t.run(&["lab", "list"]).stdout);
    assert!(list.contains("09-pod") && list.contains("11-kubelet"), "{list}");
    assert!(text(&t.run(&["lab", "show", "9"]).stdout).contains("pause"));
    assert!(text(&t.run(&["lab", "show", "11"]).stdout).contains("CrashLoopBackOff"));
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
        "10-service-vip",
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

/// Lab 12's API server listens here (the guide starts it so).
const LAB12_PORT: u16 = 16443;

fn port_open(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok()
}

/// What lab 12's solve started: the server, from its pid file, listening on the lab's port.
fn lab12_server(t: &TestRoot) -> i32 {
    let file = t.dir.join("lib/labs/12-api-server/server.pid");
    let pid: i32 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
    assert!(alive(pid), "the server of solve runs");
    assert!(port_open(LAB12_PORT), "the server listens on {LAB12_PORT}");
    pid
}

/// Nothing of lab 12 is left: no server, the port closed, no process of the workspace.
fn lab12_clean(t_dir: &Path, pids: &[i32]) {
    let running: Vec<&i32> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(running.is_empty(), "lab 12's server left: {running:?}");
    assert!(!port_open(LAB12_PORT), "something still listens on {LAB12_PORT}");
    let mentioning = processes_mentioning(t_dir.to_str().unwrap());
    assert!(mentioning.is_empty(), "processes of the lab's workspace left: {mentioning:?}");
}

#[test]
fn lab12_api_server() {
    let dir = format!("/tmp/podlab-test-lab12-{}", std::process::id());
    lab_cycle_with(12, lab12_server, |pid| lab12_clean(Path::new(&dir), &[pid]));
    let t = TestRoot::new("lab12cli");
    assert!(text(&t.run(&["lab", "list"]).stdout).contains("12-api-server"));
    assert!(text(&t.run(&["lab", "show", "12"]).stdout).contains("?watch=1"));
}

/// Lab 12's check says what it saw: a pod that changed after revision.txt was written, and
/// a server that is down (failing points, not an error).
#[test]
fn lab12_check_says_what_is_wrong() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab12-wrong");
    let _reset = ResetOnPanic(&t, 12);
    assert!(t.run(&["lab", "reset", "12"]).status.success());
    let solve = t.run(&["lab", "solve", "12"]);
    assert!(solve.status.success(), "{}", text(&solve.stderr));
    let pid = lab12_server(&t);
    let server = t.dir.join("lib/labs/12-api-server/lib/server");
    // One more change of hello: revision.txt is now one row behind.
    let tokens = std::fs::read_to_string(server.join("tokens.csv")).unwrap();
    let token = tokens.lines().find(|l| l.contains("system:masters")).unwrap().split(',').next().unwrap();
    let patch = std::process::Command::new("curl")
        .args(["-sSf", "--max-time", "10", "--cacert"])
        .arg(server.join("pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}"), "-X", "PATCH"])
        .args([
            "-H",
            "Content-Type: application/merge-patch+json",
            "--data",
            r#"{"metadata":{"labels":{"late":"yes"}}}"#,
        ])
        .arg(format!("https://127.0.0.1:{LAB12_PORT}/api/v1/namespaces/default/pods/hello"))
        .output()
        .unwrap();
    assert!(patch.status.success(), "{}", text(&patch.stderr));
    let check = t.run(&["lab", "check", "12"]);
    assert_eq!(check.status.code(), Some(1));
    let out = text(&check.stdout);
    assert_eq!(out.matches("[FAIL]").count(), 1, "only revision.txt is wrong: {out}");
    assert!(out.contains("is an earlier change of the pod: it changed after you looked"), "{out}");

    // The server down: every point fails with a reason, the check itself does not.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    assert!(wait_until(10, || !alive(pid)));
    let check = t.run(&["lab", "check", "12"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    let out = text(&check.stdout);
    assert_eq!(out.matches("[FAIL]").count(), 5, "{out}");
    assert!(out.contains("Connection refused"), "{out}");
    assert!(t.run(&["lab", "reset", "12"]).status.success());
    lab12_clean(&t.dir, &[pid]);
    t.assert_clean();
}

/// Lab 12 by hand: the guide's steps, typed as they are written (curl, sqlite3, kubectl),
/// show what the guide says and pass the check; reset stops the server the guide started.
#[test]
fn lab12_guide_by_hand() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = TestRoot::new("lab12-guide");
    let _reset = ResetOnPanic(&t, 12);
    assert!(t.run(&["lab", "reset", "12"]).status.success());
    let guide = include_str!("../labs/12-api-server/README.md");
    // kubectl keeps its discovery cache under $HOME: the test's own.
    let home = t.dir.join("home");
    let script = format!("export HOME={}\n{}", home.display(), guide_commands(guide, "## Steps", "## Check your work"));
    let out = run_guide(&t, "12-api-server", &script, "steps");
    assert!(out.contains("API server on https://127.0.0.1:16443"), "{out}");
    assert!(out.contains("SSL certificate problem"), "no CA, no trust: {out}");
    assert!(out.contains(r#""code":401"#) && out.contains("Unauthorized"), "no token: {out}");
    assert!(out.contains("hello was created at resourceVersion "), "{out}");
    assert!(out.contains(r#""step":"watched""#) && out.contains(r#""type":"MODIFIED""#), "the watch: {out}");
    assert!(out.contains("Operation timed out"), "the replayed watch stays open: {out}");
    assert!(out.contains(r#""code":409"#) && out.contains("the object has been modified"), "stale write: {out}");
    assert!(out.contains("CREATE TABLE log"), "the schema: {out}");
    assert!(out.contains("/registry/core/pods/default/hello"), "the rows: {out}");
    assert!(out.contains("pod/hello labeled") && out.contains("application/merge-patch+json"), "-v=8: {out}");
    assert!(out.contains("imagePullPolicy: Always") && out.contains("dnsPolicy: ClusterFirst"), "defaults: {out}");
    assert!(out.contains("pod/bye created") && out.contains(r#"pod "bye" deleted"#), "{out}");
    for event in ["ADDED", "MODIFIED", "DELETED"] {
        assert!(
            out.lines().any(|l| l.starts_with(event) && (l.contains("hello") || l.contains("bye"))),
            "kubectl's watch shows {event}: {out}"
        );
    }
    let ws = t.dir.join("lib/labs/12-api-server");
    let revision = std::fs::read_to_string(ws.join("revision.txt")).unwrap();
    assert!(
        out.lines().filter(|l| l.trim() == revision.trim()).count() >= 2,
        "revision.txt ({}) and kubectl's resourceVersion printed: {out}",
        revision.trim()
    );

    let check = t.run(&["lab", "check", "12"]);
    assert_eq!(check.status.code(), Some(0), "the guide's steps pass the check:\n{}", text(&check.stdout));
    let pid: i32 = std::fs::read_to_string(ws.join("server.pid")).unwrap().trim().parse().unwrap();
    assert!(alive(pid));
    let reset = t.run(&["lab", "reset", "12"]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert_eq!(t.run(&["lab", "check", "12"]).status.code(), Some(1));
    lab12_clean(&t.dir, &[pid]);
    t.assert_clean();
}
