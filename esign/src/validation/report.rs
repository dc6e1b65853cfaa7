//! What a validation concludes, in the terms of ETSI EN 319 102-1: indications and
//! sub-indications per signature and per building block, and the report an auditor gets.
//!
//! The report is data: [`Report`] serialises to the JSON report; the XML (ETSI TS 119 102-2)
//! and HTML forms are written from the same values. Every finding has a stable code and its
//! text in Arabic and English.

use serde::{Serialize, Serializer};

pub use pkix::etsi::{Indication, SubIndication};

/// An indication with its sub-indication: what a building block or a whole validation
/// concludes. Made only by the constructors, which keep the pairs the standard allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Conclusion {
    /// The indication.
    #[serde(serialize_with = "indication_name")]
    pub indication: Indication,
    /// Its sub-indication (none for TOTAL-PASSED).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "sub_indication_name")]
    pub sub_indication: Option<SubIndication>,
}

fn indication_name<S: Serializer>(i: &Indication, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(i.as_str())
}

fn sub_indication_name<S: Serializer>(i: &Option<SubIndication>, s: S) -> Result<S::Ok, S::Error> {
    match i {
        Some(i) => s.serialize_str(i.as_str()),
        None => s.serialize_none(),
    }
}

impl Conclusion {
    /// TOTAL-PASSED.
    pub const PASSED: Conclusion = Conclusion { indication: Indication::TotalPassed, sub_indication: None };

    /// TOTAL-FAILED with `why`; a sub-indication that cannot be TOTAL-FAILED makes an
    /// INDETERMINATE conclusion instead (never a stronger claim than the standard allows).
    pub fn failed(why: SubIndication) -> Self {
        let indication = if why.goes_with(Indication::TotalFailed) { Indication::TotalFailed } else { Indication::Indeterminate };
        Conclusion { indication, sub_indication: Some(why) }
    }

    /// INDETERMINATE with `why`; one that only goes with TOTAL-FAILED stays TOTAL-FAILED.
    pub fn indeterminate(why: SubIndication) -> Self {
        let indication = if why.goes_with(Indication::Indeterminate) { Indication::Indeterminate } else { Indication::TotalFailed };
        Conclusion { indication, sub_indication: Some(why) }
    }

    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.indication == Indication::TotalPassed
    }
}

/// Something the validator found, with a stable code and its text in both languages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable code (`SIGNATURE_VALUE_INVALID`, …): what software reads.
    pub code: &'static str,
    /// The text in Arabic.
    pub ar: String,
    /// The text in English.
    pub en: String,
}

/// A text in both languages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bilingual {
    /// Arabic.
    pub ar: String,
    /// English.
    pub en: String,
}

/// The policy a report applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyApplied {
    /// Its id (`qualified`, …).
    pub id: String,
    /// Its revision.
    pub revision: u32,
    /// Its name.
    pub name: Bilingual,
}

/// The document validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DocumentInfo {
    /// Its file name, as given.
    pub name: String,
    /// Its size in octets.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// What it was recognised as (`PDF`, `CMS`, `TIMESTAMP`, or `UNKNOWN`).
    pub format: &'static str,
}

/// How many signatures ended how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Signatures and timestamps validated.
    pub signatures: usize,
    /// TOTAL-PASSED.
    pub passed: usize,
    /// TOTAL-FAILED.
    pub failed: usize,
    /// INDETERMINATE.
    pub indeterminate: usize,
}

/// A building block's result (EN 319 102-1 §5.2 to §5.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockResult {
    /// The block: `format-checking`, `identification-of-the-signing-certificate`,
    /// `validation-context-initialization`, `revocation-freshness-checker`,
    /// `x509-certificate-validation`, `cryptographic-verification`,
    /// `signature-acceptance-validation`, `timestamp-validation`,
    /// `past-signature-validation`.
    pub block: &'static str,
    /// What it concluded.
    #[serde(flatten)]
    pub conclusion: Conclusion,
    /// Why, when it did not pass.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// A certificate of a chain, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateInfo {
    /// Its subject, RFC 4514.
    pub subject: String,
    /// Its issuer, RFC 4514.
    pub issuer: String,
    /// Its serial number, hex.
    pub serial: String,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// SHA-256 of its DER, hex.
    pub sha256: String,
    /// Whether it is the trust anchor of the chain.
    pub trust_anchor: bool,
}

/// The signer as the signing certificate names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignerInfo {
    /// The name in Arabic (the certificate's UTF-8 names), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_ar: Option<String>,
    /// The name in Latin letters, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_latin: Option<String>,
    /// The national id, from the subject's serialNumber (`IDCJO-9861234567` → `9861234567`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub national_id: Option<String>,
}

/// A time and what proves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvedTime {
    /// The time (RFC 3339).
    pub time: String,
    /// What proves it: `signature-timestamp`, `archive-timestamp`, `document-timestamp`, or
    /// `validation-time` (nothing earlier is proved).
    pub proof: &'static str,
    /// The serial number (hex) of the timestamp that proves it, if one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_serial: Option<String>,
}

