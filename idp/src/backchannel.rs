//! Outgoing HTTP: back-channel logout (OpenID Connect Back-Channel Logout 1.0) and the
//! signing API's notifications, delivered from the durable queue ([`store::delivery`]).
//!
//! When an SSO session ends, every relying party that took part in it and registered a
//! back-channel logout URI is owed a signed logout token by POST; when an agency's signing
//! request ends, its `callback_uri` is owed a signed notification token the same way. Both
//! are enqueued in the durable store, and a worker in every replica ([`Provider::run_deliveries`])
//! claims what is due, posts it, and deletes it or records the failure: retried with
//! exponential back-off and jitter by whichever replica claims it next, surviving restarts,
//! delivered at least once, given up after the configured tries or age (kept as `failed`
//! in the `deliveries` table for operators, and logged at target `audit`).
//!
//! The queue keeps the token's *claims*, not the signed token: the token is signed when it
//! is posted, with a fresh `iat` and `exp` (its lifetime is kept). A logout token lives two
//! minutes, so one signed at logout would have expired by the time a relying party that was
//! down for longer comes back, and the relying party would be right to refuse it; signed at
//! delivery, it is fresh, carries the key that signs today (after a rotation too), and the
//! database never holds a token anyone could replay. Its `jti` stays the same on every try,
//! so a relying party that received one that we never heard back about can tell the repeat.
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use store::delivery::{Backoff, Delivery, NewDelivery};

use crate::IdpError;
use crate::provider::Provider;

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

/// What a delivery carries: each kind is a token posted as its own form field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A logout token (`logout_token=`, `typ` `logout+jwt`).
    Logout,
    /// A signing request's notification token (`notification_token=`).
    SigningNotification,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Logout, Kind::SigningNotification];

    /// Its name in the queue.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Logout => "logout",
            Kind::SigningNotification => "signing-notification",
        }
    }

    fn parse(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The form field the token is posted as, and its JWS `typ`.
    fn field_and_typ(self) -> (&'static str, &'static str) {
        match self {
            Kind::Logout => ("logout_token", "logout+jwt"),
            Kind::SigningNotification => ("notification_token", crate::esign_api::NOTIFICATION_TYP),
        }
    }

    /// The audit events of a delivery and of giving up, and what it is called in logs.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Logout => ("logout.backchannel.delivered", "logout.backchannel.failed", "logout token"),
            Kind::SigningNotification => ("signing.notification.delivered", "signing.notification.failed", "signing notification"),
        }
    }
}

/// How deliveries are retried and how the worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// When a failed delivery is tried again, and when it is given up.
    pub backoff: Backoff,
    /// How often the worker looks for due deliveries (it also wakes when this replica
    /// enqueues one).
    pub poll: Duration,
    /// How long a claimed delivery is the claimer's alone: longer than signing and posting a
    /// batch takes. A replica that dies holding it leaves it to the others after this.
    pub lease: Duration,
}

impl Default for Schedule {
    /// [`Backoff::default`] (12 tries, 2 s doubling to at most an hour, for a day), a poll
    /// every second and a one-minute lease.
    fn default() -> Self {
        Schedule { backoff: Backoff::default(), poll: Duration::from_secs(1), lease: Duration::from_secs(60) }
    }
}

impl Schedule {
    /// The schedule `HAWIYA_BACKCHANNEL_RETRY` describes, `first_delay_ms,attempts` (the
    /// tests shorten the waits with it): the first wait and the tries in all; the worker
    /// polls at least as often as that first wait.
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = || format!("HAWIYA_BACKCHANNEL_RETRY={value:?}: say first_delay_ms,attempts (10 to 3600000 ms, 1 to 100 tries), such as 2000,12");
        let (delay, attempts) = value.split_once(',').ok_or_else(bad)?;
        let delay = delay.trim().parse::<u64>().ok().filter(|d| (10..=3_600_000).contains(d)).ok_or_else(bad)?;
        let attempts = attempts.trim().parse::<u32>().ok().filter(|a| (1..=100).contains(a)).ok_or_else(bad)?;
        let mut schedule = Schedule::default();
        schedule.backoff.first_delay = Duration::from_millis(delay);
        schedule.backoff.attempts = attempts;
        schedule.poll = schedule.poll.min(schedule.backoff.first_delay);
        Ok(schedule)
    }
}

