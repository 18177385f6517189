//! Lab 10, the Service VIP: an address no interface owns, made real by NAT rules.
//!
//! kube-proxy turns a Service into `nat` rules on every node: PREROUTING and OUTPUT send the
//! cluster IP's packets to a service chain, which picks an endpoint at random
//! (`-m statistic --mode random --probability 1/(n-i)`), and the endpoint's chain DNATs to
//! the pod. Conntrack applies the translation to the rest of the connection, both ways. The
//! learner writes the same chains (LAB10-SVC, LAB10-SEP-A/B, LAB10-MARK-MASQ) by hand, in a
//! node of its own (network namespace lab10-node) with two BusyBox web servers and a client.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Ctx, Point, kill_and_wait, remove_workspace};
use crate::error::{Error, IoContext, Result};
use crate::explain::say;
use crate::primitives::iptables::{self, Position, Rule};
use crate::primitives::{link, netns, proc};

/// The node's network namespace: the bridge, the rules, the node's own use of the VIP.
pub(super) const NODE_NS: &str = "lab10-node";
/// The namespace of the guide's last part, where podlab's node agent runs.
const NODE2_NS: &str = "lab10-node2";
const BRIDGE: &str = "lab10br";
const NODE_ADDR: &str = "10.210.0.1/24";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 1);
/// The Service's virtual IP and port.
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 10, 10);
const PORT: u16 = 80;
/// The node's route to the service range, for its own packets to the VIP (OUTPUT).
const SERVICE_RANGE: &str = "10.96.0.0/12";
const SVC_CHAIN: &str = "LAB10-SVC";
const MASQ_CHAIN: &str = "LAB10-MARK-MASQ";
/// kube-proxy's masquerade mark (bit 14) and mask.
const MARK: &str = "0x4000/0x4000";
/// What the learner types before every rule.
const IPT: &str = "ip netns exec lab10-node iptables -t nat";
/// Requests the check makes to see both pods answer.
const SAMPLES: usize = 30;
/// Requests from pod a to see it reach itself through the VIP.
const HAIRPIN_SAMPLES: usize = 20;

/// The guide's last part: a Service `web` in front of two pods, and a client pod, run by the
/// node agent (`podlab run -f`).
#[cfg(test)]
pub const SERVICE_YAML: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-a
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec:
        command: ["cat", "/www/index.html"]
      periodSeconds: 2
---
apiVersion: v1
kind: Pod
metadata:
  name: web-b
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec:
        command: ["cat", "/www/index.html"]
      periodSeconds: 2
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
"#;

/// A network namespace hanging on the node's bridge.
#[derive(Clone, Copy)]
struct Place {
    /// "a", "b", "client".
    name: &'static str,
    netns: &'static str,
    /// The node's end of its veth pair (its own end is eth0).
    veth: &'static str,
    ip: Ipv4Addr,
}

const A: Place = Place { name: "a", netns: "lab10-a", veth: "veth-a", ip: Ipv4Addr::new(10, 210, 0, 2) };
const B: Place = Place { name: "b", netns: "lab10-b", veth: "veth-b", ip: Ipv4Addr::new(10, 210, 0, 3) };
const CLIENT: Place =
    Place { name: "client", netns: "lab10-client", veth: "veth-client", ip: Ipv4Addr::new(10, 210, 0, 4) };
const PLACES: [Place; 3] = [A, B, CLIENT];
/// The two pods (endpoints) and their endpoint chains.
const PODS: [(Place, &str); 2] = [(A, "LAB10-SEP-A"), (B, "LAB10-SEP-B")];

impl Place {
    fn cidr(&self) -> String {
        format!("{}/24", self.ip)
    }

    /// The page its server answers with (`$LAB/NAME/index.html`).
    fn page(&self) -> String {
        format!("hello from pod {}\n", self.name)
    }

    fn endpoint(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.ip, PORT)
    }
}

