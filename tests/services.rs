//! Services through the library: ClusterIP/NodePort allocation shared by processes, Endpoints
//! manifests, and a manifest's Services, Endpoints and pods flattened for the proxy and DNS.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podlab::pod::manifest::{self, Endpoints, Object, Pod, Service};
use podlab::proxy::alloc::{self, Allocator};
use podlab::proxy::dns::{Lookup, RecordType, RrData};
use podlab::proxy::endpoints::{self, PodInfo};
use podlab::proxy::model::Endpoint;

/// Turns [`alloc_child`] into an allocator for [`processes_and_threads_never_share_a_value`].
const CHILD_ENV: &str = "PODLAB_SERVICES_TEST_CHILD";
/// Services each thread of each child asks for, and the names every thread asks for too.
const PER_THREAD: usize = 50;
const THREADS: usize = 2;
const CHILDREN: usize = 2;
const SHARED: usize = 5;

fn nodeport_service(ns: &str, name: &str) -> Service {
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  type: NodePort\n  \
         selector:\n    app: {name}\n  ports:\n    - name: http\n      port: 80\n    - name: dns\n      port: 53\n      \
         protocol: UDP\n"
    );
    match manifest::parse(&text, "test").unwrap().remove(0) {
        Object::Service(svc) => *svc,
        other => panic!("not a service: {other:?}"),
    }
}

/// "ns/name ip port port" for an assigned Service.
fn line_of(svc: &Service) -> String {
    let spec = svc.spec.as_ref().unwrap();
    let ports: Vec<String> = spec.ports.iter().flatten().map(|p| p.node_port.unwrap_or(0).to_string()).collect();
    format!(
        "{}/{} {} {}",
        svc.metadata.namespace.as_deref().unwrap(),
        svc.metadata.name.as_deref().unwrap(),
        spec.cluster_ip.as_deref().unwrap_or("-"),
        ports.join(" ")
    )
}

/// Assign `count` Services named `prefix-N` and the shared ones, printing one line each.
fn assign_many(dir: &Path, prefix: &str) -> Vec<String> {
    let a = Allocator::open(dir).unwrap();
    let mut lines = Vec::new();
    for i in 0..PER_THREAD {
        let mut svc = nodeport_service("load", &format!("{prefix}-{i}"));
        a.assign(&mut svc).unwrap();
        lines.push(line_of(&svc));
        if i % 10 == 0 {
            let mut shared = nodeport_service("load", &format!("shared-{}", i / 10 % SHARED));
            a.assign(&mut shared).unwrap();
            lines.push(line_of(&shared));
        }
    }
    lines
}

/// Run as a child process by [`processes_and_threads_never_share_a_value`]: THREADS threads
/// assign their Services at once and print what they got.
#[test]
#[ignore = "run as a child process by processes_and_threads_never_share_a_value"]
fn alloc_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (dir, id) = spec.split_once('\n').unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let dir = dir.to_string();
            let prefix = format!("p{id}-t{t}");
            std::thread::spawn(move || assign_many(Path::new(&dir), &prefix))
        })
        .collect();
    for t in threads {
        for line in t.join().unwrap() {
            println!("ASSIGNED {line}");
        }
    }
}

