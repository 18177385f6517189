//! The kubelet API of the node agent, on a Unix socket (`run/node/kubelet.sock`).
//!
//! The real kubelet serves `/pods`, `/containerLogs/NS/POD/CONTAINER` and `/exec/...` on port
//! 10250; the API server calls them for `kubectl logs` and `kubectl exec`. podlab's agent
//! serves the same paths (exec takes its command as JSON instead of a SPDY stream) to the local
//! `podlab` command, over a socket that only root can open.

use std::io::Write;
use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::NodePaths;
use super::pods::{self, NodePod};
use super::services::SharedView;
use crate::pod::status::State as CState;

#[derive(Clone)]
struct Ctx {
    paths: NodePaths,
    poke: std::sync::mpsc::SyncSender<()>,
    services: SharedView,
}

/// Serve the API on the agent's socket until the process ends; `services` is what the
/// service proxy serves (`/services`, `/endpoints`).
pub async fn serve(
    paths: NodePaths,
    poke: std::sync::mpsc::SyncSender<()>,
    services: SharedView,
) -> std::io::Result<()> {
    let socket = paths.socket();
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(list_pods))
        .route("/pods/{ns}/{name}", get(get_pod))
        .route("/pods/{ns}/{name}/events", get(events))
        .route("/containerLogs/{ns}/{name}/{container}", get(logs))
        .route("/exec/{ns}/{name}/{container}", post(exec))
        .route("/services", get(list_services))
        .route("/endpoints", get(list_endpoints))
        .route("/sync", post(sync))
        .with_state(Ctx { paths, poke, services });
    axum::serve(listener, app).await
}

fn not_found(ns: &str, name: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("pods \"{name}\" not found in namespace {ns:?}\n")).into_response()
}

