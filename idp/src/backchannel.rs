//! Outgoing HTTP: back-channel logout (OpenID Connect Back-Channel Logout 1.0) and the
//! signing API's notifications.
//!
//! When an SSO session ends, every relying party that took part in it and registered a
//! back-channel logout URI receives a signed logout token by POST; when an agency's signing
//! request ends, its `callback_uri` receives a signed notification token the same way. A
//! relying party that is down is retried with exponential back-off; every failure is logged,
//! the last one as an error.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::IdpError;

/// How often a delivery is tried, and the first wait between tries (doubling each time).
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    /// Tries in all.
    pub attempts: u32,
    /// Wait after the first failure.
    pub first_delay: Duration,
}

impl Default for Retry {
    /// Six tries over about a minute: 1, 2, 4, 8, 16 s apart.
    fn default() -> Self {
        Retry { attempts: 6, first_delay: Duration::from_secs(1) }
    }
}

/// An HTTP client for calls to relying parties: TLS with the system's trust store (where
/// operators install the national root), short timeouts, never following redirects.
pub fn http_client() -> Result<reqwest::Client, IdpError> {
    Ok(client_builder()?.build()?)
}

/// The builder of [`http_client`], for callers that add to it (tests pin host names).
pub fn client_builder() -> Result<reqwest::ClientBuilder, IdpError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "a system trust anchor could not be read");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "trust anchors for outgoing TLS");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| IdpError::Crypto("TLS 1.2 and 1.3 with aws-lc-rs"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5)))
}

/// The claims of a logout token (Back-Channel Logout 1.0, 2.4): never a nonce.
pub fn logout_claims(issuer: &str, client_id: &str, sub: &str, sid: &str, jti: &str, now: i64) -> serde_json::Value {
    json!({
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + 120,
        "jti": jti,
        "sub": sub,
        "sid": sid,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    })
}

/// A signed token posted to a relying party, as the form field its kind names.
#[derive(Debug)]
pub enum Message {
    /// A logout token (`logout_token=`).
    Logout(String),
    /// A signing request's notification token (`notification_token=`).
    SigningNotification(String),
}

impl Message {
    /// The form field and the token.
    fn field(&self) -> (&'static str, &str) {
        match self {
            Message::Logout(t) => ("logout_token", t),
            Message::SigningNotification(t) => ("notification_token", t),
        }
    }

    /// The audit events of a delivery and of giving up, and what it is called in logs.
    fn names(&self) -> (&'static str, &'static str, &'static str) {
        match self {
            Message::Logout(_) => ("logout.backchannel.delivered", "logout.backchannel.failed", "logout token"),
            Message::SigningNotification(_) => ("signing.notification.delivered", "signing.notification.failed", "signing notification"),
        }
    }
}

/// Posts `message` to `uri` (a form with its one field), retrying as `retry` says. Runs until
/// it succeeds or gives up; meant to be spawned.
pub async fn deliver(http: reqwest::Client, uri: String, client_id: String, message: Message, retry: Retry) {
    let (delivered, failed, what) = message.names();
    let mut delay = retry.first_delay;
    for attempt in 1..=retry.attempts {
        let outcome = http.post(&uri).form(&[message.field()]).send().await;
        let failure = match outcome {
            Ok(r) if r.status().is_success() => {
                tracing::info!(target: "audit", event = delivered, client = client_id, attempt, "{what} delivered");
                return;
            }
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => e.to_string(),
        };
        if attempt == retry.attempts {
            tracing::error!(target: "audit", event = failed, client = client_id, uri, attempt, failure, "gave up delivering a {what}");
            return;
        }
        tracing::warn!(client = client_id, uri, attempt, failure, retry_in = ?delay, "{what} not delivered; will retry");
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
}
