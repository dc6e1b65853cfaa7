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

use crate::*;

mod ca;
mod idp;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE certificates (
        serial BYTEA PRIMARY KEY,
        issuer TEXT NOT NULL,
        profile TEXT NOT NULL,
        subject TEXT NOT NULL,
        not_before BIGINT NOT NULL,
        not_after BIGINT NOT NULL,
        der BYTEA NOT NULL,
        issued_at BIGINT NOT NULL,
        status TEXT NOT NULL DEFAULT 'good' CHECK (status IN ('good', 'revoked')),
        reason SMALLINT,
        revoked_at BIGINT
    );
    CREATE INDEX certificates_issued ON certificates (issued_at);
    CREATE INDEX certificates_revoked ON certificates (issuer) WHERE status = 'revoked';
    CREATE TABLE crl_numbers (issuer TEXT PRIMARY KEY, last BIGINT NOT NULL);
    CREATE TABLE crls (issuer TEXT PRIMARY KEY, number BIGINT NOT NULL, this_update BIGINT NOT NULL,
                       next_update BIGINT NOT NULL, der BYTEA NOT NULL);
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
        created_at BIGINT NOT NULL
    );
    CREATE TABLE clients (client_id TEXT PRIMARY KEY, registration TEXT NOT NULL, created_at BIGINT NOT NULL);
    CREATE TABLE consents (
        citizen_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        granted_at BIGINT NOT NULL,
        PRIMARY KEY (citizen_id, client_id)
    );
    CREATE TABLE refresh_tokens (
        hash BYTEA PRIMARY KEY,
        family TEXT NOT NULL,
        client_id TEXT NOT NULL,
        citizen_id TEXT NOT NULL,
        grant_data TEXT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used BOOLEAN NOT NULL DEFAULT false,
        revoked BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
    CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        key_ref TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        active_from BIGINT NOT NULL
    );",
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
        generation BIGINT NOT NULL,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        ends_at BIGINT NOT NULL,
        revoked BOOLEAN NOT NULL DEFAULT false
    );
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
        activated_at BIGINT NOT NULL
    );
    CREATE TABLE activations (
        code_hash TEXT PRIMARY KEY,
        national_id TEXT NOT NULL,
        custody TEXT NOT NULL,
        officer TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );",
    ),
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
    /// Connects `connections` times and applies pending migrations.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, StoreError> {
        let open_err = |e: tokio_postgres::Error| StoreError::Open { what: "PostgreSQL".into(), source: e.into() };
        let mut pool = Vec::with_capacity(connections.max(1));
        for i in 0..connections.max(1) {
            let (client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(open_err)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::error!(error = %e, "PostgreSQL connection closed");
                }
            });
            if i == 0 {
                migrate(&client).await.map_err(open_err)?;
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

async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            .await?;
        let current: i64 = client.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await?.get(0);
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            client.batch_execute("BEGIN").await?;
            let applied = async {
                client.batch_execute(sql).await?;
                client.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if applied.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            applied?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        Ok(())
    }
    .await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    result
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::Corrupt(e.to_string()))
}