/// `GET /` on `addr` from inside network namespace `ns`: the body of a 200 answer.
fn http_get(ns: &str, addr: SocketAddrV4) -> std::result::Result<String, String> {
    netns::run_in(Some(ns), || http_get_here(addr)).map_err(|e| e.to_string())?
}

/// The body of a 200 answer to GET / from `addr`, else what went wrong.
fn http_get_here(addr: SocketAddrV4) -> std::result::Result<String, String> {
    match super::http_get(addr)? {
        (200, body) => Ok(body),
        (code, _) => Err(format!("{addr} answered HTTP {code}")),
    }
}

/// Which pod a page comes from.
fn who(body: &str) -> Option<Place> {
    PODS.iter().map(|(p, _)| *p).find(|p| body == p.page())
}

/// The `nat` rules of the node's namespace (None when it cannot be read).
fn node_nat() -> Option<Vec<Rule>> {
    netns::run_in(Some(NODE_NS), || iptables::list("nat")).ok()?.ok()
}

/// The chains of the `nat` table of `ns` (None: the caller's namespace) whose name starts
/// with "LAB10-".
fn lab_chains(ns: Option<&str>) -> Vec<String> {
    let chains = netns::run_in(ns, || iptables::chains("nat")).ok().and_then(|r| r.ok()).unwrap_or_default();
    chains.into_iter().filter(|c| c.starts_with("LAB10-")).collect()
}

/// The word after `flag` in a rule (`-j`, `--probability`...).
fn arg_of<'a>(spec: &'a str, flag: &str) -> Option<&'a str> {
    let mut words = spec.split_whitespace();
    words.by_ref().find(|w| *w == flag)?;
    words.next()
}

/// A sysctl of the node's namespace (`/proc/sys` shows the namespace of the reading thread).
fn node_sysctl(name: &str) -> Option<String> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    netns::run_in(Some(NODE_NS), || std::fs::read_to_string(&path)).ok()?.ok().map(|v| v.trim().to_string())
}

/// `ip netns exec lab10-node sysctl -w NAME=VALUE`.
fn set_node_sysctl(name: &str, value: &str) -> Result<()> {
    say(format!("ip netns exec {NODE_NS} sysctl -w {name}={value}"));
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    netns::run_in(Some(NODE_NS), || std::fs::write(&path, value))?.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing(format!(
            "{} is missing in {NODE_NS}: the bridge's netfilter calls come with module br_netfilter (modprobe br_netfilter)",
            path.display()
        )),
        _ => Error::io("write", &path, e),
    })
}

/// Grade the node, its bridge and the three namespaces on it.
fn check_network(points: &mut Vec<Point>, node: bool) {
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
    for p in PLACES {
        let inside = if netns::exists(p.netns) { link::list(Some(p.netns)).unwrap_or_default() } else { Vec::new() };
        let eth0 = inside.iter().any(|l| l.name == "eth0" && l.up && l.addrs.contains(&p.cidr()));
        let route = !inside.is_empty()
            && link::routes(Some(p.netns))
                .unwrap_or_default()
                .iter()
                .any(|r| r.starts_with(&format!("default via {GATEWAY}")));
        let port = if node { link::get(Some(NODE_NS), p.veth).ok().flatten() } else { None };
        let port = port.is_some_and(|l| l.up && l.master.as_deref() == Some(BRIDGE));
        points.push(Point::new(
            format!(
                "{}: eth0 up with {}, default route via {GATEWAY}; {} in {NODE_NS} is a port of {BRIDGE}, up",
                p.netns,
                p.cidr(),
                p.veth
            ),
            eth0 && route && port,
            format!(
                "seen eth0 {eth0}, route {route}, port {port}: ip netns add {ns}; \
                 ip -n {NODE_NS} link add {veth} type veth peer name eth0 netns {ns}; \
                 ip -n {NODE_NS} link set {veth} master {BRIDGE} up; ip -n {ns} addr add {cidr} dev eth0; \
                 ip -n {ns} link set eth0 up; ip -n {ns} route add default via {GATEWAY}",
                ns = p.netns,
                veth = p.veth,
                cidr = p.cidr()
            ),
        ));
    }
}

