//! `podlab run -f`, `get`, `describe`, `logs`, `exec`, `delete`: pods on this machine, through
//! the node agent's API, printed the way kubectl prints them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Pod;
use podlab::node::{NodePaths, client::Client};
use podlab::pod::manifest::{self, Object};
use podlab::state::StateDirs;

use super::podexplain::ExplainTail;

/// How often `run --wait` and `delete` ask the node agent about the pod (a local socket: cheap).
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The manifest: Pods, ConfigMaps, Secrets, Services (YAML, several documents allowed).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Wait until every pod is Running and ready (or has finished).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "120s", value_name = "DURATION")]
    pub timeout: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// `pods` (or `pod`, `po`).
    pub kind: String,
    /// One pod by name.
    pub name: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Args)]
pub struct PodRef {
    /// `pod` (optional before the name, as in kubectl).
    #[arg(value_name = "[pod] NAME", num_args = 1..=2, required = true)]
    pub words: Vec<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

impl PodRef {
    fn name(&self) -> anyhow::Result<&str> {
        match self.words.as_slice() {
            [name] => Ok(name),
            [kind, name] if is_pod_kind(kind) => Ok(name),
            [kind, _] => bail!("the server doesn't have a resource type {kind:?} (podlab knows pods)"),
            _ => bail!("name a pod"),
        }
    }
}

fn is_pod_kind(k: &str) -> bool {
    matches!(k, "pod" | "pods" | "po")
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pod.
    pub pod: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    #[arg(short = 'f', long)]
    pub follow: bool,
    #[arg(short = 'p', long)]
    pub previous: bool,
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    #[arg(long)]
    pub timestamps: bool,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod.
    pub pod: String,
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Give the command a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// The command, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The manifest whose objects to delete.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// `pod NAME`.
    #[arg(num_args = 0..=2)]
    pub words: Vec<String>,
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Wait until the pods are gone (default true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
}

fn client(dirs: &StateDirs) -> Client {
    Client::new(&NodePaths::new(dirs).socket())
}

/// The file a manifest object is kept in, in the node's manifest directory.
fn manifest_file(dir: &Path, o: &Object) -> PathBuf {
    dir.join(format!("{}_{}_{}.yaml", o.kind().to_lowercase(), o.namespace(), o.name()))
}

fn manifests_dir(dirs: &StateDirs) -> PathBuf {
    let paths = NodePaths::new(dirs);
    std::fs::read(paths.config_file())
        .ok()
        .and_then(|b| serde_json::from_slice::<podlab::node::NodeConfig>(&b).ok())
        .map(|c| c.manifests)
        .unwrap_or_else(|| paths.manifests())
}

fn yaml_of(o: &Object) -> anyhow::Result<String> {
    Ok(match o {
        Object::Pod(p) => serde_norway::to_string(p)?,
        Object::Service(s) => serde_norway::to_string(s)?,
        Object::ConfigMap(c) => serde_norway::to_string(c)?,
        Object::Secret(s) => serde_norway::to_string(s)?,
        Object::Endpoints(e) => serde_norway::to_string(e)?,
    })
}

/// `podlab run -f FILE`.
pub fn run(dirs: &StateDirs, root: Option<&Path>, args: RunArgs, explain: bool) -> anyhow::Result<i32> {
    let objects = manifest::load(&args.file)?;
    if objects.is_empty() {
        bail!("{}: no objects", args.file.display());
    }
    let dir = manifests_dir(dirs);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let c = client(dirs);
    if !c.alive() {
        let node = super::node::NodeArgs {
            command: None,
            manifests: None,
            pod_cidr: podlab::pod::ipam::DEFAULT_CIDR.into(),
            bridge: podlab::node::DEFAULT_BRIDGE.into(),
            node_name: None,
            netns: None,
            backoff_initial: "10s".into(),
            backoff_max: "300s".into(),
            detach: true,
        };
        super::node::detach(dirs, root, &node, explain)?;
    }
    for o in &objects {
        let path = manifest_file(&dir, o);
        let existed = path.exists();
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, yaml_of(o)?).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))?;
        println!("{}/{} {}", o.kind().to_lowercase(), o.name(), if existed { "configured" } else { "created" });
    }
    let _ = c.post_json("/sync", &serde_json::json!({}));
    if !args.wait {
        return Ok(0);
    }
    let timeout = Duration::from_millis(super::node::millis(&args.timeout)?);
    let deadline = Instant::now() + timeout;
    let pods: Vec<(String, String)> = objects
        .iter()
        .filter(|o| matches!(o, Object::Pod(_)))
        .map(|o| (o.namespace().to_string(), o.name().to_string()))
        .collect();
    let mut failed = false;
    for (ns, name) in pods {
        let mut tail: Option<ExplainTail> = None;
        loop {
            if let Some(t) = tail.as_mut() {
                t.poll();
            }
            let answer = c.get(&format!("/pods/{ns}/{name}"))?;
            if answer.status == 200 {
                let pod: Pod = answer.json()?;
                if explain
                    && tail.is_none()
                    && let Some(uid) = pod.metadata.uid.as_deref()
                {
                    tail = Some(ExplainTail::new(dirs, uid, false));
                    continue;
                }
                let p = view(&pod);
                if p.phase == "Running" && p.ready == p.total {
                    println!("pod/{name} is Running ({}/{} ready, IP {})", p.ready, p.total, p.ip);
                    break;
                }
                if p.phase == "Succeeded" || p.phase == "Failed" {
                    println!("pod/{name} {}", p.phase);
                    failed |= p.phase == "Failed";
                    break;
                }
                if Instant::now() > deadline {
                    bail!("pod/{name} is {} after {}: see `podlab describe pod {name}`", p.status, args.timeout);
                }
            } else if Instant::now() > deadline {
                bail!("pod/{name} did not appear within {}", args.timeout);
            }
            std::thread::sleep(POLL);
        }
        if let Some(t) = tail.as_mut() {
            t.poll();
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// What `get pods` prints about one pod.
pub struct PodView {
    pub name: String,
    pub namespace: String,
    pub ready: usize,
    pub total: usize,
    pub status: String,
    pub restarts: String,
    pub age: String,
    pub ip: String,
    pub node: String,
    pub phase: String,
}

fn since(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> Duration {
    let now = podlab::pod::status::timestamp_now();
    let d = now.duration_since(t.0);
    Duration::from_secs(d.as_secs().max(0) as u64)
}

/// kubectl's short ages: `45s`, `3m12s`, `2h`, `5d`.
pub fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10800 => format!("{}m", s / 60),
        10800..28800 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        28800..172800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The row of `podlab get pods` for a pod.
pub fn view(p: &Pod) -> PodView {
    let status = p.status.clone().unwrap_or_default();
    let cs = status.container_statuses.clone().unwrap_or_default();
    let total = p.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let ready = cs.iter().filter(|c| c.ready).count();
    let restarts: i32 = cs.iter().map(|c| c.restart_count).sum();
    let last =
        cs.iter().filter_map(|c| c.last_state.as_ref()?.terminated.as_ref()?.finished_at.clone()).max_by_key(|t| t.0);
    let restarts = match (restarts, last) {
        (n, Some(t)) if n > 0 => format!("{n} ({} ago)", age(since(&t))),
        (n, _) => n.to_string(),
    };
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    PodView {
        name: p.metadata.name.clone().unwrap_or_default(),
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        ready,
        total,
        status: display_status(p),
        restarts,
        age: p.metadata.creation_timestamp.as_ref().map(|t| age(since(t))).unwrap_or_default(),
        ip: status.pod_ip.clone().unwrap_or_else(|| "<none>".into()),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "<none>".into()),
        phase,
    }
}

/// kubectl's STATUS column, from the Pod object.
fn display_status(p: &Pod) -> String {
    let status = p.status.clone().unwrap_or_default();
    if p.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let inits = status.init_container_statuses.clone().unwrap_or_default();
    let n_inits = p.spec.as_ref().and_then(|s| s.init_containers.as_ref()).map(|v| v.len()).unwrap_or(0);
    for (i, c) in inits.iter().enumerate() {
        let st = c.state.clone().unwrap_or_default();
        if let Some(t) = &st.terminated {
            if t.exit_code == 0 {
                continue;
            }
            return format!("Init:{}", t.reason.clone().unwrap_or_else(|| format!("ExitCode:{}", t.exit_code)));
        }
        if let Some(w) = &st.waiting
            && let Some(r) = &w.reason
            && r != "PodInitializing"
            && r != "ContainerCreating"
        {
            return format!("Init:{r}");
        }
        return format!("Init:{i}/{n_inits}");
    }
    let mut reason = status.reason.clone().unwrap_or_else(|| status.phase.clone().unwrap_or_else(|| "Pending".into()));
    let mut running = false;
    for c in status.container_statuses.iter().flatten().rev() {
        let st = c.state.clone().unwrap_or_default();
        if let Some(w) = st.waiting.as_ref().and_then(|w| w.reason.clone()) {
            reason = w;
        } else if let Some(t) = &st.terminated {
            reason = t.reason.clone().unwrap_or_else(|| format!("ExitCode:{}", t.exit_code));
        } else if st.running.is_some() && c.ready {
            running = true;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    reason
}

fn list(c: &Client, ns: Option<&str>) -> anyhow::Result<Vec<Pod>> {
    let answer = c.get("/pods")?;
    let list: serde_json::Value = answer.json()?;
    let items: Vec<Pod> = serde_json::from_value(list["items"].clone())?;
    Ok(items.into_iter().filter(|p| ns.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns))).collect())
}

fn get_pod(c: &Client, ns: &str, name: &str) -> anyhow::Result<Pod> {
    let answer =
        c.get(&format!("/pods/{}/{}", podlab::node::client::encode(ns), podlab::node::client::encode(name)))?;
    if answer.status == 404 {
        bail!("pods {name:?} not found");
    }
    Ok(answer.json()?)
}

/// `podlab get pods`.
pub fn get(dirs: &StateDirs, args: GetArgs) -> anyhow::Result<i32> {
    let c = client(dirs);
    if super::svc::is_service_kind(&args.kind) {
        return super::svc::get_services(&c, &args);
    }
    if super::svc::is_endpoints_kind(&args.kind) {
        return super::svc::get_endpoints(&c, &args);
    }
    if !is_pod_kind(&args.kind) {
        bail!("the server doesn't have a resource type {:?} (podlab knows pods, services and endpoints)", args.kind);
    }
    let pods = match &args.name {
        Some(name) => vec![get_pod(&c, &args.namespace, name)?],
        None => list(&c, (!args.all_namespaces).then_some(args.namespace.as_str()))?,
    };
    match args.output {
        Some(Output::Json) => {
            if args.name.is_some() {
                println!("{}", serde_json::to_string_pretty(&pods[0])?);
            } else {
                let l = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": pods});
                println!("{}", serde_json::to_string_pretty(&l)?);
            }
            return Ok(0);
        }
        Some(Output::Yaml) => {
            if args.name.is_some() {
                print!("{}", serde_norway::to_string(&pods[0])?);
            } else {
                let l = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": pods});
                print!("{}", serde_norway::to_string(&l)?);
            }
            return Ok(0);
        }
        Some(Output::Name) => {
            for p in &pods {
                println!("pod/{}", p.metadata.name.clone().unwrap_or_default());
            }
            return Ok(0);
        }
        _ => {}
    }
    if pods.is_empty() {
        eprintln!("No resources found in {} namespace.", args.namespace);
        return Ok(0);
    }
    let wide = matches!(args.output, Some(Output::Wide));
    let mut rows = vec![];
    let mut header = vec![];
    if args.all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    if wide {
        header.extend(["IP", "NODE"]);
    }
    rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for p in &pods {
        let v = view(p);
        let mut row = vec![];
        if args.all_namespaces {
            row.push(v.namespace.clone());
        }
        row.extend([v.name, format!("{}/{}", v.ready, v.total), v.status, v.restarts, v.age]);
        if wide {
            row.extend([v.ip, v.node]);
        }
        rows.push(row);
    }
    print_table(&rows);
    Ok(0)
}

/// Columns padded to the widest cell plus three spaces, as kubectl prints them.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    let mut out = std::io::stdout().lock();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The container a command means: `-c`, else the pod's only (or first, with a note) container.
fn pick_container(p: &Pod, asked: Option<&str>) -> anyhow::Result<String> {
    let spec = p.spec.clone().unwrap_or_default();
    let names: Vec<String> =
        spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(|c| c.name.clone()).collect();
    match asked {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => bail!(
            "container {c} is not valid for pod {}: choose one of [{}]",
            p.metadata.name.clone().unwrap_or_default(),
            names.join(" ")
        ),
        None => {
            let first = spec.containers.first().map(|c| c.name.clone()).context("the pod has no containers")?;
            if spec.containers.len() > 1 {
                eprintln!(
                    "Defaulted container {first:?} out of: {}",
                    spec.containers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
            Ok(first)
        }
    }
}

/// `podlab logs`.
pub fn logs(dirs: &StateDirs, args: LogsArgs) -> anyhow::Result<i32> {
    let c = client(dirs);
    let pod = get_pod(&c, &args.namespace, &args.pod)?;
    let container = pick_container(&pod, args.container.as_deref())?;
    let mut q = format!("follow={}&previous={}&timestamps={}", args.follow, args.previous, args.timestamps);
    if let Some(n) = args.tail.filter(|n| *n >= 0) {
        q.push_str(&format!("&tailLines={n}"));
    }
    let path = format!(
        "/containerLogs/{}/{}/{}?{q}",
        podlab::node::client::encode(&args.namespace),
        podlab::node::client::encode(&args.pod),
        podlab::node::client::encode(&container)
    );
    let mut body = Vec::new();
    let mut stdout = std::io::stdout();
    let mut sink = Tee { ok: &mut stdout, err: &mut body, failed: false };
    let status = c.request("GET", &path, None, &mut sink)?;
    if status >= 300 {
        bail!("{}", String::from_utf8_lossy(&body).trim());
    }
    Ok(0)
}

/// Writes to stdout for a good answer; keeps the text of an error answer.
struct Tee<'a> {
    ok: &'a mut dyn Write,
    err: &'a mut Vec<u8>,
    failed: bool,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            self.err.extend_from_slice(buf);
        } else {
            self.ok.write_all(buf)?;
            self.err.extend_from_slice(&buf[..buf.len().min(4096usize.saturating_sub(self.err.len()))]);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.ok.flush()
    }
}

/// `podlab exec POD -- CMD`.
pub fn exec(dirs: &StateDirs, args: ExecArgs) -> anyhow::Result<i32> {
    let c = client(dirs);
    let pod = get_pod(&c, &args.namespace, &args.pod)?;
    let container = pick_container(&pod, args.container.as_deref())?;
    if args.stdin || args.tty {
        return super::podexec::interactive(dirs, &pod, &container, &args.command, args.tty);
    }
    let path = format!(
        "/exec/{}/{}/{}",
        podlab::node::client::encode(&args.namespace),
        podlab::node::client::encode(&args.pod),
        podlab::node::client::encode(&container)
    );
    let answer = c.post_json(&path, &serde_json::json!({ "command": args.command }))?;
    let r: podlab::node::api::ExecResponse = answer.json()?;
    print!("{}", r.output);
    let _ = std::io::stdout().flush();
    Ok(r.exit_code)
}

/// `podlab delete -f FILE | pod NAME`.
pub fn delete(dirs: &StateDirs, args: DeleteArgs, explain: bool) -> anyhow::Result<i32> {
    let dir = manifests_dir(dirs);
    let mut targets: Vec<(String, String, String)> = vec![];
    if let Some(f) = &args.file {
        for o in manifest::load(f)? {
            targets.push((o.kind().to_lowercase(), o.namespace().to_string(), o.name().to_string()));
        }
    } else {
        let file_kind = |k: &str| -> Option<&'static str> {
            Some(match k {
                k if is_pod_kind(k) => "pod",
                k if super::svc::is_service_kind(k) => "service",
                k if super::svc::is_endpoints_kind(k) => "endpoints",
                "configmap" | "configmaps" | "cm" => "configmap",
                "secret" | "secrets" => "secret",
                _ => return None,
            })
        };
        match args.words.as_slice() {
            [kind, name] if file_kind(kind).is_some() => {
                targets.push((file_kind(kind).unwrap_or_default().into(), args.namespace.clone(), name.clone()))
            }
            [kind, _] => bail!(
                "the server doesn't have a resource type {kind:?} (podlab deletes pods, services, endpoints, configmaps and secrets)"
            ),
            _ => bail!("say what to delete: -f FILE, or pod NAME"),
        }
    }
    let c = client(dirs);
    // With --explain, follow the supervisors' explain.log from here on: the teardown's commands.
    let mut tails: Vec<ExplainTail> = vec![];
    if explain {
        for (_, ns, name) in targets.iter().filter(|t| t.0 == "pod") {
            if let Ok(pod) = get_pod(&c, ns, name)
                && let Some(uid) = pod.metadata.uid.as_deref()
            {
                tails.push(ExplainTail::new(dirs, uid, true));
            }
        }
    }
    let mut missing = false;
    let mut pods = vec![];
    for (kind, ns, name) in &targets {
        let path = dir.join(format!("{kind}_{ns}_{name}.yaml"));
        match std::fs::remove_file(&path) {
            Ok(()) => {
                println!("{kind} \"{name}\" deleted");
                if kind == "pod" {
                    pods.push((ns.clone(), name.clone()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("Error from server (NotFound): {kind}s \"{name}\" not found");
                missing = true;
            }
            Err(e) => bail!("remove {}: {e}", path.display()),
        }
    }
    if !pods.is_empty() && c.alive() {
        let _ = c.post_json("/sync", &serde_json::json!({}));
        if args.wait {
            let deadline = Instant::now() + Duration::from_secs(120);
            for (ns, name) in &pods {
                while c.get(&format!("/pods/{ns}/{name}")).is_ok_and(|a| a.status == 200) {
                    tails.iter_mut().for_each(ExplainTail::poll);
                    if Instant::now() > deadline {
                        bail!("pod {name} is still being deleted after 120 s");
                    }
                    std::thread::sleep(POLL);
                }
            }
            tails.iter_mut().for_each(ExplainTail::poll);
        }
    }
    Ok(if missing { 1 } else { 0 })
}

/// `podlab describe pod NAME`.
pub fn describe(dirs: &StateDirs, args: PodRef) -> anyhow::Result<i32> {
    let c = client(dirs);
    let name = args.name()?;
    let pod = get_pod(&c, &args.namespace, name)?;
    let events: Vec<podlab::pod::status::Event> =
        c.get(&format!("/pods/{}/{}/events", args.namespace, name))?.json().unwrap_or_default();
    print!("{}", super::describe::pod(&pod, &events));
    Ok(0)
}

/// `podlab inspect pod NAME`.
pub fn inspect(dirs: &StateDirs, args: PodRef) -> anyhow::Result<i32> {
    let c = client(dirs);
    let pod = get_pod(&c, &args.namespace, args.name()?)?;
    print!("{}", super::inspect::run(dirs, &pod)?);
    Ok(0)
}
