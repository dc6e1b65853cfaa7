//! Schema migrations on every durable backend: a database the previous release made
//! (`testdata/`) is taken over and migrated forward, an older one is migrated in order,
//! opening twice changes nothing, and a database of a newer release is refused.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod each_backend;

use std::path::PathBuf;
use std::sync::Arc;

use store::*;

/// A database reached around the store, as an operator's tools or another release would.
enum Database {
    Sqlite { path: PathBuf, _dir: tempfile::TempDir },
    Postgres { url: String },
}

async fn sqlite() -> Database {
    let dir = tempfile::tempdir().expect("tempdir");
    Database::Sqlite { path: dir.path().join("hawiya.db"), _dir: dir }
}

/// A fresh database on the throw-away server `./scripts/test` starts.
async fn postgres() -> Database {
    Database::Postgres { url: hawiya_e2e::postgres_database() }
}

impl Database {
    fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "sqlite",
            Database::Postgres { .. } => "postgres",
        }
    }

    async fn open(&self) -> Result<Arc<dyn DurableStore>, StoreError> {
        store::open(&match self {
            Database::Sqlite { path, .. } => DurableConfig::Sqlite { path: path.clone() },
            Database::Postgres { url } => DurableConfig::Postgres { url: url.clone(), connections: 2 },
        })
        .await
    }

    /// Runs an SQL script on a connection of its own.
    async fn execute(&self, sql: &str) {
        match self {
            Database::Sqlite { path, .. } => rusqlite::Connection::open(path).expect("open").execute_batch(sql).expect("script"),
            Database::Postgres { url } => postgres_client(url).await.batch_execute(sql).await.expect("script"),
        }
    }

    /// `schema_migrations`, row by row: each version and when it was applied.
    async fn recorded(&self) -> Vec<(i64, String)> {
        const SQL: &str = "SELECT version, CAST(applied_at AS TEXT) FROM schema_migrations ORDER BY version";
        match self {
            Database::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open");
                let mut stmt = conn.prepare(SQL).expect("prepare");
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query").collect::<Result<_, _>>().expect("rows")
            }
            Database::Postgres { url } => postgres_client(url).await.query(SQL, &[]).await.expect("query").iter().map(|r| (r.get(0), r.get(1))).collect(),
        }
    }

    async fn versions(&self) -> Vec<i64> {
        self.recorded().await.into_iter().map(|(v, _)| v).collect()
    }

    /// The SQL for "now" in `applied_at`, as each backend's bookkeeping writes it.
    fn now(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => "unixepoch()",
            Database::Postgres { .. } => "now()",
        }
    }

    /// The database the previous release made, with rows in every table (see its header).
    fn previous_release(&self) -> &'static str {
        match self {
            Database::Sqlite { .. } => include_str!("testdata/sqlite-v4.sql"),
            Database::Postgres { .. } => include_str!("testdata/postgres-v4.sql"),
        }
    }

    /// The migration files of this backend, in order.
    fn migrations(&self) -> Vec<(i64, String)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations").join(self.backend());
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir).expect("migrations").map(|e| e.expect("entry").path()).collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let name = f.file_name().expect("name").to_string_lossy().into_owned();
                (name[..4].parse().expect("NNNN_"), std::fs::read_to_string(f).expect("read"))
            })
            .collect()
    }

    /// Every version this release knows: 1, 2, … up to the last migration file.
    fn known(&self) -> Vec<i64> {
        self.migrations().iter().map(|(v, _)| *v).collect()
    }
}

async fn postgres_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

fn serial(last: u8) -> Serial {
    Serial::new(vec![0x01, last]).expect("serial")
}

fn new_certificate(last: u8) -> NewCertificate {
    NewCertificate {
        serial: serial(last),
        issuer: "citizen-authentication-ca".into(),
        profile: "citizen-authentication".into(),
        subject: format!("CN=Citizen {last}"),
        not_before: 1_800_000_000,
        not_after: 1_900_000_000,
        der: vec![0x30, last],
        issued_at: 1_800_000_000,
    }
}

