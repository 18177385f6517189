//! The etcd store: the same versioned map kept by etcd v3, the store of real clusters.
//!
//! etcd is a key-value store replicated with Raft: its members agree on every change, so the
//! data outlives the loss of a minority of them. Its revisions, compare-and-swap transactions,
//! watches and compaction are what the Store trait names, so this is a thin translation: our
//! revisions are etcd's, and every key sits under a prefix so two servers can share one etcd.
//! Look at it with `ETCDCTL_API=3 etcdctl get --prefix /podlab/registry/pods/`.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions, WatchStream,
};
use tokio::sync::mpsc;

use super::{Event, KeyValue, Page, Revision, Store, StoreError, StoreResult, Watch};

/// Live events a watcher may fall behind by before its channel is closed (it then lists again).
pub const WATCH_BUFFER: usize = 1000;
/// How long one request may take before the store gives up on etcd.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The store in etcd; see the module comment.
pub struct EtcdStore {
    client: Client,
    prefix: String,
    endpoints: String,
    /// Dropped with the store: its watches end then, as the SQLite store's do.
    open: tokio::sync::watch::Sender<()>,
}

/// The smallest byte string greater than every one starting with `prefix` (etcd's range end
/// for a prefix; `\0` means "to the end of the key space").
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether etcd said the revision asked for is compacted away.
fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted"))
}

impl EtcdStore {
    /// Connect to the etcd members at `endpoints` (`http://127.0.0.1:2379`); every key is kept
    /// under `prefix` (`/podlab`). Fails if no member answers.
    pub async fn connect(endpoints: &[String], prefix: &str) -> StoreResult<EtcdStore> {
        let listed = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Backend(format!("cannot connect to etcd at {listed}: {e}")))?;
        let store = EtcdStore {
            client,
            prefix: prefix.to_string(),
            endpoints: listed.clone(),
            open: tokio::sync::watch::Sender::new(()),
        };
        store.revision().await.map_err(|e| {
            StoreError::Backend(format!("etcd at {listed} does not answer: {e} (is etcd running? try: etcdctl --endpoints {listed} endpoint health)"))
        })?;
        Ok(store)
    }

    /// The prefix every key is stored under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    /// One request to etcd, with a time limit, its error saying `what` failed.
    async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(StoreError::Backend(format!("{what}: etcd at {}: {e}", self.endpoints))),
            Err(_) => Err(StoreError::Backend(format!(
                "{what}: etcd at {} did not answer within {} s (is it running and healthy?)",
                self.endpoints,
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn txn(&self, what: &str, txn: Txn) -> StoreResult<TxnResponse> {
        let mut kv = self.client.kv_client();
        self.call(what, kv.txn(txn)).await
    }

    /// A key's newest value read back by a transaction's `or_else` get.
    fn read_back(&self, answer: &TxnResponse) -> StoreResult<Option<KeyValue>> {
        match answer.op_responses().first() {
            Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| self.kv(kv)).transpose(),
            _ => Ok(None),
        }
    }

    /// An etcd key-value as ours: the key without our prefix.
    fn kv(&self, kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
        kv_without_prefix(&self.prefix, kv)
    }

    /// The revision etcd compacted at, learnt from a watch that starts at `before` (older).
    async fn compacted_at(&self, prefix: &[u8], before: Revision) -> Revision {
        let mut watch = self.client.watch_client();
        let options = WatchOptions::new().with_range(prefix_end(prefix)).with_start_revision(before);
        let probe = async {
            let mut stream = watch.watch(prefix.to_vec(), Some(options)).await.ok()?;
            while let Ok(Some(answer)) = stream.message().await {
                if answer.compact_revision() > 0 {
                    return Some(answer.compact_revision());
                }
            }
            None
        };
        tokio::time::timeout(REQUEST_TIMEOUT, probe).await.ok().flatten().unwrap_or(before + 1)
    }
}

/// Carry one etcd watch into a watch channel. What etcd had before the watch began (up to
/// `replay_until`) is sent waiting for room; later events must find room at once, else the
/// watcher is too slow and its channel is closed.
async fn forward(
    store_prefix: String,
    mut stream: WatchStream,
    tx: mpsc::Sender<StoreResult<Event>>,
    mut store_open: tokio::sync::watch::Receiver<()>,
    after: Revision,
    replay_until: Revision,
) {
    loop {
        let answer = tokio::select! {
            _ = tx.closed() => return,
            _ = store_open.changed() => return,
            answer = stream.message() => answer,
        };
        let answer = match answer {
            Ok(Some(answer)) => answer,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.try_send(Err(StoreError::Backend(format!("the etcd watch failed: {e}"))));
                return;
            }
        };
        if answer.compact_revision() > 0 {
            let _ = tx.try_send(Err(StoreError::Compacted { requested: after, compacted: answer.compact_revision() }));
            return;
        }
        if answer.canceled() {
            let reason = answer.cancel_reason();
            let _ = tx.try_send(Err(StoreError::Backend(format!("etcd cancelled the watch: {reason}"))));
            return;
        }
        for event in answer.events() {
            let event = translate(&store_prefix, event);
            let sent = match &event {
                Ok(e) if e.revision() <= replay_until => tx.send(event).await.is_ok(),
                _ => tx.try_send(event).is_ok(),
            };
            if !sent {
                return;
            }
        }
    }
}

