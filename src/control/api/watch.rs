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

use super::crud::{Api, ListOptions, from_kv, matches};
use super::path::Target;
use super::status::ApiError;
use crate::control::store::{Event, Revision, StoreError};

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
    if let Some((replay, live)) = api.watches.subscribe(&super::path::collection_prefix(r), from).await {
        follow_cache(t, req, &shape_cached(render), replay, live, from, first, tx).await;
        return;
    }
    let mut events = match api.store.watch(&t.key(), from).await {
        Ok(w) => w,
        Err(e) => {
            let err = match e {
                StoreError::Compacted { requested, .. } => {
                    ApiError::new(410, "Expired", format!("too old resource version: {requested}"))
                }
                other => ApiError::from_store(other, r.plural, ""),
            };
            let _ = send(tx, "ERROR", err.status()).await;
            return;
        }
    };
    let mut last = from;
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(StoreError::Compacted { requested, .. }) => {
                        let e = ApiError::new(410, "Expired", format!("too old resource version: {requested}"));
                        let _ = send(tx, "ERROR", e.status()).await;
                        return;
                    }
                    Err(_) => return,
                };
                last = ev.revision();
                let Some((ty, obj)) = translate(r, &req.list, &ev) else { continue };
                if !send(tx, ty, shape(&obj, first)).await {
                    return;
                }
                first = false;
            }
            _ = tick.tick(), if req.bookmarks => {
                if !send(tx, "BOOKMARK", bookmark(r, last, false)).await {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

/// How a cached change goes out: its shared JSON text, or a Table rendered for this watcher.
type CachedShape = Box<dyn Fn(&Value, &str, bool) -> String + Send + Sync>;

fn shape_cached(render: Option<Render>) -> CachedShape {
    match render {
        Some(f) => Box::new(move |v: &Value, _text: &str, first: bool| f(v, first).to_string()),
        None => Box::new(|_v: &Value, text: &str, _first: bool| text.to_string()),
    }
}

/// Serve a watch from the watch cache: the window's changes after `from`, then the live ones.
/// A watcher that falls too far behind is ended (the client lists and watches again).
#[allow(clippy::too_many_arguments)]
async fn follow_cache(
    t: &Target,
    req: &WatchRequest,
    shape: &CachedShape,
    replay: Vec<Arc<super::watchcache::Change>>,
    mut live: tokio::sync::broadcast::Receiver<Arc<super::watchcache::Change>>,
    from: Revision,
    mut first: bool,
    tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
) {
    let r = t.resource;
    let scope = t.key();
    let mut last = from;
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.tick().await;
    let mut pending = replay.into_iter();
    loop {
        let change = match pending.next() {
            Some(c) => c,
            None => tokio::select! {
                c = live.recv() => match c {
                    Ok(c) => c,
                    Err(_) => return,
                },
                _ = tick.tick(), if req.bookmarks => {
                    if !send(tx, "BOOKMARK", bookmark(r, last, false)).await {
                        return;
                    }
                    continue;
                }
                _ = tx.closed() => return,
            },
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
        let line = format!("{{\"type\":\"{ty}\",\"object\":{}}}\n", shape(value, text, first));
        if tx.send(Ok(Bytes::from(line))).await.is_err() {
            return;
        }
        first = false;
    }
}

/// The event type a cached change is for this watcher, and whether it shows the deleted object.
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

/// A store change as a watch event of this request (None: the client does not see it).
fn translate(r: &super::resources::Resource, opts: &ListOptions, ev: &Event) -> Option<(&'static str, Value)> {
    match ev {
        Event::Put { kv, prev } => {
            let now = from_kv(kv).ok()?;
            let is = matches(r, opts, &now);
            let was = prev.as_ref().and_then(|p| from_kv(p).ok()).map(|p| matches(r, opts, &p));
            match (was, is) {
                (None, true) | (Some(false), true) => Some(("ADDED", now)),
                (Some(true), true) => Some(("MODIFIED", now)),
                (Some(true), false) => Some(("DELETED", now)),
                _ => None,
            }
        }
        Event::Delete { prev, revision } => {
            let mut old = from_kv(prev).ok()?;
            if !matches(r, opts, &old) {
                return None;
            }
            old["metadata"]["resourceVersion"] = json!(revision.to_string());
            Some(("DELETED", old))
        }
    }
}
