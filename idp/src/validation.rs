//! Validation of signed documents for auditors and citizens: the validation API
//! (`POST /validation`) and the verification page (`/verify`), neither of which needs a login.
//!
//! The provider does not validate signatures itself: it must not depend on `esign`. The
//! binary hands it a [`Validator`] (EN 319 102-1 validation against the trust list and the
//! deployment's own hierarchy) whose JSON report the API returns as it is and the page
//! reads through [`ReportView`]. The provider checks the request (size, policy), limits
//! how often one address may ask, and runs the validation off the async threads.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::provider::Provider;
use crate::throttle::AddressLimit;

/// A validation report in the forms the API serves.
#[derive(Clone, Debug)]
pub struct Reports {
    /// The JSON report (what the page reads).
    pub json: Value,
    /// The same as an ETSI TS 119 102-2 XML validation report.
    pub xml: String,
}

/// Validates a signed document (EN 319 102-1) and reports.
pub trait Validator: Send + Sync {
    /// The reports on `document` (named `name`; with `detached`, the document a detached
    /// signature or a timestamp token is over) under `policy`. CPU-bound and synchronous: the
    /// provider calls it on a blocking thread.
    fn validate(&self, document: &[u8], name: &str, detached: Option<&[u8]>, policy: &policies::ValidationPolicy) -> Reports;
}

/// A document to validate.
#[derive(Debug, Default)]
pub struct ValidationRequest {
    /// The signed file: a PDF, a CAdES signature, or an RFC 3161 token.
    pub document: Vec<u8>,
    /// Its name (the last path segment the client sent), for the report.
    pub name: String,
    /// The document a detached signature or a timestamp token is over.
    pub detached: Option<Vec<u8>>,
    /// The validation policy's id; the policy files' default when none.
    pub policy: Option<String>,
}

/// Why a document was not validated. Nothing is stored for any of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationRefusal {
    /// This deployment does not validate documents.
    #[error("this server does not validate documents")]
    Unavailable,
    /// No signed file, or an empty one.
    #[error("no signed file: send it in the multipart part `file`")]
    Empty,
    /// The signed file and its detached document together exceed `max_validation_bytes`.
    #[error("the upload is larger than allowed; the largest accepted is {0} bytes (max_validation_bytes)")]
    TooLarge(usize),
    /// No validation policy with this id.
    #[error("no validation policy {id:?} (known: {known})")]
    UnknownPolicy {
        /// The id asked for.
        id: String,
        /// The ids there are, comma-separated.
        known: String,
    },
    /// Too many validations from this address.
    #[error("too many validation requests from this address; try again in 15 minutes")]
    Flood,
    /// Something failed on our side.
    #[error("{0}")]
    Server(#[from] crate::IdpError),
}

impl From<store::StoreError> for ValidationRefusal {
    fn from(e: store::StoreError) -> Self {
        ValidationRefusal::Server(e.into())
    }
}

impl Provider {
    /// Enables the validation API and the verification page, with `validator`.
    pub fn with_validation(mut self, validator: Arc<dyn Validator>) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Whether documents are validated here.
    pub fn validates(&self) -> bool {
        self.validator.is_some()
    }

    /// The largest upload accepted (the signed file and its detached document together).
    pub fn max_validation_bytes(&self) -> usize {
        self.policies.signing().max_validation_bytes
    }

    /// Validates `request` for a client at `address`: the JSON report. The request is
    /// checked before anything is counted; a validation is counted against the address
    /// before it runs.
    pub async fn validate_document(&self, request: ValidationRequest, address: &str) -> Result<Reports, ValidationRefusal> {
        let Some(validator) = self.validator.clone() else { return Err(ValidationRefusal::Unavailable) };
        let limit = self.max_validation_bytes();
        if request.document.len().saturating_add(request.detached.as_ref().map_or(0, Vec::len)) > limit {
            return Err(ValidationRefusal::TooLarge(limit));
        }
        if request.document.is_empty() {
            return Err(ValidationRefusal::Empty);
        }
        let policies = Arc::clone(&self.policies);
        if let Some(id) = request.policy.as_deref()
            && policies.validation_policy(id).is_none()
        {
            let known: Vec<&str> = policies.validation_policies().iter().map(|p| p.id.as_str()).collect();
            return Err(ValidationRefusal::UnknownPolicy { id: id.to_owned(), known: known.join(", ") });
        }
        if !AddressLimit::VALIDATION.counted(self.ephemeral.as_ref(), address).await? {
            return Err(ValidationRefusal::Flood);
        }
        // CPU-bound: no more at once than there are cores, so that logins keep their share.
        let permit = Arc::clone(&self.validations).acquire_owned().await.map_err(|_| crate::IdpError::Corrupt("the validation queue is closed".into()))?;
        let report = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let policy = request.policy.as_deref().and_then(|id| policies.validation_policy(id)).unwrap_or_else(|| policies.default_validation_policy());
            validator.validate(&request.document, &request.name, request.detached.as_deref(), policy)
        })
        .await
        .map_err(|e| crate::IdpError::Corrupt(format!("the validation stopped: {e}")))?;
        Ok(report)
    }
}

