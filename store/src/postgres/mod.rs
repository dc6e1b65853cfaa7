//! The production backend: PostgreSQL (and engines that speak its protocol).
//!
//! A few connections, each with the hot statements prepared once, shared round-robin:
//! tokio-postgres pipelines concurrent queries on one connection. Every change is a single
//! statement, so no transaction has to hold a connection.
//!
//! This module holds the connections and the migrations; [`ca`] and [`idp`] hold the tables
//! of each trait.

use std::sync::atomic::{AtomicUsize, Ordering};

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

/// The PostgreSQL durable store.
pub struct PostgresStore {
    connections: Vec<Connection>,
    next: AtomicUsize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("PostgresStore").field("connections", &self.connections.len()).finish_non_exhaustive()
    }
}

fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::database("PostgreSQL", e)
}

impl PostgresStore {
    /// Connects `connections` times and applies pending migrations. `url` is a libpq-style
    /// connection string or URL; its TLS settings are libpq's `sslmode` (absent means
    /// `verify-full`; plaintext only with `sslmode=disable`) and `sslrootcert` (see
    /// `connection_string`).
    pub async fn connect(url: &str, connections: usize) -> Result<Self, StoreError> {
        let open_err = connect_failed;
        let settings = connection_string::parse(url)?;
        let mut pool = Vec::with_capacity(connections.max(1));
        for i in 0..connections.max(1) {
            let mut client = match &settings.tls {
                None => spawn(settings.config.connect(NoTls).await.map_err(open_err)?),
                Some(tls) => spawn(settings.config.connect(PostgresTls(tls.clone())).await.map_err(open_err)?),
            };
            if i == 0 {
                migrate(&mut client).await?;
            }
            let ca = ca::Statements::prepare(&client).await.map_err(open_err)?;
            pool.push(Connection { client, ca });
        }
        Ok(PostgresStore { connections: pool, next: AtomicUsize::new(0) })
    }

    fn conn(&self) -> &Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        &self.connections[i]
    }

    async fn one<T>(&self, sql: &str, params: &[&(dyn ToSql + Sync)], read: fn(&Row) -> Result<T, StoreError>) -> Result<Option<T>, StoreError> {
        self.conn().client.query_opt(sql, params).await.map_err(db)?.map(|r| read(&r)).transpose()
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.conn().client.execute(sql, params).await.map_err(db)
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
