//! The store contract: the SQLite store and the etcd store pass the same tests, so the API
//! server can stand on either. `contract` takes any `SharedStore`; each backend's tests open
//! theirs (a SQLite file in a private directory, or a real etcd this test starts on loopback
//! ports of its own) and run it, then a restart, then a measurement of how fast each is.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::etcd::{Etcd, free_ports};
use std::process::Command;

use podlab::control::store::etcd::EtcdStore;
use podlab::control::store::sqlite::SqliteStore;
use podlab::control::store::{Event, KeyValue, Revision, SharedStore, StoreError, Watch};

/// Live events a watcher may be behind by before it is dropped (both stores use the same).
const WATCH_BUFFER: usize = podlab::control::store::sqlite::WATCH_BUFFER;
/// How long a watch event may take to arrive.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// Measurements run one at a time, so they do not slow each other down.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- The contract ------------------------------------------------------------------------

/// Everything a store must do, on a store of its own (nothing else writes to it meanwhile).
async fn contract(store: SharedStore) {
    create_get_update_delete(&store).await;
    list_pages(&store).await;
    watch_replays_then_follows(&store).await;
    watch_while_writing_has_no_gap(&store).await;
    slow_watcher_is_dropped(&store).await;
    concurrent_increments(&store).await;
    compaction(&store).await;
}

fn json(n: u32) -> Vec<u8> {
    format!("{{\"n\":{n}}}").into_bytes()
}

async fn create_get_update_delete(store: &SharedStore) {
    let key = "/registry/configmaps/default/settings";
    let r0 = store.revision().await.unwrap();
    assert_eq!(store.get(key).await.unwrap(), None);

    let r1 = store.create(key, json(1)).await.unwrap();
    assert_eq!(r1, r0 + 1, "a change takes the next revision");
    assert_eq!(store.revision().await.unwrap(), r1);
    let kv = KeyValue { key: key.into(), value: json(1), create_revision: r1, mod_revision: r1 };
    assert_eq!(store.get(key).await.unwrap(), Some(kv.clone()));
    assert_eq!(store.create(key, json(9)).await, Err(StoreError::AlreadyExists(key.into())));
    assert_eq!(store.revision().await.unwrap(), r1, "a refused write changes nothing");

    let r2 = store.update(key, json(2), r1).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let kv2 = KeyValue { key: key.into(), value: json(2), create_revision: r1, mod_revision: r2 };
    assert_eq!(store.get(key).await.unwrap(), Some(kv2.clone()));
    assert_eq!(
        store.update(key, json(3), r1).await,
        Err(StoreError::Conflict { key: key.into(), expected: r1, current: r2 })
    );
    let missing = "/registry/configmaps/default/missing";
    assert_eq!(store.update(missing, json(1), r1).await, Err(StoreError::NotFound(missing.into())));
    assert_eq!(store.update(missing, json(1), 0).await, Err(StoreError::NotFound(missing.into())));
    assert_eq!(store.delete(missing, None).await, Err(StoreError::NotFound(missing.into())));
    assert_eq!(store.get(missing).await.unwrap(), None);

    // Delete with an expected revision: refused when stale, done when current.
    assert_eq!(
        store.delete(key, Some(r1)).await,
        Err(StoreError::Conflict { key: key.into(), expected: r1, current: r2 })
    );
    let (r3, last) = store.delete(key, Some(r2)).await.unwrap();
    assert_eq!(r3, r2 + 1);
    assert_eq!(last, kv2);
    assert_eq!(store.get(key).await.unwrap(), None);
    assert_eq!(store.delete(key, None).await, Err(StoreError::NotFound(key.into())));
    assert_eq!(store.update(key, json(4), r2).await, Err(StoreError::NotFound(key.into())));

    // Created again: a new life with its own create_revision; then deleted without a check.
    let r4 = store.create(key, json(5)).await.unwrap();
    assert_eq!(r4, r3 + 1);
    let kv5 = KeyValue { key: key.into(), value: json(5), create_revision: r4, mod_revision: r4 };
    assert_eq!(store.get(key).await.unwrap(), Some(kv5.clone()));
    let (r5, last) = store.delete(key, None).await.unwrap();
    assert_eq!((r5, last), (r4 + 1, kv5));
    assert_eq!(store.revision().await.unwrap(), r5);
}

