//! The watch cache: one store watch per resource, each change decoded and serialized once.
//!
//! With a watch per client on the store, a hundred `kubectl get -w` cost a hundred decodings
//! of every change. kube-apiserver keeps one watch per resource on etcd instead, and a window
//! of recent changes in memory: a new watch from a recent resourceVersion is served from the
//! window, then follows the live changes, each one turned into JSON once for everyone. A watch
//! from further back than the window falls back to a watch of its own on the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::control::store::{Event, Revision, SharedStore};

/// How many recent changes each resource keeps for new watches.
const WINDOW: usize = 2000;
/// How far a watcher may fall behind the live changes before it is ended (it then re-lists).
const LAG: usize = 4096;

/// One change of one object, decoded once.
#[derive(Debug)]
pub struct Change {
    pub revision: Revision,
    pub key: String,
    /// The object after the change (None for a deletion), resourceVersion set.
    pub now: Option<Value>,
    /// The object before it (None for a creation).
    pub prev: Option<Value>,
    now_text: OnceLock<String>,
    gone_text: OnceLock<String>,
}

impl Change {
    pub(super) fn from_event(ev: &Event) -> Option<Change> {
        let parse = |kv: &crate::control::store::KeyValue| super::crud::from_kv(kv).ok();
        let (key, now, prev) = match ev {
            Event::Put { kv, prev } => (kv.key.clone(), Some(parse(kv)?), prev.as_ref().and_then(parse)),
            Event::Delete { prev, .. } => (prev.key.clone(), None, Some(parse(prev)?)),
        };
        Some(Change { revision: ev.revision(), key, now, prev, now_text: OnceLock::new(), gone_text: OnceLock::new() })
    }

    /// The object after the change, as JSON text (made once, for every watcher).
    pub fn now_text(&self) -> &str {
        self.now_text.get_or_init(|| self.now.as_ref().map(Value::to_string).unwrap_or_default())
    }

    /// The deleted object with the deletion's revision as its resourceVersion, as JSON text.
    pub fn gone_text(&self) -> &str {
        self.gone_text.get_or_init(|| {
            let mut old = self.prev.clone().unwrap_or(Value::Null);
            old["metadata"]["resourceVersion"] = json!(self.revision.to_string());
            old.to_string()
        })
    }
}

/// One resource's store watch, its window and its live subscribers.
struct Hub {
    state: Mutex<Window>,
    live: broadcast::Sender<Arc<Change>>,
}

struct Window {
    /// The hub knows every change after this revision: where it started, then, once the window
    /// is full, the last change it let go.
    floor: Revision,
    recent: VecDeque<Arc<Change>>,
    alive: bool,
}

/// The hubs, one per resource prefix (`/registry/core/pods/`), made on first use.
pub struct WatchCache {
    store: SharedStore,
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
}

/// What a watcher gets: the changes after its revision that the window holds, then the rest.
pub type Subscription = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

impl WatchCache {
    pub fn new(store: SharedStore) -> WatchCache {
        WatchCache { store, hubs: Mutex::new(HashMap::new()) }
    }

    /// Follow `prefix` from after revision `after`; None when the window does not reach back
    /// that far (the caller watches the store itself).
    pub async fn subscribe(&self, prefix: &str, after: Revision) -> Option<Subscription> {
        let hub = self.hub(prefix).await?;
        let st = hub.state.lock().ok()?;
        if !st.alive {
            return None;
        }
        if after < st.floor {
            return None;
        }
        let replay: Vec<Arc<Change>> = st.recent.iter().filter(|c| c.revision > after).cloned().collect();
        // Subscribed under the lock the hub publishes under: nothing falls between the two.
        Some((replay, hub.live.subscribe()))
    }

    async fn hub(&self, prefix: &str) -> Option<Arc<Hub>> {
        if let Some(h) = self.hubs.lock().ok()?.get(prefix).filter(|h| h.state.lock().is_ok_and(|s| s.alive)) {
            return Some(h.clone());
        }
        let start = self.store.revision().await.ok()?;
        let mut events = self.store.watch(prefix, start).await.ok()?;
        let (live, _) = broadcast::channel(LAG);
        let hub =
            Arc::new(Hub { state: Mutex::new(Window { floor: start, recent: VecDeque::new(), alive: true }), live });
        {
            let mut hubs = self.hubs.lock().ok()?;
            if let Some(h) = hubs.get(prefix).filter(|h| h.state.lock().is_ok_and(|s| s.alive)) {
                // Another watcher made one meanwhile: use it (ours is dropped with its watch).
                return Some(h.clone());
            }
            hubs.insert(prefix.to_string(), hub.clone());
        }
        let feed = hub.clone();
        tokio::spawn(async move {
            while let Some(Ok(ev)) = events.recv().await {
                let Some(change) = Change::from_event(&ev).map(Arc::new) else { continue };
                let Ok(mut st) = feed.state.lock() else { break };
                st.recent.push_back(change.clone());
                if st.recent.len() > WINDOW {
                    if let Some(gone) = st.recent.pop_front() {
                        st.floor = gone.revision;
                    }
                }
                let _ = feed.live.send(change);
            }
            // The store ended the watch: the next watcher starts a new hub.
            if let Ok(mut st) = feed.state.lock() {
                st.alive = false;
            }
        });
        Some(hub)
    }
}
