//! Lab 12, the API server (part 1): resources over HTTPS, a watch, the store underneath.
//!
//! The Kubernetes API is HTTP and JSON: every object has a URL
//! (`/api/v1/namespaces/default/pods/hello`); GET reads it, POST creates, PATCH changes, DELETE
//! removes, and `?watch=1` turns a GET into a stream of ADDED, MODIFIED and DELETED events.
//! Each change is one row of the store's log (`store.db`); the row's id, the store's revision,
//! is the object's resourceVersion, which watches resume from and writes are checked against.
//! kubectl is one more client of the same URLs. The learner runs `podlab server` with its state
//! in the workspace and drives it with curl, sqlite3 and kubectl.

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use super::{Ctx, Point, remove_workspace};
use crate::error::{Error, IoContext, Result};
use crate::explain::say;
use crate::primitives::proc;

/// Where the lab's server listens (the guide starts it so).
const LISTEN: &str = "127.0.0.1:16443";
const PODS_PATH: &str = "/api/v1/namespaces/default/pods";
const POD_PATH: &str = "/api/v1/namespaces/default/pods/hello";
/// Pod hello's key in the store.
const POD_KEY: &str = "/registry/core/pods/default/hello";

/// The pod the learner POSTs with curl.
pub const HELLO_JSON: &str = r#"{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "hello", "labels": {"lab": "12"}},
  "spec": {
    "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]
  }
}
"#;

/// The pod the learner creates and deletes with kubectl.
pub const BYE_YAML: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: bye
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "3600"]
"#;

/// The server's state: `$LAB/lib/server` (`podlab --root $LAB server`).
fn server_dir(ws: &Path) -> PathBuf {
    ws.join("lib/server")
}

fn store_db(ws: &Path) -> PathBuf {
    server_dir(ws).join("store.db")
}

/// The innermost cause of a request error: "Connection refused", "invalid peer certificate".
fn why(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    if e.is_timeout() { format!("no answer in time ({inner})") } else { inner.to_string() }
}

/// The admin's token: the first field of the line of group system:masters in tokens.csv.
fn admin_token(file: &Path) -> std::result::Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.lines()
        .find(|l| l.contains("system:masters"))
        .and_then(|l| l.split(',').next())
        .map(str::to_string)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{} has no token of group system:masters", file.display()))
}

/// A client of the lab's server: its URL, the lab's CA, the admin token — what curl is given.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    /// A client made from what the server wrote into `$LAB/lib/server`.
    fn open(ws: &Path) -> std::result::Result<Client, String> {
        let dir = server_dir(ws);
        if !dir.exists() {
            return Err(format!(
                "there is no {}: the server was never started with --root {}",
                dir.display(),
                ws.display()
            ));
        }
        let ca_file = dir.join("pki/ca.crt");
        let pem = std::fs::read(&ca_file).map_err(|e| format!("cannot read {}: {e}", ca_file.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{} is not a PEM certificate: {}", ca_file.display(), why(&e)))?;
        let token = admin_token(&dir.join("tokens.csv"))?;
        let url = std::fs::read_to_string(dir.join("server.addr"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("https://{LISTEN}"));
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| format!("cannot make an HTTPS client: {}", why(&e)))?;
        Ok(Client { http, url, token })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(&self.token)
    }

    /// Send a request: the status code and the answer (JSON, or the text as a JSON string).
    async fn call(&self, rb: RequestBuilder) -> std::result::Result<(u16, Value), String> {
        let resp =
            rb.timeout(Duration::from_secs(10)).send().await.map_err(|e| format!("{}: {}", self.url, why(&e)))?;
        let code = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| format!("{}: {}", self.url, why(&e)))?;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        Ok((code, value))
    }

    async fn get(&self, path: &str) -> std::result::Result<(u16, Value), String> {
        self.call(self.request(Method::GET, path)).await
    }

    /// A request with a body of `content_type`; the answer when its status is `want`.
    async fn send(&self, method: Method, path: &str, content_type: &str, body: String, want: u16) -> Result<Value> {
        let what = format!("{method} {path}");
        let rb = self.request(method, path).header("Content-Type", content_type).body(body);
        let (code, answer) = self.call(rb).await.map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        if code != want {
            return Err(Error::invalid(format!("{what}: the server answered {code}: {}", message(&answer))));
        }
        Ok(answer)
    }
}