#[test]
fn processes_and_threads_never_share_a_value() {
    let root = common::TestRoot::new("services-alloc");
    let dir = root.dir.join("services");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "alloc_child", "--ignored", "--test-threads=1", "--nocapture"])
                .env(CHILD_ENV, format!("{}\n{id}", dir.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut lines = Vec::new();
    for mut child in children {
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("a child allocator hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let text = common::text(&out.stdout) + &common::text(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "child failed: {text}");
        // (The harness's "test alloc_child ... " may start the first line.)
        lines.extend(text.lines().filter_map(|l| l.split_once("ASSIGNED ").map(|(_, rest)| rest.to_string())));
    }
    // Every Service has one set of values, whoever asked; no value is held by two Services.
    let mut by_service: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in &lines {
        let (name, values) = line.split_once(' ').unwrap();
        by_service.entry(name.to_string()).or_default().insert(values.to_string());
    }
    assert_eq!(by_service.len(), CHILDREN * THREADS * PER_THREAD + SHARED, "{lines:#?}");
    let mut ips = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (name, values) in &by_service {
        assert_eq!(values.len(), 1, "{name} got different values: {values:?}");
        let words: Vec<&str> = values.first().unwrap().split(' ').collect();
        let ip: Ipv4Addr = words[0].parse().unwrap();
        assert!(ips.insert(ip), "{ip} handed out twice");
        let (http, dns): (u16, u16) = (words[1].parse().unwrap(), words[2].parse().unwrap());
        assert!(alloc::NODE_PORT_RANGE.contains(&http) && alloc::NODE_PORT_RANGE.contains(&dns), "{name}: {words:?}");
        assert!(ports.insert(http) && ports.insert(dns), "{name}: a node port handed out twice");
        assert_ne!(ip, alloc::DNS_SERVICE_IP);
    }

    // The state outlives the processes: a new allocator gives every Service its values again.
    let a = Allocator::open(&dir).unwrap();
    for (name, values) in &by_service {
        let (ns, svc_name) = name.split_once('/').unwrap();
        let mut svc = nodeport_service(ns, svc_name);
        a.assign(&mut svc).unwrap();
        assert_eq!(&line_of(&svc), &format!("{name} {}", values.first().unwrap()));
    }
    // A value asked for by another Service is refused, naming the one that holds it.
    let (holder, values) = by_service.iter().next().unwrap();
    let taken = values.first().unwrap().split(' ').next().unwrap().to_string();
    let mut thief = nodeport_service("other", "thief");
    thief.spec.as_mut().unwrap().cluster_ip = Some(taken.clone());
    let err = a.assign(&mut thief).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "service other/thief: spec.clusterIP: invalid value \"{taken}\": provided IP is already allocated (service {holder})"
        )),
        "{err}"
    );
    // Once the holder is gone, the address is free.
    let keep: Vec<(String, String)> = by_service
        .keys()
        .filter(|k| *k != holder)
        .map(|k| {
            let (ns, n) = k.split_once('/').unwrap();
            (ns.to_string(), n.to_string())
        })
        .collect();
    a.retain(&keep).unwrap();
    a.assign(&mut thief).unwrap();
    assert_eq!(thief.spec.as_ref().unwrap().cluster_ip.as_deref(), Some(taken.as_str()));
    drop(root);
    assert!(!dir.exists(), "the test's state is left behind");
}

const ENDPOINTS: &str = "apiVersion: v1
kind: Endpoints
metadata:
  name: legacy-db
  namespace: shop
subsets:
  - addresses:
      - ip: 192.0.2.10
      - ip: 192.0.2.11
        hostname: db-1
    notReadyAddresses:
      - ip: 192.0.2.12
    ports:
      - name: pg
        port: 5432
      - name: metrics
        port: 9187
        protocol: TCP
";

#[test]
fn endpoints_manifests_are_loaded_and_checked() {
    let root = common::TestRoot::new("services-endpoints");
    let file = root.dir.join("endpoints.yaml");
    std::fs::write(&file, ENDPOINTS).unwrap();
    let objects = manifest::load(&file).unwrap();
    let summary: Vec<(&str, &str, &str)> = objects.iter().map(|o| (o.kind(), o.namespace(), o.name())).collect();
    assert_eq!(summary, [("Endpoints", "shop", "legacy-db")]);
    let Object::Endpoints(e) = &objects[0] else { panic!("not endpoints") };
    let subset = &e.subsets.as_ref().unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[1].hostname.as_deref(), Some("db-1"));
    assert_eq!(subset.ports.as_ref().unwrap()[1].port, 9187);

    let bad = "apiVersion: v1
kind: Endpoints
metadata:
  name: Legacy
subsets:
  - ports: [{port: 80}]
  - addresses:
      - ip: 127.0.0.1
      - ip: 10.0.0.300
      - {ip: 169.254.1.1, hostnme: x}
    notReadyAddresses:
      - ip: 224.0.0.5
    ports:
      - {name: http, port: 70000}
      - {name: http, port: 81, protocol: tcp}
      - {port: \"82\"}
";
    let file = root.dir.join("bad.yaml");
    std::fs::write(&file, bad).unwrap();
    let err = manifest::load(&file).unwrap_err().to_string();
    let prefix = format!("{}: document 1 (Endpoints Legacy): ", file.display());
    let want = [
        "subsets[1].addresses[2].hostnme: unknown field; valid fields: hostname, ip, nodeName, targetRef; did you mean \"hostname\"?",
        "subsets[1].ports[2].port: expected an integer, found a string (\"82\"); remove the quotes",
        "metadata.name: invalid value \"Legacy\": a DNS-1035 label",
        "subsets[0]: required: must specify `addresses` or `notReadyAddresses`",
        "subsets[1].addresses[0].ip: invalid value \"127.0.0.1\": may not be in the loopback range",
        "subsets[1].addresses[1].ip: invalid value \"10.0.0.300\": must be a valid IP address",
        "subsets[1].addresses[2].ip: invalid value \"169.254.1.1\": may not be in the link-local range",
        "subsets[1].notReadyAddresses[0].ip: invalid value \"224.0.0.5\": may not be a multicast address",
        "subsets[1].ports[0].port: invalid value 70000: must be between 1 and 65535, inclusive",
        "subsets[1].ports[1].name: duplicate \"http\"",
        "subsets[1].ports[1].protocol: unsupported value \"tcp\": supported values: \"TCP\", \"UDP\", \"SCTP\"; did you mean \"TCP\"?",
        "subsets[1].ports[2].name: required: ports must be named when there is more than one",
    ];
    for line in want {
        assert!(err.lines().any(|l| l.starts_with(&prefix) && l.contains(line)), "no line {line:?} in:\n{err}");
    }
    // The kinds podlab runs are named when another one is given.
    let err = manifest::parse("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n", "t").unwrap_err().to_string();
    assert!(err.contains("use Pod, Service, ConfigMap, Secret or Endpoints"), "{err}");
    let err = manifest::parse("apiVersion: v1\nkind: endpoints\n", "t").unwrap_err().to_string();
    assert!(err.contains("did you mean \"Endpoints\""), "{err}");
}

