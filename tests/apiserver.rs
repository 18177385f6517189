//! The API server driven by the real kubectl (v1.32) and curl: objects, selectors, patches,
//! optimistic concurrency, validation errors, watches across a restart, and authentication.

mod common;

use common::apiserver::Server;
use common::{text, wait_until};
use serde_json::Value;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: httpd
    image: busybox:1.36
    command: ["httpd", "-f"]
  - name: sidecar
    image: busybox:1.36
    command: ["sleep", "3600"]
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn kubectl_creates_reads_changes_and_deletes_objects() {
    let s = Server::start("crud");
    let ns = s.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    for want in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(&format!("namespace/{want}")), "{ns}");
    }
    // Create: the server fills in what kubectl left out.
    assert!(s.kubectl_in(&["apply", "-f", "-"], POD).status.success());
    let pod = json(&s.kubectl_ok(&["get", "pod", "web", "-o", "json"]));
    assert_eq!(pod["spec"]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["spec"]["containers"][0]["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert!(pod["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36), "{pod}");
    let rv1: i64 = pod["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();

    // Labels and selectors.
    s.kubectl_ok(&["label", "pod", "web", "tier=front"]);
    s.kubectl_ok(&["annotate", "pod", "web", "note=hello"]);
    assert_eq!(s.kubectl_ok(&["get", "pods", "-l", "tier=front,app in (web,api)", "-o", "name"]).trim(), "pod/web");
    assert_eq!(s.kubectl_ok(&["get", "pods", "-l", "tier!=front", "-o", "name"]).trim(), "");
    assert_eq!(s.kubectl_ok(&["get", "pods", "--field-selector", "metadata.name=web", "-o", "name"]).trim(), "pod/web");
    let bad = s.kubectl(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("field label not supported"), "{}", text(&bad.stderr));
    s.kubectl_ok(&["label", "pod", "web", "tier-"]);
    let pod = json(&s.kubectl_ok(&["get", "pod", "web", "-o", "json"]));
    assert!(pod["metadata"]["labels"].get("tier").is_none(), "{pod}");
    assert_eq!(pod["metadata"]["annotations"]["note"], "hello");
    assert!(pod["metadata"]["resourceVersion"].as_str().unwrap().parse::<i64>().unwrap() > rv1);

    // Patches of each kind; apply again with a new image (a strategic merge patch).
    s.kubectl_ok(&["patch", "pod", "web", "--type=merge", "-p", r#"{"metadata":{"labels":{"m":"1"}}}"#]);
    s.kubectl_ok(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/j","value":"2"}]"#,
    ]);
    let out = s.kubectl_in(&["apply", "-f", "-"], &POD.replacen("busybox:1.36", "busybox:1.37", 1));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pod = json(&s.kubectl_ok(&["get", "pod", "web", "-o", "json"]));
    assert_eq!(pod["metadata"]["labels"]["m"], "1");
    assert_eq!(pod["metadata"]["labels"]["j"], "2");
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:1.37");
    assert_eq!(pod["spec"]["containers"][1]["image"], "busybox:1.36");
    assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 2);
    // A pod's spec is fixed but for images.
    let out = s.kubectl(&["patch", "pod", "web", "--type=merge", "-p", r#"{"spec":{"restartPolicy":"Never"}}"#]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("Forbidden: pod updates may not change"),
        "{}",
        text(&out.stderr)
    );

    // Services: a ClusterIP from 10.96.0.0/12, NodePorts from 30000-32767, never twice.
    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    s.kubectl_ok(&["create", "service", "nodeport", "api", "--tcp=443:8443"]);
    let svc = json(&s.kubectl_ok(&["get", "svc", "web", "-o", "json"]));
    let ip: std::net::Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
    assert_eq!(u32::from(ip) >> 20, u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0)) >> 20, "{ip}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    let api = json(&s.kubectl_ok(&["get", "svc", "api", "-o", "json"]));
    let np = api["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&np), "{np}");
    assert_ne!(api["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
    let taken = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dup}}\nspec:\n  type: NodePort\n  ports: [{{port: 1, nodePort: {np}}}]\n"
    );
    let out = s.kubectl_in(&["apply", "-f", "-"], &taken);
    assert!(
        !out.status.success() && text(&out.stderr).contains("provided port is already allocated"),
        "{}",
        text(&out.stderr)
    );

    // ConfigMaps, Secrets, Deployments and their scale.
    s.kubectl_ok(&["create", "configmap", "cfg", "--from-literal=a=b"]);
    s.kubectl_ok(&["create", "secret", "generic", "pw", "--from-literal=p=s3cret"]);
    let sec = json(&s.kubectl_ok(&["get", "secret", "pw", "-o", "json"]));
    assert_eq!(sec["data"]["p"], "czNjcmV0");
    assert_eq!(sec["type"], "Opaque");
    s.kubectl_ok(&["create", "deployment", "app", "--image=busybox:1.36", "--replicas=2"]);
    s.kubectl_ok(&["scale", "deployment", "app", "--replicas=3"]);
    let d = json(&s.kubectl_ok(&["get", "deploy", "app", "-o", "json"]));
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");

    // Pages of a list: limit and continue.
    for i in 0..5 {
        s.kubectl_ok(&["create", "configmap", &format!("page-{i}")]);
    }
    let page = s.get_json("/api/v1/namespaces/default/configmaps?limit=4");
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let cont = page["metadata"]["continue"].as_str().unwrap().to_string();
    let rest = s.get_json(&format!("/api/v1/namespaces/default/configmaps?limit=4&continue={cont}"));
    assert_eq!(rest["items"].as_array().unwrap().len(), 2, "{rest}");
    assert!(rest["metadata"].get("continue").is_none_or(Value::is_null));

    // The store is an SQLite file a learner can read.
    let db = s.root.dir.join("lib/server/store.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT name FROM log WHERE name LIKE '/registry/core/pods/%' AND deleted = 0 ORDER BY id DESC LIMIT 1")
        .output()
        .expect("run sqlite3 (scripts/install-deps.sh --test installs it)");
    assert_eq!(text(&out.stdout).trim(), "/registry/core/pods/default/web", "{}", text(&out.stderr));

    // Delete: a pod on no node goes at once.
    s.kubectl_ok(&["delete", "pod", "web"]);
    let out = s.kubectl(&["get", "pod", "web"]);
    assert!(!out.status.success() && text(&out.stderr).contains("\"web\" not found"), "{}", text(&out.stderr));

    // A namespace takes its objects with it.
    s.kubectl_ok(&["create", "namespace", "scratch"]);
    s.kubectl_ok(&["-n", "scratch", "create", "configmap", "x"]);
    let out = s.kubectl(&["-n", "nowhere", "create", "configmap", "x"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("namespaces \"nowhere\" not found"),
        "{}",
        text(&out.stderr)
    );
    s.kubectl_ok(&["delete", "namespace", "scratch", "--wait=true", "--timeout=20s"]);
    assert!(wait_until(10, || !s.kubectl(&["get", "ns", "scratch"]).status.success()));
    assert!(s.get_json("/api/v1/namespaces/scratch/configmaps")["items"].as_array().unwrap().is_empty());
    let out = s.kubectl(&["delete", "namespace", "default"]);
    assert!(!out.status.success() && text(&out.stderr).contains("may not be deleted"), "{}", text(&out.stderr));
}

#[test]
fn conflicts_invalid_objects_and_unknown_fields_are_refused() {
    let s = Server::start("refuse");
    s.kubectl_ok(&["create", "configmap", "c", "--from-literal=a=1"]);
    let cm = s.kubectl_ok(&["get", "cm", "c", "-o", "json"]);
    // Two writers from the same read: the second loses with 409 Conflict.
    assert!(s.kubectl_in(&["replace", "-f", "-"], &cm.replace("\"a\": \"1\"", "\"a\": \"2\"")).status.success());
    let out = s.kubectl_in(&["replace", "-f", "-"], &cm.replace("\"a\": \"1\"", "\"a\": \"3\""));
    assert!(!out.status.success(), "a stale update was taken");
    assert!(text(&out.stderr).contains("the object has been modified"), "{}", text(&out.stderr));
    let raw = s.curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        &cm,
        "/api/v1/namespaces/default/configmaps/c",
    ]);
    let status = json(&text(&raw.stdout));
    assert_eq!((status["code"].as_i64(), status["reason"].as_str()), (Some(409), Some("Conflict")), "{status}");

    // 422 with the field: what kubectl prints.
    let bad = POD.replace("    image: busybox:1.36\n    command: [\"httpd\", \"-f\"]\n", "");
    let out = s.kubectl_in(&["apply", "-f", "-"], &bad);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("is invalid") && err.contains("spec.containers[0].image"), "{err}");
    let raw = s.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c","image":"x"}]}}"#,
        "/api/v1/namespaces/default/pods",
    ]);
    let status = json(&text(&raw.stdout));
    assert_eq!(status["code"], 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name", "{status}");

    // Strict field validation (kubectl's default) names the unknown field.
    let out = s.kubectl_in(&["apply", "-f", "-"], &POD.replace("  containers:", "  containerz: []\n  containers:"));
    assert!(
        !out.status.success() && text(&out.stderr).contains("unknown field \"spec.containerz\""),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.kubectl(&["get", "pod", "web"]).status.success(), "nothing was created");
}

