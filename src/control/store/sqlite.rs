//! The SQLite store: the cluster's state as a log of changes in one file (k3s's kine idea).
//!
//! etcd keeps every change of every key under one growing revision number. One SQL table can do
//! the same: each change is a new row, and the row's autoincrement id *is* the revision. A key's
//! current value is its newest row (unless that row says "deleted"), a watch is `id > after`, and
//! compare-and-swap is "is the newest row's id still the one you read?" inside one transaction.
//!
//! The table (`sqlite3 /var/lib/podlab/store.db .schema`):
//!
//! ```text
//! log   id              the revision of this change (INTEGER PRIMARY KEY AUTOINCREMENT)
//!       name            the key, e.g. /registry/pods/default/web
//!       created         1 if this change created the key
//!       deleted         1 if this change deleted it
//!       create_revision the revision that created the key
//!       prev_revision   the id of the key's previous row (0: none)
//!       value           the object (JSON text) after the change (NULL for a deletion)
//!       old_value       the object before the change (NULL for a creation)
//! meta  name, value     'compacted': the revision history was compacted at
//! ```
//!
//! The pods there are now, and their phase:
//!
//! ```text
//! sqlite3 /var/lib/podlab/store.db "SELECT name, id AS resourceVersion, value ->> '$.status.phase'
//!   FROM log WHERE id IN (SELECT MAX(id) FROM log GROUP BY name)
//!   AND deleted = 0 AND name LIKE '/registry/pods/%' ORDER BY name"
//! ```
//!
//! One thread owns the writing connection: it takes the writes queued since its last commit,
//! applies them in order in one transaction (each one checks what the ones before it wrote), and
//! after the commit hands the changes to the watchers. Reads run on other connections (WAL mode
//! lets them read while the writer writes), on tokio's blocking threads.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, ToSql, Transaction, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::{Event, KeyValue, Page, Revision, Store, StoreError, StoreResult, Watch};

/// Live events a watcher may have waiting before it is dropped as too slow (it then lists again).
pub const WATCH_BUFFER: usize = 1000;
/// Writes committed together at most (a group commit: one disk sync for all of them).
const MAX_BATCH: usize = 256;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// How long a connection waits for a lock held by another before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The layout's version, kept in the file's `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    created         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL,
    value           BLOB,
    old_value       BLOB
);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

const COLUMNS: &str = "id, name, created, deleted, create_revision, prev_revision, value, old_value";

/// The store in one SQLite file; see the module comment.
pub struct SqliteStore {
    shared: Arc<Shared>,
}

/// What the store's handles share: the writer thread's queue and the idle read connections.
struct Shared {
    path: PathBuf,
    commands: Option<std_mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    readers: Mutex<Vec<Connection>>,
}

/// Work for the writer thread.
enum Command {
    Write {
        op: WriteOp,
        reply: oneshot::Sender<StoreResult<Event>>,
    },
    Watch {
        prefix: String,
        after: Revision,
        seen: Revision,
        history: Vec<Event>,
        reply: oneshot::Sender<StoreResult<Watch>>,
    },
    Compact {
        revision: Revision,
        reply: oneshot::Sender<StoreResult<()>>,
    },
}

enum WriteOp {
    Create { key: String, value: Vec<u8> },
    Update { key: String, value: Vec<u8>, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
}

/// One row of the log table.
struct Row {
    id: Revision,
    name: String,
    created: bool,
    deleted: bool,
    create_revision: Revision,
    prev_revision: Revision,
    value: Option<Vec<u8>>,
    old_value: Option<Vec<u8>>,
}

impl Row {
    /// The key's value as of this row (for a live row).
    fn kv(&self) -> KeyValue {
        KeyValue {
            key: self.name.clone(),
            value: self.value.clone().unwrap_or_default(),
            create_revision: self.create_revision,
            mod_revision: self.id,
        }
    }