/// An etcd watch event as ours.
fn translate(prefix: &str, event: &etcd_client::Event) -> StoreResult<Event> {
    let kv = event.kv().ok_or_else(|| StoreError::Backend("etcd sent a watch event without a key".into()))?;
    let kv = kv_without_prefix(prefix, kv)?;
    let prev = event.prev_kv().map(|p| kv_without_prefix(prefix, p)).transpose()?;
    Ok(match event.event_type() {
        EventType::Put => {
            // etcd has no previous value for a creation; never pass one on.
            let prev = if kv.create_revision == kv.mod_revision { None } else { prev };
            Event::Put { kv, prev }
        }
        EventType::Delete => {
            let revision = kv.mod_revision;
            // etcd leaves out the old value only if it could not read it any more.
            let prev = prev.unwrap_or(KeyValue { value: Vec::new(), create_revision: 0, mod_revision: 0, ..kv });
            Event::Delete { prev, revision }
        }
    })
}

/// An etcd key-value as ours: the key without the store's prefix.
fn kv_without_prefix(prefix: &str, kv: &etcd_client::KeyValue) -> StoreResult<KeyValue> {
    let key = kv.key().strip_prefix(prefix.as_bytes()).unwrap_or(kv.key());
    let key = String::from_utf8(key.to_vec())
        .map_err(|_| StoreError::Backend(format!("etcd holds a key that is not UTF-8: {:?}", kv.key())))?;
    Ok(KeyValue {
        key,
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let mut kv = self.client.kv_client();
        let answer = self.call(&format!("cannot read {key}"), kv.get(self.full(key), None)).await?;
        answer.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> StoreResult<Page> {
        let full = self.full(prefix);
        let end = prefix_end(&full);
        // The smallest key after `start_after` is `start_after` followed by a zero byte.
        let start = match start_after {
            Some(after) => {
                let mut next = self.full(after);
                next.push(0);
                next.max(full)
            }
            None => full,
        };
        if end != [0] && start >= end {
            // start_after is past every key under the prefix (etcd would refuse the range).
            return Ok(Page { items: Vec::new(), revision: self.revision().await?, more: false });
        }
        let options = GetOptions::new().with_range(end).with_limit(limit as i64);
        let mut kv = self.client.kv_client();
        let answer = self.call(&format!("cannot list {prefix}"), kv.get(start, Some(options))).await?;
        let items = answer.kvs().iter().map(|kv| self.kv(kv)).collect::<StoreResult<Vec<_>>>()?;
        let revision = answer.header().map_or(0, |h| h.revision());
        Ok(Page { items, revision, more: answer.more() })
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<Revision> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value, None)]);
        let answer = self.txn(&format!("cannot create {key}"), txn).await?;
        if !answer.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        Ok(answer.header().map_or(0, |h| h.revision()))
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> StoreResult<Revision> {
        let full = self.full(key);
        let txn = Txn::new()
            .when([
                Compare::create_revision(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(full.clone(), value, None)])
            .or_else([TxnOp::get(full, None)]);
        let answer = self.txn(&format!("cannot update {key}"), txn).await?;
        if answer.succeeded() {
            return Ok(answer.header().map_or(0, |h| h.revision()));
        }
        match self.read_back(&answer)? {
            None => Err(StoreError::NotFound(key.to_string())),
            Some(now) => Err(StoreError::Conflict { key: key.to_string(), expected, current: now.mod_revision }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> StoreResult<(Revision, KeyValue)> {
        let full = self.full(key);
        let mut compares = vec![Compare::create_revision(full.clone(), CompareOp::Greater, 0)];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(full.clone(), CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(full.clone(), Some(DeleteOptions::new().with_prev_key()))])
            .or_else([TxnOp::get(full, None)]);
        let answer = self.txn(&format!("cannot delete {key}"), txn).await?;
        if !answer.succeeded() {
            return match (self.read_back(&answer)?, expected) {
                (None, _) => Err(StoreError::NotFound(key.to_string())),
                (Some(now), Some(expected)) => {
                    Err(StoreError::Conflict { key: key.to_string(), expected, current: now.mod_revision })
                }
                (Some(_), None) => Err(StoreError::Backend(format!("etcd refused to delete {key} (a bug?)"))),
            };
        }
        let prev = match answer.op_responses().first() {
            Some(TxnOpResponse::Delete(deleted)) => deleted.prev_kvs().first().map(|kv| self.kv(kv)).transpose()?,
            _ => None,
        };
        let prev = prev.ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        Ok((answer.header().map_or(0, |h| h.revision()), prev))
    }

    async fn revision(&self) -> StoreResult<Revision> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_count_only();
        let answer = self.call("cannot read the revision", kv.get(self.full(""), Some(options))).await?;
        Ok(answer.header().map_or(0, |h| h.revision()))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> StoreResult<Watch> {
        let full = self.full(prefix);
        let end = prefix_end(&full);
        let what = format!("cannot watch {prefix}");
        // Where etcd is now (the history to replay ends there), and whether `after` is still
        // kept: a read at revision `after` fails once it is compacted.
        let mut kv = self.client.kv_client();
        let head = self.call(&what, kv.get(full.clone(), Some(GetOptions::new().with_count_only()))).await?;
        let now = head.header().map_or(0, |h| h.revision());
        if after < now {
            let at = after.max(1);
            let options = GetOptions::new().with_count_only().with_revision(at);
            match tokio::time::timeout(REQUEST_TIMEOUT, kv.get(full.clone(), Some(options))).await {
                Ok(Err(e)) if is_compacted(&e) => {
                    let compacted = self.compacted_at(&full, at).await;
                    return Err(StoreError::Compacted { requested: after, compacted });
                }
                Ok(Err(e)) => return Err(StoreError::Backend(format!("{what}: etcd at {}: {e}", self.endpoints))),
                Err(_) => {
                    return Err(StoreError::Backend(format!("{what}: etcd at {} did not answer", self.endpoints)));
                }
                Ok(Ok(_)) => {}
            }
        }
        let options = WatchOptions::new().with_range(end).with_start_revision(after + 1).with_prev_key();
        let mut watch = self.client.watch_client();
        let stream = self.call(&what, watch.watch(full, Some(options))).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward(self.prefix.clone(), stream, tx, self.open.subscribe(), after, now));
        Ok(rx)
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        if revision <= 0 {
            return Ok(());
        }
        let mut kv = self.client.kv_client();
        let options = CompactionOptions::new().with_physical();
        match tokio::time::timeout(REQUEST_TIMEOUT, kv.compact(revision, Some(options))).await {
            Ok(Ok(_)) => Ok(()),
            // Compacted there or later already: nothing older is left to forget.
            Ok(Err(e)) if is_compacted(&e) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Backend(format!(
                "cannot compact at revision {revision}: etcd at {}: {e}",
                self.endpoints
            ))),
            Err(_) => Err(StoreError::Backend(format!(
                "cannot compact at revision {revision}: etcd at {} did not answer",
                self.endpoints
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_byte_string() {
        assert_eq!(prefix_end(b"/podlab/registry/pods/"), b"/podlab/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