/// Grade the two servers, asked from the node.
fn check_servers(points: &mut Vec<Point>, ctx: &Ctx, node: bool) {
    for (p, _) in PODS {
        let answer = if node { http_get(NODE_NS, p.endpoint()) } else { Err(format!("no {NODE_NS}")) };
        let ok = answer.as_ref().is_ok_and(|body| *body == p.page());
        points.push(Point::new(
            format!("GET http://{}/ from {NODE_NS} answers {:?}", p.ip, p.page().trim_end()),
            ok,
            format!(
                "{} — echo '{}' > {ws}/{name}/index.html; ip netns exec {ns} busybox httpd -f -p {PORT} -h {ws}/{name} &",
                match &answer {
                    Ok(body) => format!("the answer is {body:?}"),
                    Err(why) => why.clone(),
                },
                p.page().trim_end(),
                ws = ctx.ws.display(),
                name = p.name,
                ns = p.netns,
            ),
        ));
    }
}

/// Grade the rules of the node's nat table.
fn check_rules(points: &mut Vec<Point>, nat: &[Rule]) {
    let sep_names: Vec<&str> = PODS.iter().map(|(_, c)| *c).collect();
    let wanted: Vec<&str> = [SVC_CHAIN].into_iter().chain(sep_names.iter().copied()).collect();
    let have = if netns::exists(NODE_NS) { lab_chains(Some(NODE_NS)) } else { Vec::new() };
    let missing: Vec<&str> = wanted.iter().copied().filter(|c| !have.iter().any(|h| h == c)).collect();
    let hint = if missing.is_empty() {
        String::new()
    } else {
        let on_host = lab_chains(None);
        let mistake = if on_host.is_empty() {
            String::new()
        } else {
            format!(
                " ({} {} in your machine's own nat table: you left out `ip netns exec {NODE_NS}`; \
                 podlab lab reset 10 removes them)",
                on_host.join(", "),
                if on_host.len() == 1 { "is" } else { "are" }
            )
        };
        format!(
            "missing: {}{mistake} — {}",
            missing.join(", "),
            missing.iter().map(|c| format!("{IPT} -N {c}")).collect::<Vec<_>>().join("; ")
        )
    };
    points.push(Point::new(
        format!("chains {} exist in {NODE_NS}'s nat table", wanted.join(", ")),
        missing.is_empty(),
        hint,
    ));

    for (p, chain) in PODS {
        let to = format!("{}:{PORT}", p.ip);
        let dnat = nat.iter().any(|r| r.chain == chain && arg_of(&r.spec, "--to-destination") == Some(to.as_str()));
        points.push(Point::new(
            format!("{chain} DNATs to {to}"),
            dnat,
            format!("{IPT} -A {chain} -p tcp -j DNAT --to-destination {to}"),
        ));
    }

    let pick = grade_pick(nat);
    points.push(Point::new(
        format!("{SVC_CHAIN} jumps to both endpoint chains, the first jump with -m statistic --mode random"),
        pick.is_ok(),
        pick.err().unwrap_or_default(),
    ));

    let missing: Vec<&str> = ["PREROUTING", "OUTPUT"]
        .into_iter()
        .filter(|hook| {
            !nat.iter().any(|r| {
                r.chain == *hook
                    && arg_of(&r.spec, "-d") == Some(&format!("{VIP}/32"))
                    && arg_of(&r.spec, "-j") == Some(SVC_CHAIN)
            })
        })
        .collect();
    points.push(Point::new(
        format!("PREROUTING and OUTPUT send {VIP} to {SVC_CHAIN}"),
        missing.is_empty(),
        missing
            .iter()
            .map(|hook| format!("{IPT} -A {hook} -d {VIP}/32 -p tcp --dport {PORT} -j {SVC_CHAIN}"))
            .collect::<Vec<_>>()
            .join("; "),
    ));
}

