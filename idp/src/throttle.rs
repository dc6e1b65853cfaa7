//! Every limit on login attempts, password and smart-ID alike, in one implementation.
//!
//! An attempt on a citizen is counted *before* it is evaluated (a [`Reservation`]), so that
//! guesses sent at once cannot outrun the limit: of 30 concurrent wrong passwords for one
//! citizen, 5 are checked and 25 refused unchecked.
//!
//! Limits against guessing must not become a way to lock citizens out, so the count that
//! identifies a citizen depends on the browser (OWASP's "device cookies"): a browser in which
//! the citizen has logged in before carries a signed device cookie naming them, and its
//! attempts count against that device alone; attempts from everywhere else share the
//! citizen's untrusted count. A stranger who exhausts the untrusted count blocks only
//! strangers; the citizen's own browser still logs in.
//!
//! The per-address limit counts failures only: thousands of citizens may share an address
//! behind a carrier's NAT, and their successful logins must not use it up.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use store::StoreError;
use store::ephemeral::EphemeralStore;

use crate::IdpError;
use crate::keyspace;

/// The cookie that marks a browser in which a citizen has logged in.
pub const DEVICE_COOKIE: &str = "__Host-hawiya-device";
/// How long a device cookie is believed.
pub const DEVICE_COOKIE_LIFETIME: Duration = Duration::from_secs(180 * 86_400);

/// At most `max` attempts within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed in a window.
    pub max: u64,
    /// The window, from the first attempt counted.
    pub window: Duration,
}

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
/// Smart-ID requests per citizen, and per address, in 15 minutes, unless configured.
pub const SMART_ID_CITIZEN: u64 = 10;
/// See [`SMART_ID_CITIZEN`].
pub const SMART_ID_ADDRESS: u64 = 100;

/// What is being attempted; each has its own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A password (or one-time code) check.
    Password,
    /// A smart-ID request pushed to a citizen's device.
    SmartId,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Password => "password",
            Action::SmartId => "smart-id",
        }
    }
}

/// The limits the provider applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Password and code attempts per citizen (per browser of theirs, or from anywhere else).
    pub password_citizen: Limit,
    /// Failed password and code attempts per address.
    pub password_address: Limit,
    /// Smart-ID requests per citizen (per browser of theirs, or from anywhere else).
    pub smart_id_citizen: Limit,
    /// Smart-ID requests per address.
    pub smart_id_address: Limit,
}

impl Default for Limits {
    /// 5 password attempts per citizen and 50 failures per address, 10 smart-ID requests per
    /// citizen and 100 per address, each in 15 minutes.
    fn default() -> Self {
        Limits {
            password_citizen: Limit { max: 5, window: FIFTEEN_MINUTES },
            password_address: Limit { max: 50, window: FIFTEEN_MINUTES },
            smart_id_citizen: Limit { max: SMART_ID_CITIZEN, window: FIFTEEN_MINUTES },
            smart_id_address: Limit { max: SMART_ID_ADDRESS, window: FIFTEEN_MINUTES },
        }
    }
}

/// A limit on failures from one address, for a password check or an action that names
/// nobody before it succeeds (an activation code). Failures only count: many people may
/// share an address behind a carrier's NAT, and their successes must not use it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressLimit {
    what: &'static str,
    limit: Limit,
}

impl AddressLimit {
    /// Wrong activation codes: 20 per address in 15 minutes (a code has 100 bits; this keeps
    /// guessing from being free, and a typing citizen is never near it).
    pub const ACTIVATION: AddressLimit = AddressLimit { what: "activation", limit: Limit { max: 20, window: FIFTEEN_MINUTES } };

    /// Validations of signed documents (the validation API and the verification page): 100
    /// per address in 15 minutes, every one counted (each costs the server the work).
    pub const VALIDATION: AddressLimit = AddressLimit { what: "validation", limit: Limit { max: 100, window: FIFTEEN_MINUTES } };

    fn key(&self, address: &str) -> String {
        keyspace::attempts(&format!("{}-address", self.what), address)
    }

    /// Whether `address` may try again.
    pub async fn allows(&self, store: &dyn EphemeralStore, address: &str) -> Result<bool, StoreError> {
        Ok(read_count(store, &self.key(address)).await? < self.limit.max)
    }

    /// Counts a request from `address` whatever its outcome; whether it is within the limit.
    pub async fn counted(&self, store: &dyn EphemeralStore, address: &str) -> Result<bool, StoreError> {
        let count = store.increment(&self.key(address), self.limit.window).await?;
        if count > self.limit.max {
            tracing::warn!(target: "audit", event = "throttle.address", action = self.what, "request refused: too many from this address");
            return Ok(false);
        }
        Ok(true)
    }

    /// An attempt from `address` failed.
    pub async fn failed(&self, store: &dyn EphemeralStore, address: &str) -> Result<(), StoreError> {
        store.increment(&self.key(address), self.limit.window).await?;
        Ok(())
    }
}

/// Counts attempts and signs device cookies.
pub struct Throttle {
    limits: Limits,
    device_key: hmac::Key,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").field("limits", &self.limits).finish_non_exhaustive()
    }
}

