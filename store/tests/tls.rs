//! TLS to PostgreSQL and Redis refused where it must be: a server certificate from another
//! CA, a host name the certificate does not name, plaintext to a server that speaks only TLS,
//! and a connection string that says nothing about TLS (verify-full, which needs a CA). The
//! servers are the TLS-only ones `./scripts/test` starts; their certificate names 127.0.0.1
//! only, so `localhost` is a wrong name that still reaches them.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use store::ephemeral::{EphemeralStore, RedisStore};
use store::{CaStore, PostgresStore, StoreError};

/// The refusal's whole text (its sources included), or a failure if it connected.
async fn postgres_refusal(url: &str) -> String {
    match tokio::time::timeout(Duration::from_secs(20), PostgresStore::connect(url, 1)).await.expect("an answer within 20 s") {
        Ok(_) => panic!("connected, but must be refused: {url}"),
        Err(e @ StoreError::Open { .. }) => chain(&e),
        Err(e) => panic!("refused, but not as an Open error: {e:?}"),
    }
}

async fn redis_refusal(url: &str) -> String {
    match tokio::time::timeout(Duration::from_secs(20), RedisStore::connect(url, "test:")).await.expect("an answer within 20 s") {
        Ok(_) => panic!("connected, but must be refused: {url}"),
        Err(e @ StoreError::Open { .. }) => chain(&e),
        Err(e) => panic!("refused, but not as an Open error: {e:?}"),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text} / {s}");
        source = s.source();
    }
    text
}

#[tokio::test]
async fn postgres_refuses_a_server_certificate_from_another_ca() {
    let url = hawiya_e2e::postgres_tls_database();
    let e = postgres_refusal(&hawiya_e2e::other_ca(&url)).await;
    assert!(e.contains("error performing TLS handshake") && e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn postgres_verify_full_refuses_a_wrong_host_name_and_verify_ca_does_not_check_it() {
    let url = hawiya_e2e::postgres_tls_database();
    let wrong = url.replace("host=127.0.0.1", "host=localhost");
    assert_ne!(wrong, url);
    let e = postgres_refusal(&wrong).await;
    assert!(e.contains("invalid peer certificate") && e.contains("not valid for name") && e.contains("localhost"), "{e}");
    // verify-ca checks the chain only: the same name is accepted…
    let chain_only = wrong.replace("sslmode=verify-full", "sslmode=verify-ca");
    let store = PostgresStore::connect(&chain_only, 1).await.expect("verify-ca connects to a server of the configured CA");
    store.ping().await.expect("ping over TLS");
    // …but not another CA's certificate.
    let e = postgres_refusal(&hawiya_e2e::other_ca(&chain_only)).await;
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn postgres_plaintext_to_a_tls_only_server_fails_clearly() {
    let url = hawiya_e2e::postgres_tls_database().replace("sslmode=verify-full", "sslmode=disable");
    let e = postgres_refusal(&url).await;
    assert!(e.contains("no pg_hba.conf entry") && e.contains("no encryption"), "{e}");
}

#[tokio::test]
async fn postgres_without_sslmode_verifies_the_full_name() {
    let url = hawiya_e2e::postgres_tls_database();
    let default = url.replace(" sslmode=verify-full", "");
    assert!(!default.contains("sslmode"), "{default}");
    let store = PostgresStore::connect(&default, 1).await.expect("no sslmode: verify-full against sslrootcert");
    store.ping().await.expect("ping over TLS");
    // verify-full: the host name is checked…
    let e = postgres_refusal(&default.replace("host=127.0.0.1", "host=localhost")).await;
    assert!(e.contains("not valid for name"), "{e}");
    // …and without a CA there is no connection at all, plaintext included.
    let sslrootcert = default.split(' ').find(|p| p.starts_with("sslrootcert=")).expect("sslrootcert in the test URL");
    let e = postgres_refusal(&default.replace(sslrootcert, "")).await;
    assert!(e.contains("sslmode=verify-full needs sslrootcert=<CA file> (or sslrootcert=system)"), "{e}");
}

/// A multi-host string (a dead primary first, then the TLS server) still reaches the
/// second host over verified TLS, as after a fail-over.
#[tokio::test]
async fn postgres_multi_host_strings_keep_working_over_tls() {
    let url = hawiya_e2e::postgres_tls_database();
    let port = url.split(' ').find_map(|p| p.strip_prefix("port=")).expect("port in the test URL").to_owned();
    let dead = hawiya_e2e::free_port();
    let multi = url
        .replace("host=127.0.0.1", "host=127.0.0.1,127.0.0.1")
        .replace(&format!("port={port}"), &format!("port={dead},{port} target_session_attrs=read-write"));
    let store = PostgresStore::connect(&multi, 1).await.expect("the second host, over TLS");
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn redis_refuses_a_server_certificate_from_another_ca() {
    let e = redis_refusal(&hawiya_e2e::other_ca(&hawiya_e2e::redis_tls_url())).await;
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn redis_refuses_a_wrong_host_name() {
    let url = hawiya_e2e::redis_tls_url();
    let wrong = url.replace("rediss://127.0.0.1:", "rediss://localhost:");
    assert_ne!(wrong, url);
    let e = redis_refusal(&wrong).await;
    assert!(e.contains("invalid peer certificate") && e.contains("not valid for name"), "{e}");
    // The right name, for contrast: it connects and answers.
    let store = RedisStore::connect(&url, &hawiya_e2e::unique_prefix()).await.expect("connect over TLS");
    store.ping().await.expect("ping over TLS");
}

#[tokio::test]
async fn redis_plaintext_to_a_tls_only_server_fails_clearly() {
    let url = hawiya_e2e::redis_tls_url();
    let (address, _) = url.strip_prefix("rediss://").and_then(|rest| rest.split_once('/')).expect("rediss://host:port/… in the test URL");
    let e = redis_refusal(&format!("redis://{address}/")).await;
    assert!(e.starts_with("cannot open Redis") && e.contains("a server that speaks only TLS cuts plaintext connections off: use a rediss:// URL"), "{e}");
}

#[tokio::test]
async fn redis_without_a_ca_is_refused_and_plaintext_only_on_loopback() {
    let url = hawiya_e2e::redis_tls_url();
    let (without, _) = url.split_once('?').expect("?cacert= in the test URL");
    let e = redis_refusal(without).await;
    assert!(e.contains("rediss:// needs cacert=<CA file> (or cacert=system)"), "{e}");
    let e = redis_refusal("redis://:a-password@192.0.2.7:6379/").await;
    assert!(e.contains("redis:// to 192.0.2.7 would send the password") && !e.contains("a-password"), "{e}");
}