async fn list_pages(store: &SharedStore) {
    let prefix = "/registry/pods/";
    // Created out of order; listed in key order.
    let names = ["ns1/p3", "ns1/p0", "ns2/p1", "ns1/p4", "ns1/p2"];
    for name in names {
        store.create(&format!("{prefix}{name}"), json(0)).await.unwrap();
    }
    // Neighbours that must not show: a longer resource name, and keys just outside.
    for key in ["/registry/podsx/ns1/q", "/registry/pods", "/registry/pod", "/registry/podtemplates/ns1/t"] {
        store.create(key, json(0)).await.unwrap();
    }
    let keys = |page: &podlab::control::store::Page| page.items.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>();
    let full = |names: &[&str]| names.iter().map(|n| format!("{prefix}{n}")).collect::<Vec<_>>();

    let all = store.list(prefix, None, 0).await.unwrap();
    assert_eq!(keys(&all), full(&["ns1/p0", "ns1/p2", "ns1/p3", "ns1/p4", "ns2/p1"]));
    assert!(!all.more);
    assert_eq!(all.revision, store.revision().await.unwrap(), "a page tells the revision it was read at");
    for kv in &all.items {
        assert_eq!(kv.create_revision, kv.mod_revision);
        assert_eq!(kv.value, json(0));
    }

    // Pages of two.
    let page = store.list(prefix, None, 2).await.unwrap();
    assert_eq!((keys(&page), page.more), (full(&["ns1/p0", "ns1/p2"]), true));
    let page = store.list(prefix, Some(&format!("{prefix}ns1/p2")), 2).await.unwrap();
    assert_eq!((keys(&page), page.more), (full(&["ns1/p3", "ns1/p4"]), true));
    let page = store.list(prefix, Some(&format!("{prefix}ns1/p4")), 2).await.unwrap();
    assert_eq!((keys(&page), page.more), (full(&["ns2/p1"]), false));
    let page = store.list(prefix, Some(&format!("{prefix}ns2/p1")), 2).await.unwrap();
    assert_eq!((keys(&page), page.more), (vec![], false));
    // Exactly the number left: no more.
    let page = store.list(prefix, Some(&format!("{prefix}ns1/p3")), 2).await.unwrap();
    assert_eq!((keys(&page), page.more), (full(&["ns1/p4", "ns2/p1"]), false));
    // start_after a key that does not exist, or before the prefix.
    let page = store.list(prefix, Some(&format!("{prefix}ns1/p1")), 1).await.unwrap();
    assert_eq!((keys(&page), page.more), (full(&["ns1/p2"]), true));
    let page = store.list(prefix, Some("/registry/a"), 1).await.unwrap();
    assert_eq!(keys(&page), full(&["ns1/p0"]));
    let page = store.list(prefix, Some("/registry/z"), 1).await.unwrap();
    assert_eq!((keys(&page), page.more), (vec![], false));

    // One namespace; the other resource; a deleted key is not listed.
    let ns2 = store.list(&format!("{prefix}ns2/"), None, 0).await.unwrap();
    assert_eq!(keys(&ns2), full(&["ns2/p1"]));
    let podsx = store.list("/registry/podsx/", None, 0).await.unwrap();
    assert_eq!(keys(&podsx), vec!["/registry/podsx/ns1/q".to_string()]);
    store.delete(&format!("{prefix}ns1/p2"), None).await.unwrap();
    let all = store.list(prefix, None, 0).await.unwrap();
    assert_eq!(keys(&all), full(&["ns1/p0", "ns1/p3", "ns1/p4", "ns2/p1"]));
    let empty = store.list("/registry/nothing/", None, 0).await.unwrap();
    assert_eq!((empty.items.len(), empty.more), (0, false));
}