/// Deliveries claimed at once by one replica.
const BATCH: usize = 32;

/// Why a try failed, and whether trying again could help.
struct Failure {
    text: String,
    /// Nothing a retry could change (the client is gone, the payload is unreadable).
    permanent: bool,
}

impl Failure {
    fn permanent(text: impl Into<String>) -> Self {
        Failure { text: text.into(), permanent: true }
    }
}

/// A number from 0 to 1 (the jitter of a back-off); 0.5 if the system has no randomness to give.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut b) {
        Ok(()) => f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

impl Provider {
    /// Enqueues tokens owed to relying parties, all or none; durable when this returns. The
    /// worker of this replica wakes to deliver them at once.
    pub(crate) async fn enqueue(&self, kind: Kind, deliveries: Vec<(String, String, serde_json::Value)>) -> Result<(), IdpError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let created_at = store::audit::unix_millis();
        let rows: Vec<NewDelivery> = deliveries
            .into_iter()
            .map(|(client_id, uri, claims)| NewDelivery { kind: kind.name().into(), client_id, uri, payload: claims.to_string(), created_at })
            .collect();
        self.durable.enqueue_deliveries(&rows).await?;
        self.deliveries_due.notify_one();
        Ok(())
    }

    /// Delivers what is owed to relying parties until the process ends: one per replica,
    /// spawned by the server. Polls every [`Schedule::poll`], and at once after this
    /// replica enqueues; a full batch is followed by the next without waiting.
    pub async fn run_deliveries(self: Arc<Self>) {
        loop {
            let full = match self.deliver_due().await {
                Ok(n) => n == BATCH,
                Err(e) => {
                    tracing::warn!(error = %e, "the delivery queue could not be read; trying again");
                    false
                }
            };
            if !full {
                tokio::select! {
                    () = self.deliveries_due.notified() => {}
                    () = tokio::time::sleep(self.settings.backchannel_retry.poll) => {}
                }
            }
        }
    }

    /// One round of the worker: claims the due deliveries (at most a batch), posts them
    /// side by side, records each outcome, and refreshes the queue's gauges. How many it
    /// claimed.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize, IdpError> {
        let lease = crate::provider::random_token()?;
        let now = store::audit::unix_millis();
        let until = now.saturating_add(i64::try_from(self.settings.backchannel_retry.lease.as_millis()).unwrap_or(i64::MAX));
        let claimed = self.durable.claim_deliveries(now, &lease, until, BATCH).await?;
        let n = claimed.len();
        let mut tries = tokio::task::JoinSet::new();
        for delivery in claimed {
            let (provider, lease) = (Arc::clone(self), lease.clone());
            tries.spawn(async move { provider.try_delivery(delivery, &lease).await });
        }
        while let Some(done) = tries.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "a delivery's outcome could not be recorded; it is tried again when its lease runs out");
            }
        }
        let counts = self.durable.delivery_counts(store::audit::unix_millis()).await?;
        self.counters.queue(counts);
        Ok(n)
    }

    /// Tries one claimed delivery and records how it went.
    async fn try_delivery(&self, delivery: Delivery, lease: &str) -> Result<(), IdpError> {
        let kind = Kind::parse(&delivery.kind);
        let (delivered, failed, what) = kind.map_or(("delivery.delivered", "delivery.failed", "delivery"), Kind::names);
        let attempt = delivery.attempts + 1;
        let outcome = match kind {
            Some(kind) => self.post(kind, &delivery).await,
            None => Err(Failure::permanent(format!("unknown kind of delivery {:?}", delivery.kind))),
        };
        let client = delivery.client_id.as_str();
        let failure = match outcome {
            Ok(()) => {
                if self.durable.delivered(delivery.id, lease).await? {
                    self.counters.delivered();
                    tracing::info!(target: "audit", event = delivered, client, attempt, "{what} delivered");
                } else {
                    tracing::warn!(client, attempt, "{what} delivered after its lease ran out: another replica may deliver it again");
                }
                return Ok(());
            }
            Err(f) => f,
        };
        let now = store::audit::unix_millis();
        let next = if failure.permanent { None } else { self.settings.backchannel_retry.backoff.next_try(&delivery, now, jitter()) };
        if !self.durable.delivery_failed(delivery.id, lease, next, &failure.text).await? {
            tracing::warn!(client, attempt, failure = failure.text, "{what} not delivered, after its lease ran out");
            return Ok(());
        }
        let uri = delivery.uri.as_str();
        match next {
            Some(at) => {
                self.counters.retried();
                tracing::warn!(client, uri, attempt, failure = failure.text, retry_in_ms = at - now, "{what} not delivered; will retry");
            }
            None => {
                self.counters.given_up();
                tracing::error!(target: "audit", event = failed, client, uri, attempt, failure = failure.text, "gave up delivering a {what}");
            }
        }
        Ok(())
    }

    /// Signs the delivery's token afresh (its lifetime kept) and posts it.
    async fn post(&self, kind: Kind, delivery: &Delivery) -> Result<(), Failure> {
        let mut claims: serde_json::Value = serde_json::from_str(&delivery.payload).map_err(|e| Failure::permanent(format!("unreadable payload: {e}")))?;
        let now = crate::unix_now();
        let lifetime = match (claims.get("iat").and_then(serde_json::Value::as_i64), claims.get("exp").and_then(serde_json::Value::as_i64)) {
            (Some(iat), Some(exp)) if exp > iat => exp - iat,
            _ => return Err(Failure::permanent("the payload has no iat and exp")),
        };
        claims["iat"] = now.into();
        claims["exp"] = (now + lifetime).into();
        let client = match self.client(&delivery.client_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Err(Failure::permanent("the client no longer exists")),
            Err(e) => return Err(Failure { text: format!("the client could not be read: {e}"), permanent: false }),
        };
        let (field, typ) = kind.field_and_typ();
        let token = self
            .keys
            .sign(client.id_token_alg, &claims, Some(typ), now)
            .await
            .map_err(|e| Failure { text: format!("the token could not be signed: {e}"), permanent: false })?;
        let outcome = self.http.post(&delivery.uri).form(&[(field, token.as_str())]).send().await;
        match outcome {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(Failure { text: format!("HTTP {}", r.status()), permanent: false }),
            Err(e) => Err(Failure { text: e.to_string(), permanent: false }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_setting_shortens_the_waits_and_refuses_nonsense() {
        let s = Schedule::parse("200, 30").expect("valid");
        assert_eq!((s.backoff.first_delay, s.backoff.attempts, s.poll), (Duration::from_millis(200), 30, Duration::from_millis(200)));
        assert_eq!((s.backoff.max_delay, s.backoff.max_age, s.lease), (Backoff::default().max_delay, Backoff::default().max_age, Duration::from_secs(60)));
        assert_eq!(Schedule::parse("5000,3").expect("valid").poll, Duration::from_secs(1), "polls at least every second");
        for bad in ["", "200", "0,3", "200,0", "200,101", "abc,3", "200,3,1"] {
            let e = Schedule::parse(bad).expect_err(bad);
            assert!(e.starts_with(&format!("HAWIYA_BACKCHANNEL_RETRY={bad:?}: say first_delay_ms,attempts")), "{e}");
        }
    }

    #[test]
    fn kinds_are_named_in_the_queue_and_read_back() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.name()), Some(kind));
        }
        assert_eq!(Kind::parse("logout_token"), None);
        assert_eq!(Kind::Logout.field_and_typ(), ("logout_token", "logout+jwt"));
        assert_eq!(Kind::SigningNotification.field_and_typ().0, "notification_token");
    }
}
