//! Lab 11, the kubelet and static pods: restarts, CrashLoopBackOff and probes.
//!
//! The kubelet keeps the pods of its node running: it restarts a container that exits as the
//! pod's `restartPolicy` says, waiting longer and longer between crashes (CrashLoopBackOff);
//! it runs the liveness probe and restarts a container that fails it; it runs the readiness
//! probe and marks the container ready (1/1) only while it passes. It takes its pods from a
//! static manifest directory too: a file dropped there is a pod, removing the file deletes it.
//! The learner runs podlab's node agent in a network namespace of its own (lab11-node), with
//! its state under the lab's workspace, and watches all of it with `get`, `describe`, `exec`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Ctx, Point, remove_workspace};
use crate::error::{Error, IoContext, Result};
use crate::explain::say;
use crate::node::pods::NodePod;
use crate::node::{NodePaths, agent};
use crate::pod::node_info::{self, NodeInfo};
use crate::pod::status::{Event, events};
use crate::primitives::{link, netns, proc};
use crate::state::StateDirs;

/// The node agent's network namespace: its pods' network (bridge podlab0) lives there.
const NODE_NS: &str = "lab11-node";

/// A container that exits with 1 after a second, under `restartPolicy: Always`.
pub const CRASHY_YAML: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: crashy
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo starting; sleep 1; echo giving up; exit 1"]
"#;

/// A container that is alive while /tmp/healthy exists.
pub const ALIVE_YAML: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: alive
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "touch /tmp/healthy; exec sleep 3600"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 2
      failureThreshold: 2
"#;

/// A container that is ready once /tmp/ready exists.
pub const READY_YAML: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: ready
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    readinessProbe:
      exec:
        command: ["cat", "/tmp/ready"]
      periodSeconds: 2
"#;

/// The lab's pods: (name, file in the workspace, manifest).
const PODS: [(&str, &str, &str); 3] =
    [("crashy", "crashy.yaml", CRASHY_YAML), ("alive", "alive.yaml", ALIVE_YAML), ("ready", "ready.yaml", READY_YAML)];

/// The podlab state of the lab's node: `$LAB/root`, never the user's own pods.
fn node_root(ws: &Path) -> PathBuf {
    ws.join("root")
}

fn node_paths(root: &Path) -> NodePaths {
    NodePaths::new(&StateDirs::under(root))
}

/// The lab's pod `name` (namespace default), the newest when an old one is being deleted.
fn find(paths: &NodePaths, name: &str) -> Option<NodePod> {
    crate::node::pods::get(paths, "default", name)
}

fn restarts(p: &NodePod) -> u32 {
    p.record.as_ref().map(|r| r.restarts()).unwrap_or(0)
}

fn has_event(list: &[Event], reason: &str, text: &str) -> bool {
    list.iter().any(|e| e.reason == reason && e.message.contains(text))
}

/// How pod `crashy` fares: Ok(what was seen) when it restarted twice and was in CrashLoopBackOff.
fn grade_crashy(paths: &NodePaths) -> std::result::Result<String, String> {
    let p = find(paths, "crashy").ok_or("there is no pod crashy")?;
    let policy = p.restart_policy();
    if policy != "Always" {
        return Err(format!("crashy has restartPolicy {policy}, not Always"));
    }
    let (n, backoff) = (restarts(&p), has_event(&events(&p.dir), "BackOff", "Back-off restarting failed container"));
    if n < 2 || !backoff {
        return Err(format!(
            "crashy has RESTARTS {n} and {} BackOff event yet: wait and watch it (its container must exit 1)",
            if backoff { "a" } else { "no" }
        ));
    }
    Ok(format!("RESTARTS {n}, back-off seen"))
}

/// Pod `alive`: a liveness probe, and at least one restart because it failed.
fn grade_alive(paths: &NodePaths) -> std::result::Result<String, String> {
    let p = find(paths, "alive").ok_or("there is no pod alive")?;
    let spec = p.pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if !spec.iter().any(|c| c.liveness_probe.is_some()) {
        return Err("alive has no livenessProbe".into());
    }
    let killed = has_event(&events(&p.dir), "Killing", "failed liveness probe");
    let n = restarts(&p);
    if !killed || n < 1 {
        return Err(format!(
            "alive has RESTARTS {n}, and {} \"failed liveness probe\" event: make its probe fail",
            if killed { "a" } else { "no" }
        ));
    }
    Ok(format!("RESTARTS {n} after a failed liveness probe"))
}