/// The next event of a watch (fails the test if none comes).
async fn next(watch: &mut Watch) -> Event {
    match tokio::time::timeout(EVENT_WAIT, watch.recv()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("the watch failed: {e}"),
        Ok(None) => panic!("the watch ended"),
        Err(_) => panic!("no watch event within {EVENT_WAIT:?}"),
    }
}

/// Assert that no event is waiting (none comes within a short while).
async fn quiet(watch: &mut Watch) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), watch.recv()).await {
        panic!("expected no more events, got {got:?}");
    }
}

fn put(key: &str, value: Vec<u8>, create: Revision, rev: Revision, prev: Option<(Vec<u8>, Revision)>) -> Event {
    Event::Put {
        kv: KeyValue { key: key.into(), value, create_revision: create, mod_revision: rev },
        prev: prev.map(|(value, mod_revision)| KeyValue {
            key: key.into(),
            value,
            create_revision: create,
            mod_revision,
        }),
    }
}

async fn watch_replays_then_follows(store: &SharedStore) {
    let prefix = "/registry/services/";
    let a = "/registry/services/default/a";
    let start = store.revision().await.unwrap();
    let ra = store.create(a, json(1)).await.unwrap();
    store.create("/registry/servicesx/default/z", json(0)).await.unwrap();
    let rb = store.update(a, json(2), ra).await.unwrap();
    let (rc, _) = store.delete(a, Some(rb)).await.unwrap();

    // From before: the past replays, in order, with the values before each change.
    let mut watch = store.watch(prefix, start).await.unwrap();
    assert_eq!(next(&mut watch).await, put(a, json(1), ra, ra, None));
    assert_eq!(next(&mut watch).await, put(a, json(2), ra, rb, Some((json(1), ra))));
    let deleted = KeyValue { key: a.into(), value: json(2), create_revision: ra, mod_revision: rb };
    assert_eq!(next(&mut watch).await, Event::Delete { prev: deleted, revision: rc });
    quiet(&mut watch).await;

    // From the middle: only what came after.
    let mut middle = store.watch(prefix, rb).await.unwrap();
    assert_eq!(next(&mut middle).await.revision(), rc);

    // From now: nothing old.
    let mut now = store.watch(prefix, store.revision().await.unwrap()).await.unwrap();

    // Then live changes, in order, only under the prefix.
    let b = "/registry/services/default/b";
    let c = "/registry/services/kube-system/c";
    let rd = store.create(b, json(3)).await.unwrap();
    store.create("/registry/servicesx/default/y", json(0)).await.unwrap();
    store.create("/registry/configmaps/default/y", json(0)).await.unwrap();
    let re = store.create(c, json(4)).await.unwrap();
    for w in [&mut watch, &mut middle, &mut now] {
        assert_eq!(next(w).await, put(b, json(3), rd, rd, None));
        assert_eq!(next(w).await, put(c, json(4), re, re, None));
        quiet(w).await;
    }
    // A watch of one namespace.
    let mut ns = store.watch("/registry/services/kube-system/", start).await.unwrap();
    assert_eq!(next(&mut ns).await.revision(), re);
    quiet(&mut ns).await;
}

/// Watches opened while a writer writes see every change after their revision exactly once.
async fn watch_while_writing_has_no_gap(store: &SharedStore) {
    let prefix = "/registry/leases/";
    let writes = 300;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..writes {
                last = store.create(&format!("{prefix}default/l{i:04}"), json(i)).await.unwrap();
            }
            last
        })
    };
    let mut watchers = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let from = store.revision().await.unwrap();
        let mut watch = store.watch(prefix, from).await.unwrap();
        watchers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), watch.recv()).await {
                seen.push(event.unwrap().revision());
            }
            (from, seen)
        }));
    }
    let last = writer.await.unwrap();
    for watcher in watchers {
        let (from, seen) = watcher.await.unwrap();
        let want: Vec<Revision> = (from + 1..=last).collect();
        assert_eq!(seen, want, "a watch from revision {from} missed or repeated changes");
    }
}

