//! Services end to end: a node agent in a network namespace made by the test, pods and
//! Services from YAML, and traffic to the VIPs, node ports and DNS names from inside pods.

mod common;

use std::collections::BTreeMap;

use common::node::{Node, ready};
use common::{text, wait_until};
use serde_json::Value;

/// A web pod labelled app=web whose page is its own name; `ready_file`: ready only once
/// /tmp/ready exists (a readiness probe), else ready at once.
fn web_pod(name: &str, ready_file: bool) -> String {
    let probe = if ready_file {
        "\n    readinessProbe:\n      exec: {command: [cat, /tmp/ready]}\n      periodSeconds: 1"
    } else {
        ""
    };
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 1
  hostname: {name}
  subdomain: web-headless
  containers:
  - name: httpd
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]{probe}
"#
    )
}

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
"#;

const CLIENT: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

/// Fetch `url` `n` times from the client pod; how often each page came back.
fn spread(node: &Node, url: &str, n: usize) -> BTreeMap<String, usize> {
    let script = format!("for i in $(seq {n}); do timeout 3 wget -q -O - {url} || echo failed; done");
    let out = node.exec("client", "c", &script);
    let mut seen = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        *seen.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    seen
}

fn service(node: &Node, name: &str) -> Value {
    let out = node.podlab(&["get", "svc", name, "-o", "json"]);
    assert!(out.status.success(), "get svc {name}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn nat_rules(node: &Node) -> String {
    text(&node.in_node(&["iptables-save", "-t", "nat"]).stdout)
}

#[test]
fn cluster_ip_spreads_over_ready_pods_and_follows_them() {
    let node = Node::start("svc");
    for name in ["web-a", "web-b", "web-c"] {
        node.apply_ok(name, &web_pod(name, false));
    }
    // web-d is selected but not ready: it must get no traffic.
    node.apply("web-d", &web_pod("web-d", true), false);
    node.apply_ok("client", CLIENT);
    let out = node.apply("services", SERVICES, false);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    // The Service got a ClusterIP from 10.96.0.0/12, and kubectl-like listings show it.
    assert!(wait_until(10, || node.podlab(&["get", "svc", "web"]).status.success()), "{}", node.debug());
    let svc = service(&node, "web");
    let vip = svc["spec"]["clusterIP"].as_str().unwrap().to_string();
    let octets: Vec<u8> = vip.split('.').map(|o| o.parse().unwrap()).collect();
    assert!(octets[0] == 10 && (96..112).contains(&octets[1]) && vip != "10.96.0.10", "ClusterIP {vip}");
    let table = text(&node.podlab(&["get", "svc"]).stdout);
    assert!(table.lines().next().unwrap().split_whitespace().eq([
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)"
    ]));
    assert!(table.contains(&vip) && table.contains("80:30080/TCP") && table.contains("None"), "{table}");

    // 60 requests to the VIP reach each of the three ready pods; web-d never.
    let mut seen = BTreeMap::new();
    assert!(
        wait_until(20, || {
            seen = spread(&node, &format!("http://{vip}/"), 60);
            ["web-a", "web-b", "web-c"].iter().all(|p| seen.get(*p).is_some_and(|n| *n > 0))
        }),
        "VIP {vip}: {seen:?}\n{}\n{}",
        nat_rules(&node),
        node.debug()
    );
    assert!(!seen.contains_key("web-d"), "a not-ready pod got traffic: {seen:?}");
    let eps = text(&node.podlab(&["get", "endpoints", "web"]).stdout);
    assert_eq!(eps.matches(":8080").count(), 3, "{eps}");

    // kube-proxy's layout: a KUBE-SVC chain with the probability split, KUBE-SEP DNATs.
    let rules = nat_rules(&node);
    assert!(rules.contains("default/web:http cluster IP"), "{rules}");
    assert!(rules.contains("--probability 0.33333333349"), "{rules}");
    assert_eq!(rules.lines().filter(|l| l.contains("-j DNAT") && l.contains("default/web:http")).count(), 3);

    // web-d turns ready: it joins within a sync.
    assert!(node.exec("web-d", "httpd", "touch /tmp/ready").status.success());
    node.wait_pod("web-d", 20, "ready", ready);
    assert!(
        wait_until(20, || spread(&node, &format!("http://{vip}/"), 40).contains_key("web-d")),
        "{}",
        nat_rules(&node)
    );

    // Deleting a pod takes it out of the Service.
    assert!(node.podlab(&["delete", "pod", "web-a"]).status.success());
    let seen = spread(&node, &format!("http://{vip}/"), 30);
    assert!(!seen.contains_key("web-a") && !seen.contains_key("failed"), "{seen:?}");

    // The node port answers on the node's address; a pod reaches itself through the VIP.
    let page = node.fetch("http://10.244.0.1:30080/").unwrap_or_default();
    assert!(page.starts_with("web-"), "node port: {page:?}\n{}", nat_rules(&node));
    let out =
        node.exec("web-b", "httpd", &format!("for i in $(seq 20); do timeout 3 wget -q -O - http://{vip}/; done"));
    assert!(text(&out.stdout).contains("web-b"), "hairpin: {}{}", text(&out.stdout), text(&out.stderr));

    // Cluster DNS: the service name, the headless name with its pods, and the search path.
    let out = node.exec("client", "c", "nslookup web.default.svc.cluster.local");
    assert!(text(&out.stdout).contains(&vip), "{}{}", text(&out.stdout), text(&out.stderr));
    let out = node.exec("client", "c", "nslookup web-headless.default.svc.cluster.local");
    let ips: Vec<String> = ["web-b", "web-c", "web-d"]
        .iter()
        .map(|p| node.pod(p)["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    assert!(ips.iter().all(|ip| text(&out.stdout).contains(ip)), "{}", text(&out.stdout));
    let out = node.exec(
        "client",
        "c",
        "timeout 3 wget -q -O - http://web/ && timeout 3 wget -q -O - http://web-c.web-headless:8080/",
    );
    let pages = text(&out.stdout);
    assert!(pages.starts_with("web-") && pages.ends_with("web-c\n"), "{pages}{}", text(&out.stderr));

    // A pod started after the Service sees it in its environment.
    node.apply_ok("late", &CLIENT.replace("name: client", "name: late"));
    let out = node.exec("late", "c", "echo $WEB_SERVICE_HOST:$WEB_SERVICE_PORT_HTTP");
    assert_eq!(text(&out.stdout).trim(), format!("{vip}:80"));

    // Deleting the Service removes its chains.
    let svc_chain = rules
        .lines()
        .find(|l| l.contains("default/web:http cluster IP"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    assert!(node.podlab(&["delete", "svc", "web"]).status.success());
    assert!(wait_until(5, || !nat_rules(&node).contains(&svc_chain)), "{}", nat_rules(&node));
    node.finish();
}
