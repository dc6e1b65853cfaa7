//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go to one writer thread that commits whatever has queued up in a single
//! transaction (group commit): each caller's change runs in its own savepoint, so one
//! failure does not undo the others, and every caller hears back only after the commit is
//! on disk. Reads use a small pool of read-only connections, which WAL lets run alongside
//! the writer.

use std::path::Path;
use std::sync::{Mutex, mpsc};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
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

const RECORD_COLUMNS: &str = "serial, issuer, profile, subject, not_before, not_after, der, issued_at, status, reason, revoked_at";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<CertificateRecord, StoreError>> {
    let serial: Vec<u8> = row.get(0)?;
    let status: String = row.get(8)?;
    let reason: Option<u8> = row.get(9)?;
    let revoked_at: Option<i64> = row.get(10)?;
    let certificate = NewCertificate {
        serial: match Serial::new(serial) {
            Ok(s) => s,
            Err(e) => return Ok(Err(StoreError::Corrupt(e))),
        },
        issuer: row.get(1)?,
        profile: row.get(2)?,
        subject: row.get(3)?,
        not_before: row.get(4)?,
        not_after: row.get(5)?,
        der: row.get(6)?,
        issued_at: row.get(7)?,
    };
    Ok(status_of(&status, reason, revoked_at).map(|status| CertificateRecord { certificate, status }))
}

fn find(conn: &Connection, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
    conn.prepare_cached(&format!("SELECT {RECORD_COLUMNS} FROM certificates WHERE serial = ?1"))
        .map_err(db)?
        .query_row([serial.as_bytes()], record)
        .optional()
        .map_err(db)?
        .transpose()
}