/// What a failed answer says (a Status's message), or the answer itself.
fn message(answer: &Value) -> String {
    match answer.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => answer.to_string(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::invalid(format!("cannot start an async runtime: {e}")))
}

fn resource_version(object: &Value) -> Option<i64> {
    object.pointer("/metadata/resourceVersion")?.as_str()?.parse().ok()
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.pointer("/metadata/labels")?.get(key)?.as_str()
}

/// A watch event of pod hello made by the PATCH of step 2: MODIFIED, with label step=watched.
fn is_watched_event(event: &Value) -> bool {
    event.get("type").and_then(Value::as_str) == Some("MODIFIED")
        && event.pointer("/object/metadata/name").and_then(Value::as_str) == Some("hello")
        && event.get("object").and_then(|o| label(o, "step")) == Some("watched")
}

/// The ids of the rows of `key` in the store's log, oldest first (read-only, beside the server).
fn store_rows(db: &Path, key: &str) -> std::result::Result<Vec<i64>, String> {
    use rusqlite::{Connection, OpenFlags};
    if !db.exists() {
        return Err(format!("there is no {}", db.display()));
    }
    let failed = |e: rusqlite::Error| format!("cannot read {}: {e}", db.display());
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(failed)?;
    conn.busy_timeout(Duration::from_secs(2)).map_err(failed)?;
    let mut stmt = conn.prepare("SELECT id FROM log WHERE name = ?1 ORDER BY id").map_err(failed)?;
    let ids = stmt.query_map([key], |r| r.get(0)).map_err(failed)?;
    ids.collect::<rusqlite::Result<Vec<i64>>>().map_err(failed)
}

/// What the check saw of the server.
struct Seen {
    /// The server's URL and the namespaces it lists, or why it could not be asked.
    server: std::result::Result<(String, Vec<String>), String>,
    /// Pod hello (None: there is none), or why it could not be read.
    pod: std::result::Result<Option<Value>, String>,
}

async fn look(ws: &Path) -> Seen {
    let client = match Client::open(ws) {
        Ok(c) => c,
        Err(why) => {
            let pod = Err("cannot ask the API server (see the first point)".to_string());
            return Seen { server: Err(why), pod };
        }
    };
    let server = match client.get("/api/v1/namespaces").await {
        Ok((200, list)) => {
            let items = list.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let names = items.iter().filter_map(|i| i.pointer("/metadata/name")?.as_str().map(String::from)).collect();
            Ok((client.url.clone(), names))
        }
        Ok((code, answer)) => {
            Err(format!("{} answered {code} to GET /api/v1/namespaces: {}", client.url, message(&answer)))
        }
        Err(e) if e.contains("certificate") => Err(format!(
            "{e}: the server on this port is not the lab's (its certificate is not signed by the lab's CA)"
        )),
        Err(e) => Err(format!("no answer: {e}")),
    };
    let pod = if server.is_err() {
        Err("cannot ask the API server (see the first point)".to_string())
    } else {
        match client.get(POD_PATH).await {
            Ok((200, pod)) => Ok(Some(pod)),
            Ok((404, _)) => Ok(None),
            Ok((code, answer)) => Err(format!("GET {POD_PATH} answered {code}: {}", message(&answer))),
            Err(e) => Err(e),
        }
    };
    Seen { server, pod }
}

/// Pod hello, or why there is none to grade.
fn the_pod(seen: &Seen) -> std::result::Result<&Value, String> {
    match &seen.pod {
        Ok(Some(pod)) => Ok(pod),
        Ok(None) => Err("there is no pod hello in namespace default".into()),
        Err(why) => Err(why.clone()),
    }
}

fn grade_hello(seen: &Seen) -> std::result::Result<String, String> {
    let pod = the_pod(seen)?;
    match label(pod, "lab") {
        Some("12") => Ok(format!("resourceVersion {}", resource_version(pod).unwrap_or_default())),
        other => Err(format!("pod hello has label lab={}, not lab=12", other.unwrap_or("(none)"))),
    }
}

