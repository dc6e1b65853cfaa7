//! The production backend: PostgreSQL (and engines that speak its protocol).
//!
//! A few connections, each with the hot statements prepared once, shared round-robin:
//! tokio-postgres pipelines concurrent queries on one connection. Every change is a single
//! statement, so no transaction has to hold a connection, and a connection that breaks
//! (the primary died, a failover is under way) leaves no half-made change: it is replaced
//! on the next request, and the requests in between fail as [`StoreError::Unreachable`].
//!
//! This module holds the connections and the migrations; [`ca`] and [`idp`] hold the tables
//! of each trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::migration::{self, Migration, migration};
use crate::tls::PostgresTls;
use crate::*;

mod audit;
mod ca;
mod connection_string;
mod delivery;
mod idp;

/// The schema, in the order it grew: `store/migrations/postgres/`.
pub(crate) const MIGRATIONS: &[Migration] = &[
    migration!("postgres", 1, "0001_ca.sql"),
    migration!("postgres", 2, "0002_idp.sql"),
    migration!("postgres", 3, "0003_refresh_families.sql"),
    migration!("postgres", 4, "0004_smart_ids.sql"),
    migration!("postgres", 5, "0005_tables_added_late.sql"),
    migration!("postgres", 6, "0006_timestamps.sql"),
    migration!("postgres", 7, "0007_signatures.sql"),
    migration!("postgres", 8, "0008_subjects.sql"),
    migration!("postgres", 9, "0009_audit.sql"),
    migration!("postgres", 10, "0010_deliveries.sql"),
];

/// An arbitrary constant that names Hawiya's migration lock.
const MIGRATION_LOCK: i64 = 0x4841_5749_5941;

struct Connection {
    client: Client,
    /// The CA's hot statements, prepared on this connection.
    ca: ca::Statements,
}

impl Connection {
    /// Connects to the first server of the connection string that fits it (with
    /// `target_session_attrs=read-write`, the one that accepts writes), applies pending
    /// migrations if told to, and prepares the hot statements.
    async fn open(settings: &connection_string::Settings, migrating: bool) -> Result<Self, StoreError> {
        let mut client = match &settings.tls {
            None => spawn(settings.config.connect(NoTls).await.map_err(connect_failed)?),
            Some(tls) => spawn(settings.config.connect(PostgresTls(tls.clone())).await.map_err(connect_failed)?),
        };
        if migrating {
            migrate(&mut client).await?;
        }
        let ca = ca::Statements::prepare(&client).await.map_err(connect_failed)?;
        Ok(Connection { client, ca })
    }
}

/// One connection of the pool and what replaces it once it breaks.
struct Slot {
    current: std::sync::RwLock<Arc<Connection>>,
    /// Held by the one request that replaces a broken connection; the instant of its last
    /// attempt, which spaces attempts out while no server answers.
    replacing: tokio::sync::Mutex<Option<Instant>>,
}

/// The least time between two attempts to replace a slot's broken connection.
const RECONNECT_INTERVAL: Duration = Duration::from_millis(250);

/// How long a connection attempt may take when the connection string does not say
/// (`connect_timeout`): a server that does not answer must not hold requests for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The PostgreSQL durable store.
pub struct PostgresStore {
    settings: connection_string::Settings,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("PostgresStore").field("connections", &self.slots.len()).finish_non_exhaustive()
    }
}

/// A failed statement: unreachable when the connection broke or the server is going away
/// (nothing was acknowledged, the request may be retried once a server accepts writes),
/// else a database error.
fn db(e: tokio_postgres::Error) -> StoreError {
    if lost_connection(&e) { unreachable(e) } else { StoreError::database("PostgreSQL", e) }
}

fn unreachable(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StoreError {
    StoreError::Unreachable { backend: "PostgreSQL", source: e.into() }
}

/// Whether `e` says the connection is gone rather than that the statement failed: the
/// connection closed, its socket failed, or the server refused because it is shutting down,
/// starting, in recovery or read-only (a standby, or a primary that has been demoted).
fn lost_connection(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN, SqlState::CANNOT_CONNECT_NOW, SqlState::READ_ONLY_SQL_TRANSACTION].contains(code)
        }
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

impl PostgresStore {
    /// Connects `connections` times and applies pending migrations. `url` is a libpq-style
    /// connection string or URL; its TLS settings are libpq's `sslmode` (absent means
    /// `verify-full`; plaintext only with `sslmode=disable`) and `sslrootcert` (see
    /// `connection_string`). A multi-host string (`host=a,b … target_session_attrs=read-write`)
    /// names the servers of a failover pair: a connection that breaks is replaced, on the
    /// next request that needs it, by one to whichever server accepts writes then.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, StoreError> {
        let mut settings = connection_string::parse(url)?;
        if settings.config.get_connect_timeout().is_none() {
            settings.config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut slots = Vec::with_capacity(connections.max(1));
        for i in 0..connections.max(1) {
            let connection = Connection::open(&settings, i == 0).await?;
            slots.push(Slot { current: std::sync::RwLock::new(Arc::new(connection)), replacing: tokio::sync::Mutex::new(None) });
        }
        Ok(PostgresStore { settings, slots, next: AtomicUsize::new(0) })
    }

