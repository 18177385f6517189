//! Network namespaces, veth pairs, bridges, addresses and routes on the real kernel,
//! cross-checked with iproute2. Each test uses its own names (with the test process id)
//! and only 10.250.x.x addresses inside namespaces it created, and ends by checking that
//! nothing is left: no netns file, no host link.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::ForkResult;
use podlab::explain;
use podlab::primitives::{link, netns};

fn pid() -> u32 {
    std::process::id()
}

/// A netns name of this test run.
fn ns_name(test: &str) -> String {
    format!("podlab-t-{test}-{}", pid())
}

/// A third octet for this run's 10.250.x.0/24 (each test's namespaces are private anyway).
fn octet(offset: u32) -> u8 {
    ((pid() + offset) % 250) as u8
}

/// Run `ip ARGS` and return its stdout (cross-check only).
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes what a test made, even when it fails half-way.
struct Cleanup {
    netns: Vec<String>,
    links: Vec<String>,
}

impl Cleanup {
    fn new(netns: &[&str], links: &[&str]) -> Cleanup {
        Cleanup {
            netns: netns.iter().map(|s| s.to_string()).collect(),
            links: links.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Delete everything, then assert that it is really gone.
    fn finish(&self) {
        self.remove();
        for ns in &self.netns {
            assert!(!netns::path(ns).exists(), "netns file {ns} left behind");
            assert!(!netns::exists(ns));
        }
        for l in &self.links {
            assert!(!link::exists(None, l), "host link {l} left behind");
        }
    }

    fn remove(&self) {
        for l in &self.links {
            let _ = link::delete(None, l);
        }
        for ns in &self.netns {
            let _ = netns::delete(ns);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[test]
fn netns_create_list_delete() {
    let name = ns_name("life");
    let guard = Cleanup::new(&[&name], &[]);

    netns::create(&name).unwrap();
    assert!(netns::exists(&name));
    assert!(netns::list().unwrap().contains(&name));
    assert!(ip(&["netns", "list"]).lines().any(|l| l.split_whitespace().next() == Some(name.as_str())));

    // The file is the namespace: run_in really enters it, and it is not the host's.
    let inode = netns::inode_of(&name).unwrap();
    let inside = netns::run_in(Some(&name), || std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()).unwrap();
    let host = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    assert_eq!(inode, inside);
    assert_ne!(inode, host);
    let here = netns::run_in(None, || std::thread::current().id()).unwrap();
    assert_eq!(here, std::thread::current().id(), "run_in(None) must stay on the caller's thread");

    // A new namespace has only a loopback device, down.
    let links = link::list(Some(&name)).unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0].name, "lo");
    assert!(!links[0].up);
    link::set_up(Some(&name), "lo").unwrap();
    assert!(link::get(Some(&name), "lo").unwrap().unwrap().up);
    assert!(link::get(Some(&name), "lo").unwrap().unwrap().addrs.contains(&"127.0.0.1/8".to_string()));
    netns::ping(Some(&name), Ipv4Addr::LOCALHOST, Duration::from_secs(1)).unwrap();

    let again = netns::create(&name).unwrap_err().to_string();
    assert!(again.contains("already exists") && again.contains(&name), "{again}");

    netns::delete(&name).unwrap();
    assert!(!netns::exists(&name));
    assert!(!netns::list().unwrap().contains(&name));
    assert!(!ip(&["netns", "list"]).contains(&name));
    netns::delete(&name).unwrap(); // idempotent
    let missing = netns::inode_of(&name).unwrap_err().to_string();
    assert!(missing.contains("does not exist") && missing.contains(&name), "{missing}");
    guard.finish();
}

#[test]
fn netns_made_by_iproute2_is_usable() {
    let name = ns_name("ipr");
    let guard = Cleanup::new(&[&name], &[]);
    ip(&["netns", "add", &name]);
    assert!(netns::exists(&name));
    link::set_up(Some(&name), "lo").unwrap();
    assert!(ip(&["-n", &name, "link", "show", "lo"]).contains("UP"));
    netns::delete(&name).unwrap();
    assert!(!ip(&["netns", "list"]).contains(&name));
    guard.finish();
}

#[test]
fn bridge_two_netns_ping_and_explain() {
    let (a, b) = (ns_name("bra"), ns_name("brb"));
    let (bridge, host_a, host_b) = (format!("pltbr{}", pid()), format!("pltb{}a", pid()), format!("pltb{}b", pid()));
    let guard = Cleanup::new(&[&a, &b], &[&host_a, &host_b, &bridge]);
    let x = octet(0);
    let (addr_a, addr_b) = (format!("10.250.{x}.1/24"), format!("10.250.{x}.2/24"));

    explain::start_recording();
    link::create_bridge(None, &bridge).unwrap();
    link::set_up(None, &bridge).unwrap();
    for (ns, host_end, addr) in [(&a, &host_a, &addr_a), (&b, &host_b, &addr_b)] {
        netns::create(ns).unwrap();
        link::create_veth(None, host_end, "eth0", Some(ns)).unwrap();
        link::set_master(None, host_end, &bridge).unwrap();
        link::set_up(None, host_end).unwrap();
        link::add_addr(Some(ns), "eth0", addr).unwrap();
        link::add_addr(Some(ns), "eth0", addr).unwrap(); // already there: fine
        link::set_up(Some(ns), "eth0").unwrap();
        link::set_up(Some(ns), "lo").unwrap();
    }
    link::add_route(Some(&a), None, Some(IpAddr::V4(Ipv4Addr::new(10, 250, x, 2))), Some("eth0")).unwrap();
    let rtt = netns::ping(Some(&a), Ipv4Addr::new(10, 250, x, 2), Duration::from_secs(2)).unwrap();
    assert!(rtt < Duration::from_secs(2));
    let recorded = explain::take_recorded();

    // What podlab says it did, in order (other tests' lines filtered out by our names).
    let ours: Vec<&String> = recorded
        .iter()
        .filter(|l| !l.contains(&host_b) && (l.contains(&bridge) || l.contains(&host_a) || l.contains(&a)))
        .collect();
    let expected = [
        format!("ip link add {bridge} type bridge"),
        format!("ip link set {bridge} up"),
        format!("ip netns add {a}"),
        format!("ip link add {host_a} type veth peer name eth0 netns {a}"),
        format!("ip link set {host_a} master {bridge}"),
        format!("ip link set {host_a} up"),
        format!("ip -n {a} addr add {addr_a} dev eth0"),
        format!("ip -n {a} addr add {addr_a} dev eth0"),
        format!("ip -n {a} link set eth0 up"),
        format!("ip -n {a} link set lo up"),
        format!("ip -n {a} route add default via 10.250.{x}.2 dev eth0"),
        format!("ip netns exec {a} ping -c 1 10.250.{x}.2"),
    ];
    assert_eq!(ours, expected.iter().collect::<Vec<_>>());

    // ... and what the kernel says, through podlab and through iproute2.
    let br = link::get(None, &bridge).unwrap().unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(br.up);
    let port = link::get(None, &host_a).unwrap().unwrap();
    assert_eq!((port.kind.as_deref(), port.master.as_deref(), port.up), (Some("veth"), Some(bridge.as_str()), true));
    let eth0 = link::get(Some(&a), "eth0").unwrap().unwrap();
    assert!(eth0.up && eth0.addrs.contains(&addr_a), "{eth0:?}");
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert!(ip(&["-n", &a, "addr", "show", "dev", "eth0"]).contains(&format!("inet {addr_a}")));
    assert!(ip(&["link", "show", &host_a]).contains(&format!("master {bridge}")));
    let routes = link::routes(Some(&a)).unwrap();
    assert!(routes.contains(&format!("default via 10.250.{x}.2 dev eth0")), "{routes:?}");
    assert!(routes.contains(&format!("10.250.{x}.0/24 dev eth0")), "{routes:?}");
    assert!(ip(&["-n", &a, "route"]).contains(&format!("default via 10.250.{x}.2 dev eth0")));

    // The other way round, and to an address nobody has: no reply, within the timeout.
    netns::ping(Some(&b), Ipv4Addr::new(10, 250, x, 1), Duration::from_secs(2)).unwrap();
    let start = Instant::now();
    let err = netns::ping(Some(&a), Ipv4Addr::new(10, 250, x, 99), Duration::from_millis(500)).unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1500), "ping took {:?}", start.elapsed());
    let msg = err.to_string();
    assert!(msg.contains(&format!("no reply from 10.250.{x}.99")) && msg.contains(&a), "{msg}");

    // Deleting the host end of a veth removes the pair; deleting twice is fine.
    link::delete(None, &host_a).unwrap();
    assert!(!link::exists(None, &host_a));
    assert!(!link::exists(Some(&a), "eth0"));
    link::delete(None, &host_a).unwrap();
    link::delete(Some(&a), "eth0").unwrap();
    guard.finish();
    link::delete(None, &bridge).unwrap();
    link::delete(Some(&a), "eth0").unwrap(); // namespace gone: nothing to delete
}

#[test]
fn veth_between_two_netns_and_ipv6() {
    let (a, b) = (ns_name("va"), ns_name("vb"));
    let guard = Cleanup::new(&[&a, &b], &[]);
    netns::create(&a).unwrap();
    netns::create(&b).unwrap();
    let x = octet(1);

    // Both ends away from the host: created in a, the peer straight into b.
    link::create_veth(Some(&a), "left", "right", Some(&b)).unwrap();
    assert!(link::exists(Some(&a), "left") && link::exists(Some(&b), "right"));
    assert!(!link::exists(None, "left"));
    link::add_addr(Some(&a), "left", &format!("10.250.{x}.1/30")).unwrap();
    link::add_addr(Some(&b), "right", &format!("10.250.{x}.2/30")).unwrap();
    link::add_addr(Some(&a), "left", "fd00:250::1/64").unwrap();
    link::set_up(Some(&a), "left").unwrap();
    link::set_up(Some(&b), "right").unwrap();
    netns::ping(Some(&b), Ipv4Addr::new(10, 250, x, 1), Duration::from_secs(2)).unwrap();
    let shown = ip(&["-n", &a, "addr", "show", "dev", "left"]);
    assert!(shown.contains("inet6 fd00:250::1/64"), "{shown}");
    assert!(link::get(Some(&a), "left").unwrap().unwrap().addrs.contains(&"fd00:250::1/64".to_string()));

    // A route to a device without a gateway, then down again.
    link::add_route(Some(&b), Some(&format!("10.250.{}.0/24", octet(2))), None, Some("right")).unwrap();
    assert!(link::routes(Some(&b)).unwrap().contains(&format!("10.250.{}.0/24 dev right", octet(2))));
    link::set_down(Some(&a), "left").unwrap();
    assert!(!link::get(Some(&a), "left").unwrap().unwrap().up);

    // Both ends of a pair in one namespace when no peer namespace is given.
    link::create_veth(Some(&a), "one", "two", None).unwrap();
    assert!(link::exists(Some(&a), "one") && link::exists(Some(&a), "two"));
    let dup = link::create_veth(Some(&a), "one", "three", None).unwrap_err().to_string();
    assert!(dup.contains("one") && dup.contains(&a) && dup.contains("File exists"), "{dup}");
    guard.finish();
}

#[test]
fn bad_input_gives_clear_errors() {
    for bad in ["", "a/b", "..", &"n".repeat(65)] {
        let e = netns::create(bad).unwrap_err().to_string();
        assert!(e.contains("invalid network namespace name"), "{bad:?}: {e}");
    }
    assert!(netns::delete("a/b").is_err());
    assert!(!std::path::Path::new(netns::NETNS_DIR).join("..").join("a").exists());

    let long = format!("pltoolong{}xxxxxxx", pid());
    let e = link::create_bridge(None, &long).unwrap_err().to_string();
    assert!(e.contains("15 bytes") && e.contains(&long), "{e}");
    assert!(!link::exists(None, &long));
    let e = link::create_veth(None, "plt a", "b", None).unwrap_err().to_string();
    assert!(e.contains("invalid interface name"), "{e}");

    let missing = ns_name("nothere");
    let e = link::set_up(Some(&missing), "lo").unwrap_err().to_string();
    assert!(e.contains(&missing) && e.contains("does not exist"), "{e}");
    let e = link::create_veth(None, &format!("pltm{}", pid()), "eth0", Some(&missing)).unwrap_err().to_string();
    assert!(e.contains(&missing), "{e}");
    assert!(!link::exists(None, &format!("pltm{}", pid())));
    assert!(netns::ping(Some(&missing), Ipv4Addr::LOCALHOST, Duration::from_millis(100)).is_err());
    netns::delete(&missing).unwrap();
    link::delete(Some(&missing), "eth0").unwrap();
    link::delete(None, &format!("pltm{}", pid())).unwrap();

    let name = ns_name("bad");
    let guard = Cleanup::new(&[&name], &[]);
    netns::create(&name).unwrap();
    for cidr in ["10.250.1.1", "10.250.1.1/33", "10.250.1/24", "fd00::1/129", "x/8"] {
        let e = link::add_addr(Some(&name), "lo", cidr).unwrap_err().to_string();
        assert!(e.contains("invalid address") && e.contains(cidr), "{cidr}: {e}");
    }
    let e = link::add_addr(Some(&name), "eth9", "10.250.1.1/24").unwrap_err().to_string();
    assert_eq!(e, format!("cannot add address 10.250.1.1/24 to eth9 in netns {name}: No such device"));
    let e = link::add_route(Some(&name), Some("10.250.1.1/24"), None, Some("lo")).unwrap_err().to_string();
    assert!(e.contains("did you mean 10.250.1.0/24"), "{e}");
    let e = link::add_route(Some(&name), None, None, None).unwrap_err().to_string();
    assert!(e.contains("needs a gateway or a device"), "{e}");
    let e = netns::ping(Some(&name), Ipv4Addr::new(10, 250, 1, 1), Duration::from_millis(200)).unwrap_err().to_string();
    assert!(e.contains(&name) && e.contains("10.250.1.1") && e.contains("unreachable"), "{e}");
    guard.finish();
}

#[test]
fn loopback_up_in_a_single_threaded_child() {
    // Like a container init: bring up lo on the caller's own thread, in its own fresh network
    // namespace; the process must stay single-threaded (so unshare(CLONE_NEWNS) still works).
    let (read, write) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only runs the closure below and leaves with _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            drop(read);
            let outcome = (|| -> Result<(), String> {
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
                link::set_up(None, "lo").map_err(|e| e.to_string())?;
                let lo = link::get(None, "lo").map_err(|e| e.to_string())?.ok_or("no lo")?;
                if !lo.up || !lo.addrs.contains(&"127.0.0.1/8".to_string()) {
                    return Err(format!("lo not up: {lo:?}"));
                }
                let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
                if !status.lines().any(|l| l.split_whitespace().eq(["Threads:", "1"])) {
                    return Err("more than one thread after set_up(None, lo)".into());
                }
                unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))
            })();
            let message = outcome.err().unwrap_or_default();
            let _ = nix::unistd::write(&write, message.as_bytes());
            // SAFETY: leave without running the harness's destructors.
            unsafe { libc::_exit(i32::from(!message.is_empty())) };
        }
        ForkResult::Parent { child } => {
            drop(write);
            let status = waitpid(child, None).unwrap();
            let mut message = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut message).unwrap();
            assert_eq!(status, WaitStatus::Exited(child, 0), "child failed: {message}");
        }
    }
}