#[async_trait::async_trait]
impl CaStore for SqliteStore {
    async fn insert_certificate(&self, c: &NewCertificate) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO certificates (serial, issuer, profile, subject, not_before, not_after, der, issued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (serial) DO NOTHING",
                )
                .map_err(db)?
                .execute(params![c.serial.as_bytes(), c.issuer, c.profile, c.subject, c.not_before, c.not_after, c.der, c.issued_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateSerial(c.serial)) } else { Ok(()) }
        })
        .await
    }

    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError> {
        self.read(|conn| find(conn, serial))
    }

    async fn status(&self, issuer: &str, serial: &Serial) -> Result<Option<CertificateStatus>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT status, reason, revoked_at FROM certificates WHERE serial = ?1 AND issuer = ?2")
                .map_err(db)?
                .query_row(params![serial.as_bytes(), issuer], |r| Ok(status_of(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(db)?
                .transpose()
        })
    }

    async fn revoke(&self, serial: &Serial, reason: RevocationReason, at: i64) -> Result<CertificateRecord, StoreError> {
        let serial = serial.clone();
        self.write(move |conn| {
            let hold = RevocationReason::CertificateHold.code();
            let changed = conn
                .prepare_cached(
                    "UPDATE certificates SET status = 'revoked', reason = ?2, revoked_at = ?3
                     WHERE serial = ?1 AND (status = 'good' OR (reason = ?4 AND ?2 <> ?4))",
                )
                .map_err(db)?
                .execute(params![serial.as_bytes(), reason.code(), at, hold])
                .map_err(db)?;
            let current = find(conn, &serial)?;
            match current {
                Some(record) if changed == 1 => Ok(record),
                other => Err(refusal(&serial, other.map(|r| r.status), false)),
            }
        })
        .await
    }

    async fn release(&self, serial: &Serial) -> Result<CertificateRecord, StoreError> {
        let serial = serial.clone();
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE certificates SET status = 'good', reason = NULL, revoked_at = NULL
                     WHERE serial = ?1 AND status = 'revoked' AND reason = ?2",
                )
                .map_err(db)?
                .execute(params![serial.as_bytes(), RevocationReason::CertificateHold.code()])
                .map_err(db)?;
            let current = find(conn, &serial)?;
            match current {
                Some(record) if changed == 1 => Ok(record),
                other => Err(refusal(&serial, other.map(|r| r.status), true)),
            }
        })
        .await
    }

    async fn list(&self, issuer: Option<&str>, limit: usize) -> Result<Vec<CertificateRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {RECORD_COLUMNS} FROM certificates WHERE ?1 IS NULL OR issuer = ?1
                     ORDER BY issued_at DESC, serial LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = stmt.query_map(params![issuer, limit as i64], record).map_err(db)?;
            rows.map(|r| r.map_err(db)?).collect()
        })
    }

    async fn revoked(&self, issuer: &str) -> Result<Vec<RevokedEntry>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT serial, reason, revoked_at FROM certificates WHERE issuer = ?1 AND status = 'revoked' ORDER BY serial")
                .map_err(db)?;
            let rows = stmt.query_map([issuer], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, u8>(1)?, r.get::<_, i64>(2)?))).map_err(db)?;
            rows.map(|row| {
                let (serial, reason, at) = row.map_err(db)?;
                Ok(RevokedEntry {
                    serial: Serial::new(serial).map_err(StoreError::Corrupt)?,
                    reason: RevocationReason::from_code(reason).ok_or_else(|| StoreError::Corrupt(format!("reason code {reason}")))?,
                    at,
                })
            })
            .collect()
        })
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.read(|conn| conn.query_row("SELECT COUNT(*) FROM certificates", [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(db))
    }

    async fn next_crl_number(&self, issuer: &str) -> Result<u64, StoreError> {
        let issuer = issuer.to_owned();
        self.write(move |conn| {
            conn.query_row(
                "INSERT INTO crl_numbers (issuer, last) VALUES (?1, 1)
                 ON CONFLICT (issuer) DO UPDATE SET last = last + 1 RETURNING last",
                [&issuer],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }

    async fn put_crl(&self, crl: &PublishedCrl) -> Result<(), StoreError> {
        let crl = crl.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO crls (issuer, number, this_update, next_update, der) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (issuer) DO UPDATE SET number = excluded.number, this_update = excluded.this_update,
                   next_update = excluded.next_update, der = excluded.der WHERE excluded.number > crls.number",
                params![crl.issuer, crl.number as i64, crl.this_update, crl.next_update, crl.der],
            )
            .map(|_| ())
            .map_err(db)
        })
        .await
    }

    async fn latest_crl(&self, issuer: &str) -> Result<Option<PublishedCrl>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT number, this_update, next_update, der FROM crls WHERE issuer = ?1")
                .map_err(db)?
                .query_row([issuer], |r| {
                    Ok(PublishedCrl {
                        issuer: issuer.to_owned(),
                        number: r.get::<_, i64>(0)? as u64,
                        this_update: r.get(1)?,
                        next_update: r.get(2)?,
                        der: r.get(3)?,
                    })
                })
                .optional()
                .map_err(db)
        })
    }

    async fn put_ceremony(&self, record: &CeremonyRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let performed_at = record.performed_at.clone();
        self.write(move |conn| {
            let inserted = conn.execute("INSERT INTO ceremony (id, record) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING", [&json]).map_err(db)?;
            if inserted == 0 {
                let existing: String = conn.query_row("SELECT record FROM ceremony WHERE id = 1", [], |r| r.get(0)).map_err(db)?;
                let when = serde_json::from_str::<CeremonyRecord>(&existing).map(|r| r.performed_at).unwrap_or(performed_at);
                return Err(StoreError::CeremonyExists(when));
            }
            Ok(())
        })
        .await
    }

    async fn ceremony(&self) -> Result<Option<CeremonyRecord>, StoreError> {
        self.read(|conn| {
            let json: Option<String> = conn.query_row("SELECT record FROM ceremony WHERE id = 1", [], |r| r.get(0)).optional().map_err(db)?;
            json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(format!("ceremony record: {e}")))).transpose()
        })
    }
}

const CITIZEN_COLUMNS: &str = "id, national_id, profile, password_hash, totp_secret, created_at";
const KEY_COLUMNS: &str = "kid, purpose, key_ref, algorithm, public_jwk, created_at, active_from";

fn citizen(row: &rusqlite::Row<'_>) -> rusqlite::Result<CitizenRecord> {
    Ok(CitizenRecord {
        id: row.get(0)?,
        national_id: row.get(1)?,
        profile: row.get(2)?,
        password_hash: row.get(3)?,
        totp_secret: row.get(4)?,
        created_at: row.get(5)?,
    })
}

fn client(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord { client_id: row.get(0)?, registration: row.get(1)?, created_at: row.get(2)? })
}