    /// The change this row records, as a watch delivers it.
    fn into_event(self) -> Event {
        let before = |value: Option<Vec<u8>>| KeyValue {
            key: self.name.clone(),
            value: value.unwrap_or_default(),
            create_revision: self.create_revision,
            mod_revision: self.prev_revision,
        };
        if self.deleted {
            return Event::Delete { prev: before(self.old_value), revision: self.id };
        }
        let prev = if self.created { None } else { Some(before(self.old_value)) };
        let kv = KeyValue {
            key: self.name.clone(),
            value: self.value.unwrap_or_default(),
            create_revision: self.create_revision,
            mod_revision: self.id,
        };
        Event::Put { kv, prev }
    }
}

/// A value as SQL: JSON (any UTF-8) as TEXT so `sqlite3` shows it and `->>` reads it, other
/// bytes as a BLOB.
struct Bytes<'a>(Option<&'a [u8]>);

impl ToSql for Bytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            None => ValueRef::Null,
            Some(b) if std::str::from_utf8(b).is_ok() => ValueRef::Text(b),
            Some(b) => ValueRef::Blob(b),
        }))
    }
}

fn bytes_at(row: &rusqlite::Row, idx: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    match row.get_ref(idx)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) | ValueRef::Blob(b) => Ok(Some(b.to_vec())),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            idx,
            other.data_type(),
            "a value must be TEXT or BLOB".into(),
        )),
    }
}

fn read_row(row: &rusqlite::Row) -> rusqlite::Result<Row> {
    Ok(Row {
        id: row.get(0)?,
        name: row.get(1)?,
        created: row.get(2)?,
        deleted: row.get(3)?,
        create_revision: row.get(4)?,
        prev_revision: row.get(5)?,
        value: bytes_at(row, 6)?,
        old_value: bytes_at(row, 7)?,
    })
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what}: {e}"))
}

fn stopped() -> StoreError {
    StoreError::Backend("the SQLite store's writer thread has stopped (see the log for why)".into())
}

/// The smallest string greater than every string starting with `prefix` (None: no such bound).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `name` conditions selecting the keys under `prefix`, with their bound values.
fn prefix_clause(prefix: &str) -> (String, Vec<String>) {
    match prefix_end(prefix) {
        Some(end) => ("name >= ? AND name < ?".to_string(), vec![prefix.to_string(), end]),
        None => ("name >= ?".to_string(), vec![prefix.to_string()]),
    }
}

/// The store's revision: the last id handed out (kept by AUTOINCREMENT even when compaction has
/// removed that row).
fn current_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0)")?
        .query_row([], |r| r.get(0))
}

fn compacted_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT COALESCE((SELECT value FROM meta WHERE name = 'compacted'), 0)")?
        .query_row([], |r| r.get(0))
}

fn latest(conn: &Connection, key: &str) -> rusqlite::Result<Option<Row>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM log WHERE name = ?1 ORDER BY id DESC LIMIT 1"))?
        .query_row([key], read_row)
        .optional()
}