/// Revocation evidence used for one certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RevocationEvidence {
    /// The certificate it speaks for (its subject).
    pub certificate: String,
    /// `ocsp` or `crl`.
    pub kind: &'static str,
    /// Where it came from: `signature` (in the CMS), `dss` (the PDF's /DSS), `online`.
    pub source: &'static str,
    /// `good`, `revoked`, `unknown`, or `not-fresh` (authentic, but too old to speak for the
    /// time asked about: the reason for INDETERMINATE / TRY_LATER).
    pub status: &'static str,
    /// When it was produced (OCSP producedAt, CRL thisUpdate), RFC 3339.
    pub produced_at: String,
    /// thisUpdate, RFC 3339.
    pub this_update: String,
    /// nextUpdate, RFC 3339, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_update: Option<String>,
    /// When the certificate was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// What a PDF signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The signed byte range (`/ByteRange`), for a PDF signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byte_range: Option<[u64; 4]>,
    /// Whether it covers the whole document as validated (no later updates).
    pub whole_document: bool,
    /// What later incremental updates changed, each allowed or not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub later_changes: Vec<Change>,
}

/// One change made after a signature, in a later incremental update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// What changed (`signature`, `dss`, `document-timestamp`, `annotation`, `form-field`,
    /// `page-content`, `other`).
    pub kind: &'static str,
    /// The object changed (`12 0 R`), if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Whether the signature's permissions allow it.
    pub allowed: bool,
}

/// One signature's (or timestamp's) validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignatureReport {
    /// Its id in the document (`Signature1`, the PDF field name, or `signer-1`).
    pub id: String,
    /// `signature`, `document-timestamp` (PDF) or `timestamp` (an RFC 3161 token over a
    /// document).
    pub kind: &'static str,
    /// The conclusion.
    #[serde(flatten)]
    pub conclusion: Conclusion,
    /// The format and level recognised (`PAdES-BASELINE-LT`, `CAdES-BASELINE-B`, …), or
    /// `PAdES-NOT-ETSI` / `CMS-NOT-ETSI` when no baseline level is met.
    pub format: String,
    /// `QESig`, `AdESig-QC`, `AdESig`, or `n/a` (timestamps, or not determined).
    pub qualification: &'static str,
    /// The signer, if the signing certificate was identified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<SignerInfo>,
    /// The signing time the signer claims (signing-time attribute or the PDF's /M).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_signing_time: Option<String>,
    /// The earliest time the signature is proved to have existed.
    pub best_signature_time: ProvedTime,
    /// The revocation evidence used.
    pub revocation: Vec<RevocationEvidence>,
    /// With INDETERMINATE / TRY_LATER: the time (RFC 3339) from which fresher revocation
    /// evidence should exist (the stale evidence's nextUpdate, or the time it had to speak
    /// for when that has passed), so that validating again then can conclude.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// The chain, from the signing certificate to the trust anchor.
    pub chain: Vec<CertificateInfo>,
    /// What it covers.
    pub covers: Coverage,
    /// Each building block's result.
    pub blocks: Vec<BlockResult>,
    /// Errors.
    pub errors: Vec<Finding>,
    /// Warnings: not fatal under the policy, worth knowing.
    pub warnings: Vec<Finding>,
}

impl SignatureReport {
    /// A report on signature `id` before anything is known of it: passed so far, no level,
    /// its time the validation time (`now`, RFC 3339).
    pub fn blank(id: &str, kind: &'static str, now: String) -> Self {
        SignatureReport {
            id: id.into(),
            kind,
            conclusion: Conclusion::PASSED,
            format: "NOT-ETSI".into(),
            qualification: "n/a",
            signer: None,
            claimed_signing_time: None,
            best_signature_time: ProvedTime { time: now, proof: "validation-time", timestamp_serial: None },
            revocation: Vec::new(),
            retry_after: None,
            chain: Vec::new(),
            covers: Coverage { byte_range: None, whole_document: true, later_changes: Vec::new() },
            blocks: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A report on something that could not be validated at all: format checking concluded
    /// `conclusion` for the reason `finding`.
    pub fn unusable(id: &str, kind: &'static str, conclusion: Conclusion, finding: Finding, now: String) -> Self {
        let mut report = SignatureReport::blank(id, kind, now);
        report.conclusion = conclusion;
        report.blocks.push(BlockResult { block: "format-checking", conclusion, findings: vec![finding.clone()] });
        report.errors.push(finding);
        report
    }
}

/// A validation report for one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The policy applied.
    pub policy: PolicyApplied,
    /// When it was validated (RFC 3339).
    pub validation_time: String,
    /// The document.
    pub document: DocumentInfo,
    /// How the signatures ended.
    pub counts: Counts,
    /// The document's conclusion: TOTAL-PASSED only when every signature passed (and there
    /// is at least one).
    #[serde(flatten)]
    pub conclusion: Conclusion,
    /// Per signature and timestamp, in document order.
    pub signatures: Vec<SignatureReport>,
}

impl Report {
    /// The report over `signatures`: counts, and the document's conclusion (the first
    /// TOTAL-FAILED, else the first INDETERMINATE, else TOTAL-PASSED; no signature at all is
    /// INDETERMINATE / SIGNED_DATA_NOT_FOUND).
    pub fn new(policy: PolicyApplied, validation_time: String, document: DocumentInfo, signatures: Vec<SignatureReport>) -> Self {
        let mut counts = Counts { signatures: signatures.len(), ..Counts::default() };
        for s in &signatures {
            match s.conclusion.indication {
                Indication::TotalPassed => counts.passed += 1,
                Indication::TotalFailed => counts.failed += 1,
                Indication::Indeterminate => counts.indeterminate += 1,
            }
        }
        let first = |i: Indication| signatures.iter().find(|s| s.conclusion.indication == i).map(|s| s.conclusion);
        let conclusion = first(Indication::TotalFailed).or_else(|| first(Indication::Indeterminate)).unwrap_or(if signatures.is_empty() {
            Conclusion::indeterminate(SubIndication::SignedDataNotFound)
        } else {
            Conclusion::PASSED
        });
        Report { policy, validation_time, document, counts, conclusion, signatures }
    }