/// An attempt that may go ahead: it is counted already. Tell it how it ended.
#[must_use = "an attempt ends in failed() or succeeded()"]
#[derive(Debug)]
pub struct Reservation {
    citizen_key: String,
    citizen_limit: Limit,
    count: u64,
    /// Failures count against the address (password checks), or every attempt did already
    /// (smart-ID requests).
    address: Option<(AddressLimit, String)>,
}

/// Whether an attempt may go ahead.
#[derive(Debug)]
pub enum Verdict {
    /// Within the limits: go ahead, then report the outcome.
    Allowed(Reservation),
    /// Over a limit: refuse without evaluating.
    Blocked,
}

impl Throttle {
    /// The limits, with device cookies signed under a key derived from the provider's
    /// secret for this purpose alone.
    pub fn new(limits: Limits, secret: &[u8]) -> Self {
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), b"hawiya device-cookie MAC key v1");
        Throttle { limits, device_key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()) }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What a device cookie's MAC covers: its nonce and the citizen.
    fn device_message(nonce: &str, national_id: &str) -> Vec<u8> {
        format!("{nonce}\n{national_id}").into_bytes()
    }

    /// A new device cookie for a browser in which `national_id` has just logged in. It names
    /// the citizen only through its MAC: the cookie itself tells nobody who logged in.
    pub fn device_cookie(&self, national_id: &str) -> Result<String, IdpError> {
        let mut nonce = [0u8; 16];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| IdpError::Crypto("random"))?;
        let nonce = B64.encode(nonce);
        let mac = hmac::sign(&self.device_key, &Self::device_message(&nonce, national_id));
        Ok(format!("{nonce}.{}", B64.encode(mac)))
    }

    /// The device a cookie names, if it is genuine and was issued to `national_id`.
    fn trusted_device<'c>(&self, cookie: Option<&'c str>, national_id: &str) -> Option<&'c str> {
        let (nonce, mac) = cookie?.split_once('.')?;
        let mac = B64.decode(mac).ok()?;
        hmac::verify(&self.device_key, &Self::device_message(nonce, national_id), &mac).ok()?;
        Some(nonce)
    }

    /// Counts an attempt of `action` on `national_id` from `address`, made in a browser that
    /// carries `device_cookie`, before it is evaluated.
    pub async fn reserve(
        &self,
        store: &dyn EphemeralStore,
        action: Action,
        national_id: &str,
        address: &str,
        device_cookie: Option<&str>,
    ) -> Result<Verdict, StoreError> {
        let (citizen_limit, address_limit) = match action {
            Action::Password => (self.limits.password_citizen, self.limits.password_address),
            Action::SmartId => (self.limits.smart_id_citizen, self.limits.smart_id_address),
        };
        let what = action.name();
        let citizen_key = match self.trusted_device(device_cookie, national_id) {
            Some(device) => keyspace::attempts(&format!("{what}-device"), device),
            None => keyspace::attempts(&format!("{what}-citizen"), national_id),
        };
        let failures = AddressLimit { what, limit: address_limit };
        let over_address = match action {
            // Smart-ID requests count per address whatever their outcome.
            Action::SmartId => store.increment(&failures.key(address), address_limit.window).await? > address_limit.max,
            Action::Password => !failures.allows(store, address).await?,
        };
        if over_address {
            tracing::warn!(target: "audit", event = "throttle.address", action = what, "attempt refused: too many from this address");
            return Ok(Verdict::Blocked);
        }
        let count = store.increment(&citizen_key, citizen_limit.window).await?;
        if count > citizen_limit.max {
            tracing::warn!(target: "audit", event = "throttle.citizen", action = what, "attempt refused: too many for this citizen");
            return Ok(Verdict::Blocked);
        }
        let address = (action == Action::Password).then(|| (failures, address.to_owned()));
        Ok(Verdict::Allowed(Reservation { citizen_key, citizen_limit, count, address }))
    }
}

impl Throttle {
    /// Counts a request pushed to `national_id`'s device by a relying party (not from a
    /// browser): the citizen's count only. An agency asks for many citizens from one
    /// address; only the citizen's device must not be flooded.
    pub async fn reserve_citizen(&self, store: &dyn EphemeralStore, action: Action, national_id: &str) -> Result<Verdict, StoreError> {
        let citizen_limit = match action {
            Action::Password => self.limits.password_citizen,
            Action::SmartId => self.limits.smart_id_citizen,
        };
        let citizen_key = keyspace::attempts(&format!("{}-citizen", action.name()), national_id);
        let count = store.increment(&citizen_key, citizen_limit.window).await?;
        if count > citizen_limit.max {
            tracing::warn!(target: "audit", event = "throttle.citizen", action = action.name(), "request refused: too many for this citizen");
            return Ok(Verdict::Blocked);
        }
        Ok(Verdict::Allowed(Reservation { citizen_key, citizen_limit, count, address: None }))
    }
}

