//! Revocation from the evidence a signature carries (its OCSP responses and CRLs, a PDF's
//! /DSS), as the path validator's [`Revocation`] source.
//!
//! Evidence speaks about a time when it was issued after it, or shortly before (within the
//! freshness the validation policy allows): a CRL or OCSP response issued after a signature
//! was made says whether the certificate had been revoked by then. A certificate revoked at
//! or before the time asked about is revoked, whatever else the evidence says. Evidence that
//! is about the certificate but cannot be relied on (a bad signature, an unauthorised
//! responder) is an error unless other evidence answers. Evidence that is authentic but not
//! fresh enough for the time asked about (issued more than the freshness before it, or its
//! nextUpdate passed by then) is [`RevocationStatus::NotFresh`] — try later (EN 319 102-1
//! §5.2.5) — never confused with having none ([`RevocationStatus::Unknown`]). Every answer
//! used is kept, for the report.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;

use der::Decode;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};

use crate::ocsp::{self, OcspError, OcspStatus};
use crate::path::{AlgorithmPolicy, Crl, Revocation, RevocationError, RevocationStatus};

/// Where a piece of evidence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The `index`th OCSP response given.
    Ocsp(usize),
    /// The `index`th CRL given.
    Crl(usize),
}

/// One answer the validator relied on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Used {
    /// The certificate it is about (its subject).
    pub certificate: String,
    /// Which evidence.
    pub source: Source,
    /// When it was issued: producedAt (OCSP) or thisUpdate (CRL).
    pub issued: SystemTime,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate.
    pub next_update: Option<SystemTime>,
    /// When the certificate was revoked, if it was.
    pub revoked: Option<(SystemTime, Option<CrlReason>)>,
    /// Whether it was fresh enough for the time it was asked about; an answer that was not is
    /// kept only to show why the status is [`RevocationStatus::NotFresh`].
    pub fresh: bool,
}

/// The OCSP responses and CRLs of a signature, as a revocation source.
#[derive(Debug)]
pub struct Evidence {
    ocsp: Vec<Vec<u8>>,
    crls: Vec<(usize, Crl)>,
    algorithms: AlgorithmPolicy,
    freshness: Duration,
    used: Mutex<Vec<Used>>,
}

impl Evidence {
    /// Evidence from DER OCSP responses and CRLs (a CRL that cannot be decoded is left out);
    /// `freshness`: how long before the time asked about evidence may have been issued and
    /// still speak for it.
    pub fn new(ocsp: Vec<Vec<u8>>, crls: &[Vec<u8>], algorithms: AlgorithmPolicy, freshness: Duration) -> Self {
        let crls = crls.iter().enumerate().filter_map(|(i, der)| Crl::from_der(der).ok().map(|c| (i, c))).collect();
        Evidence { ocsp, crls, algorithms, freshness, used: Mutex::new(Vec::new()) }
    }

