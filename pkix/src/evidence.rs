//! Revocation from the evidence a signature carries (its OCSP responses and CRLs, a PDF's
//! /DSS), as the path validator's [`Revocation`] source.
//!
//! Evidence speaks about a time when it was issued after it, or shortly before (within the
//! freshness the validation policy allows): a CRL or OCSP response issued after a signature
//! was made says whether the certificate had been revoked by then. A certificate revoked at
//! or before the time asked about is revoked, whatever else the evidence says. Evidence that
//! is about the certificate but cannot be relied on (a bad signature, an unauthorised
//! responder) is an error unless other evidence answers. Every answer used is kept, for the
//! report.

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
        let fresh = answers.into_iter().filter(|a| a.this_update + self.freshness >= time).max_by_key(|a| a.this_update);
        match fresh {
            Some(good) => {
                self.keep(good);
                Ok(RevocationStatus::Good)
            }
            None if !errors.is_empty() => Err(RevocationError(errors.join("; "))),
            None => Ok(RevocationStatus::Unknown),
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
