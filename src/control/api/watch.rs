//! Watch: a GET that never ends, one JSON event per line as objects change.
//!
//! `?watch=1&resourceVersion=N` streams every change after revision N: `{"type":"ADDED",
//! "object":{...}}`, MODIFIED, DELETED. Without a resourceVersion the server first sends the
//! current objects as ADDED. Selectors apply to changes too: a pod whose label stops matching
//! arrives as DELETED. History older than the store keeps gives an ERROR event with 410 Gone,
//! and the client lists again. BOOKMARK events carry only a newer resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::crud::{Api, ListOptions, matches};
use super::path::Target;
use super::status::ApiError;
use super::watchcache::Change;
use crate::control::store::{Revision, StoreError};

/// What a watch request asks for.
#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    pub list: ListOptions,
    /// Start after this revision; None (or "0"): send the current objects first.
    pub resource_version: Option<Revision>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    /// `sendInitialEvents=true`: the current objects, then a bookmark marking their end.
    pub send_initial: bool,
}

/// How each event's object is shaped (plain, or a one-row Table for `kubectl get -w`).
pub type Render = Arc<dyn Fn(&Value, bool) -> Value + Send + Sync>;

/// Start the watch; the response streams until the client goes, the timeout, or the store ends it.
pub async fn watch(api: Arc<Api>, t: Target, req: WatchRequest, render: Option<Render>) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        let deadline = req.timeout.map(|d| tokio::time::Instant::now() + d);
        let work = run(&api, &t, &req, render, &tx);
        match deadline {
            Some(d) => {
                let _ = tokio::time::timeout_at(d, work).await;
            }
            None => work.await,
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }));
    Response::builder()
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn send(tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>, ty: &str, object: Value) -> bool {
    let mut line = json!({"type": ty, "object": object}).to_string();
    line.push('\n');
    tx.send(Ok(Bytes::from(line))).await.is_ok()
}

async fn run(
    api: &Arc<Api>,
    t: &Target,
    req: &WatchRequest,
    render: Option<Render>,
    tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    let r = t.resource;
    let shape = |v: &Value, first: bool| match &render {
        Some(f) => f(v, first),
        None => v.clone(),
    };
    let mut first = true;
    let initial = req.send_initial || req.resource_version.is_none_or(|rv| rv == 0);
    let mut from = req.resource_version.unwrap_or(0);
    if initial {
        let page = match api.list(t, &ListOptions { limit: 0, continue_token: None, ..req.list.clone() }).await {
            Ok(p) => p,
            Err(e) => {
                let _ = send(tx, "ERROR", e.status()).await;
                return;
            }
        };
        from = page.revision;
        for item in page.items {
            if !send(tx, "ADDED", shape(&item, first)).await {
                return;
            }
            first = false;
        }
        if req.send_initial && req.bookmarks {
            let mark = bookmark(r, from, true);
            if !send(tx, "BOOKMARK", mark).await {
                return;
            }
        }
    }
    let source = match api.watches.subscribe(&super::path::collection_prefix(r), from).await {
        Some((replay, live)) => Source::Cache(replay.into_iter(), live),
        None => match api.store.watch(&t.key(), from).await {
            Ok(w) => Source::Store(w),
            Err(e) => {
                let _ = send(tx, "ERROR", ApiError::from_store(e, r.plural, "").status()).await;
                return;
            }
        },
    };
    follow(t, req, &render, source, from, first, tx).await;
}

/// Where a watch's changes come from: the watch cache (the changes its window holds after the
/// watch's revision, then the live ones), or a store watch of its own for a revision further
/// back than the window.
enum Source {
    Cache(std::vec::IntoIter<Arc<Change>>, tokio::sync::broadcast::Receiver<Arc<Change>>),
    Store(crate::control::store::Watch),
}

impl Source {
    /// The next change; an error ends the watch with an ERROR event; None ends it quietly (a
    /// watcher too far behind, or the store going away: the client lists and watches again).
    async fn next(&mut self) -> Option<Result<Arc<Change>, ApiError>> {
        match self {
            Source::Cache(replay, live) => match replay.next() {
                Some(c) => Some(Ok(c)),
                None => live.recv().await.ok().map(Ok),
            },
            Source::Store(events) => loop {
                match events.recv().await? {
                    Ok(ev) => {
                        if let Some(c) = Change::from_event(&ev) {
                            return Some(Ok(Arc::new(c)));
                        }
                    }
                    Err(e @ StoreError::Compacted { .. }) => return Some(Err(ApiError::from_store(e, "", ""))),
                    Err(_) => return None,
                }
            },
        }
    }
}

/// Send the changes after `from` that this watch sees, with bookmarks when asked for.
async fn follow(
    t: &Target,
    req: &WatchRequest,
    render: &Option<Render>,
    mut source: Source,
    from: Revision,
    mut first: bool,
    tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    let r = t.resource;
    let scope = t.key();
    let mut last = from;
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    loop {
        let change = tokio::select! {
            c = source.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    let _ = send(tx, "ERROR", e.status()).await;
                    return;
                }
                None => return,
            },
            _ = tick.tick(), if req.bookmarks => {
                if !send(tx, "BOOKMARK", bookmark(r, last, false)).await {
                    return;
                }
                continue;
            }
            _ = tx.closed() => return,
        };
        if change.revision <= last || !change.key.starts_with(&scope) {
            continue;
        }
        last = change.revision;
        let Some((ty, deleted_view)) = classify(r, &req.list, &change) else { continue };
        let (value, text) = match (deleted_view, &change.now) {
            (false, Some(now)) => (now, change.now_text()),
            _ => match &change.prev {
                Some(prev) => (prev, change.gone_text()),
                None => continue,
            },
        };
        // The change's JSON is shared by every watcher; a Table is this watcher's own.
        let object = match render {
            Some(f) => f(value, first).to_string(),
            None => text.to_string(),
        };
        let line = format!("{{\"type\":\"{ty}\",\"object\":{object}}}\n");
        if tx.send(Ok(Bytes::from(line))).await.is_err() {
            return;
        }
        first = false;
    }
}

/// The event type a change is for this watcher, and whether it shows the deleted object.
fn classify(
    r: &super::resources::Resource,
    opts: &ListOptions,
    c: &super::watchcache::Change,
) -> Option<(&'static str, bool)> {
    let was = c.prev.as_ref().map(|p| matches(r, opts, p));
    match &c.now {
        Some(now) => match (was, matches(r, opts, now)) {
            (None | Some(false), true) => Some(("ADDED", false)),
            (Some(true), true) => Some(("MODIFIED", false)),
            (Some(true), false) => Some(("DELETED", false)),
            _ => None,
        },
        None => was.filter(|w| *w).map(|_| ("DELETED", true)),
    }
}

fn bookmark(r: &super::resources::Resource, rev: Revision, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": meta})
}