/// `$LAB/watch.json`: the watch of step 2 saw the PATCH of this very pod.
fn grade_watch(ws: &Path, seen: &Seen) -> std::result::Result<String, String> {
    let file = ws.join("watch.json");
    let text = std::fs::read_to_string(&file).map_err(|_| format!("there is no {}", file.display()))?;
    let events: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let Some(event) = events.iter().find(|e| is_watched_event(e)) else {
        let kinds: Vec<String> = events
            .iter()
            .map(|e| {
                let kind = e.get("type").and_then(Value::as_str).unwrap_or("?");
                let name = e.pointer("/object/metadata/name").and_then(Value::as_str).unwrap_or("?");
                format!("{kind} {name}")
            })
            .collect();
        return Err(format!(
            "{} has no MODIFIED event of pod hello with label step=watched (it has {})",
            file.display(),
            if kinds.is_empty() { "no events".to_string() } else { kinds.join(", ") }
        ));
    };
    let pod = the_pod(seen)?;
    let uid = |o: &Value| o.pointer("/metadata/uid").and_then(Value::as_str).map(String::from);
    let (then, now) = (uid(&event["object"]), uid(pod));
    if then != now {
        return Err(format!(
            "the event in {} is of another pod hello (uid {}; the pod now has uid {})",
            file.display(),
            then.unwrap_or_default(),
            now.unwrap_or_default()
        ));
    }
    let rv = resource_version(&event["object"]).unwrap_or_default();
    Ok(format!("MODIFIED at resourceVersion {rv}"))
}

fn grade_kubectl(seen: &Seen) -> std::result::Result<String, String> {
    let pod = the_pod(seen)?;
    match label(pod, "via") {
        Some("kubectl") => Ok("label via=kubectl".into()),
        other => Err(format!("pod hello has label via={}, not via=kubectl", other.unwrap_or("(none)"))),
    }
}

/// `$LAB/revision.txt` names the newest row of pod hello in the store, and that is the
/// resourceVersion the API server gives the pod.
fn grade_revision(ws: &Path, seen: &Seen) -> std::result::Result<String, String> {
    let file = ws.join("revision.txt");
    let text = std::fs::read_to_string(&file).map_err(|_| format!("there is no {}", file.display()))?;
    let written: i64 =
        text.trim().parse().map_err(|_| format!("{} holds {:?}, not a number", file.display(), text.trim()))?;
    let rows = store_rows(&store_db(ws), POD_KEY)?;
    let newest = *rows.last().ok_or_else(|| format!("store.db has no row named {POD_KEY}"))?;
    if written != newest {
        let older = if rows.contains(&written) {
            format!(" (row {written} is an earlier change of the pod: it changed after you looked)")
        } else {
            String::new()
        };
        return Err(format!("revision.txt says {written}, the newest row of {POD_KEY} in store.db is {newest}{older}"));
    }
    let rv = resource_version(the_pod(seen)?).unwrap_or_default();
    if rv != newest {
        return Err(format!(
            "the newest row is {newest} but the API server says resourceVersion {rv}: is it this store?"
        ));
    }
    Ok(format!("{newest}: the id of the pod's newest row, and its resourceVersion"))
}

pub fn check(ctx: &Ctx) -> Result<Vec<Point>> {
    let ws = &ctx.ws;
    let seen = runtime()?.block_on(look(ws));
    let lab = ws.display();
    let curl = "curl --cacert $CA -H \"Authorization: Bearer $TOKEN\"";
    let api = format!("https://{LISTEN}");
    let hint = |r: &std::result::Result<String, String>, todo: String| match r {
        Ok(seen) => seen.clone(),
        Err(why) => format!("{why} — {todo}"),
    };
    let server = match &seen.server {
        Ok((url, names)) => Ok(format!("{url}: namespaces {}", names.join(", "))),
        Err(why) => Err(why.clone()),
    };
    let hello = grade_hello(&seen);
    let watch = grade_watch(ws, &seen);
    let kubectl = grade_kubectl(&seen);
    let revision = grade_revision(ws, &seen);
    Ok(vec![
        Point::new(
            format!("the API server of {lab} answers on {api} (the lab's CA, the admin token)"),
            server.is_ok(),
            hint(
                &server,
                format!("podlab --root {lab} server --listen {LISTEN} --compaction-interval 60m 2> {lab}/server.log &"),
            ),
        ),
        Point::new(
            "pod hello (label lab=12) was created with a POST",
            hello.is_ok(),
            hint(
                &hello,
                format!(
                    "{curl} -X POST -H 'Content-Type: application/json' --data @{lab}/hello.json {api}{PODS_PATH} \
                     (step 1 sets CA and TOKEN)"
                ),
            ),
        ),
        Point::new(
            "a watch (?watch=1) saw pod hello MODIFIED by a merge PATCH (label step=watched), in watch.json",
            watch.is_ok(),
            hint(
                &watch,
                format!(
                    "{curl} -N \"{api}{PODS_PATH}?watch=1&resourceVersion=$RV\" > {lab}/watch.json &  then PATCH \
                     {{\"metadata\":{{\"labels\":{{\"step\":\"watched\"}}}}}} as application/merge-patch+json"
                ),
            ),
        ),
        Point::new(
            "kubectl labelled pod hello via=kubectl",
            kubectl.is_ok(),
            hint(
                &kubectl,
                format!("kubectl --kubeconfig {lab}/lib/server/admin.kubeconfig label pod hello via=kubectl"),
            ),
        ),
        Point::new(
            "revision.txt holds the id of pod hello's newest row in store.db: its resourceVersion",
            revision.is_ok(),
            hint(
                &revision,
                format!(
                    "sqlite3 {} \"SELECT MAX(id) FROM log WHERE name = '{POD_KEY}'\" > {lab}/revision.txt",
                    store_db(ws).display()
                ),
            ),
        ),
    ])
}

