//! Pods end to end: a node agent inside a network namespace made by the test, real pods from
//! YAML, checked from outside (HTTP answers, exit codes, cgroup files, kubectl-like output).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::node::{Node, container, ready};
use common::{podlab, text, wait_until};
use serde_json::Value;

const WEB: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{containerPort: 8080, hostPort: 18080}]
    volumeMounts: [{name: www, mountPath: /www}]
  - name: writer
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello from $(hostname) > /www/index.html; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: www, mountPath: /www}]
  volumes:
  - name: www
    emptyDir: {}
"#;

#[test]
fn two_containers_share_localhost_an_empty_dir_and_a_host_port() {
    let node = Node::start("web");
    node.apply_ok("web", WEB);
    let p = node.pod("web");
    assert!(ready(&p), "{p}");
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.244.0."), "pod IP {ip}");
    // The page the sidecar wrote into the shared emptyDir, served by the other container.
    assert!(wait_until(10, || node.fetch(&format!("http://{ip}:8080/")).is_some_and(|b| b.contains("hello from web"))));
    // The sidecar reaches the web server on the pod's shared localhost.
    let out = node.exec("web", "writer", "wget -q -O - http://127.0.0.1:8080/");
    assert_eq!(text(&out.stdout).trim(), "hello from web", "{}", text(&out.stderr));
    // hostPort: the node's own address forwards to the pod.
    assert_eq!(node.fetch("http://127.0.0.1:18080/").as_deref().map(str::trim), Some("hello from web"));
    // Same network, IPC and UTS namespaces; separate mount namespaces (shown by inspect).
    let out = node.podlab(&["inspect", "pod", "web"]);
    let x = text(&out.stdout);
    let ns_line = |who: &str| -> Vec<String> {
        let line = x.lines().find(|l| l.trim_start().starts_with(&format!("{who} ("))).unwrap_or_else(|| panic!("{x}"));
        line.split_whitespace().skip(2).map(String::from).collect()
    };
    let (pause, httpd, writer) = (ns_line("pause"), ns_line("httpd"), ns_line("writer"));
    assert_eq!(&pause[..3], &httpd[..3], "net/ipc/uts shared with the pause:\n{x}");
    assert_eq!(&pause[..3], &writer[..3]);
    assert_ne!(httpd[4], writer[4], "each container has its own mount namespace");
    // kubectl-like listing.
    let out = node.podlab(&["get", "pods", "-o", "wide"]);
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]),
        "{table}"
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], &["web", "2/2", "Running", "0"], "{table}");
    // Logs and describe.
    let out = node.exec("web", "writer", "echo to-stdout > /proc/1/fd/1");
    assert!(out.status.success());
    assert!(wait_until(5, || text(&node.podlab(&["logs", "web", "-c", "writer"]).stdout).contains("to-stdout")));
    let d = text(&node.podlab(&["describe", "pod", "web"]).stdout);
    assert!(d.contains("QoS Class:        BestEffort") && d.contains("Started container httpd"), "{d}");
    node.finish();
}

