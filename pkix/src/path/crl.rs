//! Certificate revocation lists (RFC 5280 §5, §6.3) as revocation evidence: a CRL speaks
//! about a certificate only when its issuer is the certificate's issuer, its signature verifies
//! with that issuer's key (which must allow cRLSign), and it is current at the time asked.
//! Indirect CRLs, partial-reason CRLs and delta CRLs are not supported and are refused.

use std::time::{SystemTime, UNIX_EPOCH};

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::{BasicConstraints, CrlReason, KeyUsage, KeyUsages};

use super::cert::{BASIC_CONSTRAINTS, KEY_USAGE};
use super::names::same_name;
use super::revocation::{RevocationError, RevocationStatus};
use super::signature::AlgorithmPolicy;

const CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const ISSUING_DISTRIBUTION_POINT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
const ISSUER_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.18");
const CRL_REASON: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
const INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");

/// What an authentic CRL of the issuer says about a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlAnswer {
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate, if given.
    pub next_update: Option<SystemTime>,
    /// When the certificate was revoked and why, if it is listed.
    pub revoked: Option<(SystemTime, Option<CrlReason>)>,
}

/// A decoded CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    list: CertificateList,
    tbs_der: Vec<u8>,
}

impl Crl {
    /// Decodes a DER CRL.
    pub fn from_der(der: &[u8]) -> Result<Crl, der::Error> {
        let list = CertificateList::from_der(der)?;
        let tbs_der = list.tbs_cert_list.to_der()?;
        Ok(Crl { list, tbs_der })
    }

    /// What this CRL says about `certificate` issued by `issuer` at `time`: `Unknown` when it
    /// is not the issuer's CRL (or does not cover that kind of certificate); an error when it is
    /// the issuer's CRL but cannot be relied on, or was not current at `time`.
    pub fn status(
        &self,
        certificate: &Certificate,
        issuer: &Certificate,
        time: SystemTime,
        algorithms: &AlgorithmPolicy,
    ) -> Result<RevocationStatus, RevocationError> {
        let Some(answer) = self.answer(certificate, issuer, algorithms)? else { return Ok(RevocationStatus::Unknown) };
        let bad = |why: &str| Err(RevocationError(format!("CRL of «{}»: {why}", self.list.tbs_cert_list.issuer)));
        let at = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if secs(answer.this_update) > at {
            return bad("issued after the time asked about");
        }
        if answer.next_update.is_some_and(|next| secs(next) < at) {
            return bad("its nextUpdate is before the time asked about");
        }
        Ok(match answer.revoked {
            Some((revoked, reason)) if secs(revoked) <= at => RevocationStatus::Revoked { at: revoked, reason },
            _ => RevocationStatus::Good,
        })
    }

    /// What this CRL says about `certificate` issued by `issuer`, whatever the time: `None` when
    /// it is not the issuer's CRL (or does not cover that kind of certificate); an error when it
    /// is the issuer's CRL but cannot be relied on (signature, cRLSign, extensions).
    pub fn answer(&self, certificate: &Certificate, issuer: &Certificate, algorithms: &AlgorithmPolicy) -> Result<Option<CrlAnswer>, RevocationError> {
        let tbs = &self.list.tbs_cert_list;
        if !same_name(&tbs.issuer, &issuer.tbs_certificate.subject) || !same_name(&tbs.issuer, &certificate.tbs_certificate.issuer) {
            return Ok(None);
        }
        let bad = |why: &str| Err(RevocationError(format!("CRL of «{}»: {why}", tbs.issuer)));
        if let Some(ku) = extension::<KeyUsage>(issuer, KEY_USAGE)
            && !ku.0.contains(KeyUsages::CRLSign)
        {
            return bad("the issuer's keyUsage lacks cRLSign (RFC 5280 §6.3.3 f)");
        }
        if tbs.signature != self.list.signature_algorithm {
            return bad("the signature algorithm inside differs from the one outside");
        }
        let signature = self.list.signature.as_bytes().unwrap_or_default();
        if algorithms.verify(&issuer.tbs_certificate.subject_public_key_info, &self.list.signature_algorithm, &self.tbs_der, signature).is_err() {
            return bad("its signature does not verify with the issuer's key");
        }
        let mut has_number = false;
        for ext in tbs.crl_extensions.iter().flatten() {
            if ext.extn_id == CRL_NUMBER {
                if ext.critical {
                    return bad("cRLNumber marked critical (RFC 5280 §5.2.3)");
                }
                has_number = true;
            } else if ext.extn_id == ISSUING_DISTRIBUTION_POINT {
                let Ok(idp) = IssuingDistributionPoint::from_der(ext.extn_value.as_bytes()) else {
                    return bad("malformed issuingDistributionPoint");
                };
                if idp.indirect_crl || idp.only_some_reasons.is_some() || idp.only_contains_attribute_certs {
                    return bad("indirect, partial-reason or attribute-certificate CRLs are not supported");
                }
                let is_ca = extension::<BasicConstraints>(certificate, BASIC_CONSTRAINTS).is_some_and(|bc| bc.ca);
                if (idp.only_contains_user_certs && is_ca) || (idp.only_contains_ca_certs && !is_ca) {
                    return Ok(None);
                }
            } else if ext.critical && ext.extn_id != AUTHORITY_KEY_ID && ext.extn_id != ISSUER_ALT_NAME {
                return bad(&format!("unsupported critical extension {}", ext.extn_id));
            }
        }
        if !has_number {
            return bad("no cRLNumber (RFC 5280 §5.2.3)");
        }
        let serial = certificate.tbs_certificate.serial_number.as_bytes();
        let mut revoked = None;
        for entry in tbs.revoked_certificates.iter().flatten() {
            if entry.serial_number.as_bytes() != serial {
                continue;
            }
            let mut reason = None;
            for ext in entry.crl_entry_extensions.iter().flatten() {
                if ext.extn_id == CRL_REASON {
                    reason = CrlReason::from_der(ext.extn_value.as_bytes()).ok();
                } else if ext.critical && ext.extn_id != INVALIDITY_DATE {
                    return bad(&format!("unsupported critical entry extension {}", ext.extn_id));
                }
            }
            revoked = (reason != Some(CrlReason::RemoveFromCRL)).then(|| (entry.revocation_date.to_system_time(), reason));
            break;
        }
        Ok(Some(CrlAnswer { this_update: tbs.this_update.to_system_time(), next_update: tbs.next_update.map(|n| n.to_system_time()), revoked }))
    }

    /// The combined answer of several CRLs: revoked if one says so, an error if one of the
    /// issuer's CRLs cannot be relied on, good if one of the issuer's CRLs covers it, unknown
    /// otherwise.
    pub fn status_among(
        crls: &[Crl],
        certificate: &Certificate,
        issuer: &Certificate,
        time: SystemTime,
        algorithms: &AlgorithmPolicy,
    ) -> Result<RevocationStatus, RevocationError> {
        let mut answer = RevocationStatus::Unknown;
        for crl in crls {
            match crl.status(certificate, issuer, time, algorithms)? {
                revoked @ RevocationStatus::Revoked { .. } => return Ok(revoked),
                RevocationStatus::Good => answer = RevocationStatus::Good,
                RevocationStatus::NotFresh { .. } | RevocationStatus::Unknown => {}
            }
        }
        Ok(answer)
    }
}

fn extension<T: for<'a> Decode<'a>>(cert: &Certificate, oid: ObjectIdentifier) -> Option<T> {
    cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == oid).and_then(|e| T::from_der(e.extn_value.as_bytes()).ok())
}