/// A watcher that reads nothing is dropped once it is a buffer behind; writers never wait for
/// it, and a watcher that keeps up sees everything.
async fn slow_watcher_is_dropped(store: &SharedStore) {
    let prefix = "/registry/events/";
    let from = store.revision().await.unwrap();
    let mut slow = store.watch(prefix, from).await.unwrap();
    let mut fast = store.watch(prefix, from).await.unwrap();
    let fast = tokio::spawn(async move {
        let mut n = 0;
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), fast.recv()).await {
            event.unwrap();
            n += 1;
        }
        n
    });
    let total = WATCH_BUFFER + 300;
    let started = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..total).step_by(10) {
                    store.create(&format!("{prefix}default/e{i:05}"), json(0)).await.unwrap();
                }
            })
        })
        .collect();
    let all = async {
        for task in tasks {
            task.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all).await.expect("writers were held up by a slow watcher");
    println!("{total} writes with a stuck watcher took {:?}", started.elapsed());

    let mut got = 0;
    loop {
        match tokio::time::timeout(EVENT_WAIT, slow.recv()).await {
            Ok(Some(Ok(_))) => got += 1,
            Ok(Some(Err(e))) => panic!("the slow watch failed: {e}"),
            Ok(None) => break,
            Err(_) => panic!("the slow watch was not closed (it got {got} events of {total})"),
        }
    }
    assert!(got >= WATCH_BUFFER && got < total, "the slow watch got {got} events of {total} before it was closed");
    assert_eq!(fast.await.unwrap(), total, "a watcher that keeps up sees every change");
}