/// Read a watch with curl for `secs` seconds: the events' types and object names.
fn watch_events(s: &Server, path: &str, secs: u32) -> Vec<(String, String)> {
    let out = s.curl(&["-N", "--max-time", &secs.to_string(), path]);
    text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v = json(l);
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                v["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn watches_see_changes_filter_by_label_and_resume_after_a_restart() {
    let mut s = Server::start("watch");
    watch_flow(&mut s);
}

#[test]
fn the_same_on_etcd() {
    let etcd = common::etcd::Etcd::start("api-watch");
    let mut s = Server::start_with("etcd", &format!("etcd://127.0.0.1:{}", etcd.client_port));
    watch_flow(&mut s);
    s.kubectl_ok(&["create", "deployment", "app", "--image=busybox:1.36"]);
    assert_eq!(s.kubectl_ok(&["get", "deploy", "-o", "name"]).trim(), "deployment.apps/app");
    s.stop();
    etcd.remove();
}

fn watch_flow(s: &mut Server) {
    let rv = s.get_json("/api/v1/namespaces/default/configmaps")["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // kubectl get -w sees ADDED, MODIFIED and DELETED as they happen.
    let w = s.spawn_kubectl(&["get", "configmaps", "--watch", "--output-watch-events", "-o", "json"]);
    common::apiserver::sleep_ms(1500);
    s.kubectl_ok(&["create", "configmap", "a", "--from-literal=k=1"]);
    s.kubectl_ok(&["label", "configmap", "a", "app=x"]);
    s.kubectl_ok(&["create", "configmap", "b"]);
    s.kubectl_ok(&["delete", "configmap", "a"]);
    common::apiserver::sleep_ms(1000);
    unsafe { libc::kill(w.id() as i32, libc::SIGTERM) };
    let out = w.wait_with_output().unwrap();
    let seen = text(&out.stdout);
    let types: Vec<String> = serde_json::Deserializer::from_str(&seen)
        .into_iter::<Value>()
        .flatten()
        .map(|v| {
            format!("{} {}", v["type"].as_str().unwrap_or(""), v["object"]["metadata"]["name"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(types, ["ADDED a", "MODIFIED a", "ADDED b", "DELETED a"], "{seen}\n{}", text(&out.stderr));

    // A label selector: the pod leaving the selection arrives as DELETED.
    let ev = watch_events(
        s,
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}&labelSelector=app%3Dx"),
        2,
    );
    assert_eq!(ev, [("ADDED".to_string(), "a".to_string()), ("DELETED".to_string(), "a".to_string())], "label watch");

    // After a restart the history is still there: a watch from before replays it.
    s.stop();
    s.launch();
    let ev = watch_events(s, &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"), 2);
    let names: Vec<String> = ev.iter().map(|(t, n)| format!("{t} {n}")).collect();
    assert_eq!(names, ["ADDED a", "MODIFIED a", "ADDED b", "DELETED a"], "after restart");
    // Without a resourceVersion: the current state first (b; a is gone), then nothing new.
    let ev = watch_events(s, "/api/v1/namespaces/default/configmaps?watch=1", 2);
    assert_eq!(ev, [("ADDED".to_string(), "b".to_string())]);
}

#[test]
fn requests_without_a_valid_token_are_refused() {
    let s = Server::start("auth");
    let none = s.curl_as(None, &["-w", "\n%{http_code}"], "/api/v1/namespaces");
    let body = text(&none.stdout);
    assert!(body.ends_with("401"), "{body}");
    assert!(body.contains("\"reason\":\"Unauthorized\""), "{body}");
    let wrong = s.curl_as(Some("not-a-token"), &["-o", "/dev/null", "-w", "%{http_code}"], "/api/v1/pods");
    assert_eq!(text(&wrong.stdout), "401");
    let health = s.curl_as(None, &[], "/healthz");
    assert_eq!(text(&health.stdout), "ok");
    // kubectl with a wrong token.
    let cfg = std::fs::read_to_string(&s.kubeconfig).unwrap().replace(&s.token(), "bogus");
    let bad = s.root.dir.join("bad.kubeconfig");
    std::fs::write(&bad, cfg).unwrap();
    let out = std::process::Command::new(common::apiserver::kubectl())
        .arg("--kubeconfig")
        .arg(&bad)
        .args(["get", "pods"])
        .env("HOME", s.root.dir.join("home2"))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("You must be logged in to the server"), "{err}");
    // A body over the limit (3 MiB) is refused before it is read in full.
    let big = s.root.dir.join("big.json");
    std::fs::write(&big, vec![b' '; 4 << 20]).unwrap();
    let out = s.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", big.display()),
        "/api/v1/namespaces/default/configmaps",
    ]);
    assert_eq!(text(&out.stdout), "413");
}

#[test]
fn a_watch_from_compacted_history_gets_410_gone() {
    let mut s = Server::start("gone");
    s.stop();
    s.extra = vec!["--compaction-interval".into(), "500ms".into()];
    s.launch();
    let cm = |name: &str| format!(r#"{{"metadata":{{"name":"{name}"}}}}"#);
    let post = |name: &str| {
        s.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &cm(name),
            "/api/v1/namespaces/default/configmaps",
        ])
    };
    let first = json(&text(&post("old").stdout));
    let rv = first["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    post("newer");
    // Two intervals later the history before `newer` is gone.
    common::apiserver::sleep_ms(1600);
    let out = s.curl(&[
        "-N",
        "--max-time",
        "3",
        &format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}"),
    ]);
    let line = text(&out.stdout);
    let ev = json(line.lines().next().unwrap_or("{}"));
    assert_eq!(ev["type"], "ERROR", "{line}");
    assert_eq!(
        (ev["object"]["code"].as_i64(), ev["object"]["reason"].as_str()),
        (Some(410), Some("Expired")),
        "{line}"
    );
    // A list and a watch from now work.
    let list = s.get_json("/api/v1/namespaces/default/configmaps");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[test]
fn twenty_watchers_see_every_change_once() {
    let s = Server::start("fanout");
    let rv = s.get_json("/api/v1/namespaces/default/configmaps")["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}");
    let watchers: Vec<std::thread::JoinHandle<Vec<(String, String)>>> = (0..20)
        .map(|i| {
            let (url, token, ca) = (s.url.clone(), s.token(), s.root.dir.join("lib/server/pki/ca.crt"));
            let path = path.clone();
            std::thread::spawn(move || {
                // Half start before the changes, half while they happen.
                common::apiserver::sleep_ms(if i % 2 == 0 { 0 } else { 300 });
                let out = std::process::Command::new("curl")
                    .args(["-sS", "-N", "--max-time", "4", "--cacert"])
                    .arg(&ca)
                    .args(["-H", &format!("Authorization: Bearer {token}"), &format!("{url}{path}")])
                    .output()
                    .unwrap();
                text(&out.stdout)
                    .lines()
                    .map(|l| {
                        let v = json(l);
                        (
                            v["type"].as_str().unwrap_or_default().to_string(),
                            v["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
        })
        .collect();
    common::apiserver::sleep_ms(200);
    for i in 0..10 {
        let body = format!(r#"{{"metadata":{{"name":"c{i}"}}}}"#);
        let out = s.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            "/api/v1/namespaces/default/configmaps",
        ]);
        assert!(text(&out.stdout).contains("\"uid\""), "{}", text(&out.stdout));
    }
    s.kubectl_ok(&["delete", "configmap", "c3"]);
    let want: Vec<(String, String)> = (0..10)
        .map(|i| ("ADDED".to_string(), format!("c{i}")))
        .chain(std::iter::once(("DELETED".to_string(), "c3".to_string())))
        .collect();
    for w in watchers {
        assert_eq!(w.join().unwrap(), want);
    }
}

#[test]
fn a_deleted_namespace_takes_objects_with_finalizers_too() {
    let s = Server::start("nsfin");
    s.kubectl_ok(&["create", "namespace", "fin"]);
    let cm = r#"{"metadata":{"name":"kept","finalizers":["example.com/keep"]}}"#;
    let out =
        s.curl(&["-X", "POST", "-H", "Content-Type: application/json", "-d", cm, "/api/v1/namespaces/fin/configmaps"]);
    assert!(text(&out.stdout).contains("example.com/keep"), "{}", text(&out.stdout));
    s.kubectl_ok(&["delete", "namespace", "fin", "--wait=false"]);
    // Nothing new may be created in a namespace being deleted.
    let out = s.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"metadata":{"name":"late"}}"#,
        "/api/v1/namespaces/fin/configmaps",
    ]);
    let late = text(&out.stdout);
    assert!(late.contains("\"code\":403") || late.contains("\"code\":404"), "{late}");
    assert!(wait_until(10, || !s.kubectl(&["get", "ns", "fin"]).status.success()), "the namespace stays");
    let raw = s.curl(&["/api/v1/configmaps"]);
    assert!(!text(&raw.stdout).contains("\"kept\""), "an object outlived its namespace: {}", text(&raw.stdout));
}

#[test]
fn binding_sets_the_node_once_and_deleting_a_bound_pod_is_graceful() {
    let s = Server::start("bind");
    assert!(s.kubectl_in(&["apply", "-f", "-"], POD).status.success());
    let bind =
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web"},"target":{"kind":"Node","name":"vm1"}}"#;
    let post = || {
        let out = s.curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            bind,
            "/api/v1/namespaces/default/pods/web/binding",
        ]);
        json(&text(&out.stdout))
    };
    assert_eq!(post()["status"], "Success");
    let pod = json(&s.kubectl_ok(&["get", "pod", "web", "-o", "json"]));
    assert_eq!(pod["spec"]["nodeName"], "vm1");
    let scheduled: Vec<&Value> =
        pod["status"]["conditions"].as_array().unwrap().iter().filter(|c| c["type"] == "PodScheduled").collect();
    assert_eq!(scheduled.len(), 1, "{pod}");
    assert_eq!(scheduled[0]["status"], "True");
    let again = post();
    assert_eq!((again["code"].as_i64(), again["reason"].as_str()), (Some(409), Some("Conflict")), "{again}");
    assert!(again["message"].as_str().unwrap().contains("already assigned to node \"vm1\""), "{again}");
    // On a node, a delete only marks the pod: its kubelet stops it, then deletes with grace 0.
    s.kubectl_ok(&["delete", "pod", "web", "--wait=false"]);
    let pod = json(&s.kubectl_ok(&["get", "pod", "web", "-o", "json"]));
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    s.kubectl_ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(!s.kubectl(&["get", "pod", "web"]).status.success());
}