async fn takes_over_a_database_of_the_previous_release(db: Database) {
    db.execute(db.previous_release()).await;
    assert_eq!(db.versions().await, [1, 2, 3, 4], "the dump is of a version-4 database");
    let before = db.recorded().await;
    let s = db.open().await.expect("open the previous release's database");
    let after = db.recorded().await;
    assert_eq!(after.iter().map(|(v, _)| *v).collect::<Vec<_>>(), db.known(), "migrated to the newest version");
    assert_eq!(after[..before.len()], before[..], "what the previous release applied is kept as it was");

    // Everything the previous release wrote reads back.
    let good = s.certificate(&serial(1)).await.expect("read").expect("present");
    assert_eq!(good.certificate.subject, "CN=Citizen 1");
    assert_eq!(good.status, CertificateStatus::Good);
    let compromised = CertificateStatus::Revoked { reason: RevocationReason::KeyCompromise, at: 1_750_000_000 };
    assert_eq!(s.status("citizen-authentication-ca", &serial(2)).await.expect("status"), Some(compromised));
    assert!(s.status("citizen-signing-ca", &serial(3)).await.expect("status").expect("present").on_hold());
    assert_eq!(
        s.revoked("citizen-authentication-ca").await.expect("revoked"),
        [RevokedEntry { serial: serial(2), reason: RevocationReason::KeyCompromise, at: 1_750_000_000 }]
    );
    assert_eq!(s.count().await.expect("count"), 3);
    assert_eq!(s.list(None, 10).await.expect("list").len(), 3);
    let crl = s.latest_crl("citizen-authentication-ca").await.expect("crl").expect("present");
    assert_eq!((crl.number, crl.der), (2, vec![0x30, 0x03, 0x02, 0x01, 0x02]));
    assert_eq!(s.ceremony().await.expect("ceremony").expect("present").country, "JO");
    let citizen = s.citizen("9861234501").await.expect("citizen").expect("present");
    assert!(citizen.profile.contains("ليلى"), "Arabic survives: {}", citizen.profile);
    assert_eq!(citizen.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
    assert_eq!(s.client("civil-status").await.expect("client").expect("present").created_at, 1_750_000_002);
    assert_eq!(s.consent("c1", "civil-status").await.expect("consent").expect("present").grant, r#"["name"]"#);
    assert_eq!(s.refresh_family("fam-1").await.expect("family").expect("present").generation, 1);
    assert_eq!(s.signing_keys("idp-signing").await.expect("keys").len(), 1);
    assert_eq!(s.smart_id_by_device("dev-1").await.expect("smart-ID").expect("present").national_id, "9861234501");
    let code = "ab".repeat(32);
    assert_eq!(s.activation(&code, 1_800_000_000).await.expect("activation").expect("present").officer, "ra-1");

    // And the new release writes on top of it.
    s.insert_certificate(&new_certificate(4)).await.expect("insert");
    assert!(matches!(s.insert_certificate(&new_certificate(1)).await, Err(StoreError::DuplicateSerial(_))));
    s.revoke(&serial(3), RevocationReason::CessationOfOperation, 1_800_000_001).await.expect("a hold becomes a revocation");
    assert!(matches!(s.release(&serial(1)).await, Err(StoreError::NotOnHold(_))));
    assert_eq!(s.next_crl_number("citizen-authentication-ca").await.expect("number"), 3);
    match s.rotate_refresh_family("fam-1", 1, "civil-status", 4_000_000_002, 1_800_000_002).await.expect("rotate") {
        Rotation::Rotated(f) => assert_eq!(f.generation, 2),
        other => panic!("expected a rotation, got {other:?}"),
    }
    assert_eq!(s.take_activation(&code, 1_800_000_000).await.expect("take").map(|a| a.national_id).as_deref(), Some("9861234502"));
    assert_eq!(s.count().await.expect("count"), 4);
}

async fn makes_tables_that_joined_a_migration_after_it_ran(db: Database) {
    // A version-4 database without the two tables that were added to migrations 2 and 4
    // after databases had applied them (see 0005_tables_added_late.sql).
    db.execute(db.previous_release()).await;
    db.execute("DROP TABLE signing_keys; DROP TABLE activations").await;
    let s = db.open().await.expect("open");
    assert_eq!(db.versions().await, db.known());
    let key = SigningKeyRecord {
        kid: "k2".into(),
        purpose: "idp-signing".into(),
        key: "soft:k2".into(),
        algorithm: "ES256".into(),
        public_jwk: "{}".into(),
        created_at: 1,
        active_from: 2,
    };
    s.insert_signing_key(&key).await.expect("signing_keys exists");
    assert_eq!(s.signing_keys("idp-signing").await.expect("keys"), [key]);
    let activation =
        ActivationRecord { code_hash: "cd".into(), national_id: "9860000001".into(), custody: "software".into(), officer: "ra-2".into(), expires_at: 10 };
    s.insert_activation(&activation).await.expect("activations exists");
    assert_eq!(s.take_activation("cd", 5).await.expect("take"), Some(activation));
}

async fn migrates_an_older_database_in_order(db: Database) {
    // A version-2 database as the release of that time left it: its first two files, run
    // as that release ran them, and a refresh token in the per-token table 0003 replaces.
    let bookkeeping = match db {
        Database::Sqlite { .. } => "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        Database::Postgres { .. } => "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    };
    db.execute(bookkeeping).await;
    for (version, sql) in &db.migrations()[..2] {
        db.execute(sql).await;
        db.execute(&format!("INSERT INTO schema_migrations (version, applied_at) VALUES ({version}, {})", db.now())).await;
    }
    db.execute("INSERT INTO citizens (id, national_id, profile, password_hash, created_at) VALUES ('c7', '9860000007', '{}', 'hash', 7)").await;
    let revoked = if matches!(db, Database::Sqlite { .. }) { "0" } else { "false" };
    db.execute(&format!(
        "INSERT INTO refresh_tokens (hash, family, client_id, citizen_id, grant_data, issued_at, expires_at, used, revoked)
         VALUES ('\\x00', 'old-family', 'rp', 'c7', '{{}}', 1, 2, {revoked}, {revoked})"
    ))
    .await;

    let s = db.open().await.expect("open a version-2 database");
    assert_eq!(db.versions().await, db.known(), "every later migration applied, in order");
    assert_eq!(s.citizen("9860000007").await.expect("citizen").expect("kept").id, "c7");
    assert_eq!(s.refresh_family("old-family").await.expect("family"), None, "per-token rows are gone with their table");
    let family = RefreshFamily {
        family: "new-family".into(),
        client_id: "rp".into(),
        citizen_id: "c7".into(),
        grant: "{}".into(),
        generation: 0,
        issued_at: 1,
        expires_at: 2,
        ends_at: 3,
        revoked: false,
    };
    s.insert_refresh_family(&family).await.expect("refresh_families exists");
    assert_eq!(s.refresh_family("new-family").await.expect("family"), Some(family));
}

async fn opening_twice_changes_nothing(db: Database) {
    let first = db.open().await.expect("first open");
    first.insert_certificate(&new_certificate(9)).await.expect("insert");
    let recorded = db.recorded().await;
    assert_eq!(recorded.iter().map(|(v, _)| *v).collect::<Vec<_>>(), db.known());
    drop(first);
    let second = db.open().await.expect("second open");
    assert_eq!(db.recorded().await, recorded, "no migration ran again");
    assert_eq!(second.certificate(&serial(9)).await.expect("read").map(|r| r.certificate), Some(new_certificate(9)));
    second.insert_certificate(&new_certificate(10)).await.expect("insert after reopening");
    assert_eq!(second.count().await.expect("count"), 2);
}

async fn refuses_a_database_of_a_newer_release(db: Database) {
    drop(db.open().await.expect("open"));
    let newer = db.known().last().copied().expect("a migration") + 1;
    db.execute(&format!("INSERT INTO schema_migrations (version, applied_at) VALUES ({newer}, {})", db.now())).await;
    match db.open().await {
        Err(e @ StoreError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (newer, newer - 1));
            let message = e.to_string();
            assert!(message.contains(&format!("schema version {newer}")) && message.contains("newer than this release knows"), "{message}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(db.versions().await.last(), Some(&newer), "the newer database is left as it was");
}

each_backend! {
    backends: [sqlite, postgres],
    tests: [
        takes_over_a_database_of_the_previous_release,
        makes_tables_that_joined_a_migration_after_it_ran,
        migrates_an_older_database_in_order,
        opening_twice_changes_nothing,
        refuses_a_database_of_a_newer_release,
    ],
}