/// 50 tasks add one to a counter with compare-and-swap, retrying on conflict: none is lost.
async fn concurrent_increments(store: &SharedStore) {
    let key = "/registry/counters/default/c";
    store.create(key, b"0".to_vec()).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                loop {
                    let kv = store.get(key).await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(kv.value).unwrap().parse().unwrap();
                    match store.update(key, (n + 1).to_string().into_bytes(), kv.mod_revision).await {
                        Ok(_) => return conflicts,
                        Err(StoreError::Conflict { expected, current, .. }) => {
                            assert_eq!(expected, kv.mod_revision);
                            assert!(current > expected);
                            conflicts += 1;
                        }
                        Err(e) => panic!("increment failed: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    let kv = store.get(key).await.unwrap().unwrap();
    assert_eq!(kv.value, b"50".to_vec(), "50 successful increments");
    assert_eq!(kv.mod_revision, kv.create_revision + 50);
    println!("50 concurrent increments: {conflicts} conflicts retried");
}

async fn compaction(store: &SharedStore) {
    let prefix = "/registry/secrets/";
    let (k, k2, k3) = ("/registry/secrets/default/k", "/registry/secrets/default/k2", "/registry/secrets/default/k3");
    let r1 = store.create(k, json(1)).await.unwrap();
    let r2 = store.update(k, json(2), r1).await.unwrap();
    let r3 = store.update(k, json(3), r2).await.unwrap();
    let r4 = store.create(k2, json(4)).await.unwrap();
    let (r5, _) = store.delete(k2, Some(r4)).await.unwrap();
    let r6 = store.create(k3, json(6)).await.unwrap();

    store.compact(r5).await.unwrap();
    for after in [r1, r4] {
        match store.watch(prefix, after).await {
            Err(StoreError::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (after, r5)),
            other => panic!("a watch from compacted revision {after} gave {:?}", other.map(|_| "a watch")),
        }
    }
    // From the compacted revision on, history is whole.
    let mut watch = store.watch(prefix, r5).await.unwrap();
    assert_eq!(next(&mut watch).await, put(k3, json(6), r6, r6, None));
    quiet(&mut watch).await;
    // The values current at the compacted revision stay.
    let kv = KeyValue { key: k.into(), value: json(3), create_revision: r1, mod_revision: r3 };
    assert_eq!(store.get(k).await.unwrap(), Some(kv));
    assert_eq!(store.get(k2).await.unwrap(), None);
    let page = store.list(prefix, None, 0).await.unwrap();
    assert_eq!(page.items.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), vec![k, k3]);
    // A change after the compaction still knows the value before it.
    let r7 = store.update(k, json(7), r3).await.unwrap();
    assert_eq!(next(&mut watch).await, put(k, json(7), r1, r7, Some((json(3), r3))));

    // Compacting an older revision again changes nothing; a future one is refused.
    store.compact(r2).await.unwrap();
    let mut again = store.watch(prefix, r5).await.unwrap();
    assert_eq!(next(&mut again).await.revision(), r6);
    let future = store.revision().await.unwrap() + 100;
    assert!(matches!(store.compact(future).await, Err(StoreError::Backend(_))));
}

// --- Restart ------------------------------------------------------------------------------

/// Read a watch to its end (failing if it does not end): how many events it had.
async fn drain_closed(mut watch: Watch) -> usize {
    let mut events = 0;
    while let Some(event) = tokio::time::timeout(EVENT_WAIT, watch.recv()).await.expect("the watch was not closed") {
        event.unwrap();
        events += 1;
    }
    events
}

/// Changes before a restart: returns a revision in the middle and the last one.
async fn before_restart(store: &SharedStore) -> (Revision, Revision) {
    let n1 = "/registry/minions/n1";
    let r1 = store.create(n1, json(1)).await.unwrap();
    let r2 = store.update(n1, json(2), r1).await.unwrap();
    store.create("/registry/minions/n2", json(3)).await.unwrap();
    store.delete(n1, Some(r2)).await.unwrap();
    store.create("/registry/minions/n3", json(4)).await.unwrap();
    (r2, store.revision().await.unwrap())
}

/// After a restart: the same data and revisions, and history from before it replays.
async fn after_restart(store: &SharedStore, (middle, last): (Revision, Revision)) {
    assert_eq!(store.revision().await.unwrap(), last, "the revision survives a restart");
    assert_eq!(store.get("/registry/minions/n1").await.unwrap(), None);
    let n3 = store.get("/registry/minions/n3").await.unwrap().unwrap();
    assert_eq!((n3.mod_revision, n3.value), (last, json(4)));
    let page = store.list("/registry/minions/", None, 0).await.unwrap();
    assert_eq!(page.items.len(), 2);

    let mut watch = store.watch("/registry/minions/", middle).await.unwrap();
    assert_eq!(next(&mut watch).await, put("/registry/minions/n2", json(3), middle + 1, middle + 1, None));
    assert!(matches!(next(&mut watch).await, Event::Delete { revision, .. } if revision == middle + 2));
    assert_eq!(next(&mut watch).await.revision(), last);
    let r = store.create("/registry/minions/n4", json(5)).await.unwrap();
    assert_eq!(r, last + 1, "new changes continue the revisions");
    assert_eq!(next(&mut watch).await.revision(), r);
}

// --- Measurements -------------------------------------------------------------------------

/// Writes per second: `n` creates, then `n` updates, from one task and from 50; and the time
/// to list 1000 keys. Printed, and returned as a line for the report.
async fn measure(store: &SharedStore, label: &str, n: usize) -> String {
    let _one_at_a_time = MEASURING.lock().await;
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64();

    let t = Instant::now();
    for i in 0..n {
        store.create(&format!("/registry/bench/one/k{i:06}"), json(0)).await.unwrap();
    }
    let creates_1 = rate(n, t.elapsed());
    let key = "/registry/bench/one/k000000";
    let mut rev = store.get(key).await.unwrap().unwrap().mod_revision;
    let t = Instant::now();
    for i in 0..n {
        rev = store.update(key, json(i as u32), rev).await.unwrap();
    }
    let updates_1 = rate(n, t.elapsed());

    let tasks = 50;
    let per = n / tasks;
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    store.create(&format!("/registry/bench/many/t{t:02}-k{i}"), json(0)).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let creates_50 = rate(per * tasks, t.elapsed());
    // Each task updates its own key: no conflicts, only the store's speed.
    let mut revs = Vec::new();
    for t in 0..tasks {
        revs.push(store.get(&format!("/registry/bench/many/t{t:02}-k0")).await.unwrap().unwrap().mod_revision);
    }
    let t = Instant::now();
    let handles: Vec<_> = revs
        .into_iter()
        .enumerate()
        .map(|(t, mut rev)| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("/registry/bench/many/t{t:02}-k0");
                for i in 0..per {
                    rev = store.update(&key, json(i as u32), rev).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let updates_50 = rate(per * tasks, t.elapsed());

    // 1000 keys to list (written by 50 tasks), listed whole a few times.
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (t..1000).step_by(tasks) {
                    let value = format!(
                        "{{\"metadata\":{{\"name\":\"p{i}\"}},\"spec\":{{\"padding\":\"{}\"}}}}",
                        "x".repeat(400)
                    );
                    store.create(&format!("/registry/bench/list/p{i:04}"), value.into_bytes()).await.unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let rounds = 10;
    let t = Instant::now();
    for _ in 0..rounds {
        let page = store.list("/registry/bench/list/", None, 0).await.unwrap();
        assert_eq!(page.items.len(), 1000);
    }
    let list_ms = t.elapsed().as_secs_f64() * 1000.0 / rounds as f64;

    let line = format!(
        "store {label}: creates/s {creates_1:.0} (1 task) {creates_50:.0} (50 tasks); updates/s {updates_1:.0} (1 task) {updates_50:.0} (50 tasks); list of 1000 keys {list_ms:.1} ms"
    );
    println!("{line}");
    line
}

// --- SQLite -------------------------------------------------------------------------------

/// A private directory, removed at the end (also on panic).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = PathBuf::from(format!("/tmp/podlab-test-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }

    /// Remove it now and check that it is gone.
    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.0);
        assert!(!self.0.exists(), "{} was left behind", self.0.display());
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_sqlite(file: &Path) -> SharedStore {
    Arc::new(SqliteStore::open(file).unwrap_or_else(|e| panic!("open {}: {e}", file.display())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_contract() {
    let dir = TempDir::new("contract");
    // The directory does not exist yet: open makes it.
    let file = dir.0.join("state/store.db");
    contract(open_sqlite(&file)).await;
    dir.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart() {
    let dir = TempDir::new("restart");
    let file = dir.0.join("store.db");
    let store = open_sqlite(&file);
    let revisions = before_restart(&store).await;
    let watch = store.watch("/registry/minions/", 0).await.unwrap();
    drop(store);
    assert_eq!(drain_closed(watch).await, 5, "a watch ends with the store, after what it had buffered");
    let store = open_sqlite(&file);
    after_restart(&store, revisions).await;
    drop(store);
    dir.remove();
}

/// A learner can read the store with the sqlite3 shell: the module comment's query works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_reads_with_sqlite3() {
    let sqlite3 = Path::new("/usr/bin/sqlite3");
    assert!(
        sqlite3.exists(),
        "{} not found: run scripts/install-deps.sh --test (it installs sqlite3)",
        sqlite3.display()
    );
    let dir = TempDir::new("sqlite3");
    let file = dir.0.join("store.db");
    let store = open_sqlite(&file);
    let pod = |phase: &str| format!("{{\"kind\":\"Pod\",\"status\":{{\"phase\":\"{phase}\"}}}}").into_bytes();
    let web = "/registry/pods/default/web";
    let r1 = store.create(web, pod("Pending")).await.unwrap();
    let r2 = store.update(web, pod("Running"), r1).await.unwrap();
    let gone = "/registry/pods/default/gone";
    store.create(gone, pod("Pending")).await.unwrap();
    store.delete(gone, None).await.unwrap();
    store.create("/registry/services/default/web", b"{}".to_vec()).await.unwrap();

    let query = "SELECT name, id AS resourceVersion, value ->> '$.status.phase' \
                 FROM log WHERE id IN (SELECT MAX(id) FROM log GROUP BY name) \
                 AND deleted = 0 AND name LIKE '/registry/pods/%' ORDER BY name";
    let out = Command::new(sqlite3).arg(&file).arg(query).output().expect("run sqlite3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.trim(), format!("{web}|{r2}|Running"));
    // Every change is a row.
    let out = Command::new(sqlite3).arg(&file).arg("SELECT count(*) FROM log").output().expect("run sqlite3");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
    drop(store);
    dir.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_measure() {
    let dir = TempDir::new("measure");
    let store = open_sqlite(&dir.0.join("store.db"));
    measure(&store, "sqlite", 2000).await;
    drop(store);
    dir.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_open_fails_with_a_clear_error() {
    let dir = TempDir::new("badpath");
    std::fs::create_dir_all(&dir.0).unwrap();
    let blocker = dir.0.join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let err = SqliteStore::open(&blocker.join("store.db")).err().expect("open under a file must fail");
    let text = err.to_string();
    assert!(text.contains(&blocker.display().to_string()), "the error names the path: {text}");
    let junk = dir.0.join("junk.db");
    std::fs::write(&junk, vec![0x55u8; 8192]).unwrap();
    let err = SqliteStore::open(&junk).err().expect("open of a file that is not a database must fail");
    assert!(err.to_string().contains("junk.db"), "the error names the file: {err}");
    // A file from a newer podlab (a later layout) is not touched.
    let newer = dir.0.join("newer.db");
    rusqlite::Connection::open(&newer).unwrap().pragma_update(None, "user_version", 2).unwrap();
    let err = SqliteStore::open(&newer).err().expect("open of a newer layout must fail");
    assert!(err.to_string().contains("newer podlab"), "the error says why: {err}");
    dir.remove();
}

// --- etcd ---------------------------------------------------------------------------------

async fn connect_etcd(etcd: &Etcd, prefix: &str) -> SharedStore {
    let store = EtcdStore::connect(&[etcd.endpoint()], prefix)
        .await
        .unwrap_or_else(|e| panic!("connect to etcd: {e}\n{}", etcd.log_tail()));
    Arc::new(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_contract() {
    let etcd = Etcd::start("contract");
    contract(connect_etcd(&etcd, "/podlab").await).await;

    // Two servers with their own prefixes share one etcd without seeing each other's keys.
    let one = connect_etcd(&etcd, "/one").await;
    let two = connect_etcd(&etcd, "/two").await;
    let from = two.revision().await.unwrap();
    let mut watch = two.watch("/registry/pods/", from).await.unwrap();
    one.create("/registry/pods/default/a", json(1)).await.unwrap();
    let r = two.create("/registry/pods/default/b", json(2)).await.unwrap();
    assert_eq!(next(&mut watch).await, put("/registry/pods/default/b", json(2), r, r, None));
    quiet(&mut watch).await;
    let page = two.list("/registry/pods/", None, 0).await.unwrap();
    assert_eq!(page.items.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), vec!["/registry/pods/default/b"]);
    assert_eq!(one.get("/registry/pods/default/b").await.unwrap(), None);
    etcd.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart() {
    let mut etcd = Etcd::start("restart");
    let store = connect_etcd(&etcd, "/podlab").await;
    let revisions = before_restart(&store).await;
    let watch = store.watch("/registry/minions/", 0).await.unwrap();
    drop(store);
    // It ends (with what etcd had delivered so far: the replay may not have arrived yet).
    assert!(drain_closed(watch).await <= 5);
    // Restart etcd itself on the same data, and connect again.
    etcd.kill();
    etcd.run();
    let store = connect_etcd(&etcd, "/podlab").await;
    after_restart(&store, revisions).await;
    drop(store);
    etcd.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_measure() {
    let etcd = Etcd::start("measure");
    let store = connect_etcd(&etcd, "/podlab").await;
    measure(&store, "etcd", 1000).await;
    drop(store);
    etcd.remove();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_connect_fails_with_a_clear_error() {
    let (port, _) = free_ports();
    let endpoint = format!("http://127.0.0.1:{port}");
    let err =
        EtcdStore::connect(std::slice::from_ref(&endpoint), "/podlab").await.err().expect("nothing listens there");
    assert!(err.to_string().contains(&endpoint), "the error names the endpoint: {err}");
}
