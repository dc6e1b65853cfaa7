//! The ephemeral store: short-lived state with a time to live — SSO sessions,
//! authorization codes, smart-ID sessions, replay caches, rate-limit counters.
//!
//! Backends: [`MemoryStore`] (one process; the embedded default) and [`RedisStore`] (shared
//! by every replica, so N processes behave as one). Values are opaque bytes; callers
//! namespace their keys (`code:…`, `sid:…`).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::StoreError;

/// Short-lived values with a time to live. Every operation is atomic.
#[async_trait::async_trait]
pub trait EphemeralStore: Send + Sync + std::fmt::Debug {
    /// Answers if the store does, changing nothing (readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores `value` under `key` for `ttl`, replacing what was there.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;

    /// Stores `value` as [`EphemeralStore::put`] does, without copying it where the backend
    /// can keep it as it is (the memory store): for megabyte values, a signing session's
    /// document and signed file.
    async fn put_shared(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        self.put(key, &value, ttl).await
    }

    /// Stores `value` only if `key` holds nothing; `false` if it did (replay caches).
    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError>;

    /// The value under `key`, if it has not expired (shared, not copied, by the memory
    /// store: a signing session's document is megabytes).
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Reads and removes the value: of many concurrent callers, exactly one gets it
    /// (single-use authorization codes).
    async fn take(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Removes the value; `true` if there was one.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;

    /// Adds one to a counter and returns the new count; the first increment starts a window
    /// of `ttl`, after which the counter is gone (rate limits). `get` reads a counter as
    /// decimal ASCII.
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;

    /// Gives an existing value a new time to live (idle timeouts); `false` if it is gone.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
}

const SHARDS: usize = 16;

struct Entry {
    value: Bytes,
    expires: Instant,
}

/// The in-process ephemeral store: sharded maps, expired entries dropped when touched and
/// swept as a shard grows.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, Entry>,
    /// Sweep expired entries when the map reaches this size.
    sweep_at: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard").field("len", &self.map.len()).finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore { shards: (0..SHARDS).map(|_| Mutex::new(Shard { map: HashMap::new(), sweep_at: 1024 })).collect(), hasher: Default::default() }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_shard<T>(&self, key: &str, f: impl FnOnce(&mut Shard, Instant) -> T) -> Result<T, StoreError> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut shard = shard.lock().map_err(|_| StoreError::Unavailable("a panic poisoned an ephemeral-store shard"))?;
        let now = Instant::now();
        if shard.map.len() >= shard.sweep_at {
            shard.map.retain(|_, e| e.expires > now);
            shard.sweep_at = (shard.map.len() * 2).max(1024);
        }
        Ok(f(&mut shard, now))
    }
}

fn live(map: &mut HashMap<String, Entry>, key: &str, now: Instant) -> bool {
    match map.get(key) {
        Some(e) if e.expires > now => true,
        Some(_) => {
            map.remove(key);
            false
        }
        None => false,
    }
}

