//! OCSP (RFC 6960): the request for one certificate, and the one check of a response that
//! every caller uses — the smart-ID login's client, the signer's B-LT evidence and the
//! validator's embedded evidence — so that none of them skips what validators in the field
//! are known to skip: the response is successful and basic, it is about this certificate
//! (CertID with any SHA hash), it is signed by the issuer itself or by a responder the issuer
//! authorised (issued by it, id-kp-OCSPSigning, valid when the response was produced), its
//! signature verifies under the caller's algorithm policy, and its times are consistent.
//! Freshness depends on what the answer is used for, so the caller judges it from the times
//! returned.

use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{CrlReason, ExtendedKeyUsage};
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request, ResponderId, TbsRequest, Version};

use crate::path::AlgorithmPolicy;
use crate::path::names::same_name;

/// id-pkix-ocsp-basic.
const OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-kp-OCSPSigning.
pub const OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-sha1: what CertIDs use unless told otherwise (identification only, not security).
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// How far a response's times may run ahead of each other (clocks of responders differ).
const SKEW: Duration = Duration::from_secs(300);

/// What a response says about the certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OcspStatus {
    /// Not revoked when the response was produced.
    Good,
    /// Revoked since `at` (suspended when the reason is certificateHold).
    Revoked {
        /// The revocation time.
        at: SystemTime,
        /// The reason, if given.
        reason: Option<CrlReason>,
    },
    /// The responder does not know the certificate.
    Unknown,
}

/// A response that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspAnswer {
    /// Its status.
    pub status: OcspStatus,
    /// producedAt.
    pub produced_at: SystemTime,
    /// thisUpdate of the certificate's single response.
    pub this_update: SystemTime,
    /// nextUpdate, if given.
    pub next_update: Option<SystemTime>,
    /// Who signed it: the issuer, or the delegated responder's certificate.
    pub signer: Certificate,
}

/// Why a response cannot be relied on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OcspError {
    /// It cannot be decoded.
    #[error("the OCSP response cannot be read: {0}")]
    Unreadable(String),
    /// The responder refused (malformedRequest, tryLater, …).
    #[error("the OCSP responder answered {0:?} instead of a status")]
    NotSuccessful(OcspResponseStatus),
    /// Not a basic response.
    #[error("the OCSP response is of type {0}, not a basic response")]
    NotBasic(ObjectIdentifier),
    /// It says nothing about this certificate.
    #[error("the OCSP response is about another certificate")]
    OtherCertificate,
    /// Its signer is neither the issuer nor a responder the issuer authorised.
    #[error("the OCSP response is signed by {0}, which the certificate's issuer did not authorise to answer for it")]
    UnauthorisedResponder(String),
    /// Its signature does not verify, or its algorithm is refused.
    #[error("the OCSP response's signature does not verify: {0}")]
    BadSignature(String),
    /// Its times contradict each other (thisUpdate after producedAt, nextUpdate before
    /// thisUpdate).
    #[error("the OCSP response's times are inconsistent: {0}")]
    Times(String),
}

fn unix(t: &x509_ocsp::OcspGeneralizedTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + t.0.to_unix_duration()
}

fn hash(algorithm: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    let algorithm = match *algorithm {
        SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        SHA256 => &digest::SHA256,
        SHA384 => &digest::SHA384,
        SHA512 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, data).as_ref().to_vec())
}

/// The CertID of `certificate` issued by `issuer`, hashed with SHA-1 as responders expect.
pub fn cert_id(certificate: &Certificate, issuer: &Certificate) -> Result<CertId, der::Error> {
    let sha1 = |data: &[u8]| OctetString::new(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec());
    Ok(CertId {
        hash_algorithm: spki::AlgorithmIdentifierOwned { oid: SHA1, parameters: Some(der::asn1::Null.into()) },
        issuer_name_hash: sha1(&issuer.tbs_certificate.subject.to_der()?)?,
        issuer_key_hash: sha1(issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes())?,
        serial_number: certificate.tbs_certificate.serial_number.clone(),
    })
}

/// A DER OCSPRequest for `certificate` issued by `issuer`, unsigned and without a nonce.
pub fn request(certificate: &Certificate, issuer: &Certificate) -> Result<Vec<u8>, der::Error> {
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Version::V1,
            requestor_name: None,
            request_list: vec![Request { req_cert: cert_id(certificate, issuer)?, single_request_extensions: None }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der()
}

/// Whether `id` names `certificate` issued by `issuer`, with whichever SHA hash it uses.
fn names(id: &CertId, certificate: &Certificate, issuer: &Certificate) -> bool {
    if id.serial_number != certificate.tbs_certificate.serial_number {
        return false;
    }
    let Ok(name) = issuer.tbs_certificate.subject.to_der() else { return false };
    let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
    match (hash(&id.hash_algorithm.oid, &name), hash(&id.hash_algorithm.oid, key)) {
        (Some(n), Some(k)) => id.issuer_name_hash.as_bytes() == n && id.issuer_key_hash.as_bytes() == k,
        _ => false,
    }
}

/// Whether the response's ResponderID names `certificate`.
fn identifies(responder: &ResponderId, certificate: &Certificate) -> bool {
    match responder {
        ResponderId::ByName(name) => same_name(name, &certificate.tbs_certificate.subject),
        ResponderId::ByKey(key) => {
            let own = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, certificate.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes());
            key.as_bytes() == own.as_ref()
        }
    }
}