const FAMILY_COLUMNS: &str = "family, client_id, citizen_id, grant_data, generation, issued_at, expires_at, ends_at, revoked";

fn family(row: &rusqlite::Row<'_>) -> rusqlite::Result<RefreshFamily> {
    Ok(RefreshFamily {
        family: row.get(0)?,
        client_id: row.get(1)?,
        citizen_id: row.get(2)?,
        grant: row.get(3)?,
        generation: row.get(4)?,
        issued_at: row.get(5)?,
        expires_at: row.get(6)?,
        ends_at: row.get(7)?,
        revoked: row.get(8)?,
    })
}

fn signing_key(row: &rusqlite::Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.get(0)?,
        purpose: row.get(1)?,
        key: row.get(2)?,
        algorithm: row.get(3)?,
        public_jwk: row.get(4)?,
        created_at: row.get(5)?,
        active_from: row.get(6)?,
    })
}

const ACTIVATION_COLUMNS: &str = "code_hash, national_id, custody, officer, expires_at";

fn activation(row: &rusqlite::Row<'_>) -> rusqlite::Result<ActivationRecord> {
    Ok(ActivationRecord { code_hash: row.get(0)?, national_id: row.get(1)?, custody: row.get(2)?, officer: row.get(3)?, expires_at: row.get(4)? })
}

const SMART_ID_COLUMNS: &str = "national_id, custody, device_kid, device_key, authentication_serial, signature_serial, activated_at";

fn smart_id(row: &rusqlite::Row<'_>) -> rusqlite::Result<SmartIdRecord> {
    Ok(SmartIdRecord {
        national_id: row.get(0)?,
        custody: row.get(1)?,
        device_kid: row.get(2)?,
        device_key: row.get(3)?,
        authentication_serial: row.get(4)?,
        signature_serial: row.get(5)?,
        activated_at: row.get(6)?,
    })
}

fn find_family(conn: &Connection, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
    conn.prepare_cached(&format!("SELECT {FAMILY_COLUMNS} FROM refresh_families WHERE family = ?1")).map_err(db)?.query_row([id], family).optional().map_err(db)
}

fn revoke_family(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    let n = conn.prepare_cached("UPDATE refresh_families SET revoked = 1 WHERE family = ?1 AND revoked = 0").map_err(db)?.execute([id]).map_err(db)?;
    Ok(n > 0)
}