#[test]
fn pods_reach_each_other_by_ip_and_a_bad_manifest_changes_nothing() {
    let node = Node::start("p2p");
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [httpd, -f, -p, '80', -h, /etc]\n"
        )
    };
    node.apply_ok("a", &pod("a"));
    // --explain prints the commands the pod's supervisor runs to make it, as it runs them.
    let file = node.root.dir.join("b.yaml");
    std::fs::write(&file, pod("b")).unwrap();
    let out = node.podlab(&["--explain", "run", "-f", file.to_str().unwrap(), "--wait", "--timeout", "180s"]);
    assert!(out.status.success(), "run -f b: {}{}\n{}", text(&out.stdout), text(&out.stderr), node.debug());
    let ip_b = node.pod("b")["status"]["podIP"].as_str().unwrap().to_string();
    let ip_a = node.pod("a")["status"]["podIP"].as_str().unwrap().to_string();
    assert_ne!(ip_a, ip_b);
    let explained = text(&out.stderr);
    let uid_b = node.pod("b")["metadata"]["uid"].as_str().unwrap().to_string();
    for want in ["$ ip netns add podlab-", "$ ip link add pl", &format!("{ip_b}/24"), "$ mount -t overlay", &uid_b] {
        assert!(explained.contains(want), "--explain run does not show {want:?}:\n{explained}");
    }
    // The pause and the containers' init re-execute podlab from a read-only clone of its mount
    // (two system calls), even from the supervisor's own mount namespace: not from a copy.
    assert!(explained.contains("OPEN_TREE_CLONE") && !explained.contains("memfd_create"), "{explained}");
    let out = node.exec("a", "c", &format!("wget -q -O - http://{ip_b}/hostname"));
    assert_eq!(text(&out.stdout).trim(), "b", "{}", text(&out.stderr));
    // /etc/hosts names the pod itself.
    let out = node.exec("a", "c", "cat /etc/hosts");
    assert!(text(&out.stdout).lines().any(|l| l.starts_with(&ip_a) && l.ends_with("a")), "{}", text(&out.stdout));
    // A manifest with a typo is refused with the field path, and nothing changes.
    let out = node.apply("bad", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  contianers: []\n", false);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("contianers"), "{}", text(&out.stderr));
    assert_eq!(node.pod("bad"), Value::Null);
    // ... and the commands that take it apart.
    let out = node.podlab(&["--explain", "delete", "pod", "b"]);
    assert!(out.status.success(), "delete b: {}", text(&out.stderr));
    let explained = text(&out.stderr);
    assert!(explained.contains("$ ip netns delete podlab-"), "--explain delete:\n{explained}");
    node.finish();
}

#[test]
fn oom_kill_is_reported_as_oomkilled_with_137() {
    let node = Node::start("oom");
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  hostNetwork: true
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1; head -c 200m /dev/zero | tail"]
    resources:
      limits: {memory: 32Mi, cpu: 500m}
"#;
    node.apply("hog", yaml, false);
    let p = node.wait_pod("hog", 180, "Failed", |p| p["status"]["phase"] == "Failed");
    let term = &container(&p, "hog")["state"]["terminated"];
    assert_eq!(term["reason"], "OOMKilled", "{p}");
    assert_eq!(term["exitCode"], 137);
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    let table = text(&node.podlab(&["get", "pods"]).stdout);
    assert!(table.contains("OOMKilled"), "{table}");
    node.finish();
}

#[test]
fn cpu_and_memory_limits_land_in_the_cgroups() {
    let node = Node::start("cpu");
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: burn}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: burn
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while :; do :; done"]
    resources:
      requests: {cpu: 100m, memory: 16Mi}
      limits: {cpu: 200m, memory: 64Mi}
"#;
    node.apply_ok("burn", yaml);
    let p = node.pod("burn");
    assert_eq!(p["status"]["qosClass"], "Burstable");
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let rel = format!("podlab/kubepods/burstable/pod{uid}/burn");
    let (quota, usage_file, mem) = if common::is_cgroup2() {
        let d = common::cgroup_dir("", &rel);
        (
            std::fs::read_to_string(d.join("cpu.max")).unwrap(),
            d.join("cpu.stat"),
            std::fs::read_to_string(d.join("memory.max")).unwrap(),
        )
    } else {
        let c = common::cgroup_dir("cpu", &rel);
        let m = common::cgroup_dir("memory", &rel);
        (
            std::fs::read_to_string(c.join("cpu.cfs_quota_us")).unwrap(),
            common::cgroup_dir("cpuacct", &rel).join("cpuacct.usage"),
            std::fs::read_to_string(m.join("memory.limit_in_bytes")).unwrap(),
        )
    };
    assert!(quota.starts_with("20000"), "quota {quota}");
    assert_eq!(mem.trim(), (64 * 1024 * 1024).to_string());
    // The busy loop gets about 0.2 CPU, far from the 1.0 it would take unlimited.
    let usage = || -> f64 {
        let t = std::fs::read_to_string(&usage_file).unwrap();
        if common::is_cgroup2() {
            t.lines().find_map(|l| l.strip_prefix("usage_usec ")).unwrap().trim().parse::<f64>().unwrap() * 1e3
        } else {
            t.trim().parse::<f64>().unwrap()
        }
    };
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let cpus = (usage() - u0) / t0.elapsed().as_nanos() as f64;
    assert!(cpus > 0.05 && cpus < 0.35, "the container used {cpus:.2} CPU with a 200m limit");
    node.finish();
}

