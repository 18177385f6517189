//! The real kubectl against discovery, OpenAPI and server-side Tables: a small axum server on
//! loopback serves `discovery::routes()` and a stub of the pods resource (a few static pods, plus
//! create/get/patch for `kubectl apply`), and kubectl runs against it with a fresh cache.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use podlab::control::api::discovery;
use podlab::control::api::resources::find;
use podlab::control::api::table::{IncludeObject, table, wants_table};
use serde_json::{Value, json};

/// The pods the stub serves, and every request it saw (`METHOD PATH ACCEPT`).
#[derive(Default)]
struct Stub {
    pods: Mutex<BTreeMap<String, Value>>,
    log: Mutex<Vec<String>>,
    patches: Mutex<Vec<(String, String)>>,
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    k8s_openapi::jiff::Timestamp::from_second(secs).unwrap().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn ago(secs: u64) -> String {
    rfc3339(SystemTime::now() - Duration::from_secs(secs))
}

/// A running pod with two containers, one of them not ready and restarted twice.
fn web_pod() -> Value {
    let status = |name: &str, ready: bool, restarts: i32, last: Value| {
        json!({"name": name, "image": "busybox", "imageID": "", "ready": ready, "restartCount": restarts,
               "started": true, "state": {"running": {"startedAt": ago(60)}}, "lastState": last})
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "1", "resourceVersion": "5", "creationTimestamp": ago(600)},
        "spec": {"nodeName": "vm1", "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": "10.88.0.5", "podIPs": [{"ip": "10.88.0.5"}],
                   "containerStatuses": [
                       status("app", true, 0, json!({})),
                       status("side", false, 2, json!({"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(90)}})),
                   ]},
    })
}

fn not_found(name: &str) -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("pods \"{name}\" not found"), "reason": "NotFound",
        "details": {"name": name, "kind": "pods"}, "code": 404});
    (StatusCode::NOT_FOUND, axum::Json(status)).into_response()
}

