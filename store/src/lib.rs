//! Persistence for Hawiya.
//!
//! The durable store keeps what must survive anything: certificates and their status, CRL
//! numbers, published CRLs and the ceremony record ([`CaStore`]); citizens, relying parties,
//! consents and refresh tokens ([`IdpStore`]); the audit log ([`audit::AuditStore`]); the
//! deliveries owed to relying parties ([`delivery::DeliveryQueue`]). Each trait has two
//! backends, chosen at start-up from [`DurableConfig`]: SQLite (embedded default, WAL,
//! group commit) and PostgreSQL. One conformance suite per trait runs against both. Each
//! backend's schema is a list of numbered SQL files (`store/migrations/`), applied when a
//! store opens; a database of a newer release is refused.
//!
//! The ephemeral store ([`ephemeral::EphemeralStore`]: memory or Redis) keeps short-lived
//! state with a time to live.
//!
//! A write is durable when its future resolves: callers may hand out what they stored.
//! This crate knows no X.509, no OpenID Connect and no HTTP; it stores what the CA and the
//! provider tell it.

pub mod audit;
pub mod delivery;
pub mod ephemeral;
mod idp;
mod migration;
mod model;
mod postgres;
mod sqlite;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;

pub use idp::*;
pub use model::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Everything that can go wrong in the durable store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A certificate with that serial number exists already.
    #[error("serial number {0} is already in use")]
    DuplicateSerial(Serial),
    /// No certificate has that serial number.
    #[error("no certificate with serial number {0}")]
    UnknownSerial(Serial),
    /// The certificate is revoked for good.
    #[error("certificate {serial} is already revoked ({reason})")]
    AlreadyRevoked {
        /// The certificate.
        serial: Serial,
        /// Why it was revoked.
        reason: RevocationReason,
    },
    /// The certificate is already on hold.
    #[error("certificate {0} is already on hold")]
    AlreadyOnHold(Serial),
    /// Only a certificate on hold can be released.
    #[error("certificate {0} is not on hold")]
    NotOnHold(Serial),
    /// The ceremony has already been run on this store.
    #[error("this store already holds a CA hierarchy (ceremony of {0}); refusing to run another")]
    CeremonyExists(String),
    /// The ceremony record is not the one an update was made from (or there is none).
    #[error("the ceremony record changed meanwhile (another renewal?); nothing was recorded")]
    CeremonyChanged,
    /// A citizen with that national id (or id) exists already.
    #[error("a citizen with national id {0} is already registered")]
    DuplicateCitizen(String),
    /// No citizen has that national id.
    #[error("no citizen with national id {0}")]
    UnknownCitizen(String),
    /// A client with that id exists already.
    #[error("a client with id {0} is already registered")]
    DuplicateClient(String),
    /// A refresh-token family with that id exists already.
    #[error("refresh-token family collision")]
    DuplicateToken,
    /// A signing key with that key id exists already.
    #[error("a signing key with key id {0} exists already")]
    DuplicateSigningKey(String),
    /// Another citizen's smart-ID has that device key.
    #[error("device key {0} belongs to another citizen's smart-ID")]
    DuplicateDevice(String),
    /// A stored value cannot be read back.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The database failed; what its driver reported is the source.
    #[error("{backend} error: {source}")]
    Database {
        /// Which database: `SQLite`, `PostgreSQL` or `Redis`.
        backend: &'static str,
        /// What the driver reported (a `rusqlite::Error`, `tokio_postgres::Error`,
        /// `redis::RedisError`, …), for the log or for a caller that must tell causes apart.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database cannot be reached now: its connection broke (the server stopped, a
    /// failover is under way) and no server accepting writes answers yet. A change that was
    /// in flight was not acknowledged; the request may be retried in a moment, and the store
    /// reconnects by itself (to whichever server accepts writes by then).
    #[error("{backend} is unreachable: {source}")]
    Unreachable {
        /// Which database: `PostgreSQL`, `Redis`, or the audit log in front of one.
        backend: &'static str,
        /// What the driver reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store cannot serve requests any more: its writer thread has stopped, or a panic
    /// poisoned one of its locks.
    #[error("the store is unavailable: {0}")]
    Unavailable(&'static str),
    /// The database could not be opened.
    #[error("cannot open {what}: {source}")]
    Open {
        /// Which store.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A migration failed; nothing of it was applied.
    #[error("cannot apply migration {name} to {what}: {source}")]
    Migration {
        /// Which store.
        what: String,
        /// The migration's version.
        version: i64,
        /// Its file (`0003_refresh_families.sql`).
        name: &'static str,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A newer release has migrated the database: this one does not know its schema.
    #[error("{what} has schema version {found}, newer than this release knows ({known}): run the release that migrated it, or a newer one")]
    SchemaTooNew {
        /// Which store.
        what: String,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this release knows.
        known: i64,
    },
}

impl StoreError {
    /// A failure of the `backend` database.
    pub(crate) fn database(backend: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Database { backend, source: source.into() }
    }

    /// Whether the request failed only because the database cannot be reached now: callers
    /// answer "try again in a moment" (HTTP 503 with `Retry-After`), not an internal error.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }
}

/// Reads a stored status back (both backends store the same columns).
pub(crate) fn status_of(status: &str, reason: Option<u8>, at: Option<i64>) -> Result<CertificateStatus, StoreError> {
    match (status, reason.and_then(RevocationReason::from_code), at) {
        ("good", _, _) => Ok(CertificateStatus::Good),
        ("revoked", Some(reason), Some(at)) => Ok(CertificateStatus::Revoked { reason, at }),
        _ => Err(StoreError::Corrupt(format!("status {status:?} with reason {reason:?}"))),
    }
}

/// Why a status change matched no row.
pub(crate) fn refusal(serial: &Serial, current: Option<CertificateStatus>, releasing: bool) -> StoreError {
    match current {
        None => StoreError::UnknownSerial(serial.clone()),
        Some(CertificateStatus::Revoked { reason: RevocationReason::CertificateHold, .. }) => StoreError::AlreadyOnHold(serial.clone()),
        Some(CertificateStatus::Revoked { reason, .. }) if !releasing => StoreError::AlreadyRevoked { serial: serial.clone(), reason },
        Some(_) => StoreError::NotOnHold(serial.clone()),
    }
}

/// Which durable backend to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurableConfig {
    /// An SQLite database file (created if missing).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// A libpq-style connection string or URL. May hold a password: never logged.
        url: String,
        /// How many connections to keep open.
        connections: usize,
    },
}

/// Everything kept durably: what the CA and what the OpenID Connect provider keep. A
/// `Arc<dyn DurableStore>` turns into either part with `as Arc<dyn CaStore>`.
pub trait DurableStore: CaStore + IdpStore + audit::AuditStore + delivery::DeliveryQueue {}

impl<T: CaStore + IdpStore + audit::AuditStore + delivery::DeliveryQueue> DurableStore for T {}

/// Opens the configured store and brings its schema up to date.
pub async fn open(config: &DurableConfig) -> Result<Arc<dyn DurableStore>, StoreError> {
    Ok(match config {
        DurableConfig::Sqlite { path } => Arc::new(SqliteStore::open(path)?),
        DurableConfig::Postgres { url, connections } => Arc::new(PostgresStore::connect(url, *connections).await?),
    })
}

/// What the certificate authority keeps.
#[async_trait::async_trait]
pub trait CaStore: Send + Sync + std::fmt::Debug {
    /// Answers if the database does, changing nothing (readiness probes): every connection
    /// (or the reader and the writer) runs a trivial statement.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a newly issued certificate (status good). Durable when this returns.
    async fn insert_certificate(&self, certificate: &NewCertificate) -> Result<(), StoreError>;

    /// The certificate with that serial number.
    async fn certificate(&self, serial: &Serial) -> Result<Option<CertificateRecord>, StoreError>;

    /// The status of a certificate issued by `issuer` (the OCSP responder's question).
    async fn status(&self, issuer: &str, serial: &Serial) -> Result<Option<CertificateStatus>, StoreError>;

    /// Revokes a certificate, or puts it on hold with [`RevocationReason::CertificateHold`].
    /// A certificate on hold may be revoked for good; a revoked one never changes again.
    async fn revoke(&self, serial: &Serial, reason: RevocationReason, at: i64) -> Result<CertificateRecord, StoreError>;

    /// Lifts a hold: the certificate is good again.
    async fn release(&self, serial: &Serial) -> Result<CertificateRecord, StoreError>;

    /// Certificates, newest first, optionally only those of one issuer.
    async fn list(&self, issuer: Option<&str>, limit: usize) -> Result<Vec<CertificateRecord>, StoreError>;

    /// Every revoked or held certificate of `issuer`, for its CRL.
    async fn revoked(&self, issuer: &str) -> Result<Vec<RevokedEntry>, StoreError>;

    /// How many certificates the store holds.
    async fn count(&self) -> Result<u64, StoreError>;

    /// The next CRL number of `issuer` (1, 2, 3, … never repeated).
    async fn next_crl_number(&self, issuer: &str) -> Result<u64, StoreError>;

    /// Keeps the latest CRL of `issuer` (replacing an older one, never a newer one).
    async fn put_crl(&self, crl: &PublishedCrl) -> Result<(), StoreError>;

    /// The latest CRL of `issuer`.
    async fn latest_crl(&self, issuer: &str) -> Result<Option<PublishedCrl>, StoreError>;

    /// Records the key ceremony; refuses a second one.
    async fn put_ceremony(&self, record: &CeremonyRecord) -> Result<(), StoreError>;

    /// The key ceremony, if it has run.
    async fn ceremony(&self) -> Result<Option<CeremonyRecord>, StoreError>;

    /// Replaces the ceremony record with `next` (a renewal's) and stores `certificates` (the
    /// ones it adds), all or nothing, if the record is still `previous`; otherwise changes
    /// nothing and answers [`StoreError::CeremonyChanged`] (a serial already stored:
    /// [`StoreError::DuplicateSerial`]). Durable when this returns.
    async fn update_ceremony(&self, previous: &CeremonyRecord, next: &CeremonyRecord, certificates: &[NewCertificate]) -> Result<(), StoreError>;

    /// Records issued timestamp tokens, all or none, in one transaction. Durable when this
    /// returns; a serial already recorded refuses the whole group with
    /// [`StoreError::DuplicateSerial`].
    async fn record_timestamps(&self, records: &[TimestampRecord]) -> Result<(), StoreError>;

    /// The record of the timestamp token with that serial number.
    async fn timestamp(&self, serial: &Serial) -> Result<Option<TimestampRecord>, StoreError>;
}
