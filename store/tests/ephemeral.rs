//! One conformance suite for every ephemeral backend: in-process memory and a real Redis, in
//! plaintext and over verified TLS.
// Test code: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod each_backend;

use std::sync::Arc;
use std::time::Duration;

use store::ephemeral::{EphemeralStore, MemoryStore, RedisStore};

async fn memory() -> Arc<dyn EphemeralStore> {
    Arc::new(MemoryStore::new())
}

/// The throw-away Redis `./scripts/test` starts; a fresh key prefix per test.
async fn redis() -> Arc<dyn EphemeralStore> {
    let url = std::env::var("HAWIYA_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("HAWIYA_TEST_REDIS_URL is not set: run the tests through ./scripts/test, which installs redis-server and starts a throw-away one")
    });
    let prefix =
        format!("test:{}:{}:", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    Arc::new(RedisStore::connect(&url, &prefix).await.expect("connect to the test Redis"))
}

/// The throw-away TLS-only Redis `./scripts/test` starts (`rediss://`, the server verified
/// against the test CA); a fresh key prefix per test.
async fn redis_tls() -> Arc<dyn EphemeralStore> {
    Arc::new(RedisStore::connect(&hawiya_e2e::redis_tls_url(), &hawiya_e2e::unique_prefix()).await.expect("connect to the test Redis over TLS"))
}

const LONG: Duration = Duration::from_secs(60);

async fn answers_a_ping_without_storing_anything(s: Arc<dyn EphemeralStore>) {
    s.ping().await.expect("ping");
    s.ping().await.expect("ping again");
    assert_eq!(s.get("ping").await.unwrap(), None, "a ping stores nothing");
}

async fn stores_reads_replaces_and_deletes(s: Arc<dyn EphemeralStore>) {
    assert_eq!(s.get("k").await.unwrap(), None);
    s.put("k", b"one", LONG).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put("k", b"two", LONG).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"two"[..]));
    // A large value handed over whole reads back the same, and replaces like any other.
    let large = bytes::Bytes::from(vec![7u8; 2 << 20]);
    s.put_shared("k", large.clone(), LONG).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), Some(large));
    assert!(s.delete("k").await.unwrap());
    s.put("k", b"two", LONG).await.unwrap();
    assert!(s.delete("k").await.unwrap());
    assert!(!s.delete("k").await.unwrap());
    assert_eq!(s.get("k").await.unwrap(), None);
}

async fn put_new_refuses_a_second_writer(s: Arc<dyn EphemeralStore>) {
    assert!(s.put_new("jti", b"first", LONG).await.unwrap());
    assert!(!s.put_new("jti", b"second", LONG).await.unwrap());
    assert_eq!(s.get("jti").await.unwrap().as_deref(), Some(&b"first"[..]));
}

async fn take_has_exactly_one_winner(s: Arc<dyn EphemeralStore>) {
    s.put("code", b"secret", LONG).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.take("code").await.unwrap() }));
    }
    let mut winners = 0;
    for t in tasks {
        if let Some(v) = t.await.unwrap() {
            assert_eq!(&v[..], b"secret");
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(s.get("code").await.unwrap(), None);
}

async fn values_expire(s: Arc<dyn EphemeralStore>) {
    let short = Duration::from_millis(150);
    s.put("gone", b"v", short).await.unwrap();
    assert!(s.put_new("replay", b"v", short).await.unwrap());
    assert_eq!(s.increment("count", short).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.get("gone").await.unwrap(), None);
    assert_eq!(s.take("gone").await.unwrap(), None);
    assert!(!s.touch("gone", LONG).await.unwrap());
    assert!(s.put_new("replay", b"v", LONG).await.unwrap(), "an expired id may be used again");
    assert_eq!(s.increment("count", LONG).await.unwrap(), 1, "a new window starts");
}

async fn touch_extends_the_life_of_a_value(s: Arc<dyn EphemeralStore>) {
    s.put("session", b"v", Duration::from_millis(300)).await.unwrap();
    assert!(s.touch("session", LONG).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.get("session").await.unwrap().as_deref(), Some(&b"v"[..]));
}

async fn counters_count_within_their_window(s: Arc<dyn EphemeralStore>) {
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.increment("ip:10.0.0.1", LONG).await.unwrap() }));
    }
    let mut seen: Vec<u64> = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=40).collect::<Vec<_>>(), "every increment sees its own count");
    assert_eq!(s.get("ip:10.0.0.1").await.unwrap().as_deref(), Some(&b"40"[..]), "a counter reads as decimal ASCII");
}

each_backend! {
    backends: [memory, redis, redis_tls],
    tests: [
        answers_a_ping_without_storing_anything,
        stores_reads_replaces_and_deletes,
        put_new_refuses_a_second_writer,
        take_has_exactly_one_winner,
        values_expire,
        touch_extends_the_life_of_a_value,
        counters_count_within_their_window,
    ],
}
