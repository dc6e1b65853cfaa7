//! The revocation source of the smart-ID login: where the provider learns whether a
//! certificate is revoked. [`OcspClient`] asks the responder over HTTP and believes only
//! signed, fresh answers about the certificate, by the issuer or a responder it delegated.

use std::time::Duration;

use aws_lc_rs::digest;
use der::asn1::{ObjectIdentifier, OctetString};
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus, Request, TbsRequest, Version};

use super::verifier::{extension, signed_by, spki_key, x509_algorithm};

pub(super) const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

pub(super) const OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");

pub(super) const AIA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.1");

pub(super) const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// An OCSP answer older than this is not believed (the responder re-signs every 5 minutes
/// and at once when a status changes).
pub(super) const OCSP_MAX_AGE: i64 = 15 * 60;

/// Clock skew allowed between the provider and the responder.
pub(super) const SKEW: i64 = 60;

/// A certificate's status, as a revocation source states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Good.
    Good,
    /// On hold (certificateHold).
    Suspended,
    /// Revoked for good.
    Revoked,
}

/// Where the provider learns whether a certificate is revoked.
#[async_trait::async_trait]
pub trait RevocationSource: Send + Sync {
    /// The status of `certificate`, issued by `issuer`.
    async fn status(&self, certificate: &Certificate, issuer: &Certificate, now: i64) -> Result<Status, String>;
}

/// Asks the OCSP responder named in the certificate (or a configured one) over HTTP, and
/// believes only answers signed by the issuer or by a responder it delegated, about this
/// certificate, and fresh.
pub struct OcspClient {
    http: reqwest::Client,
    url: Option<String>,
}

impl OcspClient {
    /// A client that asks `url`, or when `None` the responder in each certificate's AIA.
    pub fn new(http: reqwest::Client, url: Option<String>) -> Self {
        OcspClient { http, url }
    }

    fn responder_url(&self, certificate: &Certificate) -> Result<String, String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        let aia: x509_cert::ext::pkix::AuthorityInfoAccessSyntax =
            extension(certificate, AIA).ok_or("the certificate names no OCSP responder")?.map_err(|e| e.to_string())?;
        aia.0
            .iter()
            .filter(|d| d.access_method == AD_OCSP)
            .find_map(|d| match &d.access_location {
                x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str().to_owned()),
                _ => None,
            })
            .ok_or_else(|| "the certificate names no OCSP responder".to_owned())
    }
}

pub(super) fn sha1(data: &[u8]) -> Result<OctetString, String> {
    OctetString::new(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()).map_err(|e| e.to_string())
}

#[async_trait::async_trait]
impl RevocationSource for OcspClient {
    async fn status(&self, certificate: &Certificate, issuer: &Certificate, now: i64) -> Result<Status, String> {
        let cert_id = CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned { oid: SHA1, parameters: Some(der::asn1::Null.into()) },
            issuer_name_hash: sha1(&issuer.tbs_certificate.subject.to_der().map_err(|e| e.to_string())?)?,
            issuer_key_hash: sha1(issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes())?,
            serial_number: certificate.tbs_certificate.serial_number.clone(),
        };
        let request = OcspRequest {
            tbs_request: TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: vec![Request { req_cert: cert_id.clone(), single_request_extensions: None }],
                request_extensions: None,
            },
            optional_signature: None,
        };
        let url = self.responder_url(certificate)?;
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/ocsp-request")
            .body(request.to_der().map_err(|e| e.to_string())?)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| format!("OCSP responder {url}: {e}"))?;
        let body = response.bytes().await.map_err(|e| format!("OCSP responder {url}: {e}"))?;
        let response = OcspResponse::from_der(&body).map_err(|e| format!("OCSP answer: {e}"))?;
        if response.response_status != OcspResponseStatus::Successful {
            return Err(format!("OCSP responder said {:?}", response.response_status));
        }
        let bytes = response.response_bytes.ok_or("OCSP answer without a response")?;
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(|e| format!("OCSP answer: {e}"))?;
        // The signer: the issuer itself, or a responder certificate the issuer signed for
        // OCSP signing.
        let issuer_key = spki_key(issuer).map_err(|e| e.to_string())?;
        let delegated = basic.certs.iter().flatten().find(|c| {
            c.tbs_certificate.issuer == issuer.tbs_certificate.subject
                && signed_by(c, &issuer_key)
                && extension::<ExtendedKeyUsage>(c, ExtendedKeyUsage::OID).and_then(Result::ok).is_some_and(|eku| eku.0.contains(&OCSP_SIGNING))
        });
        let signer_key = match delegated {
            Some(c) => spki_key(c).map_err(|e| e.to_string())?,
            None => issuer_key,
        };
        let algorithm = x509_algorithm(basic.signature_algorithm.oid).ok_or("OCSP answer signed with an unknown algorithm")?;
        let tbs = basic.tbs_response_data.to_der().map_err(|e| e.to_string())?;
        let signature = basic.signature.as_bytes().ok_or("OCSP signature is not whole octets")?;
        signer_key.verify(algorithm, &tbs, signature).map_err(|_| "the OCSP answer's signature does not verify".to_owned())?;
        let single = basic.tbs_response_data.responses.iter().find(|r| r.cert_id == cert_id).ok_or("the OCSP answer is about another certificate")?;
        let this_update = single.this_update.0.to_unix_duration().as_secs() as i64;
        let next_update = single.next_update.map(|t| t.0.to_unix_duration().as_secs() as i64);
        if this_update > now + SKEW || now - this_update > OCSP_MAX_AGE || next_update.is_some_and(|n| n + SKEW < now) {
            return Err("the OCSP answer is not fresh".into());
        }
        match &single.cert_status {
            CertStatus::Good(_) => Ok(Status::Good),
            CertStatus::Revoked(info) if info.revocation_reason == Some(x509_cert::ext::pkix::CrlReason::CertificateHold) => Ok(Status::Suspended),
            CertStatus::Revoked(_) => Ok(Status::Revoked),
            CertStatus::Unknown(_) => Err("the OCSP responder does not know the certificate".into()),
        }
    }
}