#[test]
fn failing_liveness_probe_restarts_with_backoff_and_readiness_gates() {
    let node = Node::start("probe");
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: state, emptyDir: {}}]
  containers:
  - name: live
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: state, mountPath: /state}]
    livenessProbe:
      exec: {command: ["cat", "/state/healthy"]}
      periodSeconds: 1
      failureThreshold: 1
  - name: ready
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: state, mountPath: /state}]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
"#;
    node.apply("probed", yaml, false);
    // Readiness: running but not ready until the file exists.
    let p = node
        .wait_pod("probed", 30, "ready container running", |p| container(p, "ready")["state"]["running"].is_object());
    assert_eq!(container(&p, "ready")["ready"], false, "{p}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(container(&node.pod("probed"), "ready")["ready"], false);
    assert!(node.exec("probed", "ready", "touch /tmp/ready").status.success());
    node.wait_pod("probed", 10, "ready", |p| container(p, "ready")["ready"] == true);
    // Liveness: the probe fails at once; restarts climb, spaced by the back-off (1 s, 2 s, ...).
    let p = node.wait_pod("probed", 40, "3 restarts", |p| container(p, "live")["restartCount"].as_i64() >= Some(3));
    assert_eq!(container(&p, "ready")["restartCount"], 0, "the other container is left alone");
    // The log of the instance before the current one.
    let out = node.podlab(&["logs", "probed", "-c", "live", "--previous"]);
    assert_eq!(text(&out.stdout), "started\n", "{}", text(&out.stderr));
    let events = text(&node.podlab(&["describe", "pod", "probed"]).stdout);
    assert!(events.contains("failed liveness probe, will be restarted"), "{events}");
    assert!(events.contains("BackOff"), "{events}");
    // Fix it: make the file its probe reads, in the emptyDir both containers share (a file in
    // the container itself would go with the instance: each new one is probed at once, and
    // fails). The instance in back-off starts, passes, and the restarts stop.
    assert!(node.exec("probed", "ready", "touch /state/healthy").status.success());
    let restarts = || container(&node.pod("probed"), "live")["restartCount"].as_i64().unwrap();
    let mut counts = vec![];
    let fixed = wait_until(60, || {
        let n = restarts();
        let running = container(&node.pod("probed"), "live")["state"]["running"].is_object();
        std::thread::sleep(Duration::from_secs(3));
        counts.push((n, restarts()));
        running && restarts() == n && container(&node.pod("probed"), "live")["state"]["running"].is_object()
    });
    assert!(fixed, "no restart once healthy: restart counts over 3 s {counts:?}");
    node.finish();
}

#[test]
fn init_containers_run_in_order_before_the_app_and_env_sources_are_seen() {
    let node = Node::start("init");
    let yaml = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello, file.txt: "from a configmap"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: seq, labels: {tier: back}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: one
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo one >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: two
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "sleep 1; echo two >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo app >> /work/order; trap 'exit 0' TERM; while true; do sleep 1; done"]
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: MY_POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: MSG, value: "$(GREETING) from $(MY_POD)"}
    resources: {limits: {memory: 48Mi}}
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: info, mountPath: /etc/info}
  volumes:
  - {name: work, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec, defaultMode: 0400}}
  - name: info
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
"#;
    node.apply_ok("seq", yaml);
    let p = node.pod("seq");
    let inits = p["status"]["initContainerStatuses"].as_array().unwrap();
    assert!(inits.iter().all(|c| c["state"]["terminated"]["exitCode"] == 0), "{p}");
    // The app appends its line as it starts (which --wait does not wait for).
    let order = || text(&node.exec("seq", "app", "cat /work/order").stdout);
    assert!(wait_until(10, || order().ends_with("app\n")), "{}", order());
    assert_eq!(order(), "one\ntwo\napp\n");
    let ip = p["status"]["podIP"].as_str().unwrap();
    let out = node.exec("seq", "app", "echo $GREETING $PASSWORD $MY_POD $MY_IP $MEM; echo $MSG");
    assert_eq!(text(&out.stdout), format!("hello s3cret seq {ip} 48\nhello from seq\n"));
    let out = node.exec("seq", "app", "cat /etc/cfg/file.txt; echo; cat /etc/sec/password; echo; stat -L -c %a /etc/sec/password; cat /etc/info/labels");
    assert_eq!(text(&out.stdout), "from a configmap\ns3cret\n400\ntier=\"back\"", "{}", text(&out.stderr));
    // The secret volume is not writable from the container.
    assert!(!node.exec("seq", "app", "echo x > /etc/sec/password").status.success());
    node.finish();
}

