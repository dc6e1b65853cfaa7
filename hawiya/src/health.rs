//! `/healthz` and `/readyz`, for load balancers and orchestrators.
//!
//! `/healthz` says the process is alive and serving: it touches no store, so a database
//! outage never gets a replica restarted. `/readyz` asks the durable store, the ephemeral
//! store and the key store, at once, to answer a trivial request within [`TIMEOUT`]: 200
//! when all three do, 503 naming each that did not and whether it timed out or failed.
//! The body says only that, in words fixed here; the error itself (which may name a host)
//! goes to the log. Neither endpoint is rate limited or authenticated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hsm_shim::KeyStore;
use serde_json::{Value, json};
use store::DurableStore;
use store::ephemeral::EphemeralStore;

/// How long each store has to answer a readiness check.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The stores a replica needs to serve.
#[derive(Debug)]
pub struct Readiness {
    durable: Arc<dyn DurableStore>,
    ephemeral: Arc<dyn EphemeralStore>,
    keys: Arc<dyn KeyStore>,
    /// A key-store check still running on a blocking thread: a hung HSM must not collect one
    /// blocked thread per probe.
    key_check_running: Arc<AtomicBool>,
    timeout: Duration,
}

/// How one component answered.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Ok(Duration),
    /// No answer within the timeout.
    Timeout,
    /// An error; what the body may say of it.
    Error(&'static str),
}

impl Readiness {
    /// Checks `durable`, `ephemeral` and `keys`, each within [`TIMEOUT`].
    pub fn new(durable: Arc<dyn DurableStore>, ephemeral: Arc<dyn EphemeralStore>, keys: Arc<dyn KeyStore>) -> Self {
        Readiness { durable, ephemeral, keys, key_check_running: Arc::default(), timeout: TIMEOUT }
    }

    async fn durable(&self) -> Check {
        let start = Instant::now();
        match tokio::time::timeout(self.timeout, self.durable.ping()).await {
            Ok(Ok(())) => Check::Ok(start.elapsed()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the durable store failed its check");
                Check::Error(match e {
                    store::StoreError::Unavailable(_) => "the store is unavailable",
                    _ => "the database refused or failed the check",
                })
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "readiness: the durable store did not answer in time");
                Check::Timeout
            }
        }
    }

    async fn ephemeral(&self) -> Check {
        let start = Instant::now();
        match tokio::time::timeout(self.timeout, self.ephemeral.ping()).await {
            Ok(Ok(())) => Check::Ok(start.elapsed()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the ephemeral store failed its check");
                Check::Error("the store refused or failed the check")
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "readiness: the ephemeral store did not answer in time");
                Check::Timeout
            }
        }
    }

    async fn keys(&self) -> Check {
        let start = Instant::now();
        if self.key_check_running.swap(true, Ordering::AcqRel) {
            // The previous check has not come back yet: no answer in time, again.
            return Check::Timeout;
        }
        let (keys, running) = (Arc::clone(&self.keys), Arc::clone(&self.key_check_running));
        let check = tokio::task::spawn_blocking(move || {
            let answer = keys.ping();
            running.store(false, Ordering::Release);
            answer
        });
        match tokio::time::timeout(self.timeout, check).await {
            Ok(Ok(Ok(()))) => Check::Ok(start.elapsed()),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "readiness: the key store failed its check");
                Check::Error(match e {
                    hsm_shim::Error::Io { .. } => "the key directory cannot be read",
                    _ => "the token refused or failed the check",
                })
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "readiness: the key-store check panicked");
                Check::Error("the check failed")
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "readiness: the key store did not answer in time");
                Check::Timeout
            }
        }
    }

    /// Asks the three stores at once; whether all answered, and the body saying how each did.
    async fn check(&self) -> (bool, Value) {
        let (durable, ephemeral, keys) = tokio::join!(self.durable(), self.ephemeral(), self.keys());
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let describe = |c: &Check| match c {
            Check::Ok(took) => json!({"status": "ok", "ms": took.as_secs_f64() * 1000.0}),
            Check::Timeout => json!({"status": "timeout", "error": format!("no answer within {timeout_ms} ms")}),
            Check::Error(why) => json!({"status": "error", "error": why}),
        };
        let components = [("durable_store", &durable), ("ephemeral_store", &ephemeral), ("key_store", &keys)];
        let ready = components.iter().all(|(_, c)| matches!(c, Check::Ok(_)));
        let failed: Vec<&str> = components.iter().filter(|(_, c)| !matches!(c, Check::Ok(_))).map(|(name, _)| *name).collect();
        let checks: serde_json::Map<String, Value> = components.iter().map(|(name, c)| ((*name).to_owned(), describe(c))).collect();
        let mut body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
        if !ready {
            body["failed"] = json!(failed);
        }
        (ready, body)
    }
}

/// The two endpoints.
pub fn router(readiness: Arc<Readiness>) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(move || readyz(Arc::clone(&readiness))))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"status": "alive"}))
}

async fn readyz(readiness: Arc<Readiness>) -> Response {
    let (ready, body) = readiness.check().await;
    json_response(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_shim::soft::{OperatorSecret, SoftKeyStore};
    use tower::ServiceExt;

    async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
        let request = axum::http::Request::get(uri).body(axum::body::Body::empty()).expect("request");
        let response = app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ready_while_every_store_answers_and_names_the_one_that_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = OperatorSecret::new(b"unit test secret, not for production".to_vec()).expect("secret");
        let keys = Arc::new(SoftKeyStore::open_or_create(&dir.path().join("keys"), &secret).expect("key store"));
        let durable: Arc<dyn DurableStore> = Arc::new(store::SqliteStore::open(&dir.path().join("db")).expect("db"));
        let readiness = Arc::new(Readiness::new(durable, Arc::new(store::ephemeral::MemoryStore::new()), keys));
        let app = router(readiness);
        assert_eq!(get(&app, "/healthz").await, (StatusCode::OK, json!({"status": "alive"})));
        let (status, body) = get(&app, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ready");
        for c in ["durable_store", "ephemeral_store", "key_store"] {
            assert_eq!(body["checks"][c]["status"], "ok", "{body}");
        }
        // The key directory goes away: the key store is named, the others still answer.
        std::fs::remove_dir_all(dir.path().join("keys")).expect("remove keys");
        let (status, body) = get(&app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["failed"], json!(["key_store"]), "{body}");
        assert_eq!(body["checks"]["key_store"], json!({"status": "error", "error": "the key directory cannot be read"}));
        assert_eq!(body["checks"]["durable_store"]["status"], "ok");
        assert!(!body.to_string().contains(&dir.path().display().to_string()), "no path in the body: {body}");
        // /healthz never looks at the stores.
        assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
    }
}