/// Pod `ready`: a readiness probe that failed first, and all its containers ready now.
fn grade_ready(paths: &NodePaths) -> std::result::Result<String, String> {
    let p = find(paths, "ready").ok_or("there is no pod ready")?;
    let spec = p.pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    if spec.is_empty() || !spec.iter().all(|c| c.readiness_probe.is_some()) {
        return Err("the containers of ready have no readinessProbe".into());
    }
    let (ready, total) = p.record.as_ref().map(|r| r.ready_count()).unwrap_or((0, spec.len()));
    let failed_first = has_event(&events(&p.dir), "Unhealthy", "Readiness probe failed");
    if !failed_first {
        return Err(format!(
            "READY {ready}/{total}, and its readiness probe never failed: was the file there from the start?"
        ));
    }
    if ready != total {
        return Err(format!("READY {ready}/{total}: create the file its readiness probe reads"));
    }
    Ok(format!("READY {ready}/{total}"))
}

/// The agent of `paths`, when it runs in network namespace NODE_NS.
fn grade_agent(paths: &NodePaths) -> std::result::Result<i32, String> {
    let pid = agent::running(paths).ok_or("the node agent is not running")?;
    let want = netns::inode_of(NODE_NS).map_err(|_| format!("network namespace {NODE_NS} does not exist"))?;
    match proc::ns_inode(pid, "net") {
        Ok(i) if i == want => Ok(pid),
        _ => Err(format!(
            "the node agent (pid {pid}) runs outside {NODE_NS}: stop it and start it with --netns {NODE_NS}"
        )),
    }
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let root = node_root(&ctx.ws);
    let paths = node_paths(&root);
    let lab = ctx.ws.display();
    let p = format!("podlab --root {}", root.display());
    let agent = grade_agent(&paths);
    let hint = |r: &std::result::Result<String, String>, todo: String| match r {
        Ok(seen) => seen.clone(),
        Err(why) => format!("{why} — {todo}"),
    };
    let crashy = grade_crashy(&paths);
    let alive = grade_alive(&paths);
    let ready = grade_ready(&paths);
    Ok(vec![
        Point::new(
            format!("the node agent of {} runs in network namespace {NODE_NS}", root.display()),
            agent.is_ok(),
            match &agent {
                Ok(pid) => format!("pid {pid}"),
                Err(why) => format!(
                    "{why} — ip netns add {NODE_NS}; ip -n {NODE_NS} link set lo up; \
                     {p} node --netns {NODE_NS} --detach --backoff-initial 2s"
                ),
            },
        ),
        Point::new(
            "pod crashy (restartPolicy Always) restarted at least twice and went into CrashLoopBackOff",
            crashy.is_ok(),
            hint(&crashy, format!("{p} run -f {lab}/crashy.yaml; {p} get pods; {p} describe pod crashy")),
        ),
        Point::new(
            "pod alive was restarted because its liveness probe failed",
            alive.is_ok(),
            hint(
                &alive,
                format!("{p} run -f {lab}/alive.yaml; {p} exec alive -- rm /tmp/healthy; {p} describe pod alive"),
            ),
        ),
        Point::new(
            "pod ready turned ready (1/1) once the file its readiness probe reads was there",
            ready.is_ok(),
            hint(&ready, format!("{p} run -f {lab}/ready.yaml; {p} get pods; {p} exec ready -- touch /tmp/ready")),
        ),
    ])
}

/// The podlab binary to run: `PODLAB_BIN` (tests), else this very program.
fn binary() -> Result<PathBuf> {
    match std::env::var_os("PODLAB_BIN") {
        Some(b) => Ok(PathBuf::from(b)),
        None => std::env::current_exe().map_err(|e| Error::io("find", "the podlab binary (/proc/self/exe)", e)),
    }
}