    /// The next connection, round-robin; a broken one is replaced first, and while it cannot
    /// be, another one that works serves the request. While no server answers, one request
    /// per connection tries (at most every [`RECONNECT_INTERVAL`]) and the others fail at
    /// once: requests never queue behind a dead database.
    async fn conn(&self) -> Result<Arc<Connection>, StoreError> {
        let n = self.slots.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        match self.connection(&self.slots[first]).await {
            Err(e) if e.is_unreachable() => {
                for k in 1..n {
                    let other = self.slots[(first + k) % n].current()?;
                    if !other.client.is_closed() {
                        return Ok(other);
                    }
                }
                Err(e)
            }
            result => result,
        }
    }

    /// The connection of `slot`, replaced first if it broke.
    async fn connection(&self, slot: &Slot) -> Result<Arc<Connection>, StoreError> {
        let current = slot.current()?;
        if !current.client.is_closed() {
            return Ok(current);
        }
        let Ok(mut last_attempt) = slot.replacing.try_lock() else {
            return Err(unreachable("the connection broke; another request is reconnecting"));
        };
        // Replaced while this request waited for the lock?
        let current = slot.current()?;
        if !current.client.is_closed() {
            return Ok(current);
        }
        if last_attempt.is_some_and(|at| at.elapsed() < RECONNECT_INTERVAL) {
            return Err(unreachable("the connection broke; no server accepting writes answered the last attempt"));
        }
        *last_attempt = Some(Instant::now());
        let fresh = Arc::new(Connection::open(&self.settings, false).await.map_err(|e| {
            tracing::warn!(error = %e, "PostgreSQL connection not replaced yet");
            unreachable(e)
        })?);
        *slot.current.write().map_err(|_| StoreError::Unavailable("a panic poisoned a PostgreSQL connection slot"))? = Arc::clone(&fresh);
        tracing::warn!("a broken PostgreSQL connection was replaced");
        Ok(fresh)
    }

    async fn one<T>(&self, sql: &str, params: &[&(dyn ToSql + Sync)], read: fn(&Row) -> Result<T, StoreError>) -> Result<Option<T>, StoreError> {
        self.conn().await?.client.query_opt(sql, params).await.map_err(db)?.map(|r| read(&r)).transpose()
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.conn().await?.client.execute(sql, params).await.map_err(db)
    }
}

impl Slot {
    fn current(&self) -> Result<Arc<Connection>, StoreError> {
        self.current.read().map(|c| Arc::clone(&c)).map_err(|_| StoreError::Unavailable("a panic poisoned a PostgreSQL connection slot"))
    }
}

/// A failed connection, with its causes: tokio-postgres's own text is only the kind ("error
/// performing TLS handshake", "db error"), the reason is in its source.
fn connect_failed(e: tokio_postgres::Error) -> StoreError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    StoreError::Open { what: "PostgreSQL".into(), source: text.into() }
}

/// Drives a new connection in the background; its client.
fn spawn<C>((client, connection): (Client, C)) -> Client
where
    C: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "PostgreSQL connection closed");
        }
    });
    client
}

/// Applies the migrations the database lacks, each in its own transaction, recording its
/// version in `schema_migrations` in the same transaction. An advisory lock keeps replicas
/// starting together from migrating alongside one another.
async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let open_err = |e: tokio_postgres::Error| StoreError::Open { what: "PostgreSQL".into(), source: e.into() };
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(open_err)?;
    let result = apply_migrations(client).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await.map_err(open_err);
    result.and(unlocked.map(drop))
}

async fn apply_migrations(client: &mut Client) -> Result<(), StoreError> {
    const WHAT: &str = "PostgreSQL";
    let open_err = |e: tokio_postgres::Error| StoreError::Open { what: WHAT.into(), source: e.into() };
    // The table every release has kept: a database of an earlier one has it already.
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .map_err(open_err)?;
    let current: i64 = client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(open_err)?.get(0);
    for next in migration::pending(MIGRATIONS, WHAT, current)? {
        let failed = |e: tokio_postgres::Error| StoreError::Migration { what: WHAT.into(), version: next.version, name: next.name, source: e.into() };
        // Dropped without a commit, the transaction rolls back.
        let tx = client.transaction().await.map_err(failed)?;
        tx.batch_execute(next.sql).await.map_err(failed)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&next.version]).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(version = next.version, name = next.name, "applied PostgreSQL migration");
    }
    Ok(())
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::Corrupt(e.to_string()))
}
