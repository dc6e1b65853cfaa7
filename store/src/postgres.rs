//! The production backend: PostgreSQL (and engines that speak its protocol).
//!
//! A few connections, each with the hot statements prepared once, shared round-robin:
//! tokio-postgres pipelines concurrent queries on one connection. Every change is a single
//! statement, so no transaction has to hold a connection.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use crate::*;

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

const RECORD_COLUMNS: &str = "serial, issuer, profile, subject, not_before, not_after, der, issued_at, status, reason, revoked_at";

struct Connection {
    client: Client,
    insert: Statement,
    find: Statement,
    status: Statement,
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
    StoreError::Database(match e.as_db_error() {
        Some(d) => d.message().to_owned(),
        None => e.to_string(),
    })
}

impl PostgresStore {
    /// Connects `connections` times and applies pending migrations.
    pub async fn connect(url: &str, connections: usize) -> Result<Self, StoreError> {
        let open_err = |e: tokio_postgres::Error| StoreError::Open { what: "PostgreSQL".into(), reason: e.to_string() };
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
            let insert = client
                .prepare(
                    "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, der, issued_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (serial) DO NOTHING",
                )
                .await
                .map_err(open_err)?;
            let find = client.prepare(&format!("SELECT {RECORD_COLUMNS} FROM certificates WHERE serial = $1")).await.map_err(open_err)?;
            let status = client.prepare("SELECT status, reason, revoked_at FROM certificates WHERE serial = $1 AND issuer = $2").await.map_err(open_err)?;
            pool.push(Connection { client, insert, find, status });
        }
        Ok(PostgresStore { connections: pool, next: AtomicUsize::new(0) })
    }

    fn conn(&self) -> &Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        &self.connections[i]
    }

    async fn find(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        let c = self.conn();
        c.client.query_opt(&c.find, &[&serial.as_bytes()]).await.map_err(db)?.map(|r| record(&r)).transpose()
    }

    async fn change_status(&self, sql: &str, params: &[&(dyn ToSql + Sync)], serial: &Serial, releasing: bool) -> Result<CertificateRecord, StoreError> {
        let row = self.conn().client.query_opt(sql, params).await.map_err(db)?;
        match row {
            Some(row) => record(&row),
            None => Err(refusal(serial, self.find(serial).await?.map(|r| r.status), releasing)),
        }
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

fn record(row: &Row) -> Result<CertificateRecord, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Corrupt(e.to_string());
    let serial: Vec<u8> = row.try_get(0).map_err(get)?;
    let reason: Option<i16> = row.try_get(9).map_err(get)?;
    let status: String = row.try_get(8).map_err(get)?;
    Ok(CertificateRecord {
        certificate: NewCertificate {
            serial: Serial::new(serial).map_err(StoreError::Corrupt)?,
            issuer: row.try_get(1).map_err(get)?,
            profile: row.try_get(2).map_err(get)?,
            subject: row.try_get(3).map_err(get)?,
            not_before: row.try_get(4).map_err(get)?,
            not_after: row.try_get(5).map_err(get)?,
            der: row.try_get(6).map_err(get)?,
            issued_at: row.try_get(7).map_err(get)?,
        },
        status: status_of(&status, reason.map(|r| r as u8), row.try_get(10).map_err(get)?)?,
    })
}

#[async_trait::async_trait]
impl CaStore for PostgresStore {
    async fn insert_certificate(&self, c: &NewCertificate) -> Result<(), StoreError> {
        let conn = self.conn();
        let inserted = conn
            .client
            .execute(&conn.insert, &[&c.serial.as_bytes(), &c.issuer, &c.profile, &c.subject, &c.not_before, &c.not_after, &c.der, &c.issued_at])
            .await
            .map_err(db)?;
        if inserted == 0 { Err(StoreError::DuplicateSerial(c.serial.clone())) } else { Ok(()) }
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        self.find(serial).await
    }