/// The podlab binary to run: `PODLAB_BIN` (tests), else this very program.
fn binary() -> Result<PathBuf> {
    match std::env::var_os("PODLAB_BIN") {
        Some(b) => Ok(PathBuf::from(b)),
        None => std::env::current_exe().map_err(|e| Error::io("find", "the podlab binary (/proc/self/exe)", e)),
    }
}

fn write_file(path: &Path, content: &str) -> Result<()> {
    say(format!("cat > {} <<'EOF'\n{content}EOF", path.display()));
    std::fs::write(path, content).ctx("write", path)
}

/// Start `podlab --root $LAB server` in a session of its own, its log in `$LAB/server.log`,
/// its pid in `$LAB/server.pid`.
fn start_server(ws: &Path) -> Result<Child> {
    let addr: std::net::SocketAddr = LISTEN.parse().map_err(|_| Error::invalid(format!("bad address {LISTEN}")))?;
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        return Err(Error::invalid(format!(
            "{LISTEN} is taken by another program: find it with ss -ltnp 'sport = :16443' and stop it"
        )));
    }
    let log_path = ws.join("server.log");
    let log = File::create(&log_path).ctx("create", &log_path)?;
    let err = log.try_clone().ctx("open", &log_path)?;
    let w = ws.display();
    say(format!(
        "setsid podlab --root {w} server --listen {LISTEN} --compaction-interval 60m > {w}/server.log 2>&1 < /dev/null &"
    ));
    let bin = binary()?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--root")
        .arg(ws)
        .args(["server", "--listen", LISTEN, "--compaction-interval", "60m"])
        .env_remove("PODLAB_ROOT")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; the server outlives `podlab lab solve`.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::io("start", &bin, e))?;
    let pid_file = ws.join("server.pid");
    say(format!("echo $! > {}", pid_file.display()));
    std::fs::write(&pid_file, format!("{}\n", child.id())).ctx("write", &pid_file)?;
    Ok(child)
}

