//! `podlab __api-bench` (hidden): how fast the API server answers many clients at once.
//!
//! Every Kubernetes component is an API client: kubelets, controllers and kubectl create, read,
//! update (naming the resourceVersion they read: optimistic concurrency), list, and watch,
//! where one change is sent to every watcher of its kind. Against a running `podlab server`
//! (bench/api.sh starts one on SQLite and one on etcd), from `--clients` tasks sharing a pool of
//! HTTPS connections (opened once, then reused), in a namespace of its own: create N pods, get
//! each, update each, list them all many times, time creates (one at a time, then a burst from
//! all the clients) until each of `--watchers` watches has seen them, delete everything.
//! Prints ops/s, p50 and p99 per operation.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Args)]
pub struct ApiBenchArgs {
    /// The API server's URL (https://127.0.0.1:PORT, as in DIR/lib/server/server.addr).
    #[arg(long)]
    server: String,
    /// The CA that signed the server's certificate (DIR/lib/server/pki/ca.crt).
    #[arg(long)]
    ca: PathBuf,
    /// A bearer token of the group system:masters (the first line of DIR/lib/server/tokens.csv).
    #[arg(long)]
    token: String,
    /// Concurrent clients for create, get, update, delete, and the burst of watched creates.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Pods created, read, updated, listed and deleted.
    #[arg(long, default_value_t = 1000)]
    pods: usize,
    /// Lists of all the pods.
    #[arg(long, default_value_t = 50)]
    lists: usize,
    /// Concurrent clients for the lists.
    #[arg(long, default_value_t = 5)]
    list_clients: usize,
    /// Watches open while the watched pods are created.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Pods created while the watches are open, one at a time and again as a burst (each
    /// event reaches every watcher).
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// How long one request may take, and how long the watchers wait for their events.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const WATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// One operation's numbers.
#[derive(Debug, serde::Serialize)]
struct Row {
    op: &'static str,
    count: usize,
    clients: usize,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// The server, the credentials, and the namespace the bench works in.
struct Bench {
    http: reqwest::Client,
    base: String,
    token: String,
    namespace: String,
}

/// A small pod as people write them: one container, a port, requests and limits, no node
/// (unscheduled, so that a delete is immediate).
fn pod(name: &str) -> Vec<u8> {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web", "bench": "api"}},
        "spec": {
            "containers": [{
                "name": "web",
                "image": "docker.io/library/busybox:latest",
                "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                "ports": [{"name": "http", "containerPort": 8080}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
            }],
            "terminationGracePeriodSeconds": 1,
        },
    })
    .to_string()
    .into_bytes()
}

/// The pods of each phase: bench-00000.. (create, get, update, list), watch-00000.. (created
/// one at a time while watched), burst-00000.. (created by all the clients at once, watched).
fn pod_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}")
}

impl Bench {
    fn pods(&self) -> String {
        format!("{}/api/v1/namespaces/{}/pods", self.base, self.namespace)
    }

    /// One request; the time from sending it to the last byte of the answer, and the answer.
    /// Anything but 2xx is an error naming the request and the server's message.
    async fn request(&self, method: Method, url: &str, body: Option<Vec<u8>>) -> anyhow::Result<(Duration, Vec<u8>)> {
        let mut req = self.http.request(method.clone(), url).bearer_auth(&self.token).timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let started = Instant::now();
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await.with_context(|| format!("{method} {url}: reading the answer"))?;
        let took = started.elapsed();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            bail!("{method} {url}: {status}: {}", text.chars().take(400).collect::<String>());
        }
        Ok((took, bytes.to_vec()))
    }

    async fn create(&self, name: &str) -> anyhow::Result<Duration> {
        Ok(self.request(Method::POST, &self.pods(), Some(pod(name))).await?.0)
    }
}

/// Run `op(0)` .. `op(n - 1)` from `clients` tasks, each taking the next index until none is
/// left. Returns the wall time of it all and the outputs in index order.
async fn spread<T, F, Fut>(n: usize, clients: usize, op: F) -> anyhow::Result<(Duration, Vec<T>)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients.clamp(1, n.max(1)))
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(done);
                    }
                    done.push((i, op(i).await?));
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.extend(task.await.context("a bench task panicked")??);
    }
    let wall = started.elapsed();
    out.sort_by_key(|(i, _)| *i);
    Ok((wall, out.into_iter().map(|(_, t)| t).collect()))
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// The p-th percentile, nearest rank (of 100 values, p99 is the 99th smallest).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied().unwrap_or_default()
}

fn row(op: &'static str, clients: usize, wall: Duration, mut latencies: Vec<Duration>) -> Row {
    latencies.sort();
    let count = latencies.len();
    Row {
        op,
        count,
        clients,
        ops_per_s: (count as f64 / wall.as_secs_f64().max(1e-9)).round(),
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
    }
}