    /// The answers relied on so far.
    pub fn used(&self) -> Vec<Used> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Every authentic answer about `certificate`, and the errors of the evidence that is about
    /// it but cannot be relied on.
    fn answers(&self, certificate: &Certificate, issuer: &Certificate) -> (Vec<Used>, Vec<String>) {
        let subject = certificate.tbs_certificate.subject.to_string();
        let (mut answers, mut errors) = (Vec::new(), Vec::new());
        for (i, response) in self.ocsp.iter().enumerate() {
            match ocsp::check(response, certificate, issuer, &self.algorithms) {
                Ok(a) => {
                    let revoked = match a.status {
                        OcspStatus::Good => None,
                        OcspStatus::Revoked { at, reason } => Some((at, reason)),
                        OcspStatus::Unknown => continue,
                    };
                    answers.push(Used {
                        certificate: subject.clone(),
                        source: Source::Ocsp(i),
                        issued: a.produced_at,
                        this_update: a.this_update,
                        next_update: a.next_update,
                        revoked,
                        fresh: true,
                    });
                }
                Err(OcspError::OtherCertificate) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        for (i, crl) in &self.crls {
            match crl.answer(certificate, issuer, &self.algorithms) {
                Ok(Some(a)) => answers.push(Used {
                    certificate: subject.clone(),
                    source: Source::Crl(*i),
                    issued: a.this_update,
                    this_update: a.this_update,
                    next_update: a.next_update,
                    revoked: a.revoked,
                    fresh: true,
                }),
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        (answers, errors)
    }

    fn keep(&self, used: Used) {
        if let Ok(mut all) = self.used.lock() {
            all.push(used);
        }
    }
}

impl Revocation for Evidence {
    fn status(&self, certificate: &Certificate, issuer: &Certificate, time: SystemTime) -> Result<RevocationStatus, RevocationError> {
        let (answers, errors) = self.answers(certificate, issuer);
        if let Some(revoked) = answers.iter().filter(|a| a.revoked.is_some_and(|(at, _)| at <= time)).min_by_key(|a| a.revoked.map(|(at, _)| at)) {
            self.keep(revoked.clone());
            let (at, reason) = revoked.revoked.unwrap_or((time, None));
            return Ok(RevocationStatus::Revoked { at, reason });
        }
        // Fresh for `time` (EN 319 102-1 §5.2.5): issued at most the policy's freshness
        // before it, and not superseded by then (its nextUpdate, if given, not passed).
        let fresh = |a: &Used| a.this_update + self.freshness >= time && a.next_update.is_none_or(|next| next >= time);
        let newest = |a: &&Used| a.this_update;
        match (answers.iter().filter(|a| fresh(a)).max_by_key(newest), answers.iter().max_by_key(newest)) {
            (Some(good), _) => {
                self.keep(good.clone());
                Ok(RevocationStatus::Good)
            }
            // Evidence that cannot be relied on is no answer at all, whatever else is stale.
            (None, _) if !errors.is_empty() => Err(RevocationError(errors.join("; "))),
            // Evidence there is, but none fresh enough: try later, not "no evidence" (§5.2.6).
            (None, Some(stale)) => {
                let retry_after = stale.next_update.map_or(time, |next| next.max(time));
                let newest = stale.this_update;
                self.keep(Used { fresh: false, ..stale.clone() });
                Ok(RevocationStatus::NotFresh { newest, retry_after })
            }
            (None, None) => Ok(RevocationStatus::Unknown),
        }
    }
}

/// Where a certificate's revocation status can be asked: its OCSP responders (authority
/// information access) and its CRLs (distribution points), as URLs.
pub fn locations(certificate: &Certificate) -> (Vec<String>, Vec<String>) {
    const AIA: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");
    const AD_OCSP: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
    const CDP: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.31");
    let extension = |oid| certificate.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes());
    let uri = |name: &GeneralName| match name {
        GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_owned()),
        _ => None,
    };
    let ocsp = extension(AIA)
        .and_then(|v| AuthorityInfoAccessSyntax::from_der(v).ok())
        .map(|aia| aia.0.iter().filter(|d| d.access_method == AD_OCSP).filter_map(|d| uri(&d.access_location)).collect())
        .unwrap_or_default();
    let crls = extension(CDP)
        .and_then(|v| CrlDistributionPoints::from_der(v).ok())
        .map(|points| {
            points
                .0
                .iter()
                .filter_map(|p| match &p.distribution_point {
                    Some(DistributionPointName::FullName(names)) => Some(names.iter().filter_map(uri).collect::<Vec<_>>()),
                    _ => None,
                })
                .flatten()
                .collect()
        })
        .unwrap_or_default();
    (ocsp, crls)
}

#[cfg(test)]
mod tests {
    use der::DecodePem;

    use super::*;
    use crate::etsi::SubIndication;
    use crate::path::PathError;

    const ICA: &str = include_str!("../testdata/path/ica.pem");
    /// Serial 04, not on the CRL.
    const LEAF: &str = include_str!("../testdata/path/leaf-sha1.pem");
    /// The issuing CA's CRL (`openssl ca -gencrl`): thisUpdate 2026-11-29, nextUpdate 30 days later.
    const CRL: &str = include_str!("../testdata/path/ica-crl.pem");
    const DAY: Duration = Duration::from_secs(86_400);

    fn der(pem: &str) -> Vec<u8> {
        der::pem::decode_vec(pem.as_bytes()).map(|(_, d)| d).unwrap_or_else(|e| panic!("test PEM: {e}"))
    }

    fn certificate(pem: &str) -> Certificate {
        Certificate::from_pem(pem).unwrap_or_else(|e| panic!("{e}"))
    }

    fn crl_times() -> (SystemTime, SystemTime) {
        let crl = x509_cert::crl::CertificateList::from_der(&der(CRL)).unwrap_or_else(|e| panic!("{e}"));
        let next = crl.tbs_cert_list.next_update.unwrap_or_else(|| panic!("the test CRL has a nextUpdate")).to_system_time();
        (crl.tbs_cert_list.this_update.to_system_time(), next)
    }

    fn evidence(crls: &[Vec<u8>], freshness: Duration) -> Evidence {
        Evidence::new(Vec::new(), crls, AlgorithmPolicy { allow_sha1: true, ..AlgorithmPolicy::default() }, freshness)
    }

    /// EN 319 102-1 §5.2.5 / §5.2.6: evidence that is there but not fresh enough is not "no
    /// evidence": NotFresh with when to try again (TRY_LATER); none at all is Unknown
    /// (CERTIFICATE_CHAIN_GENERAL_FAILURE). A real CRL of the test issuing CA.
    #[test]
    fn stale_evidence_is_not_fresh_and_no_evidence_is_unknown() {
        let (leaf, ica) = (certificate(LEAF), certificate(ICA));
        let (this_update, next_update) = crl_times();
        let crl = evidence(&[der(CRL)], DAY);
        // An hour after the CRL: fresh, good.
        assert_eq!(crl.status(&leaf, &ica, this_update + Duration::from_secs(3600)), Ok(RevocationStatus::Good));
        // Two days after: older than the policy's freshness (a day), though before its
        // nextUpdate: fresher evidence should exist from its nextUpdate on.
        let two_days = this_update + 2 * DAY;
        assert_eq!(crl.status(&leaf, &ica, two_days), Ok(RevocationStatus::NotFresh { newest: this_update, retry_after: next_update }));
        // With a freshness of 60 days, a time after its nextUpdate: superseded, so not fresh
        // either; fresher evidence exists from the time asked about on.
        let lax = evidence(&[der(CRL)], 60 * DAY);
        let after_next = next_update + DAY;
        assert_eq!(lax.status(&leaf, &ica, after_next), Ok(RevocationStatus::NotFresh { newest: this_update, retry_after: after_next }));
        let used = lax.used();
        assert!(matches!(used.as_slice(), [u] if !u.fresh && u.this_update == this_update && u.source == Source::Crl(0)), "{used:?}");
        // No evidence about it at all.
        assert_eq!(evidence(&[], DAY).status(&leaf, &ica, two_days), Ok(RevocationStatus::Unknown));

        // What the path validator makes of them, requiring a status.
        let stale = PathError::RevocationNotFresh { subject: "CN=leaf".into(), newest: this_update, retry_after: next_update };
        assert_eq!(stale.sub_indication(), SubIndication::TryLater);
        assert!(stale.to_string().contains("not fresh enough"), "{stale}");
        assert_eq!(
            PathError::RevocationUnknown { subject: "CN=leaf".into(), reason: "no evidence".into() }.sub_indication(),
            SubIndication::CertificateChainGeneralFailure
        );
    }
}
