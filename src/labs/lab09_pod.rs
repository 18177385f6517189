//! Lab 9, the pause container and the pod: several processes that share one network.
//!
//! A pod is a group of containers that share the network, IPC and UTS namespaces of a tiny
//! "pause" process: one IP address, one localhost, one hostname. The kubelet (through the CRI
//! runtime) makes the pod's cgroup and the pause first, wires the pause's network namespace to
//! the node's bridge with a veth pair, then starts each container *into* those namespaces. The
//! learner does it with `unshare`, `ip` and `nsenter`; the node side lives in its own network
//! namespace (lab09-node) so the host's network is never touched.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

use super::{Ctx, Point, http_get, kill_and_wait, remove_workspace};
use crate::error::{Error, IoContext, Result};
use crate::explain::say;
use crate::pod::sandbox::{Sandbox, SandboxSpec};
use crate::primitives::cgroup::{self, Cgroup};
use crate::primitives::{link, netns, proc};

/// The node's network namespace: the lab's "host side" (bridge, veth end, gateway address).
pub(super) const NODE_NS: &str = "lab09-node";
/// The pod's network namespace, pinned under /run/netns.
const POD_NS: &str = "lab09-pod";
const BRIDGE: &str = "lab09br";
/// The node's end of the pod's veth pair (the pod's end is eth0).
const VETH: &str = "lab09-veth";
const NODE_ADDR: &str = "10.209.0.1/24";
const POD_ADDR: &str = "10.209.0.2/24";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 209, 0, 1);
const POD_IP: Ipv4Addr = Ipv4Addr::new(10, 209, 0, 2);
/// The pod cgroup, relative to the cgroup root (the kubelet's is kubepods/.../pod<uid>).
const CGROUP: &str = "podlab/lab09-pod";
const HOSTNAME: &str = "lab09-pod";
const PORT: u16 = 8080;
/// The page the web container serves (`$LAB/rootfs/www/index.html`).
const PAGE: &str = "hello from pod lab09\n";
/// What the client container runs: fetch the page over the pod's localhost, every second.
const CLIENT_LOOP: &str =
    "while true; do wget -q -O /tmp/new.txt http://127.0.0.1:8080/ && mv /tmp/new.txt /tmp/fetched.txt; sleep 1; done";
/// The namespaces the containers of a pod share with its pause.
const SHARED: [(&str, CloneFlags); 3] =
    [("net", CloneFlags::CLONE_NEWNET), ("ipc", CloneFlags::CLONE_NEWIPC), ("uts", CloneFlags::CLONE_NEWUTS)];

/// The two-container pod of the guide's last part, run by the node agent (`podlab run -f`).
#[cfg(test)]
pub const POD_YAML: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: lab09
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo 'hello from pod lab09' > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: client
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while true; do wget -q -O /tmp/new.txt http://127.0.0.1:8080/ && mv /tmp/new.txt /tmp/fetched.txt; sleep 1; done"]
"#;

/// One process of the pod, as its pid file names it.
#[derive(Clone, Copy)]
struct Role {
    /// "pause", "web", "client": the pid file is `$LAB/NAME.pid`.
    name: &'static str,
    /// Words one of which its command line contains (to tell it from a recycled pid).
    marks: &'static [&'static str],
}

const PAUSE: Role = Role { name: "pause", marks: &["sleep", "__pause"] };
const WEB: Role = Role { name: "web", marks: &["httpd"] };
const CLIENT: Role = Role { name: "client", marks: &["wget"] };

struct Paths {
    ws: PathBuf,
    rootfs: PathBuf,
}

impl Paths {
    fn new(ws: &Path) -> Paths {
        Paths { ws: ws.to_path_buf(), rootfs: ws.join("rootfs") }
    }

    fn pid_file(&self, role: Role) -> PathBuf {
        self.ws.join(format!("{}.pid", role.name))
    }

    fn page(&self) -> PathBuf {
        self.rootfs.join("www/index.html")
    }

    fn fetched(&self) -> PathBuf {
        self.rootfs.join("tmp/fetched.txt")
    }

