//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go to one writer thread that commits whatever has queued up in a single
//! transaction (group commit): each caller's change runs in its own savepoint, so one
//! failure does not undo the others, and every caller hears back only after the commit is
//! on disk. Reads use a small pool of read-only connections, which WAL lets run alongside
//! the writer: point reads on the caller's thread, reads that may walk millions of rows (a
//! CRL's revoked list, listings, counts) on tokio's blocking threads.
//!
//! This module holds the connections, the writer thread and the migrations; [`ca`] and [`idp`]
//! hold the tables of each trait.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::oneshot;

use crate::migration::{self, Migration, migration};
use crate::*;

mod audit;
mod backup;
mod ca;
mod delivery;
mod idp;

/// The schema, in the order it grew: `store/migrations/sqlite/`.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!("sqlite", 1, "0001_ca.sql"),
    migration!("sqlite", 2, "0002_idp.sql"),
    migration!("sqlite", 3, "0003_refresh_families.sql"),
    migration!("sqlite", 4, "0004_smart_ids.sql"),
    migration!("sqlite", 5, "0005_tables_added_late.sql"),
    migration!("sqlite", 6, "0006_timestamps.sql"),
    migration!("sqlite", 7, "0007_signatures.sql"),
    migration!("sqlite", 8, "0008_subjects.sql"),
    migration!("sqlite", 9, "0009_audit.sql"),
    migration!("sqlite", 10, "0010_deliveries.sql"),
];

const READERS: usize = 4;

/// A caller's write as the writer thread sees it. Either it runs inside the batch's
/// transaction, in its own savepoint, or it is abandoned without running: nothing of a write
/// ever runs outside a transaction, where each statement would commit on its own.
trait Job: Send {
    /// Runs the caller's statements: whether they succeeded (if not, their savepoint is
    /// rolled back), and the completion that tells the caller how the batch ended.
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion);

    /// Tells the caller that its statements did not run, and why.
    fn abandon(self: Box<Self>, error: StoreError);
}

/// Tells a caller whose statements ran how their batch ended: committed, or not.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A write: the caller's statements, and where their result goes.
struct Write<F, T> {
    statements: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Write<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Completion) {
        let Write { statements, reply } = *self;
        let result = statements(conn);
        let ok = result.is_ok();
        // The caller may have stopped waiting: nobody to tell then.
        (ok, Box::new(move |batch| drop(reply.send(batch.and(result)))))
    }

    fn abandon(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// The SQLite durable store.
pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Box<dyn Job>>>,
    readers: Arc<Readers>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.readers.path).finish_non_exhaustive()
    }
}

/// The read-only connections, shared with the blocking threads that run long reads.
struct Readers {
    path: String,
    pool: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Runs `f` on a pooled connection, or on a new one when all are busy.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.pool.lock().map_err(|_| StoreError::Unavailable("a panic poisoned the SQLite reader pool"))?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => reader_connection(&self.path).map_err(db)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < READERS
        {
            pool.push(conn);
        }
        result
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::database("SQLite", e)
}

/// One failure of the writer's that several callers hear of.
fn shared(e: &Arc<rusqlite::Error>) -> StoreError {
    StoreError::database("SQLite", Arc::clone(e))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = writer_connection(path).map_err(|e| StoreError::Open { what: path.display().to_string(), source: e.into() })?;
        Self::start(path, conn)
    }

    /// Brings the schema up to date on the writer's connection `conn`, opens the readers
    /// and starts the writer thread.
    fn start(path: &Path, mut conn: Connection) -> Result<Self, StoreError> {
        let what = path.display().to_string();
        migrate(&mut conn, &what)?;

        let mut pool = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            pool.push(reader_connection(&what).map_err(|e| StoreError::Open { what: what.clone(), source: e.into() })?);
        }

        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Open { what: what.clone(), source: e.into() })?;
        Ok(SqliteStore { writer: Mutex::new(tx), readers: Arc::new(Readers { path: what, pool: Mutex::new(pool) }) })
    }

    /// Runs `f` in the writer's next transaction and returns once that has committed.
    async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Write { statements: f, reply });
        self.writer
            .lock()
            .map_err(|_| StoreError::Unavailable("a panic poisoned the SQLite writer's queue"))?
            .send(job)
            .map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped"))?;
        rx.await.map_err(|_| StoreError::Unavailable("the SQLite writer thread has stopped"))?
    }

    /// Runs a point read on a pooled read-only connection, on the caller's thread: it takes
    /// microseconds, less than handing it to another thread would.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.readers.read(f)
    }

    /// Runs a read that may walk millions of rows (a CRL's revoked list, a listing, a count)
    /// on a pooled read-only connection on tokio's blocking threads, off the async workers.
    async fn scan<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.read(f)).await.map_err(|e| StoreError::database("SQLite", e))?
    }
}