/// Wait until the server answers /readyz over HTTPS; fail early, with its log, if it exits.
async fn wait_ready(ws: &Path, server: &mut Child) -> Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            let log = std::fs::read_to_string(ws.join("server.log")).unwrap_or_default();
            return Err(Error::invalid(format!("podlab server exited ({status}): {}", log.trim())));
        }
        if let Ok(client) = Client::open(ws)
            && let Ok((200, _)) = client.get("/readyz").await
        {
            return Ok(client);
        }
        if Instant::now() > deadline {
            return Err(Error::invalid(format!(
                "podlab server does not answer on {LISTEN} after 30 s: see {}/server.log",
                ws.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Copy the watch's stream into `out` until the event of step 2 comes; that event.
async fn record_watch(watch: &mut Response, out: &Path) -> Result<Value> {
    let mut file = File::create(out).ctx("create", out)?;
    let mut pending = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, watch.chunk())
            .await
            .map_err(|_| Error::invalid("no MODIFIED event of pod hello came on the watch in 15 s"))?
            .map_err(|e| Error::invalid(format!("the watch broke: {}", why(&e))))?
            .ok_or_else(|| Error::invalid("the server ended the watch before pod hello's MODIFIED event"))?;
        file.write_all(&chunk).ctx("write", out)?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            match serde_json::from_slice::<Value>(&line) {
                Ok(event) if is_watched_event(&event) => return Ok(event),
                _ => {}
            }
        }
    }
}

/// The lab's requests, each explained as the curl or kubectl command that makes it.
async fn drive(ws: &Path, server: &mut Child) -> Result<()> {
    let w = ws.display();
    let c = wait_ready(ws, server).await?;
    let dir = server_dir(ws);
    say(format!("CA={}", dir.join("pki/ca.crt").display()));
    say(format!("TOKEN=$(grep system:masters {} | cut -d, -f1)", dir.join("tokens.csv").display()));
    let curl = "curl -sS --cacert $CA -H \"Authorization: Bearer $TOKEN\"";
    let api = &c.url;

    // 1. Poke the API.
    say(format!("{curl} {api}/api/v1/namespaces"));
    let namespaces = match c.get("/api/v1/namespaces").await {
        Ok((200, list)) => list,
        Ok((code, answer)) => {
            return Err(Error::invalid(format!("GET /api/v1/namespaces: {code} {}", message(&answer))));
        }
        Err(e) => return Err(Error::invalid(format!("GET /api/v1/namespaces: {e}"))),
    };
    let items = namespaces.get("items").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let names: Vec<&str> = items.iter().filter_map(|i| i.pointer("/metadata/name")?.as_str()).collect();
    println!("namespaces: {}", names.join(", "));

    // 2. Create pod hello, watch it from its resourceVersion, change it with a merge patch.
    say(format!("{curl} -X POST -H 'Content-Type: application/json' --data @{w}/hello.json {api}{PODS_PATH}"));
    let created = c.send(Method::POST, PODS_PATH, "application/json", HELLO_JSON.into(), 201).await?;
    let rv = resource_version(&created).ok_or_else(|| Error::invalid("the created pod has no resourceVersion"))?;
    println!("pod hello created at resourceVersion {rv}");
    let watch_path = format!("{PODS_PATH}?watch=1&resourceVersion={rv}");
    say(format!("{curl} -N \"{api}{watch_path}\" > {w}/watch.json &"));
    say("WATCH=$!");
    let mut watch = c
        .request(Method::GET, &watch_path)
        .send()
        .await
        .map_err(|e| Error::invalid(format!("GET {watch_path}: {}", why(&e))))?;
    if watch.status().as_u16() != 200 {
        return Err(Error::invalid(format!("GET {watch_path}: the server answered {}", watch.status())));
    }
    let patch = r#"{"metadata":{"labels":{"step":"watched"}}}"#;
    say(format!("{curl} -X PATCH -H 'Content-Type: application/merge-patch+json' --data '{patch}' {api}{POD_PATH}"));
    c.send(Method::PATCH, POD_PATH, "application/merge-patch+json", patch.into(), 200).await?;
    let event = record_watch(&mut watch, &ws.join("watch.json")).await?;
    drop(watch);
    say("kill $WATCH");
    println!(
        "the watch saw MODIFIED hello at resourceVersion {}",
        resource_version(&event["object"]).unwrap_or_default()
    );

    // 3-4. The same with kubectl: a label (a merge patch too), a pod applied and deleted.
    say(format!("export KUBECONFIG={}", dir.join("admin.kubeconfig").display()));
    say("kubectl label pod hello via=kubectl");
    let label = r#"{"metadata":{"labels":{"via":"kubectl"}}}"#;
    c.send(Method::PATCH, POD_PATH, "application/merge-patch+json", label.into(), 200).await?;
    say(format!("kubectl apply -f {w}/bye.yaml"));
    let bye: Value = serde_norway::from_str(BYE_YAML).map_err(|e| Error::invalid(format!("bye.yaml: {e}")))?;
    c.send(Method::POST, PODS_PATH, "application/json", bye.to_string(), 201).await?;
    say("kubectl delete pod bye");
    c.send(Method::DELETE, &format!("{PODS_PATH}/bye"), "application/json", "{}".into(), 200).await?;

    // 5. The pod's newest row in the store: its resourceVersion.
    let db = store_db(ws);
    let revision_file = ws.join("revision.txt");
    say(format!(
        "sqlite3 {} \"SELECT MAX(id) FROM log WHERE name = '{POD_KEY}'\" > {}",
        db.display(),
        revision_file.display()
    ));
    let rows = store_rows(&db, POD_KEY).map_err(Error::invalid)?;
    let newest = *rows.last().ok_or_else(|| Error::invalid(format!("store.db has no row named {POD_KEY}")))?;
    std::fs::write(&revision_file, format!("{newest}\n")).ctx("write", &revision_file)?;
    say("kubectl get pod hello -o jsonpath='{.metadata.resourceVersion}'");
    let pod = match c.get(POD_PATH).await {
        Ok((200, pod)) => pod,
        Ok((code, answer)) => return Err(Error::invalid(format!("GET {POD_PATH}: {code} {}", message(&answer)))),
        Err(e) => return Err(Error::invalid(format!("GET {POD_PATH}: {e}"))),
    };
    println!(
        "pod hello: rows {rows:?} in store.db; resourceVersion {}",
        resource_version(&pod).map(|r| r.to_string()).unwrap_or_default()
    );
    Ok(())
}

pub fn solve(ctx: &Ctx) -> Result<()> {
    // Start over: a server of an earlier attempt would hold the port and the store.
    reset(ctx)?;
    let ws = &ctx.ws;
    say(format!("mkdir -p {}", ws.display()));
    std::fs::create_dir_all(ws).ctx("create directory", ws)?;
    write_file(&ws.join("hello.json"), HELLO_JSON)?;
    write_file(&ws.join("bye.yaml"), BYE_YAML)?;
    let mut server = start_server(ws)?;
    runtime()?.block_on(drive(ws, &mut server))
}

/// Processes that hold a file of `dir` open: the lab's server (its store, its log) however it
/// was started, and watches writing into the workspace. podlab itself is left out.
fn holders(dir: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let holds = |pid: i32| -> bool {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
        // A file deleted under it still starts with the directory ("... (deleted)").
        fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(dir)))
    };
    proc::pids().into_iter().filter(|p| *p != me && holds(*p)).collect()
}

