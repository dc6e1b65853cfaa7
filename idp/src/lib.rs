//! The OpenID Connect provider every e-service integrates with, so that a citizen logs in
//! once and reaches every service.
//!
//! One module per protocol action, as panva's node-oidc-provider lays out `lib/actions/`;
//! [`provider::Provider`] holds the state they share and [`http`] (split the same way) turns
//! them into endpoints and server-rendered pages in Arabic and English.
//!
//! | where | what |
//! |---|---|
//! | [`authorize`] | the authorization request: checking it, request objects (by value and by `request_uri`), code issuance, error redirects |
//! | [`login`] | login transactions, the password and one-time-code step, the methods that reach a level, what a login does to the session |
//! | [`throttle`] | every rate limit and lockout, password and smart-ID alike; device cookies |
//! | [`smart_id`] | the smart-ID login: its flow, the certificate [`smart_id::verifier`], the [`smart_id::ocsp`] revocation source |
//! | [`signing`] | e-signatures with the smart-ID signing key (PIN2): signing sessions, the device's requests and answers; the formats are `hawiya`'s [`signing::SignatureMaker`] |
//! | [`esign_api`] | the agencies' signing API (`/api/esign/v1`), on agency tokens from [`token::client_credentials`]: a document or only its digest (a detached CAdES over it), and a signed notification to the agency's `callback_uri` when a request ends (delivered by [`backchannel`]) |
//! | [`csc`] | the CSC API v2 for signing tools (`/csc/v2`), on citizens' access tokens with `csc`: hashes signed on the device after PIN2, released by a SAD bound to them (SCAL2) |
//! | [`validation`] | the validation API (`POST /validation`) and the verification page (`/verify`) for auditors and citizens, no login; the validation itself is `hawiya`'s [`validation::Validator`] |
//! | [`session`] | the SSO session and its lifetimes; [`logout`] ends it (RP-initiated, back-channel via [`backchannel`]) |
//! | [`consent`] | what a request releases, the consent page's answer, the account page's consents |
//! | [`subject`] | pairwise subject identifiers |
//! | [`id_token`] | the id_token's claims (a typed struct), its `acr`, `at_hash` |
//! | [`token`] | the token endpoint, dispatching on [`token::GrantType`] to [`token::authorization_code`], [`token::refresh_token`] (where a refresh token is rotated, and its format) and [`token::client_credentials`] (agencies' machine scopes) |
//! | [`userinfo`], [`revocation`], [`introspection`] | the other protocol endpoints |
//! | [`clients`], `client_keys` | client registrations and client authentication |
//! | [`keyspace`] | every key of the ephemeral store |
//!
//! So: the id_token is built in [`id_token`] (from [`token`]); a refresh token is rotated in
//! [`token::refresh_token`]; the login rate limit is [`throttle`].
//!
//! Levels of assurance, methods and what each service may receive come from the policy
//! files; citizens, clients, consents and refresh tokens from the durable store; sessions,
//! codes and replay caches from the ephemeral store (memory or Redis), so that replicas
//! sharing it act as one provider.
//!
//! This crate must never depend on the CA (`ca`), never log a secret (passwords, codes,
//! tokens, cookies), and never redirect to a URI that is not registered exactly.
#![forbid(unsafe_code)]

use std::time::Duration;

pub mod admission;
pub mod authorize;
pub mod backchannel;
mod cache;
pub mod citizens;
mod client_keys;
pub mod clients;
pub mod consent;
pub mod credentials;
pub mod csc;
pub mod esign_api;
pub mod http;
pub mod id_token;
pub mod introspection;
pub mod keys;
pub mod keyspace;
pub mod login;
pub mod logout;
pub mod metrics;
pub mod oauth;
pub mod pages;
pub mod provider;
pub mod revocation;
pub mod session;
pub mod signing;
pub mod smart_id;
pub mod subject;
pub mod throttle;
pub mod token;
pub mod userinfo;
pub mod validation;

/// The current time in Unix seconds: every `now` the provider's API takes.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// How the provider behaves; the binary fills it from its configuration.
#[derive(Clone)]
pub struct Settings {
    /// The issuer identifier: the URL prefix of every endpoint (no trailing slash).
    pub issuer: String,
    /// How long an authorization code lives (at most 60 s).
    pub code_ttl: Duration,
    /// How long an access token lives.
    pub access_ttl: Duration,
    /// How long an id_token is valid.
    pub id_token_ttl: Duration,
    /// How long a refresh token lives unused (each rotation starts it again).
    pub refresh_ttl: Duration,
    /// How long a refresh-token family lasts at most, however often it is rotated.
    pub refresh_lifetime: Duration,
    /// How long a citizen has to log in and consent.
    pub login_timeout: Duration,
    /// The provider's secret: the salt of pairwise subject identifiers, and the key the
    /// refresh-token MAC key is derived from. Never logged.
    pub secret: Vec<u8>,
    /// How deliveries to relying parties (back-channel logout, signing notifications) are
    /// retried, and how often the delivery worker looks for them.
    pub backchannel_retry: backchannel::Schedule,
    /// Reverse proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Password logins that may wait for a password check beyond those running (one per
    /// core); past them a login is refused at once with 503 ([`admission`]). 32 per core by
    /// default: about a second of waiting with production Argon2id parameters.
    pub login_queue: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl Settings {
    /// The defaults for an issuer: codes 60 s, access tokens and id_tokens 10 min, refresh
    /// tokens 30 days unused and 90 days at most, 10 min to log in.
    pub fn new(issuer: &str, secret: Vec<u8>) -> Self {
        Settings {
            issuer: issuer.trim_end_matches('/').to_owned(),
            code_ttl: Duration::from_secs(60),
            access_ttl: Duration::from_secs(600),
            id_token_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            refresh_lifetime: Duration::from_secs(90 * 86_400),
            login_timeout: Duration::from_secs(600),
            secret,
            backchannel_retry: backchannel::Schedule::default(),
            trusted_proxies: Vec::new(),
            login_queue: 32 * cores(),
        }
    }
}

/// Everything the IdP refuses or fails at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdpError {
    /// A password that does not meet the policy.
    #[error("the password must be {min} to {max} characters long")]
    PasswordLength {
        /// Fewest characters.
        min: usize,
        /// Most characters.
        max: usize,
    },
    /// A stored password hash cannot be read.
    #[error("stored password hash is damaged: {0}")]
    CorruptHash(String),
    /// A TOTP secret that cannot be used.
    #[error("invalid one-time-code secret: {0}")]
    InvalidTotpSecret(String),
    /// A client registration that cannot be used.
    #[error("invalid client registration: {0}")]
    InvalidClient(String),
    /// Stored data that cannot be read back.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The signing keys cannot be used.
    #[error("signing keys: {0}")]
    Keys(String),
    /// The key store failed.
    #[error(transparent)]
    KeyStore(#[from] hsm_shim::Error),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Outgoing HTTP cannot be set up.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A record of the provider (a session, a transaction, a citizen's profile, a client
    /// registration) cannot be written or read back.
    #[error("the {what} record cannot be stored or read back: {source}")]
    Record {
        /// Which record.
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The cryptographic library failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

/// The cores this process may use (2 if unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