/// How LAB10-SVC picks: a jump to each endpoint chain, the first at random, the last always.
fn grade_pick(nat: &[Rule]) -> std::result::Result<(), String> {
    let jumps: Vec<(&str, &Rule)> = nat
        .iter()
        .filter(|r| r.chain == SVC_CHAIN)
        .filter_map(|r| arg_of(&r.spec, "-j").filter(|t| PODS.iter().any(|(_, c)| c == t)).map(|t| (t, r)))
        .collect();
    let (a, b) = (PODS[0].1, PODS[1].1);
    if let Some((_, chain)) = PODS.iter().find(|(_, c)| !jumps.iter().any(|(t, _)| t == c)) {
        return Err(format!("no rule of {SVC_CHAIN} jumps to {chain}: {IPT} -A {SVC_CHAIN} -j {chain}"));
    }
    let random = |r: &Rule| arg_of(&r.spec, "--mode") == Some("random");
    let (first, first_rule) = jumps[0];
    if !random(first_rule) {
        return Err(format!(
            "the first jump of {SVC_CHAIN} ({first}) takes every connection: \
             {IPT} -R {SVC_CHAIN} 1 -m statistic --mode random --probability 0.5 -j {a}"
        ));
    }
    if let Some((last, last_rule)) = jumps.last().filter(|(_, r)| r.spec.contains("statistic")) {
        let n = nat.iter().filter(|r| r.chain == SVC_CHAIN).position(|r| r == *last_rule).map_or(0, |i| i + 1);
        return Err(format!(
            "the last jump of {SVC_CHAIN} ({last}) has -m statistic too ({}): the connections it leaves \
             go on without a DNAT; {IPT} -R {SVC_CHAIN} {n} -j {b}",
            last_rule.spec
        ));
    }
    Ok(())
}

/// What may be wrong when the VIP does not answer from the client.
fn vip_diagnosis() -> String {
    let mut seen = Vec::new();
    match node_sysctl("net.ipv4.ip_forward").as_deref() {
        Some("1") | None => {}
        Some(v) => seen.push(format!(
            "net.ipv4.ip_forward is {v} in {NODE_NS}: ip netns exec {NODE_NS} sysctl -w net.ipv4.ip_forward=1"
        )),
    }
    match node_sysctl("net.bridge.bridge-nf-call-iptables").as_deref() {
        Some("1") => {}
        Some(v) => seen.push(format!(
            "net.bridge.bridge-nf-call-iptables is {v} in {NODE_NS}: the pods' answers pass the bridge without \
             conntrack; ip netns exec {NODE_NS} sysctl -w net.bridge.bridge-nf-call-iptables=1"
        )),
        None => seen.push(format!("no net.bridge.bridge-nf-call-iptables in {NODE_NS}: modprobe br_netfilter")),
    }
    if seen.is_empty() { "are the rules above in place?".to_string() } else { seen.join("; ") }
}