async fn list_pods(State(ctx): State<Ctx>) -> Response {
    let items: Vec<k8s_openapi::api::core::v1::Pod> =
        tokio::task::spawn_blocking(move || pods::list(&ctx.paths).into_iter().map(|p| p.pod).collect())
            .await
            .unwrap_or_default();
    Json(serde_json::json!({ "kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items })).into_response()
}

async fn list_services(State(ctx): State<Ctx>) -> Response {
    let view = ctx.services.read().map(|v| v.clone()).unwrap_or_default();
    Json(serde_json::json!({ "kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": view.services }))
        .into_response()
}

async fn list_endpoints(State(ctx): State<Ctx>) -> Response {
    let view = ctx.services.read().map(|v| v.clone()).unwrap_or_default();
    Json(serde_json::json!({ "kind": "EndpointsList", "apiVersion": "v1", "metadata": {}, "items": view.endpoints }))
        .into_response()
}

async fn find(ctx: &Ctx, ns: &str, name: &str) -> Option<NodePod> {
    let (paths, ns, name) = (ctx.paths.clone(), ns.to_string(), name.to_string());
    tokio::task::spawn_blocking(move || pods::get(&paths, &ns, &name)).await.ok().flatten()
}

async fn get_pod(State(ctx): State<Ctx>, UrlPath((ns, name)): UrlPath<(String, String)>) -> Response {
    match find(&ctx, &ns, &name).await {
        Some(p) => Json(p.pod).into_response(),
        None => not_found(&ns, &name),
    }
}

async fn events(State(ctx): State<Ctx>, UrlPath((ns, name)): UrlPath<(String, String)>) -> Response {
    match find(&ctx, &ns, &name).await {
        Some(p) => Json(crate::pod::status::events(&p.dir)).into_response(),
        None => not_found(&ns, &name),
    }
}

async fn sync(State(ctx): State<Ctx>) -> &'static str {
    let _ = ctx.poke.try_send(());
    "ok"
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    previous: bool,
    tail_lines: Option<usize>,
    #[serde(default)]
    timestamps: bool,
}

/// The log file of a container instance: the current one, or with `previous` the one before.
fn log_file(p: &NodePod, container: &str, previous: bool) -> Result<PathBuf, String> {
    let rec = p.record.as_ref().ok_or("the pod has not started yet")?;
    let c = rec.containers.iter().chain(rec.init_containers.iter()).find(|c| c.name == container).ok_or_else(|| {
        format!("container {container:?} is not valid for pod {:?}", p.pod.metadata.name.clone().unwrap_or_default())
    })?;
    let logs = p.dir.join("logs");
    let current = crate::pod::logs::log_path(&logs, container, c.restart_count);
    // A container waiting to restart has no new log yet: its latest is the one before.
    let latest = if current.exists() || c.restart_count == 0 { c.restart_count } else { c.restart_count - 1 };
    let n = if previous {
        latest.checked_sub(1).ok_or_else(|| format!("previous terminated container {container:?} not found"))?
    } else {
        latest
    };
    let path = crate::pod::logs::log_path(&logs, container, n);
    if !path.exists() {
        return Err(format!(
            "container {container:?} in pod {:?} is waiting to start",
            p.pod.metadata.name.clone().unwrap_or_default()
        ));
    }
    Ok(path)
}

async fn logs(
    State(ctx): State<Ctx>,
    UrlPath((ns, name, container)): UrlPath<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(p) = find(&ctx, &ns, &name).await else { return not_found(&ns, &name) };
    let path = match log_file(&p, &container, q.previous) {
        Ok(path) => path,
        Err(m) => return (StatusCode::BAD_REQUEST, format!("{m}\n")).into_response(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let (paths, dir) = (ctx.paths.clone(), p.dir.clone());
    tokio::task::spawn_blocking(move || {
        let opts = crate::pod::logs::ReadOptions {
            tail: q.tail_lines,
            follow: q.follow && !q.previous,
            timestamps: q.timestamps,
            ..Default::default()
        };
        let mut out = ChannelWriter(tx.clone());
        // Follow while this instance runs and the client is still there.
        let still_running = || {
            !tx.is_closed()
                && crate::pod::status::PodRecord::load(&dir).ok().is_some_and(|r| {
                    r.containers.iter().chain(r.init_containers.iter()).any(|c| {
                        c.name == container
                            && matches!(c.state, CState::Running { .. })
                            && crate::pod::logs::log_path(&dir.join("logs"), &container, c.restart_count) == path
                    })
                })
        };
        let _ = paths;
        if let Err(e) = crate::pod::logs::read(&path, &opts, &mut out, &still_running) {
            let _ = out.write_all(format!("podlab: {e}\n").as_bytes());
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// `std::io::Write` into a channel of chunks (a blocking thread feeding a streamed response).
struct ChannelWriter(tokio::sync::mpsc::Sender<Vec<u8>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(buf.to_vec()).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `POST /exec/...` takes.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct ExecRequest {
    pub command: Vec<String>,
}

/// What it answers.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResponse {
    pub exit_code: i32,
    pub output: String,
}

async fn exec(
    State(ctx): State<Ctx>,
    UrlPath((ns, name, container)): UrlPath<(String, String, String)>,
    Json(req): Json<ExecRequest>,
) -> Response {
    let Some(p) = find(&ctx, &ns, &name).await else { return not_found(&ns, &name) };
    let Some(id) = running_container(&p, &container) else {
        return (StatusCode::BAD_REQUEST, format!("container {container:?} is not running\n")).into_response();
    };
    let root = ctx.paths.runtime_root();
    let result = tokio::task::spawn_blocking(move || {
        let rt = crate::runtime::container::Runtime { root, systemd_cgroup: false, explain: false };
        crate::pod::supervisor::exec_capture(&rt, &id, &req.command, &Default::default())
    })
    .await;
    match result {
        Ok(Ok((exit_code, output))) => Json(ExecResponse { exit_code, output }).into_response(),
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The runtime id of a running container of the pod.
pub fn running_container(p: &NodePod, container: &str) -> Option<String> {
    let rec = p.record.as_ref()?;
    rec.containers
        .iter()
        .chain(rec.init_containers.iter())
        .find(|c| c.name == container && c.pid().is_some())
        .map(|c| c.runtime_id.clone())
}
