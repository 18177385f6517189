//! The pod network (src/pod/network.rs) on the real kernel, as root: each test makes its own
//! network namespace as "the node" (bridge, iptables rules and sysctls live there) and pod
//! namespaces beside it, then checks from outside with ping, TCP, `ip` and `iptables-save`.
//! The /etc/hosts and resolv.conf builders are checked against the kubelet's format.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use common::TestRoot;
use podlab::explain;
use podlab::pod::ipam::Ipam;
use podlab::pod::manifest::Pod;
use podlab::pod::network::{self, HostPort, NodeNetConfig, PodNet};
use podlab::primitives::{link, netns};

/// The tests that change a network one at a time: the first one records what is explained,
/// and explanations from other threads of this process would mix into its record.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn pid() -> u32 {
    std::process::id()
}

/// A third octet for this run's second node address (each test's node is private anyway).
fn octet() -> u8 {
    (pid() % 250) as u8
}

/// A node namespace, pod namespaces and a state directory; all deleted on drop, even when an
/// assertion fails half-way. Deleting the node's namespace takes its bridge, veths and rules.
struct Lab {
    node: String,
    pods: Vec<String>,
    /// The state directory (IPAM files, the network lock), removed when dropped.
    _root: TestRoot,
    cfg: NodeNetConfig,
}

impl Lab {
    fn new(test: &str) -> Lab {
        let node = format!("podlab-t-pn-{test}-{}", pid());
        let root = TestRoot::new(&format!("pn-{test}"));
        let cfg = NodeNetConfig::new(root.dir.join("ipam"));
        netns::create(&node).unwrap();
        link::set_up(Some(&node), "lo").unwrap();
        Lab { node, pods: Vec::new(), _root: root, cfg }
    }

    /// A pod network namespace (as the sandbox would make it).
    fn pod_ns(&mut self, name: &str) -> String {
        let ns = format!("podlab-t-pn-{name}-{}", pid());
        netns::create(&ns).unwrap();
        self.pods.push(ns.clone());
        ns
    }