    /// The exit status of `hawiya verify`: 0 TOTAL-PASSED, 1 TOTAL-FAILED, 2 INDETERMINATE.
    pub fn exit_code(&self) -> u8 {
        match self.conclusion.indication {
            Indication::TotalPassed => 0,
            Indication::TotalFailed => 1,
            Indication::Indeterminate => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_indications_keep_to_their_indications() {
        assert_eq!(Conclusion::failed(SubIndication::HashFailure).indication, Indication::TotalFailed);
        // REVOKED_NO_POE is never TOTAL-FAILED: a later proof of existence may change it.
        assert_eq!(Conclusion::failed(SubIndication::RevokedNoPoe).indication, Indication::Indeterminate);
        assert_eq!(Conclusion::indeterminate(SubIndication::SigCryptoFailure).indication, Indication::TotalFailed);
        assert_eq!(Conclusion::indeterminate(SubIndication::Expired).indication, Indication::Indeterminate);
        assert_eq!(Conclusion::failed(SubIndication::Expired).indication, Indication::TotalFailed);
        assert!(!SubIndication::TryLater.goes_with(Indication::TotalPassed));
        assert_eq!(SubIndication::CryptoConstraintsFailureNoPoe.as_str(), "CRYPTO_CONSTRAINTS_FAILURE_NO_POE");
    }

    fn signature(conclusion: Conclusion) -> SignatureReport {
        SignatureReport {
            conclusion,
            format: "PAdES-BASELINE-LT".into(),
            qualification: "QESig",
            best_signature_time: ProvedTime { time: "2026-11-29T20:00:00Z".into(), proof: "signature-timestamp", timestamp_serial: None },
            ..SignatureReport::blank("Signature1", "signature", "2026-11-29T20:00:00Z".into())
        }
    }

    #[test]
    fn a_document_passes_only_when_every_signature_does() {
        let policy = PolicyApplied { id: "qualified".into(), revision: 1, name: Bilingual { ar: "مؤهل".into(), en: "Qualified".into() } };
        let document = DocumentInfo { name: "a.pdf".into(), size: 1, sha256: "00".into(), format: "PDF" };
        let report = |s: Vec<SignatureReport>| Report::new(policy.clone(), "2026-11-29T20:00:00Z".into(), document.clone(), s);
        let passed = report(vec![signature(Conclusion::PASSED), signature(Conclusion::PASSED)]);
        assert_eq!((passed.conclusion, passed.counts.passed, passed.exit_code()), (Conclusion::PASSED, 2, 0));
        let mixed = report(vec![
            signature(Conclusion::PASSED),
            signature(Conclusion::indeterminate(SubIndication::TryLater)),
            signature(Conclusion::failed(SubIndication::HashFailure)),
        ]);
        assert_eq!(
            (mixed.conclusion.sub_indication, mixed.counts.failed, mixed.counts.indeterminate, mixed.exit_code()),
            (Some(SubIndication::HashFailure), 1, 1, 1)
        );
        let none = report(Vec::new());
        assert_eq!((none.conclusion.sub_indication, none.exit_code()), (Some(SubIndication::SignedDataNotFound), 2));
        let json = serde_json::to_value(&mixed).expect("json");
        assert_eq!(json["indication"], "TOTAL-FAILED");
        assert_eq!(json["sub_indication"], "HASH_FAILURE");
        assert_eq!(json["signatures"][1]["sub_indication"], "TRY_LATER");
        assert_eq!(json["signatures"][0].get("sub_indication"), None);
        assert_eq!(json["policy"]["revision"], 1);
    }
}
