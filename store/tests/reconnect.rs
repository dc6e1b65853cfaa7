//! A PostgreSQL connection that breaks (the server went away, a failover is under way) is
//! replaced without restarting the process, and the requests meanwhile fail as
//! `StoreError::Unreachable` without changing anything. The server is the throw-away one
//! `./scripts/test` starts; connections to the test's own database are cut with
//! `pg_terminate_backend` and refused with `ALLOW_CONNECTIONS false`. Killing a primary and
//! promoting its standby is tested end to end in tests/tests/ha.rs.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use store::{CaStore, NewCertificate, PostgresStore, Serial, StoreError};

fn cert(serial: u8) -> NewCertificate {
    NewCertificate {
        serial: Serial::new(vec![0x01, serial]).expect("serial"),
        issuer: "citizen-signing-ca".into(),
        profile: "citizen-signature".into(),
        subject: format!("CN=Citizen {serial}"),
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        der: vec![0x30, serial],
        issued_at: 1_700_000_000,
    }
}

/// A connection to the server's `postgres` database, from which the test's database is
/// cut off and let in again.
async fn admin() -> tokio_postgres::Client {
    let url = std::env::var("HAWIYA_TEST_POSTGRES_URL").expect("HAWIYA_TEST_POSTGRES_URL (run through ./scripts/test)");
    let url = url.replace("sslmode=disable", "");
    let (client, connection) = tokio_postgres::connect(&format!("{url} dbname=postgres"), tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);
    client
}

fn database_name(url: &str) -> &str {
    url.split_whitespace().find_map(|kv| kv.strip_prefix("dbname=")).expect("dbname in the URL")
}

async fn cut_off(admin: &tokio_postgres::Client, db: &str) {
    admin.batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false")).await.expect("refuse new connections");
    let cut: i64 = admin
        .query_one("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", &[&db])
        .await
        .expect("terminate the store's connections")
        .get(0);
    assert_eq!(cut, 2, "the store's two connections were cut");
}

#[tokio::test]
async fn broken_connections_fail_as_unreachable_without_changing_anything_and_are_replaced() {
    let url = hawiya_e2e::postgres_database();
    let db = database_name(&url).to_owned();
    let store = PostgresStore::connect(&url, 2).await.expect("connect");
    store.insert_certificate(&cert(1)).await.expect("stored before the cut");
    let admin = admin().await;
    cut_off(&admin, &db).await;

    // Whether a request meets the dead connection or a refused reconnection, it is
    // unreachable, never a database error; a write does not land.
    let e = store.insert_certificate(&cert(2)).await.expect_err("no server to write to");
    assert!(matches!(e, StoreError::Unreachable { backend: "PostgreSQL", .. }), "{e:?}");
    for _ in 0..4 {
        let e = store.status("citizen-signing-ca", &cert(1).serial).await.expect_err("no server to read from");
        assert!(e.is_unreachable(), "{e:?}");
    }
    let e = store.ping().await.expect_err("no server to ping");
    assert!(e.is_unreachable(), "{e:?}");

    // Let in again: the next requests reconnect, in this process.
    admin.batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true")).await.expect("allow connections");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(e) => assert!(e.is_unreachable() && Instant::now() < deadline, "not reconnected: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.status("citizen-signing-ca", &cert(1).serial).await.expect("read after reconnecting"), Some(store::CertificateStatus::Good));
    assert_eq!(store.certificate(&cert(2).serial).await.expect("read"), None, "the refused write left nothing");
    store.insert_certificate(&cert(2)).await.expect("written after reconnecting");
    let connected: i64 = admin.query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&db]).await.expect("count").get(0);
    assert_eq!(connected, 2, "both connections were replaced, none leaked");
}