pub fn run(args: ApiBenchArgs) -> anyhow::Result<i32> {
    if args.clients == 0 || args.pods == 0 || args.lists == 0 || args.list_clients == 0 || args.events == 0 {
        bail!("--clients, --pods, --lists, --list-clients and --events must be at least 1");
    }
    let pem = std::fs::read(&args.ca).with_context(|| format!("read the CA {}", args.ca.display()))?;
    let ca = reqwest::Certificate::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM certificate", args.ca.display()))?;
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("create the HTTPS client")?;
    let bench = Arc::new(Bench {
        http,
        base: args.server.trim_end_matches('/').to_string(),
        token: args.token.clone(),
        namespace: format!("podlab-bench-{}", std::process::id()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let outcome = phases(&bench, &args).await;
        // The namespace goes with whatever is left in it (the server deletes its content first).
        let removed = remove_namespace(&bench).await;
        let (rows, missed) = outcome?;
        removed?;
        report(&args, &bench, &rows, missed);
        Ok(0)
    })
}

/// Every phase in turn; the rows, and how many watch events never arrived.
async fn phases(b: &Arc<Bench>, args: &ApiBenchArgs) -> anyhow::Result<(Vec<Row>, usize)> {
    let (n, c) = (args.pods, args.clients);
    let mut rows = Vec::new();

    // Opening the connections: c requests at once, each on a new TLS connection, kept for later.
    let bb = b.clone();
    let (wall, took) = spread(c, c, move |_| {
        let b = bb.clone();
        async move { Ok(b.request(Method::GET, &format!("{}/readyz", b.base), None).await?.0) }
    })
    .await?;
    rows.push(row("connect", c, wall, took));

    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": b.namespace}});
    let namespaces = format!("{}/api/v1/namespaces", b.base);
    b.request(Method::POST, &namespaces, Some(ns.to_string().into_bytes())).await?;

    let bb = b.clone();
    let (wall, took) = spread(n, c, move |i| {
        let b = bb.clone();
        async move { b.create(&pod_name("bench", i)).await }
    })
    .await?;
    rows.push(row("create", c, wall, took));

    let bb = b.clone();
    let (wall, got) = spread(n, c, move |i| {
        let b = bb.clone();
        async move { b.request(Method::GET, &format!("{}/{}", b.pods(), pod_name("bench", i)), None).await }
    })
    .await?;
    let pods: Vec<Value> = got.iter().map(|(_, body)| serde_json::from_slice(body)).collect::<Result<_, _>>()?;
    rows.push(row("get", c, wall, got.into_iter().map(|(d, _)| d).collect()));

    // Each pod as read, with one label more, PUT back with the resourceVersion read.
    let (bb, pods) = (b.clone(), Arc::new(pods));
    let (wall, took) = spread(n, c, move |i| {
        let (b, pods) = (bb.clone(), pods.clone());
        async move {
            let mut p = pods[i].clone();
            p["metadata"]["labels"]["updated"] = json!("yes");
            let url = format!("{}/{}", b.pods(), pod_name("bench", i));
            Ok(b.request(Method::PUT, &url, Some(p.to_string().into_bytes())).await?.0)
        }
    })
    .await?;
    rows.push(row("update", c, wall, took));

    let bb = b.clone();
    let (wall, took) = spread(args.lists, args.list_clients, move |_| {
        let b = bb.clone();
        async move {
            let (took, body) = b.request(Method::GET, &b.pods(), None).await?;
            let items = serde_json::from_slice::<ListItems>(&body).context("the pod list")?.items.len();
            if items != n {
                bail!("the list has {items} pods, not {n}");
            }
            Ok(took)
        }
    })
    .await?;
    rows.push(row("list", args.list_clients, wall, took));

    // Watches: creates one after another, then a burst of them from all the clients.
    let (watch, missed) = watch_phase(b, args, "watch", 1).await?;
    rows.push(watch);
    let (burst, burst_missed) = watch_phase(b, args, "burst", c).await?;
    rows.push(burst);

    let (e, bb) = (args.events, b.clone());
    let (wall, took) = spread(n + 2 * e, c, move |i| {
        let b = bb.clone();
        let name = match i {
            i if i < n => pod_name("bench", i),
            i if i < n + e => pod_name("watch", i - n),
            i => pod_name("burst", i - n - e),
        };
        async move { Ok(b.request(Method::DELETE, &format!("{}/{name}", b.pods()), None).await?.0) }
    })
    .await?;
    rows.push(row("delete", c, wall, took));
    Ok((rows, missed + burst_missed))
}

#[derive(Deserialize)]
struct ListItems {
    items: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Named,
}

#[derive(Deserialize)]
struct Named {
    metadata: NameOnly,
}

#[derive(Deserialize)]
struct NameOnly {
    #[serde(default)]
    name: String,
}

/// Open the watches (from the current revision), create `events` pods named `prefix-N` from
/// `clients` clients, and time each pod from just before its create was sent to its ADDED
/// event at each watcher. The row is named after the prefix.
async fn watch_phase(
    b: &Arc<Bench>,
    args: &ApiBenchArgs,
    prefix: &'static str,
    clients: usize,
) -> anyhow::Result<(Row, usize)> {
    let (_, body) = b.request(Method::GET, &format!("{}?limit=1", b.pods()), None).await?;
    let list: Value = serde_json::from_slice(&body).context("the pod list")?;
    let rv = list["metadata"]["resourceVersion"].as_str().context("the pod list has no resourceVersion")?.to_string();
    let url = format!("{}?watch=1&resourceVersion={rv}", b.pods());
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let resp = b.http.get(&url).bearer_auth(&b.token).send().await.with_context(|| format!("GET {url}"))?;
        if resp.status() != StatusCode::OK {
            bail!("GET {url}: {}", resp.status());
        }
        watchers.push(tokio::spawn(receive(resp, prefix, args.events)));
    }

    let bb = b.clone();
    let (_, sent) = spread(args.events, clients, move |j| {
        let b = bb.clone();
        async move {
            let at = Instant::now();
            b.create(&pod_name(prefix, j)).await?;
            Ok(at)
        }
    })
    .await?;

    let (mut latencies, mut missed, mut last) = (Vec::new(), 0, None);
    for w in watchers {
        for (j, arrived) in w.await.context("a watcher panicked")??.into_iter().enumerate() {
            match arrived {
                Some(at) => {
                    latencies.push(at.saturating_duration_since(sent[j]));
                    last = last.max(Some(at));
                }
                None => missed += 1,
            }
        }
    }
    // Throughput: events delivered per second, from the first create sent to the last arrival.
    let first = sent.iter().min().copied().unwrap_or_else(Instant::now);
    let wall = last.map(|l: Instant| l.saturating_duration_since(first)).unwrap_or_default();
    Ok((row(prefix, clients, wall, latencies), missed))
}

