//! Revocation checking, behind a trait the caller implements (OCSP, CRLs, embedded evidence).

use std::time::SystemTime;

use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;

/// What a revocation source says about a certificate at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevocationStatus {
    /// Not revoked at that time.
    Good,
    /// Revoked since `at`, for `reason` if one was given.
    Revoked {
        /// The revocation time.
        at: SystemTime,
        /// The reason, if the evidence gives one.
        reason: Option<CrlReason>,
    },
    /// The source has authentic evidence about this certificate that does not say it was
    /// revoked, but none fresh enough to speak for the time asked about (EN 319 102-1 §5.2.5,
    /// the revocation freshness checker): fresher evidence should exist from `retry_after` on.
    /// The validation concludes INDETERMINATE / TRY_LATER, not as if there were none.
    NotFresh {
        /// thisUpdate of the newest evidence there is.
        newest: SystemTime,
        /// When to look again: the newest evidence's nextUpdate, or the time asked about when
        /// that has passed (or is not given) — evidence issued since then speaks for it.
        retry_after: SystemTime,
    },
    /// The source has no usable evidence about this certificate.
    Unknown,
}

/// A revocation source has evidence about the certificate that cannot be relied on (malformed,
/// badly signed, stale). The validator refuses the path on it, whatever
/// [`PathOptions::require_revocation_status`](super::PathOptions::require_revocation_status)
/// says; a source that merely has no answer (a responder that cannot be reached) returns
/// [`RevocationStatus::Unknown`] instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("revocation source: {0}")]
pub struct RevocationError(pub String);

/// The status of certificates, as the caller knows it: OCSP responses, CRLs, or the evidence
/// embedded in a signature. The validator calls [`Revocation::status`] once for every
/// certificate of the chosen path except the trust anchor, after every other check passed.
pub trait Revocation: Send + Sync + std::fmt::Debug {
    /// The status of `certificate`, issued by `issuer`, at `time`.
    fn status(&self, certificate: &Certificate, issuer: &Certificate, time: SystemTime) -> Result<RevocationStatus, RevocationError>;
}