    async fn status(&self, issuer: &str, serial: &Serial) -> Result<Option<CertificateStatus>, StoreError> {
        let c = self.conn();
        let row = c.client.query_opt(&c.status, &[&serial.as_bytes(), &issuer]).await.map_err(db)?;
        row.map(|r| {
            let reason: Option<i16> = r.get(1);
            status_of(r.get::<_, &str>(0), reason.map(|x| x as u8), r.get(2))
        })
        .transpose()
    }

    async fn revoke(&self, serial: &Serial, reason: RevocationReason, at: i64) -> Result<CertificateRecord, StoreError> {
        let sql = format!(
            "UPDATE certificates SET status = 'revoked', reason = $2, revoked_at = $3
             WHERE serial = $1 AND (status = 'good' OR (reason = $4 AND $2 <> $4)) RETURNING {RECORD_COLUMNS}"
        );
        let code = i16::from(reason.code());
        let hold = i16::from(RevocationReason::CertificateHold.code());
        self.change_status(&sql, &[&serial.as_bytes(), &code, &at, &hold], serial, false).await
    }

    async fn release(&self, serial: &Serial) -> Result<CertificateRecord, StoreError> {
        let sql = format!(
            "UPDATE certificates SET status = 'good', reason = NULL, revoked_at = NULL
             WHERE serial = $1 AND status = 'revoked' AND reason = $2 RETURNING {RECORD_COLUMNS}"
        );
        let hold = i16::from(RevocationReason::CertificateHold.code());
        self.change_status(&sql, &[&serial.as_bytes(), &hold], serial, true).await
    }

    async fn list(&self, issuer: Option<&str>, limit: usize) -> Result<Vec<CertificateRecord>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM certificates WHERE $1::TEXT IS NULL OR issuer = $1
             ORDER BY issued_at DESC, serial LIMIT $2"
        );
        let rows = self.conn().client.query(&sql, &[&issuer, &(limit as i64)]).await.map_err(db)?;
        rows.iter().map(record).collect()
    }

    async fn revoked(&self, issuer: &str) -> Result<Vec<RevokedEntry>, StoreError> {
        let rows = self
            .conn()
            .client
            .query("SELECT serial, reason, revoked_at FROM certificates WHERE issuer = $1 AND status = 'revoked' ORDER BY serial", &[&issuer])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                let reason: i16 = r.get(1);
                Ok(RevokedEntry {
                    serial: Serial::new(r.get(0)).map_err(StoreError::Corrupt)?,
                    reason: RevocationReason::from_code(reason as u8).ok_or_else(|| StoreError::Corrupt(format!("reason code {reason}")))?,
                    at: r.get(2),
                })
            })
            .collect()
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn().client.query_one("SELECT COUNT(*) FROM certificates", &[]).await.map_err(db)?.get(0);
        Ok(n as u64)
    }

    async fn next_crl_number(&self, issuer: &str) -> Result<u64, StoreError> {
        let row = self
            .conn()
            .client
            .query_one(
                "INSERT INTO crl_numbers (issuer, last) VALUES ($1, 1)
                 ON CONFLICT (issuer) DO UPDATE SET last = crl_numbers.last + 1 RETURNING last",
                &[&issuer],
            )
            .await
            .map_err(db)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn put_crl(&self, crl: &PublishedCrl) -> Result<(), StoreError> {
        self.conn()
            .client
            .execute(
                "INSERT INTO crls (issuer, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (issuer) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
                   next_update = excluded.next_update, der = excluded.der WHERE excluded.number > crls.number",
                &[&crl.issuer, &(crl.number as i64), &crl.this_update, &crl.next_update, &crl.der],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn latest_crl(&self, issuer: &str) -> Result<Option<PublishedCrl>, StoreError> {
        let row = self.conn().client.query_opt("SELECT number, this_update, next_update, der FROM crls WHERE issuer = $1", &[&issuer]).await.map_err(db)?;
        Ok(row.map(|r| PublishedCrl {
            issuer: issuer.to_owned(),
            number: r.get::<_, i64>(0) as u64,
            this_update: r.get(1),
            next_update: r.get(2),
            der: r.get(3),
        }))
    }

    async fn put_ceremony(&self, record: &CeremonyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted =
            self.conn().client.execute("INSERT INTO ceremony (id, record) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", &[&json]).await.map_err(db)?;
        if inserted == 0 {
            let when = self.ceremony().await?.map_or_else(|| record.performed_at.clone(), |r| r.performed_at);
            return Err(StoreError::CeremonyExists(when));
        }
        Ok(())
    }

    async fn ceremony(&self) -> Result<Option<CeremonyRecord>, StoreError> {
        let row = self.conn().client.query_opt("SELECT record FROM ceremony WHERE id = 1", &[]).await.map_err(db)?;
        row.map(|r| serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| StoreError::Corrupt(format!("ceremony record: {e}")))).transpose()
    }
}

const CITIZEN_COLUMNS: &str = "id, national_id, profile, password_hash, totp_secret, created_at";
const KEY_COLUMNS: &str = "kid, purpose, key_ref, algorithm, public_jwk, created_at, active_from";
const FAMILY_COLUMNS: &str = "family, client_id, citizen_id, grant_data, generation, issued_at, expires_at, ends_at, revoked";

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn citizen(row: &Row) -> Result<CitizenRecord, StoreError> {
    Ok(CitizenRecord {
        id: column(row, 0)?,
        national_id: column(row, 1)?,
        profile: column(row, 2)?,
        password_hash: column(row, 3)?,
        totp_secret: column(row, 4)?,
        created_at: column(row, 5)?,
    })
}

fn client(row: &Row) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord { client_id: column(row, 0)?, registration: column(row, 1)?, created_at: column(row, 2)? })
}