async fn read_count(store: &dyn EphemeralStore, key: &str) -> Result<u64, StoreError> {
    Ok(store.get(key).await?.and_then(|b| String::from_utf8(b.to_vec()).ok()).and_then(|s| s.parse().ok()).unwrap_or(0))
}

impl Reservation {
    /// How many attempts this one is within its window (itself included).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The attempt failed: it counts against the address too. `true` when no attempt is
    /// left for this citizen (from this browser, or from untrusted ones) in the window.
    pub async fn failed(self, store: &dyn EphemeralStore) -> Result<bool, StoreError> {
        if let Some((limit, address)) = &self.address {
            limit.failed(store, address).await?;
        }
        Ok(self.count >= self.citizen_limit.max)
    }

    /// The attempt succeeded: this citizen's count (for this browser, or for untrusted ones)
    /// starts again.
    pub async fn succeeded(self, store: &dyn EphemeralStore) -> Result<(), StoreError> {
        store.delete(&self.citizen_key).await?;
        Ok(())
    }

    /// The attempt was counted and needs no outcome (smart-ID requests count whatever
    /// follows).
    pub fn keep(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::ephemeral::MemoryStore;

    fn allowed(v: Verdict) -> Reservation {
        match v {
            Verdict::Allowed(r) => r,
            Verdict::Blocked => panic!("blocked"),
        }
    }

    #[tokio::test]
    async fn concurrent_attempts_cannot_outrun_the_limit() {
        let throttle = std::sync::Arc::new(Throttle::new(Limits::default(), b"secret"));
        let store: std::sync::Arc<dyn EphemeralStore> = std::sync::Arc::new(MemoryStore::new());
        let mut tasks = Vec::new();
        for i in 0..30 {
            let (throttle, store) = (throttle.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                matches!(throttle.reserve(store.as_ref(), Action::Password, "9861234567", &format!("198.51.100.{i}"), None).await, Ok(Verdict::Allowed(_)))
            }));
        }
        let mut allowed_count = 0;
        for t in tasks {
            allowed_count += usize::from(t.await.expect("task"));
        }
        assert_eq!(allowed_count, 5);
    }

    #[tokio::test]
    async fn a_strangers_failures_do_not_block_the_citizens_own_browser() {
        let throttle = Throttle::new(Limits::default(), b"secret");
        let store = MemoryStore::new();
        let own = throttle.device_cookie("9861234567").expect("cookie");
        for _ in 0..5 {
            let r = allowed(throttle.reserve(&store, Action::Password, "9861234567", "203.0.113.1", None).await.expect("store"));
            r.failed(&store).await.expect("store");
        }
        assert!(matches!(throttle.reserve(&store, Action::Password, "9861234567", "203.0.113.2", None).await, Ok(Verdict::Blocked)));
        // Another citizen's cookie, or a forged one, is a stranger's.
        let other = throttle.device_cookie("1111111111").expect("cookie");
        assert!(matches!(throttle.reserve(&store, Action::Password, "9861234567", "203.0.113.3", Some(&other)).await, Ok(Verdict::Blocked)));
        let forged = format!("{}.AAAA", own.split_once('.').expect("nonce").0);
        assert!(matches!(throttle.reserve(&store, Action::Password, "9861234567", "203.0.113.3", Some(&forged)).await, Ok(Verdict::Blocked)));
        let r = allowed(throttle.reserve(&store, Action::Password, "9861234567", "192.0.2.7", Some(&own)).await.expect("store"));
        assert_eq!(r.count(), 1);
        r.succeeded(&store).await.expect("store");
    }

    #[tokio::test]
    async fn failures_from_one_address_block_it_for_every_citizen() {
        let limits = Limits { password_address: Limit { max: 3, window: FIFTEEN_MINUTES }, ..Limits::default() };
        let throttle = Throttle::new(limits, b"secret");
        let store = MemoryStore::new();
        for i in 0..3 {
            let r = allowed(throttle.reserve(&store, Action::Password, &format!("100000000{i}"), "203.0.113.9", None).await.expect("store"));
            assert!(!r.failed(&store).await.expect("store"));
        }
        assert!(matches!(throttle.reserve(&store, Action::Password, "1000000009", "203.0.113.9", None).await, Ok(Verdict::Blocked)));
        // Successes elsewhere do not count against an address.
        let r = allowed(throttle.reserve(&store, Action::Password, "1000000009", "203.0.113.10", None).await.expect("store"));
        r.succeeded(&store).await.expect("store");
        assert!(matches!(throttle.reserve(&store, Action::Password, "1000000008", "203.0.113.10", None).await, Ok(Verdict::Allowed(_))));
    }

    #[tokio::test]
    async fn wrong_activation_codes_block_their_address_only() {
        let store = MemoryStore::new();
        let limit = AddressLimit::ACTIVATION;
        for _ in 0..20 {
            assert!(limit.allows(&store, "203.0.113.9").await.expect("store"));
            limit.failed(&store, "203.0.113.9").await.expect("store");
        }
        assert!(!limit.allows(&store, "203.0.113.9").await.expect("store"));
        assert!(limit.allows(&store, "203.0.113.10").await.expect("store"));
    }
}