    /// The live process a pid file names, if it still runs the role's program.
    fn pid(&self, role: Role) -> std::result::Result<i32, String> {
        let file = self.pid_file(role);
        let text = std::fs::read_to_string(&file).map_err(|_| format!("{} is missing", file.display()))?;
        let pid: i32 =
            text.trim().parse().map_err(|_| format!("{} holds {:?}, not a pid", file.display(), text.trim()))?;
        let cmdline = cmdline(pid);
        if !proc::alive(pid) || cmdline.is_empty() {
            return Err(format!("{} names pid {pid}, which is not running", file.display()));
        }
        if !role.marks.iter().any(|m| cmdline.contains(m)) {
            return Err(format!("pid {pid} ({}) runs {cmdline:?}, not {}", file.display(), role.marks.join(" or ")));
        }
        Ok(pid)
    }
}

/// `/proc/PID/cmdline` with spaces between the arguments ("" when gone).
fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The namespaces of `SHARED` in which `pid` differs from `other`, by name.
fn differing(pid: i32, other: i32) -> Vec<&'static str> {
    SHARED
        .iter()
        .map(|(ns, _)| *ns)
        .filter(|ns| match (proc::ns_inode(pid, ns), proc::ns_inode(other, ns)) {
            (Ok(a), Ok(b)) => a != b,
            _ => true,
        })
        .collect()
}

/// The namespaces of `SHARED` that `pid` shares with the caller (the host).
fn host_shared(pid: i32) -> Vec<&'static str> {
    SHARED
        .iter()
        .map(|(ns, _)| *ns)
        .filter(|ns| matches!((proc::ns_inode(pid, ns), proc::own_ns_inode(ns)), (Ok(a), Ok(b)) if a == b))
        .collect()
}