/// What the verification page shows of a JSON report (the fields it names; the rest of the
/// report is for the API).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReportView {
    /// The policy applied.
    pub policy: PolicyView,
    /// When it was validated.
    pub validation_time: String,
    /// The document.
    pub document: DocumentView,
    /// The document's indication.
    pub indication: String,
    /// Its sub-indication.
    pub sub_indication: Option<String>,
    /// Per signature and timestamp.
    pub signatures: Vec<SignatureView>,
}

/// The policy a report applied.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PolicyView {
    /// Its id.
    pub id: String,
    /// Its revision.
    pub revision: u32,
    /// Its name in both languages.
    pub name: BilingualView,
}

/// A text in Arabic and English.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BilingualView {
    /// Arabic.
    pub ar: String,
    /// English.
    pub en: String,
}

/// The document a report is on.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct DocumentView {
    /// Its name.
    pub name: String,
    /// Its size in octets.
    pub size: u64,
    /// Its format.
    pub format: String,
}

/// One signature's (or timestamp's) result.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignatureView {
    /// Its id in the document.
    pub id: String,
    /// `signature`, `document-timestamp` or `timestamp`.
    pub kind: String,
    /// Its indication.
    pub indication: String,
    /// Its sub-indication.
    pub sub_indication: Option<String>,
    /// Format and level (`PAdES-BASELINE-LT`).
    pub format: String,
    /// `QESig`, `AdESig-QC`, `AdESig` or `n/a`.
    pub qualification: String,
    /// The signer.
    pub signer: Option<SignerView>,
    /// The signing time the signer claims.
    pub claimed_signing_time: Option<String>,
    /// The earliest time it is proved to have existed, and what proves it.
    pub best_signature_time: ProvedTimeView,
    /// The revocation evidence used.
    pub revocation: Vec<RevocationView>,
    /// The chain, signing certificate first.
    pub chain: Vec<CertificateView>,
    /// What it covers, and what changed after it.
    pub covers: CoverageView,
    /// Errors.
    pub errors: Vec<FindingView>,
    /// Warnings.
    pub warnings: Vec<FindingView>,
}

/// The signer as the certificate names them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SignerView {
    /// The name in Arabic.
    pub name_ar: Option<String>,
    /// The name in Latin letters.
    pub name_latin: Option<String>,
    /// The national id.
    pub national_id: Option<String>,
}

/// A time and what proves it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProvedTimeView {
    /// The time (RFC 3339).
    pub time: String,
    /// What proves it (`signature-timestamp`, …, `validation-time`).
    pub proof: String,
    /// The proving timestamp's serial number.
    pub timestamp_serial: Option<String>,
}

/// Revocation evidence used for one certificate.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RevocationView {
    /// The certificate it speaks for.
    pub certificate: String,
    /// `ocsp` or `crl`.
    pub kind: String,
    /// `signature`, `dss` or `online`.
    pub source: String,
    /// `good`, `revoked` or `unknown`.
    pub status: String,
    /// When it was produced.
    pub produced_at: String,
}

/// A certificate of the chain.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CertificateView {
    /// Its subject.
    pub subject: String,
    /// Its serial number.
    pub serial: String,
    /// Valid from.
    pub not_before: String,
    /// Valid until.
    pub not_after: String,
    /// Whether it is the trust anchor.
    pub trust_anchor: bool,
}

/// What a signature covers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CoverageView {
    /// Whether it covers the whole document.
    pub whole_document: bool,
    /// Later changes.
    pub later_changes: Vec<ChangeView>,
}

/// One later change.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangeView {
    /// What changed.
    pub kind: String,
    /// The object changed.
    pub object: Option<String>,
    /// Whether it is allowed.
    pub allowed: bool,
}

/// A finding, with its code and its text in both languages.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FindingView {
    /// The stable code.
    pub code: String,
    /// Arabic.
    pub ar: String,
    /// English.
    pub en: String,
}