#[async_trait::async_trait]
impl IdpStore for SqliteStore {
    async fn insert_citizen(&self, c: &CitizenRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO citizens ({CITIZEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![c.id, c.national_id, c.profile, c.password_hash, c.totp_secret, c.created_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateCitizen(c.national_id)) } else { Ok(()) }
        })
        .await
    }

    async fn citizen(&self, national_id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE national_id = ?1"))
                .map_err(db)?
                .query_row([national_id], citizen)
                .optional()
                .map_err(db)
        })
    }

    async fn citizen_by_id(&self, id: &str) -> Result<Option<CitizenRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {CITIZEN_COLUMNS} FROM citizens WHERE id = ?1")).map_err(db)?.query_row([id], citizen).optional().map_err(db)
        })
    }

    async fn set_totp(&self, national_id: &str, secret: Option<&str>) -> Result<(), StoreError> {
        let (national_id, secret) = (national_id.to_owned(), secret.map(str::to_owned));
        self.write(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE citizens SET totp_secret = ?2 WHERE national_id = ?1")
                .map_err(db)?
                .execute(params![national_id, secret])
                .map_err(db)?;
            if changed == 0 { Err(StoreError::UnknownCitizen(national_id)) } else { Ok(()) }
        })
        .await
    }

    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached("INSERT INTO clients (client_id, registration, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
                .map_err(db)?
                .execute(params![c.client_id, c.registration, c.created_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateClient(c.client_id)) } else { Ok(()) }
        })
        .await
    }

    async fn client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT client_id, registration, created_at FROM clients WHERE client_id = ?1")
                .map_err(db)?
                .query_row([client_id], client)
                .optional()
                .map_err(db)
        })
    }

    async fn clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT client_id, registration, created_at FROM clients ORDER BY client_id")
                .map_err(db)?
                .query_map([], client)
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })
    }

    async fn remove_client(&self, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |conn| {
            let removed = conn.execute("DELETE FROM clients WHERE client_id = ?1", [&client_id]).map_err(db)?;
            if removed > 0 {
                conn.execute("DELETE FROM consents WHERE client_id = ?1", [&client_id]).map_err(db)?;
                conn.execute("DELETE FROM refresh_families WHERE client_id = ?1", [&client_id]).map_err(db)?;
            }
            Ok(removed > 0)
        })
        .await
    }

    async fn put_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        let c = c.clone();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO consents (citizen_id, client_id, grant_data, granted_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (citizen_id, client_id) DO UPDATE SET grant_data = excluded.grant_data, granted_at = excluded.granted_at",
            )
            .map_err(db)?
            .execute(params![c.citizen_id, c.client_id, c.grant, c.granted_at])
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn consent(&self, citizen_id: &str, client_id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = ?1 AND client_id = ?2")
                .map_err(db)?
                .query_row([citizen_id, client_id], |r| {
                    Ok(ConsentRecord { citizen_id: r.get(0)?, client_id: r.get(1)?, grant: r.get(2)?, granted_at: r.get(3)? })
                })
                .optional()
                .map_err(db)
        })
    }

    async fn consents_of(&self, citizen_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT citizen_id, client_id, grant_data, granted_at FROM consents WHERE citizen_id = ?1 ORDER BY client_id")
                .map_err(db)?
                .query_map([citizen_id], |r| Ok(ConsentRecord { citizen_id: r.get(0)?, client_id: r.get(1)?, grant: r.get(2)?, granted_at: r.get(3)? }))
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })
    }

    async fn revoke_consent(&self, citizen_id: &str, client_id: &str) -> Result<bool, StoreError> {
        let (citizen_id, client_id) = (citizen_id.to_owned(), client_id.to_owned());
        self.write(move |conn| {
            let n = conn.execute("DELETE FROM consents WHERE citizen_id = ?1 AND client_id = ?2", [&citizen_id, &client_id]).map_err(db)?;
            conn.execute("UPDATE refresh_families SET revoked = 1 WHERE citizen_id = ?1 AND client_id = ?2", [&citizen_id, &client_id]).map_err(db)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_refresh_family(&self, f: &RefreshFamily) -> Result<(), StoreError> {
        let f = f.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO refresh_families ({FAMILY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![f.family, f.client_id, f.citizen_id, f.grant, f.generation, f.issued_at, f.expires_at, f.ends_at, f.revoked])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
        })
        .await
    }

    async fn refresh_family(&self, id: &str) -> Result<Option<RefreshFamily>, StoreError> {
        self.read(|conn| find_family(conn, id))
    }

    async fn rotate_refresh_family(&self, id: &str, generation: i64, client_id: &str, expires_at: i64, now: i64) -> Result<Rotation, StoreError> {
        let (id, client_id) = (id.to_owned(), client_id.to_owned());
        self.write(move |conn| {
            let rotated = conn
                .prepare_cached(&format!(
                    "UPDATE refresh_families SET generation = generation + 1, expires_at = MIN(?4, ends_at)
                     WHERE family = ?1 AND generation = ?2 AND client_id = ?3 AND revoked = 0 AND expires_at > ?5
                     RETURNING {FAMILY_COLUMNS}"
                ))
                .map_err(db)?
                .query_row(params![id, generation, client_id, expires_at, now], family)
                .optional()
                .map_err(db)?;
            if let Some(f) = rotated {
                return Ok(Rotation::Rotated(f));
            }
            // Not the live generation: an earlier one of a live family is a reuse.
            let reused = conn
                .prepare_cached(
                    "UPDATE refresh_families SET revoked = 1
                     WHERE family = ?1 AND generation > ?2 AND client_id = ?3 AND revoked = 0 AND expires_at > ?4",
                )
                .map_err(db)?
                .execute(params![id, generation, client_id, now])
                .map_err(db)?;
            match reused {
                1 => Ok(Rotation::Reused { family: id }),
                _ => Ok(Rotation::Invalid),
            }
        })
        .await
    }

    async fn revoke_refresh_family(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |conn| revoke_family(conn, &id)).await
    }

    async fn purge_refresh_families(&self, now: i64) -> Result<u64, StoreError> {
        // Expiry has no index (every rotation would update it): walk the table by key, a few
        // thousand rows per write transaction.
        const STEP: i64 = 2_000;
        let (mut after, mut purged) = (String::new(), 0);
        loop {
            let from = after.clone();
            let (deleted, last) = self
                .write(move |conn| {
                    let last: Option<String> = conn
                        .prepare_cached("SELECT MAX(family) FROM (SELECT family FROM refresh_families WHERE family > ?1 ORDER BY family LIMIT ?2)")
                        .map_err(db)?
                        .query_row(params![from, STEP], |r| r.get(0))
                        .map_err(db)?;
                    let Some(last) = last else { return Ok((0, None)) };
                    let deleted = conn
                        .prepare_cached("DELETE FROM refresh_families WHERE family > ?1 AND family <= ?2 AND expires_at < ?3")
                        .map_err(db)?
                        .execute(params![from, last, now])
                        .map_err(db)?;
                    Ok((deleted as u64, Some(last)))
                })
                .await?;
            purged += deleted;
            match last {
                Some(last) => after = last,
                None => return Ok(purged),
            }
        }
    }

    async fn insert_signing_key(&self, k: &SigningKeyRecord) -> Result<(), StoreError> {
        let k = k.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![k.kid, k.purpose, k.key, k.algorithm, k.public_jwk, k.created_at, k.active_from])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::Database(format!("signing key {} exists already", k.kid))) } else { Ok(()) }
        })
        .await
    }

    async fn insert_activation(&self, a: &ActivationRecord) -> Result<(), StoreError> {
        let a = a.clone();
        self.write(move |conn| {
            let inserted = conn
                .prepare_cached(&format!("INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING"))
                .map_err(db)?
                .execute(params![a.code_hash, a.national_id, a.custody, a.officer, a.expires_at])
                .map_err(db)?;
            if inserted == 0 { Err(StoreError::DuplicateToken) } else { Ok(()) }
        })
        .await
    }

    async fn activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE code_hash = ?1 AND expires_at > ?2"))
                .map_err(db)?
                .query_row(params![code_hash, now], activation)
                .optional()
                .map_err(db)
        })
    }

    async fn take_activation(&self, code_hash: &str, now: i64) -> Result<Option<ActivationRecord>, StoreError> {
        let code_hash = code_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(&format!("DELETE FROM activations WHERE code_hash = ?1 AND expires_at > ?2 RETURNING {ACTIVATION_COLUMNS}"))
                .map_err(db)?
                .query_row(params![code_hash, now], activation)
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn put_smart_id(&self, r: &SmartIdRecord) -> Result<Option<SmartIdRecord>, StoreError> {
        let r = r.clone();
        self.write(move |conn| {
            let old = conn
                .prepare_cached(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = ?1"))
                .map_err(db)?
                .query_row([&r.national_id], smart_id)
                .optional()
                .map_err(db)?;
            // An upsert on the citizen only: a device key of another citizen is a conflict
            // that fails the write (INSERT OR REPLACE would delete the other citizen's row).
            conn.prepare_cached(&format!(
                "INSERT INTO smart_ids ({SMART_ID_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (national_id) DO UPDATE SET custody = ?2, device_kid = ?3, device_key = ?4,
                     authentication_serial = ?5, signature_serial = ?6, activated_at = ?7"
            ))
            .map_err(db)?
            .execute(params![r.national_id, r.custody, r.device_kid, r.device_key, r.authentication_serial, r.signature_serial, r.activated_at])
            .map_err(db)?;
            Ok(old)
        })
        .await
    }

    async fn smart_id(&self, national_id: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE national_id = ?1"))
                .map_err(db)?
                .query_row([national_id], smart_id)
                .optional()
                .map_err(db)
        })
    }

    async fn smart_id_by_device(&self, device_kid: &str) -> Result<Option<SmartIdRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {SMART_ID_COLUMNS} FROM smart_ids WHERE device_kid = ?1"))
                .map_err(db)?
                .query_row([device_kid], smart_id)
                .optional()
                .map_err(db)
        })
    }

    async fn signing_keys(&self, purpose: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM signing_keys WHERE purpose = ?1 ORDER BY created_at, kid"))
                .map_err(db)?
                .query_map([purpose], signing_key)
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })
    }
}
