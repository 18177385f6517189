//! The store: the cluster's desired and observed state, one versioned key-value map.
//!
//! Kubernetes keeps every object as a value under a key (`/registry/pods/default/web`) in a
//! store whose every change gets the next number of one cluster-wide counter, the *revision*.
//! An object's `metadata.resourceVersion` is the revision of its last change; an update names
//! the revision it read, and loses (409 Conflict) if someone changed the object since. A watch
//! replays every change after a revision, then follows new ones, until old history is
//! compacted away (410 Gone). SQLite (the default, like k3s's kine) and etcd implement it.

pub mod etcd;
pub mod sqlite;

use std::sync::Arc;

/// One cluster-wide change counter: the revision of a change, and an object's resourceVersion.
pub type Revision = i64;

/// A key, its value (an object as JSON) and the revisions that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: Revision,
    /// The revision of the last change of the key (the object's resourceVersion).
    pub mod_revision: Revision,
}

/// A change seen by a watch, in revision order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Created (`prev` None) or updated (`prev` the value before); `kv.mod_revision` is the
    /// change's revision.
    Put { kv: KeyValue, prev: Option<KeyValue> },
    /// Deleted: the last value, and the revision of the deletion.
    Delete { prev: KeyValue, revision: Revision },
}

impl Event {
    /// The revision of this change.
    pub fn revision(&self) -> Revision {
        match self {
            Event::Put { kv, .. } => kv.mod_revision,
            Event::Delete { revision, .. } => *revision,
        }
    }
}

/// One page of a list: the values, the store's revision the page was read at, and whether
/// more keys follow (list again with `start_after` the last key of this page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
    pub more: bool,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} exists already")]
    AlreadyExists(String),
    /// The key changed since the revision the caller read (optimistic concurrency).
    #[error("{key} was changed: it is at revision {current}, not {expected}")]
    Conflict { key: String, expected: Revision, current: Revision },
    /// Watching from a revision older than the oldest one kept.
    #[error("revision {requested} is compacted (the oldest kept is {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    /// The backend failed (disk, connection, corrupt data): its message.
    #[error("store: {0}")]
    Backend(String),
}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// The changes a watch delivers, in revision order. The sender side closes (the channel ends)
/// when the store shuts down or the watcher fell too far behind; a watcher then lists again.
pub type Watch = tokio::sync::mpsc::Receiver<StoreResult<Event>>;

/// A versioned key-value store with compare-and-swap and watches (see the module comment).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The value of `key`, if there is one.
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;

    /// Keys starting with `prefix` in key order, after `start_after` (exclusive) when given, at
    /// most `limit` of them (0: all).
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> StoreResult<Page>;

    /// Create `key`; AlreadyExists if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<Revision>;

    /// Replace the value of `key` if its mod_revision is still `expected`; Conflict if not,
    /// NotFound if the key is gone. Returns the new revision.
    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> StoreResult<Revision>;

    /// Delete `key` (only if its mod_revision is `expected`, when given). Returns the revision
    /// of the deletion and the last value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> StoreResult<(Revision, KeyValue)>;

    /// The store's current revision (the last change's).
    async fn revision(&self) -> StoreResult<Revision>;

    /// Every change of keys under `prefix` with a revision greater than `after`, then the
    /// changes that follow as they happen. Compacted if `after` is older than the history kept.
    async fn watch(&self, prefix: &str, after: Revision) -> StoreResult<Watch>;

    /// Forget the history before `revision` (the values current at it are kept).
    async fn compact(&self, revision: Revision) -> StoreResult<()>;
}

/// A store shared by the server's tasks.
pub type SharedStore = Arc<dyn Store>;