/// The changes of keys under `prefix` with after < id <= upto, in order.
fn changes(conn: &Connection, prefix: &str, after: Revision, upto: Option<Revision>) -> rusqlite::Result<Vec<Event>> {
    let (names, mut args) = prefix_clause(prefix);
    let mut sql = format!("SELECT {COLUMNS} FROM log WHERE id > {after} AND {names}");
    if let Some(upto) = upto {
        sql.push_str(&format!(" AND id <= {upto}"));
    }
    sql.push_str(" ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.drain(..)), read_row)?;
    rows.map(|r| r.map(Row::into_event)).collect()
}

fn insert(tx: &Transaction, row: &Row) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!("INSERT INTO log ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))?.execute(
        params![
            row.id,
            row.name,
            row.created,
            row.deleted,
            row.create_revision,
            row.prev_revision,
            Bytes(row.value.as_deref()),
            Bytes(row.old_value.as_deref()),
        ],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Open (or create) the store in the SQLite file `path`, creating its directory.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(&format!("cannot create directory {}", dir.display()), e))?;
        }
        let what = format!("cannot open the store database {}", path.display());
        let conn = Connection::open(path).map_err(|e| backend(&what, e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| backend(&what, e))?;
        let mode: String =
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| backend(&what, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "{what}: SQLite would not use WAL mode (it said '{mode}'): is the file on a network file system?"
            )));
        }
        // FULL: a write acknowledged is on disk (each commit syncs the WAL; group commit shares
        // that sync among the writes queued together).
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| backend(&what, e))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| backend(&what, e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "{what}: it was written by a newer podlab (schema {version}, this one knows {SCHEMA_VERSION}): upgrade podlab"
            )));
        }
        conn.execute_batch(SCHEMA).map_err(|e| backend(&format!("{what} (create its tables)"), e))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(|e| backend(&what, e))?;
        let (commands, queue) = std_mpsc::channel();
        let writer = Writer { conn, watchers: Vec::new() };
        let handle = std::thread::Builder::new()
            .name("podlab-store".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| backend("cannot start the store's writer thread", e))?;
        let shared = Shared {
            path: path.to_path_buf(),
            commands: Some(commands),
            writer: Some(handle),
            readers: Mutex::new(Vec::new()),
        };
        Ok(SqliteStore { shared: Arc::new(shared) })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Run `f` on a read connection, on a blocking thread.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<StoreResult<T>> + Send + 'static,
    {
        let shared = self.shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut conn = shared.reader()?;
            let what = format!("cannot read the store database {}", shared.path.display());
            let result = f(&mut conn).map_err(|e| backend(&what, e));
            // A connection left inside a transaction by an error is not put back.
            if conn.is_autocommit() {
                shared.give_back(conn);
            }
            result?
        });
        task.await.map_err(|e| backend("a store read failed", e))?
    }

    fn send(&self, command: Command) -> StoreResult<()> {
        let commands = self.shared.commands.as_ref().ok_or_else(stopped)?;
        commands.send(command).map_err(|_| stopped())
    }

    async fn write(&self, op: WriteOp) -> StoreResult<Event> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Write { op, reply })?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Shared {
    /// An idle read connection, or a new one.
    fn reader(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(conn);
        }
        let what = format!("cannot open the store database {} for reading", self.path.display());
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| backend(&what, e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| backend(&what, e))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl Drop for Shared {
    /// Stop the writer thread and wait for it, so the file is closed when the store is gone
    /// (a reopen then starts from what is on disk).
    fn drop(&mut self) {
        self.commands.take();
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// A watch's sending side, and the keys it wants.
struct Watcher {
    prefix: String,
    tx: mpsc::Sender<StoreResult<Event>>,
}

/// The writer thread's state: the one connection that writes, and the watchers.
struct Writer {
    conn: Connection,
    watchers: Vec<Watcher>,
}

impl Writer {
    fn run(mut self, queue: std_mpsc::Receiver<Command>) {
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let mut writes = Vec::new();
            for command in batch {
                match command {
                    Command::Write { op, reply } => writes.push((op, reply)),
                    Command::Watch { prefix, after, seen, history, reply } => {
                        self.commit(std::mem::take(&mut writes));
                        let _ = reply.send(self.watch(prefix, after, seen, history));
                    }
                    Command::Compact { revision, reply } => {
                        self.commit(std::mem::take(&mut writes));
                        let _ = reply.send(self.compact(revision));
                    }
                }
            }
            self.commit(writes);
        }
    }

    /// Apply `writes` in order in one transaction, commit, tell the watchers, then the writers.
    fn commit(&mut self, writes: Vec<(WriteOp, oneshot::Sender<StoreResult<Event>>)>) {
        if writes.is_empty() {
            return;
        }
        let (ops, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
        let results = match self.apply_all(ops) {
            Ok(results) => results,
            Err(e) => {
                let e = backend("cannot write to the store database (is the disk full?)", e);
                replies.into_iter().for_each(|reply| drop(reply.send(Err(e.clone()))));
                return;
            }
        };
        for event in results.iter().flatten() {
            self.publish(event);
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }

    /// Each write's outcome; Err only when the transaction itself failed (nothing was written).
    fn apply_all(&mut self, ops: Vec<WriteOp>) -> rusqlite::Result<Vec<StoreResult<Event>>> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(apply(&tx, op).unwrap_or_else(|e| Err(backend("cannot write to the store database", e))));
        }
        tx.commit()?;
        Ok(results)
    }

    /// Hand `event` to every watcher of its key; a watcher whose buffer is full is dropped (its
    /// channel ends after what it has buffered), so no watcher ever holds up a write.
    fn publish(&mut self, event: &Event) {
        let key = match event {
            Event::Put { kv, .. } => &kv.key,
            Event::Delete { prev, .. } => &prev.key,
        };
        self.watchers.retain(|w| {
            if !key.starts_with(&w.prefix) {
                return !w.tx.is_closed();
            }
            w.tx.try_send(Ok(event.clone())).is_ok()
        });
    }

    /// Finish a watch started by a reader: the changes after `seen` (all the reader had not
    /// seen), then subscribe. The writer writes nothing meanwhile: no gap, no duplicate.
    fn watch(
        &mut self,
        prefix: String,
        after: Revision,
        seen: Revision,
        mut history: Vec<Event>,
    ) -> StoreResult<Watch> {
        let what = "cannot read the store database for a watch";
        let compacted = compacted_revision(&self.conn).map_err(|e| backend(what, e))?;
        if compacted > seen {
            return Err(StoreError::Compacted { requested: after, compacted });
        }
        history.extend(changes(&self.conn, &prefix, seen, None).map_err(|e| backend(what, e))?);
        let (tx, rx) = mpsc::channel(history.len() + WATCH_BUFFER);
        for event in history {
            // Cannot fail: the channel has room for the whole history.
            let _ = tx.try_send(Ok(event));
        }
        self.watchers.push(Watcher { prefix, tx });
        Ok(rx)
    }

    /// Remove the rows superseded at or before `revision`, and the deletions up to it.
    fn compact(&mut self, revision: Revision) -> StoreResult<()> {
        let what = "cannot compact the store database";
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| backend(what, e))?;
        let current = current_revision(&tx).map_err(|e| backend(what, e))?;
        if revision > current {
            return Err(StoreError::Backend(format!(
                "cannot compact at revision {revision}: the store is only at revision {current}"
            )));
        }
        if revision <= compacted_revision(&tx).map_err(|e| backend(what, e))? {
            return Ok(());
        }
        tx.execute(
            "DELETE FROM log WHERE id IN (SELECT prev_revision FROM log WHERE id <= ?1 AND prev_revision > 0)",
            [revision],
        )
        .map_err(|e| backend(what, e))?;
        tx.execute("DELETE FROM log WHERE deleted = 1 AND id <= ?1", [revision]).map_err(|e| backend(what, e))?;
        tx.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?1)", [revision])
            .map_err(|e| backend(what, e))?;
        tx.commit().map_err(|e| backend(what, e))
    }
}