/// `GET /` on 127.0.0.1:PORT from inside the network namespace of `pid` (as a container of
/// the pod would): the status code and the body.
fn http_get_in(pid: i32) -> std::result::Result<(u16, String), String> {
    let path = format!("/proc/{pid}/ns/net");
    let ns = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    // setns moves only the calling thread: do it on a thread of its own.
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns({path}): {e}"))?;
            http_get(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT))
        })
        .join()
        .unwrap_or_else(|_| Err("the HTTP thread panicked".into()))
    })
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let p = Paths::new(&ctx.ws);
    let lab = ctx.ws.display();
    let mut points = Vec::new();

    // The node: its namespace, the bridge with the gateway address.
    let node = netns::exists(NODE_NS);
    let bridge = if node { link::get(Some(NODE_NS), BRIDGE).ok().flatten() } else { None };
    points.push(Point::new(
        format!("network namespace {NODE_NS} holds bridge {BRIDGE}, up, with {NODE_ADDR}"),
        bridge
            .as_ref()
            .is_some_and(|b| b.up && b.kind.as_deref() == Some("bridge") && b.addrs.iter().any(|a| a == NODE_ADDR)),
        format!(
            "ip netns add {NODE_NS}; ip -n {NODE_NS} link add {BRIDGE} type bridge; \
             ip -n {NODE_NS} addr add {NODE_ADDR} dev {BRIDGE}; ip -n {NODE_NS} link set {BRIDGE} up"
        ),
    ));

    // The pause: its own net, ipc and uts namespaces, the pod's hostname.
    let pause = p.pid(PAUSE);
    let pause_ok = pause.as_ref().map_err(String::clone).and_then(|&pid| {
        let shared = host_shared(pid);
        if !shared.is_empty() && cmdline(pid).starts_with("unshare") {
            return Err(format!(
                "pid {pid} is unshare itself: with --fork it stays in the host's namespaces and the pause is \
                 its child; leave --fork out (it is for --pid) so that unshare execs the pause"
            ));
        }
        if !shared.is_empty() {
            return Err(format!("pause (pid {pid}) still shares the host's {} namespace", shared.join(", ")));
        }
        match crate::primitives::namespace::hostname_of(pid) {
            Ok(h) if h == HOSTNAME => Ok(pid),
            Ok(h) => Err(format!("the pod's hostname is {h:?}: nsenter --target {pid} --uts hostname {HOSTNAME}")),
            Err(e) => Err(e.to_string()),
        }
    });
    points.push(Point::new(
        format!("the pause ({lab}/pause.pid) has its own net, ipc and uts namespaces, hostname {HOSTNAME}"),
        pause_ok.is_ok(),
        match &pause_ok {
            Ok(_) => String::new(),
            Err(why) => format!("{why} — unshare --net --ipc --uts sleep infinity & echo $! > {lab}/pause.pid"),
        },
    ));

    // Its network namespace, pinned.
    let pinned = match (&pause, netns::inode_of(POD_NS)) {
        (Ok(pid), Ok(inode)) => proc::ns_inode(*pid, "net").is_ok_and(|i| i == inode),
        _ => false,
    };
    points.push(Point::new(
        format!("the pause's network namespace is pinned as /run/netns/{POD_NS}"),
        pinned,
        format!(
            "ip netns attach {POD_NS} $(cat {lab}/pause.pid)   (ip netns delete {POD_NS} first if it names another)"
        ),
    ));

    // The containers join the pause's namespaces.
    let client_program = format!("sh -c '{CLIENT_LOOP}'");
    for (role, program) in [(WEB, "httpd -f -p 8080 -h /www"), (CLIENT, client_program.as_str())] {
        let joined = match (&pause, p.pid(role)) {
            (Ok(pause), Ok(pid)) => match differing(pid, *pause) {
                d if d.is_empty() => Ok(pid),
                d => Err(format!("{} (pid {pid}) has other {} namespaces than the pause", role.name, d.join(", "))),
            },
            (Err(_), _) => Err("start the pause first".to_string()),
            (_, Err(why)) => Err(why),
        };
        points.push(Point::new(
            format!("{} ({lab}/{}.pid) shares the pause's net, ipc and uts namespaces", role.name, role.name),
            joined.is_ok(),
            match joined {
                Ok(_) => String::new(),
                Err(why) => format!(
                    "{why} — nsenter --target $(cat {lab}/pause.pid) --net --ipc --uts chroot {lab}/rootfs {program} & \
                     echo $! > {lab}/{}.pid",
                    role.name
                ),
            },
        ));
    }

    // The pod's end of the network.
    let pod_ns = netns::exists(POD_NS);
    let inside = if pod_ns { link::list(Some(POD_NS)).unwrap_or_default() } else { Vec::new() };
    let eth0 = inside.iter().any(|l| l.name == "eth0" && l.up && l.addrs.iter().any(|a| a == POD_ADDR));
    let lo = inside.iter().any(|l| l.name == "lo" && l.up);
    let route = pod_ns
        && link::routes(Some(POD_NS))
            .unwrap_or_default()
            .iter()
            .any(|r| r.starts_with(&format!("default via {GATEWAY}")));
    points.push(Point::new(
        format!("in {POD_NS}: eth0 is up with {POD_ADDR}, lo is up, the default route goes via {GATEWAY}"),
        eth0 && lo && route,
        format!(
            "seen eth0 {eth0}, lo {lo}, default route {route}: ip -n {POD_NS} addr add {POD_ADDR} dev eth0; \
             ip -n {POD_NS} link set eth0 up; ip -n {POD_NS} link set lo up; ip -n {POD_NS} route add default via {GATEWAY}"
        ),
    ));
    let port = if node { link::get(Some(NODE_NS), VETH).ok().flatten() } else { None };
    points.push(Point::new(
        format!("in {NODE_NS}: {VETH}, the node's end of the pod's veth, is a port of {BRIDGE} and up"),
        port.is_some_and(|p| p.up && p.master.as_deref() == Some(BRIDGE)),
        format!(
            "ip -n {NODE_NS} link add {VETH} type veth peer name eth0 netns {POD_NS}; \
             ip -n {NODE_NS} link set {VETH} master {BRIDGE} up"
        ),
    ));
    let ping = node && netns::ping(Some(NODE_NS), POD_IP, Duration::from_secs(1)).is_ok();
    points.push(Point::new(
        format!("the node ({NODE_NS}) reaches the pod at {POD_IP} (ping)"),
        ping,
        format!("ip netns exec {NODE_NS} ping -c 1 {POD_IP}: the bridge, the veth and both addresses must be in place"),
    ));

    // localhost is shared: the web container answers there, the client container fetched from there.
    let page = std::fs::read_to_string(p.page()).unwrap_or_default();
    let answer = match &pause {
        Ok(pid) => http_get_in(*pid),
        Err(_) => Err("no pause process".to_string()),
    };
    let served = match &answer {
        Ok((200, body)) if !page.is_empty() && *body == page => Ok(()),
        Ok((200, body)) => Err(format!("the answer {body:?} is not {}", p.page().display())),
        Ok((code, _)) => Err(format!("HTTP {code}")),
        Err(why) => Err(why.clone()),
    };
    points.push(Point::new(
        format!("GET http://127.0.0.1:{PORT}/ inside the pod's network namespace answers with {}", p.page().display()),
        served.is_ok(),
        match served {
            Ok(()) => String::new(),
            Err(why) => {
                format!("{why} — is httpd running with -h /www, and {}/www/index.html there?", p.rootfs.display())
            }
        },
    ));
    let fetched = std::fs::read_to_string(p.fetched()).unwrap_or_default();
    points.push(Point::new(
        format!("the client fetched the page over localhost ({})", p.fetched().display()),
        !page.is_empty() && fetched == page,
        format!(
            "seen {fetched:?}: the client runs sh -c '{CLIENT_LOOP}' in the pod's namespaces, chrooted in {}",
            p.rootfs.display()
        ),
    ));

    // The pod cgroup.
    let cg = Cgroup::new(CGROUP)?;
    let outside: Vec<String> = [PAUSE, WEB, CLIENT]
        .iter()
        .filter_map(|role| match p.pid(*role) {
            Ok(pid) => {
                let inside = cgroup::backend().cgroup_of(pid).is_some_and(|c| c.starts_with(CGROUP));
                (!inside).then(|| format!("{} (pid {pid})", role.name))
            }
            Err(_) => Some(format!("{} (not running)", role.name)),
        })
        .collect();
    points.push(Point::new(
        format!("the cgroup {CGROUP} exists and holds the pause, web and client"),
        cg.exists() && outside.is_empty(),
        format!(
            "not in it: {}; mkdir -p $CGS; for pid in $(cat {lab}/*.pid); do for g in $CGS; do echo $pid > $g/cgroup.procs; done; done",
            if outside.is_empty() { "-".to_string() } else { outside.join(", ") }
        ),
    ));
    Ok(points)
}

