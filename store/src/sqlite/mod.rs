//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go to one writer thread that commits whatever has queued up in a single
//! transaction (group commit): each caller's change runs in its own savepoint, so one
//! failure does not undo the others, and every caller hears back only after the commit is
//! on disk. Reads use a small pool of read-only connections, which WAL lets run alongside
//! the writer.
//!
//! This module holds the connections, the writer thread and the migrations; [`ca`] and [`idp`]
//! hold the tables of each trait.

use std::path::Path;
use std::sync::{Mutex, mpsc};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::*;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE certificates (
        serial BLOB PRIMARY KEY,
        issuer TEXT NOT NULL,
        profile TEXT NOT NULL,
        subject TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        der BLOB NOT NULL,
        issued_at INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'good' CHECK (status IN ('good', 'revoked')),
        reason INTEGER,
        revoked_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX certificates_issued ON certificates (issued_at);
    CREATE INDEX certificates_revoked ON certificates (issuer) WHERE status = 'revoked';
    CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY, last INTEGER NOT NULL);
    CREATE TABLE crls (issuer TEXT PRIMARY KEY, number INTEGER NOT NULL, this_update INTEGER NOT NULL,
                       next_update INTEGER NOT NULL, der BLOB NOT NULL);
    CREATE TABLE ceremony (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL);",
    ),
    (
        2,
        "CREATE TABLE citizens (
        id TEXT PRIMARY KEY,
        national_id TEXT NOT NULL UNIQUE,
        profile TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        totp_secret TEXT,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE clients (client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE consents (
        citizen_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        granted_at INTEGER NOT NULL,
        PRIMARY KEY (citizen_id, client_id)
    ) WITHOUT ROWID;
    CREATE TABLE refresh_tokens (
        hash BLOB PRIMARY KEY,
        family TEXT NOT NULL,
        client_id TEXT NOT NULL,
        citizen_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        revoked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
    CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        key_ref TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        active_from INTEGER NOT NULL
    ) WITHOUT ROWID;",
    ),
    (
        // One row per refresh-token family instead of one per token: a rotation rewrites
        // one row in place. Tokens issued before this cannot be presented any more.
        3,
        "DROP TABLE refresh_tokens;
    CREATE TABLE refresh_families (
        family TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        citizen_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        generation INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ends_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX refresh_families_client ON refresh_families (client_id);
    CREATE INDEX refresh_families_citizen ON refresh_families (citizen_id, client_id);",
    ),
    (
        4,
        "CREATE TABLE smart_ids (
        national_id TEXT PRIMARY KEY,
        custody TEXT NOT NULL,
        device_kid TEXT NOT NULL UNIQUE,
        device_key TEXT NOT NULL,
        authentication_serial TEXT NOT NULL,
        signature_serial TEXT NOT NULL,
        activated_at INTEGER NOT NULL
    );
    CREATE TABLE activations (
        code_hash TEXT PRIMARY KEY,
        national_id TEXT NOT NULL,
        custody TEXT NOT NULL,
        officer TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    ),
];

const READERS: usize = 4;

type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Finish) + Send>;

/// The SQLite durable store.
pub struct SqliteStore {
    path: String,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |e: rusqlite::Error| StoreError::Open { what: path.display().to_string(), reason: e.to_string() };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        // FULL: a commit is on disk before anyone is told it happened.
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_err)?;
        migrate(&mut conn).map_err(open_err)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(open_err)?;
            r.busy_timeout(std::time::Duration::from_secs(10)).map_err(open_err)?;
            readers.push(r);
        }

        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_loop(conn, rx))
            .map_err(|e| StoreError::Open { what: path.display().to_string(), reason: e.to_string() })?;
        Ok(SqliteStore { path: path.display().to_string(), writer: Mutex::new(tx), readers: Mutex::new(readers) })
    }

    /// Runs `f` in the writer's next transaction and returns once that has committed.
    async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (ok, finish)
        });
        self.writer
            .lock()
            .map_err(|_| StoreError::Database("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| StoreError::Database("the writer thread has stopped".into()))?;
        rx.await.map_err(|_| StoreError::Database("the writer thread has stopped".into()))?
    }

    /// Runs a read on a pooled read-only connection. Point reads take microseconds, less
    /// than handing them to another thread would.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.readers.lock().map_err(|_| StoreError::Database("reader pool poisoned".into()))?.pop();
        let conn = match pooled {
            Some(c) => c,
            None => Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(db)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < READERS
        {
            pool.push(conn);
        }
        result
    }
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    let current: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, unixepoch())", [version])?;
        tracing::info!(version, "applied SQLite migration");
    }
    tx.commit()
}

fn write_loop(conn: Connection, jobs: mpsc::Receiver<Job>) {
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
            let message = e.to_string();
            for job in batch {
                // Tell every caller; nothing of theirs ran.
                let (_, finish) = job(&conn);
                finish(Err(StoreError::Database(message.clone())));
            }
            let _ = conn.execute_batch("ROLLBACK");
            continue;
        }
        let mut finishes = Vec::with_capacity(batch.len());
        // Savepoint statements are prepared once: a batch runs several per caller.
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop);
        for job in batch {
            let savepoint = run("SAVEPOINT job");
            let (ok, finish) = job(&conn);
            if !ok || savepoint.is_err() {
                let _ = run("ROLLBACK TO job");
            }
            let _ = run("RELEASE job");
            finishes.push(finish);
        }
        let commit = conn.execute_batch("COMMIT").map_err(db);
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for finish in finishes {
            finish(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Database(e.to_string())),
            });
        }
    }
}

mod ca;
mod idp;