fn family(row: &Row) -> Result<RefreshFamily, StoreError> {
    Ok(RefreshFamily {
        family: column(row, 0)?,
        client_id: column(row, 1)?,
        citizen_id: column(row, 2)?,
        grant: column(row, 3)?,
        generation: column(row, 4)?,
        issued_at: column(row, 5)?,
        expires_at: column(row, 6)?,
        ends_at: column(row, 7)?,
        revoked: column(row, 8)?,
    })
}

const ACTIVATION_COLUMNS: &str = "code_hash, national_id, custody, officer, expires_at";

fn activation(row: &Row) -> Result<ActivationRecord, StoreError> {
    Ok(ActivationRecord {
        code_hash: column(row, 0)?,
        national_id: column(row, 1)?,
        custody: column(row, 2)?,
        officer: column(row, 3)?,
        expires_at: column(row, 4)?,
    })
}

const SMART_ID_COLUMNS: &str = "national_id, custody, device_kid, device_key, authentication_serial, signature_serial, activated_at";

fn smart_id(row: &Row) -> Result<SmartIdRecord, StoreError> {
    Ok(SmartIdRecord {
        national_id: column(row, 0)?,
        custody: column(row, 1)?,
        device_kid: column(row, 2)?,
        device_key: column(row, 3)?,
        authentication_serial: column(row, 4)?,
        signature_serial: column(row, 5)?,
        activated_at: column(row, 6)?,
    })
}

fn signing_key(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: column(row, 0)?,
        purpose: column(row, 1)?,
        key: column(row, 2)?,
        algorithm: column(row, 3)?,
        public_jwk: column(row, 4)?,
        created_at: column(row, 5)?,
        active_from: column(row, 6)?,
    })
}

impl PostgresStore {
    async fn one<T>(&self, sql: &str, params: &[&(dyn ToSql + Sync)], read: fn(&Row) -> Result<T, StoreError>) -> Result<Option<T>, StoreError> {
        self.conn().client.query_opt(sql, params).await.map_err(db)?.map(|r| read(&r)).transpose()
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        self.conn().client.execute(sql, params).await.map_err(db)
    }
}