/// Grade the VIP by using it: from the client, from the node, from pod a to itself.
fn check_traffic(points: &mut Vec<Point>, node: bool) {
    let vip = SocketAddrV4::new(VIP, PORT);
    let first = if node { http_get(CLIENT.netns, vip) } else { Err(format!("no {NODE_NS}")) };
    let answers = match &first {
        Ok(body) => who(body).map(|p| p.name).ok_or_else(|| format!("the answer {body:?} is no pod's page")),
        Err(why) => Err(why.clone()),
    };
    points.push(Point::new(
        format!("GET http://{VIP}/ from {} is answered by a pod", CLIENT.netns),
        answers.is_ok(),
        match &answers {
            Ok(_) => String::new(),
            Err(why) if node => format!("{why} — {}", vip_diagnosis()),
            Err(why) => format!("{why}: make the node and the pods first"),
        },
    ));

    // Both pods, over at most SAMPLES connections (each one a new toss).
    let mut counts = [0usize; 2];
    let mut failed = None;
    if answers.is_ok() {
        for i in 0..SAMPLES {
            match http_get(CLIENT.netns, vip) {
                Ok(body) => {
                    if let Some(k) = PODS.iter().position(|(p, _)| body == p.page()) {
                        counts[k] += 1;
                    }
                }
                Err(why) => {
                    failed = Some(format!("request {} got no answer ({why})", i + 1));
                    break;
                }
            }
            if counts.iter().all(|c| *c > 0) {
                break;
            }
        }
    }
    let both = failed.is_none() && counts.iter().all(|c| *c > 0);
    points.push(Point::new(
        format!("both pods answer the VIP (at most {SAMPLES} requests from {})", CLIENT.netns),
        both,
        match (&failed, answers.is_ok()) {
            (_, false) => "the VIP does not answer yet".to_string(),
            (Some(why), _) => format!("{why}: does every connection leave {SVC_CHAIN} with a DNAT?"),
            (None, _) => format!(
                "seen pod a {} times, pod b {} times: the probability of {SVC_CHAIN}'s first rule should be 0.5 — \
                 {IPT} -L {SVC_CHAIN} -n",
                counts[0], counts[1]
            ),
        },
    ));

    let from_node = if node { http_get(NODE_NS, vip) } else { Err(format!("no {NODE_NS}")) };
    points.push(Point::new(
        format!("the node ({NODE_NS}) reaches {VIP} itself"),
        from_node.as_ref().is_ok_and(|b| who(b).is_some()),
        format!(
            "{} — its packets go through OUTPUT, after a route lookup: ip -n {NODE_NS} route add {SERVICE_RANGE} dev \
             {BRIDGE}; {IPT} -A OUTPUT -d {VIP}/32 -p tcp --dport {PORT} -j {SVC_CHAIN}",
            from_node.as_ref().err().cloned().unwrap_or_else(|| "no pod's page".into())
        ),
    ));

    let hairpin = if answers.is_ok() { grade_hairpin() } else { Err(String::new()) };
    points.push(Point::new(
        format!("pod a ({}) reaches itself through {VIP} (hairpin)", A.netns),
        hairpin.is_ok(),
        match hairpin {
            Ok(()) => String::new(),
            Err(why) if why.is_empty() => "the VIP does not answer yet".to_string(),
            Err(why) => format!(
                "{why} — ip -n {NODE_NS} link set {} type bridge_slave hairpin on (and {}); {IPT} -N {MASQ_CHAIN}; \
                 {IPT} -A {MASQ_CHAIN} -j MARK --set-xmark {MARK}; {IPT} -I {} 1 -s {}/32 -j {MASQ_CHAIN} (and {}); \
                 {IPT} -A POSTROUTING -m mark --mark {MARK} -j MASQUERADE",
                A.veth, B.veth, PODS[0].1, A.ip, PODS[1].1
            ),
        },
    ));
}

/// Ask the VIP from pod a until pod a answers; every request must be answered.
fn grade_hairpin() -> std::result::Result<(), String> {
    let vip = SocketAddrV4::new(VIP, PORT);
    for i in 0..HAIRPIN_SAMPLES {
        match http_get(A.netns, vip) {
            Ok(body) if body == A.page() => return Ok(()),
            Ok(_) => {}
            Err(why) => return Err(format!("request {} from {} got no answer ({why})", i + 1, A.netns)),
        }
    }
    Err(format!("pod b answered all {HAIRPIN_SAMPLES} requests from {}: is pod a an endpoint?", A.netns))
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    let node = netns::exists(NODE_NS);
    check_network(&mut points, node);
    check_servers(&mut points, ctx, node);
    let nat = if node { node_nat().unwrap_or_default() } else { Vec::new() };
    check_rules(&mut points, &nat);
    check_traffic(&mut points, node);
    Ok(points)
}