    /// Run `f` in the node's network namespace.
    fn on_node<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(Some(&self.node), f).unwrap()
    }

    fn ensure(&self) {
        self.on_node(|| network::ensure_node(&self.cfg)).unwrap();
    }

    fn setup(&self, owner: &str, ns: &str, ports: &[HostPort]) -> podlab::error::Result<PodNet> {
        self.on_node(|| network::setup_pod(&self.cfg, owner, ns, ports))
    }

    fn teardown(&self, owner: &str) {
        self.on_node(|| network::teardown_pod(&self.cfg, owner, true)).unwrap();
    }

    /// `ip netns exec NODE ARGS...`: stdout, asserting success.
    fn exec(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.node]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The MAC address of a link of the node (`ip -o link show`).
    fn mac(&self, link: &str) -> String {
        let shown = self.exec(&["ip", "-o", "link", "show", link]);
        let mac = shown.split_whitespace().skip_while(|w| *w != "link/ether").nth(1);
        mac.unwrap_or_else(|| panic!("no MAC in {shown}")).to_string()
    }

    fn iptables_save(&self) -> String {
        self.exec(&["iptables-save"])
    }

    fn ipam(&self) -> Ipam {
        Ipam::open(&self.cfg.ipam_dir, &self.cfg.cidr).unwrap()
    }

    /// Delete every namespace, then check they are gone.
    fn finish(mut self) {
        self.remove();
        for ns in self.pods.iter().chain([&self.node]) {
            assert!(!netns::exists(ns), "netns {ns} left behind");
        }
    }

    fn remove(&mut self) {
        for ns in self.pods.iter().chain([&self.node]) {
            let _ = netns::delete(ns);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A TCP server in a pod's namespace that answers each connection with the peer address it
/// sees (to check what was masqueraded); stopped on drop.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, port: u16) -> Server {
        // The socket belongs to the namespace it was made in, whichever thread uses it later.
        let listener = netns::run_in(Some(ns), || TcpListener::bind(("0.0.0.0", port))).unwrap().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, peer)) => {
                        let _ = conn.write_all(peer.ip().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { stop, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from namespace `ns` to `addr` and return what the server said (the peer it saw).
fn fetch(ns: &str, addr: SocketAddrV4) -> std::io::Result<String> {
    netns::run_in(Some(ns), || {
        let mut conn = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(3))?;
        conn.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .unwrap()
}

fn tcp(host_port: u16, container_port: u16, host_ip: Option<Ipv4Addr>) -> HostPort {
    HostPort { host_port, container_port, protocol: "TCP".into(), host_ip }
}

fn pod(json: serde_json::Value) -> Pod {
    serde_json::from_value(json).unwrap()
}

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

#[test]
fn pods_on_a_bridge_reach_each_other_and_leave_nothing() {
    let _serial = serial();
    let mut lab = Lab::new("bridge");
    // A host that drops forwarded traffic: podlab's FORWARD chain must still let pods talk.
    lab.exec(&["iptables", "-w", "-P", "FORWARD", "DROP"]);
    // A new netns copies some sysctls from the host's: start from "off" whatever the host has.
    lab.exec(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv4.conf.all.route_localnet=0"]);

    explain::start_recording();
    lab.ensure();
    let said = explain::take_recorded();
    let first_save = lab.iptables_save();
    lab.ensure(); // idempotent: nothing added the second time
    assert_eq!(rules_only(&lab.iptables_save()), rules_only(&first_save));

    for line in [
        "ip link add podlab0 type bridge".to_string(),
        "ip addr add 10.244.0.1/24 dev podlab0".into(),
        "sysctl -w net.ipv4.ip_forward=1".into(),
        "sysctl -w net.ipv4.conf.all.route_localnet=1".into(),
        "iptables -w -t nat -N PODLAB-HOSTPORTS".into(),
        "iptables -w -t nat -A POSTROUTING -s 10.244.0.0/24 '!' -o podlab0 -m comment --comment \
         'podlab node: pod traffic leaving the node' -j MASQUERADE"
            .into(),
        "iptables -w -t filter -I FORWARD 1 -m comment --comment 'podlab node: pod traffic' -j PODLAB-FORWARD".into(),
    ] {
        assert!(said.contains(&line), "not explained: {line}\nsaid: {said:#?}");
    }

    assert!(said.iter().any(|l| l.starts_with("ip link set podlab0 address 02:")), "{said:#?}");

    // The node as the kernel sees it.
    let bridge = link::get(Some(&lab.node), "podlab0").unwrap().expect("bridge");
    assert_eq!(bridge.kind.as_deref(), Some("bridge"));
    assert!(bridge.up && bridge.addrs.contains(&"10.244.0.1/24".to_string()), "{bridge:?}");
    assert_eq!(lab.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(), "1");
    assert_eq!(lab.exec(&["cat", "/proc/sys/net/ipv4/conf/all/route_localnet"]).trim(), "1");
    let save = lab.iptables_save();
    for want in [
        ":PODLAB-HOSTPORTS - [0:0]",
        ":PODLAB-FORWARD - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"podlab node: hostPorts\" -j PODLAB-HOSTPORTS",
        "-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment \"podlab node: hostPorts\" -j PODLAB-HOSTPORTS",
        "-A POSTROUTING -s 10.244.0.0/24 ! -o podlab0 -m comment --comment \"podlab node: pod traffic leaving the node\" -j MASQUERADE",
        "-A PODLAB-FORWARD -i podlab0 -m comment --comment \"podlab node: from pods\" -j ACCEPT",
        "-A PODLAB-FORWARD -o podlab0 -m comment --comment \"podlab node: to pods\" -j ACCEPT",
    ] {
        assert!(save.contains(want), "missing {want:?} in\n{save}");
    }
    let forward: Vec<&str> = save.lines().filter(|l| l.starts_with("-A FORWARD")).collect();
    assert_eq!(forward, ["-A FORWARD -m comment --comment \"podlab node: pod traffic\" -j PODLAB-FORWARD"]);

    // Two pods.
    let (ns_a, ns_b) = (lab.pod_ns("bridge-a"), lab.pod_ns("bridge-b"));
    let a = lab.setup("uid-a", &ns_a, &[]).unwrap();
    let b = lab.setup("uid-b", &ns_b, &[]).unwrap();
    assert_eq!(
        a,
        PodNet {
            ip: Ipv4Addr::new(10, 244, 0, 2),
            prefix_len: 24,
            gateway: GATEWAY,
            host_veth: network::veth_name("uid-a"),
            netns: ns_a.clone()
        }
    );
    assert_eq!(b.ip, Ipv4Addr::new(10, 244, 0, 3));
    assert_eq!(lab.ipam().lookup("uid-a"), Some(a.ip));

    // The bridge keeps its own (locally administered) MAC whatever ports come and go, so the
    // pods' ARP entry for the gateway stays right.
    let mac = lab.mac("podlab0");
    assert!(mac.starts_with("02:"), "{mac}");
    assert_ne!(mac, lab.mac(&a.host_veth));

    let eth0 = link::get(Some(&ns_a), "eth0").unwrap().expect("eth0 in the pod");
    assert!(eth0.up && eth0.addrs.contains(&"10.244.0.2/24".to_string()), "{eth0:?}");
    assert!(link::get(Some(&ns_a), "lo").unwrap().unwrap().up);
    let port = link::get(Some(&lab.node), &a.host_veth).unwrap().expect("host veth");
    assert_eq!((port.master.as_deref(), port.up), (Some("podlab0"), true));
    let brport = Command::new("ip").args(["-n", &lab.node, "-d", "link", "show", &a.host_veth]).output().unwrap();
    assert!(String::from_utf8_lossy(&brport.stdout).contains("hairpin on"), "{brport:?}");
    let routes = link::routes(Some(&ns_a)).unwrap();
    assert!(routes.contains(&"default via 10.244.0.1 dev eth0".to_string()), "{routes:?}");

    let wait = Duration::from_secs(3);
    netns::ping(Some(&ns_a), b.ip, wait).unwrap();
    netns::ping(Some(&ns_b), a.ip, wait).unwrap();
    netns::ping(Some(&ns_a), GATEWAY, wait).unwrap();
    netns::ping(Some(&lab.node), b.ip, wait).unwrap();

    // A pod whose namespace does not exist: refused, and nothing kept.
    let missing = format!("podlab-t-pn-nothere-{}", pid());
    let e = lab.setup("uid-c", &missing, &[]).unwrap_err().to_string();
    assert!(e.contains(&missing) && e.contains("does not exist"), "{e}");
    assert_eq!(lab.ipam().lookup("uid-c"), None);
    assert!(!link::exists(Some(&lab.node), &network::veth_name("uid-c")));

    // Teardown of a: no veth on either side, no address claim; b is unharmed. Twice is fine.
    lab.teardown("uid-a");
    lab.teardown("uid-a");
    assert!(!link::exists(Some(&lab.node), &a.host_veth));
    assert!(!link::exists(Some(&ns_a), "eth0"));
    assert_eq!(lab.ipam().lookup("uid-a"), None);
    assert_eq!(lab.mac("podlab0"), mac, "the bridge's MAC changed when a port left");
    assert!(netns::ping(Some(&ns_b), a.ip, Duration::from_millis(300)).is_err());
    netns::ping(Some(&ns_b), GATEWAY, wait).unwrap();

    // After a "crash": the pod's namespace is gone, teardown works from the names alone.
    netns::delete(&ns_b).unwrap();
    lab.teardown("uid-b");
    assert!(!link::exists(Some(&lab.node), &b.host_veth));
    assert!(lab.ipam().list().is_empty(), "{:?}", lab.ipam().list());

    lab.on_node(|| network::teardown_node(&lab.cfg)).unwrap();
    lab.on_node(|| network::teardown_node(&lab.cfg)).unwrap();
    assert!(!link::exists(Some(&lab.node), "podlab0"));
    let save = lab.iptables_save();
    assert!(!save.contains("podlab") && !save.contains("PODLAB"), "left behind:\n{save}");
    assert!(save.contains(":FORWARD DROP"), "the host's own policy stays:\n{save}");
    lab.finish();
}

/// The iptables-save lines that are rules or chains (without the dated comments and counters).
fn rules_only(save: &str) -> Vec<String> {
    save.lines().filter(|l| l.starts_with("-A") || l.starts_with(':')).map(|l| l.to_string()).collect()
}

#[test]
fn host_ports_reach_the_pod_and_are_not_shared() {
    let _serial = serial();
    let mut lab = Lab::new("hostport");
    let second = Ipv4Addr::new(10, 251, octet(), 1);
    link::add_addr(Some(&lab.node), "lo", &format!("{second}/32")).unwrap();
    lab.ensure();
    let (ns_a, ns_b) = (lab.pod_ns("hostport-a"), lab.pod_ns("hostport-b"));
    let ports = [tcp(8080, 80, None), tcp(9090, 90, Some(second))];
    let a = lab.setup("uid-a", &ns_a, &ports).unwrap();
    let _web = Server::start(&ns_a, 80);
    let _other = Server::start(&ns_a, 90);

    // From the node: 127.0.0.1 is masqueraded to the bridge's address, the second address is not.
    assert_eq!(fetch(&lab.node, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)).unwrap(), GATEWAY.to_string());
    assert_eq!(fetch(&lab.node, SocketAddrV4::new(second, 8080)).unwrap(), second.to_string());
    // hostIP: only that address.
    assert_eq!(fetch(&lab.node, SocketAddrV4::new(second, 9090)).unwrap(), second.to_string());
    assert!(fetch(&lab.node, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090)).is_err());
    // The pod's own port straight away, and through the hostPort from the pod itself (hairpin).
    assert_eq!(fetch(&ns_a, SocketAddrV4::new(a.ip, 80)).unwrap(), a.ip.to_string());
    assert_eq!(fetch(&ns_a, SocketAddrV4::new(GATEWAY, 8080)).unwrap(), GATEWAY.to_string());

    // Another pod: the same hostPort is refused, naming the holder; nothing of b is kept.
    let e = lab.setup("uid-b", &ns_b, &[tcp(8080, 8000, None)]).unwrap_err().to_string();
    assert!(e.contains("8080/TCP") && e.contains("uid-a"), "{e}");
    let e = lab.setup("uid-b", &ns_b, &[tcp(9090, 90, None)]).unwrap_err().to_string();
    assert!(e.contains("9090/TCP") && e.contains("uid-a"), "every address overlaps {second}: {e}");
    assert_eq!(lab.ipam().lookup("uid-b"), None);
    assert!(!link::exists(Some(&ns_b), "eth0"));
    assert!(!link::exists(Some(&lab.node), &network::veth_name("uid-b")));
    assert!(!lab.iptables_save().contains("pod=uid-b"));

    // Same port, other protocol or other address: fine. b reaches a's hostPort via the gateway.
    let udp = HostPort { protocol: "UDP".into(), ..tcp(8080, 8000, None) };
    let b = lab.setup("uid-b", &ns_b, &[udp, tcp(9090, 90, Some(GATEWAY))]).unwrap();
    assert_eq!(fetch(&ns_b, SocketAddrV4::new(GATEWAY, 8080)).unwrap(), GATEWAY.to_string(), "hairpin masquerade");
    assert_eq!(fetch(&ns_b, SocketAddrV4::new(a.ip, 80)).unwrap(), b.ip.to_string(), "pod to pod: no NAT");

    let save = lab.iptables_save();
    for want in [
        "-A PODLAB-HOSTPORTS -p tcp -m tcp --dport 8080 -m comment --comment \"podlab hostport pod=uid-a tcp 0.0.0.0:8080 -> 10.244.0.2:80\" -j DNAT --to-destination 10.244.0.2:80".to_string(),
        format!("-A PODLAB-HOSTPORTS -d {second}/32 -p tcp -m tcp --dport 9090 -m comment --comment \"podlab hostport pod=uid-a tcp {second}:9090 -> 10.244.0.2:90\" -j DNAT --to-destination 10.244.0.2:90"),
        // (b's refused attempts had .3 and .4 for a moment: round-robin does not hand them out again at once)
        format!("-A PODLAB-HOSTPORTS -p udp -m udp --dport 8080 -m comment --comment \"podlab hostport pod=uid-b udp 0.0.0.0:8080 -> {0}:8000\" -j DNAT --to-destination {0}:8000", b.ip),
    ] {
        assert!(save.contains(&want), "missing {want:?} in\n{save}");
    }

    // Teardown takes a's rules and nothing of b's.
    lab.teardown("uid-a");
    let save = lab.iptables_save();
    assert!(!save.contains("pod=uid-a"), "{save}");
    assert!(save.contains("pod=uid-b"), "{save}");
    assert!(fetch(&lab.node, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080)).is_err());
    lab.teardown("uid-b");
    assert!(!lab.iptables_save().contains("podlab hostport"));
    lab.on_node(|| network::teardown_node(&lab.cfg)).unwrap();
    assert!(!lab.iptables_save().to_lowercase().contains("podlab"));
    assert!(lab.ipam().list().is_empty());
    lab.finish();
}

#[test]
fn concurrent_nodes_and_pods_take_turns() {
    let _serial = serial();
    let mut lab = Lab::new("race");
    std::thread::scope(|s| {
        let lab = &lab;
        let workers: Vec<_> = (0..4).map(|_| s.spawn(move || lab.ensure())).collect();
        workers.into_iter().for_each(|w| w.join().unwrap());
    });
    let save = lab.iptables_save();
    let ours: Vec<&str> = save.lines().filter(|l| l.contains("podlab node:")).collect();
    let mut unique = ours.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ours.len(), unique.len(), "a rule added twice:\n{save}");
    assert_eq!(ours.len(), 8, "{ours:#?}");

    // Three pods want hostPort 7000 at once: exactly one gets it.
    let names: Vec<(String, String)> = (0..3).map(|i| (format!("uid-{i}"), lab.pod_ns(&format!("race-{i}")))).collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let lab = &lab;
        let workers: Vec<_> =
            names.iter().map(|(owner, ns)| s.spawn(move || lab.setup(owner, ns, &[tcp(7000, 80, None)]))).collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let winners: Vec<usize> = (0..3).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = &names[winners[0]].0;
    for (i, r) in results.iter().enumerate() {
        if let Err(e) = r {
            assert!(e.to_string().contains(winner.as_str()), "pod {i}: {e}");
        }
    }
    assert_eq!(lab.ipam().list().len(), 1, "{:?}", lab.ipam().list());
    assert_eq!(lab.iptables_save().matches("podlab hostport").count(), 1);

    for (owner, _) in &names {
        lab.teardown(owner);
    }
    lab.on_node(|| network::teardown_node(&lab.cfg)).unwrap();
    assert!(!lab.iptables_save().to_lowercase().contains("podlab"));
    assert!(lab.exec(&["ip", "-o", "link"]).lines().all(|l| !l.contains(": pl") && !l.contains("podlab0")));
    lab.finish();
}

#[test]
fn bad_input_is_refused_before_anything_happens() {
    let _serial = serial();
    let mut lab = Lab::new("bad");
    lab.ensure();
    let ns = lab.pod_ns("bad-a");
    for (owner, ports, want) in [
        ("uid/x", vec![], "invalid pod owner"),
        ("uid-a", vec![HostPort { protocol: "ICMP".into(), ..tcp(80, 80, None) }], "unsupported protocol \"ICMP\""),
        ("uid-a", vec![tcp(0, 80, None)], "ports are 1 to 65535"),
        ("uid-a", vec![tcp(80, 80, None), tcp(80, 81, Some(GATEWAY))], "asks twice for hostPort 80/TCP"),
    ] {
        let e = lab.setup(owner, &ns, &ports).unwrap_err().to_string();
        assert!(e.contains(want), "{owner} {ports:?}: {e}");
    }
    assert!(lab.ipam().list().is_empty());
    assert!(!link::exists(Some(&ns), "eth0"));
    // The same port twice in one pod (two containers listing it) is one rule.
    let net = lab.setup("uid-a", &ns, &[tcp(80, 80, None), tcp(80, 80, None)]).unwrap();
    assert_eq!(lab.iptables_save().matches("pod=uid-a").count(), 1);
    // Set up twice: refused, and the first setup is left working.
    let e = lab.setup("uid-a", &ns, &[]).unwrap_err().to_string();
    assert!(e.contains("exists already"), "{e}");
    assert!(link::exists(Some(&lab.node), &net.host_veth));
    assert_eq!(lab.ipam().lookup("uid-a"), Some(net.ip));
    lab.teardown("uid-a");
    lab.on_node(|| network::teardown_node(&lab.cfg)).unwrap();

    // A link of the bridge's name that is not a bridge.
    link::create_veth(Some(&lab.node), "podlab0", "podlab0p", None).unwrap();
    let e = lab.on_node(|| network::ensure_node(&lab.cfg)).unwrap_err().to_string();
    assert!(e.contains("podlab0 exists and is not a bridge"), "{e}");
    let cfg = NodeNetConfig { cidr: "10.244.0.0/33".into(), ..lab.cfg.clone() };
    let e = lab.on_node(|| network::ensure_node(&cfg)).unwrap_err().to_string();
    assert!(e.contains("invalid pod CIDR"), "{e}");
    lab.finish();
}

#[test]
fn veth_names_are_short_and_stable() {
    let name = network::veth_name("0b7c1f3e-2a9d-4c3e-9f2e-5d8f1a2b3c4d");
    assert_eq!(name.len(), 10);
    assert!(name.starts_with("pl") && name[2..].bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    assert_eq!(name, network::veth_name("0b7c1f3e-2a9d-4c3e-9f2e-5d8f1a2b3c4d"));
    assert_ne!(name, network::veth_name("0b7c1f3e-2a9d-4c3e-9f2e-5d8f1a2b3c4e"));
    // SHA-256("abc") starts with ba7816bf: the name depends on the owner alone, never on the build.
    assert_eq!(network::veth_name("abc"), "plba7816bf");
}

#[test]
fn host_ports_come_from_the_containers() {
    let p = pod(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox", "ports": [{"containerPort": 1, "hostPort": 1}]}],
            "containers": [
                {"name": "a", "image": "busybox", "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 81},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "192.0.2.7"},
                    {"containerPort": 82, "hostPort": 8082, "hostIP": "0.0.0.0"}
                ]},
                {"name": "b", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]}
            ]
        }
    }));
    assert_eq!(
        network::host_ports(&p),
        vec![
            tcp(8080, 80, None),
            HostPort {
                host_port: 5353,
                container_port: 53,
                protocol: "UDP".into(),
                host_ip: Some(Ipv4Addr::new(192, 0, 2, 7))
            },
            tcp(8082, 82, None),
        ]
    );
    assert!(network::host_ports(&pod(serde_json::json!({"metadata": {"name": "x"}}))).is_empty());
}