#[async_trait::async_trait]
impl IdpStore for PostgresStore {
    async fn insert_citizen(&self, c: &CitizenRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO citizens ({CITIZEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING");
        let n = self.execute(&sql, &[&c.id, &c.national_id, &c.profile, &c.password_hash, &c.totp_secret, &c.created_at]).await?;
        if n == 0 { Err(StoreError::DuplicateCitizen(c.national_id.clone())) } else { Ok(()) }
    }

    async fn citizen(&self, national_id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.one(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE national_id = $1"), &[&national_id], citizen).await
    }

    async fn citizen_by_id(&self, id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.one(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE id = $1"), &[&id], citizen).await
    }

    async fn set_totp(&self, national_id: &str, secret: Option<&str>) -> Result<(), StoreError> {
        let n = self.execute("UPDATE citizens SET totp_secret = $2 WHERE national_id = $1", &[&national_id, &secret]).await?;
        if n == 0 { Err(StoreError::UnknownCitizen(national_id.to_owned())) } else { Ok(()) }
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let sql = "INSERT INTO clients (client_id, registration, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        let n = self.execute(sql, &[&c.client_id, &c.registration, &c.created_at]).await?;
        if n == 0 { Err(StoreError::DuplicateClient(c.client_id.clone())) } else { Ok(()) }
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.one("SELECT client_id, registration, created_at FROM clients WHERE client_id = $1", &[&client_id], client).await
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = self.conn().client.query("SELECT client_id, registration, created_at FROM clients ORDER BY client_id", &[]).await.map_err(db)?;
        rows.iter().map(client).collect()
    }

    async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        // One statement, so that the client and what hangs on it go together.
        let sql = "WITH gone AS (DELETE FROM clients WHERE client_id = $1 RETURNING client_id),
                        c AS (DELETE FROM consents WHERE client_id IN (SELECT client_id FROM gone)),
                        r AS (DELETE FROM refresh_families WHERE client_id IN (SELECT client_id FROM gone))
                   SELECT count(*) FROM gone";
        let n: i64 = self.conn().client.query_one(sql, &[&client_id]).await.map_err(db)?.get(0);
        Ok(n > 0)
    }

    async fn put_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        let sql = "INSERT INTO consents (citizen_id, client_id, grant_data, granted_at) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (citizen_id, client_id) DO UPDATE SET grant_data = excluded.grant_data, granted_at = excluded.granted_at";
        self.execute(sql, &[&c.citizen_id, &c.client_id, &c.grant, &c.granted_at]).await.map(drop)
    }

    async fn consent(&self, citizen_id: &str, client_id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let sql = "SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = $1 AND client_id = $2";
        self.one(sql, &[&citizen_id, &client_id], |r| {
            Ok(ConsentRecord { citizen_id: column(r, 0)?, client_id: column(r, 1)?, grant: column(r, 2)?, granted_at: column(r, 3)? })
        })
        .await
    }

    async fn consents_of(&self, citizen_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let sql = "SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = $1 ORDER BY client_id";
        let rows = self.conn().client.query(sql, &[&citizen_id]).await.map_err(db)?;
        rows.iter()
            .map(|r| Ok(ConsentRecord { citizen_id: column(r, 0)?, client_id: column(r, 1)?, grant: column(r, 2)?, granted_at: column(r, 3)? }))
            .collect()
    }

    async fn revoke_consent(&self, citizen_id: &str, client_id: &str) -> Result<bool, StoreError> {
        // One statement, so that the consent and the tokens it allowed go together.
        let sql = "WITH gone AS (DELETE FROM consents WHERE citizen_id = $1 AND client_id = $2 RETURNING 1),
                        r AS (UPDATE refresh_families SET revoked = true WHERE citizen_id = $1 AND client_id = $2)
                   SELECT count(*) FROM gone";
        let n: i64 = self.conn().client.query_one(sql, &[&citizen_id, &client_id]).await.map_err(db)?.get(0);
        Ok(n > 0)
    }

    async fn insert_refresh_family(&self, f: &RefreshFamily) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO refresh_families ({FAMILY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING");
        let params: [&(dyn ToSql + Sync); 9] =
            [&f.family, &f.client_id, &f.citizen_id, &f.grant, &f.generation, &f.issued_at, &f.expires_at, &f.ends_at, &f.revoked];
        if self.execute(&sql, &params).await? == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
    }

    async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        self.one(&format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE family = $1"), &[&id], family).await
    }

    async fn rotate_refresh_family(&self, id: &str, generation: i64, client_id: &str, expires_at: i64, now: i64) -> Result<Rotation, StoreError> {
        // The row lock makes one of two concurrent rotations from a generation win; the
        // other then finds the generation moved on, which is a reuse.
        let sql = format!(
            "UPDATE refresh_families SET generation = generation + 1, expires_at = LEAST($4, ends_at)
             WHERE family = $1 AND generation = $2 AND client_id = $3 AND NOT revoked AND expires_at > $5
             RETURNING {FAMILY_COLUMNS}"
        );
        if let Some(f) = self.one(&sql, &[&id, &generation, &client_id, &expires_at, &now], family).await? {
            return Ok(Rotation::Rotated(f));
        }
        let reuse = "UPDATE refresh_families SET revoked = true
                     WHERE family = $1 AND generation > $2 AND client_id = $3 AND NOT revoked AND expires_at > $4";
        match self.execute(reuse, &[&id, &generation, &client_id, &now]).await? {
            1 => Ok(Rotation::Reused { family: id.to_owned() }),
            _ => Ok(Rotation::Invalid),
        }
    }

    async fn revoke_refresh_family(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute("UPDATE refresh_families SET revoked = true WHERE family = $1 AND NOT revoked", &[&id]).await? > 0)
    }

    async fn purge_refresh_families(&self, now: i64) -> Result<u64, StoreError> {
        // Row locks only: rotations of live families go on meanwhile.
        self.execute("DELETE FROM refresh_families WHERE expires_at < $1", &[&now]).await
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING");
        let n = self.execute(&sql, &[&k.kid, &k.purpose, &k.key, &k.algorithm, &k.public_jwk, &k.created_at, &k.active_from]).await?;
        if n == 0 { Err(StoreError::Database(format!("signing key {} exists already", k.kid))) } else { Ok(()) }
    }

    async fn insert_activation(&self, a: &ActivationRecord) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING");
        let params: [&(dyn ToSql + Sync); 5] = [&a.code_hash, &a.national_id, &a.custody, &a.officer, &a.expires_at];
        if self.execute(&sql, &params).await? == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
    }

    async fn activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        let sql = format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE code_hash = $1 AND expires_at > $2");
        self.one(&sql, &[&code_hash, &now], activation).await
    }