fn signs_ocsp(certificate: &Certificate) -> bool {
    certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == EXTENDED_KEY_USAGE)
        .and_then(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|eku| eku.0.contains(&OCSP_SIGNING))
}

fn valid_at(certificate: &Certificate, time: SystemTime) -> bool {
    let validity = &certificate.tbs_certificate.validity;
    validity.not_before.to_system_time() <= time && time <= validity.not_after.to_system_time()
}

/// Checks `response` (DER OCSPResponse) about `certificate` issued by `issuer`: see the
/// module's documentation. `algorithms` decides which signatures are acceptable.
pub fn check(response: &[u8], certificate: &Certificate, issuer: &Certificate, algorithms: &AlgorithmPolicy) -> Result<OcspAnswer, OcspError> {
    let unreadable = |e: der::Error| OcspError::Unreadable(e.to_string());
    let response = OcspResponse::from_der(response).map_err(unreadable)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(OcspError::NotSuccessful(response.response_status));
    }
    let bytes = response.response_bytes.ok_or_else(|| OcspError::Unreadable("a successful response without response bytes".into()))?;
    if bytes.response_type != OCSP_BASIC {
        return Err(OcspError::NotBasic(bytes.response_type));
    }
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(unreadable)?;
    let data = &basic.tbs_response_data;
    let single = data.responses.iter().find(|r| names(&r.cert_id, certificate, issuer)).ok_or(OcspError::OtherCertificate)?;
    let produced_at = unix(&data.produced_at);

    // The signer: the issuer itself, or a certificate in the response that the issuer signed
    // for OCSP signing and that was valid when the response was produced.
    let signer = if identifies(&data.responder_id, issuer) {
        issuer.clone()
    } else {
        let delegated = basic.certs.iter().flatten().find(|c| identifies(&data.responder_id, c));
        let Some(delegated) = delegated else {
            return Err(OcspError::UnauthorisedResponder(match &data.responder_id {
                ResponderId::ByName(name) => format!("«{name}» (no such certificate in the response)"),
                ResponderId::ByKey(_) => "a key the response carries no certificate for".into(),
            }));
        };
        let who = || format!("«{}»", delegated.tbs_certificate.subject);
        let issued = same_name(&delegated.tbs_certificate.issuer, &issuer.tbs_certificate.subject)
            && delegated.tbs_certificate.to_der().is_ok_and(|tbs| {
                delegated
                    .signature
                    .as_bytes()
                    .is_some_and(|sig| algorithms.verify(&issuer.tbs_certificate.subject_public_key_info, &delegated.signature_algorithm, &tbs, sig).is_ok())
            });
        if !issued {
            return Err(OcspError::UnauthorisedResponder(format!("{} (not issued by the certificate's issuer)", who())));
        }
        if !signs_ocsp(delegated) {
            return Err(OcspError::UnauthorisedResponder(format!("{} (no id-kp-OCSPSigning)", who())));
        }
        if !valid_at(delegated, produced_at) {
            return Err(OcspError::UnauthorisedResponder(format!("{} (not valid when the response was produced)", who())));
        }
        delegated.clone()
    };
    let tbs = data.to_der().map_err(unreadable)?;
    let signature = basic.signature.as_bytes().ok_or_else(|| OcspError::BadSignature("not whole octets".into()))?;
    algorithms
        .verify(&signer.tbs_certificate.subject_public_key_info, &basic.signature_algorithm, &tbs, signature)
        .map_err(|e| OcspError::BadSignature(format!("{e:?}")))?;

    let this_update = unix(&single.this_update);
    let next_update = single.next_update.as_ref().map(unix);
    if this_update > produced_at + SKEW {
        return Err(OcspError::Times("thisUpdate is after producedAt".into()));
    }
    if next_update.is_some_and(|n| n < this_update) {
        return Err(OcspError::Times("nextUpdate is before thisUpdate".into()));
    }
    let status = match &single.cert_status {
        CertStatus::Good(_) => OcspStatus::Good,
        CertStatus::Revoked(info) => OcspStatus::Revoked { at: unix(&info.revocation_time), reason: info.revocation_reason },
        CertStatus::Unknown(_) => OcspStatus::Unknown,
    };
    Ok(OcspAnswer { status, produced_at, this_update, next_update, signer })
}