/// `podlab --root ROOT ARGS...`, explained, with its output passed on; an error when it fails.
fn podlab(root: &Path, args: &[&str]) -> Result<()> {
    let words: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    say(format!("podlab --root {} {}", root.display(), crate::explain::join(&words)));
    let out = Command::new(binary()?)
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PODLAB_ROOT")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io("run", "podlab", e))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(Error::invalid(format!(
            "podlab {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Whether `podlab --root ROOT ARGS...` succeeds (quietly: for polling).
fn succeeds(root: &Path, args: &[&str]) -> bool {
    binary().is_ok_and(|bin| {
        Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(args)
            .env_remove("PODLAB_ROOT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Poll `cond` every 200 ms until it gives Ok, or fail after `secs` with its last complaint.
fn wait_for<T>(what: &str, secs: u64, mut cond: impl FnMut() -> std::result::Result<T, String>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match cond() {
            Ok(v) => return Ok(v),
            Err(why) if Instant::now() > deadline => {
                return Err(Error::invalid(format!("{what}: not so after {secs} s ({why})")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    // Start over: pods and an agent of an earlier attempt would get in the way.
    reset(ctx)?;
    let root = node_root(&ctx.ws);
    let paths = node_paths(&root);
    say(format!("mkdir -p {}", ctx.ws.display()));
    std::fs::create_dir_all(&ctx.ws).ctx("create directory", &ctx.ws)?;
    for (_, file, yaml) in PODS {
        let path = ctx.ws.join(file);
        say(format!("cat > {} <<'EOF'\n{yaml}EOF", path.display()));
        std::fs::write(&path, yaml).ctx("write", &path)?;
    }

    // 1. The node: an image, a network namespace of its own, the agent in it.
    netns::create(NODE_NS)?;
    link::set_up(Some(NODE_NS), "lo")?;
    podlab(&root, &["image", "build", "busybox"])?;
    // A short back-off keeps the demonstration quick (Kubernetes starts at 10 s).
    podlab(&root, &["node", "--netns", NODE_NS, "--detach", "--backoff-initial", "1s"])?;

    // 2. The pods, as static manifests (`run -f` copies them into the manifest directory).
    for (_, file, _) in PODS {
        podlab(&root, &["run", "-f", &ctx.ws.join(file).display().to_string()])?;
    }

    // 3. Break alive's liveness once its command has made /tmp/healthy; make ready ready
    //    once its probe has failed.
    let healthy = ["exec", "alive", "--", "test", "-f", "/tmp/healthy"];
    say(format!("podlab --root {} {}   # until it succeeds", root.display(), healthy.join(" ")));
    wait_for("/tmp/healthy exists in pod alive", 60, || {
        if succeeds(&root, &healthy) { Ok(()) } else { Err("not yet".into()) }
    })?;
    podlab(&root, &["exec", "alive", "--", "rm", "/tmp/healthy"])?;
    wait_for("the readiness probe of pod ready failed", 60, || match find(&paths, "ready") {
        Some(p) if has_event(&events(&p.dir), "Unhealthy", "Readiness probe failed") => Ok(()),
        _ => Err("no failed readiness probe yet".into()),
    })?;
    podlab(&root, &["exec", "ready", "--", "touch", "/tmp/ready"])?;

    // 4. Wait for the kubelet's answers: restarts with back-off, a liveness restart, 1/1.
    wait_for("pod crashy is in CrashLoopBackOff", 60, || grade_crashy(&paths))?;
    wait_for("pod alive was restarted by its liveness probe", 60, || grade_alive(&paths))?;
    wait_for("pod ready is ready", 60, || grade_ready(&paths))?;
    podlab(&root, &["get", "pods"])
}

/// Send `signal` to `pid`, then SIGKILL if it still runs after `grace`; wait until it is gone.
fn stop(pid: i32, signal: Signal, grace: Duration) {
    let target = nix::unistd::Pid::from_raw(pid);
    say(format!("kill -{} {pid}", signal.as_str().trim_start_matches("SIG")));
    let _ = nix::sys::signal::kill(target, signal);
    let deadline = Instant::now() + grace;
    while proc::alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if proc::alive(pid) && signal != Signal::SIGKILL {
        say(format!("kill -KILL {pid}"));
        let _ = nix::sys::signal::kill(target, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc::alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Stop the node agent of podlab root `root` and remove every pod it ran, quickly and for
/// good: the agent first (so it restarts nothing), then each pod's supervisor is asked to
/// delete its pod (SIGTERM: grace period and teardown), and what is left of a pod whose
/// supervisor is gone or too slow is torn down from the names in its directory. The pods'
/// network lives in `node_ns` (the agent's namespace) unless the supervisor ran in ours.
/// Returns whether there was anything. Shared by labs 9 and 11.
pub(super) fn reset_node(root: &Path, node_ns: &str) -> Result<bool> {
    let paths = node_paths(root);
    let mut found = false;
    if let Some(pid) = agent::running(&paths) {
        found = true;
        stop(pid, Signal::SIGTERM, Duration::from_secs(2));
    }
    let pods = agent::existing(&paths.pods_dir());
    let own_net = proc::own_ns_inode("net").ok();
    let mut supervisors = Vec::new();
    let mut places = Vec::new();
    for e in &pods {
        found = true;
        let sup = node_info::live_pid(&e.dir.join(node_info::SUPERVISOR_PID));
        let in_ours = sup.is_some_and(|pid| proc::ns_inode(pid, "net").ok() == own_net);
        places.push((!in_ours && netns::exists(node_ns)).then(|| node_ns.to_string()));
        supervisors.extend(sup);
    }
    for pid in &supervisors {
        say(format!("kill -TERM {pid}   # the pod's supervisor deletes its pod"));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while supervisors.iter().any(|p| proc::alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in supervisors.iter().filter(|p| proc::alive(**p)) {
        stop(*pid, Signal::SIGKILL, Duration::ZERO);
    }
    let mut errors = Vec::new();
    for (e, place) in pods.iter().zip(places) {
        let Ok(node) = node_info::read_json::<NodeInfo>(&e.dir.join(node_info::NODE_FILE)) else { continue };
        let uid = e.pod.metadata.uid.clone().unwrap_or_default();
        let left = netns::run_in(place.as_deref(), || crate::pod::setup::teardown(&node, &e.pod, &e.dir, &uid))?;
        errors.extend(left.into_iter().map(|m| format!("pod {}: {m}", agent::key_of(&e.pod))));
    }
    if !errors.is_empty() {
        return Err(Error::invalid(errors.join("; ")));
    }
    // Whatever still runs in the node's namespace belongs to the lab's node: an agent or a
    // supervisor whose state directory is gone (the workspace removed by hand, say). SIGTERM
    // lets a supervisor delete its pod from what it knows; SIGKILL after a while.
    found |= stop_netns_processes(node_ns, Duration::from_secs(15));
    Ok(found)
}

/// SIGTERM to every process in network namespace `name` (if it exists), SIGKILL to those
/// still there after `grace`; returns whether there were any.
fn stop_netns_processes(name: &str, grace: Duration) -> bool {
    let Ok(inode) = netns::inode_of(name) else { return false };
    let me = std::process::id() as i32;
    let inside = || -> Vec<i32> {
        proc::pids().into_iter().filter(|p| *p != me && proc::ns_inode(*p, "net").is_ok_and(|i| i == inode)).collect()
    };
    let pids = inside();
    for pid in &pids {
        say(format!("kill -TERM {pid}   # still in network namespace {name}"));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !inside().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in inside() {
        stop(pid, Signal::SIGKILL, Duration::ZERO);
    }
    !pids.is_empty()
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let mut found = reset_node(&node_root(&ctx.ws), NODE_NS)?;
    // The namespace takes the bridge, the pods' veth ends and the node's iptables rules with it.
    found |= netns::exists(NODE_NS);
    netns::delete(NODE_NS)?;
    Ok(remove_workspace(&ctx.ws)? || found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_shows_the_lab_s_manifests() {
        let guide = include_str!("../../labs/11-kubelet/README.md");
        for (name, _, yaml) in PODS {
            assert!(guide.contains(yaml), "the guide shows the manifest of {name} as solve writes it");
        }
        assert!(guide.contains(NODE_NS));
    }

    #[test]
    fn the_manifests_parse() {
        let dir = std::env::temp_dir().join(format!("lab11-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, file, yaml) in PODS {
            let path = dir.join(file);
            std::fs::write(&path, yaml).unwrap();
            let objects = crate::pod::manifest::load(&path).unwrap();
            assert_eq!(objects.len(), 1);
            assert_eq!(objects[0].name(), name);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