    async fn take_activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        let sql = format!("DELETE FROM activations WHERE code_hash = $1 AND expires_at > $2 RETURNING {ACTIVATION_COLUMNS}");
        self.one(&sql, &[&code_hash, &now], activation).await
    }

    async fn put_smart_id(&self, r: &SmartIdRecord) -> Result<Option<SmartIdRecord>, StoreError> {
        // One statement: the row as it was (locked) and the new one.
        let sql = format!(
            "WITH old AS (SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = $1 FOR UPDATE),
                  put AS (INSERT INTO smart_ids ({SMART_ID_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                          ON CONFLICT (national_id) DO UPDATE SET custody = $2, device_kid = $3, device_key = $4,
                              authentication_serial = $5, signature_serial = $6, activated_at = $7)
             SELECT {SMART_ID_COLUMNS} FROM old"
        );
        let params: [&(dyn ToSql + Sync); 7] =
            [&r.national_id, &r.custody, &r.device_kid, &r.device_key, &r.authentication_serial, &r.signature_serial, &r.activated_at];
        self.one(&sql, &params, smart_id).await
    }

    async fn smart_id(&self, national_id: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.one(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = $1"), &[&national_id], smart_id).await
    }

    async fn smart_id_by_device(&self, device_kid: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.one(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE device_kid = $1"), &[&device_kid], smart_id).await
    }

    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE purpose = $1 ORDER BY created_at, kid");
        let rows = self.conn().client.query(&sql, &[&purpose]).await.map_err(db)?;
        rows.iter().map(signing_key).collect()
    }
}