const APP: &str = "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  sessionAffinity: ClientIP
  ports:
    - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: legacy-db, namespace: shop}
spec:
  ports: [{name: pg, port: 5432}, {name: metrics, port: 9187}]
";

/// A running pod of namespace shop with a status, as the node agent reports it.
fn running_pod(name: &str, ip: &str, labels: &str, ready: bool, extra_spec: &str) -> Pod {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\n  labels: {labels}\nspec:\n{extra_spec}  \
         containers:\n    - name: app\n      image: busybox\n      ports: [{{name: http, containerPort: 8080}}]\n"
    );
    let Object::Pod(pod) = manifest::parse(&text, "pod").unwrap().remove(0) else { panic!("not a pod") };
    let mut pod = *pod;
    let status = serde_json::json!({
        "phase": "Running", "podIP": ip,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
    });
    pod.status = Some(serde_json::from_value(status).unwrap());
    pod
}

#[test]
fn a_manifest_becomes_service_ports_and_dns_records() {
    let root = common::TestRoot::new("services-flatten");
    let allocator = Allocator::open(&root.dir.join("services")).unwrap();
    let mut services = Vec::new();
    let mut endpoints: Vec<Endpoints> = Vec::new();
    for object in manifest::parse(APP, "app.yaml").unwrap().into_iter().chain(manifest::parse(ENDPOINTS, "e").unwrap())
    {
        match object {
            Object::Service(mut svc) => {
                allocator.assign(&mut svc).unwrap();
                services.push(*svc);
            }
            Object::Endpoints(e) => endpoints.push(*e),
            other => panic!("unexpected {other:?}"),
        }
    }
    let pods: Vec<PodInfo> = [
        running_pod("web-a", "10.244.0.2", "{app: web}", true, ""),
        running_pod("web-b", "10.244.0.3", "{app: web}", false, ""),
        running_pod("db-0", "10.244.0.4", "{app: db}", true, "  hostname: db-0\n  subdomain: db\n"),
    ]
    .iter()
    .map(PodInfo::of)
    .collect();

    let ports = endpoints::service_ports(&services, &pods, &endpoints);
    let web_ip: Ipv4Addr = services[0].spec.as_ref().unwrap().cluster_ip.as_deref().unwrap().parse().unwrap();
    let node_port = services[0].spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port.unwrap();
    let summary: Vec<String> = ports
        .iter()
        .map(|p| {
            let eps: Vec<String> = p.endpoints.iter().map(Endpoint::to_string).collect();
            format!("{} {:?} {:?} {:?} [{}]", p.name, p.cluster_ip, p.node_port, p.affinity_timeout, eps.join(" "))
        })
        .collect();
    let legacy_ip = services[2].spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    assert_eq!(
        summary,
        [
            "shop/db:pg None None None [10.244.0.4:5432]".to_string(),
            format!("shop/legacy-db:metrics Some({legacy_ip}) None None [192.0.2.10:9187 192.0.2.11:9187]"),
            format!("shop/legacy-db:pg Some({legacy_ip}) None None [192.0.2.10:5432 192.0.2.11:5432]"),
            format!("shop/web:http Some({web_ip}) Some({node_port}) Some(10800) [10.244.0.2:8080]"),
        ]
    );

    let records = endpoints::dns_records(&services, &pods, &endpoints);
    let a = |name: &str| -> Vec<String> {
        match records.answer("cluster.local", name, RecordType::A) {
            Lookup::Found { answers, .. } => answers
                .into_iter()
                .filter_map(|r| match r.data {
                    RrData::A(ip) => Some(ip.to_string()),
                    _ => None,
                })
                .collect(),
            other => vec![format!("{other:?}")],
        }
    };
    assert_eq!(a("web.shop.svc.cluster.local"), [web_ip.to_string()]);
    assert_eq!(a("legacy-db.shop.svc.cluster.local"), [legacy_ip]);
    assert_eq!(a("db.shop.svc.cluster.local"), ["10.244.0.4"]);
    assert_eq!(a("db-0.db.shop.svc.cluster.local"), ["10.244.0.4"]);
    assert_eq!(a("10-244-0-3.shop.pod.cluster.local"), ["10.244.0.3"]);
}