/// A read-only connection to the database file.
fn reader_connection(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// The writer's connection to the database file (created if missing).
fn writer_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk before anyone is told it happened.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Applies the migrations the database lacks, each in its own transaction, recording its
/// version in `schema_migrations` in the same transaction.
fn migrate(conn: &mut Connection, what: &str) -> Result<(), StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open { what: what.to_owned(), source: e.into() };
    // The table every release has kept: a database of an earlier one has it already.
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)").map_err(open_err)?;
    loop {
        // IMMEDIATE: another process opening the same file migrates before or after, not alongside.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
        let current: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0)).map_err(open_err)?;
        let Some(next) = migration::pending(MIGRATIONS, what, current)?.first() else { return Ok(()) };
        tx.execute_batch(next.sql)
            .and_then(|()| tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())", [next.version]))
            .and_then(|_| tx.commit())
            .map_err(|e| StoreError::Migration { what: what.to_owned(), version: next.version, name: next.name, source: e.into() })?;
        tracing::info!(version = next.version, name = next.name, "applied SQLite migration");
    }
}

fn write_loop(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>) {
    const MAX_BATCH: usize = 512;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // No transaction, so nothing of the batch runs; every caller hears why.
            let e = Arc::new(e);
            for job in batch {
                job.abandon(shared(&e));
            }
            // In case a failed ROLLBACK left the connection inside a transaction.
            let _ = conn.execute_batch("ROLLBACK");
            continue;
        }
        let mut completions = Vec::with_capacity(batch.len());
        // Set when a failed write cannot be undone alone: then the whole batch is.
        let mut undone: Option<Arc<rusqlite::Error>> = None;
        // Savepoint statements are prepared once: a batch runs several per caller.
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop);
        for job in batch {
            if let Some(e) = &undone {
                job.abandon(shared(e));
                continue;
            }
            if let Err(e) = run("SAVEPOINT job") {
                // Without its savepoint a failed write could not be undone alone: it does not run.
                job.abandon(db(e));
                continue;
            }
            let (ok, completion) = job.run(&conn);
            if !ok && let Err(e) = run("ROLLBACK TO job") {
                undone = Some(Arc::new(e));
            }
            let _ = run("RELEASE job");
            completions.push(completion);
        }
        let commit = match undone {
            Some(e) => Err(e),
            None => conn.execute_batch("COMMIT").map_err(Arc::new),
        };
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for completion in completions {
            completion(commit.as_ref().copied().map_err(shared));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// Set by the writer's busy handler once its `BEGIN IMMEDIATE` has met the test's lock.
    static BEGIN_BLOCKED: AtomicBool = AtomicBool::new(false);
    /// Set by the test once it has let go of that lock.
    static LOCK_RELEASED: AtomicBool = AtomicBool::new(false);

    /// The writer's busy handler in [`a_write_whose_transaction_cannot_begin_changes_nothing`]:
    /// waits until the other connection has let go of the lock, then gives up all the same.
    /// `BEGIN IMMEDIATE` fails, and nothing stands in the way of a write any more.
    fn give_up_once_the_lock_is_released(_attempt: i32) -> bool {
        BEGIN_BLOCKED.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !LOCK_RELEASED.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[tokio::test(flavor = "current_thread")]
    async fn long_reads_run_off_the_async_worker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("hawiya.db")).expect("open");
        let worker = std::thread::current().id();
        assert_ne!(store.scan(|_| Ok(std::thread::current().id())).await.expect("scan"), worker);
        assert_eq!(store.read(|_| Ok(std::thread::current().id())).expect("read"), worker, "point reads stay where they are");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_whose_transaction_cannot_begin_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hawiya.db");
        let writer = writer_connection(&path).expect("writer connection");
        writer.busy_handler(Some(give_up_once_the_lock_is_released)).expect("busy handler");
        let store = Arc::new(SqliteStore::start(&path, writer).expect("start"));
        let certificate = NewCertificate {
            serial: Serial::new(vec![0x01, 0x42]).expect("serial"),
            issuer: "ca".into(),
            profile: "citizen-authentication".into(),
            subject: "CN=Citizen".into(),
            not_before: 1,
            not_after: 2,
            der: vec![0x30, 0x00],
            issued_at: 1,
        };

        // Another connection holds the write lock while the store's writer begins its batch.
        let other = Connection::open(&path).expect("another connection");
        other.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
        let write = tokio::spawn({
            let (store, certificate) = (store.clone(), certificate.clone());
            async move { store.insert_certificate(&certificate).await }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !BEGIN_BLOCKED.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the writer never met the lock");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        other.execute_batch("ROLLBACK").expect("let go of the write lock");
        LOCK_RELEASED.store(true, Ordering::SeqCst);

        let result = write.await.expect("join");
        assert!(matches!(result, Err(StoreError::Database { backend: "SQLite", .. })), "the transaction did not begin, so the write failed: {result:?}");
        assert_eq!(store.certificate(&certificate.serial).await.expect("read"), None, "a write its caller was told failed must not be committed");
        // The writer goes on: the next batch begins and commits.
        store.insert_certificate(&certificate).await.expect("insert once the lock is free");
        assert_eq!(store.certificate(&certificate.serial).await.expect("read").map(|r| r.certificate), Some(certificate));
    }
}
