//! The service proxy (src/proxy) on the real kernel with real iptables, as root, on both
//! backends (legacy and nft). Each test makes its own network namespaces (names carry the test
//! and the process id): a "node" with a bridge, "pods" plugged into it serving a page that
//! names them (`busybox httpd`), and a client pod; requests go to cluster IPs and node ports
//! only inside those namespaces. Every test removes what it made and checks that nothing is
//! left: no namespace, no KUBE- chain.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::wait_until;
use podlab::explain;
use podlab::primitives::netns;
use podlab::proxy::rules::{self, Options};
use podlab::proxy::{Backend, Endpoint, Protocol, Proxier, ProxyConfig, ServicePort, ServicePortName, SyncStats};

const BACKENDS: [Backend; 2] = [Backend::Legacy, Backend::Nft];

fn pid() -> u32 {
    std::process::id()
}

/// Run a command, assert it worked, return its stdout.
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip netns exec NS ARGS...`
fn exec(ns: &str, args: &[&str]) -> String {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    sh(&all)
}

fn spn(ns: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName { namespace: ns.into(), name: name.into(), port: port.into(), protocol }
}

fn service(name: ServicePortName, vip: Ipv4Addr, port: u16, endpoints: &[Endpoint]) -> ServicePort {
    ServicePort {
        name,
        cluster_ip: Some(vip),
        port,
        node_port: None,
        affinity_timeout: None,
        endpoints: endpoints.to_vec(),
    }
}

fn ep(ip: Ipv4Addr, port: u16) -> Endpoint {
    Endpoint { ip, port }
}

/// A network namespace of the test, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        netns::create(&name).unwrap();
        exec(&name, &["ip", "link", "set", "lo", "up"]);
        Netns(name)
    }

    /// Run `f` in this namespace (on a thread that joined it).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(Some(&self.0), f).unwrap()
    }

    /// `iptables-save` of `backend`, without its comment lines (a date, warnings).
    fn save(&self, backend: Backend) -> String {
        let text = exec(&self.0, &[&backend.save_command()]);
        text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = netns::delete(&self.0);
    }
}

fn assert_gone(names: &[String]) {
    let list = netns::list().unwrap();
    for name in names {
        assert!(!list.contains(name), "netns {name} left behind");
    }
}

/// A few service ports of every kind: ClusterIP, NodePort, session affinity, no endpoints, UDP,
/// and a Service with two ports.
fn assorted(base: Ipv4Addr) -> Vec<ServicePort> {
    let o = base.octets();
    let ip = |d: u8| Ipv4Addr::new(o[0], o[1], o[2], d);
    let vip = |d: u8| Ipv4Addr::new(10, 96, o[2], d);
    let mut web = service(
        spn("default", "web", "", Protocol::Tcp),
        vip(1),
        80,
        &[ep(ip(11), 80), ep(ip(12), 80), ep(ip(13), 80)],
    );
    web.node_port = Some(30080);
    let mut sticky =
        service(spn("default", "sticky", "http", Protocol::Tcp), vip(2), 80, &[ep(ip(11), 80), ep(ip(12), 80)]);
    sticky.affinity_timeout = Some(10800);
    let mut empty = service(spn("default", "empty", "", Protocol::Tcp), vip(3), 80, &[]);
    empty.node_port = Some(30083);
    let dns =
        service(spn("kube-system", "kube-dns", "dns", Protocol::Udp), vip(10), 53, &[ep(ip(21), 53), ep(ip(22), 53)]);
    let dns_tcp = service(
        spn("kube-system", "kube-dns", "dns-tcp", Protocol::Tcp),
        vip(10),
        53,
        &[ep(ip(21), 53), ep(ip(22), 53)],
    );
    let metrics = service(spn("kube-system", "kube-dns", "metrics", Protocol::Tcp), vip(10), 9153, &[ep(ip(21), 9153)]);
    let headless = ServicePort {
        cluster_ip: None,
        ..service(spn("default", "db", "", Protocol::Tcp), vip(4), 5432, &[ep(ip(31), 5432)])
    };
    vec![web, sticky, empty, dns, dns_tcp, metrics, headless]
}

#[test]
fn generated_rules_pass_iptables_restore_test_on_both_backends() {
    let ns = Netns::new(format!("podlab-t-px-rt-{}", pid()));
    let services = assorted(Ipv4Addr::new(10, 251, 1, 0));
    for large in [false, true] {
        let mut opts = Options::new(&ProxyConfig { cluster_cidr: "10.251.0.0/16".into(), masquerade_bit: 14 }).unwrap();
        opts.large = large;
        let text = rules::full_restore_text(&services, &opts);
        for backend in BACKENDS {
            ns.run(|| backend.restore(&text, true)).unwrap_or_else(|e| panic!("{backend}, large={large}: {e}\n{text}"));
        }
    }
    // A broken input is refused, and the error shows the line.
    let bad = "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m nosuchmatch -j RETURN\nCOMMIT\n";
    for backend in BACKENDS {
        let e = ns.run(|| backend.restore(bad, true)).unwrap_err().to_string();
        assert!(e.contains("restore") && e.contains("nosuchmatch"), "{backend}: {e}");
    }
    // --test changed nothing.
    for backend in BACKENDS {
        assert!(!ns.save(backend).contains("KUBE-"), "{backend}");
    }
    let name = ns.0.clone();
    drop(ns);
    assert_gone(&[name]);
}

/// What a sync should report, loosely.
fn assert_stats(stats: &SyncStats, full: bool, written: usize, rules: usize, deleted: usize, what: &str) {
    let got = (stats.full, stats.chains_written, stats.rules_written, stats.chains_deleted);
    assert_eq!(got, (full, written, rules, deleted), "{what}: {stats:?}");
}

/// Names of the KUBE- chains in an iptables-save output.
fn kube_chains(save: &str) -> Vec<String> {
    let mut chains: Vec<String> = save
        .lines()
        .filter_map(|l| l.strip_prefix(':')?.split(' ').next())
        .filter(|c| c.starts_with("KUBE-"))
        .map(str::to_string)
        .collect();
    chains.sort();
    chains
}

#[test]
fn sync_is_exact_partial_and_cleans_up_on_both_backends() {
    for (i, backend) in BACKENDS.into_iter().enumerate() {
        let ns = Netns::new(format!("podlab-t-px-sy{i}-{}", pid()));
        let config = ProxyConfig { cluster_cidr: "10.251.0.0/16".into(), masquerade_bit: 14 };
        let mut services = assorted(Ipv4Addr::new(10, 251, 2, 0));
        // Enough services that a full sync on nft needs several restores.
        for s in 0..120u8 {
            let vip = Ipv4Addr::new(10, 97, 1, s);
            let eps: Vec<Endpoint> = (0..4u8).map(|e| ep(Ipv4Addr::new(10, 251, 3 + e, s), 8080)).collect();
            services.push(service(spn("bench", &format!("svc-{s}"), "http", Protocol::Tcp), vip, 80, &eps));
        }

        explain::start_recording();
        let mut proxier = ns.run(|| Proxier::with_backend(config.clone(), backend)).unwrap();
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        let said = explain::take_recorded();
        assert!(stats.full && stats.chains_written > 120 * 5, "{backend}: {stats:?}");
        if backend == Backend::Nft {
            assert!(stats.restores > 1, "large first syncs are cut into several restores on nft: {stats:?}");
        } else {
            assert_eq!(stats.restores, 1, "{stats:?}");
        }
        let restore = format!("{} -w --noflush <<'EOF'\n", backend.restore_command());
        assert!(said.iter().any(|s| s.starts_with(&restore)), "{backend}: restores are explained: {said:?}");

        // What the kernel holds is exactly what the rules say: a full sync finds nothing to do.
        let save = ns.save(backend);
        assert!(
            save.contains("-A PREROUTING -m comment --comment \"podlab: kubernetes service portals\" -j KUBE-SERVICES")
        );
        assert!(save.contains(
            "-A POSTROUTING -m comment --comment \"podlab: kubernetes postrouting rules\" -j KUBE-POSTROUTING"
        ));
        let other = if backend == Backend::Nft { Backend::Legacy } else { Backend::Nft };
        assert!(kube_chains(&ns.save(other)).is_empty(), "{other} was not written to");
        proxier.force_full_sync();
        let again = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&again, true, 0, 0, 0, &format!("{backend}: a full sync over the same rules"));
        assert_eq!(again.restores, 0);
        assert_eq!(ns.save(backend), save);
        let same = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&same, false, 0, 0, 0, "nothing changed");

        // One endpoint fewer: the service chain is rewritten, the endpoint's chain deleted, and
        // nothing else is written (KUBE-SERVICES is not touched).
        let web = services.iter().position(|s| s.name.name == "web").unwrap();
        let gone = services[web].endpoints.pop().unwrap();
        let gone_chain = rules::endpoint_chain(&services[web].name, &gone);
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, false, 1, 3, 1, &format!("{backend}: web loses an endpoint"));
        assert_eq!(stats.restores, 1);
        let save = ns.save(backend);
        assert!(!save.contains(&gone_chain), "{gone_chain} deleted");

        // A new service: its chains and one rule inserted into KUBE-SERVICES.
        let new = service(spn("default", "new", "", Protocol::Tcp), Ipv4Addr::new(10, 96, 2, 50), 80, &[gone]);
        services.push(new.clone());
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, false, 2, 2 + 2 + 1, 0, &format!("{backend}: a new service"));
        // Endpoints for the empty one: its REJECTs go, its chains and rule come.
        let empty = services.iter().position(|s| s.name.name == "empty").unwrap();
        services[empty].endpoints = vec![gone];
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, false, 3, 2 + 2 + 2 + 4, 0, &format!("{backend}: the empty service gets an endpoint"));
        // Deleting a service deletes its chains.
        services.retain(|s| s.name != new.name);
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, false, 0, 1, 2, &format!("{backend}: a service deleted"));
        let save = ns.save(backend);
        assert!(!save.contains(&rules::service_chain(&new.name)) && !save.contains("default/new"), "{backend}");
        proxier.force_full_sync();
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, true, 0, 0, 0, &format!("{backend}: partial syncs left what a full one writes"));

        // Past 1000 endpoints every per-endpoint rule loses its comment (large cluster mode).
        for s in services.iter_mut().filter(|s| s.name.namespace == "bench") {
            s.endpoints.extend((0..5u8).map(|e| ep(Ipv4Addr::new(10, 251, 10 + e, s.port as u8), 9000)));
        }
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert!(!stats.full && stats.chains_written > 120 * 9, "{backend}: {stats:?}");
        proxier.force_full_sync();
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, true, 0, 0, 0, &format!("{backend}: large mode, as iptables-save prints it"));

        // Bad input changes nothing.
        let mut bad = services.clone();
        bad.push(bad[0].clone());
        let e = ns.run(|| proxier.sync(&bad)).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");

        // Someone flushes a chain: a full sync puts it back.
        let web_chain = rules::service_chain(&services[web].name);
        exec(&ns.0, &[&backend.iptables(), "-t", "nat", "-F", &web_chain]);
        proxier.force_full_sync();
        let stats = ns.run(|| proxier.sync(&services)).unwrap();
        assert_stats(&stats, true, 1, 3, 0, &format!("{backend}: a flushed chain is rewritten"));

        ns.run(|| proxier.cleanup()).unwrap();
        let save = ns.save(backend);
        assert!(!save.contains("KUBE-"), "{backend}: left after cleanup:\n{save}");
        let name = ns.0.clone();
        drop(ns);
        assert_gone(&[name]);
    }
}

#[test]
fn backend_detection_follows_hints_then_rules() {
    let ns = Netns::new(format!("podlab-t-px-bd-{}", pid()));
    let default = if sh(&["iptables", "--version"]).contains("legacy") { Backend::Legacy } else { Backend::Nft };
    assert_eq!(ns.run(Backend::detect).unwrap(), default, "no rules anywhere: the system's iptables");
    exec(&ns.0, &["iptables-legacy", "-t", "filter", "-A", "INPUT", "-j", "ACCEPT"]);
    assert_eq!(ns.run(Backend::detect).unwrap(), Backend::Legacy, "more legacy rules");
    exec(&ns.0, &["iptables-nft", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT"]);
    assert_eq!(ns.run(Backend::detect).unwrap(), Backend::Nft, "the kubelet's hint wins");
    exec(&ns.0, &["iptables-nft", "-t", "mangle", "-X", "KUBE-IPTABLES-HINT"]);
    exec(&ns.0, &["iptables-nft", "-t", "filter", "-A", "INPUT", "-j", "ACCEPT"]);
    exec(&ns.0, &["iptables-nft", "-t", "filter", "-A", "INPUT", "-j", "ACCEPT"]);
    assert_eq!(ns.run(Backend::detect).unwrap(), Backend::Nft, "more nft rules");
    exec(&ns.0, &["iptables-legacy", "-t", "mangle", "-N", "KUBE-KUBELET-CANARY"]);
    assert_eq!(ns.run(Backend::detect).unwrap(), Backend::Legacy, "a legacy hint");
    let name = ns.0.clone();
    drop(ns);
    assert_gone(&[name]);
}

// ---- Real traffic ----

/// A node with a bridge and pods on it, each pod serving a page with its name; all deleted on
/// drop (the servers are killed, the namespaces deleted, which takes the links with them).
struct Cluster {
    node: Netns,
    pods: Vec<(String, Netns, Ipv4Addr)>,
    client: Netns,
    client_ip: Ipv4Addr,
    bridge_ip: Ipv4Addr,
    servers: Vec<Child>,
    pages: PathBuf,
}

const PORT: u16 = 80;

impl Cluster {
    /// Node `podlab-t-px-<tag>-node-PID` with bridge br0 at 10.251.X.1/24, pods pod1..pod3 at
    /// .11-.13 with hairpin on their bridge ports, a client at .20, and a default route to an
    /// absent gateway (so that packets nobody DNATs go nowhere).
    fn new(tag: &str, x: u8) -> Cluster {
        let name = |what: &str| format!("podlab-t-px-{tag}-{what}-{}", pid());
        let node = Netns::new(name("node"));
        let n = node.0.clone();
        let net = |d: u8| Ipv4Addr::new(10, 251, x, d);
        let bridge_ip = net(1);
        exec(&n, &["ip", "link", "add", "br0", "type", "bridge"]);
        exec(&n, &["ip", "addr", "add", &format!("{bridge_ip}/24"), "dev", "br0"]);
        exec(&n, &["ip", "link", "set", "br0", "up"]);
        // The node's "outside": an address outside the cluster CIDR, and a default route to a
        // gateway nobody answers for (what no rule catches goes nowhere).
        exec(&n, &["ip", "addr", "add", &format!("10.252.{x}.1/32"), "dev", "lo"]);
        let gateway = net(254).to_string();
        exec(&n, &["ip", "route", "add", "default", "via", &gateway, "dev", "br0", "src", &format!("10.252.{x}.1")]);
        exec(&n, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // That gateway is on br0, where the packets come from: the node would send ICMP redirects
        // to the pods, and the per-host ICMP rate limit would then swallow the REJECTs' errors.
        exec(&n, &["sysctl", "-qw", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.br0.send_redirects=0"]);
        let pages = PathBuf::from(format!("/tmp/podlab-test-px-{tag}-{}", pid()));
        let _ = std::fs::remove_dir_all(&pages);
        let mut cluster = Cluster {
            client: Netns::new(name("client")),
            node,
            pods: Vec::new(),
            client_ip: net(20),
            bridge_ip,
            servers: Vec::new(),
            pages,
        };
        cluster.plug(&cluster.client.0.clone(), "vc", cluster.client_ip);
        for i in 1..=3u8 {
            let pod = format!("pod{i}");
            let ns = Netns::new(name(&pod));
            let ip = net(10 + i);
            cluster.plug(&ns.0, &format!("vp{i}"), ip);
            exec(&n, &["ip", "link", "set", &format!("vp{i}"), "type", "bridge_slave", "hairpin", "on"]);
            let dir = cluster.pages.join(&pod);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("index.html"), format!("{pod}\n")).unwrap();
            let server = Command::new("ip")
                .args(["netns", "exec", &ns.0, "busybox", "httpd", "-f", "-p", &PORT.to_string(), "-h"])
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            cluster.servers.push(server);
            cluster.pods.push((pod, ns, ip));
        }
        for (pod, _, ip) in &cluster.pods {
            let addr = SocketAddrV4::new(*ip, PORT);
            let up = wait_until(10, || get(&cluster.client, addr).is_ok_and(|p| p == *pod));
            assert!(up, "{pod} serves its page at {addr}");
        }
        cluster
    }

    /// A veth from the node's bridge (`host` end) to `eth0` at `ip` in namespace `ns`.
    fn plug(&self, ns: &str, host: &str, ip: Ipv4Addr) {
        let n = &self.node.0;
        exec(n, &["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        exec(n, &["ip", "link", "set", host, "master", "br0", "up"]);
        exec(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        exec(ns, &["ip", "link", "set", "eth0", "up"]);
        exec(ns, &["ip", "route", "add", "default", "via", &self.bridge_ip.to_string()]);
    }

    fn names(&self) -> Vec<String> {
        let mut all = vec![self.node.0.clone(), self.client.0.clone()];
        all.extend(self.pods.iter().map(|(_, ns, _)| ns.0.clone()));
        all
    }

    fn endpoint(&self, pod: usize) -> Endpoint {
        ep(self.pods[pod].2, PORT)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.pages);
    }
}

/// One HTTP GET from inside `ns`; the page's text (the pod's name).
fn get(ns: &Netns, addr: SocketAddrV4) -> std::io::Result<String> {
    ns.run(|| {
        let mut conn = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(3)))?;
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        Ok(body.trim().to_string())
    })
}

/// Which pods answered `n` requests, and how often.
fn spread(ns: &Netns, addr: SocketAddrV4, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let pod = get(ns, addr).unwrap_or_else(|e| panic!("GET http://{addr}/: {e}"));
        *seen.entry(pod).or_insert(0) += 1;
    }
    seen
}

fn traffic(backend: Backend, x: u8) {
    let cluster = Cluster::new(backend.name(), x);
    let names = cluster.names();
    let node = &cluster.node;
    let config = ProxyConfig { cluster_cidr: "10.251.0.0/16".into(), masquerade_bit: 14 };
    let vip = |d: u8| Ipv4Addr::new(10, 96, x, d);
    let all: Vec<Endpoint> = (0..3).map(|i| cluster.endpoint(i)).collect();
    let mut web = service(spn("default", "web", "", Protocol::Tcp), vip(1), 80, &all);
    web.node_port = Some(30080);
    let mut sticky = service(spn("default", "sticky", "", Protocol::Tcp), vip(2), 80, &all);
    sticky.affinity_timeout = Some(600);
    let own = service(spn("default", "pod1", "", Protocol::Tcp), vip(3), 80, &[cluster.endpoint(0)]);
    let empty = service(spn("default", "empty", "", Protocol::Tcp), vip(4), 80, &[]);
    let mut services = vec![web, sticky, own, empty];

    let mut proxier = node.run(|| Proxier::with_backend(config, backend)).unwrap();
    assert_eq!(proxier.backend(), backend);
    let bridge_nf = exec(&node.0, &["sysctl", "-n", "net.bridge.bridge-nf-call-iptables"]);
    assert_eq!(bridge_nf.trim(), "1", "set by the proxier in the node's namespace");
    let stats = node.run(|| proxier.sync(&services)).unwrap();
    assert!(stats.full, "{stats:?}");

    // A cluster IP spreads connections over every endpoint.
    let web_vip = SocketAddrV4::new(vip(1), 80);
    let seen = spread(&cluster.client, web_vip, 60);
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["pod1", "pod2", "pod3"], "{backend}: {seen:?}");
    // From the node itself (its source address is outside the cluster CIDR: masqueraded).
    assert!(get(node, web_vip).unwrap().starts_with("pod"), "{backend}: node to cluster IP");

    // A node port answers on the node's addresses, 127.0.0.1 included, from the node and a pod.
    for addr in [SocketAddrV4::new(cluster.bridge_ip, 30080), SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30080)] {
        assert!(get(node, addr).unwrap().starts_with("pod"), "{backend}: node port {addr} from the node");
    }
    let from_pod = get(&cluster.client, SocketAddrV4::new(cluster.bridge_ip, 30080)).unwrap();
    assert!(from_pod.starts_with("pod"), "{backend}: node port from a pod: {from_pod}");

    // Hairpin: pod1 reaches itself through its Service.
    let own_vip = SocketAddrV4::new(vip(3), 80);
    assert_eq!(get(&cluster.pods[0].1, own_vip).unwrap(), "pod1", "{backend}: hairpin");

    // Session affinity: one client, one pod.
    let seen = spread(&cluster.client, SocketAddrV4::new(vip(2), 80), 20);
    assert_eq!(seen.len(), 1, "{backend}: {seen:?}");

    // No endpoints: refused at once, not a hang.
    let e = get(&cluster.client, SocketAddrV4::new(vip(4), 80)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{backend}: {e}");

    // pod3 leaves web: one partial sync, and it gets no more connections.
    services[0].endpoints.retain(|e| *e != cluster.endpoint(2));
    let stats = node.run(|| proxier.sync(&services)).unwrap();
    assert_stats(&stats, false, 1, 3, 1, &format!("{backend}: web loses pod3"));
    let seen = spread(&cluster.client, web_vip, 30);
    assert!(!seen.contains_key("pod3") && seen.len() == 2, "{backend}: {seen:?}");

    // Deleting a Service deletes its chains; its cluster IP leads nowhere.
    let own_chain = rules::service_chain(&services[2].name);
    assert!(node.save(backend).contains(&own_chain));
    services.remove(2);
    let stats = node.run(|| proxier.sync(&services)).unwrap();
    assert_stats(&stats, false, 0, 1, 2, &format!("{backend}: delete a service"));
    assert!(!node.save(backend).contains(&own_chain));
    assert!(get(&cluster.pods[0].1, own_vip).is_err(), "{backend}: a deleted service does not answer");

    node.run(|| proxier.cleanup()).unwrap();
    assert!(kube_chains(&node.save(backend)).is_empty(), "{backend}: {}", node.save(backend));
    assert!(!node.save(backend).contains("podlab"), "{backend}: no jump left");
    assert!(get(&cluster.client, web_vip).is_err(), "{backend}: no service after cleanup");
    drop(cluster);
    assert_gone(&names);
}

#[test]
fn traffic_through_services_legacy() {
    traffic(Backend::Legacy, (pid() % 120) as u8 + 2);
}

#[test]
fn traffic_through_services_nft() {
    traffic(Backend::Nft, (pid() % 120) as u8 + 125);
}