#[async_trait::async_trait]
impl EphemeralStore for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        // In this process: it answers if a shard's lock is not poisoned.
        self.with_shard("ping", |_, _| ())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.with_shard(key, |s, now| {
            s.map.insert(key.to_owned(), Entry { value: Bytes::copy_from_slice(value), expires: now + ttl });
        })
    }

    async fn put_shared(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), StoreError> {
        self.with_shard(key, |s, now| {
            s.map.insert(key.to_owned(), Entry { value, expires: now + ttl });
        })
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.with_shard(key, |s, now| {
            if live(&mut s.map, key, now) {
                return false;
            }
            s.map.insert(key.to_owned(), Entry { value: Bytes::copy_from_slice(value), expires: now + ttl });
            true
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.with_shard(key, |s, now| if live(&mut s.map, key, now) { s.map.get(key).map(|e| e.value.clone()) } else { None })
    }

    async fn take(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        self.with_shard(key, |s, now| s.map.remove(key).filter(|e| e.expires > now).map(|e| e.value))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.with_shard(key, |s, now| s.map.remove(key).is_some_and(|e| e.expires > now))
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.with_shard(key, |s, now| {
            if !live(&mut s.map, key, now) {
                s.map.insert(key.to_owned(), Entry { value: Bytes::from_static(b"1"), expires: now + ttl });
                return 1;
            }
            let Some(e) = s.map.get_mut(key) else { return 1 };
            // Decimal ASCII, as Redis keeps counters: `get` reads the same on both.
            let n = std::str::from_utf8(&e.value).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
            e.value = Bytes::from(n.to_string());
            n
        })
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.with_shard(key, |s, now| {
            if !live(&mut s.map, key, now) {
                return false;
            }
            s.map.get_mut(key).map(|e| e.expires = now + ttl).is_some()
        })
    }
}

/// The shared ephemeral store on Redis (≥ 7.0). Keys are prefixed so one Redis can serve
/// several deployments.
pub struct RedisStore {
    client: redis::Client,
    /// Replaced by a fresh one when Redis cannot be reached: a manager whose reconnection
    /// attempts ran out may not come back by itself.
    connection: std::sync::RwLock<ConnectionManager>,
    /// Held while a manager is replaced; the instant of the last replacement attempt.
    replacing: tokio::sync::Mutex<Option<std::time::Instant>>,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Runs one Redis command, at most [`REDIS_TIMEOUT`]: while Redis is away the connection
/// manager may hold commands for its reconnection attempts, and a request must fail closed
/// at once rather than wait.
async fn within<T>(command: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
    match tokio::time::timeout(REDIS_TIMEOUT, command).await {
        Ok(result) => result.map_err(redis_err),
        Err(_) => Err(StoreError::Unreachable { backend: "Redis", source: format!("no answer within {} s", REDIS_TIMEOUT.as_secs()).into() }),
    }
}

/// A failed command: unreachable when the connection is gone or refused, or the server did
/// not answer in time (the connection manager reconnects by itself; the request may be
/// retried in a moment), else a database error.
fn redis_err(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        StoreError::Unreachable { backend: "Redis", source: e.into() }
    } else {
        StoreError::database("Redis", e)
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// How long one connection attempt to Redis, or one command, may take.
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How many times a dropped Redis connection is tried again (100 ms, then 200 ms apart)
/// before the requests waiting for it fail.
const REDIS_RETRIES: usize = 2;

/// While Redis is away, requests fail within about a second instead of waiting out a long
/// series of reconnection attempts.
fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(REDIS_RETRIES)
        .set_factor(100)
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT)
}

impl RedisStore {
    /// Connects (reconnecting by itself later if the connection drops). `rediss://…?cacert=`
    /// verifies the server against that CA; `redis://` (plaintext) only to loopback.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let open = |e: redis::RedisError| StoreError::Open { what: "Redis".into(), source: e.into() };
        let client = crate::tls::redis_client(url)?;
        // One plain attempt first: a refused certificate or password is reported at once,
        // not after the manager's retries with back-off.
        drop(client.get_multiplexed_async_connection().await.map_err(|e| crate::tls::redis_open_error(&client, e))?);
        let connection = ConnectionManager::new_with_config(client.clone(), manager_config()).await.map_err(open)?;
        Ok(RedisStore { client, connection: std::sync::RwLock::new(connection), replacing: tokio::sync::Mutex::new(None), prefix: prefix.to_owned() })
    }

    fn manager(&self) -> Result<ConnectionManager, StoreError> {
        self.connection.read().map(|c| c.clone()).map_err(|_| StoreError::Unavailable("a panic poisoned the Redis connection"))
    }

    /// Runs one command (on a manager from [`RedisStore::manager`]) at most
    /// [`REDIS_TIMEOUT`]; when Redis cannot be reached, the manager is replaced (by one
    /// request at a time, at most every 250 ms) so that the next requests reach a Redis
    /// that is back.
    async fn run<T>(&self, command: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StoreError> {
        let result = within(command).await;
        if matches!(&result, Err(e) if e.is_unreachable())
            && let Ok(mut last) = self.replacing.try_lock()
            && !last.is_some_and(|at| at.elapsed() < std::time::Duration::from_millis(250))
        {
            *last = Some(std::time::Instant::now());
            if let Ok(Ok(fresh)) = tokio::time::timeout(REDIS_TIMEOUT, ConnectionManager::new_with_config(self.client.clone(), manager_config())).await
                && let Ok(mut current) = self.connection.write()
            {
                *current = fresh;
                tracing::warn!("the Redis connection was replaced");
            }
        }
        result
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait::async_trait]
impl EphemeralStore for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.manager()?;
        self.run(redis::cmd("PING").query_async::<()>(&mut c)).await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.manager()?;
        self.run(redis::cmd("SET").arg(self.key(key)).arg(value).arg("PX").arg(millis(ttl)).query_async::<()>(&mut c)).await
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.manager()?;
        let set: Option<String> = self.run(redis::cmd("SET").arg(self.key(key)).arg(value).arg("NX").arg("PX").arg(millis(ttl)).query_async(&mut c)).await?;
        Ok(set.is_some())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let mut c = self.manager()?;
        let value: Option<Vec<u8>> = self.run(c.get(self.key(key))).await?;
        Ok(value.map(Bytes::from))
    }

    async fn take(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let mut c = self.manager()?;
        let value: Option<Vec<u8>> = self.run(redis::cmd("GETDEL").arg(self.key(key)).query_async(&mut c)).await?;
        Ok(value.map(Bytes::from))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut c = self.manager()?;
        let n: u64 = self.run(c.del(self.key(key))).await?;
        Ok(n > 0)
    }

    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut c = self.manager()?;
        let key = self.key(key);
        // One transaction: the count, and the window started by the first increment only.
        let (n, _): (u64, u64) =
            self.run(redis::pipe().atomic().cmd("INCR").arg(&key).cmd("PEXPIRE").arg(&key).arg(millis(ttl)).arg("NX").query_async(&mut c)).await?;
        Ok(n)
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.manager()?;
        let n: u64 = self.run(redis::cmd("PEXPIRE").arg(self.key(key)).arg(millis(ttl)).query_async(&mut c)).await?;
        Ok(n == 1)
    }
}