/// One write inside the writer's transaction: check it against the key's newest row, then add
/// its row. The outer Err is SQLite failing; the inner one the write being refused.
fn apply(tx: &Transaction, op: WriteOp) -> rusqlite::Result<StoreResult<Event>> {
    let key = match &op {
        WriteOp::Create { key, .. } | WriteOp::Update { key, .. } | WriteOp::Delete { key, .. } => key.clone(),
    };
    let current = latest(tx, &key)?.filter(|row| !row.deleted);
    let id = current_revision(tx)? + 1;
    let row = match (op, current) {
        (WriteOp::Create { .. }, Some(_)) => return Ok(Err(StoreError::AlreadyExists(key))),
        (WriteOp::Create { key, value }, None) => Row {
            id,
            create_revision: id,
            // The deletion row, when the key existed before.
            prev_revision: latest(tx, &key)?.map_or(0, |row| row.id),
            name: key,
            created: true,
            deleted: false,
            value: Some(value),
            old_value: None,
        },
        (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => return Ok(Err(StoreError::NotFound(key))),
        (WriteOp::Update { expected, .. } | WriteOp::Delete { expected: Some(expected), .. }, Some(cur))
            if cur.id != expected =>
        {
            return Ok(Err(StoreError::Conflict { key, expected, current: cur.id }));
        }
        (WriteOp::Update { key, value, .. }, Some(cur)) => Row {
            id,
            name: key,
            created: false,
            deleted: false,
            create_revision: cur.create_revision,
            prev_revision: cur.id,
            value: Some(value),
            old_value: cur.value,
        },
        (WriteOp::Delete { key, .. }, Some(cur)) => Row {
            id,
            name: key,
            created: false,
            deleted: true,
            create_revision: cur.create_revision,
            prev_revision: cur.id,
            value: None,
            old_value: cur.value,
        },
    };
    insert(tx, &row)?;
    Ok(Ok(row.into_event()))
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let key = key.to_string();
        self.read(move |conn| Ok(Ok(latest(conn, &key)?.filter(|row| !row.deleted).map(|row| row.kv())))).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> StoreResult<Page> {
        let (names, mut args) = prefix_clause(prefix);
        let mut sql = format!("SELECT MAX(id) AS id FROM log WHERE {names}");
        if let Some(after) = start_after {
            sql.push_str(" AND name > ?");
            args.push(after.to_string());
        }
        // One row more than asked tells whether more follow.
        let sql = format!(
            "SELECT {COLUMNS} FROM log WHERE id IN ({sql} GROUP BY name) AND deleted = 0 ORDER BY name LIMIT {}",
            if limit == 0 { -1 } else { limit as i64 + 1 }
        );
        self.read(move |conn| {
            // One read transaction: the revision and the rows come from one snapshot.
            let tx = conn.transaction()?;
            let revision = current_revision(&tx)?;
            let mut items: Vec<KeyValue> = {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(args), read_row)?;
                rows.map(|r| r.map(|row| row.kv())).collect::<rusqlite::Result<_>>()?
            };
            tx.commit()?;
            let more = limit > 0 && items.len() > limit;
            items.truncate(if limit == 0 { items.len() } else { limit });
            Ok(Ok(Page { items, revision, more }))
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> StoreResult<Revision> {
        Ok(self.write(WriteOp::Create { key: key.to_string(), value }).await?.revision())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: Revision) -> StoreResult<Revision> {
        Ok(self.write(WriteOp::Update { key: key.to_string(), value, expected }).await?.revision())
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> StoreResult<(Revision, KeyValue)> {
        match self.write(WriteOp::Delete { key: key.to_string(), expected }).await? {
            Event::Delete { prev, revision } => Ok((revision, prev)),
            Event::Put { kv, .. } => Err(StoreError::Backend(format!("deleting {} wrote a put (a bug)", kv.key))),
        }
    }

    async fn revision(&self) -> StoreResult<Revision> {
        self.read(|conn| Ok(Ok(current_revision(conn)?))).await
    }

    async fn watch(&self, prefix: &str, after: Revision) -> StoreResult<Watch> {
        // Most of the history is read here, beside the writer; the writer adds what came since.
        let owned = prefix.to_string();
        let (history, seen) = self
            .read(move |conn| {
                let tx = conn.transaction()?;
                let compacted = compacted_revision(&tx)?;
                if after < compacted {
                    return Ok(Err(StoreError::Compacted { requested: after, compacted }));
                }
                let revision = current_revision(&tx)?;
                let history = changes(&tx, &owned, after, Some(revision))?;
                tx.commit()?;
                Ok(Ok((history, revision.max(after))))
            })
            .await?;
        let (reply, answer) = oneshot::channel();
        self.send(Command::Watch { prefix: prefix.to_string(), after, seen, history, reply })?;
        answer.await.map_err(|_| stopped())?
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Compact { revision, reply })?;
        answer.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_next_string() {
        assert_eq!(prefix_end("/registry/pods/").as_deref(), Some("/registry/pods0"));
        assert_eq!(prefix_end("a").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }
}