fn accept(h: &HeaderMap) -> &str {
    h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

async fn list_pods(s: Arc<Stub>, h: HeaderMap) -> Response {
    let pods: Vec<Value> = s.pods.lock().unwrap().values().cloned().collect();
    let meta = json!({"resourceVersion": "7"});
    if wants_table(accept(&h)) {
        let r = find("", "pods").unwrap();
        return axum::Json(table(r, &pods, IncludeObject::Metadata, &meta, SystemTime::now())).into_response();
    }
    axum::Json(json!({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": pods})).into_response()
}

async fn get_pod(s: Arc<Stub>, name: String, h: HeaderMap) -> Response {
    let Some(pod) = s.pods.lock().unwrap().get(&name).cloned() else { return not_found(&name) };
    if wants_table(accept(&h)) {
        let r = find("", "pods").unwrap();
        return axum::Json(table(r, &[pod], IncludeObject::Metadata, &Value::Null, SystemTime::now())).into_response();
    }
    axum::Json(pod).into_response()
}

async fn create_pod(s: Arc<Stub>, body: Bytes) -> Response {
    let mut pod: Value = serde_json::from_slice(&body).unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    pod["metadata"]["uid"] = json!("2");
    pod["metadata"]["resourceVersion"] = json!("8");
    pod["metadata"]["creationTimestamp"] = json!(ago(0));
    s.pods.lock().unwrap().insert(name, pod.clone());
    (StatusCode::CREATED, axum::Json(pod)).into_response()
}

async fn patch_pod(s: Arc<Stub>, name: String, h: HeaderMap, body: Bytes) -> Response {
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    s.patches.lock().unwrap().push((ct, String::from_utf8_lossy(&body).into_owned()));
    match s.pods.lock().unwrap().get(&name).cloned() {
        Some(pod) => axum::Json(pod).into_response(),
        None => not_found(&name),
    }
}

/// `/api/v1/{*rest}`, routed the way the API server routes it (so the discovery routes are
/// shown to merge with it): only `namespaces/NS/pods[/NAME]` is served here.
async fn core(
    State(s): State<Arc<Stub>>,
    method: Method,
    Path(rest): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["namespaces", _, "pods"]) => list_pods(s, h).await,
        ("POST", ["namespaces", _, "pods"]) => create_pod(s, body).await,
        ("GET", ["namespaces", _, "pods", name]) => get_pod(s, name.to_string(), h).await,
        ("PATCH", ["namespaces", _, "pods", name]) => patch_pod(s, name.to_string(), h, body).await,
        _ => not_found(&rest),
    }
}

async fn grouped(Path((_g, _v, rest)): Path<(String, String, String)>) -> Response {
    not_found(&rest)
}

async fn record(State(s): State<Arc<Stub>>, req: Request, next: Next) -> Response {
    let line = format!("{} {} {}", req.method(), req.uri().path(), accept(req.headers()));
    s.log.lock().unwrap().push(line);
    next.run(req).await
}

/// The server on a free loopback port, in its own thread; stopped by `stop`.
struct Server {
    addr: SocketAddr,
    stub: Arc<Stub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let stub = Arc::new(Stub::default());
        stub.pods.lock().unwrap().insert("web".into(), web_pod());
        let pods = Router::new()
            .route("/api/v1/{*rest}", any(core))
            .route("/apis/{group}/{version}/{*rest}", any(grouped))
            .with_state(stub.clone());
        let app = discovery::routes().merge(pods).layer(axum::middleware::from_fn_with_state(stub.clone(), record));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Server { addr, stub, stop: Some(tx), thread: Some(thread) }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("server thread");
        }
    }

    fn requests(&self) -> Vec<String> {
        self.stub.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// kubectl with a throwaway HOME and cache, talking plain HTTP to the test server.
struct Kubectl {
    bin: String,
    home: PathBuf,
    server: String,
}

impl Kubectl {
    fn new(bin: &str, name: &str, addr: SocketAddr) -> Kubectl {
        let home = PathBuf::from(format!("/tmp/podlab-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).unwrap();
        Kubectl { bin: bin.to_string(), home, server: format!("http://{addr}") }
    }

    fn run(&self, args: &[&str]) -> Output {
        let cache = self.home.join("cache");
        Command::new(&self.bin)
            .args(["--kubeconfig", "/dev/null", "--server", &self.server, "--request-timeout", "30s", "-n", "default"])
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .output()
            .expect("run kubectl (is it installed?)")
    }

    /// Run and require success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubectl {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// A GET over a fresh connection: status code, headers (lower-case names) and body.
fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let code = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let hs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (code, hs, raw[split + 4..].to_vec())
}

fn header_of<'a>(hs: &'a [(String, String)], name: &str) -> &'a str {
    hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// Each endpoint in each of its forms, as other clients (and older kubectls) ask for them.
#[test]
fn endpoints_answer_each_form() {
    let mut server = Server::start();
    let json = |path: &str, accept: &str| {
        let (code, hs, body) = http_get(server.addr, path, &[("Accept", accept)]);
        assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
        (hs, serde_json::from_slice::<Value>(&body).expect("JSON"))
    };
    let (hs, api) = json("/api", "application/json");
    assert_eq!((api["kind"].as_str(), header_of(&hs, "content-type")), (Some("APIVersions"), "application/json"));
    assert_eq!(api["versions"], json!(["v1"]));
    let (hs, api) = json("/api", discovery::AGGREGATED_V2);
    assert_eq!(api["kind"], "APIGroupDiscoveryList");
    assert_eq!(header_of(&hs, "content-type"), discovery::AGGREGATED_V2);
    assert_eq!(header_of(&hs, "vary"), "Accept");
    let (_, apis) = json("/apis", "application/json");
    assert_eq!(apis["kind"], "APIGroupList");
    assert_eq!(apis["groups"][0]["preferredVersion"]["groupVersion"], "coordination.k8s.io/v1");
    let (_, core) = json("/api/v1", "application/json");
    assert_eq!((core["kind"].as_str(), core["groupVersion"].as_str()), (Some("APIResourceList"), Some("v1")));
    let pods = core["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods").cloned().unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let (_, apps) = json("/apis/apps/v1", "application/json");
    assert!(
        apps["resources"].as_array().unwrap().iter().any(|r| r["name"] == "deployments/scale" && r["kind"] == "Scale")
    );
    let (_, group) = json("/apis/batch", "application/json");
    assert_eq!(group["kind"], "APIGroup");
    assert_eq!(http_get(server.addr, "/apis/nope/v1", &[]).0, 404);
    let (_, v2) = json("/openapi/v2", "application/json");
    assert_eq!(v2["swagger"], "2.0");
    assert!(v2["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    let proto = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    assert_eq!(http_get(server.addr, "/openapi/v2", &[("Accept", proto)]).0, 406);
    // The v3 index points at hashed URLs that may be cached for good; ETags revalidate.
    let (_, index) = json("/openapi/v3", "application/json");
    let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap().to_string();
    let (hs, doc) = json(&url, "application/json");
    assert_eq!(doc["openapi"], "3.0.0");
    assert!(header_of(&hs, "cache-control").contains("immutable"));
    let etag = header_of(&hs, "etag").to_string();
    let (code, _, body) = http_get(server.addr, &url, &[("Accept", "application/json"), ("If-None-Match", &etag)]);
    assert_eq!((code, body.len()), (304, 0));
    let (hs, _) = json("/openapi/v3/apis/apps/v1", "application/json");
    assert!(header_of(&hs, "cache-control").contains("no-cache"));
    server.stop();
    assert!(
        std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err(),
        "server still listening"
    );
}

/// The line of `text` whose first column is `first`.
fn line<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&first))
        .unwrap_or_else(|| panic!("no line starting with {first:?} in:\n{text}"))
}

/// The kubectl on PATH (`PODLAB_KUBECTL` overrides it). Google Cloud SDK installs a dispatcher
/// there that asks the server's /version first and runs the kubectl of the same minor version.
#[test]
fn kubectl_reads_discovery_openapi_and_tables() {
    let bin = std::env::var("PODLAB_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    kubectl_scenario(&bin, "discovery-path");
}

/// kubectl 1.32 itself, when the dispatcher's versioned binaries sit beside it.
#[test]
fn kubectl_1_32_reads_discovery_openapi_and_tables() {
    let beside = Command::new("sh")
        .args(["-c", "readlink -f \"$(command -v kubectl)\""])
        .output()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).with_file_name("kubectl.1.32"))
        .ok()
        .filter(|p| p.is_file());
    let Some(bin) = beside else {
        eprintln!("no kubectl.1.32 beside the kubectl on PATH: the other test covers the kubectl installed");
        return;
    };
    let version = Command::new(&bin).args(["version", "--client"]).output().expect("kubectl.1.32 version");
    assert!(String::from_utf8_lossy(&version.stdout).contains("Client Version: v1.32."), "{version:?}");
    kubectl_scenario(bin.to_str().unwrap(), "discovery-132");
}

fn kubectl_scenario(bin: &str, name: &str) {
    let mut server = Server::start();
    let k = Kubectl::new(bin, name, server.addr);

    // kubectl version: the server's version document.
    let v: Value = serde_json::from_str(&k.ok(&["version", "-o", "json"])).expect("version JSON");
    let git = v["serverVersion"]["gitVersion"].as_str().unwrap_or("");
    assert!(git.starts_with("v1.33.0+podlab."), "server version {v}");
    assert_eq!(v["serverVersion"]["minor"], "33");

    // kubectl api-resources: short names, groups, scope and kind from aggregated discovery.
    let out = k.ok(&["api-resources"]);
    assert_eq!(line(&out, "pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(line(&out, "deployments"), ["deployments", "deploy", "apps/v1", "true", "Deployment"]);
    assert_eq!(line(&out, "nodes"), ["nodes", "no", "v1", "false", "Node"]);
    assert_eq!(line(&out, "leases"), ["leases", "coordination.k8s.io/v1", "true", "Lease"]);
    let reqs = server.requests();
    assert!(
        reqs.iter().any(|r| r.starts_with("GET /apis application/json;g=apidiscovery.k8s.io;v=v2;")),
        "kubectl did not ask for aggregated discovery: {reqs:#?}"
    );
    assert!(
        !reqs.iter().any(|r| r.starts_with("GET /api/v1 ") || r.starts_with("GET /apis/apps/v1 ")),
        "kubectl fell back to per-group discovery: {reqs:#?}"
    );

    // kubectl api-versions
    let out = k.ok(&["api-versions"]);
    for gv in ["v1", "apps/v1", "batch/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1", "storage.k8s.io/v1"] {
        assert!(out.lines().any(|l| l == gv), "{gv} missing from api-versions:\n{out}");
    }

    // kubectl explain reads OpenAPI v3.
    let out = k.ok(&["explain", "pod.spec.containers"]);
    assert!(out.contains("KIND:       Pod") && out.contains("VERSION:    v1"), "{out}");
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("image\t<string>") && out.contains("readinessProbe\t<Probe>"), "{out}");
    assert!(out.contains("name\t<string> -required-"), "{out}");
    let out = k.ok(&["explain", "deployment.spec.strategy"]);
    assert!(out.contains("GROUP:      apps") && out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("FIELD: strategy <DeploymentStrategy>"), "{out}");
    assert!(out.contains("rollingUpdate\t<RollingUpdateDeployment>"), "{out}");
    let reqs = server.requests();
    assert!(reqs.iter().any(|r| r.starts_with("GET /openapi/v3/apis/apps/v1 ")), "{reqs:#?}");

    // kubectl get pods: the columns of the server's Table.
    let out = k.ok(&["get", "pods"]);
    let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], "{out}");
    let row = line(&out, "web");
    assert_eq!(row[..4], ["web", "1/2", "Running", "2"], "{out}");
    assert!(row[4].starts_with('(') && row[5] == "ago)" && row[6].starts_with("10m"), "{out}");
    let out = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(out.lines().next().unwrap_or("").contains("NOMINATED NODE   READINESS GATES"), "{out}");
    let row = line(&out, "web");
    assert_eq!(row[row.len() - 4..], ["10.88.0.5", "vm1", "<none>", "<none>"], "{out}");
    let out = k.ok(&["get", "pod", "web", "--show-labels", "--no-headers"]);
    assert!(out.starts_with("web ") && out.trim_end().ends_with("<none>"), "{out}");

    // kubectl apply: create, then a change sent as a strategic merge patch that knows the
    // containers' merge key (kubectl's built-in types, as the OpenAPI carries none).
    let dir = k.home.join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = |image: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: applied\nspec:\n  containers:\n  - name: app\n    image: {image}\n"
        )
    };
    std::fs::write(dir.join("pod.yaml"), manifest("busybox:1")).unwrap();
    let file = dir.join("pod.yaml");
    let file = file.to_str().unwrap();
    let out = k.run(&["apply", "-f", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "apply (create): {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pod/applied created");
    std::fs::write(dir.join("pod.yaml"), manifest("busybox:2")).unwrap();
    let out = k.run(&["apply", "-f", file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "apply (patch): {stderr}");
    let patches = server.stub.patches.lock().unwrap().clone();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(patches[0].0.starts_with("application/strategic-merge-patch+json"), "{patches:?}");
    assert!(patches[0].1.contains("$setElementOrder/containers") && patches[0].1.contains("busybox:2"), "{patches:?}");
    let reqs = server.requests();
    assert!(reqs.iter().any(|r| r.starts_with("POST /api/v1/namespaces/default/pods ")), "{reqs:#?}");

    // Nothing left: the server stops, its port closes, the temporary HOME goes.
    server.stop();
    assert!(
        std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(1)).is_err(),
        "server still listening"
    );
    let home = k.home.clone();
    drop(k);
    assert!(!home.exists(), "{} left behind", home.display());
}