/// `ip netns exec NS ARGV &`: start a server inside a namespace, detached (its own session,
/// no stdio). A child forked by a thread inside a network namespace starts in it.
fn spawn_in(ns: &str, argv: &[&str]) -> Result<i32> {
    say(format!(
        "ip netns exec {ns} {} &",
        crate::explain::join(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    ));
    let child = netns::run_in(Some(ns), || {
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        cmd.spawn()
    })?;
    let child = child.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Missing(format!(
            "{} is not installed: the lab's servers are BusyBox httpd (apt-get install busybox-static)",
            argv[0]
        )),
        _ => Error::io("start", argv[0], e),
    })?;
    Ok(child.id() as i32)
}

/// `ip -n lab10-node link set VETH type bridge_slave hairpin on` (link.rs has no hairpin).
fn set_hairpin(veth: &str) -> Result<()> {
    let args = ["-n", NODE_NS, "link", "set", veth, "type", "bridge_slave", "hairpin", "on"];
    say(format!("ip {}", args.join(" ")));
    let out = Command::new("ip").args(args).output().map_err(|e| Error::io("run", "ip", e))?;
    if !out.status.success() {
        return Err(Error::Child {
            step: format!("`ip {}` failed", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn words(rule: &str) -> Vec<String> {
    rule.split_whitespace().map(str::to_string).collect()
}

/// The Service's chains and jumps, in the node's nat table: what the guide types, in the
/// guide's final state. Runs on a thread inside the node's namespace.
fn write_rules() -> Result<()> {
    let add = |chain: &str, rule: &str| iptables::ensure_rule("nat", chain, Position::Append, &words(rule)).map(drop);
    iptables::ensure_chain("nat", MASQ_CHAIN)?;
    add(MASQ_CHAIN, &format!("-j MARK --set-xmark {MARK}"))?;
    for (p, chain) in PODS {
        iptables::ensure_chain("nat", chain)?;
        add(chain, &format!("-s {}/32 -j {MASQ_CHAIN}", p.ip))?;
        add(chain, &format!("-p tcp -j DNAT --to-destination {}:{PORT}", p.ip))?;
    }
    iptables::ensure_chain("nat", SVC_CHAIN)?;
    add(SVC_CHAIN, &format!("-m statistic --mode random --probability 0.5 -j {}", PODS[0].1))?;
    add(SVC_CHAIN, &format!("-j {}", PODS[1].1))?;
    for hook in ["PREROUTING", "OUTPUT"] {
        add(hook, &format!("-d {VIP}/32 -p tcp --dport {PORT} -j {SVC_CHAIN}"))?;
    }
    add("POSTROUTING", &format!("-m mark --mark {MARK} -j MASQUERADE"))
}

/// Wait until `get` answers with a pod's page.
fn wait_answer(what: &str, get: impl Fn() -> std::result::Result<String, String>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get();
        match &answer {
            Ok(body) if who(body).is_some() => return Ok(()),
            _ if Instant::now() > deadline => {
                return Err(Error::invalid(format!("{what} does not answer within 10 s: {answer:?}")));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    // Start over: rules or servers of an earlier attempt would get in the way.
    reset(ctx)?;
    for (p, _) in PODS {
        let dir = ctx.ws.join(p.name);
        say(format!("mkdir -p {0} && echo '{1}' > {0}/index.html", dir.display(), p.page().trim_end()));
        std::fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        std::fs::write(dir.join("index.html"), p.page()).ctx("write", dir.join("index.html"))?;
    }

    // 1. The node with its bridge; the pods and the client, each on a veth plugged into it.
    netns::create(NODE_NS)?;
    link::set_up(Some(NODE_NS), "lo")?;
    link::create_bridge(Some(NODE_NS), BRIDGE)?;
    link::add_addr(Some(NODE_NS), BRIDGE, NODE_ADDR)?;
    link::set_up(Some(NODE_NS), BRIDGE)?;
    for p in PLACES {
        netns::create(p.netns)?;
        link::set_up(Some(p.netns), "lo")?;
        link::create_veth(Some(NODE_NS), p.veth, "eth0", Some(p.netns))?;
        link::set_master(Some(NODE_NS), p.veth, BRIDGE)?;
        link::set_up(Some(NODE_NS), p.veth)?;
        link::add_addr(Some(p.netns), "eth0", &p.cidr())?;
        link::set_up(Some(p.netns), "eth0")?;
        link::add_route(Some(p.netns), None, Some(GATEWAY.into()), Some("eth0"))?;
    }
    // The node routes (VIP in, pod out), and its bridge hands bridged frames to iptables, so
    // that conntrack sees the pods' answers to the client and puts the VIP back.
    set_node_sysctl("net.ipv4.ip_forward", "1")?;
    set_node_sysctl("net.bridge.bridge-nf-call-iptables", "1")?;

    // 2. The two servers.
    for (p, _) in PODS {
        let dir = ctx.ws.join(p.name);
        spawn_in(p.netns, &["busybox", "httpd", "-f", "-p", &PORT.to_string(), "-h", &dir.to_string_lossy()])?;
    }
    for (p, _) in PODS {
        wait_answer(&format!("http://{}/", p.ip), || http_get(NODE_NS, p.endpoint()))?;
    }

    // 3. The Service: hairpin mode on the pods' ports, the chains and the jumps, a route for
    //    the node's own packets to the service range.
    for (p, _) in PODS {
        set_hairpin(p.veth)?;
    }
    say(format!("ip netns exec {NODE_NS} sh    # the iptables commands up to `exit` run in {NODE_NS}"));
    netns::run_in(Some(NODE_NS), write_rules)??;
    say("exit");
    link::add_route(Some(NODE_NS), Some(SERVICE_RANGE), None, Some(BRIDGE))?;

    // 4. The VIP answers.
    let vip = SocketAddrV4::new(VIP, PORT);
    say(format!("ip netns exec {} timeout 3 busybox wget -q -O - http://{VIP}/", CLIENT.netns));
    wait_answer(&format!("http://{VIP}/ from {}", CLIENT.netns), || http_get(CLIENT.netns, vip))
}

/// The lab's processes: those in its network namespaces, and BusyBox servers of its
/// workspace whose namespace is no longer named.
fn lab_processes(ws: &Path) -> Vec<i32> {
    let inodes: Vec<u64> =
        PLACES.iter().map(|p| p.netns).chain([NODE_NS]).filter_map(|n| netns::inode_of(n).ok()).collect();
    let ws = ws.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    proc::pids()
        .into_iter()
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let inside = proc::ns_inode(*pid, "net").is_ok_and(|i| inodes.contains(&i));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            inside || (cmdline.contains("httpd") && cmdline.contains(&ws))
        })
        .collect()
}

/// Remove LAB10- chains typed into the caller's own nat table by mistake (without `ip netns
/// exec`), and the rules that jump to them. Returns whether there were any.
fn remove_host_chains() -> Result<bool> {
    let chains = lab_chains(None);
    if chains.is_empty() {
        return Ok(false);
    }
    let ours =
        |r: &Rule| r.chain.starts_with("LAB10-") || arg_of(&r.spec, "-j").is_some_and(|t| t.starts_with("LAB10-"));
    iptables::delete_matching("nat", ours)?;
    for chain in &chains {
        iptables::delete_chain("nat", chain)?;
    }
    Ok(true)
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    // The guide's last part: the node agent of $LAB/root and its pods.
    let mut found = super::lab11_kubelet::reset_node(&ctx.ws.join("root"), NODE2_NS)?;
    let pids = lab_processes(&ctx.ws);
    found |= !pids.is_empty();
    kill_and_wait(&pids);
    // The rules of lab10-node go with its namespace.
    for ns in PLACES.iter().map(|p| p.netns).chain([NODE_NS, NODE2_NS]) {
        found |= netns::exists(ns);
        netns::delete(ns)?;
    }
    found |= remove_host_chains()?;
    Ok(remove_workspace(&ctx.ws)? || found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_shows_the_lab_s_own_names() {
        let guide = include_str!("../../labs/10-service-vip/README.md");
        for name in [NODE_NS, NODE2_NS, BRIDGE, NODE_ADDR, SERVICE_RANGE, SVC_CHAIN, MASQ_CHAIN, MARK] {
            assert!(guide.contains(name), "{name} is in the guide");
        }
        for (p, chain) in PODS {
            assert!(guide.contains(p.page().trim_end()) && guide.contains(chain));
            assert!(guide.contains(&format!("--to-destination {}:{PORT}", p.ip)));
        }
        for p in PLACES {
            assert!(guide.contains(p.netns) && guide.contains(p.veth) && guide.contains(&p.ip.to_string()));
        }
        assert!(guide.contains(&format!("http://{VIP}/")));
    }

    #[test]
    fn the_service_yaml_is_the_guide_s_and_parses() {
        assert!(include_str!("../../labs/10-service-vip/README.md").contains(SERVICE_YAML));
        let dir = std::env::temp_dir().join(format!("lab10-yaml-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("web.yaml");
        std::fs::write(&file, SERVICE_YAML).unwrap();
        let objects = crate::pod::manifest::load(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<(&str, &str)> = objects.iter().map(|o| (o.kind(), o.name())).collect();
        assert_eq!(names, [("Service", "web"), ("Pod", "web-a"), ("Pod", "web-b"), ("Pod", "client")]);
    }

    fn rule(chain: &str, spec: &str) -> Rule {
        Rule { table: "nat".into(), chain: chain.into(), spec: spec.into(), comment: None }
    }

    #[test]
    fn the_pick_needs_a_random_first_jump_and_a_plain_last_one() {
        let random = "-m statistic --mode random --probability 0.50000000000 -j LAB10-SEP-A";
        let good = [rule(SVC_CHAIN, random), rule(SVC_CHAIN, "-j LAB10-SEP-B")];
        assert_eq!(grade_pick(&good), Ok(()));
        let only_a = [rule(SVC_CHAIN, random)];
        assert!(grade_pick(&only_a).unwrap_err().contains("-A LAB10-SVC -j LAB10-SEP-B"));
        let plain = [rule(SVC_CHAIN, "-j LAB10-SEP-A"), rule(SVC_CHAIN, "-j LAB10-SEP-B")];
        assert!(grade_pick(&plain).unwrap_err().contains("takes every connection"));
        let both = [
            rule(SVC_CHAIN, random),
            rule(SVC_CHAIN, "-m statistic --mode random --probability 0.50000000000 -j LAB10-SEP-B"),
        ];
        assert!(grade_pick(&both).unwrap_err().contains("-R LAB10-SVC 2 -j LAB10-SEP-B"));
        // Rules of other chains do not count.
        let elsewhere = [rule("LAB10-OTHER", random), rule(SVC_CHAIN, "-j LAB10-SEP-B")];
        assert!(grade_pick(&elsewhere).is_err());
    }

    #[test]
    fn arg_of_finds_the_word_after_a_flag() {
        let spec = "-d 10.96.10.10/32 -p tcp -m tcp --dport 80 -j LAB10-SVC";
        assert_eq!(arg_of(spec, "-j"), Some("LAB10-SVC"));
        assert_eq!(arg_of(spec, "-d"), Some("10.96.10.10/32"));
        assert_eq!(arg_of(spec, "--to-destination"), None);
    }
}