#[test]
fn grace_period_is_honoured_and_prestop_runs_first() {
    let node = Node::start("grace");
    let marks = node.root.dir.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: slow}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: polite
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'echo term >> /marks/polite; sleep 1; echo done >> /marks/polite; exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /marks/polite"]}}
    volumeMounts: [{{name: marks, mountPath: /marks}}]
  - name: stubborn
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]
  volumes:
  - name: marks
    hostPath: {{path: {}, type: Directory}}
"#,
        marks.display()
    );
    node.apply_ok("slow", &yaml);
    let t = Instant::now();
    let out = node.podlab(&["delete", "pod", "slow"]);
    let took = t.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The stubborn container is killed when the 3 s grace period ends, not before, not much later.
    assert!(took >= Duration::from_millis(2900) && took < Duration::from_secs(10), "delete took {took:?}");
    assert_eq!(std::fs::read_to_string(marks.join("polite")).unwrap(), "prestop\nterm\ndone\n");
    node.finish();
}

#[test]
fn subpath_and_hostpath_escapes_are_refused() {
    let node = Node::start("escape");
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: sneaky}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: plant
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["ln", "-s", "/", "/vol/escape"]
    volumeMounts: [{name: vol, mountPath: /vol}]
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    volumeMounts: [{name: vol, mountPath: /host, subPath: escape}]
  volumes:
  - {name: vol, emptyDir: {}}