/// Start `argv` as a container of the pod: in the pause's net, ipc and uts namespaces,
/// chrooted in `root`, detached (its own session, no stdio), then moved into the pod cgroup
/// (as the guide's `nsenter ... &` and `echo $! > cgroup.procs`). Returns its pid.
fn spawn_in_pod(pause: i32, cg: &Cgroup, root: &Path, argv: &[&str]) -> Result<i32> {
    let mut namespaces = Vec::new();
    for (ns, flag) in SHARED {
        let path = format!("/proc/{pause}/ns/{ns}");
        namespaces.push((File::open(&path).ctx("open namespace", &path)?, flag));
    }
    let root_c = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::invalid("root path contains a NUL byte"))?;
    let shown = crate::explain::join(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    say(format!("nsenter --target {pause} --net --ipc --uts chroot {} {shown} &", root.display()));
    let ns_fds: Vec<(i32, libc::c_int)> = namespaces.iter().map(|(f, flag)| (f.as_raw_fd(), flag.bits())).collect();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe system calls (setsid, setns, chroot, chdir) between fork
    // and exec, on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            for (fd, flag) in &ns_fds {
                if libc::setns(*fd, *flag) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::chroot(root_c.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::io("start", argv[0], e))?;
    let pid = child.id() as i32;
    if let Err(e) = cg.join(pid) {
        kill_and_wait(&[pid]);
        return Err(e);
    }
    Ok(pid)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).ctx("create directory", parent)?;
    }
    std::fs::write(path, text).ctx("write", path)
}