/// Read one watch until the pods `prefix-0`..`prefix-(events - 1)` were ADDED (or the time is
/// up): when each arrived.
async fn receive(mut resp: reqwest::Response, prefix: &str, events: usize) -> anyhow::Result<Vec<Option<Instant>>> {
    let mut arrived = vec![None; events];
    let mut seen = 0;
    let mut buf: Vec<u8> = Vec::new();
    let deadline = tokio::time::Instant::now() + WATCH_TIMEOUT;
    while seen < events {
        let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(chunk) => chunk.context("reading a watch")?,
            Err(_) => break,
        };
        let Some(chunk) = chunk else { break };
        let at = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let ev: WatchEvent = serde_json::from_slice(&line).context("a watch event")?;
            let name = &ev.object.metadata.name;
            let j = name.strip_prefix(prefix).and_then(|j| j.strip_prefix('-')?.parse::<usize>().ok());
            if let Some(slot) = j.filter(|_| ev.kind == "ADDED").and_then(|j| arrived.get_mut(j)) {
                if slot.is_none() {
                    *slot = Some(at);
                    seen += 1;
                }
            }
        }
    }
    Ok(arrived)
}

/// Delete the bench's namespace (if it was made) and wait (30 s at most) until it is gone.
async fn remove_namespace(b: &Bench) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/namespaces/{}", b.base, b.namespace);
    let resp = b.http.delete(&url).bearer_auth(&b.token).send().await.with_context(|| format!("DELETE {url}"))?;
    match resp.status() {
        StatusCode::NOT_FOUND => return Ok(()),
        s if !s.is_success() => bail!("DELETE {url}: {s}: delete the namespace with kubectl"),
        _ => {}
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let resp = b.http.get(&url).bearer_auth(&b.token).send().await.with_context(|| format!("GET {url}"))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the namespace {} was still there 30 s after its deletion: delete it with kubectl", b.namespace)
}

fn report(args: &ApiBenchArgs, b: &Bench, rows: &[Row], missed: usize) {
    if args.json {
        let ops: serde_json::Map<String, Value> =
            rows.iter().map(|r| (r.op.to_string(), serde_json::to_value(r).unwrap_or_default())).collect();
        let out = json!({
            "server": b.base, "clients": args.clients, "pods": args.pods, "lists": args.lists,
            "list_clients": args.list_clients, "watchers": args.watchers, "events": args.events,
            "watch_missed": missed, "ops": ops,
        });
        println!("{out}");
        return;
    }
    println!(
        "{}: {} pods, {} clients, {} lists from {} clients, {} creates seen by {} watchers",
        b.base, args.pods, args.clients, args.lists, args.list_clients, args.events, args.watchers
    );
    println!(
        "{:<10} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "operation", "count", "clients", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    for r in rows {
        println!(
            "{:<10} {:>7} {:>8} {:>9} {:>9.1} {:>9.1} {:>9.1}",
            r.op, r.count, r.clients, r.ops_per_s, r.p50_ms, r.p99_ms, r.max_ms
        );
    }
    if missed > 0 {
        println!("watch: {missed} events did not arrive within {} s", WATCH_TIMEOUT.as_secs());
    }
}