/// The command line of `pid`, for the explanation.
fn command_line(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ").trim().to_string()
}

/// SIGTERM to each of `pids`, SIGKILL to those still there after 5 s; wait until they are gone.
fn stop_all(pids: &[i32]) {
    use nix::sys::signal::{Signal, kill};
    let wait = |secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while pids.iter().any(|p| proc::alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for pid in pids {
        say(format!("kill -TERM {pid}   # {}", command_line(*pid)));
        let _ = kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGTERM);
    }
    wait(5);
    for pid in pids.iter().filter(|p| proc::alive(**p)) {
        say(format!("kill -KILL {pid}"));
        let _ = kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
    }
    wait(5);
}

pub fn reset(ctx: &Ctx) -> Result<bool> {
    let pids = holders(&ctx.ws);
    stop_all(&pids);
    Ok(remove_workspace(&ctx.ws)? || !pids.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guide_shows_the_lab_s_files() {
        let guide = include_str!("../../labs/12-api-server/README.md");
        assert!(guide.contains(HELLO_JSON), "the guide shows hello.json as solve writes it");
        assert!(guide.contains(BYE_YAML), "the guide shows bye.yaml as solve writes it");
        assert!(guide.contains(LISTEN) && guide.contains(POD_KEY));
    }

    #[test]
    fn the_pods_parse_as_pods() {
        let hello: k8s_openapi::api::core::v1::Pod = serde_json::from_str(HELLO_JSON).unwrap();
        assert_eq!(hello.metadata.name.as_deref(), Some("hello"));
        let bye: k8s_openapi::api::core::v1::Pod = serde_norway::from_str(BYE_YAML).unwrap();
        assert_eq!(bye.metadata.name.as_deref(), Some("bye"));
    }

    #[test]
    fn only_the_patch_event_of_hello_counts() {
        let event = |kind: &str, name: &str, step: &str| serde_json::json!({"type": kind, "object": {"metadata": {"name": name, "labels": {"step": step}}}});
        assert!(is_watched_event(&event("MODIFIED", "hello", "watched")));
        assert!(!is_watched_event(&event("ADDED", "hello", "watched")));
        assert!(!is_watched_event(&event("MODIFIED", "bye", "watched")));
        assert!(!is_watched_event(&event("MODIFIED", "hello", "other")));
    }

    #[test]
    fn the_admin_token_is_the_system_masters_line() {
        let dir = std::env::temp_dir().join(format!("lab12-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("tokens.csv");
        std::fs::write(&file, "n1,system:node:a,system:node:a,\"system:nodes\"\nabc,admin,admin,\"system:masters\"\n")
            .unwrap();
        assert_eq!(admin_token(&file).unwrap(), "abc");
        std::fs::write(&file, "n1,system:node:a,system:node:a,\"system:nodes\"\n").unwrap();
        assert!(admin_token(&file).unwrap_err().contains("no token of group system:masters"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