fn write_pid(p: &Paths, role: Role, pid: i32) -> Result<()> {
    let file = p.pid_file(role);
    say(format!("echo {pid} > {}", file.display()));
    write_file(&file, &format!("{pid}\n"))
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    // Start over: a half-made pod of an earlier attempt would get in the way.
    reset(ctx)?;
    let p = Paths::new(&ctx.ws);
    say(format!("podlab rootfs busybox {}", p.rootfs.display()));
    super::ensure_rootfs(&p.rootfs)?;
    say(format!("mkdir -p {0}/www && echo '{1}' > {0}/www/index.html", p.rootfs.display(), PAGE.trim_end()));
    write_file(&p.page(), PAGE)?;

    // 1. The pod's cgroup, first: everything of the pod goes in.
    let cg = Cgroup::new(CGROUP)?;
    cg.create()?;

    // 2. The pod's network namespace, pinned before the pause exists (as CRI runtimes do),
    //    and the pause, which joins it and makes new ipc and uts namespaces.
    netns::create(POD_NS)?;
    let pause = Sandbox::start(&SandboxSpec {
        hostname: HOSTNAME.into(),
        network: true,
        netns: Some(netns::path(POD_NS)),
        share_pid: false,
        cgroup: Some(CGROUP.into()),
    })?;
    write_pid(&p, PAUSE, pause.pid)?;

    // 3. The node: a bridge with the gateway address, and the pod's veth plugged into it.
    netns::create(NODE_NS)?;
    link::set_up(Some(NODE_NS), "lo")?;
    link::create_bridge(Some(NODE_NS), BRIDGE)?;
    link::add_addr(Some(NODE_NS), BRIDGE, NODE_ADDR)?;
    link::set_up(Some(NODE_NS), BRIDGE)?;
    link::create_veth(Some(NODE_NS), VETH, "eth0", Some(POD_NS))?;
    link::set_master(Some(NODE_NS), VETH, BRIDGE)?;
    link::set_up(Some(NODE_NS), VETH)?;
    link::add_addr(Some(POD_NS), "eth0", POD_ADDR)?;
    link::set_up(Some(POD_NS), "eth0")?;
    link::add_route(Some(POD_NS), None, Some(GATEWAY.into()), Some("eth0"))?;
    netns::ping(Some(NODE_NS), POD_IP, Duration::from_secs(2))?;

    // 4. Two containers in the pause's namespaces: a web server and a client of localhost.
    let web = spawn_in_pod(pause.pid, &cg, &p.rootfs, &["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])?;
    write_pid(&p, WEB, web)?;
    let client = spawn_in_pod(pause.pid, &cg, &p.rootfs, &["/bin/sh", "-c", CLIENT_LOOP])?;
    write_pid(&p, CLIENT, client)?;

    // 5. The client has fetched the page over the pod's localhost.
    say(format!("cat {}", p.fetched().display()));
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::fs::read_to_string(p.fetched()).unwrap_or_default() != PAGE {
        if Instant::now() > deadline {
            return Err(Error::invalid(format!(
                "the client did not fetch http://127.0.0.1:{PORT}/ within 15 s ({} is not the page)",
                p.fetched().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The processes of the lab made by hand or by solve: those the pid files name (when they
/// still run the lab's programs) and every process in the pod's pinned network namespace.
fn lab_processes(p: &Paths) -> Vec<i32> {
    let mut pids: Vec<i32> = [PAUSE, WEB, CLIENT].iter().filter_map(|r| p.pid(*r).ok()).collect();
    if let Ok(inode) = netns::inode_of(POD_NS) {
        let me = std::process::id() as i32;
        pids.extend(
            proc::pids().into_iter().filter(|pid| *pid != me && proc::ns_inode(*pid, "net").is_ok_and(|i| i == inode)),
        );
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let p = Paths::new(&ctx.ws);
    // The last part of the guide: the node agent of $LAB/root and its pods.
    let mut found = super::lab11_kubelet::reset_node(&ctx.ws.join("root"), NODE_NS)?;
    let pids = lab_processes(&p);
    found |= !pids.is_empty();
    kill_and_wait(&pids);
    for ns in [POD_NS, NODE_NS] {
        found |= netns::exists(ns);
        netns::delete(ns)?;
    }
    let cg = Cgroup::new(CGROUP)?;
    found |= cg.exists();
    cg.remove()?;
    Ok(remove_workspace(&ctx.ws)? || found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_shows_the_lab_s_own_commands() {
        let guide = include_str!("../../labs/09-pod/README.md");
        assert!(guide.contains(POD_YAML), "the guide's YAML is POD_YAML");
        assert!(guide.contains(CLIENT_LOOP), "the guide's client loop is CLIENT_LOOP");
        assert!(guide.contains(PAGE.trim_end()));
        for name in [NODE_NS, POD_NS, BRIDGE, VETH, NODE_ADDR, POD_ADDR, CGROUP, HOSTNAME] {
            assert!(guide.contains(name), "{name} is in the guide");
        }
    }

    #[test]
    fn the_pod_yaml_parses() {
        let dir = std::env::temp_dir().join(format!("lab09-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pod.yaml");
        std::fs::write(&file, POD_YAML).unwrap();
        let objects = crate::pod::manifest::load(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].name(), "lab09");
    }
}