const LOCALHOST_LINES: &str = "# Kubernetes-managed hosts file.\n\
    127.0.0.1\tlocalhost\n\
    ::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\n\
    fe00::0\tip6-mcastprefix\n\
    fe00::1\tip6-allnodes\n\
    fe00::2\tip6-allrouters\n";

#[test]
fn hosts_file_is_the_kubelets() {
    let ip = Some(Ipv4Addr::new(10, 244, 0, 5));
    let plain = pod(serde_json::json!({"metadata": {"name": "web"}, "spec": {"containers": []}}));
    assert_eq!(network::hosts_file(ip, "web", &plain), format!("{LOCALHOST_LINES}10.244.0.5\tweb\n"));
    assert_eq!(network::hosts_file(None, "web", &plain), LOCALHOST_LINES);

    let full = pod(serde_json::json!({
        "metadata": {"name": "web-0", "namespace": "shop"},
        "spec": {
            "containers": [], "hostname": "web-0", "subdomain": "web",
            "hostAliases": [
                {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
                {"ip": "10.1.2.3", "hostnames": ["foo.remote"]}
            ]
        }
    }));
    assert_eq!(
        network::hosts_file(ip, "web-0", &full),
        format!(
            "{LOCALHOST_LINES}10.244.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n\
             \n# Entries added by HostAliases.\n\
             127.0.0.1\tfoo.local\tbar.local\n\
             10.1.2.3\tfoo.remote\n"
        )
    );
    let default_ns = pod(serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": [], "subdomain": "s"}}));
    assert!(network::hosts_file(ip, "a", &default_ns).ends_with("10.244.0.5\ta.s.default.svc.cluster.local\ta\n"));
}

const HOST_RESOLV: &str = "# generated by NetworkManager\n\
    ; old style comment\n\
    domain example.org\n\
    search first.example\n\
    search example.com. corp.example .\n\
    nameserver 192.0.2.53\n\
    nameserver 192.0.2.54\n\
    options rotate\n\
    options ndots:2 timeout:1\n";

fn dns_pod(policy: Option<&str>, config: serde_json::Value) -> Pod {
    let mut spec = serde_json::json!({"containers": []});
    if let Some(p) = policy {
        spec["dnsPolicy"] = p.into();
    }
    if !config.is_null() {
        spec["dnsConfig"] = config;
    }
    pod(serde_json::json!({"metadata": {"name": "web"}, "spec": spec}))
}

#[test]
fn resolv_conf_follows_dns_policy_and_config() {
    let node_view = "search example.com corp.example\n\
        nameserver 192.0.2.53\n\
        nameserver 192.0.2.54\n\
        options ndots:2 timeout:1\n";
    // Default, and ClusterFirst without a cluster DNS (the kubelet falls back to Default).
    for policy in [Some("Default"), Some("ClusterFirst"), None, Some("ClusterFirstWithHostNet")] {
        let got = network::resolv_conf(HOST_RESOLV, &dns_pod(policy, serde_json::Value::Null), None).unwrap();
        assert_eq!(got, node_view, "{policy:?}");
    }

    // dnsConfig adds to the node's: duplicates dropped, options replaced by name, in place.
    let config = serde_json::json!({
        "nameservers": ["192.0.2.54", "2001:db8::53"],
        "searches": ["corp.example", "ns1.svc.cluster-domain.example"],
        "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}, {"name": "timeout", "value": ""}]
    });
    assert_eq!(
        network::resolv_conf(HOST_RESOLV, &dns_pod(Some("Default"), config.clone()), None).unwrap(),
        "search example.com corp.example ns1.svc.cluster-domain.example\n\
         nameserver 192.0.2.53\n\
         nameserver 192.0.2.54\n\
         nameserver 2001:db8::53\n\
         options ndots:5 timeout edns0\n"
    );
    // None: only the pod's own settings.
    assert_eq!(
        network::resolv_conf(HOST_RESOLV, &dns_pod(Some("None"), config), None).unwrap(),
        "search corp.example ns1.svc.cluster-domain.example\n\
         nameserver 192.0.2.54\n\
         nameserver 2001:db8::53\n\
         options ndots:5 edns0 timeout\n"
    );
    // More than three nameservers in all: the kubelet keeps the first three.
    let more = serde_json::json!({"nameservers": ["192.0.2.1", "192.0.2.2"]});
    let got = network::resolv_conf(HOST_RESOLV, &dns_pod(None, more), None).unwrap();
    assert_eq!(got.matches("nameserver").count(), 3, "{got}");
    assert!(got.contains("nameserver 192.0.2.1\n") && !got.contains("192.0.2.2"), "{got}");
    assert_eq!(network::resolv_conf("", &dns_pod(Some("Default"), serde_json::Value::Null), None).unwrap(), "");
}

#[test]
fn resolv_conf_cluster_first_asks_the_cluster_dns() {
    let dns = Some(std::net::Ipv4Addr::new(10, 96, 0, 10));
    let in_shop = |policy: Option<&str>, host_network: bool, config: serde_json::Value| {
        let mut p = dns_pod(policy, config);
        p.metadata.namespace = Some("shop".into());
        p.spec.as_mut().unwrap().host_network = Some(host_network);
        p
    };
    let cluster = "search shop.svc.cluster.local svc.cluster.local cluster.local example.com corp.example\n\
        nameserver 10.96.0.10\n\
        options ndots:5\n";
    for policy in [None, Some("ClusterFirst"), Some("ClusterFirstWithHostNet")] {
        let got = network::resolv_conf(HOST_RESOLV, &in_shop(policy, false, serde_json::Value::Null), dns).unwrap();
        assert_eq!(got, cluster, "{policy:?}");
    }
    // hostNetwork: ClusterFirst means the node's settings; ClusterFirstWithHostNet the cluster's.
    let node_view =
        network::resolv_conf(HOST_RESOLV, &in_shop(Some("Default"), false, serde_json::Value::Null), None).unwrap();
    let host = network::resolv_conf(HOST_RESOLV, &in_shop(None, true, serde_json::Value::Null), dns).unwrap();
    assert_eq!(host, node_view);
    let with_host_net = network::resolv_conf(
        HOST_RESOLV,
        &in_shop(Some("ClusterFirstWithHostNet"), true, serde_json::Value::Null),
        dns,
    );
    assert_eq!(with_host_net.unwrap(), cluster);
    // Default and None never see the cluster DNS.
    assert!(
        !network::resolv_conf(HOST_RESOLV, &in_shop(Some("Default"), false, serde_json::Value::Null), dns)
            .unwrap()
            .contains("10.96.0.10")
    );
    // dnsConfig adds to the cluster's settings: servers after, searches after, options by name.
    let config = serde_json::json!({
        "nameservers": ["192.0.2.54", "10.96.0.10"],
        "searches": ["svc.cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]
    });
    assert_eq!(
        network::resolv_conf(HOST_RESOLV, &in_shop(None, false, config), dns).unwrap(),
        "search shop.svc.cluster.local svc.cluster.local cluster.local example.com corp.example extra.example\n\
         nameserver 10.96.0.10\n\
         nameserver 192.0.2.54\n\
         options ndots:2 edns0\n"
    );
    // The default namespace, and a node without search domains.
    let got = network::resolv_conf("nameserver 192.0.2.53\n", &dns_pod(None, serde_json::Value::Null), dns).unwrap();
    assert_eq!(
        got,
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    );
}

#[test]
fn resolv_conf_errors_name_the_field() {
    let cases = [
        (dns_pod(Some("ClusterFirts"), serde_json::Value::Null), "spec.dnsPolicy: unsupported value \"ClusterFirts\""),
        (dns_pod(Some("None"), serde_json::Value::Null), "spec.dnsConfig.nameservers: required"),
        (dns_pod(Some("None"), serde_json::json!({"searches": ["a.example"]})), "spec.dnsConfig.nameservers: required"),
        (
            dns_pod(None, serde_json::json!({"nameservers": ["192.0.2.1", "dns.example"]})),
            "spec.dnsConfig.nameservers[1]: invalid value \"dns.example\": must be a valid IP address",
        ),
        (
            dns_pod(None, serde_json::json!({"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]})),
            "spec.dnsConfig.nameservers: must not have more than 3 nameservers",
        ),
        (dns_pod(None, serde_json::json!({"searches": ["ok.example", "Bad_Name"]})), "spec.dnsConfig.searches[1]"),
        (dns_pod(None, serde_json::json!({"options": [{"value": "1"}]})), "spec.dnsConfig.options[0].name: required"),
    ];
    for (p, want) in cases {
        let e = network::resolv_conf(HOST_RESOLV, &p, None).unwrap_err().to_string();
        assert!(e.contains(want), "want {want:?}, got {e}");
    }
    let e =
        network::resolv_conf("nameserver\n", &dns_pod(None, serde_json::Value::Null), None).unwrap_err().to_string();
    assert!(e.contains("resolv.conf, line 1") && e.contains("nameserver"), "{e}");
}
