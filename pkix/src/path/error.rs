//! Why a certification path was refused, in terms that map onto ETSI EN 319 102-1.

use std::time::SystemTime;

use x509_cert::ext::pkix::CrlReason;

pub use crate::etsi::SubIndication;

/// Why a certificate path was refused. Every variant names the certificate (its subject) and
/// the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A certificate could not be decoded.
    #[error("certificate {what} cannot be decoded: {reason}")]
    Malformed {
        /// Which certificate (its role, or its subject when it is known).
        what: String,
        /// The decoder's reason.
        reason: String,
    },
    /// No issuer was found for a certificate, or every candidate path ended without reaching a
    /// trust anchor.
    #[error("no certification path from «{subject}» to a trust anchor: {reason}")]
    NoPath {
        /// The end-entity certificate's subject.
        subject: String,
        /// What the path builder found.
        reason: String,
    },
    /// A certificate had expired at the validation time.
    #[error("certificate «{subject}» expired at {not_after} (unix time), before the validation time {at}")]
    Expired {
        /// The certificate's subject.
        subject: String,
        /// Its notAfter, seconds since 1970.
        not_after: u64,
        /// The validation time, seconds since 1970.
        at: u64,
    },
    /// A certificate was not yet valid at the validation time.
    #[error("certificate «{subject}» is valid only from {not_before} (unix time), after the validation time {at}")]
    NotYetValid {
        /// The certificate's subject.
        subject: String,
        /// Its notBefore, seconds since 1970.
        not_before: u64,
        /// The validation time, seconds since 1970.
        at: u64,
    },
    /// A certificate is revoked.
    #[error("{} «{subject}» is revoked{}", if *.end_entity { "certificate" } else { "CA certificate" }, revoked_detail(*.revoked_at, *.reason))]
    Revoked {
        /// The certificate's subject.
        subject: String,
        /// Whether it is the end-entity (REVOKED) rather than a CA of the path (REVOKED_CA_NO_POE).
        end_entity: bool,
        /// When it was revoked.
        revoked_at: SystemTime,
        /// The reason given, if any.
        reason: Option<CrlReason>,
    },
    /// The revocation status of a certificate is unknown and the options require one.
    #[error("the revocation status of certificate «{subject}» is unknown: {reason}")]
    RevocationUnknown {
        /// The certificate's subject.
        subject: String,
        /// What the revocation source said.
        reason: String,
    },
    /// The revocation evidence about a certificate is authentic but not fresh enough for the
    /// time asked about, and the options require a status.
    #[error("the revocation evidence about certificate «{subject}» is not fresh enough: the newest was issued at {} (unix time); fresher evidence should exist from {} (unix time) on", unix(*newest), unix(*retry_after))]
    RevocationNotFresh {
        /// The certificate's subject.
        subject: String,
        /// thisUpdate of the newest evidence.
        newest: SystemTime,
        /// From when fresher evidence should exist.
        retry_after: SystemTime,
    },
    /// A certificate breaks a constraint of RFC 5280 or of the profile in force.
    #[error("certificate «{subject}»: {rule}")]
    Constraint {
        /// The certificate's subject.
        subject: String,
        /// The rule broken, in one line.
        rule: String,
    },
    /// A key or signature algorithm is refused by the algorithm policy or not supported.
    #[error("certificate «{subject}»: {detail}")]
    Crypto {
        /// The certificate's subject.
        subject: String,
        /// Which key or algorithm, and why.
        detail: String,
    },
    /// A signature does not verify with its issuer's key.
    #[error("the signature of certificate «{subject}» does not verify with the key of «{issuer}»")]
    BadSignature {
        /// The certificate's subject.
        subject: String,
        /// The issuer whose key was tried.
        issuer: String,
    },
    /// The certificate does not name the peer the caller expected.
    #[error("certificate «{subject}» is not valid for {name}")]
    NameMismatch {
        /// The certificate's subject.
        subject: String,
        /// The expected name.
        name: String,
    },
    /// Path building gave up: too many candidates, names or constraints to examine.
    #[error("path building for «{subject}» gave up: {reason}")]
    TooComplex {
        /// The end-entity certificate's subject.
        subject: String,
        /// Which limit was reached.
        reason: String,
    },
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn revoked_detail(at: SystemTime, reason: Option<CrlReason>) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    match reason {
        Some(reason) => format!(" since {secs} (unix time), reason {reason:?}"),
        None => format!(" since {secs} (unix time)"),
    }
}

impl PathError {
    /// The subject of the certificate the error is about, as [`super::subject_text`] writes
    /// it: the end-entity's when no path was found, none when a certificate cannot be decoded.
    pub fn subject(&self) -> Option<&str> {
        match self {
            PathError::Malformed { .. } => None,
            PathError::NoPath { subject, .. }
            | PathError::Expired { subject, .. }
            | PathError::NotYetValid { subject, .. }
            | PathError::Revoked { subject, .. }
            | PathError::RevocationUnknown { subject, .. }
            | PathError::RevocationNotFresh { subject, .. }
            | PathError::Constraint { subject, .. }
            | PathError::Crypto { subject, .. }
            | PathError::BadSignature { subject, .. }
            | PathError::NameMismatch { subject, .. }
            | PathError::TooComplex { subject, .. } => Some(subject),
        }
    }

    /// The EN 319 102-1 sub-indication this error corresponds to.
    pub fn sub_indication(&self) -> SubIndication {
        match self {
            PathError::Malformed { .. } => SubIndication::FormatFailure,
            PathError::NoPath { .. } | PathError::TooComplex { .. } => SubIndication::NoCertificateChainFound,
            PathError::Expired { .. } | PathError::NotYetValid { .. } => SubIndication::OutOfBoundsNoPoe,
            PathError::Revoked { end_entity: true, .. } => SubIndication::Revoked,
            PathError::Revoked { end_entity: false, .. } => SubIndication::RevokedCaNoPoe,
            // No evidence that can be relied on: EN 319 102-1 §5.2.6 and DSS (its
            // RevocationDataAvailable and AcceptableRevocationDataAvailable checks) say
            // INDETERMINATE / CERTIFICATE_CHAIN_GENERAL_FAILURE; TRY_LATER is for evidence that
            // exists but is not fresh enough (§5.2.5, DSS's revocation freshness checker).
            PathError::RevocationUnknown { .. } => SubIndication::CertificateChainGeneralFailure,
            PathError::RevocationNotFresh { .. } => SubIndication::TryLater,
            PathError::Constraint { .. } | PathError::NameMismatch { .. } => SubIndication::ChainConstraintsFailure,
            PathError::Crypto { .. } => SubIndication::CryptoConstraintsFailure,
            PathError::BadSignature { .. } => SubIndication::SigCryptoFailure,
        }
    }
}