"#;
    node.apply("sneaky", yaml, false);
    let p = node.wait_pod("sneaky", 30, "refused", |p| {
        container(p, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let msg = container(&p, "app")["state"]["waiting"]["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("escape"), "{msg}");
    // `..` in a subPath never gets that far: validation refuses it.
    let bad = yaml.replace("subPath: escape", "subPath: ../../etc").replace("sneaky", "dots");
    let out = node.apply("dots", &bad, false);
    assert!(!out.status.success() && text(&out.stderr).contains("subPath"), "{}", text(&out.stderr));
    // A hostPath whose type does not match is refused before anything starts.
    let hp = r#"
apiVersion: v1
kind: Pod
metadata: {name: hp}
spec:
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    volumeMounts: [{name: h, mountPath: /h}]
  volumes:
  - {name: h, hostPath: {path: /etc/hostname, type: Directory}}
"#;
    node.apply("hp", hp, false);
    let p = node.wait_pod("hp", 30, "refused", |p| !container(p, "app")["state"]["waiting"]["message"].is_null());
    let msg = container(&p, "app")["state"]["waiting"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("/etc/hostname"), "{msg}");
    node.finish();
}

#[test]
fn killed_agent_and_supervisor_are_repaired() {
    let node = Node::start("repair");
    node.apply_ok("web", WEB);
    let ip = node.pod("web")["status"]["podIP"].as_str().unwrap().to_string();
    // kill -9 of the agent: the pod keeps serving; a new agent adopts it.
    let agent: i32 = std::fs::read_to_string(node.root.dir.join("run/node/agent.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    unsafe { libc::kill(agent, libc::SIGKILL) };
    assert!(wait_until(5, || !std::path::Path::new(&format!("/proc/{agent}")).exists()));
    assert!(node.fetch(&format!("http://{ip}:8080/")).is_some(), "the pod serves without its agent");
    let out = node.podlab(&["node", "--netns", &node.netns, "--detach", "--backoff-initial", "1s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let p = node.pod("web");
    assert!(ready(&p), "{p}");
    assert_eq!(container(&p, "httpd")["restartCount"], 0, "adopted, not restarted");
    // kill -9 of the supervisor: the agent starts a new one, which rebuilds the pod.
    let dir = node.root.dir.join("lib/pods").join(p["metadata"]["uid"].as_str().unwrap());
    let sup: i32 = std::fs::read_to_string(dir.join("supervisor.pid"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    unsafe { libc::kill(sup, libc::SIGKILL) };
    // Until the agent sees the kill, the API shows what the dead supervisor last saved: wait for
    // the status the new supervisor saves.
    let saved_by = || -> i32 {
        let rec = std::fs::read_to_string(dir.join("status.json")).unwrap_or_default();
        serde_json::from_str::<Value>(&rec).ok().and_then(|v| v["supervisor"][0].as_i64()).unwrap_or(0) as i32
    };
    assert!(wait_until(30, || ![0, sup].contains(&saved_by())), "{}", node.debug());
    node.wait_pod("web", 30, "running again", |p| ready(p) && p["status"]["podIP"].is_string());
    let ip = node.pod("web")["status"]["podIP"].as_str().unwrap().to_string();
    // The pod's MAC comes from its IP (0a:58 + the address), so an IP used again keeps its MAC.
    let octets: Vec<String> = ip.split('.').map(|o| format!("{:02x}", o.parse::<u8>().unwrap())).collect();
    let mac = node.exec("web", "writer", "cat /sys/class/net/eth0/address");
    assert_eq!(text(&mac.stdout).trim(), format!("0a:58:{}", octets.join(":")), "{}", text(&mac.stderr));
    assert!(
        wait_until(10, || node.fetch(&format!("http://{ip}:8080/")).is_some_and(|b| b.contains("hello"))),
        "{}",
        node.debug()
    );
    // A supervisor killed while it starts a pod (right after admission) is repaired the same way.
    node.apply("p2", &WEB.replace("name: web", "name: web2").replace("18080", "18081"), false);
    assert!(wait_until(10, || {
        let d = node.root.dir.join("lib/pods");
        std::fs::read_dir(&d).unwrap().flatten().any(|e| {
            e.path() != dir
                && std::fs::read_to_string(e.path().join("supervisor.pid")).is_ok_and(|s| {
                    let pid: i32 = s.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0);
                    pid > 0 && unsafe { libc::kill(pid, libc::SIGKILL) } == 0
                })
        })
    }));
    node.wait_pod("web2", 60, "running after repair", ready);
    node.finish();
}

#[test]
fn security_context_is_applied_and_exec_takes_stdin() {
    let node = Node::start("secctx");
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: locked}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}
  containers:
  - name: app
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
  - name: root
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    securityContext: {runAsUser: 0, privileged: true}
"#;
    node.apply_ok("locked", yaml);
    let out = node.exec(
        "locked",
        "app",
        "id -u; id -g; id -G; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; touch /x 2>/dev/null || echo read-only",
    );
    let t = text(&out.stdout);
    // NET_BIND_SERVICE is capability 10: bit 0x400.
    assert_eq!(
        t,
        "1000\n3000\n3000 4000\nCapBnd:\t0000000000000400\nNoNewPrivs:\t1\nread-only\n",
        "{}",
        text(&out.stderr)
    );
    let out =
        node.exec("locked", "root", "id -u; grep CapBnd /proc/self/status; ip link set lo mtu 65000 && echo admin");
    let t = text(&out.stdout);
    assert!(
        t.starts_with("0\n") && t.contains("admin") && !t.contains("CapBnd:\t0000000000000400"),
        "{t}{}",
        text(&out.stderr)
    );
    // No signal is ignored for the container's programs (SIGPIPE included, as with runc).
    let out = node.exec("locked", "app", "grep SigIgn /proc/self/status");
    let mask = u64::from_str_radix(text(&out.stdout).trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "SIGPIPE ignored: {mask:x}");
    // `exec -i`: our stdin reaches the command.
    let mut child = node
        .root
        .cmd(&["exec", "-i", "locked", "-c", "app", "--", "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello pod\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "HELLO POD\n");
    // `exec -it`: the command gets a terminal of its own (script(1) gives us one to pass on),
    // and its exit code comes back.
    let line = format!(
        "{} --root {} exec -it locked -c app -- sh -c 'tty; test -t 0 && echo stdin-is-a-tty; exit 3'",
        podlab(),
        node.root.dir.display()
    );
    let out =
        Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(std::process::Stdio::null()).output().unwrap();
    let t = text(&out.stdout);
    assert!(t.contains("/dev/pts/") && t.contains("stdin-is-a-tty"), "{t}{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{t}");
    node.finish();
}
